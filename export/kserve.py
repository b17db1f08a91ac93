"""A Triton model repository → a KServe ``InferenceService`` manifest that serves it.

KServe runs ONNX models on its Triton runtime (``kserve-tritonserver``) under the Open
Inference Protocol; the new schema must say ``protocolVersion: v2`` for ONNX, or no runtime is
found. ``storageUri`` names the repository root (the ``--triton`` folder, uploaded by the
user), which holds ``<model>/config.pbtxt`` and ``<model>/1/model.onnx``; requests then go to
``/v2/models/<model>/infer``. See https://kserve.github.io/website/docs/model-serving/predictive-inference/frameworks/onnx
and https://kserve.github.io/website/docs/model-serving/predictive-inference/frameworks/triton
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path

from cnnbp.contract.errors import UsageError

MARK = "# written by cnnbp export --kserve"
STORAGE = "s3://YOUR-BUCKET/PATH/TO/MODEL-REPOSITORY"  # the user fills it in


def service_name(model: str) -> str:
    """A Kubernetes name (DNS-1035 label: lower case, digits, '-', a letter first) for ``model``.

    >>> service_name("CIFAR10_small.v2")
    'cifar10-small-v2'
    >>> service_name("3layers")
    'm-3layers'
    """
    name = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}".rstrip("-")
    return name[:45].rstrip("-")  # KServe's own limit leaves room for its generated suffixes


def memory_gi(model_bytes: int) -> int:
    """GiB a predictor asks for: half a GiB for the server plus the weights three times over
    (the file, ONNX Runtime's copy, its arena), rounded up. A starting point to adjust: it was
    not measured on a cluster."""
    return max(1, math.ceil(0.5 + 3 * model_bytes / 2**30))


def manifest(model: str, model_folder: Path, gpu: bool = False) -> str:
    """The ``InferenceService`` YAML for the Triton model folder ``model_folder``."""
    from ruamel.yaml import YAML

    from .triton import check_model_name
    check_model_name(model, "--kserve")  # it goes into comments unescaped
    size = sum(p.stat().st_size for p in (model_folder / "1").iterdir() if p.is_file())
    memory = f"{memory_gi(size)}Gi"
    limits = {"cpu": "2", "memory": memory} | ({"nvidia.com/gpu": "1"} if gpu else {})
    doc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
           "metadata": {"name": service_name(model)},
           "spec": {"predictor": {"model": {
               "modelFormat": {"name": "onnx"}, "protocolVersion": "v2",
               "runtime": "kserve-tritonserver", "storageUri": STORAGE,
               "resources": {"requests": {"cpu": "1", "memory": memory}, "limits": limits}}}}}
    buf = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(doc, buf)
    body = (f"# Upload the Triton repository (the folder holding {model}/) and set "
            f"storageUri to it;\n# requests: POST /v2/models/{model}/infer with the "
            f"'pixels' tensor of {model}/config.pbtxt (raw values).\n" + buf.getvalue())
    return f"{MARK} (sha256 {_digest(body)} of the lines below)\n" + body


def _digest(body: str) -> str:
    import hashlib
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def _unedited(text: str) -> bool:
    """Whether ``text`` is a manifest as an export wrote it: its first line records the digest
    of the rest, which any edit (a storageUri filled in) changes."""
    first, _, body = text.partition("\n")
    found = re.fullmatch(re.escape(MARK) + r" \(sha256 ([0-9a-f]{16}) of the lines below\)", first)
    return bool(found) and found[1] == _digest(body)


def check_target(path: str | Path) -> None:
    """Refuse a ``--kserve`` file that an export did not write, or that was edited since
    (neither is ever overwritten)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--kserve {path} is a folder; name the YAML file to write")
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        if not text.startswith(MARK):
            raise UsageError(f"--kserve {path} already exists and was not written by cnnbp "
                             "export; export never overwrites it: name a new file or remove it")
        if not _unedited(text):
            raise UsageError(f"--kserve {path} was edited since cnnbp export wrote it (its "
                             "storageUri filled in, say); export never overwrites your edits: "
                             "name a new file, or remove this one to have it written anew")
    if not path.parent.is_dir():
        raise UsageError(f"--kserve {path}: the folder {path.parent} does not exist")


def write_manifest(path: str | Path, model: str, model_folder: Path, gpu: bool = False) -> None:
    """Write the KServe InferenceService for ``model`` (served from ``model_folder``) to ``path``; a
    file export did not write, or one edited since, is refused."""
    from cnnbp.contract.atomic import write_text
    check_target(path)
    write_text(Path(path), manifest(model, model_folder, gpu))
