"""A finished (or stopped) study → results.csv, best.yaml, history.png, pareto.png, a table.

Everything is read back from the study, not from this process's memory, so the files are
the same whichever worker writes them and include every worker's trials.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnbp.contract.atomic import write_text

from .proposer import STATUS, records

FINAL = "cnnbp.final"  # study user attribute: ``--final-epochs``'s retraining (``final``)
COLUMNS = ("trial", "status", "reason", "val_accuracy", "test_accuracy", "params", "macs",
           "activation_memory", "latency_ms", "check_ms", "seconds", "run_dir")


@dataclass(frozen=True)
class Row:
    """One trial as ``results.csv`` shows it."""
    number: int | None  # None for a record (a candidate excluded before it became a trial)
    status: str  # trained | pruned | infeasible | repeat | failed | running | waiting
    attrs: dict
    params: dict       # Optuna's parameter name -> value

    @property
    def accuracy(self) -> float | None:
        """The validation accuracy; None for a trial that did not train."""
        return self.attrs.get("val_accuracy")


# Optuna's states for trials that did not end in the objective: a killed worker's trial
# ("failed"; retried once by another), one being trained, one queued for its retry
STATES = {"FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


RECORDS = ("infeasible", "repeat")  # FAIL trials that are records, never trained


def rows(study) -> list[Row]:
    """Every trial of ``study`` as a Row, with cnnbp's status (trained, pruned, repeat) or,
    for one that did not finish, Optuna's state (failed, running, waiting), then every
    record of an infeasible candidate (no trial number). A failed trial's reason says why
    and which trial retried it."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial"): t.number for t in trials
               if t.system_attrs.get("failed_trial") is not None}
    out = []
    for t in trials:
        attrs = dict(t.user_attrs)
        status = attrs.get(STATUS)
        if t.state.name == "FAIL" and status not in RECORDS:
            status = "failed"
            if "reason" not in attrs:  # no exception: its worker went silent
                again = retried.get(t.number)
                recovered = again is not None and str(
                    trials[again].user_attrs.get("reason", "")).startswith("recovered")
                attrs["reason"] = ("its worker stopped sending heartbeats (killed or cut "
                                   "off); " + ("not retried again" if again is None else
                                               f"its finished run recovered as trial {again}"
                                               if recovered else f"retried as trial {again}"))
        elif t.state.name not in ("COMPLETE", "PRUNED", "FAIL"):
            status = STATES.get(t.state.name, t.state.name.lower())
        out.append(Row(t.number, status or t.state.name.lower(), attrs, dict(t.params)))
    for rec in records(study):
        attrs = {k: v for k, v in rec.items() if k not in ("params", "distributions")}
        out.append(Row(None, rec[STATUS], attrs, dict(rec["params"])))
    return out


def best(study, table: list[Row]) -> Row | None:
    """The trained trial with the best validation accuracy (on the Pareto front, for two
    objectives: the front's most accurate member); among equal accuracies — a small
    validation set gives many — the lowest validation loss, then the earliest trial."""
    trained = [r for r in table if r.status == "trained"]
    if len(study.directions) > 1:
        front = {t.number for t in study.best_trials}
        trained = [r for r in trained if r.number in front] or trained
    return max(trained, key=lambda r: (r.accuracy, -r.attrs.get("val_loss", math.inf),
                                       -r.number), default=None)


def write_all(study, out: Path, objectives: tuple[str, ...]) -> Row | None:
    """Write every output file; return the best row."""
    table = rows(study)
    write_csv(table, out / "results.csv")
    top = best(study, table)
    if top is not None:
        write_best(top, out / "best.yaml", final_record(study, top))
    plot_history(table, out / "history.png")
    plot_pareto(table, out / "pareto.png", "latency_ms" if "latency" in objectives else "macs")
    return top


def write_csv(table: list[Row], path: Path) -> None:
    """``results.csv``: the fixed columns, then one per sampled parameter."""
    names = sorted({k for r in table for k in r.params})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(list(COLUMNS) + names)
    for r in table:
        cells = ["" if r.number is None else r.number, r.status] + \
            [r.attrs.get(c, "") for c in COLUMNS[2:]]
        w.writerow(cells + [r.params.get(n, "") for n in names])
    write_text(path, buf.getvalue())


def final_record(study, top: Row | None) -> dict | None:
    """The study's finished ``--final-epochs`` retraining of ``top``, if there is one."""
    record = study.user_attrs.get(FINAL)
    if top is not None and record and record.get("status") == "done" \
            and record["trial"] == top.number:
        return record
    return None


def final_line(final: dict) -> str:
    """What the final retraining gave, in a line."""
    return (f"final: retrained on training + validation data for {final['epochs']} epochs, "
            f"test accuracy {final['test_accuracy']:.4f} ({final['run_dir']})")


