"""The search's progress line on stderr: a tqdm bar on a terminal, a line per trial elsewhere."""
from __future__ import annotations

import sys
import threading
import time

TICK_SECONDS = 1.0  # how often the bar's elapsed and time left are redrawn during a trial


class Progress:
    """The search's progress on stderr: trials trained of those wanted, the time taken, the
    time left (by the pace so far, capped by ``--timeout``) and the best so far.

    On a terminal, one bar (tqdm); elsewhere (a CI log, a pipe), one line per trained trial;
    nothing with ``--quiet``.
    """

    def __init__(self, wanted: int, timeout: float | None, quiet: bool):
        from tqdm import tqdm

        from cnnbp.train.progress import on_terminal, width
        self.wanted, self.timeout, self.quiet = wanted, timeout, quiet
        self.trained = self.pruned = self.excluded = 0
        self.best: float | None = None
        self.started = time.perf_counter()
        self.bar = tqdm(total=wanted, file=sys.stderr, **width(),
                        disable=quiet or not on_terminal(),
                        bar_format="search {bar} {n_fmt}/{total_fmt} trained{postfix}")
        # Optuna reports only when a trial ends: the clock on the bar moves on a thread
        self.stopped = threading.Event()
        if not self.bar.disable:
            threading.Thread(target=self._tick, daemon=True, name="search-progress").start()

    def _tick(self) -> None:
        while not self.stopped.wait(TICK_SECONDS):
            self.bar.set_postfix_str(self.status())  # refreshes under tqdm's own lock

    def left(self, elapsed: float) -> float | None:
        """Seconds until the search ends: the trials still wanted at the pace so far, or
        the time to ``--timeout`` when that comes first (None before any trial trained)."""
        done = self.trained + self.pruned
        pace = elapsed / done * max(0, self.wanted - done) if done else None
        until = max(0.0, self.timeout - elapsed) if self.timeout is not None else None
        return min((s for s in (pace, until) if s is not None), default=None)

    def status(self) -> str:
        """The bar's text: elapsed, time left, best accuracy, stopped and excluded counts."""
        from tqdm import tqdm
        elapsed = time.perf_counter() - self.started
        left = self.left(elapsed)
        best = f"{self.best:.4f}" if self.best is not None else "-"
        # time first: a narrow terminal cuts the end of the line
        return (f"{tqdm.format_interval(elapsed)} elapsed, "
                + (f"about {tqdm.format_interval(left)} left" if left is not None
                   else "time left unknown")
                + f", best val acc {best}, {self.pruned} stopped early, {self.excluded} "
                  "excluded statically")

    def __call__(self, study, trial) -> None:
        status = trial.user_attrs.get("status")
        if status == "infeasible":
            self.excluded += 1
        elif status == "pruned":
            self.pruned += 1
        elif status == "trained":
            self.trained += 1
            acc = trial.user_attrs.get("val_accuracy")
            if acc is not None and (self.best is None or acc > self.best):
                self.best = acc
        if self.quiet:
            return
        done = self.trained + self.pruned
        if not self.bar.disable:
            self.bar.set_postfix_str(self.status(), refresh=False)
            self.bar.update(min(done, self.wanted) - self.bar.n)
        elif status in ("trained", "pruned"):
            acc = trial.user_attrs.get("val_accuracy")
            sys.stderr.write(f"trial {trial.number} {status}"
                             + (f" (val acc {acc:.4f})" if acc is not None else "")
                             + f": {done}/{self.wanted} trained, {self.status()}\n")
            sys.stderr.flush()

    def close(self) -> None:
        """Stop the clock's redraws and close the bar."""
        self.stopped.set()
        self.bar.close()
