"""The small parts of ``cnnbp.train`` on their own: the validation split, the label checks, the
shared tf.data helpers, the epoch clock, the row readers, the pixel store, the callback's
reseeding, the TFRecord shard listing, the array batches, the charts and the progress line."""
import numpy as np
import pytest
from PIL import Image

from cnnbp.builder import load
from cnnbp.contract.errors import DataError


def test_the_validation_split_is_seeded_disjoint_and_the_same_for_arrays_and_rows():
    from cnnbp.train.split import split_files, split_rows, split_validation
    x, y = np.arange(100)[:, None], np.arange(100) % 4
    kept, held = split_rows(100, 0.2, seed=7)
    assert len(held) == 20 and len(kept) == 80 and not set(kept) & set(held)
    assert sorted([*kept, *held]) == list(range(100))
    assert np.array_equal(split_rows(100, 0.2, seed=7)[1], held)  # the same for a seed
    assert not np.array_equal(split_rows(100, 0.2, seed=8)[1], held)
    x_tr, _, x_val, _ = split_validation(x, y, 0.2, seed=7)
    assert np.array_equal(x_val[:, 0], held) and np.array_equal(x_tr[:, 0], kept)
    assert split_validation(x, y, 0, seed=7)[2] is None
    tr, val = split_files(list(range(100)), y, 0.2, seed=7)  # stratified: 5 of each class
    assert np.bincount(y[val]).tolist() == [5, 5, 5, 5] and len(tr) == 80


def test_a_bad_label_is_named_with_its_place_and_what_is_valid():
    from cnnbp.train.labels import check_labels, class_names, listed
    with pytest.raises(DataError, match=r"^--data: y_train\[2\] is 7, which is not among the "
                                        r"class indices 0\.\.4 \(five classes\)"):
        check_labels(np.array([0, 1, 7, 9]), "y_train", 5, "five classes")
    check_labels(np.array([0, 4]), "y_train", 5)
    with pytest.raises(DataError, match=r"name 1 is 'a\\nb'; each class name must be one"):
        class_names(["cat", "a\nb"], "classes.txt")
    assert listed(["a", "b", "c"], most=2) == "[a, b, … (1 more)]"


def test_the_shared_tf_data_helpers():
    import tensorflow as tf

    from cnnbp.train.tfdata import drop_failed, op_message, settled, shuffle_seed
    ds = tf.data.Dataset.from_tensor_slices(([10, 11, 12], [True, False, True], [0, 1, 2]))
    assert [(int(x), int(y)) for x, y in drop_failed(ds)] == [(10, 0), (12, 2)]
    assert settled(ds).options().autotune.enabled is False
    key = tf.constant([3, 1], tf.int64)
    assert int(shuffle_seed(key)) == int(shuffle_seed(key)) != int(shuffle_seed(key + 1))
    with pytest.raises(tf.errors.NotFoundError) as caught:
        tf.io.read_file("/nonexistent/cnnbp-file")
    message = op_message(caught.value)
    assert "/nonexistent/cnnbp-file" in message and "[Op:" not in message


def test_the_epoch_clock_draws_each_epoch_from_the_seed_and_the_epoch_alone():
    import tensorflow as tf

    from cnnbp.train.clock import EpochClock
    rows = tf.data.Dataset.range(50)
    clock = EpochClock(seed=3)
    ds = clock.shuffled(rows, 50)
    order = lambda epoch: (clock.set(epoch), [int(v) for v in ds])[1]
    first, second = order(0), order(1)
    assert sorted(first) == list(range(50)) and first != second
    assert order(0) == first  # a resumed run at epoch 0 draws the same again
    assert int(ds.cardinality()) == 50


def test_array_rows_read_a_memory_map_by_index(tmp_path):
    from cnnbp.train.data import Dataset
    from cnnbp.train.images import BadImages
    from cnnbp.train.rows import ArrayRows
    net = load("digits").network
    x = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", "float32", (10, 8, 8, 1))
    x[...] = np.arange(10, dtype="float32")[:, None, None, None]
    y = np.arange(10) % 10
    data = Dataset(x, y, x[:2], y[:2], tuple("0123456789"), "test")
    source = ArrayRows(data, net, BadImages(False))
    assert source.row_bytes == 8 * 8 * 4  # float32 values, not pixels
    got = [(int(r[0, 0, 0]), int(label)) for r, label in source.rows([7, 2, 5], "train")]
    assert got == [(2, 2), (5, 5), (7, 7)]  # each batch of 64 is read in file order
    test = [int(label) for _, label in source.rows([1, 0], "test")]
    assert test == [0, 1]


@pytest.mark.parametrize("on_disk", [False, True])
def test_the_pixel_store_gives_back_what_it_kept(tmp_path, on_disk):
    from cnnbp.train.cache import PixelStore
    store = PixelStore(3, (2, 2, 3), tmp_path / "pixels" if on_disk else None)
    pixels = np.arange(12, dtype="uint8").reshape(2, 2, 3)
    store.write(1, pixels, True)
    store.write(2, pixels, False)
    assert store.state.tolist() == [PixelStore.UNKNOWN, PixelStore.KEPT, PixelStore.BAD]
    out = np.zeros_like(pixels)
    store.read(1, out)
    assert np.array_equal(out, pixels)
    store.close()
    assert (tmp_path / "pixels").is_file() == on_disk


