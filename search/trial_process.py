"""A search's trials trained in a child process, retired after ``RECYCLE`` trials.

Keras does not give back what a trained model took: with ``clear_session`` and a garbage
collection after every net, a process that builds, fits and drops nets grows by about 12 MB a
net, and a hand-written Keras loop grows the same (docs/benchmarks.md, "search overhead"), so
a long search in one process would grow without end. The trials therefore train in a child
process (spawned: TensorFlow is never forked), which loads the data once and is replaced after
``RECYCLE`` trials; the search's own process never imports TensorFlow.

The child never touches the study. Over a pipe it sends each epoch's validation accuracy and
waits for the parent's answer (the pruner's, through ``trial.report`` and ``should_prune``),
asks whether a finished trial could be the study's best (then it keeps the model), and sends
the result. The trial's folder is written by the child (``trial_training.train_in_child``). A child
that dies (killed, out of memory) is an error naming its exit code; a parent that dies leaves
the child reading an ended pipe, and it exits.
"""
from __future__ import annotations

import logging
import multiprocessing
import traceback
from typing import Callable

from .trial_training import Outcome, Task

log = logging.getLogger(__name__)

# Trials per child: its start (Python, TensorFlow, the data) costs about 4 s on this 2-core
# machine, and it grows about 12 MB a trial (bench/search_overhead.py).
RECYCLE = 10


class TrialError(RuntimeError):
    """Training in the child raised, or the child died."""


class TrialProcess:
    """The parent's handle on the child that trains trials (started on first use)."""

    def __init__(self, recycle: int = RECYCLE):
        self.recycle = recycle
        self.process = None
        self.conn = None
        self.done = 0
        self.spare = None  # (process, conn): the successor, started during the last trial

    def run(self, task: Task, should_stop: Callable[[int, float], bool],
            could_win: Callable[[float], bool], last: bool = False) -> Outcome:
        """Train ``task`` in the child: ``should_stop(epochs, val_accuracy)`` after each
        epoch, ``could_win(val_accuracy)`` once it has trained; return its ``Outcome``.
        ``last``: no task follows (the child's successor is not started)."""
        if self.process is None:
            self.start()
        self.done += 1
        self.conn.send(("train", task))
        if self.done >= self.recycle and self.spare is None and not last:
            # the successor imports TensorFlow while this, the child's last trial, trains
            self.spare = self._spawn()
        while True:
            try:
                kind, *body = self.conn.recv()
            except (EOFError, OSError):
                code = self._retire()
                raise TrialError(f"the process training the trial died (exit code {code}); "
                                 "if it was killed for memory, lower training.batch_size or "
                                 "the space's sizes (max_activation_memory)") from None
            if kind == "epoch":
                self.conn.send(should_stop(*body))
            elif kind == "could_win":
                self.conn.send(could_win(*body))
            elif kind == "done":
                if self.done >= self.recycle:
                    self._retire()
                return body[0]
            else:  # "error": the child's exception, as text
                raise TrialError(body[0])

    def start(self) -> None:
        """Start the child, or take the successor already started; it imports TensorFlow at
        once, while the caller goes on."""
        self.process, self.conn = self.spare or self._spawn()
        self.spare = None
        self.done = 0

    @staticmethod
    def _spawn():
        ctx = multiprocessing.get_context("spawn")  # TensorFlow's threads do not survive fork
        conn, child = ctx.Pipe()
        process = ctx.Process(target=_serve, args=(child,), daemon=True,
                              name="cnnbp-search-trials")
        process.start()
        child.close()
        return process, conn

    def _retire(self) -> int | None:
        """Let the current child go; return its exit code."""
        process, conn, self.process, self.conn = self.process, self.conn, None, None
        if process is None:
            return None
        code = _stop(process, conn, busy=self.done > 0)
        self.done = 0
        return code

    def close(self) -> None:
        """Let the child and any successor go (call between trials)."""
        self._retire()
        if self.spare is not None:
            _stop(*self.spare, busy=False)
            self.spare = None


def _stop(process, conn, busy: bool) -> int | None:
    """Tell a child to exit and wait for it; one that trained nothing (it may still be
    importing TensorFlow) is terminated, as it has nothing to finish."""
    if not busy:
        process.terminate()
    try:
        conn.send(("exit",))
    except (BrokenPipeError, OSError):
        pass
    process.join(timeout=30)
    conn.close()
    return process.exitcode


def _serve(conn) -> None:
    """The child's loop: train each task it is sent, until told to exit or the pipe ends."""
    from cnnbp.builder.tf_env import import_keras
    import_keras()  # TensorFlow's start-up noise filtered, as in the parent
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes, one a trial
    from .trial_training import train_in_child
    fitters: dict = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return  # the parent is gone
        if message[0] == "exit":
            return
        task = message[1]
        try:
            outcome = train_in_child(task, _Parent(conn), fitters)
        except BaseException as exc:  # sent to the parent, which raises it as a TrialError
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            try:
                conn.send(("error", detail))
            except (BrokenPipeError, OSError):
                return
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                return
            continue
        conn.send(("done", outcome))


class _Parent:
    """The child's side of the pipe, as the trial sees it: a trial-like object for the
    pruning callback (``report`` then ``should_prune``) and the could-win question."""

    def __init__(self, conn):
        self.conn = conn
        self.stop = False

    def report(self, value: float, step: int) -> None:
        self.conn.send(("epoch", step, value))
        self.stop = bool(self.conn.recv())

    def should_prune(self) -> bool:
        return self.stop

    def could_win(self, accuracy: float) -> bool:
        self.conn.send(("could_win", accuracy))
        return bool(self.conn.recv())
