"""``--tensorboard`` writes what TensorBoard's tabs show, read back with TensorBoard's own
EventAccumulator: weight histograms each epoch, a graph that parses (no Keras config under the
``keras`` tag, which the Graph tab called a malformed GraphDef), and the run's pictures."""
import io

import pytest


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cnnbp import cli
    from cnnbp.train.tensorboard import LOGS
    assert LOGS == "tensorboard"  # RUN/tensorboard, as the docs and --help say
    out = tmp_path_factory.mktemp("tb") / "r"
    assert cli.main(["train", "digits", "--data", "digits", "--epochs", "2", "--quiet",
                     "--tensorboard", "-o", str(out)]) == 0
    runs = {}
    for name in ("train", "validation"):
        acc = EventAccumulator(str(out / "tensorboard" / name),
                               size_guidance={"tensors": 0, "images": 0, "histograms": 0})
        runs[name] = acc.Reload()
    return runs


def plugin_tags(acc, plugin: str) -> set[str]:
    return {tag for tag in acc.Tags()["tensors"]
            if acc.SummaryMetadata(tag).plugin_data.plugin_name == plugin}


def test_weight_histograms_every_epoch(board):
    tags = plugin_tags(board["train"], "histograms")
    assert any("stage1_conv1" in t and "kernel" in t for t in tags), tags
    assert any("predictions" in t for t in tags), tags
    steps = {e.step for t in tags for e in board["train"].Tensors(t)}
    assert steps == {0, 1}, steps


def test_graph_parses_and_names_the_layers(board):
    assert "keras" not in board["train"].Tags()["tensors"]
    graph = board["train"].Graph()  # raises on a missing or malformed GraphDef
    names = " ".join(node.name for node in graph.node)
    for layer in ("stage1_conv1", "stage2_pool", "fc1", "predictions"):
        assert layer in names, layer


def test_inputs_and_charts_are_images(board):
    import tensorflow as tf
    from PIL import Image
    tags = plugin_tags(board["train"], "images")
    assert {"inputs/training batch", "curves", "confusion matrix"} <= tags, tags
    for tag in ("inputs/training batch", "curves", "confusion matrix"):
        event, = board["train"].Tensors(tag)
        assert event.step == 2
        width, height, png = tf.make_ndarray(event.tensor_proto)
        with Image.open(io.BytesIO(png)) as im:
            assert im.size == (int(width), int(height)) and im.width > 100
    assert "epoch_loss" in board["validation"].Tags()["tensors"]