def test_file_rows_decode_a_folder_as_serving_does(tmp_path):
    from cnnbp.contract.preprocessing import image_bytes
    from cnnbp.train.file_rows import FileRows
    from cnnbp.train.images import BadImages
    from cnnbp.train.sources import load_source
    net = load("cifar10_small").network
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), "uint8")).save(
                tmp_path / split / label / "x.png")
    data = load_source(str(tmp_path), net.input_shape)
    source = FileRows(data, net, BadImages(False))
    (x, y), = list(source.batches(np.arange(2), "train", 2).as_numpy_iterator())
    for pixels, label in zip(x, y):
        with Image.open(data.train_files[label]) as im:
            assert np.array_equal(pixels, image_bytes(im, net.input_shape, "stretch"))


def test_reseeding_makes_an_epochs_dropout_independent_of_what_ran_before():
    import keras

    from cnnbp.train.callback import layer_seeds, reseed
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dropout(0.5, seed=5)(inputs))
    seeds = layer_seeds(model)
    assert len(seeds) == 1
    ones = np.ones((1, 4), "float32")
    draw = lambda: keras.ops.convert_to_numpy(model(ones, training=True))
    reseed(seeds, 2)
    first = draw()
    draw()  # more steps in this process
    reseed(seeds, 2)
    assert np.array_equal(draw(), first)


def test_tfrecord_shards_are_split_by_name_and_named_by_classes_txt(tmp_path):
    from cnnbp.train.tfrecords import shards
    for name in ("a-train.tfrecord", "b-train.tfrecord", "c-test.tfrecord"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "classes.txt").write_text("cat\ndog\n\n")
    found = shards(str(tmp_path / "*.tfrecord"), (8, 8, 3))
    assert [p.rsplit("/", 1)[1] for p in found.train] == ["a-train.tfrecord",
                                                           "b-train.tfrecord"]
    assert [p.rsplit("/", 1)[1] for p in found.test] == ["c-test.tfrecord"]
    assert found.names == ("cat", "dog")
    with pytest.raises(DataError, match="matches no TFRecord files"):
        shards(str(tmp_path / "*.nothing"), (8, 8, 3))


def test_array_batches_are_normalised_one_hot_and_reshuffled_by_epoch():
    from cnnbp.contract.preprocessing import fit
    from cnnbp.train.arrays import batches
    net = load("digits").network
    x = np.arange(10 * 64, dtype="float32").reshape(10, 8, 8, 1)
    y = np.arange(10) % 10
    prep = fit(x, input_shape=[8, 8, 1], domain="tensor", class_names=list("0123456789"))
    data = batches(x, y, np.arange(10), 5, prep, net, mapped=False, seed=1)
    assert len(data) == 2
    data.set(0)
    xb, yb = data[0]
    labels = np.argmax(yb, axis=1)
    np.testing.assert_allclose(xb, prep.normalize(x[labels]), rtol=1e-5, atol=1e-5)
    order = lambda epoch: (data.set(epoch), [int(v) for i in range(2)
                                             for v in np.argmax(data[i][1], axis=1)])[1]
    assert order(0) == order(0) != order(1)


def test_array_rows_held_in_memory_are_normalised_once_to_the_batch_formulas_values():
    """Rows in memory are normalised into a copy when the batches are made; each batch holds
    exactly the float32 ``x * gain + shift`` of its rows (the formula a batch-at-a-time pass
    computes), the validation rows stay out of the training copy, and x is left alone."""
    from cnnbp.contract.preprocessing import fit
    from cnnbp.train.arrays import batches
    net = load("digits").network
    x = np.random.default_rng(3).uniform(0, 1, (12, 8, 8, 1)).astype("float32")
    before = x.copy()
    y = np.arange(12) % 10
    prep = fit(x, input_shape=[8, 8, 1], domain="tensor", class_names=list("0123456789"))
    gain, shift = prep.gain_shift(prep.scale)
    rows = np.array([0, 2, 3, 5, 7, 8, 9, 11])  # 1, 4, 6, 10 held out
    data = batches(x, y, rows, 3, prep, net, mapped=False, seed=4)
    assert data.ready.shape == (8, 8, 8, 1)
    seen = []
    for i in range(len(data)):
        xb, yb = data[i]
        take = np.sort(data.order[i * 3:(i + 1) * 3])
        np.testing.assert_array_equal(xb, x[take] * gain + shift)  # bit for bit
        np.testing.assert_array_equal(np.argmax(yb, axis=1), y[take])
        seen += take.tolist()
    assert sorted(seen) == rows.tolist()
    np.testing.assert_array_equal(x, before)


