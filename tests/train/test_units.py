"""Evaluation figures, schedules and augmentation, each on known inputs."""
import numpy as np
import pytest

from cnnbp.builder import ir
from cnnbp.train.evaluate import classification_report


def test_classification_report_by_hand():
    # true 0,0,1,1,2 ; predicted 0,1,1,1,0
    probs = np.eye(3)[[0, 1, 1, 1, 0]] * 0.8 + 0.2 / 3
    r = classification_report(probs, np.array([0, 0, 1, 1, 2]), ["a", "b", "c"])
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert r["test_accuracy"] == pytest.approx(3 / 5)
    assert r["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert r["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["b"]["f1"] == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))  # 0.8
    assert r["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # macro: plain means over a, b, c; weighted: by support 2, 2, 1 of 5
    assert r["macro_avg"]["precision"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert r["macro_avg"]["f1"] == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert r["weighted_avg"]["recall"] == pytest.approx((2 * 0.5 + 2 * 1 + 0) / 5)
    assert r["weighted_avg"]["f1"] == pytest.approx((2 * 0.5 + 2 * 0.8 + 0) / 5)


def test_step_schedule_and_warmup(keras):
    from cnnbp.train.schedules import Warmup, learning_rate
    t = ir.Training(epochs=30, learning_rate=0.1, schedule="step", step_epochs=10, gamma=0.1,
                    warmup_epochs=2)
    lr = learning_rate(t, steps_per_epoch=5)
    at = lambda step: float(lr(step))
    assert at(0) == pytest.approx(0.1 / 10) and at(4) == pytest.approx(0.05)  # linear warm-up
    assert at(10) == pytest.approx(0.1)
    assert at(10 + 50) == pytest.approx(0.01) and at(10 + 100) == pytest.approx(0.001)
    restored = Warmup.from_config(lr.get_config())
    assert float(restored(60)) == pytest.approx(0.01)


def test_cosine_schedule_ends_near_zero(keras):
    from cnnbp.train.schedules import learning_rate
    lr = learning_rate(ir.Training(epochs=10, learning_rate=0.5, schedule="cosine"), 4)
    assert float(lr(0)) == pytest.approx(0.5) and float(lr(40)) < 1e-6


def test_flip_reverses_some_samples_and_keeps_shapes(keras):
    from cnnbp.train.augment import make_augment
    x = np.arange(16 * 10, dtype="float32").reshape(16, 10, 1)
    fn = make_augment(ir.Augment(flip="horizontal"), (10, 1), seed=3)
    out, _ = fn(x, np.zeros(16))
    out = np.asarray(out)
    flipped = [np.array_equal(o, s[::-1]) for o, s in zip(out, x)]
    kept = [np.array_equal(o, s) for o, s in zip(out, x)]
    assert any(flipped) and any(kept) and all(f or k for f, k in zip(flipped, kept))


def test_translate_moves_images_within_bounds(keras):
    from cnnbp.train.augment import make_augment
    x = np.zeros((8, 12, 12, 1), "float32")
    x[:, 5:7, 5:7] = 1
    out = np.asarray(make_augment(ir.Augment(crop=2), (12, 12, 1), seed=0)(x, None)[0])
    assert out.shape == x.shape
    moved = [not np.array_equal(o, s) for o, s in zip(out, x)]
    assert any(moved) and np.allclose(out.sum(axis=(1, 2, 3)), 4)  # shifted, not cut


def test_no_augmentation_means_no_map():
    from cnnbp.train.augment import make_augment
    assert make_augment(ir.Augment(), (8, 8, 1), 0) is None


def test_rotation_is_refused_for_signals():
    from cnnbp.builder import load
    from cnnbp.builder.errors import BlueprintError
    with pytest.raises(BlueprintError, match=r"training.augment.rotate: .*rotate needs 2-D images"):
        load("mnist1d", ["training.augment.rotate=10"])
