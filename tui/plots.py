"""Line charts of training curves (textual-plotext): several series on one shared y-scale.

A ``CurvePlot`` keeps the series it was given and draws them when Textual renders it (which
is when they changed or the widget was resized, not on every poll). Each series is reduced to
at most one point per cell of the plot's width first (model.downsample), so a run with
thousands of epochs costs as much to draw as one with a hundred.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from .model import best_point, downsample, shared_range

# Colours that read on dark and light themes, in order: seed 1, 2, ... (or experiment A, B).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 160, 255), (255, 140, 0), (80, 200, 80), (220, 80, 220), (230, 200, 0),
    (0, 200, 200), (240, 80, 80), (160, 130, 255),
)
Y_LABEL_WIDTH = 6  # "0.693┤": what the y-axis takes of the width (the rest is the canvas)
Y_TICKS = 4


def colour(i: int) -> tuple[int, int, int]:
    return PALETTE[i % len(PALETTE)]


def rich_colour(i: int) -> str:
    r, g, b = colour(i)
    return f"rgb({r},{g},{b})"


def legend(names: Sequence[str], suffixes: Mapping[str, str] | None = None) -> Text:
    """"━ seed 42  ━ seed 43 ...", each name in the colour its line has in the plots."""
    text = Text()
    for i, name in enumerate(names):
        if i:
            text.append("  ")
        text.append("━━ ", style=rich_colour(i))
        text.append(name + ((suffixes or {}).get(name, "")))
    return text


def epoch_ticks(n: int, width: int) -> list[int]:
    """Whole epochs 1..n for the x-axis, about one label per 8 cells."""
    if n <= 1:
        return [1]
    most = max(2, width // 8)
    step = 1
    for candidate in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        step = candidate
        if n / candidate <= most:
            break
    ticks = [1] + list(range(step, n + 1, step))
    return sorted(set(t for t in ticks if t <= n))


class CurvePlot(PlotextPlot):
    """``metric``'s curves, one line per series (seed, or experiment), on one y-scale.

    ``y_range`` is the scale drawn (it covers every value of every series); ``best`` is the
    best value as (series, epoch, value)."""

    DEFAULT_CSS = """
    CurvePlot {
        width: 1fr;
        height: 11;
    }
    """

    def __init__(self, metric: str, higher_is_better: bool, *, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.metric, self.higher_is_better = metric, higher_is_better
        self.series: dict[str, list[float | None]] = {}
        self.y_range: tuple[float, float] | None = None
        self.best: tuple[str, int, float] | None = None
        self.drawn_points = 0  # points handed to plotext in the last draw (tests: downsampling)
        self._key: object = None

    def show(self, series: Mapping[str, Sequence[float | None]], title: str | None = None) -> None:
        """Draw ``series`` (name -> one value per epoch, None where there is none); a no-op
        when they are what is drawn already."""
        key = (title, tuple((name, tuple(values)) for name, values in series.items()))
        if key == self._key:
            return
        self._key = key
        self.series = {name: list(values) for name, values in series.items()}
        self.y_range = shared_range(self.series)
        self.best = best_point(self.series, self.higher_is_better)
        self._title = title
        self.refresh()

    def title_text(self, width: int = 1000) -> str:
        """The metric and its best value, as long as ``width`` allows (plotext drops a title
        wider than the plot)."""
        if getattr(self, "_title", None):
            return self._title[:width]
        if self.best is None:
            return self.metric
        name, epoch, value = self.best
        many = len(self.series) > 1
        short_name = name.replace("seed ", "s") if name.startswith("seed ") else name
        for text in (f"{self.metric} · best {value:.3f} ({name + ', ' if many else ''}epoch {epoch})",
                     f"{self.metric} · best {value:.3f} ({short_name + ' ' if many else ''}ep {epoch})",
                     f"{self.metric} · best {value:.3f}", self.metric):
            if len(text) <= width - 2:
                return text
        return self.metric[:width]

    def render(self) -> RenderResult:
        plt = self.plt
        plt.clear_figure()
        plt.title(self.title_text(self.size.width))
        width = max(10, self.size.width - Y_LABEL_WIDTH)
        n = max((len(v) for v in self.series.values()), default=0)
        self.drawn_points = 0
        if self.y_range is None or n == 0:
            plt.xticks([], [])
            plt.yticks([], [])
            return super().render()
        lo, hi = self.y_range
        for i, values in enumerate(self.series.values()):
            xs, ys = downsample(values, width * 2)  # braille: two dots a cell across
            if not xs:
                continue
            self.drawn_points += len(xs)
            if len(xs) == 1:
                plt.scatter(xs, ys, marker="braille", color=colour(i))
            else:
                plt.plot(xs, ys, marker="braille", color=colour(i))
        plt.ylim(lo, hi)
        plt.xlim(1, max(n, 2))
        ticks = [lo + (hi - lo) * k / (Y_TICKS - 1) for k in range(Y_TICKS)]
        digits = 3 if hi - lo >= 0.01 else 4
        plt.yticks(ticks, [f"{t:.{digits}f}" for t in ticks])
        xt = epoch_ticks(n, width)
        plt.xticks(xt, [str(t) for t in xt])
        return super().render()
