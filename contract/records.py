"""Typed JSON records: read with validation (a bad file is an ``ArtifactError`` naming the file,
the field and what was found), written atomically, each carrying a ``format_version``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .atomic import write_json
from .errors import ArtifactError

MAX_BYTES = 64 << 20  # no record this tool writes comes near; a larger file is not one of ours


class Record(BaseModel):
    """A JSON file of the contract. Subclasses set ``FORMAT``, the version they write and read."""

    model_config = ConfigDict(strict=True, extra="forbid")
    FORMAT: ClassVar[int] = 1

    format_version: int = 1

    @model_validator(mode="before")
    @classmethod
    def _known_version(cls, doc):
        if isinstance(doc, dict):
            version = doc.get("format_version", 1)  # files from before versioning are format 1
            if type(version) is not int or not 1 <= version <= cls.FORMAT:
                raise ValueError(f"format_version {version!r} is not one this cnnbp reads "
                                 f"(1 to {cls.FORMAT}); it was written by another version")
        return doc

    def to_json(self) -> dict:
        """The record as JSON-ready data, as it is written to disk."""
        return self.model_dump(mode="json")

    def write(self, path: str | os.PathLike) -> None:
        """Write the record as JSON to ``path`` atomically."""
        write_json(path, self.to_json())


R = TypeVar("R", bound=Record)


def read_json(path: str | os.PathLike, what: str):
    """The parsed JSON of ``path``; any problem reading it is an ``ArtifactError``."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ArtifactError(path, f"the {what} is {path.stat().st_size:,} bytes, larger than "
                                      f"any this tool writes ({MAX_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(path, f"the {what} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(path, f"the {what} cannot be read: {exc}") from None
    if not text.strip():
        raise ArtifactError(path, f"the {what} is empty (the write was cut short, or the file "
                                  "was emptied)")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ArtifactError(path, f"the {what} is not valid JSON ({exc}); it is damaged or "
                                  "was not written by cnnbp") from None


def parse(cls: type[R], doc, path: str | os.PathLike, what: str) -> R:
    """Validate ``doc`` as ``cls``; a mismatch names the field, the problem and the value."""
    try:
        return cls.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for e in exc.errors()[:3]:
            field = ".".join(str(p) for p in e["loc"]) or "(top level)"
            if e["type"] == "value_error":  # our validators' messages say what they found
                problems.append(f"{field}: {e['msg'].removeprefix('Value error, ')}")
                continue
            found = "" if e["type"] == "missing" else f", found {_short(e.get('input'))}"
            problems.append(f"{field}: {e['msg']}{found}")
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise ArtifactError(path, f"the {what} is not valid: {'; '.join(problems)}{more}") \
            from None


def read(cls: type[R], path: str | os.PathLike, what: str) -> R:
    """Read and validate one record file."""
    return parse(cls, read_json(path, what), path, what)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
