"""The ``cnnbp`` subcommands, one module each (as accelerate's ``commands/``): every module has
``register(subparsers)``, which adds its parser, and ``run(args) -> int``. Logic lives in the
stage packages; a command parses, calls them, and prints what they return.

Registering stays cheap and free of TensorFlow: ``cnnbp check`` builds the whole parser too.
``assemble`` builds it (not this file: importing the ``list`` command binds ``list`` here).
"""

# In the order ``cnnbp --help`` lists them
MODULES = ("check", "show", "list", "build", "train", "export", "validate", "serve", "predict",
           "search", "draw", "explain", "report", "import")

EXAMPLES = """examples:
  cnnbp check vgg16                       shipped blueprint by name
  cnnbp check blueprints/vgg16.yaml --json
  cnnbp check mnist1d --set N=3 --set K=2 override variables
  cnnbp show alexnet                      per-layer table
  cnnbp list                              shipped blueprints, one line each
  cnnbp show vgg16 --yaml > my.yaml       a shipped blueprint to start from
  cnnbp draw lenet5 -o lenet5.svg         the lecture-style volume diagram
  cnnbp check -e "INPUT(32x32x3)-CONV(10,5x5,stride=1,pad=2)-RELU-POOL-FC(10)-SOFTMAX"
  cnnbp build digits -o model.keras
  cnnbp import model.keras -o mine.yaml    a Keras or ONNX classifier -> blueprint
  cnnbp train digits --data digits -o runs/digits
  cnnbp train mnist1d --data mnist1d --epochs 40 -o runs/mnist1d
  cnnbp train --resume runs/digits        continue a run that was interrupted
  cnnbp export runs/digits -o bundles/digits --triton model_repository
  cnnbp validate bundles/digits
  cnnbp serve bundles/ --port 8000        every bundle under bundles/, on 127.0.0.1
  cnnbp predict bundles/digits digit.png
  cnnbp predict --url http://127.0.0.1:8000 --model digits digit.png
  cnnbp predict --url grpc://127.0.0.1:8001 --model digits digit.png
  cnnbp search search.yaml --data digits --trials 20 -o searches/digits
  cnnbp report runs/digits                rewrite the run's report.html
"""

