"""``cnnbp import``: a ``.keras`` or ``.onnx`` classifier → a blueprint that reuses its weights."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    """Add ``cnnbp import`` to ``sub``."""
    p = sub.add_parser("import", help="write the blueprint of a .keras or .onnx classifier",
                       description="Read a .keras or .onnx classifier and write its blueprint, "
                       "folded to [(CONV-RELU)*N-POOL]*M-(FC-RELU)*K-SOFTMAX where it fits, with "
                       "weights: {from: MODEL} so building it reuses the model's weights.")
    p.add_argument("model", metavar="MODEL", help="the .keras or .onnx file")
    p.add_argument("-o", "--output", required=True, help="where to write the blueprint (.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing --output file")
    p.set_defaults(run=run)


def run(args) -> int:
    """Read the model, write its checked blueprint; refuse to overwrite without ``--force``."""
    from cnnbp.builder.importer import blueprint_for, to_yaml
    from cnnbp.contract.atomic import write_text
    from cnnbp.contract.errors import UsageError
    out = Path(args.output)
    if out.suffix not in (".yaml", ".yml"):
        raise UsageError(f"-o {args.output} must end in .yaml (a blueprint file)")
    if out.exists() and not args.force:
        raise UsageError(f"-o {args.output} already exists; add --force to replace it")
    if not Path(args.model).is_file():
        raise UsageError(f"MODEL {args.model} is not a file")
    doc = blueprint_for(args.model, out)
    write_text(out, to_yaml(doc))
    folded = "folded" if "vars" in doc else "written layer by layer"
    print(f"{doc['name']}: wrote {args.output} ({folded}; weights from {args.model})")
    return 0
