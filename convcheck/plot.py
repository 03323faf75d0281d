"""`--plot FILE`: a PNG showing, for every result that is not equal, where and how it differs.

One row of four panels per result: the reference, the output, |output - reference| on a
log scale with the elements beyond the error bound outlined (and the bound marked on the
colour bar), and the residual after the explanation divided by its bound (<= 1 means
reproduced). `save_model_plot` draws a `convcheck model` walk instead: each matched layer's
input and output drift on a log scale, the first divergence marked. Needs matplotlib
(`pip install 'convcheck[plot]'`), imported only here and with the non-interactive Agg
backend, so it works on CI machines without a display.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from .errors import InputError
from .files import write_atomic
from .formats._text import REFERENCE
from .vocabulary import Verdict, describe

_MISSING = "--plot needs matplotlib: pip install 'convcheck[plot]'"


def require_matplotlib() -> None:
    """Raise `InputError` with the install command when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(_MISSING) from None


def plot_format(path: os.PathLike) -> str:
    """The image format `path`'s extension names ('png', 'svg', 'pdf', ...), checked up front.

    Raises `InputError` for a missing or unsupported extension (e.g. fig.txt), so `--plot`
    is refused before any backend runs rather than after all the work.
    """
    require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    extension = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if extension not in supported:
        what = f"'.{extension}' is not an image format" if extension else "has no extension"
        raise InputError(f"--plot '{os.fspath(path)}': {what}; end the name with .png (or one of "
                         f"{', '.join('.' + e for e in sorted(supported))})")
    return extension


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm
    except ImportError:
        raise InputError(_MISSING) from None
    return plt, LogNorm