def write_best(row: Row, path: Path, final: dict | None = None) -> None:
    """The winning trial's resolved blueprint, as ``cnnbp train`` writes blueprint.yaml;
    its header gives the trial's accuracies and, after ``--final-epochs``, the final run's."""
    from ruamel.yaml import YAML
    buf = io.StringIO()
    buf.write(f"# cnnbp search: trial {row.number}, validation accuracy "
              f"{row.accuracy:.4f}, test accuracy {row.attrs.get('test_accuracy', 0):.4f}\n")
    if final is not None:
        buf.write(f"# {final_line(final)}\n")
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    yaml.dump(row.attrs["blueprint"], buf)
    write_text(path, buf.getvalue())


def _figure():
    from cnnbp.report.figures import subplots
    return subplots(figsize=(7.6, 4.2))


def _finish(fig, ax):
    """The legend right of the axes, where it covers no point."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=9)
    fig.tight_layout()  # counts the legend in: the axes shrink to leave it room
    return fig, ax


def plot_history(table: list[Row], path: Path) -> None:
    """``history.png``: validation accuracy per trial."""
    history_figure(table)[0].savefig(path, dpi=110)


def history_figure(table: list[Row]):
    """Validation accuracy per trial, pruned trials marked, and the best so far."""
    from matplotlib.ticker import MaxNLocator
    fig, ax = _figure()
    done = [r for r in table if r.status in ("trained", "pruned") and r.accuracy is not None]
    for status, marker in (("trained", "o"), ("pruned", "x")):
        pts = [r for r in done if r.status == status]
        ax.scatter([r.number for r in pts], [r.accuracy for r in pts], marker=marker,
                   label=f"{status} ({len(pts)})")
    best_so_far, xs, ys = None, [], []
    for r in done:
        if r.status == "trained" and (best_so_far is None or r.accuracy > best_so_far):
            best_so_far = r.accuracy
        if best_so_far is not None:
            xs.append(r.number)
            ys.append(best_so_far)
    ax.step(xs, ys, where="post", label="best so far")
    skipped = sum(r.status == "infeasible" for r in table)
    ax.set(xlabel="trial", ylabel="validation accuracy",
           title=f"search history ({skipped} candidates excluded statically, not trained)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are whole numbers
    return _finish(fig, ax)


def pareto_front(points: list[tuple[float, float, Any]]) -> list:
    """Points (accuracy up, cost down) that no other point beats on both; the third item
    is carried along."""
    return [p for p in points
            if not any(q[0] >= p[0] and q[1] <= p[1] and (q[0], q[1]) != (p[0], p[1])
                       for q in points)]


def plot_pareto(table: list[Row], path: Path, cost: str) -> None:
    """``pareto.png``: accuracy against ``cost`` (``macs`` or ``latency_ms``)."""
    pareto_figure(table, cost)[0].savefig(path, dpi=110)


def pareto_figure(table: list[Row], cost: str):
    """Accuracy against cost for the trained trials, the Pareto front joined and numbered."""
    fig, ax = _figure()
    pts = [(r.accuracy, r.attrs[cost], r.number) for r in table
           if r.status == "trained" and r.accuracy is not None and cost in r.attrs]
    ax.scatter([p[1] for p in pts], [p[0] for p in pts], alpha=0.5, label="trained")
    front = sorted(pareto_front(pts), key=lambda p: p[1])
    ax.plot([p[1] for p in front], [p[0] for p in front], "o-", color="C3",
            label="Pareto front")
    for p in front:
        ax.annotate(str(p[2]), (p[1], p[0]), textcoords="offset points", xytext=(4, 4))
    if pts and cost == "macs":
        ax.set_xscale("log")
    ax.margins(x=0.06, y=0.1)  # room for the trial numbers by the outermost points
    ax.set(xlabel="MACs per image" if cost == "macs" else "ONNX Runtime batch-1 latency (ms)",
           ylabel="validation accuracy", title="accuracy against cost")
    return _finish(fig, ax)


def summary(table: list[Row], top: Row | None, limit: int = 5, final: dict | None = None) -> str:
    """The table printed at the end: the best trained trials, the counts, and the final
    retraining's test accuracy when there was one."""
    trained = sorted((r for r in table if r.status == "trained"),
                     key=lambda r: -r.accuracy)[:limit]
    names = sorted({k for r in trained for k in r.params})
    head = ["trial", "val acc", "test acc", "params", "MACs"] + names
    body = [[str(r.number), f"{r.accuracy:.4f}", f"{r.attrs.get('test_accuracy', 0):.4f}",
             f"{r.attrs.get('params', 0):,}", f"{r.attrs.get('macs', 0):,}"]
            + [_short(r.params.get(n, "")) for n in names] for r in trained]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(x.rjust(w) for x, w in zip(line, widths)) for line in [head] + body]
    counts = {s: sum(r.status == s for r in table)
              for s in ("trained", "pruned", "infeasible", "repeat", "failed", "running",
                        "waiting")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n)
                 + (f"; best: trial {top.number}" if top else "; no trial finished training"))
    if final is not None:
        lines.append(final_line(final))
    return "\n".join(lines)


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
