"""``cnnbp build``: the Keras model of a blueprint, saved as a ``.keras`` file."""
from __future__ import annotations

from .blueprint_args import add_blueprint_args, compile_args


def register(sub) -> None:
    """Add ``cnnbp build`` to ``sub``."""
    p = sub.add_parser("build", help="build the Keras model and save it")
    add_blueprint_args(p)
    p.add_argument("-o", "--output", required=True, help="where to write the .keras file")
    p.set_defaults(run=run)


def run(args) -> int:
    """Build the blueprint's model and save it to ``--output``; the path is checked before
    TensorFlow starts."""
    from cnnbp.builder.errors import check_keras_path
    compiled = compile_args(args)
    check_keras_path(args.output)  # before TensorFlow's start-up
    from cnnbp.builder.tf_env import import_tensorflow
    import_tensorflow()
    from cnnbp.builder.keras_builder import build_model, save_model
    model = build_model(compiled.network)
    save_model(model, args.output)
    print(f"{compiled.network.name}: wrote {args.output} ({model.count_params():,} params)")
    return 0
