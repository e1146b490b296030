"""PNG plots of evaluation results (matplotlib, imported lazily; Agg canvas, no pyplot state)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from faceforge._fs import atomic_write
from faceforge.errors import ParameterError


def _figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike, dpi: int) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write(path, buf.getvalue())


def confusion_matrix_png(report: dict[str, Any], path: str | os.PathLike, *, normalize: bool = True,
                         title: str | None = None, dpi: int = 100) -> Path:
    """Draw the confusion matrix of a :func:`~faceforge.heads.metrics.classification_report`.

    Args:
        report: the report (needs ``confusion_matrix`` and ``classes``).
        path: the PNG to write (atomically).
        normalize: colour by the share of each true class (row), so small classes show too;
            cells are labelled with counts when there are at most 30 classes.
        title: plot title (default: accuracy and balanced accuracy).
        dpi: resolution.

    Returns:
        The path written.
    """
    try:
        cm = np.asarray(report["confusion_matrix"], dtype=np.float64)
        classes = [str(c) for c in report["classes"]]
    except (KeyError, TypeError) as e:
        raise ParameterError(
            f"report must be a classification_report() dict with 'confusion_matrix' and 'classes' ({e!r})."
        ) from e
    k = len(classes)
    if cm.shape != (k, k):
        raise ParameterError(f"confusion_matrix must be {k}x{k} (one row per class), but got shape {cm.shape}.")
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    side = float(np.clip(0.45 * k + 2.5, 4, 24))
    fig = _figure((side + 1.2, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(cm.max(), 1))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class" if normalize else "count")
    ticks = np.arange(k)
    fs = 9 if k <= 20 else 6
    ax.set_xticks(ticks, classes, rotation=90 if k > 6 else 0, fontsize=fs)
    ax.set_yticks(ticks, classes, fontsize=fs)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=fs,
                            color="white" if shown[i, j] > 0.5 * (1 if normalize else cm.max()) else "black")
    if title is None and "accuracy" in report:
        title = f"accuracy {report['accuracy']:.3f}, balanced {report.get('balanced_accuracy', float('nan')):.3f}"
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


def learning_curve_png(train_sizes: Sequence[float], val_scores: Any, path: str | os.PathLike, *,
                       train_scores: Any = None, metric: str = "accuracy", title: str | None = None,
                       dpi: int = 100) -> Path:
    """Plot a score against the number of training images.

    Args:
        train_sizes: ``(m,)`` training-set sizes (images, or images per class).
        val_scores: ``(m,)`` validation scores, or ``(m, r)`` over ``r`` repeats/folds (mean
            line and a band of one standard deviation).
        path: the PNG to write (atomically).
        train_scores: optional scores on the training data, same shape as ``val_scores``.
        metric: the y-axis label.
        title: plot title.
        dpi: resolution.

    Returns:
        The path written.
    """
    sizes = np.asarray(train_sizes, dtype=np.float64).ravel()
    series = [("validation", val_scores, "tab:blue")]
    if train_scores is not None:
        series.append(("training", train_scores, "tab:orange"))
    fig = _figure((6, 4))
    ax = fig.add_subplot(1, 1, 1)
    for name, scores, colour in series:
        s = np.asarray(scores, dtype=np.float64)
        s = s[:, None] if s.ndim == 1 else s
        if s.ndim != 2 or s.shape[0] != len(sizes):
            raise ParameterError(
                f"{name} scores must have shape ({len(sizes)},) or ({len(sizes)}, repeats) to match "
                f"train_sizes, but got {np.shape(scores)}."
            )
        mean, sd = s.mean(axis=1), s.std(axis=1)
        ax.plot(sizes, mean, "o-", color=colour, label=name)
        if s.shape[1] > 1:
            ax.fill_between(sizes, mean - sd, mean + sd, color=colour, alpha=0.2)
    ax.set_xlabel("training images")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)