def _channel(array: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if array is None:
        return None
    array = np.asarray(array, dtype=np.float64)
    return array[:, :, 0] if array.ndim == 3 else array


def _headline(title: str, diagnosis) -> str:
    baseline = diagnosis.baseline
    if diagnosis.verdict is Verdict.EXPLAINED:
        return f"{title}: explained by {describe(diagnosis.explanation, baseline)}"
    if diagnosis.verdict is Verdict.EQUAL:
        return f"{title}: equal"
    stats = diagnosis.stats
    detail = []
    if stats.mismatched is not None:
        detail.append(f"{stats.mismatched} of {stats.total} elements differ from the reference")
    if diagnosis.closest is not None and diagnosis.closest.changed_fields(baseline):
        left = f" leaves {stats.mismatched_after} beyond the bound" if stats.mismatched_after is not None else ""
        detail.append(f"the closest candidate ({describe(diagnosis.closest, baseline)}){left}")
    if diagnosis.where:
        detail.append(f"mismatch: {diagnosis.where}")
    if diagnosis.reason:
        detail.append(diagnosis.reason)
    return f"{title}: UNEXPLAINED" + (f" — {'; '.join(detail)}" if detail else "")


def _text_panel(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _image_panel(fig, ax, data, title, *, cmap="viridis", norm=None, vmin=None, vmax=None, label=None):
    shown = ax.imshow(data, cmap=cmap, norm=norm, vmin=None if norm else vmin, vmax=None if norm else vmax,
                      interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    bar.ax.tick_params(labelsize=7)
    if label:
        bar.set_label(label, fontsize=7)
    return bar


# Beyond this many pixel edges an outline is drawn as a contour instead: as many
# segments as that take longer to draw than the rest of a row, and at 100 dpi a panel
# shows a few hundred pixels across anyway.
_MAX_EDGES = 20_000


def _outline(ax, mask: np.ndarray, color: str) -> None:
    """Draw the outline of the True pixels of `mask` (pixel edges, so single pixels show)."""
    if not mask.any() or mask.all():
        return
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    # For each side, the True pixels whose neighbour on that side is False: one edge each,
    # as ((x0, y0), (x1, y1)) offsets from the pixel's centre.
    sides = ((padded[:-2, 1:-1], ((-0.5, -0.5), (0.5, -0.5))),    # above
             (padded[2:, 1:-1], ((-0.5, 0.5), (0.5, 0.5))),       # below
             (padded[1:-1, :-2], ((-0.5, -0.5), (-0.5, 0.5))),    # left
             (padded[1:-1, 2:], ((0.5, -0.5), (0.5, 0.5))))       # right
    edges = [(np.nonzero(inner & ~neighbour), ends) for neighbour, ends in sides]
    if sum(rows.size for (rows, _), _ in edges) > _MAX_EDGES:
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=color, linewidths=1.2)
        return
    segments = []
    for (rows, cols), ((x0, y0), (x1, y1)) in edges:
        segments.append(np.stack([np.stack([cols + x0, rows + y0], axis=-1),
                                  np.stack([cols + x1, rows + y1], axis=-1)], axis=1))
    from matplotlib.collections import LineCollection
    ax.add_collection(LineCollection(np.concatenate(segments), colors=color, linewidths=1.2))


def _row(fig, subfig, title: str, diagnosis, plt, LogNorm) -> None:
    axes = subfig.subplots(1, 4)
    arrays = diagnosis.arrays
    channels = ""
    if arrays is not None and np.ndim(arrays.output) == 3 and np.shape(arrays.output)[2] > 1:
        channels = f"  [channel 0 of {np.shape(arrays.output)[2]} shown]"
    subfig.suptitle(_headline(title, diagnosis) + channels, fontsize=11,
                    color="firebrick" if diagnosis.verdict is Verdict.UNEXPLAINED else "black")
    if arrays is None:
        for ax in axes:
            _text_panel(ax, "arrays not kept\n(diagnose with keep_arrays=True)")
        return

    output = _channel(arrays.output)
    reference = _channel(arrays.reference)
    reproduction = _channel(arrays.reproduction)
    bound_before = _channel(arrays.bound_before)
    bound_after = _channel(arrays.bound_after)

    shared = [a for a in (reference, output) if a is not None]
    vmin = min(float(a.min()) for a in shared)
    vmax = max(float(a.max()) for a in shared)
    if reference is not None:
        _image_panel(fig, axes[0], reference, REFERENCE, vmin=vmin, vmax=vmax)
    else:
        _text_panel(axes[0], f"no reference of the output's shape {output.shape}:\n"
                             f"the output was sized with another padding")
        axes[0].set_title(REFERENCE, fontsize=9)
    _image_panel(fig, axes[1], output, "output", vmin=vmin, vmax=vmax)

    if reference is not None and reference.shape == output.shape:
        delta = np.abs(output - reference)
        beyond = delta > bound_before if bound_before is not None else np.zeros_like(delta, dtype=bool)
        bound_level = float(np.max(bound_before)) if bound_before is not None else None
        top = float(delta.max())
        if top > 0:
            # The scale starts a decade below the bound, so everything within it is black
            # and everything beyond it glows, however many decades apart they are.
            floor = max((bound_level if bound_level else top) / 10, np.finfo(float).tiny)
            norm = LogNorm(vmin=floor, vmax=max(top, bound_level or top))
            bar = _image_panel(fig, axes[2], np.maximum(delta, floor), "", cmap="magma", norm=norm,
                               label="|output - reference|")
            if bound_level:
                bar.ax.axhline(bound_level, color="cyan", linewidth=2)
                bar.set_label("|output - reference|\n(cyan line: error bound)", fontsize=7)
        else:
            _image_panel(fig, axes[2], delta, "", cmap="magma", label="|output - reference|")
        _outline(axes[2], beyond, "cyan")
        count = int(beyond.sum())
        axes[2].set_title(f"|Δ|: max {top:.3g}; {count}/{delta.size} beyond bound"
                          + (" (outlined)" if 0 < count < delta.size else ""), fontsize=9)
    else:
        _text_panel(axes[2], "|Δ| needs a reference\nof the output's shape")
        axes[2].set_title("|output - reference|", fontsize=9)

    if reproduction is not None and bound_after is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(output - reproduction) / bound_after
        ratio = np.nan_to_num(ratio, nan=0.0, posinf=np.finfo(float).max)
        worst = float(ratio.max())
        what = "explanation" if diagnosis.verdict is Verdict.EXPLAINED else "closest candidate"
        verdict = "all within bound" if worst <= 1 else f"{int((ratio > 1).sum())} beyond bound (outlined)"
        # Clipped at 2: the question is only "within the bound (green) or not (red)".
        bar = _image_panel(fig, axes[3], np.minimum(ratio, 2.0),
                           f"after {what}: |residual| / bound\nmax {worst:.2g}: {verdict}",
                           cmap=plt.get_cmap("RdYlGn_r"), vmin=0.0, vmax=2.0,
                           label="|residual| / bound (clipped at 2)\n≤ 1: reproduced")
        bar.ax.axhline(1.0, color="black", linewidth=1.5)
        _outline(axes[3], ratio > 1, "black")
    else:
        _text_panel(axes[3], "no candidate to reproduce it\n" + (diagnosis.reason or ""))
        axes[3].set_title("residual after explanation", fontsize=9)


def plot_items(result: Any) -> list[tuple[str, Any]]:
    """(title, diagnosis) pairs from a list of them, a `Diagnosis`, a `CompareReport` or a `CheckReport`."""
    if hasattr(result, "verdict"):                       # a Diagnosis
        return [("output", result)]
    if hasattr(result, "cases"):                         # a CheckReport
        return [(f"{case.name} / {outcome.name}", outcome.diagnosis)
                for case in result.cases for outcome in case.results
                if outcome.diagnosis is not None and getattr(outcome, "layer", None) is None]
    if hasattr(result, "results") and hasattr(result, "settings"):   # a CompareReport
        return [(row.backend, row.diagnosis) for row in result.results if row.diagnosis is not None]
    return list(result)


class _RowArea:
    """One row of the figure's grid, with the two calls `_row` makes of it."""

    def __init__(self, fig, cell):
        self.fig, self.cell = fig, cell

    def subplots(self, rows: int, cols: int):
        inner = self.cell.subgridspec(rows, cols, wspace=0.35)
        return [self.fig.add_subplot(inner[0, j]) for j in range(cols)]

    def suptitle(self, text: str, **kwargs):
        box = self.cell.get_position(self.fig)
        # Above the panels' own (two-line) titles.
        return self.fig.text(0.5, box.y1 + 0.5 / self.fig.get_figheight(), text, ha="center", va="bottom",
                             **kwargs)


# At most this many rows are drawn (a row takes a fraction of a second; a figure of 170
# rows would take minutes and outgrow what a PNG viewer opens): a last row names the rest.
MAX_ROWS = 40


def _save_figure(fig, plt, path: os.PathLike) -> None:
    """Write `fig` to `path` atomically in the format its suffix names, then close it; a path
    that cannot be written is bad input (exit 2), named with the option."""
    image_format = plot_format(path)
    try:
        write_atomic(path, lambda temporary: fig.savefig(temporary, format=image_format, dpi=100))
    except OSError as exc:
        raise InputError(f"--plot '{path}': cannot be written ({exc.strerror or exc}); check the folder exists") \
            from None
    finally:
        plt.close(fig)


def save_plot(items: Any, path: os.PathLike) -> None:
    """Write a PNG to `path`: one row of four panels per (title, diagnosis) that is not equal.

    `items` is a list of (title, diagnosis) pairs, or a `Diagnosis`, `CompareReport` or
    `CheckReport` (see `plot_items`). Diagnoses must carry their arrays
    (`keep_arrays=True`). When every diagnosis is equal, a small figure says so. Beyond
    `MAX_ROWS` results that are not equal, the first `MAX_ROWS` are drawn and a note says
    how many were left out. Raises `InputError` when matplotlib is missing or the file
    cannot be written.
    """
    plt, LogNorm = _pyplot()
    items = plot_items(items)
    rows = [(title, d) for title, d in items if d.verdict is not Verdict.EQUAL]
    left_out = rows[MAX_ROWS:]
    rows = rows[:MAX_ROWS]
    if not rows:
        fig = plt.figure(figsize=(6, 1.6))
        count = len(items)
        what = "the result is equal" if count == 1 else f"all {count} results are equal"
        fig.text(0.5, 0.5, f"convcheck: {what} to the reference\n(nothing to plot)", ha="center", va="center", fontsize=12, color="darkgreen")
    else:
        heights = [4.0] * len(rows) + ([1.0] if left_out else [])
        fig = plt.figure(figsize=(17, sum(heights)))
        # A fixed grid, not constrained layout: laying out every tick label of 160 panels
        # took most of a second a row.
        grid = fig.add_gridspec(len(heights), 1, height_ratios=heights, left=0.03, right=0.97,
                                top=1 - 0.8 / sum(heights), bottom=0.3 / sum(heights), hspace=0.4)
        for index, (title, diagnosis) in enumerate(rows):
            _row(fig, _RowArea(fig, grid[index]), title, diagnosis, plt, LogNorm)
        if left_out:
            names = ", ".join(title for title, _ in left_out[:8]) + (", ..." if len(left_out) > 8 else "")
            note = fig.add_subplot(grid[-1])
            note.axis("off")
            note.text(0.5, 0.5, f"{len(left_out)} more result{'s' if len(left_out) != 1 else ''} not equal "
                      f"to the reference, not drawn (the plot shows the first {MAX_ROWS}): {names}\n"
                      "see the report for each", ha="center", va="center", fontsize=11, color="firebrick",
                      wrap=True, transform=note.transAxes)
    _save_figure(fig, plt, path)


# How `save_model_plot` draws each verdict of a layer's own computation: (colour, marker, legend).
_VERDICT_MARKS = {"equal": ("tab:green", "o", "equal"), "explained": ("tab:orange", "s", "explained"),
                  "unexplained": ("firebrick", "X", "unexplained"), "not_judged": ("grey", "D", "not judged")}


def _drift_value(entry: Optional[dict]) -> Optional[float]:
    """A drift's max |port - original|, None when there is none to draw (shapes differ, not finite)."""
    if entry is None or entry.get("max_abs_diff") is None:
        return None
    return float(entry["max_abs_diff"])


def _layer_label(layer, longest: int = 28) -> str:
    name = layer.original["name"]
    return f"{layer.index} {name if len(name) <= longest else name[:longest - 1] + '…'}"


def _model_figure(report, plt):
    """The drift figure of a walk: one point per matched layer, in the original's order."""
    from .formats.model_text import divergence_line, models_name

    layers = list(report.layers)
    drifts = [(_drift_value(layer.input_drift), _drift_value(layer.output_drift)) for layer in layers]
    values = [v for pair in drifts for v in pair if v is not None]
    if not layers or not values:
        fig = plt.figure(figsize=(7, 1.8))
        why = ("one model: each layer is judged against its own declared computation, so there is no drift to draw"
               if report.single else "no matched layer has a drift to draw (their tensors' shapes differ)")
        fig.text(0.5, 0.5, f"convcheck model: {models_name(report)}\n{why}", ha="center", va="center", fontsize=11,
                 wrap=True)
        return fig
    positive = [v for v in values if v > 0]
    # Exact zeros have no place on a log scale: drawn hollow at a floor a decade below the least drift.
    floor = min(positive) / 10 if positive else 1e-16
    fig, ax = plt.subplots(figsize=(max(7.0, 0.45 * len(layers) + 3), 4.8))
    x = np.arange(len(layers))
    for column, (what, style) in enumerate((("input drift", "--"), ("output drift", "-"))):
        series = np.array([np.nan if pair[column] is None else max(pair[column], floor) for pair in drifts])
        ax.plot(x, series, style, color="silver" if column == 0 else "dimgrey", linewidth=1, zorder=1,
                label=f"{what} (max |port - original|)")
        if column == 0:
            ax.scatter(x, series, s=14, color="silver", zorder=2)
    outputs = [pair[1] for pair in drifts]
    for verdict, (colour, marker, label) in _VERDICT_MARKS.items():
        chosen = [i for i, layer in enumerate(layers) if layer.verdict == verdict and outputs[i] is not None]
        if not chosen:
            continue
        heights = [max(outputs[i], floor) for i in chosen]
        faces = ["none" if outputs[i] == 0 else colour for i in chosen]
        ax.scatter([x[i] for i in chosen], heights, s=64 if verdict != "equal" else 36, marker=marker,
                   facecolors=faces, edgecolors=colour, linewidths=1.5, zorder=3,
                   label=f"layer verdict: {label}")
    if any(v == 0 for v in values):
        ax.axhline(floor, color="lightgrey", linewidth=0.8, linestyle=":", zorder=0)
        ax.text(x[-1], floor, " 0 (drawn here, hollow)", va="bottom", ha="right", fontsize=7, color="grey")
    ax.set_yscale("log")
    first = report.first_divergence()
    if first is not None:
        at = layers.index(first)
        ax.axvline(at, color="firebrick", linewidth=1.5, linestyle="--", zorder=0)
        ax.annotate("first divergence", (at, 1.0), xycoords=("data", "axes fraction"), xytext=(4, -12),
                    textcoords="offset points", color="firebrick", fontsize=8, va="top")
    ax.set_xticks(x)
    ax.set_xticklabels([_layer_label(layer) for layer in layers], rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("matched layers, in the original's order")
    ax.set_ylabel("max |port - original| (log scale)")
    ax.set_title(f"convcheck model: {models_name(report)}\nfirst divergence: {divergence_line(report)}", fontsize=9)
    ax.grid(True, which="major", axis="y", color="whitesmoke")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def save_model_plot(report, path: os.PathLike) -> None:
    """Write a figure of a `convcheck model` walk to `path`: each matched layer's input and output
    drift (max |port - original| of the captured tensors) on a log scale, in the original's
    order, the first divergence marked by a dashed line, each layer's verdict on its own
    computation shown by the marker (equal, explained, unexplained, not judged). A drift of
    exactly 0 is drawn hollow at a floor below the least one; a layer whose tensors' shapes
    differ has no point. The single-model form has no drift: a small figure says so.
    Raises `InputError` when matplotlib is missing or the file cannot be written."""
    plt, _ = _pyplot()
    fig = _model_figure(report, plt)
    _save_figure(fig, plt, path)


__all__ = ["plot_format", "plot_items", "require_matplotlib", "save_model_plot", "save_plot"]
