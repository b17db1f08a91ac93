"""ONNX Runtime's ``Resize`` (linear, antialias, half-pixel, opset 18: what
``variants/pixels.anysize.onnx`` runs) against Pillow's bilinear resize (what training runs),
value for value, on scikit-learn's two sample photos at several sizes (RGB, no JPEG draft).

Usage: python bench/resize_agreement.py [--targets 32 224]
"""
import argparse

import numpy as np

SIZES = ((640, 427), (320, 213), (150, 100), (61, 47))


def resize_session(h: int, w: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("Cast", ["p"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Resize", ["f", "", "", "s"], ["r"], mode="linear", antialias=1,
                              axes=[1, 2], coordinate_transformation_mode="half_pixel"),
             helper.make_node("Round", ["r"], ["q"]), helper.make_node("Clip", ["q", "lo", "hi"],
                                                                        ["y"])]
    graph = helper.make_graph(
        nodes, "resize", [helper.make_tensor_value_info("p", TensorProto.UINT8, [1, "h", "w", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([h, w], "int64"), "s"),
         numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(255), "hi")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, nargs="+", default=[32, 224],
                    choices=range(1, 4097), metavar="N", help="square output sizes")
    args = ap.parse_args()
    from PIL import Image
    from sklearn.datasets import load_sample_images
    for target in args.targets:
        session, diffs = resize_session(target, target), []
        for photo in load_sample_images().images:
            for size in SIZES:
                im = Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS)
                got = session.run(None, {"p": np.asarray(im)[None]})[0][0]
                want = np.asarray(im.resize((target, target), Image.Resampling.BILINEAR), "float32")
                diffs.append(np.abs(got - want).ravel())
        d = np.concatenate(diffs)
        print(f"{target}x{target}: {100 * (d == 0).mean():.1f}% equal, {100 * (d <= 1).mean():.2f}% "
              f"within 1, mean |diff| {d.mean():.2f}, max {d.max():.0f}")


if __name__ == "__main__":
    main()
