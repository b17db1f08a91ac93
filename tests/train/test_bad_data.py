"""No bad label or value reaches training: each is refused before it starts, exit 2, with one
paragraph naming the file, the array and the first bad index; and every ``--data`` problem that
needs no TensorFlow is found before TensorFlow is imported, leaving no run folder behind."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cnnbp.contract.errors import DataError
from cnnbp.train.array_files import bounds
from cnnbp.train.sources import check_against, load_source
from tests.conftest import ROOT

R = np.random.default_rng(0)
X, XT = R.random((40, 8, 8, 1)).astype("float32"), R.random((10, 8, 8, 1)).astype("float32")
Y, YT = np.arange(40) % 10, np.arange(10) % 10


def at(a, i, v):
    a = a.astype(type(v)) if isinstance(v, float) else a.copy()
    a[i] = v
    return a


# case -> (the .npz's arrays, or None for a case written by hand; what the message says)
NPZ = {
    "negative label": ({"y_train": at(Y, 7, -1)},
                       "d.npz: y_train[7] is -1, which is not among the class indices 0..9 "
                       "(the blueprint has classes: 10); fix that label"),
    "label past the classes": ({"y_test": at(YT, 3, 10)},
                               "d.npz: y_test[3] is 10, which is not among the class indices "
                               "0..9 (the blueprint has classes: 10)"),
    "label with a fraction": ({"y_train": at(Y, 5, 2.5)},
                              "d.npz: y_train[5] is 2.5, but labels must be class indices 0..9 "
                              "(the blueprint has classes: 10), and a fraction would be "
                              "truncated"),
    "NaN label": ({"y_train": at(Y, 3, float("nan"))},
                  "d.npz: y_train[3] is nan, but labels must be class indices 0..9"),
    "NaN in x": ({"x_train": at(X, (12, 3, 4, 0), float("nan"))},
                 "d.npz: x_train[12, 3, 4, 0] is nan: samples must be finite numbers"),
    "infinity in x_test": ({"x_test": at(XT, (4, 0, 1, 0), float("-inf"))},
                           "d.npz: x_test[4, 0, 1, 0] is -inf: samples must be finite"),
    "no training rows": ({"x_train": X[:0], "y_train": Y[:0]},
                         "d.npz: x_train has no rows (shape [0, 8, 8, 1]): training needs at "
                         "least one training and one test sample"),
    "no test rows": ({"x_test": XT[:0], "y_test": YT[:0]}, "d.npz: x_test has no rows"),
    "missing keys": ({"x_test": None, "y_test": None}, "d.npz lacks x_test, y_test"),
    "other shape": ({"x_train": X[:, :6], "x_test": XT[:, :6]},
                    "samples are 6x8x1 but the blueprint's input is 8x8x1"),
    "other class names": ({"class_names": list("abcdefghij")},
                          "the data's classes and the blueprint's class_names differ (data: "
                          "[a, b, c, d, e, f, g, h, i, j]; blueprint's class_names: [0, 1, 2, "
                          "3, 4, 5, 6, 7, 8, 9]); only in the data: [a, b, c, d, e, f, g, h, i, "
                          "j]; only in the blueprint: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"),
    # once "has 10 classes but the blueprint has classes: 10"
    "fewer names than labels": ({"class_names": [str(i) for i in range(9)]},
                                "d.npz: y_train[9] is 9, which is not among the class indices "
                                "0..8 (", "d.npz: class_names names 9 classes)"),
    "a class never labelled": ({"y_train": Y % 9, "y_test": YT % 9},
                               "its labels go up to 8, so it has 9 classes but the blueprint "
                               "has classes: 10; no sample has label 9; list 9 class_names (the "
                               "blueprint has 10) and set classes: 9"),
    "not a .npz": (None, "d.npz is not a .npz file (a .npz is a zip archive"),
    "no such file": (None, "/nonexistent/d.npz does not exist"),
}

# Each case in a fresh interpreter's cnnbp.cli.main: exit code, stderr, whether the run folder
# exists, and whether TensorFlow (or Keras) was imported.
DRIVER = """
import contextlib, io, json, os, sys
import cli
out = {}
for case, data, run in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main(["train", "digits", "--data", data, "-o", run, "--quiet"])
    out[case] = [rc, err.getvalue(), os.path.exists(run)]
