"""Blueprint reference + ``--set`` + ``--search-set`` → (blueprint data, checked space).

The blueprint itself need not compile with its own ``vars:``: only its members do. So the
schema and the ``search:`` section are checked here, each candidate later.
"""
from __future__ import annotations

from cnnbp.builder.errors import BlueprintError, Problem
from cnnbp.builder.schema import validate
from cnnbp.builder.search_schema import SECTION_KEYS
from cnnbp.builder.search_space import SearchSpace, parse
from cnnbp.builder.source import Source, apply_overrides, read, shown_item


def load(ref: str, overrides: list[str], search_sets: list[str]) -> tuple[dict, SearchSpace]:
    """The blueprint ``ref`` with ``--set`` and ``--search-set`` applied, and its checked
    search space. Raises BlueprintError, located in the file, when either is wrong or the
    space is missing."""
    src = read(ref)
    src = apply_overrides(src, overrides)
    src = apply_search_sets(src, search_sets)
    try:
        problems = validate(src.data)
        if problems:
            raise BlueprintError(problems)
        space = parse(src.data)
    except BlueprintError as exc:
        raise src.error(exc) from None
    if space is None or not space.axes:
        raise BlueprintError(Problem("search", "is missing: add a `search:` section with a "
                                     "`space:` (e.g. `space: {N: [1, 3], FC.units: "
                                     "[64, 128, 256]}`) or give entries with "
                                     "--search-set 'N=[1, 3]'"), src.name)
    return src.data, space


def apply_search_sets(src: Source, items: list[str]) -> Source:
    """``KEY=VALUE`` into ``search:``: a section key (max_params) or a space entry (FC.units).

    A space key may itself hold dots, so the value is parsed by ``apply_overrides`` under a
    scratch key and placed here by hand.
    """
    if not items or not isinstance(src.data, dict):
        return src
    data = dict(src.data)
    section = dict(data.get("search") or {})
    space = dict(section.get("space") or {})
    overridden = dict(src.overridden)
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().removeprefix("space.")
        if not sep or not key:
            raise BlueprintError(Problem("--search-set", f"{item!r} must look like KEY=VALUE, "
                                         "e.g. max_params=50000 or 'N=[1, 3]'"), src.name)
        scratch = f"value={text}"
        try:
            value = apply_overrides(Source({}, src.name), [scratch]).data["vars"]["value"]
        except BlueprintError as exc:  # its words, under this flag and the item as given
            why = exc.problems[0].message.removeprefix(f"{shown_item(scratch)}: ")
            raise BlueprintError(Problem("--search-set", f"{shown_item(item)}: {why}"),
                                 src.name) from None
        if key in SECTION_KEYS and key != "space":
            section[key], path = value, f"search.{key}"
        else:
            space[key], path = value, f"search.space.{key}"
        overridden[path] = f"--search-set {item}"
    if space:
        section["space"] = space
    data["search"] = section
    return Source(data, src.name, src.positions, overridden)
