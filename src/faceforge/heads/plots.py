"""PNG plots of evaluation results: scikit-learn's display classes drawn on an Agg canvas.

matplotlib is imported lazily; figures are built with :class:`matplotlib.figure.Figure`, never
through pyplot's global state, so plotting is safe from threads and servers.
"""

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

    Raises:
        ParameterError: the report has no (square) confusion matrix.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

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
    disp = ConfusionMatrixDisplay(shown, display_labels=classes)
    disp.plot(ax=ax, cmap="Blues", include_values=k <= 30, colorbar=False, xticks_rotation=90 if k > 6 else 0,
              im_kw={"vmin": 0, "vmax": 1 if normalize else max(cm.max(), 1)})
    fig.colorbar(disp.im_, ax=ax, fraction=0.046, pad=0.04, label="share of true class" if normalize else "count")
    fs = 9 if k <= 20 else 6
    if disp.text_ is not None:  # label cells with counts (blank for 0), coloured by the cell
        for (i, j), text in np.ndenumerate(disp.text_):
            text.set_text(f"{int(cm[i, j])}" if cm[i, j] else "")
            text.set_fontsize(fs)
    ax.tick_params(labelsize=fs)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title is None and "accuracy" in report:
        title = f"accuracy {report['accuracy']:.3f}, balanced {report.get('balanced_accuracy', float('nan')):.3f}"
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


def learning_curve_png(train_sizes: Sequence[float], val_scores: Any, path: str | os.PathLike, *,
                       train_scores: Any = None, metric: str = "accuracy", title: str | None = None,
                       dpi: int = 100) -> Path:
    """Plot a score against the number of training images (scikit-learn's ``LearningCurveDisplay``).

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

    Raises:
        ParameterError: scores whose shape does not match ``train_sizes``.
    """
    from sklearn.model_selection import LearningCurveDisplay

    sizes = np.asarray(train_sizes, dtype=np.float64).ravel()

    def as_2d(name: str, scores: Any) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        s = s[:, None] if s.ndim == 1 else s
        if s.ndim != 2 or s.shape[0] != len(sizes):
            raise ParameterError(
                f"{name} scores must have shape ({len(sizes)},) or ({len(sizes)}, repeats) to match "
                f"train_sizes, but got {np.shape(scores)}."
            )
        return s

    val = as_2d("validation", val_scores)
    trn = as_2d("training", train_scores) if train_scores is not None else None
    fig = _figure((6, 4))
    ax = fig.add_subplot(1, 1, 1)
    disp = LearningCurveDisplay(train_sizes=sizes, train_scores=trn if trn is not None else val, test_scores=val,
                                score_name=metric)
    repeats = val.shape[1] > 1 or (trn is not None and trn.shape[1] > 1)
    disp.plot(ax=ax, score_type="both" if trn is not None else "test",
              std_display_style="fill_between" if repeats else None, line_kw={"marker": "o"})
    lines = disp.lines_ if isinstance(disp.lines_, list) else [disp.lines_]
    names = ["training", "validation"] if trn is not None else ["validation"]
    for line, name in zip(lines, names):
        line.set_label(name)
    ax.set_xlabel("training images")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)
