"""The seed's picture: items of a table drawn in 2-D, coloured by (audience, style) segment, marked by style.

With an items metadata CSV (``item`` plus ``audience`` and ``style`` columns, as
:func:`embedpipe.demo.generator.generate_watch_log` writes) every item of the table found in it is
drawn: at its own coordinates when the table has dim 2 (a 2-dimensional model's space as it is), at
its 2-D PCA projection of the unit vectors otherwise. The report also records how well a straight
line in that plane separates each metadata column (a least-squares linear probe, training
accuracy), a number to go with the picture.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from embedpipe.errors import InputError, SchemaError
from embedpipe.evaluate.projection import pca_2d
from embedpipe.table import EmbeddingTable
from embedpipe.vectors import unit_normalise

log = logging.getLogger(__name__)

ITEM_COLUMN = "item"
COLOUR_COLUMN = "audience"
MARKER_COLUMN = "style"
_MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")


def read_item_metadata(path: str) -> dict[str, dict[str, str]]:
    """``{column: {item: value}}`` for the audience and style columns (the file is catalogue-sized)."""
    import pandas as pd

    try:
        frame = pd.read_csv(path.removeprefix("file://"), dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"item metadata not found: {path} (config key 'item_metadata')") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot read item metadata {path}: {first}") from None
    wanted = [ITEM_COLUMN, COLOUR_COLUMN, MARKER_COLUMN]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise SchemaError(f"item metadata {path} lacks required columns", missing=missing,
                          present=list(map(str, frame.columns)))
    items = frame[ITEM_COLUMN].str.strip()
    return {column: dict(zip(items, frame[column].str.strip(), strict=True)) for column in wanted[1:]}


def linear_probe_accuracy(coords: np.ndarray, labels: np.ndarray) -> float | None:
    """Training accuracy of a one-vs-rest least-squares linear classifier on ``coords`` (None: one class)."""
    classes, codes = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        return None
    design = np.hstack([coords, np.ones((coords.shape[0], 1))])
    targets = np.eye(classes.size)[codes] * 2 - 1
    weights, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return float(np.mean(np.argmax(design @ weights, axis=1) == codes))


def item_projection(table: EmbeddingTable, metadata: dict[str, dict[str, str]], path: str) -> dict[str, Any]:
    """Coordinates, labels and probe accuracies of the table's items found in ``metadata``."""
    colour = metadata[COLOUR_COLUMN]
    rows = [row for row, key in enumerate(table.keys) if key in colour]
    result: dict[str, Any] = {"metadata": path, "items_in_metadata": len(rows), "items": len(table)}
    if table.dim < 2:
        result["note"] = f"the table has dim {table.dim}; an item map needs dim >= 2"
    elif len(rows) < 2:
        result["note"] = f"{len(rows)} of the table's items are in {path}; an item map needs at least 2"
    if "note" in result:
        log.warning("item map skipped: %s", result["note"])
        return result
    keys = [table.keys[r] for r in rows]
    if table.dim == 2:
        coords = table.vectors[rows].astype(np.float64)
        result["axes"] = "the table's own 2 dimensions"
    else:
        coords, explained = pca_2d(unit_normalise(table.vectors[rows]))
        result["axes"] = "2-D PCA of the unit vectors"
        result["explained_variance"] = [float(v) for v in explained]
    labels = {column: np.array([metadata[column].get(k, "") for k in keys], dtype=object)
              for column in (COLOUR_COLUMN, MARKER_COLUMN)}
    result["linear_probe_accuracy"] = {c: linear_probe_accuracy(coords, v) for c, v in labels.items()}
    result["keys"] = keys
    result["coordinates"] = [[round(float(x), 6), round(float(y), 6)] for x, y in coords]
    result[COLOUR_COLUMN] = labels[COLOUR_COLUMN].tolist()
    result[MARKER_COLUMN] = labels[MARKER_COLUMN].tolist()
    return result


def plot_item_map(projection: dict[str, Any], path: str, *, title: str) -> None:
    """Draw the items into a PNG at ``path``: one colour per (audience, style) segment, marker = style.

    Each segment's name is also written at the centre of its items, so the picture reads without
    the legend: where the embedding learned the segments, each name sits on its own cloud.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    coords = np.asarray(projection["coordinates"], dtype=np.float64).reshape(-1, 2)
    colours = np.asarray(projection[COLOUR_COLUMN], dtype=object)
    markers = np.asarray(projection[MARKER_COLUMN], dtype=object)
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
    marker_of = {value: _MARKERS[i % len(_MARKERS)] for i, value in enumerate(sorted(set(markers)))}
    segments = [(c, m) for c in sorted(set(colours)) for m in sorted(set(markers))]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+")
        figure = Figure(figsize=(9, 8), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for si, (colour, marker) in enumerate(segments):
            chosen = (colours == colour) & (markers == marker)
            if not chosen.any():
                continue
            shade = palette[si % len(palette)]
            name = f"{colour} / {marker}"
            axes.scatter(coords[chosen, 0], coords[chosen, 1], s=18, alpha=0.6, color=shade,
                         marker=marker_of[marker], label=f"{name} ({int(chosen.sum())})")
            centre = coords[chosen].mean(axis=0)
            axes.annotate(name, centre, ha="center", va="center", fontsize=11, fontweight="bold", color=shade,
                          bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "edgecolor": shade})
        axes.legend(title=f"{COLOUR_COLUMN} / {MARKER_COLUMN}", fontsize=8)
        axes.set_title(title)
        axes.set_xlabel("dimension 1" if projection.get("axes", "").startswith("the table") else "PC1")
        axes.set_ylabel("dimension 2" if projection.get("axes", "").startswith("the table") else "PC2")
        axes.grid(True, alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, format="png", metadata={"Software": None})
    log.info("wrote item map of %d items to %s", coords.shape[0], path)


def render_item_map_markdown(projection: dict[str, Any], file_name: str) -> str:
    lines = ["## Item map", ""]
    if "note" in projection:
        return "\n".join(lines + [f"Skipped: {projection['note']}", ""])
    probe = projection["linear_probe_accuracy"]
    accuracy = ", ".join(f"{name} {'n/a' if value is None else f'{100 * value:.1f}%'}" for name, value in probe.items())
    lines += [
        f"{len(projection['keys'])} items of `{projection['metadata']}` drawn on {projection['axes']}, coloured by "
        f"({COLOUR_COLUMN}, {MARKER_COLUMN}) segment and marked by {MARKER_COLUMN}. A straight line in this plane "
        f"separates them with accuracy {accuracy} (least-squares linear probe, training accuracy).",
        "",
        f"![item map]({file_name})",
        "",
    ]
    return "\n".join(lines)
