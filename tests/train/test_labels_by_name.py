"""One source of labels: when the blueprint and the data both name the classes, each example
reaches its class by name, whatever the order of either list, and ``labels.txt`` follows the
model's outputs. Tiny nets trained on solid colours, one per class, then asked about a fresh
image of each colour."""
import io

import numpy as np
import pytest
from PIL import Image

from cnnbp.builder import load_expression
from cnnbp.contract.errors import DataError
from cnnbp.train.sources import check_against, load_source

# the blueprint's order is not alphabetical, nor the data's order (sorted folders, a class
# list written in yet another order): a model numbered by position would name 3 of 4 wrongly
BLUEPRINT_NAMES = ["circle", "square", "triangle", "cross"]
COLOURS = {"circle": (220, 30, 30), "cross": (30, 220, 30), "square": (30, 30, 220),
           "triangle": (220, 220, 30)}
SHAPE = (8, 8, 3)


def net(names=BLUEPRINT_NAMES):
    return load_expression("INPUT(8x8x3)-CONV(8,3)-RELU-POOL(2)-FC-SOFTMAX", [
        f"classes={len(names)}", f"class_names=[{', '.join(names)}]", "training.epochs=12",
        "training.batch_size=8", "training.learning_rate=0.02", "training.validation_split=0",
        "training.augment.translate=0"])


def pixels(name, rng, count):
    """``count`` 8x8 RGB images of the class's colour, with a little noise."""
    base = np.zeros((count, *SHAPE)) + COLOURS[name]
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype("uint8")


def png(name) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels(name, np.random.default_rng(99), 1)[0]).save(out, "PNG")
    return out.getvalue()


def predicted(run) -> dict[str, str]:
    """What the run's model (and its labels.txt) calls a fresh image of each colour, read the
    way serving reads an image."""
    import keras

    from cnnbp.contract import records
    from cnnbp.contract.preprocessing import Preprocessing
    labels = (run / "labels.txt").read_text(encoding="utf-8").splitlines()
    prep = records.read(Preprocessing, run / "preprocess.json", "preprocessing record")
    model = keras.saving.load_model(run / "model.keras", compile=False)
    return {name: labels[int(np.argmax(model.predict_on_batch(prep.from_image_bytes(png(name)))))]
            for name in COLOURS}


def served(run, folder, capsys) -> dict[str, str]:
    """What `cnnbp predict` on the run's exported bundle calls a fresh image of each colour."""
    from cnnbp import cli
    assert cli.main(["export", str(run), "-o", str(folder / "bundle"), "--no-variants"]) == 0
    files = []
    for name in COLOURS:
        (folder / f"{name}.png").write_bytes(png(name))
        files.append(str(folder / f"{name}.png"))
    capsys.readouterr()
    assert cli.main(["predict", str(folder / "bundle"), *files, "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    return {name: line.split(": ", 1)[1].split(" (")[0] for name, line in zip(COLOURS, lines)}


def train(spec, folder, capsys):
    """Train, then check each colour is named as its class by the model with labels.txt, and
    by `cnnbp predict` on the exported bundle."""
    from cnnbp.train.fit import train as fit
    run = folder / "run"
    fit(net(), spec, run, quiet=True, report=False)
    assert (run / "labels.txt").read_text(encoding="utf-8").splitlines() == BLUEPRINT_NAMES
    assert predicted(run) == {n: n for n in COLOURS}
    assert served(run, folder, capsys) == {n: n for n in COLOURS}


def image_folder(root, per_class=10):
    rng = np.random.default_rng(0)
    for name in sorted(COLOURS):  # folders: circle, cross, square, triangle
        (root / name).mkdir(parents=True)
        for i, p in enumerate(pixels(name, rng, per_class)):
            Image.fromarray(p).save(root / name / f"{i}.png")
    return root


def test_an_image_folder_is_served_by_name(tmp_path, capsys, keras):
    train(str(image_folder(tmp_path / "shapes")), tmp_path, capsys)


def test_a_npz_with_its_own_class_names_is_served_by_name(tmp_path, capsys, keras):
    rng = np.random.default_rng(1)
    own = ["triangle", "cross", "circle", "square"]  # label k is own[k]
    x = {s: np.concatenate([pixels(n, rng, c) for n in own]) for s, c in (("tr", 12), ("te", 3))}
    y = {s: np.repeat(np.arange(4), c) for s, c in (("tr", 12), ("te", 3))}
    np.savez(tmp_path / "d.npz", x_train=x["tr"], y_train=y["tr"], x_test=x["te"],
             y_test=y["te"], class_names=own)
    train(str(tmp_path / "d.npz"), tmp_path, capsys)


def test_tfrecord_shards_with_classes_txt_are_served_by_name(tmp_path, capsys, keras):
    import tensorflow as tf
    own = ["square", "triangle", "cross", "circle"]  # classes.txt: line k names label k
    rng = np.random.default_rng(2)
    with tf.io.TFRecordWriter(str(tmp_path / "train.tfrecord")) as w:
        for name in own * 12:
            out = io.BytesIO()
            Image.fromarray(pixels(name, rng, 1)[0]).save(out, "PNG")
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[out.getvalue()])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(
                    value=[own.index(name)]))})).SerializeToString())
    (tmp_path / "classes.txt").write_text("\n".join(own) + "\n", encoding="utf-8")
    train(str(tmp_path / "*.tfrecord"), tmp_path, capsys)


