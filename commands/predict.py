"""``cnnbp predict``: classify files with a bundle, or through a running server."""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    pr = sub.add_parser("predict", help="classify images or signals, locally or via a server")
    pr.add_argument("bundle", help="a bundle (local), or the first file with --url")
    pr.add_argument("files", nargs="*", help="PNG/JPEG images, or .npy/.json 1-D signals")
    pr.add_argument("--url", help="a running `cnnbp serve`: http://HOST:PORT or grpc://HOST:PORT")
    pr.add_argument("--model", help="the model's name on the server")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--json", action="store_true",
                    help="one JSON object per file: {file, top_k: [{label, index, probability}]}, "
                         "probabilities at full precision")
    pr.add_argument("--token")
    pr.set_defaults(run=run)


def run(args) -> int:
    import os

    from cnnbp.contract.errors import UsageError
    from cnnbp.serve.client import predict_local, predict_remote
    failed: list[str] = []  # a file that cannot be classified does not stop the others
    if args.top_k < 1:
        raise UsageError(f"predict: --top-k must be 1 or more (the classes to print for each "
                         f"file, best first), got {args.top_k}")
    if args.url:
        if not args.model:
            raise UsageError("predict: --url needs --model NAME (the model's name on the server)")
        results = predict_remote(args.url, args.model, [args.bundle] + args.files, args.top_k,
                                 args.token or os.environ.get("CNNBP_TOKEN"), failed)
    else:
        if not args.files:
            raise UsageError(f"predict: no files to classify: give images or signals after the "
                             f"bundle, e.g. cnnbp predict {args.bundle} digit.png")
        results = predict_local(args.bundle, args.files, args.top_k, failed)
    for r in results:
        if args.json:  # one object a line, probabilities at full precision
            print(json.dumps({"file": r["file"], "top_k": r["top_k"]}))
        else:
            print(f"{r['file']}: " + ", ".join(f"{t['label']} ({t['probability']:.3f})"
                                               for t in r["top_k"]))
    for problem in failed:  # after the answers: one line each, and bad input's exit code
        print(f"error: {problem}", file=sys.stderr)
    return 2 if failed else 0
