"""history.png and pareto.png: the legend sits outside the axes (it covered points at the
lower right, where a search's best trials land), and trial numbers are whole."""
import os
from pathlib import Path

import pytest

from cnnbp.search.outputs import Row, history_figure, pareto_figure, plot_history, plot_pareto

PNG = b"\x89PNG\r\n\x1a\n"


def table(n: int) -> list[Row]:
    rows = [Row(i, "pruned" if i % 3 == 2 else "trained",
                {"val_accuracy": 0.5 + 0.4 * i / max(1, n - 1), "macs": 1e5 * (i + 1)}, {})
            for i in range(n)]
    return rows + [Row(n, "infeasible", {}, {})]


def boxes(fig, ax):
    renderer = fig.canvas.get_renderer()
    return ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)


@pytest.mark.parametrize("n", [2, 9])
@pytest.mark.parametrize("chart", ["history", "pareto"])
def test_legend_is_outside_the_axes(chart, n):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig, ax = history_figure(table(n)) if chart == "history" else pareto_figure(table(n), "macs")
    FigureCanvasAgg(fig).draw()
    legend, axes = boxes(fig, ax)
    assert legend.x0 >= axes.x1, (legend, axes)
    assert legend.x1 <= fig.bbox.x1 + 1, "the legend is cut off at the figure's edge"


@pytest.mark.parametrize("n", [2, 3, 9])
def test_trial_ticks_are_whole_numbers(n):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig, ax = history_figure(table(n))
    FigureCanvasAgg(fig).draw()
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_charts_are_written(tmp_path):
    folder = Path(os.environ.get("CNNBP_SHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    plot_history(table(2), folder / "history.png")
    plot_pareto(table(9), folder / "pareto.png", "macs")
    for name in ("history.png", "pareto.png"):
        assert (folder / name).read_bytes()[:8] == PNG
