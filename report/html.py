"""A run directory or a bundle → one self-contained ``report.html``.

Every image is inline (``data:`` URIs) and a Content-Security-Policy forbids anything else, so
the page makes no network request, reads the same offline, and prints. Records are read only
through ``cnnbp.contract``.
"""
from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from html import escape
from pathlib import Path

from cnnbp.builder import load_resolved
from cnnbp.builder.analysis import Analysis, fmt_shape
from cnnbp.builder.summary import human
from cnnbp.contract import records
from cnnbp.contract.atomic import write_text
from cnnbp.contract.bundle import MODEL, Bundle, ParityReport
from cnnbp.contract.errors import ArtifactError
from cnnbp.contract.metrics import TrainMetrics
from cnnbp.contract.preprocessing import Preprocessing
from cnnbp.contract.rundir import RunDir

REPORT = "report.html"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif;
       margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th[scope=row] { font-weight: normal; color: #555; }
.scroll { overflow-x: auto; max-width: 100%; }
.counts { display: grid; grid-template-columns: repeat(auto-fill, minmax(7em, 1fr));
          gap: 2px 1.5em; margin: .5em 0; padding: 0; list-style: none; font-size: 13px;
          max-width: 50em; }
.counts li { display: flex; justify-content: space-between; border-bottom: 1px solid #eee; }
.counts b { font-weight: normal; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
figure { margin: 1em 0; break-inside: avoid; } figcaption { color: #555; font-size: 13px; }
.muted { color: #666; } .fail { color: #b00; font-weight: bold; } .ok { color: #070; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } }
"""


def is_bundle(path) -> bool:
    """Whether ``path`` is a bundle (has ``model.onnx``) rather than a run."""
    return (Path(path) / MODEL).is_file()


def data_uri(data: bytes | str, mime: str = "image/png") -> str:
    """``data`` inline as a ``data:`` URI, the only kind of URL the page's CSP lets load."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def figure(data: bytes | str, alt: str, caption: str = "", mime: str = "image/png") -> str:
    """An inline image with its alt text and (escaped) caption."""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="{data_uri(data, mime)}" alt="{escape(alt)}">{cap}</figure>')


def table(head: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    """An HTML table, every cell escaped; ``numeric`` columns right-aligned."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{escape(str(c))}</td>' if i in numeric else f"<td>{escape(str(c))}</td>"
        for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody>' \
        "</table></div>"


def facts(rows: list[list]) -> str:
    """A two-column table of names and values: the names are row headers, no header row."""
    body = "".join(f'<tr><th scope="row">{escape(str(k))}</th><td>{escape(str(v))}</td></tr>'
                   for k, v in rows)
    return f'<div class="scroll"><table><tbody>{body}</tbody></table></div>'


def counts(pairs: list[tuple[str, int]], label: str) -> str:
    """Name and count pairs as a grid that wraps to the page's width (one tall column of 100
    classes was most of a page)."""
    items = "".join(f"<li><span>{escape(str(k))}</span><b>{v:,}</b></li>" for k, v in pairs)
    return f'<ul class="counts" aria-label="{escape(label)}">{items}</ul>'


def run_title(network: str, folder: Path, kind: str) -> str:
    """``digits: training run`` for a folder named ``run`` (or after the net), else the
    folder's name after it: ``digits: training run lr-0.01``."""
    name = folder.name
    return f"{network}: {kind}" + ("" if name in ("run", "bundle", network) else f" {name}")


def page(title: str, sections: list[tuple[str, str]], subtitle: str = "") -> str:
    """The whole self-contained page: CSP, style, title, the sections in order."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(f'<section id="{escape(sid)}">{html}</section>' for sid, html in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(title)}</h1><p class=\"muted\">{escape(subtitle)} · written {when} "
            f"by cnnbp</p>{body}</body></html>\n")


# -- sections shared by runs and bundles --------------------------------------------------------
def network_section(analysis: Analysis) -> str:
    """The layer table and the volume diagram of the net."""
    from .draw import svg
    net = analysis.network
    rows = [["", "INPUT", "", fmt_shape(net.input_shape), "", "", ""]]
    rows += [[s.name, s.type, s.description, fmt_shape(s.output_shape),
              f"{s.params:,}" if s.params else "", human(s.macs) if s.macs else "",
              fmt_shape(s.receptive_field)] for s in analysis.layers]
    rows.append(["total", "", "", "", f"{analysis.total_params:,}", human(analysis.total_macs),
                 ""])
    return ("<h2>Network</h2>"
            + figure(svg(analysis), f"{net.name} volume diagram", "Each box is a stage's output "
                     "volume (front face H×W, channels going back), the red window the kernel "
                     "on its input; bars are fully connected layers.", "image/svg+xml")
            + table(["layer", "type", "what", "output", "params", "MACs", "receptive field"],
                    rows, {4, 5}))


def preprocessing_rows(prep: Preprocessing) -> list[list]:
    """The preprocessing record as name/value rows for ``facts``."""
    return [["input", " x ".join(map(str, prep.input_shape)) + f" ({prep.domain})"],
            ["normalisation", prep.formula],
            ["scale", f"{prep.scale:g}"],
            ["mean", ", ".join(f"{m:.4g}" for m in prep.mean)],
            ["std", ", ".join(f"{s:.4g}" for s in prep.std)],
            ["classes", f"{len(prep.class_names)}: " + ", ".join(prep.class_names[:20])
             + (" …" if len(prep.class_names) > 20 else "")]]


def parity_section(report: ParityReport, where: str) -> str:
    """The export's parity verdict, its cases and variants, for the run's and the bundle's page."""
    verdict = '<span class="ok">passed</span>' if report.passed else \
        '<span class="fail">FAILED</span>'
    cases = table(["inputs", "batch", "max |diff|", "max rel", "top-1 agreement", "passed"],
                  [[c.inputs, c.batch, f"{c.max_abs:.2g}", f"{c.max_rel:.2g}",
                    f"{c.top1_agreement:.4f}", "yes" if c.passed else "NO"]
                   for c in report.cases], {1, 2, 3, 4})
    variants = table(["variant", "kept", "max |diff|", "top-1 agreement", "test accuracy",
                      "change (points)", "note"],
                     [[name, "yes" if v.kept else "no",
                       "" if v.max_abs is None else f"{v.max_abs:.2g}",
                       "" if v.top1_agreement is None else f"{v.top1_agreement:.4f}",
                       "" if v.test_accuracy is None else f"{v.test_accuracy:.4f}",
                       "" if v.accuracy_change_points is None
                       else f"{v.accuracy_change_points:+.2f}",
                       v.error or v.note or variant_note(name, v, report)]
                      for name, v in report.variants.items()], {2, 3, 4, 5})
    acc = "" if report.test_accuracy is None else f", test accuracy {report.test_accuracy:.4f}"
    return (f"<h2>Export: ONNX parity and variants</h2><p>{escape(where)}: ONNX opset "
            f"{report.opset} against Keras, {verdict} (bar {report.atol:g}, max |diff| "
            f"{report.max_abs:.2g}, top-1 agreement {report.top1_agreement:.4f}{acc}); "
            f"providers {escape(', '.join(report.providers))}.</p>" + cases
            + (variants + f'<p class="muted">Each variant\'s max |diff| and top-1 agreement '
               f"against Keras are the worst case over {measured_on(report)}"
               + ("; a row with its own note says what it was measured on instead"
                  if any(v.note for v in report.variants.values()) else "") + ".</p>"
               if report.variants else "<p>No variants were made.</p>"))


def measured_on(report: ParityReport) -> str:
    """The inputs each variant's max |diff| and top-1 agreement are the worst case over: the
    main model's cases (``parity.measure`` runs the same kinds and batches for each variant)."""
    kinds = sorted({c.inputs for c in report.cases}, key=lambda k: k != "random")
    names = [{"random": "random N(0, 1) noise", "held-out": "held-out rows"}.get(k, k)
             for k in kinds]
    return (f"{' and '.join(names)}, batches "
            f"{', '.join(map(str, sorted({c.batch for c in report.cases})))}")


def variant_note(name: str, v, report: ParityReport) -> str:
    """Where a variant's agreement falls short of 1, what it was measured on: random noise
    sits near class boundaries, so int8's agreement there is low and says little."""
    if v.top1_agreement is None or v.top1_agreement >= 1:
        return ""
    note = f"agreement: worst case over {measured_on(report)}, not test data"
    if v.test_accuracy is not None:
        note += "; kept or dropped on its test accuracy (held-out rows), not on this agreement"
    return note


# -- a run directory ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Drawn:
    """A run's pictures its trainer has already drawn (``train.fit`` draws the explain figures
    beside the test evaluation, and the charts once for the run directory and the page)."""

    curves: bytes | None = None
    confusion: bytes | None = None
    explain: list | None = None  # explain.Figure, in the report's order


def run_sections(run: RunDir, explain: bool, drawn: Drawn | None = None
                 ) -> tuple[str, list[tuple[str, str]], str]:
    """(title, sections, subtitle) of a run's page: network, data, training curves, test set and,
    with ``explain``, the explain figures."""
    from . import figures
    drawn = drawn or Drawn()
    compiled = load_resolved(run.path)
    state = run.read_state()
    prep = records.read(Preprocessing, run / "preprocess.json", "preprocessing record")
    sections = [("network", network_section(compiled.analysis))]
    metrics = records.read(TrainMetrics, run / "metrics.json", "metrics") \
        if (run / "metrics.json").is_file() else None
    t = compiled.network.training
    data = [["source", state.data_source or state.data],
            ["split", f"validation {t.validation_split:g} of the training rows"
             + (f"; {metrics.train_samples:,} training rows (after the validation split), "
                f"{metrics.test_samples:,} test rows" if metrics else "")]]
    data += preprocessing_rows(prep)
    html = "<h2>Data</h2>" + facts(data)
    if metrics:
        html += "<p>Test rows per class:</p>" + counts(
            [(n, c.support) for n, c in metrics.per_class.items()], "test rows per class")
    html += training_images(run, prep)
    sections.append(("data", html))
    if state.history:
        best = figures.best_epoch(state.history)
        last = state.history[-1]
        sections.append(("training", "<h2>Training</h2>" + figure(
            drawn.curves or figures.curves(state.history), "training curves",
            f"{state.epoch} epochs ({state.train_seconds:.1f} s), best epoch {best} by "
            f"validation loss{', stopped early' if state.stopped_early else ''}; last learning "
            f"rate {last.get('learning_rate', float('nan')):.3g}; {t.optimizer}, "
            f"{t.schedule} schedule from {t.learning_rate:g}.")))
    if metrics:
        sections.append(("test", test_section(metrics, drawn.confusion)))
    if explain and (run / "model.keras").is_file():
        from .explain import figures as explain_figures
        made = drawn.explain if drawn.explain is not None else explain_figures(run.path)
        html = "<h2>What the network learned</h2>" + "".join(
            figure(f.png, f.title, f"{f.title}: {f.caption}") for f in made)
        sections.append(("explain", html))
    elif metrics and metrics.backend != "tensorflow":
        sections.append(("explain", "<h2>What the network learned</h2><p>This run trained on "
                         f"the {escape(metrics.backend)} backend; the explain figures are drawn "
                         "with TensorFlow: <code>cnnbp report "
                         f"{escape(str(run.path))}</code> adds them.</p>"))
    title = run_title(compiled.network.name, run.path, "training run")
    sub = (f"test accuracy {metrics.test_accuracy:.4f} after {metrics.epochs} epochs on "
           f"{metrics.device}" if metrics else f"{state.epoch} epochs so far (not finished)")
    return title, sections, sub


def training_images(run: RunDir, prep: Preprocessing) -> str:
    """A grid of the training rows kept in ``samples.npz``, shown as the net's input
    denormalised (the first thing to check: orientation, colours, crops); 1-D rows as curves.
    Empty for a run made before the samples were kept."""
    from . import figures
    samples = run.read_samples(prep.input_shape)
    if samples is None or not len(samples[2]):
        return ""
    rows = samples[2][:figures.GRID]
    return figure(figures.training_grid(rows, prep), "training images",
                  f"The first {len(rows)} training rows as the net receives them, denormalised "
                  f"for display ({prep.formula} undone"
                  + (", shown as raw / raw_max" if prep.takes_images else "") + ").")


def test_section(m: TrainMetrics, confusion: bytes | None = None) -> str:
    """The test-set accuracy, the confusion matrix and per-class figures."""
    from . import figures
    rows = []
    for name, c in m.per_class.items():
        f1 = 2 * c.precision * c.recall / (c.precision + c.recall) \
            if c.precision + c.recall else 0.0
        rows.append([name, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{f1:.3f}", c.support])
    return (f"<h2>Test set</h2><p>Accuracy {m.test_accuracy:.4f}, loss {m.test_loss:.4f} over "
            f"{m.test_samples:,} held-out rows.</p>"
            + figure(confusion or figures.confusion(m.confusion_matrix, list(m.per_class)),
                     "confusion matrix", "Rows: true class; columns: predicted.")
            + table(["class", "precision", "recall", "F1", "support"], rows, {1, 2, 3, 4}))


def write_run_report(run_dir, bundle_dir=None, explain: bool = True,
                     drawn: Drawn | None = None) -> Path:
    """Write ``RUN/report.html`` atomically; with ``bundle_dir``, add that export's parity and
    variant results. ``explain`` adds the figures of ``cnnbp explain`` (loads TensorFlow);
    ``drawn`` holds pictures already drawn, not drawn again."""
    run = RunDir(run_dir)
    if run.status() != "run":
        raise ArtifactError(run.path, "is neither a run directory (no state/state.json) nor a "
                                      f"bundle (no {MODEL}); give the folder `cnnbp train -o` "
                                      "or `cnnbp export -o` wrote")
    parity = Bundle(bundle_dir).report() if bundle_dir is not None else None  # refuse early
    title, sections, sub = run_sections(run, explain, drawn)
    if parity is not None:
        sections.append(("export", parity_section(parity, str(bundle_dir))))
    path = run / REPORT
    write_text(path, page(title, sections, sub))
    return path


# -- a bundle -----------------------------------------------------------------------------------
def write_bundle_report(bundle_dir) -> Path:
    """Write ``BUNDLE/report.html`` atomically: drawing, layers, preprocessing, parity."""
    bundle = Bundle(bundle_dir)
    report = bundle.report()
    compiled = load_resolved(bundle.path)
    prep = bundle.preprocessing()
    sections = [("network", network_section(compiled.analysis)),
                ("preprocessing", "<h2>Preprocessing</h2>" + facts(preprocessing_rows(prep))),
                ("export", parity_section(report, f"exported from {report.source}"))]
    title = run_title(compiled.network.name, bundle.path, "ONNX bundle")
    path = bundle.path / REPORT
    write_text(path, page(title, sections, f"ONNX model {MODEL}, input "
                                           f"{report.input_shape}, {report.classes} classes"))
    return path
