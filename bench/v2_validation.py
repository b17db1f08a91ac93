"""What pydantic costs in an infer request: the V2 envelope (serve/v2.py) against the whole
parse, and pydantic walking the tensor values (``list[float]``) against NumPy reading them.

One digits row (8x8x1) and one 224x224x3 image nested per its shape, as JSON.
Usage: python bench/v2_validation.py [repeats]
"""
import sys
import time
from pathlib import Path

import numpy as np
import orjson
from pydantic import TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from cnnbp.serve.protocol import TensorSpec, parse_infer  # noqa: E402
from cnnbp.serve.v2 import InferenceRequest  # noqa: E402


def best(fn, repeats):
    """The fastest of ``repeats`` calls, in milliseconds (the least disturbed on a shared box)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main(repeats: int = 50) -> None:
    print(f"{'tensor':14} {'step':44} {'ms':>9}")
    for label, shape in (("1x8x8x1", (8, 8, 1)), ("1x224x224x3", (224, 224, 3))):
        x = np.random.default_rng(0).random((1, *shape)).astype("float32")
        body = orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                         "shape": [1, *shape], "data": x.tolist()}]})
        doc = orjson.loads(body)
        spec = (TensorSpec("input", "FP32", shape),)
        nested = TypeAdapter(list[list[list[list[float]]]])
        rows = [
            ("orjson.loads", lambda: orjson.loads(body)),
            ("pydantic envelope (data: Any)", lambda: InferenceRequest.model_validate(doc)),
            ("whole parse_infer (envelope included)",
             lambda: parse_infer(body, None, spec, max_rows=64)),
            ("np.asarray(data) (what parse_infer does)",
             lambda: np.asarray(doc["inputs"][0]["data"], "float32")),
            ("pydantic list[list[list[list[float]]]]",
             lambda: nested.validate_python(doc["inputs"][0]["data"])),
        ]
        for step, fn in rows:
            print(f"{label:14} {step:44} {best(fn, repeats):9.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