out["imported"] = [m for m in ("tensorflow", "keras") if m in sys.modules]
print(json.dumps(out))
"""


def write_case(folder, case):
    folder.mkdir()
    path = folder / "d.npz"
    changes, *_ = NPZ[case]
    if case == "not a .npz":
        path.write_bytes(b"x_train,y_train\n0.5,1\n")  # a CSV named .npz
    elif changes is not None:
        arrays = {"x_train": X, "y_train": Y, "x_test": XT, "y_test": YT, **changes}
        np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return "/nonexistent/d.npz" if case == "no such file" else str(path)


def test_each_attack_is_refused_before_tensorflow_with_no_run_left(tmp_path):
    cases = [(case, write_case(tmp_path / f"c{i}", case), str(tmp_path / f"c{i}" / "run"))
             for i, case in enumerate(NPZ)]
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out.pop("imported") == []
    for case, (rc, err, run_exists) in out.items():
        assert (rc, run_exists) == (2, False), (case, err)
        assert err.startswith("error: --data: ") and err.count("\n") == 1, (case, err)
        for fragment in NPZ[case][1:]:
            assert fragment in err, (case, err)


def test_a_memory_map_is_scanned_in_chunks_and_the_row_named(tmp_path):
    a = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", "float32", (50, 4, 4, 1))
    a[:] = 0.5
    a[37, 2, 1, 0] = np.inf
    a.flush()
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    with pytest.raises(DataError, match=r"x.npy\[37, 2, 1, 0\] is inf"):
        bounds(mapped, "x.npy", chunk=64)  # 4 rows a chunk: the 10th chunk holds it
    assert bounds(np.load(tmp_path / "x.npy", mmap_mode="r")[:30], "x", chunk=64) == (0.5, 0.5)


def test_an_uncompressed_npz_is_checked_through_its_memory_map(tmp_path):
    x = np.full((30, 8, 8, 1), 0.25, "float32")
    x[29, 7, 7, 0] = np.nan
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(30) % 10, x_test=XT, y_test=YT)
    with pytest.raises(DataError, match=r"d.npz: x_train\[29, 7, 7, 0\] is nan"):
        load_source(str(tmp_path / "d.npz"), (8, 8, 1), 10)


def test_a_set_to_split_names_its_own_rows(tmp_path):
    np.savez(tmp_path / "d.npz", x=at(X, (33, 0, 0, 0), float("nan")), y=Y)
    with pytest.raises(DataError, match=r"d.npz: x\[33, 0, 0, 0\] is nan"):
        load_source(str(tmp_path / "d.npz"), (8, 8, 1), 10)
    np.savez(tmp_path / "d.npz", x=X, y=at(Y, 21, 12))
    with pytest.raises(DataError, match=r"d.npz: y\[21\] is 12, which is not among the class "
                                        r"indices 0..9"):
        load_source(str(tmp_path / "d.npz"), (8, 8, 1), 10)
    np.savez(tmp_path / "d.npz", x=X, y=Y[:30])
    with pytest.raises(DataError, match="x has 40 rows and y has 30"):
        load_source(str(tmp_path / "d.npz"))


def test_a_folder_of_npy_files_names_the_file(tmp_path):
    for k, a in {"x_train": X, "y_train": at(Y, 2, -3), "x_test": XT, "y_test": YT}.items():
        np.save(tmp_path / f"{k}.npy", a)
    with pytest.raises(DataError, match=r"y_train.npy\[2\] is -3, which is not among the class "
                                        r"indices 0..9 \(the blueprint has classes: 10\)"):
        load_source(str(tmp_path), (8, 8, 1), 10)


def test_without_the_nets_classes_the_check_still_catches_labels_past_them(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=X, y_train=Y, x_test=XT, y_test=YT)
    data = load_source(str(tmp_path / "d.npz"))  # no classes given: only negatives refused
    with pytest.raises(DataError, match="its labels go up to 9, so it has 10 classes but the "
                                        "blueprint has classes: 5; set --set classes=10"):
        check_against(data, (8, 8, 1), 5)


def shard(path, labels):
    import io

    import tensorflow as tf
    from PIL import Image
    with tf.io.TFRecordWriter(str(path)) as w:
        for label in labels:
            out = io.BytesIO()
            Image.new("RGB", (8, 8)).save(out, "PNG")
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[out.getvalue()])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))})
            ).SerializeToString())


def test_tfrecord_labels_are_checked_by_shard_and_record(tmp_path, keras):
    shard(tmp_path / "a.tfrecord", [0, 1, 2, 0])
    shard(tmp_path / "b.tfrecord", [1, 0, -4, 2])
    spec = str(tmp_path / "*.tfrecord")
    with pytest.raises(DataError, match=r"b.tfrecord: label\[2\] is -4, which is not among the "
                                        r"class indices 0..2 \(the blueprint has classes: 3\)"):
        load_source(spec, (8, 8, 3), 3)
    shard(tmp_path / "b.tfrecord", [1, 0, 2, 2])
    (tmp_path / "classes.txt").write_text("x\ny\n")
    with pytest.raises(DataError, match=r"a.tfrecord: label\[2\] is 2, which is not among the "
                                        r"class indices 0..1 \(\S+classes.txt names 2 classes"):
        load_source(spec, (8, 8, 3), 3)
    (tmp_path / "classes.txt").unlink()
    shard(tmp_path / "test.tfrecord", [])
    with pytest.raises(DataError, match=r"no records in the test shards \(\[\S+test.tfrecord\]"):
        load_source(spec, (8, 8, 3), 3)


def test_tfrecord_class_names_are_checked_before_tensorflow(tmp_path):
    (tmp_path / "a.tfrecord").write_bytes(b"")  # never read: the names are wrong first
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    code = ("import sys, cli; rc = cli.main(['train', '-e', 'INPUT(8x8x3)-FC-SOFTMAX', '--set', "
            "'classes=2', '--set', 'class_names=[cat, cow]', '--data', sys.argv[1], '-o', "
            "sys.argv[2]]); assert rc == 2, rc; assert 'tensorflow' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "*.tfrecord"),
                           str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "only in the data: [dog]; only in the blueprint: [cow]" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_of_other_shapes_says_which_array_differs(made, tmp_path, capsys):
    from cnnbp import cli
    run = tmp_path / "run"
    shutil.copytree(made / "run", run)
    path = run / "state" / "epoch-1.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["w0"] = np.zeros((5, 5, 1, 32), "float32")  # the same count of arrays, 5x5 kernels
    np.savez(path, **arrays)
    assert cli.main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the checkpoint's weights do not fit this run's net (array 0 is [5, 5, 1, 32], the " \
           "net's is [3, 3, 1, 32]): it belongs to another run" in err
