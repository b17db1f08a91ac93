"""The one exception type for blueprint mistakes, and the problems it carries."""
from __future__ import annotations

from dataclasses import dataclass

from cnnbp.contract.errors import CnnbpError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a blueprint.

    Attributes:
        path: key path inside the blueprint, e.g. ``layers.CONV.stride`` or
            ``stage2_conv1`` for a layer of the expanded net.
        message: what is wrong and what would be valid.
        line: 1-based line in the source file, when known.
        column: 1-based column in the source file, when known.
    """

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def render(self, source: str | None = None) -> str:
        """``file:line:column: key.path: message`` (``<blueprint>`` without a file)."""
        where = source or "<blueprint>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f"{self.path}: " if self.path else ""
        return f"{where}: {key}{self.message}"


class BlueprintError(CnnbpError):
    """A user mistake in a blueprint or an override; never a bug in the tool.

    The CLI prints ``str(error)`` without a traceback and exits 2.
    """

    def __init__(self, problems: list[Problem] | Problem, source: str | None = None):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        self.source = source
        super().__init__(self._text())

    def _text(self) -> str:
        lines = [p.render(self.source) for p in self.problems]
        if len(lines) == 1:
            return lines[0]
        head = f"{self.source or '<blueprint>'}: {len(lines)} problems"
        return head + "\n" + "\n".join("  " + line for line in lines)

    def with_source(self, source: str) -> "BlueprintError":
        """Return the same problems attributed to ``source`` (a file name)."""
        return BlueprintError(self.problems, source)


def check_keras_path(path: str) -> None:
    """Refuse a model path that is not a ``.keras`` file (before any model is built)."""
    from pathlib import Path
    if Path(path).suffix != ".keras":
        raise BlueprintError(Problem("--output", f"{path!r} must end in .keras (the Keras v3 "
                                     "format that load_model reloads in safe mode)"))
