#!/usr/bin/env bash
# Fetch into .whl/ the wheels that `cnnbp train` under KERAS_BACKEND=jax needs and the GPU
# machine lacks (it has Python 3.12, JAX, PyTorch, NumPy, scikit-learn, matplotlib, Pillow,
# h5py, rich, ml-dtypes, absl-py, attrs and packaging, but no Keras, and no network).
# Versions are those of .venv, so both machines run the same code.
#
#   bash bench/gpu_wheels.sh          # from the repo root, here (needs the network)
#
# On the GPU machine (carry .whl; .git/info/exclude must list /.whl/):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#
# Not carried: tensorflow, tf2onnx, onnxruntime (train under JAX does not import them),
# mnist1d (imported only for --data mnist1d), the serving and search stacks.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(
  keras==3.15.1
  namex==0.1.0             # keras
  optree==0.20.0           # keras (binary)
  lark==1.3.1              # blueprint pattern parser
  ruamel.yaml==0.19.1      # blueprint files
  jsonschema==4.26.0       # blueprint schema
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  rpds-py==2026.9.1        # referencing (binary)
  pydantic==2.14.3         # contract/ records (metrics.json, run state)
  pydantic-core==2.50.4    # pydantic (binary)
  annotated-types==0.8.0
  typing-inspection==0.4.5
  filelock==4.3.2          # locks JAX's compilation cache (builder/jax_cache.py)
  # The machine has typing-extensions, at a version not read; pydantic and pydantic-core
  # need >=4.16.0, and a newer one only adds names, so carrying it is safe for torch too.
  typing-extensions==4.16.0
)

# The device docs' line: CPython 3.12 wheels for x86-64 manylinux; pure-Python ones match too.
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64
           manylinux2014_x86_64 manylinux1_x86_64)
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]/#/--platform=}" -d .whl "${WHEELS[@]}"

# Two versions of one package stop the whole install there: refuse them here.
dupes=$(for f in .whl/*.whl; do basename "$f" | cut -d- -f1 | tr 'A-Z_.' 'a-z--'; done |
        sort | uniq -d)
if [ -n "$dupes" ]; then
  echo "more than one wheel of: $dupes (delete the older ones from .whl/)" >&2
  exit 1
fi
ls -1 .whl
du -sh .whl
