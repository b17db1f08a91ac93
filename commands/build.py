"""``cnnbp build``: the Keras model of a blueprint, saved as a ``.keras`` file."""
from __future__ import annotations

from .blueprint_args import add_blueprint_args, compile_args


def register(sub) -> None:
    """Add ``cnnbp build`` to ``sub``."""
    p = sub.add_parser("build", help="build the Keras model and save it")
    add_blueprint_args(p)
    p.add_argument("-o", "--output", required=True, help="where to write the .keras file")
    p.add_argument("--weights", metavar="PATH", help="start from the weights in a .keras, "
                   ".weights.h5, .h5 or .onnx file (weights.from)")
    p.set_defaults(run=run)


def run(args) -> int:
    """Build the blueprint's model and save it to ``--output``; the path is checked before
    TensorFlow starts."""
    from cnnbp.builder.errors import check_keras_path
    from cnnbp.builder.weights import load_into, match
    from cnnbp.builder.weights_source import with_source
    compiled = with_source(compile_args(args), args.blueprint, args.weights)
    check_keras_path(args.output)  # before TensorFlow's start-up
    plan = match(compiled)  # a file that does not fit is refused before it too
    from cnnbp.builder.tf_env import import_tensorflow
    import_tensorflow()
    from cnnbp.builder.keras_builder import build_model, save_model
    model = build_model(compiled.network)
    loaded = load_into(model, compiled, plan=plan)
    save_model(model, args.output)
    start = f", weights from {loaded.path}" if loaded else ""
    print(f"{compiled.network.name}: wrote {args.output} ({model.count_params():,} params"
          f"{start})")
    return 0
