"""Write files and directories so that readers never see them half-written, and so that a
writer killed at any moment leaves nothing behind that the next writer cannot tidy or finish.

A write of ``NAME`` goes to the sibling ``.NAME.<pid>.tmp`` and is renamed over ``NAME``. A
directory that already exists is swapped in two renames: ``NAME`` → ``.NAME.<pid>.old``, then
the temporary → ``NAME``. Before each write, ``recover`` looks for what a dead process (its pid
no longer runs) left for the same target: it finishes a swap cut between its two renames,
and removes stale temporaries.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<kind>tmp|old)(?P<suffix>[^/]*)$")


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: leave its files alone
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def leftovers(target: str | os.PathLike) -> dict[str, list[Path]]:
    """Temporaries (``tmp``) and swapped-out copies (``old``) of ``target`` left by dead writers."""
    target = Path(target)
    found: dict[str, list[Path]] = {"tmp": [], "old": []}
    if not target.parent.is_dir():
        return found
    prefix = f".{target.name}."
    with os.scandir(target.parent) as entries:
        for entry in entries:
            if not entry.name.startswith(prefix):
                continue
            m = _LEFTOVER.match(entry.name)
            if m and m["name"] == target.name and not _running(int(m["pid"])):
                found[m["kind"]].append(Path(entry.path))
    return found


def recover(target: str | os.PathLike) -> list[str]:
    """Finish or tidy what killed writers of ``target`` left; return one line per action.

    A swapped-out ``.old`` copy with no ``target`` means the kill fell between the swap's two
    renames: the new copy in the same writer's ``.tmp`` was complete (the swap starts only after
    the write succeeded), so the swap is finished; without it, the old copy is put back.
    """
    target = Path(target)
    found = leftovers(target)
    done = []
    for old in found["old"]:
        if not target.exists() and not target.is_symlink():
            pid = _LEFTOVER.match(old.name)["pid"]
            new = [t for t in found["tmp"] if _LEFTOVER.match(t.name)["pid"] == pid]
            if new:
                os.replace(new[0], target)
                found["tmp"].remove(new[0])
                done.append(f"finished an interrupted replacement of {target}")
            else:
                os.replace(old, target)
                done.append(f"restored {target} from an interrupted replacement")
                continue
        _remove(old)
        done.append(f"removed {old.name}, left by an interrupted write")
    for tmp in found["tmp"]:
        _remove(tmp)
        done.append(f"removed {tmp.name}, left by an interrupted write")
    return done


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "",
                keep_old: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of ``target``; rename it over ``target`` if the block succeeds.

    ``suffix`` is appended to the temporary name when a writer insists on an extension
    (Keras wants ``.keras``). Works for files and directories. A directory that is replaced is
    removed, or moved to ``keep_old`` when given.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        if target.is_dir() and tmp.is_dir():
            old = target.with_name(f".{target.name}.{os.getpid()}.old")
            os.replace(target, old)
            os.replace(tmp, target)
            if keep_old is not None:
                os.replace(old, keep_old)
            else:
                shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text(target: str | os.PathLike, text: str) -> None:
    """Replace ``target`` with ``text`` (UTF-8) atomically: a reader sees the old file or the new
    one, never a part."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, data) -> None:
    """Replace ``target`` with ``data`` as indented UTF-8 JSON, atomically."""
    write_text(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