def test_the_charts_are_written_into_the_run(tmp_path):
    from cnnbp.contract.rundir import RunDir
    from cnnbp.train.plots import write_plots
    run = RunDir(tmp_path)
    history = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5}, {"epoch": 2, "loss": 0.5,
                                                            "accuracy": 0.8}]
    curves, matrix = write_plots(run, history, [[3, 1], [0, 4]], ["a", "b"])
    assert (tmp_path / "curves.png").read_bytes() == curves
    assert (tmp_path / "confusion.png").read_bytes() == matrix
    assert write_plots(run, [], [[1]], ["a"])[0] is None  # no epoch ran: no curves


def test_the_progress_line_goes_to_stdout_and_no_bar_off_a_terminal(capsys):
    from cnnbp.train.progress import on_terminal, say
    say("epoch 1/1: loss 0.1")
    assert capsys.readouterr().out == "epoch 1/1: loss 0.1\n"
    assert on_terminal() is False  # pytest captures stderr: not a terminal


def test_launch_refuses_data_that_does_not_fit_before_anything_is_written(tmp_path):
    from cnnbp.train.launch import launch
    with pytest.raises(DataError, match=r"samples are 8x8x1"):
        launch(load("cifar10_small"), "digits", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_the_builtin_digits_are_split_80_20_with_their_names():
    from cnnbp.train.builtin import digits
    data = digits()
    assert (len(data.y_train), len(data.y_test)) == (1437, 360)
    assert data.x_train.shape[1:] == (8, 8, 1)
    assert 0 <= data.x_train.min() <= data.x_train.max() <= 1
    assert data.class_names == tuple("0123456789") and data.scale == 16.0


def test_an_npz_of_x_and_y_is_split_and_a_nan_named_by_its_row(tmp_path):
    from cnnbp.train.array_files import npz
    x = np.zeros((20, 4, 4, 1), "float32")
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 2)
    data = npz(tmp_path / "d.npz", 2)
    assert (len(data.y_train), len(data.y_test)) == (16, 4)
    x[13, 2, 1, 0] = np.nan
    np.savez(tmp_path / "bad.npz", x=x, y=np.arange(20) % 2)
    with pytest.raises(DataError, match=r"bad\.npz: x\[13, 2, 1, 0\] is nan"):
        npz(tmp_path / "bad.npz", 2)


def test_an_image_folder_is_listed_not_decoded_and_other_files_counted(tmp_path):
    from cnnbp.train.folders import folder
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(5):
            (tmp_path / label / f"{i}.png").write_bytes(b"not decoded here")
    (tmp_path / "cat" / "notes.txt").write_text("x")
    data = folder(tmp_path, (8, 8, 3))
    assert data.class_names == ("cat", "dog")
    assert len(data.train_files) + len(data.test_files) == 10
    assert "1 other file(s) ignored" in data.source


def test_class_names_are_matched_by_name_into_the_blueprints_order():
    from cnnbp.train.class_match import match_names
    assert match_names(("cat", "dog"), ("dog", "cat"), 2, "src") == [1, 0]
    assert match_names(("cat", "dog"), ("cat", "dog"), 2, "src") is None
    with pytest.raises(DataError, match=r"only in the data: \[cow\]; only in the blueprint: "
                                        r"\[dog\]"):
        match_names(("cat", "cow"), ("cat", "dog"), 2, "src")


def test_steady_images_per_second_leaves_out_the_compiling_epochs():
    from cnnbp.train.results import steady_images_per_second
    # the first epoch and a resumed one (the fourth) compile; the median of 2.0, 2.5, 7.5, 2.5
    rows = [{"seconds": s} for s in (9.0, 2.0, 2.5, 7.5, 2.5)]
    assert steady_images_per_second(rows, 1000) == 400.0  # 1,000 rows in 2.5 s
    assert steady_images_per_second(rows[:1], 1000) is None  # one epoch: nothing steady


def test_ready_array_batches_are_drawn_by_the_loop_and_working_ones_on_threads():
    """A batch that is one gather of rows normalised in memory is drawn by the training loop
    (Keras's threaded enqueuer cost 110-160 ms an epoch); batches normalised or augmented as
    drawn, or larger than ``LOOP_DRAWN``, get the threads asked for."""
    from cnnbp.contract.preprocessing import fit
    from cnnbp.train.arrays import LOOP_DRAWN, batches
    net = load("digits").network
    x = np.zeros((64, 8, 8, 1), "float32")
    y = np.arange(64) % 10
    prep = fit(x + 1, input_shape=[8, 8, 1], domain="tensor", class_names=list("0123456789"))
    rows = np.arange(64)
    threads = lambda batch=8, **kw: batches(x, y, rows, batch, prep, net, workers=4,
                                            **{"mapped": False, **kw}).workers
    assert threads() == 1
    assert threads(mapped=True) == 4
    assert threads(augment=lambda b, rng: b) == 4
    row_bytes = 8 * 8 * 1 * 4
    assert threads(batch=LOOP_DRAWN // row_bytes - 1) == 1
    assert threads(batch=LOOP_DRAWN // row_bytes) == 4
