"""Labelled 2-D PCA plots of chosen keys, and of key pairs joined by arrows (PNG, matplotlib's Agg canvas).

PCA runs on the unit-normalised vectors, since cosine is the similarity every other part of the
report uses; the plot is a picture for people, not a metric. Labels may be Korean or any other
script: a CJK font is used when one is installed, otherwise missing glyphs render as boxes (their
warnings are silenced) instead of failing the job.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Fonts with Hangul/CJK glyphs, tried (if installed) after DejaVu Sans for characters it lacks.
CJK_FONTS = (
    "Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Malgun Gothic", "AppleGothic", "Apple SD Gothic Neo",
    "Source Han Sans KR", "Noto Sans CJK JP", "Noto Sans CJK SC", "UnDotum", "Baekmuk Gulim", "WenQuanYi Zen Hei",
)


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto the first two principal axes (SVD of the centred matrix).

    Returns (coordinates (n, 2), explained-variance ratios (2,)). Signs are fixed so the largest
    loading of each axis is positive, which makes the picture reproducible across BLAS builds.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"a 2-D projection needs at least 2 rows and 2 columns, got shape {x.shape}")
    centred = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(2), np.argmax(np.abs(vt[:2]), axis=1)])
    signs[signs == 0] = 1.0
    coords = u[:, :2] * s[:2] * signs
    total = float(np.sum(s**2))
    explained = (s[:2] ** 2) / total if total > 0 else np.zeros(2)
    return coords, explained


def _font_families() -> list[str]:
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(name for name in CJK_FONTS if name in installed)]


@contextmanager
def _png_figure(path: str, title: str, explained: np.ndarray | None) -> Iterator[Any]:
    """Axes of a titled 10x8 in. figure saved to ``path`` as a PNG on exit, in fonts that have Hangul.

    The Agg canvas needs no display; no ``Software`` metadata, so the same plot gives the same bytes.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with warnings.catch_warnings(), matplotlib.rc_context({"font.family": _font_families()}):
        # "Glyph 54620 (\N{HANGUL SYLLABLE HAN}) missing from font(s) DejaVu Sans." and similar.
        warnings.filterwarnings("ignore", message=r"Glyph \d+")
        warnings.filterwarnings("ignore", message=r".*missing from (current )?font")
        figure = Figure(figsize=(10, 8), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        yield axes
        if explained is not None:
            axes.set_xlabel(f"PC1 ({100 * explained[0]:.1f}% of variance)")
            axes.set_ylabel(f"PC2 ({100 * explained[1]:.1f}% of variance)")
        axes.set_title(title)
        axes.grid(True, alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, format="png", metadata={"Software": None})


def plot_projection(
    labels: Sequence[str],
    coords: np.ndarray,
    path: str,
    *,
    title: str,
    explained: np.ndarray | None = None,
    highlight: Sequence[bool] | None = None,
) -> None:
    """Draw labelled points and save a PNG at ``path``; ``highlight`` marks e.g. the probes."""
    with _png_figure(path, title, explained) as axes:
        marks = np.zeros(len(labels), dtype=bool) if highlight is None else np.asarray(highlight, dtype=bool)
        axes.scatter(coords[~marks, 0], coords[~marks, 1], s=14, color="tab:blue", alpha=0.7)
        if marks.any():
            axes.scatter(coords[marks, 0], coords[marks, 1], s=30, color="tab:red")
        for label, (x, y), marked in zip(labels, coords, marks, strict=True):
            axes.annotate(
                label, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=9 if marked else 8,
                color="tab:red" if marked else "black",
            )
    log.info("wrote projection of %d keys to %s", len(labels), path)


def plot_pair_arrows(
    pairs: Sequence[tuple[str, str]],
    coords: np.ndarray,
    path: str,
    *,
    title: str,
    explained: np.ndarray | None = None,
    roles: tuple[str, str] = ("source", "target"),
) -> None:
    """Draw an arrow from each pair's first key to its second and save a PNG at ``path``.

    ``coords`` holds the first keys' points, then the second keys' (``2 * len(pairs)`` rows, in
    ``pairs`` order). This is word2vec's country -> capital picture: when a relation is learned,
    the arrows run roughly parallel and the two roles sit on opposite sides of the plane.
    """
    coords = np.asarray(coords, dtype=np.float64)
    n = len(pairs)
    if coords.shape != (2 * n, 2):
        raise ValueError(f"pair arrows need {2 * n} points (first keys, then second keys), got shape {coords.shape}")
    with _png_figure(path, title, explained) as axes:
        start, end = coords[:n], coords[n:]
        axes.scatter(start[:, 0], start[:, 1], s=24, color="tab:blue", label=roles[0])
        axes.scatter(end[:, 0], end[:, 1], s=24, color="tab:red", label=roles[1])
        for (first, second), (x0, y0), (x1, y1) in zip(pairs, start, end, strict=True):
            axes.annotate("", xy=(x1, y1), xytext=(x0, y0),
                          arrowprops={"arrowstyle": "->", "color": "0.55", "lw": 0.9, "shrinkA": 3, "shrinkB": 3})
            axes.annotate(first, (x0, y0), xytext=(3, 3), textcoords="offset points", fontsize=8, color="tab:blue")
            axes.annotate(second, (x1, y1), xytext=(3, 3), textcoords="offset points", fontsize=8, color="tab:red")
        axes.legend(fontsize=9)
    log.info("wrote %d %s -> %s arrows to %s", n, roles[0], roles[1], path)


def projection_summary(labels: Sequence[str], coords: np.ndarray, explained: np.ndarray) -> dict[str, Any]:
    """The numbers behind the plot, for report.json."""
    return {
        "keys": list(labels),
        "explained_variance": [float(v) for v in explained],
        "coordinates": [[float(x), float(y)] for x, y in coords],
    }
