"""``labels.txt`` of runs, bundles and Triton models: one class name a line (Triton's
``label_filename`` format), so a name may hold spaces, commas, quotes or any letter."""
from __future__ import annotations

from pathlib import Path

from .atomic import write_text
from .errors import ArtifactError


def write_labels(path: str | Path, names) -> None:
    """``labels.txt``: one class name a line (Triton's ``label_filename`` format)."""
    write_text(path, "".join(f"{n}\n" for n in names))


def read_labels(path: str | Path) -> list[str]:
    """Class names, one a line; a name may hold spaces, commas, quotes or any letter."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8").split("\n")[:-1]
    except FileNotFoundError:
        raise ArtifactError(path, "the class names file is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(path, f"the class names file cannot be read as UTF-8: {exc}") \
            from None