# -- refused before training, with both lists ------------------------------------------------

def folder_of(root, names):
    for name in names:
        (root / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / name / "a.png")
        Image.new("RGB", (8, 8)).save(root / name / "b.png")
    return str(root)


def refused(spec, names, classes=None) -> str:
    data = load_source(spec, SHAPE, classes or len(names))
    with pytest.raises(DataError) as exc:
        check_against(data, SHAPE, classes or len(names), tuple(names))
    return str(exc.value)


def test_other_names_are_refused_showing_both_lists(tmp_path):
    text = refused(folder_of(tmp_path, ["circle", "cross", "square", "star"]), BLUEPRINT_NAMES)
    assert "the data's classes and the blueprint's class_names differ (data: [circle, cross, " \
           "square, star]; blueprint's class_names: [circle, square, triangle, cross]); only " \
           "in the data: [star]; only in the blueprint: [triangle]" in text


def test_a_count_mismatch_is_refused_showing_both_lists(tmp_path):
    text = refused(folder_of(tmp_path, ["circle", "cross", "square"]), BLUEPRINT_NAMES)
    assert "(data: [circle, cross, square]; blueprint's class_names: [circle, square, " \
           "triangle, cross]); only in the data: none; only in the blueprint: [triangle]" in text
    # no class_names in the blueprint: the count alone must agree
    data = load_source(folder_of(tmp_path / "b", ["a", "b", "c"]), SHAPE)
    with pytest.raises(DataError, match=r"the data names 3 classes \(\[a, b, c\]\) but the "
                                        r"blueprint has classes: 4; set --set classes=3"):
        check_against(data, SHAPE, 4)


def test_duplicate_names_are_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, *SHAPE), "uint8"), y_train=[0, 1, 2, 0],
             x_test=np.zeros((2, *SHAPE), "uint8"), y_test=[0, 1],
             class_names=["a", "b", "a"])
    assert "the data names the class 'a' twice (data: [a, b, a]; blueprint's class_names: " \
           "[a, b, c])" in refused(str(tmp_path / "d.npz"), ["a", "b", "c"])
    assert "the blueprint's class_names names the class 'x' twice (data: [a, b]; " \
           "blueprint's class_names: [x, x])" in refused(folder_of(tmp_path / "f", "ab"),
                                                        ["x", "x"])


def test_numbered_data_takes_the_blueprints_names_by_position(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, *SHAPE), "uint8"), y_train=[0, 1, 2, 0],
             x_test=np.zeros((2, *SHAPE), "uint8"), y_test=[2, 1])
    data = check_against(load_source(str(tmp_path / "d.npz"), SHAPE, 3), SHAPE, 3,
                         ("z", "y", "x"))
    assert data.class_names == ("z", "y", "x") and data.y_test.tolist() == [2, 1]


def test_labels_are_renumbered_to_the_blueprints_order(tmp_path):
    root = folder_of(tmp_path, ["circle", "cross", "square", "triangle"])
    data = check_against(load_source(root, SHAPE, 4), SHAPE, 4, tuple(BLUEPRINT_NAMES))
    assert data.class_names == tuple(BLUEPRINT_NAMES)
    for f, label in zip(data.train_files + data.test_files,
                        np.concatenate([data.train_labels, data.test_labels])):
        assert BLUEPRINT_NAMES[label] == f.split("/")[-2]  # the file's folder is its class


def test_resume_refuses_data_whose_names_now_give_other_outputs(tmp_path, keras):
    from cnnbp.contract.errors import ArtifactError
    from cnnbp.train.fit import train as fit
    from cnnbp.train.resume import resume
    rng = np.random.default_rng(2)
    own = ["triangle", "cross", "circle", "square"]
    x, y = np.concatenate([pixels(n, rng, 3) for n in own]), np.repeat(np.arange(4), 3)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y, class_names=own)
    unnamed = load_expression("INPUT(8x8x3)-CONV(4,3)-RELU-POOL(2)-FC-SOFTMAX", [
        "classes=4", "training.epochs=1", "training.validation_split=0"])
    fit(unnamed, str(tmp_path / "d.npz"), tmp_path / "run", quiet=True, report=False)
    # the same data with its classes listed in another order: label k now means another class
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y, class_names=own[::-1])
    with pytest.raises(ArtifactError) as exc:
        resume(tmp_path / "run", quiet=True, epochs=2)
    assert "the run's outputs are the classes [triangle, cross, circle, square] but " \
           f"{tmp_path / 'd.npz'} with this blueprint gives [square, circle, cross, triangle]" \
           in str(exc.value)
