"""JAX's persistent compilation cache, on for every run under ``KERAS_BACKEND=jax``.

A JAX run compiles each weight initializer and its training step (twice: the full batch and
the last, partial one) before its first epoch ends: about 11 of the 25 s of a digits run on
the 2-core CPU. JAX can keep compiled programs on disk, keyed by the program, its compile
options, the devices and the JAX version, so a rerun or a resume loads them instead
(docs/benchmarks.md, issue 28). The learning-rate schedule is part of the training step, so
another epoch count, rate or schedule (a search's trials among them) compiles its step again
and loads only the initializers of the shapes it shares. The programs are the same, so the
numbers are too: a test holds a run that loads them to the loss and weights of the run that
compiled them.

Where: ``CNNBP_JAX_CACHE`` (a folder; ``off``; ``on`` for the default), else
``$XDG_CACHE_HOME/cnnbp/jax``, else ``~/.cache/cnnbp/jax``. A ``JAX_COMPILATION_CACHE_DIR`` the
user set wins, with JAX's own settings, as does a folder already set in ``jax.config``. The
folder is capped at ``MAX_BYTES``, least recently used first out; that cap also makes JAX lock
the folder (``filelock``) around each read and write, so concurrent runs (search workers, test
workers) never read a half-written entry.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "CNNBP_JAX_CACHE"
OFF = ("off", "0", "false", "no", "none")
ON = ("on", "1", "true", "yes")  # the default folder, not a folder named "1"
MAX_BYTES = 2 << 30
# JAX's default caches only programs that took 1 s or more to compile: the two training steps
# of a digits run, not its ~90 initializers, which cost 5 s more per run (docs/benchmarks.md).
MIN_COMPILE_SECONDS = 0.0


def folder() -> Path | None:
    """The cache folder this process would use, or None when ``CNNBP_JAX_CACHE`` is off."""
    chosen = os.environ.get(ENV, "").strip()
    if chosen.lower() in OFF:
        return None
    if chosen and chosen.lower() not in ON:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnbp" / "jax"


@functools.cache  # once per process: a folder it cannot use is named in one warning
def enable() -> Path | None:
    """Point JAX's persistent compilation cache at ``folder()`` (before the first compile);
    the folder in use, or None when off, left to the user's own setting, or not writable."""
    import jax
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return None
    where = folder()
    if where is None:
        return None
    try:
        where.mkdir(parents=True, exist_ok=True)
        # a folder that exists but cannot be written: JAX would warn at every program
        tempfile.TemporaryFile(dir=where).close()
    except OSError as exc:  # a read-only home: the run goes on, compiling as before
        log.warning("%s: cannot keep the JAX compilation cache there (%s); compiling without "
                    "it (set %s to a writable folder, or to off)", where, exc.strerror, ENV)
        return None
    try:
        import filelock  # noqa: F401  (JAX locks the folder with it once a size cap is set)
        cap = MAX_BYTES
    except ImportError:
        cap = -1
        log.warning("filelock is not installed: the JAX compilation cache in %s is neither "
                    "capped nor locked; install filelock before running jobs side by side",
                    where)
    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", cap)
    return where


def in_use() -> str | None:
    """The folder JAX keeps compiled programs in for this process (``enable``'s or the user's
    own ``JAX_COMPILATION_CACHE_DIR``); None when no cache is on, and on TensorFlow."""
    jax = sys.modules.get("jax")
    return (jax.config.jax_compilation_cache_dir or None) if jax is not None else None
