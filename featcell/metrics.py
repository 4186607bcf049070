"""Metrics for cell classification, cell counting and instance segmentation.

Every metric is a plain function on arrays. Classification and counting metrics are thin,
well-named wrappers over :mod:`sklearn.metrics` where scikit-learn has them; segmentation
metrics work on instance label images (0 = background, any other integer is one object).
:func:`get_scorer` turns a metric into a scikit-learn scorer for ``cross_validate`` or
``GridSearchCV``, and :func:`bootstrap_ci` gives a confidence interval that resamples
*groups* (images, wells) rather than cells.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from sklearn import metrics as skm
from sklearn.utils import check_random_state

__all__ = [
    "SCORERS",
    "accuracy",
    "aggregated_jaccard_index",
    "balanced_accuracy",
    "bootstrap_ci",
    "classification_summary",
    "confusion_matrix",
    "counting_summary",
    "detection_scores",
    "dsb_average_precision",
    "f1",
    "foreground_dice",
    "game",
    "grid_counts",
    "foreground_jaccard",
    "get_scorer",
    "iou_matrix",
    "mae",
    "mape",
    "mean_signed_error",
    "object_dice",
    "object_jaccard",
    "panoptic_quality",
    "pearson_r",
    "precision",
    "r2",
    "recall",
    "rmse",
    "roc_auc",
    "segmentation_summary",
]


# --------------------------------------------------------------------------- classification


def accuracy(y_true, y_pred):
    """Fraction of samples whose predicted class is the true class.

    Parameters
    ----------
    y_true, y_pred : (n_samples,) array-like
        True and predicted class labels.

    Returns
    -------
    float

    Examples
    --------
    >>> accuracy(["live", "dead", "live", "live"], ["live", "live", "live", "live"])
    0.75
    """
    return float(skm.accuracy_score(y_true, y_pred))


def balanced_accuracy(y_true, y_pred):
    """Mean of the per-class recalls: accuracy that a majority class cannot inflate.

    Parameters
    ----------
    y_true, y_pred : (n_samples,) array-like
        True and predicted class labels.

    Returns
    -------
    float
        The mean recall over the classes present in `y_true`; 0.5 for a constant
        prediction on two classes, whatever their proportions.

    Examples
    --------
    >>> balanced_accuracy(["live", "dead", "live", "live"], ["live", "live", "live", "live"])
    0.5
    """
    return float(skm.balanced_accuracy_score(y_true, y_pred))


def precision(y_true, y_pred, *, average="macro", labels=None):
    """Precision, TP / (TP + FP), averaged over classes or per class.

    Parameters
    ----------
    y_true, y_pred : (n_samples,) array-like
        True and predicted class labels.
    average : {"macro", "weighted", "micro", "binary"} or None, default="macro"
        How to combine the classes, as in :func:`sklearn.metrics.precision_score`;
        None returns one value per class, in the order of `labels`.
    labels : array-like, default=None
        Classes to include; default: the sorted classes present in `y_true` or `y_pred`.

    Returns
    -------
    float or (n_classes,) ndarray
        A class that is never predicted has precision 0.

    Examples
    --------
    >>> precision(["a", "a", "b", "b"], ["a", "b", "b", "b"], average=None)
    array([1.        , 0.66666667])
    """
    return _sklearn_prf(skm.precision_score, y_true, y_pred, average, labels)


def recall(y_true, y_pred, *, average="macro", labels=None):
    """Recall (sensitivity), TP / (TP + FN), averaged over classes or per class.

    Parameters
    ----------
    y_true, y_pred : (n_samples,) array-like
        True and predicted class labels.
    average : {"macro", "weighted", "micro", "binary"} or None, default="macro"
        How to combine the classes; None returns one value per class. Macro recall over
        the classes of `y_true` is the balanced accuracy.
    labels : array-like, default=None
        Classes to include; default: the sorted classes present in `y_true` or `y_pred`.

    Returns
    -------
    float or (n_classes,) ndarray

    Examples
    --------
    >>> recall(["a", "a", "b", "b"], ["a", "b", "b", "b"], average=None)
    array([0.5, 1. ])
    """
    return _sklearn_prf(skm.recall_score, y_true, y_pred, average, labels)


def f1(y_true, y_pred, *, average="macro", labels=None):
    """F1 score, the harmonic mean of precision and recall, averaged or per class.

    Parameters
    ----------
    y_true, y_pred : (n_samples,) array-like
        True and predicted class labels.
    average : {"macro", "weighted", "micro", "binary"} or None, default="macro"
        How to combine the classes; None returns one value per class.
    labels : array-like, default=None
        Classes to include; default: the sorted classes present in `y_true` or `y_pred`.

    Returns
    -------
    float or (n_classes,) ndarray

    Examples
    --------
    >>> round(f1(["a", "a", "b", "b"], ["a", "b", "b", "b"]), 4)
    0.7333
    """
    return _sklearn_prf(skm.f1_score, y_true, y_pred, average, labels)


def _sklearn_prf(score_func, y_true, y_pred, average, labels):
    value = score_func(y_true, y_pred, average=average, labels=labels, zero_division=0)
    return value if average is None else float(value)


def roc_auc(y_true, y_score, *, labels=None):
    """Area under the ROC curve: binary, or one-vs-rest macro average for several classes.

    Only the ranking of the scores matters, so probabilities, decision-function values and
    any other monotone score work alike, for two classes and for several.

    Parameters
    ----------
    y_true : (n_samples,) array-like
        True class labels.
    y_score : (n_samples,) or (n_samples, n_classes) array-like
        A 1-D score for the greater of two classes, or one column per class in the order of
        `labels` (``predict_proba`` or ``decision_function`` output). With two columns the
        second is used.
    labels : array-like, default=None
        The classes the columns of `y_score` stand for; default: the sorted classes of
        `y_true`. Pass ``estimator.classes_`` when a test set may lack a class.

    Returns
    -------
    float
        NaN when no class has both positive and negative samples in `y_true`.

    Examples
    --------
    >>> roc_auc(["dead", "dead", "live", "live"], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> scores = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]]
    >>> roc_auc(["G1", "G2", "S", "G2"], scores)  # columns: G1, G2, S
    1.0
    """
    y_true, y_score, labels = _check_scores(y_true, y_score, labels)
    if y_score.ndim == 1:
        return _binary_auc(y_true == labels[-1], y_score)
    if y_score.shape[1] == 2:
        return _binary_auc(y_true == labels[1], y_score[:, 1])
    aucs = [_binary_auc(y_true == label, y_score[:, k]) for k, label in enumerate(labels)]
    return float(np.nan if np.all(np.isnan(aucs)) else np.nanmean(aucs))


def _binary_auc(positive, score):
    if positive.all() or not positive.any():
        return np.nan
    return float(skm.roc_auc_score(positive, score))


def _check_scores(y_true, y_score, labels):
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=float)
    labels = np.unique(y_true) if labels is None else np.asarray(labels)
    if len(y_score) != len(y_true):
        raise ValueError(f"y_score has {len(y_score)} samples but y_true has {len(y_true)}")
    if y_score.ndim == 2 and y_score.shape[1] != len(labels):
        raise ValueError(
            f"y_score has {y_score.shape[1]} columns but there are {len(labels)} labels "
            f"{labels.tolist()!r}; pass labels=estimator.classes_"
        )
    if y_score.ndim not in (1, 2):
        raise ValueError(f"y_score must be 1-D or 2-D, got shape {y_score.shape}")
    if y_score.ndim == 1 and len(labels) > 2:
        raise ValueError(f"y_score is 1-D but there are {len(labels)} labels; pass one column "
                         "of scores per label (estimator.predict_proba)")
    unknown = np.setdiff1d(np.unique(y_true), labels)
    if len(unknown):
        raise ValueError(f"y_true holds {unknown.tolist()[:5]!r}, not among labels "
                         f"{labels.tolist()!r}")
    return y_true, y_score, labels


def confusion_matrix(y_true, y_pred, *, labels=None, normalize=None):
    """Confusion matrix: rows are true classes, columns predicted classes.

    Parameters
    ----------
    y_true, y_pred : (n_samples,) array-like
        True and predicted class labels.
    labels : array-like, default=None
        Row and column order; default: the sorted classes of `y_true` and `y_pred`.
    normalize : {"true", "pred", "all"}, default=None
        Divide by the row sums (each row then holds the recalls), the column sums or the
        total, as in :func:`sklearn.metrics.confusion_matrix`.

    Returns
    -------
    (n_classes, n_classes) ndarray

    Examples
    --------
    >>> confusion_matrix(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    array([[1, 1],
           [0, 2]])
    """
    return skm.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize)


def classification_summary(y_true, y_pred, y_score=None, labels=None):
    """All classification metrics at once, overall and per class.

    Parameters
    ----------
    y_true, y_pred : (n_samples,) array-like
        True and predicted class labels.
    y_score : (n_samples,) or (n_samples, n_classes) array-like, default=None
        Scores for :func:`roc_auc`; without them ``"roc_auc"`` is left out.
    labels : array-like, default=None
        Class order for the per-class values, the confusion matrix and the columns of
        `y_score`; default: the sorted classes of `y_true` and `y_pred`.

    Returns
    -------
    dict
        ``n_samples``, ``accuracy``, ``balanced_accuracy``, ``precision_macro``,
        ``recall_macro``, ``f1_macro``, ``roc_auc`` (with `y_score`), ``labels``,
        ``per_class`` (label -> dict of precision, recall, f1, support) and
        ``confusion_matrix``.

    Examples
    --------
    >>> s = classification_summary(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    >>> s["balanced_accuracy"], s["per_class"]["a"]["recall"]
    (0.75, 0.5)
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred]))
    labels = np.asarray(labels)
    p, r, f, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    summary = {
        "n_samples": len(y_true),
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "precision_macro": precision(y_true, y_pred, labels=labels),
        "recall_macro": recall(y_true, y_pred, labels=labels),
        "f1_macro": f1(y_true, y_pred, labels=labels),
    }
    if y_score is not None:
        summary["roc_auc"] = roc_auc(y_true, y_score, labels=labels)
    summary["labels"] = labels.tolist()
    summary["per_class"] = {
        label: {"precision": float(pk), "recall": float(rk), "f1": float(fk), "support": int(nk)}
        for label, pk, rk, fk, nk in zip(labels.tolist(), p, r, f, support, strict=True)
    }
    summary["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels)
    return summary


# --------------------------------------------------------------------------- counting


def mae(y_true, y_pred):
    """Mean absolute error, in the units of the target (cells per image for counts).

    Examples
    --------
    >>> mae([10, 20, 30], [12, 18, 30])
    1.3333333333333333
    """
    y_true, y_pred = _check_regression(y_true, y_pred)
    return float(skm.mean_absolute_error(y_true, y_pred))


def rmse(y_true, y_pred):
    """Root mean squared error; weighs large misses more than :func:`mae`.

    Examples
    --------
    >>> rmse([10, 20, 30], [13, 16, 30])
    2.886751345948129
    """
    y_true, y_pred = _check_regression(y_true, y_pred)
    return float(skm.root_mean_squared_error(y_true, y_pred))


def mape(y_true, y_pred):
    """Mean absolute percentage error, as a fraction: mean(|pred - true| / |true|).

    Samples whose true value is 0 are left out (their percentage error is undefined); NaN
    when every true value is 0.

    Examples
    --------
    >>> round(mape([10, 20, 0], [12, 18, 3]), 4)
    0.15
    """
    y_true, y_pred = _check_regression(y_true, y_pred)
    nonzero = y_true != 0
    if not nonzero.any():
        return np.nan
    return float(np.mean(np.abs(y_pred - y_true)[nonzero] / np.abs(y_true[nonzero])))


def r2(y_true, y_pred):
    """Coefficient of determination R² (1 is perfect, 0 is as good as predicting the mean).

    NaN or -inf when `y_true` is constant, where R² is undefined.

    Examples
    --------
    >>> r2([10, 20, 30], [12, 18, 30])
    0.96
    """
    y_true, y_pred = _check_regression(y_true, y_pred)
    return float(skm.r2_score(y_true, y_pred, force_finite=False))


def pearson_r(y_true, y_pred):
    """Pearson correlation between true and predicted values; NaN if either is constant.

    Examples
    --------
    >>> round(pearson_r([10, 20, 30], [12, 18, 30]), 4)
    0.982
    """
    y_true, y_pred = _check_regression(y_true, y_pred)
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return np.nan
    return float(stats.pearsonr(y_true, y_pred).statistic)


def mean_signed_error(y_true, y_pred):
    """Mean signed error (bias), mean(pred - true): positive when the model over-counts.

    Examples
    --------
    >>> mean_signed_error([10, 20, 30], [12, 18, 33])
    1.0
    """
    y_true, y_pred = _check_regression(y_true, y_pred)
    return float(np.mean(y_pred - y_true))


def _check_regression(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D and the same length, got shapes "
            f"{y_true.shape} and {y_pred.shape}"
        )
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} has {int((~np.isfinite(values)).sum())} NaN or infinite "
                             "values")
    return y_true, y_pred


def counting_summary(y_true, y_pred):
    """All counting (regression) metrics at once.

    Parameters
    ----------
    y_true, y_pred : (n_samples,) array-like
        True and predicted counts (or any continuous target).

    Returns
    -------
    dict
        ``n_samples``, ``mae``, ``rmse``, ``mape``, ``r2``, ``pearson_r`` and
        ``mean_signed_error``.

    Examples
    --------
    >>> s = counting_summary([10, 20, 30], [12, 18, 33])
    >>> s["mae"], s["mean_signed_error"]
    (2.3333333333333335, 1.0)
    """
    return {
        "n_samples": len(y_true),
        "mae": mae(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "mape": mape(y_true, y_pred),
        "r2": r2(y_true, y_pred),
        "pearson_r": pearson_r(y_true, y_pred),
        "mean_signed_error": mean_signed_error(y_true, y_pred),
    }


# --------------------------------------------------------------------------- counting in place

GAME_LEVELS = 3  # grid_counts() keeps the finest grid, 2**3 x 2**3 cells; coarser ones sum it


def grid_counts(maps, shape=None, *, level=GAME_LEVELS):
    """Objects per cell of a ``2**level x 2**level`` grid over each image, for GAME.

    Parameters
    ----------
    maps : list of (M, N) density maps or (k, 2) point arrays
        Per image, a density map (objects per pixel, as
        :meth:`featcell.counting.DensityCounter.predict_density` returns) or the
        ``(row, col)`` positions of its objects (as :func:`featcell.read_points`
        returns); a point counts in the cell of its nearest pixel.
    shape : tuple of int or list of them, optional
        ``(rows, cols)`` of the images, needed for point arrays (one shape for
        all images, or one per image).
    level : int, default=3
        Grid level: ``4 ** level`` cells, rows and columns split as evenly as
        whole pixels allow (the cell edges of a level are also edges of every
        finer level).

    Returns
    -------
    counts : (n_images, 4 ** level) ndarray
        Row-major cell counts; a row sums to the image's count.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.metrics import grid_counts
    >>> grid_counts([np.array([[0.0, 0.0], [3.0, 3.0], [3.0, 2.0]])], (4, 4), level=1)
    array([[1., 0., 0., 2.]])
    """
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or not 0 <= level <= 8:
        raise ValueError(f"level={level!r}; expected an integer from 0 to 8")
    if isinstance(maps, np.ndarray) and maps.ndim == 2 and maps.shape[1] == 2 and shape is not None:
        raise ValueError("maps is one (k, 2) array; expected a list with one entry per image")
    maps = list(maps)
    shapes = [shape] * len(maps)
    if shape is not None and len(shape) and not isinstance(shape[0], numbers.Integral):
        shapes = list(shape)
        if len(shapes) != len(maps):
            raise ValueError(f"shape has {len(shapes)} entries but there are {len(maps)} images")
    n = 2**level
    out = np.zeros((len(maps), n * n))
    for i, (item, size) in enumerate(zip(maps, shapes)):
        item = np.asarray(item, dtype=float)
        if item.ndim == 2 and size is None and item.shape[1] != 2 or (
            size is not None and item.shape == tuple(size)
        ):
            rows = _grid_index(item.shape[0], n)
            cols = _grid_index(item.shape[1], n)
            if not np.isfinite(item).all():
                raise ValueError(f"maps[{i}] contains NaN or infinite values")
            cells = rows[:, None] * n + cols[None, :]
            out[i] = np.bincount(cells.ravel(), weights=item.ravel(), minlength=n * n)
            continue
        if size is None:
            raise ValueError(
                f"maps[{i}] has shape {item.shape}; (k, 2) point arrays need shape=(rows, cols)"
            )
        from .points import _check_points, _pixel_index

        rows_cols = tuple(int(s) for s in size)
        points = _check_points(item, f"maps[{i}]", rows_cols)
        r, c = _pixel_index(points, rows_cols)
        cells = _grid_index(rows_cols[0], n)[r] * n + _grid_index(rows_cols[1], n)[c]
        out[i] = np.bincount(cells, minlength=n * n)
    return out


def _grid_index(length, n):
    """Cell index (0..n-1) of each of ``length`` pixels; edges round(k * length / n)."""
    edges = np.round(np.arange(1, n) * length / n).astype(np.intp)
    return np.searchsorted(edges, np.arange(length), side="right")


def _coarsen(counts, level):
    """Cell counts of a finer square grid summed into the 2**level x 2**level grid."""
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2:
        raise ValueError(
            f"grid counts have shape {counts.shape}; expected (n_images, 4 ** level) from "
            "featcell.metrics.grid_counts"
        )
    cells = counts.shape[1]
    fine = int(round(np.log2(cells) / 2))
    if 4**fine != cells:
        raise ValueError(f"grid counts have {cells} cells per image; expected a power of 4")
    if level > fine:
        raise ValueError(f"GAME({level}) needs grid counts of level >= {level}; got {fine}")
    k = 2 ** (fine - level)
    grid = counts.reshape(len(counts), 2**level, k, 2**level, k)
    return grid.sum(axis=(2, 4)).reshape(len(counts), -1)


def _game_errors(y_true, y_pred, level):
    t, p = _coarsen(y_true, level), _coarsen(y_pred, level)
    if t.shape != p.shape:
        raise ValueError(f"y_pred has shape {np.shape(y_pred)} but y_true has {np.shape(y_true)}")
    return np.abs(p - t).sum(axis=1)


def game(y_true, y_pred, level=0):
    """Grid average mean absolute error GAME(L): counting errors that must land in place.

    Each image is split into ``4 ** level`` cells; an image's error is the sum over
    cells of the absolute difference between predicted and true counts, and GAME(L)
    is its mean over images (Guerrero-Gomez-Olmedo et al., 2015). GAME(0) is the
    count MAE; higher levels also punish a right total from objects in wrong places.

    Parameters
    ----------
    y_true, y_pred : (n_images, 4 ** L') ndarray
        Cell counts from :func:`grid_counts` at any level ``L' >= level`` (finer
        grids are summed into the coarser one).
    level : int, default=0
        The GAME level, 0-3 in the counting papers.

    Returns
    -------
    float

    References
    ----------
    .. [1] R. Guerrero-Gomez-Olmedo, B. Torre-Jimenez, R. Lopez-Sastre, S.
       Maldonado-Bascon and D. Onoro-Rubio, "Extremely overlapping vehicle
       counting", IbPRIA 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.metrics import game, grid_counts
    >>> true = grid_counts([np.array([[0.0, 0.0], [3.0, 3.0]])], (4, 4), level=1)
    >>> pred = grid_counts([np.array([[0.0, 3.0], [3.0, 3.0]])], (4, 4), level=1)
    >>> game(true, pred, 0), game(true, pred, 1)
    (0.0, 2.0)
    """
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or level < 0:
        raise ValueError(f"level={level!r}; expected an integer >= 0")
    return float(np.mean(_game_errors(y_true, y_pred, level)))


def _game_metric(level):
    def metric(y_true, y_pred):
        return game(y_true, y_pred, level)

    metric.__name__ = f"game{level}"
    return metric


# --------------------------------------------------------------------------- segmentation


@dataclass(frozen=True)
class _Overlap:
    """Pixel overlaps of two label images, one entry per touching (true, pred) pair."""

    true_area: np.ndarray  # (n_true,) pixels per true object, in sorted id order
    pred_area: np.ndarray  # (n_pred,)
    rows: np.ndarray  # (n_pairs,) index into true objects
    cols: np.ndarray  # (n_pairs,) index into predicted objects
    inter: np.ndarray  # (n_pairs,) intersection in pixels

    @property
    def union(self):
        return self.true_area[self.rows] + self.pred_area[self.cols] - self.inter

    @property
    def iou(self):
        return self.inter / self.union

    @property
    def n_true(self):
        return len(self.true_area)

    @property
    def n_pred(self):
        return len(self.pred_area)


def _check_labels(labels, name):
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(
            f"{name} has dtype {labels.dtype}; expected an integer label image "
            "(0 = background, one id per object)"
        )
    return labels


def _overlap(true_labels, pred_labels):
    true_labels = _check_labels(true_labels, "true_labels")
    pred_labels = _check_labels(pred_labels, "pred_labels")
    if true_labels.shape != pred_labels.shape:
        raise ValueError(
            f"pred_labels has shape {pred_labels.shape} but true_labels has shape "
            f"{true_labels.shape}"
        )
    t_codes, n_true = _relabel(true_labels.ravel())
    p_codes, n_pred = _relabel(pred_labels.ravel())
    both = (t_codes > 0) & (p_codes > 0)
    pair_keys, inter = np.unique(
        t_codes[both].astype(np.int64) * (n_pred + 1) + p_codes[both], return_counts=True
    )
    return _Overlap(
        true_area=np.bincount(t_codes, minlength=n_true + 1)[1:],
        pred_area=np.bincount(p_codes, minlength=n_pred + 1)[1:],
        rows=pair_keys // (n_pred + 1) - 1,
        cols=pair_keys % (n_pred + 1) - 1,
        inter=inter,
    )


def _relabel(flat):
    """Map object ids to 1..n in sorted order, background stays 0."""
    ids = np.unique(flat[flat != 0])
    codes = np.searchsorted(ids, flat) + 1
    codes[flat == 0] = 0
    return codes, len(ids)


def iou_matrix(true_labels, pred_labels):
    """Intersection over union of every true object with every predicted object.

    Computed in one pass over the pixels from the contingency of the two label images
    (no per-object loop).

    Parameters
    ----------
    true_labels, pred_labels : (M, N[, P]) ndarray of int
        Instance label images of the same shape, 0 = background.

    Returns
    -------
    (n_true, n_pred) ndarray of float
        Rows follow the sorted non-zero ids of `true_labels`
        (``np.unique(true_labels[true_labels != 0])``), columns those of `pred_labels`.

    Examples
    --------
    >>> true = np.array([[1, 1, 0], [1, 1, 0]])
    >>> pred = np.array([[0, 5, 5], [0, 5, 5]])
    >>> iou_matrix(true, pred)
    array([[0.33333333]])
    """
    ov = _overlap(true_labels, pred_labels)
    iou = np.zeros((ov.n_true, ov.n_pred))
    iou[ov.rows, ov.cols] = ov.iou
    return iou


def _match(ov, threshold):
    """One-to-one matching of objects with IoU > threshold; returns (rows, cols, ious)."""
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    iou = ov.iou
    keep = iou > threshold
    rows, cols, iou = ov.rows[keep], ov.cols[keep], iou[keep]
    if threshold >= 0.5 or len(iou) == 0:
        return rows, cols, iou  # IoU > 0.5 can hold for at most one partner on each side
    # Hungarian matching on the touching objects: most matches first, total IoU breaks ties
    urows, r = np.unique(rows, return_inverse=True)
    ucols, c = np.unique(cols, return_inverse=True)
    gain = np.zeros((len(urows), len(ucols)))
    gain[r, c] = 1 + iou / (2 * min(len(urows), len(ucols)))
    rr, cc = optimize.linear_sum_assignment(gain, maximize=True)
    matched = gain[rr, cc] > 0
    rr, cc = rr[matched], cc[matched]
    full = np.zeros((len(urows), len(ucols)))
    full[r, c] = iou
    return urows[rr], ucols[cc], full[rr, cc]


def _both_empty(ov):
    return ov.n_true == 0 and ov.n_pred == 0


def foreground_dice(true_labels, pred_labels):
    """Dice coefficient of the foreground masks, 2|T∩P| / (|T| + |P|), ignoring object ids.

    Parameters
    ----------
    true_labels, pred_labels : (M, N[, P]) ndarray of int
        Label images of the same shape; every non-zero pixel is foreground.

    Returns
    -------
    float
        1.0 when both images are empty.

    Examples
    --------
    >>> true = np.array([[1, 1, 0], [1, 1, 0]])
    >>> pred = np.array([[0, 5, 5], [0, 5, 5]])
    >>> foreground_dice(true, pred)
    0.5
    """
    t, p = _foreground(true_labels, pred_labels)
    total = t.sum() + p.sum()
    return 1.0 if total == 0 else float(2 * np.sum(t & p) / total)


def foreground_jaccard(true_labels, pred_labels):
    """Jaccard index (IoU) of the foreground masks, |T∩P| / |T∪P|, ignoring object ids.

    Examples
    --------
    >>> true = np.array([[1, 1, 0], [1, 1, 0]])
    >>> pred = np.array([[0, 5, 5], [0, 5, 5]])
    >>> round(foreground_jaccard(true, pred), 4)
    0.3333
    """
    t, p = _foreground(true_labels, pred_labels)
    union = np.sum(t | p)
    return 1.0 if union == 0 else float(np.sum(t & p) / union)


def _foreground(true_labels, pred_labels):
    true_labels = _check_labels(true_labels, "true_labels")
    pred_labels = _check_labels(pred_labels, "pred_labels")
    if true_labels.shape != pred_labels.shape:
        raise ValueError(
            f"pred_labels has shape {pred_labels.shape} but true_labels has shape "
            f"{true_labels.shape}"
        )
    return true_labels != 0, pred_labels != 0


def object_jaccard(true_labels, pred_labels):
    """Mean IoU of each true object with its matched predicted object.

    Objects are paired one-to-one by Hungarian matching on IoU (any overlap counts); a true
    object left without a partner scores 0. Predicted objects that match nothing do not
    lower this score: read it with :func:`detection_scores` or :func:`panoptic_quality`.

    Parameters
    ----------
    true_labels, pred_labels : (M, N[, P]) ndarray of int
        Instance label images of the same shape, 0 = background.

    Returns
    -------
    float
        1.0 when both images are empty, 0.0 when only `true_labels` is.

    Examples
    --------
    >>> true = np.array([[1, 1, 0, 0], [1, 1, 0, 2]])
    >>> pred = np.array([[0, 3, 3, 0], [0, 3, 3, 0]])
    >>> round(object_jaccard(true, pred), 4)  # (1/3 + 0) / 2
    0.1667
    """
    return _object_mean(_overlap(true_labels, pred_labels), dice=False)


def object_dice(true_labels, pred_labels):
    """Mean Dice of each true object with its matched predicted object.

    Same matching as :func:`object_jaccard`; each pair scores 2·IoU / (1 + IoU).

    Examples
    --------
    >>> true = np.array([[1, 1, 0], [1, 1, 0]])
    >>> pred = np.array([[0, 5, 5], [0, 5, 5]])
    >>> object_dice(true, pred)
    0.5
    """
    return _object_mean(_overlap(true_labels, pred_labels), dice=True)


def _object_mean(ov, dice):
    if ov.n_true == 0:
        return float(_both_empty(ov))
    _, _, iou = _match(ov, 0.0)
    scores = 2 * iou / (1 + iou) if dice else iou
    return float(scores.sum() / ov.n_true)


def detection_scores(true_labels, pred_labels, threshold=0.5):
    """Object-level precision, recall and F1 at an IoU threshold.

    A predicted object is a true positive when it is matched one-to-one to a true object
    with IoU > `threshold` (strictly, as in the DSB2018 scoring). Above 0.5 each object can
    have at most one such partner; below it, Hungarian matching finds the most matches.

    Parameters
    ----------
    true_labels, pred_labels : (M, N[, P]) ndarray of int
        Instance label images of the same shape, 0 = background.
    threshold : float, default=0.5
        IoU a pair must exceed, in [0, 1).

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` and
        ``mean_matched_iou`` (0 without matches). Precision, recall and F1 are 1.0 when
        both images are empty.

    Examples
    --------
    >>> true = np.array([[1, 1, 0], [1, 1, 0]])
    >>> pred = np.array([[0, 5, 5], [0, 5, 5]])
    >>> detection_scores(true, pred)["f1"], detection_scores(true, pred, threshold=0.3)["f1"]
    (0.0, 1.0)
    """
    return _detection(_overlap(true_labels, pred_labels), threshold)


def _detection(ov, threshold):
    _, _, iou = _match(ov, threshold)
    tp = len(iou)
    fp, fn = ov.n_pred - tp, ov.n_true - tp
    if _both_empty(ov):
        p = r = f = 1.0
    else:
        p = tp / ov.n_pred if ov.n_pred else 0.0
        r = tp / ov.n_true if ov.n_true else 0.0
        f = 2 * tp / (ov.n_true + ov.n_pred)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "mean_matched_iou": float(iou.mean()) if tp else 0.0,
    }


_DSB_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def dsb_average_precision(true_labels, pred_labels, thresholds=None):
    """The 2018 Data Science Bowl score: TP / (TP + FP + FN) averaged over IoU thresholds.

    At each threshold t, a true and a predicted object match when their IoU > t; the score
    is the mean over t = 0.5, 0.55, ..., 0.95 of TP / (TP + FP + FN).

    Parameters
    ----------
    true_labels, pred_labels : (M, N[, P]) ndarray of int
        Instance label images of the same shape, 0 = background.
    thresholds : array-like of float, default=None
        IoU thresholds; default: 0.5 to 0.95 in steps of 0.05.

    Returns
    -------
    float
        1.0 when both images are empty.

    References
    ----------
    Caicedo et al., "Nucleus segmentation across imaging experiments: the 2018 Data
    Science Bowl", Nature Methods 16, 2019.

    Examples
    --------
    >>> true = np.zeros((6, 6), int); true[:5, :5] = 1
    >>> pred = np.zeros((6, 6), int); pred[:5, 1:] = 2   # IoU = 20/30
    >>> round(dsb_average_precision(true, pred), 4)      # matched at 0.5 ... 0.65
    0.4
    """
    ov = _overlap(true_labels, pred_labels)
    return _dsb_ap(ov, _DSB_THRESHOLDS if thresholds is None else thresholds)


def _dsb_ap(ov, thresholds):
    if _both_empty(ov):
        return 1.0
    scores = []
    for t in np.asarray(thresholds, dtype=float):
        tp = len(_match(ov, t)[2])
        scores.append(tp / (ov.n_true + ov.n_pred - tp))
    return float(np.mean(scores))


def aggregated_jaccard_index(true_labels, pred_labels):
    """Aggregated Jaccard Index (AJI) of Kumar et al. (2017).

    Each true object is paired with the predicted object of highest IoU; AJI is the sum of
    their intersections over the sum of their unions, with the areas of unpaired true and
    predicted objects added to the unions. Splits and merges are penalised, which per-pixel
    Dice does not see.

    Parameters
    ----------
    true_labels, pred_labels : (M, N[, P]) ndarray of int
        Instance label images of the same shape, 0 = background.

    Returns
    -------
    float
        1.0 when both images are empty.

    Notes
    -----
    As in the original definition (and HoVer-Net's ``get_fast_aji``), a predicted object
    may pair with several true objects; ties go to the lowest predicted id.

    References
    ----------
    Kumar et al., "A dataset and a technique for generalized nuclear segmentation for
    computational pathology", IEEE Transactions on Medical Imaging 36(7), 2017.

    Examples
    --------
    >>> true = np.array([[1, 1, 1, 1], [1, 1, 1, 1]])   # one object of 8 pixels
    >>> pred = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])   # split in two
    >>> round(aggregated_jaccard_index(true, pred), 4)  # 4 / (8 + 4)
    0.3333
    """
    return _aji(_overlap(true_labels, pred_labels))


def _aji(ov):
    if _both_empty(ov):
        return 1.0
    # best partner of each true object: sort by row, then IoU descending, then column
    order = np.lexsort((ov.cols, -ov.iou, ov.rows))
    rows, first = np.unique(ov.rows[order], return_index=True)
    best = order[first]
    inter = ov.inter[best].sum()
    union = ov.union[best].sum()
    unpaired_true = np.ones(ov.n_true, bool)
    unpaired_true[rows] = False
    unpaired_pred = np.ones(ov.n_pred, bool)
    unpaired_pred[ov.cols[best]] = False
    union += ov.true_area[unpaired_true].sum() + ov.pred_area[unpaired_pred].sum()
    return float(inter / union)


def panoptic_quality(true_labels, pred_labels, *, return_components=False):
    """Panoptic quality PQ = SQ × RQ (Kirillov et al. 2019) for one class of objects.

    Objects match when IoU > 0.5 (unique). SQ (segmentation quality) is the mean IoU of the
    matches, RQ (recognition quality) is TP / (TP + FP/2 + FN/2), an F1 score.

    Parameters
    ----------
    true_labels, pred_labels : (M, N[, P]) ndarray of int
        Instance label images of the same shape, 0 = background.
    return_components : bool, default=False
        Also return SQ and RQ.

    Returns
    -------
    pq : float
        1.0 when both images are empty.
    sq, rq : float
        Only with `return_components`; SQ is 0 when nothing matches.

    References
    ----------
    Kirillov et al., "Panoptic segmentation", CVPR 2019.

    Examples
    --------
    >>> true = np.zeros((6, 6), int); true[:5, :5] = 1
    >>> pred = np.zeros((6, 6), int); pred[:5, 1:] = 2; pred[5, 5] = 3
    >>> pq, sq, rq = panoptic_quality(true, pred, return_components=True)
    >>> round(pq, 4), round(sq, 4), round(rq, 4)
    (0.4444, 0.6667, 0.6667)
    """
    pq, sq, rq = _pq(_overlap(true_labels, pred_labels))
    return (pq, sq, rq) if return_components else pq


def _pq(ov):
    if _both_empty(ov):
        return 1.0, 1.0, 1.0
    _, _, iou = _match(ov, 0.5)
    tp = len(iou)
    sq = float(iou.mean()) if tp else 0.0
    rq = tp / (tp + 0.5 * (ov.n_pred - tp) + 0.5 * (ov.n_true - tp))
    return sq * rq, sq, float(rq)


def segmentation_summary(true_labels, pred_labels):
    """All segmentation metrics for one image, from a single pass over its pixels.

    Parameters
    ----------
    true_labels, pred_labels : (M, N[, P]) ndarray of int
        Instance label images of the same shape, 0 = background.

    Returns
    -------
    dict
        ``n_true``, ``n_pred``, ``foreground_dice``, ``foreground_jaccard``,
        ``object_dice``, ``object_jaccard``, ``precision``, ``recall``, ``f1`` (at IoU > 0.5),
        ``dsb_ap``, ``aji``, ``pq``, ``sq`` and ``rq``. For a data set, average the values
        of its images (as the DSB2018 score does).

    Examples
    --------
    >>> true = np.array([[1, 1, 0], [1, 1, 0]])
    >>> s = segmentation_summary(true, true)
    >>> s["dsb_ap"], s["aji"], s["pq"]
    (1.0, 1.0, 1.0)
    """
    ov = _overlap(true_labels, pred_labels)
    t, p = np.asarray(true_labels) != 0, np.asarray(pred_labels) != 0
    fg_inter, fg_total, fg_union = np.sum(t & p), t.sum() + p.sum(), np.sum(t | p)
    det = _detection(ov, 0.5)
    pq, sq, rq = _pq(ov)
    return {
        "n_true": ov.n_true,
        "n_pred": ov.n_pred,
        "foreground_dice": 1.0 if fg_total == 0 else float(2 * fg_inter / fg_total),
        "foreground_jaccard": 1.0 if fg_union == 0 else float(fg_inter / fg_union),
        "object_dice": _object_mean(ov, dice=True),
        "object_jaccard": _object_mean(ov, dice=False),
        "precision": det["precision"],
        "recall": det["recall"],
        "f1": det["f1"],
        "dsb_ap": _dsb_ap(ov, _DSB_THRESHOLDS),
        "aji": _aji(ov),
        "pq": pq,
        "sq": sq,
        "rq": rq,
    }


# --------------------------------------------------------------------------- registry
#
# Each named metric knows its plain function and a vectorised "weighted" form: given a
# (n_boot, n_samples) matrix of resampling multiplicities it returns all bootstrap values at
# once, as matrix products of per-sample statistics. bootstrap_ci and featcell.evaluate use it.


@dataclass(frozen=True)
class _Metric:
    name: str
    func: Callable
    task: str  # "classification" or "regression"
    needs_score: bool  # takes predict_proba / decision_function output instead of labels
    greater_is_better: bool | None  # None: neither (a bias is best at 0)
    weighted: Callable | None = None  # (y_true, y_out, sample_weights, classes) -> (n_boot,)
    # averaged over the classes: undefined on a sample lacking one of y_true's classes (it
    # would be scored on the others alone: a constant majority guess scored perfect)
    per_class: bool = False

    def __call__(self, y_true, y_out, classes=None):
        if self.needs_score:
            return self.func(y_true, y_out, labels=classes)
        return self.func(y_true, y_out)


def _codes(y, classes):
    codes = np.searchsorted(classes, y)
    if np.any(codes >= len(classes)) or np.any(classes[np.minimum(codes, len(classes) - 1)] != y):
        raise ValueError(f"labels {np.setdiff1d(y, classes).tolist()!r} are not in {classes!r}")
    return codes


def _onehot(y, classes):
    return np.eye(len(classes))[_codes(y, classes)]


def _ratio(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def _w_accuracy(y_true, y_pred, sw, classes):
    return _ratio(sw @ (y_true == y_pred).astype(float), sw.sum(axis=1))


def _w_balanced_accuracy(y_true, y_pred, sw, classes):
    t = _onehot(y_true, classes)
    return _nanmean_rows(_ratio(sw @ (t * (y_true == y_pred)[:, None]), sw @ t))


def _nanmean_rows(values):
    ok = ~np.isnan(values)
    return _ratio(np.where(ok, values, 0).sum(axis=1), ok.sum(axis=1))


def _w_prf(kind):
    def weighted(y_true, y_pred, sw, classes):
        t, p = _onehot(y_true, classes), _onehot(y_pred, classes)
        tp, n_true, n_pred = sw @ (t * p), sw @ t, sw @ p
        present = (n_true + n_pred) > 0
        den = {"precision": n_pred, "recall": n_true, "f1": (n_true + n_pred) / 2}[kind]
        value = np.where(den > 0, _ratio(tp, den), 0.0)
        return _ratio(np.where(present, value, 0).sum(axis=1), present.sum(axis=1))

    return weighted


def _w_roc_auc(y_true, y_score, sw, classes):
    y_true, y_score, classes = _check_scores(y_true, y_score, classes)
    if y_score.ndim == 1:
        return _weighted_auc(y_true == classes[-1], y_score, sw)
    if y_score.shape[1] == 2:
        return _weighted_auc(y_true == classes[1], y_score[:, 1], sw)
    per_class = np.stack(
        [_weighted_auc(y_true == c, y_score[:, k], sw) for k, c in enumerate(classes)], axis=1
    )
    return _nanmean_rows(per_class)


def _weighted_auc(positive, score, sw):
    """Mann-Whitney AUC (ties count one half) under each row of sample weights."""
    order = np.argsort(score, kind="stable")
    score, positive, sw = score[order], positive[order], sw[:, order]
    starts = np.flatnonzero(np.r_[True, score[1:] != score[:-1]])  # runs of tied scores
    pos = np.add.reduceat(sw * positive, starts, axis=1)  # (n_boot, n_levels)
    neg = np.add.reduceat(sw * ~positive, starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    wins = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
    return _ratio(wins, pos.sum(axis=1) * neg.sum(axis=1))


def _errors(y_true, y_pred):
    return np.asarray(y_pred, float) - np.asarray(y_true, float)


def _w_mean_of(values_of):
    def weighted(y_true, y_pred, sw, classes):
        return _ratio(sw @ values_of(y_true, y_pred), sw.sum(axis=1))

    return weighted


def _w_rmse(y_true, y_pred, sw, classes):
    return np.sqrt(_ratio(sw @ _errors(y_true, y_pred) ** 2, sw.sum(axis=1)))


def _w_mape(y_true, y_pred, sw, classes):
    y = np.asarray(y_true, float)
    nonzero = y != 0
    rel = np.where(nonzero, np.abs(_errors(y_true, y_pred)) / np.where(nonzero, np.abs(y), 1), 0)
    return _ratio(sw @ rel, sw @ nonzero.astype(float))


def _w_r2(y_true, y_pred, sw, classes):
    y = np.asarray(y_true, float)
    y = y - y.mean()  # centring keeps the moment formula accurate
    n, s1, s2 = sw.sum(axis=1), sw @ y, sw @ y**2
    ss_tot = s2 - _ratio(s1**2, n)
    ss_tot[ss_tot <= 1e-12 * s2] = 0.0  # constant resample: R² undefined, as in r2()
    return 1 - _ratio(sw @ _errors(y_true, y_pred) ** 2, ss_tot)


def _w_pearson(y_true, y_pred, sw, classes):
    x = np.asarray(y_true, float)
    y = np.asarray(y_pred, float)
    x, y = x - x.mean(), y - y.mean()
    n = sw.sum(axis=1)
    sx, sy = sw @ x, sw @ y
    cov = sw @ (x * y) - _ratio(sx * sy, n)
    vx, vy = sw @ x**2 - _ratio(sx**2, n), sw @ y**2 - _ratio(sy**2, n)
    vx[vx <= 1e-12 * (sw @ x**2)] = np.nan
    vy[vy <= 1e-12 * (sw @ y**2)] = np.nan
    return _ratio(cov, np.sqrt(vx * vy))


_METRICS = {
    m.name: m
    for m in [
        _Metric("accuracy", accuracy, "classification", False, True, _w_accuracy),
        _Metric(
            "balanced_accuracy",
            balanced_accuracy,
            "classification",
            False,
            True,
            _w_balanced_accuracy,
            per_class=True,
        ),
        _Metric("precision_macro", precision, "classification", False, True, _w_prf("precision"),
                per_class=True),
        _Metric("recall_macro", recall, "classification", False, True, _w_prf("recall"),
                per_class=True),
        _Metric("f1_macro", f1, "classification", False, True, _w_prf("f1"), per_class=True),
        _Metric("roc_auc", roc_auc, "classification", True, True, _w_roc_auc, per_class=True),
        _Metric(
            "mae",
            mae,
            "regression",
            False,
            False,
            _w_mean_of(lambda t, p: np.abs(_errors(t, p))),
        ),
        _Metric("rmse", rmse, "regression", False, False, _w_rmse),
        _Metric("mape", mape, "regression", False, False, _w_mape),
        _Metric("r2", r2, "regression", False, True, _w_r2),
        _Metric("pearson_r", pearson_r, "regression", False, True, _w_pearson),
        _Metric(
            "mean_signed_error",
            mean_signed_error,
            "regression",
            False,
            None,
            _w_mean_of(_errors),
        ),
        *(
            _Metric(
                f"game{level}",
                _game_metric(level),
                "regression",
                False,
                False,
                _w_mean_of(lambda t, p, level=level: _game_errors(t, p, level)),
            )
            for level in range(GAME_LEVELS + 1)
        ),
    ]
}


def _scorer_name(metric):
    return metric.name if metric.greater_is_better else f"neg_{metric.name}"


SCORERS = {
    _scorer_name(m): skm.make_scorer(
        m.func,
        greater_is_better=m.greater_is_better,
        response_method=("predict_proba", "decision_function") if m.needs_score else "predict",
    )
    for m in sorted(_METRICS.values(), key=_scorer_name)
    if m.greater_is_better is not None
}
"""scikit-learn scorers for featcell's metrics, by name.

Errors are negated and prefixed ``neg_`` (``neg_mae``), as scikit-learn scorers are always
maximised; ``mean_signed_error`` has no scorer since neither sign is better.
"""


def get_scorer(name):
    """The scikit-learn scorer for one of featcell's metrics.

    Parameters
    ----------
    name : str
        A key of :data:`SCORERS`: ``accuracy``, ``balanced_accuracy``, ``precision_macro``,
        ``recall_macro``, ``f1_macro``, ``roc_auc``, ``neg_mae``, ``neg_rmse``, ``neg_mape``,
        ``r2`` or ``pearson_r``.

    Returns
    -------
    callable
        ``scorer(estimator, X, y) -> float``, for ``scoring=`` in ``cross_validate`` or
        ``GridSearchCV``.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = np.arange(6.0).reshape(-1, 1), np.arange(6.0) * 2
    >>> round(get_scorer("neg_mae")(LinearRegression().fit(X, y), X, y), 6)
    -0.0
    """
    if name in SCORERS:
        return SCORERS[name]
    hint = ""
    if f"neg_{name}" in SCORERS:
        hint = f"; scorers are maximised, so use 'neg_{name}'"
    raise ValueError(f"unknown scorer {name!r}{hint}. Known: {sorted(SCORERS)!r}")


# --------------------------------------------------------------------------- bootstrap


def _resample_counts(n_units, n_boot, random_state):
    """(n_boot, n_units) multiplicities of a bootstrap resample of the units."""
    rng = check_random_state(random_state)
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot)


def _bootstrap_values(metric, y_true, y_out, counts, unit_index, classes=None):
    """The metric on every resample; `counts` weighs units, `unit_index` maps samples to them.

    `metric` is a named ``_Metric`` (vectorised) or any ``callable(y_true, y_out)``, which
    is called once per resample on the repeated samples.
    """
    n = len(y_true)
    chunk = max(1, 2**22 // max(n, 1))  # bound the (chunk, n) weight matrix to ~32 MB
    per_class = isinstance(metric, _Metric) and metric.per_class
    if per_class:  # which of y_true's classes each sample is, one-hot
        present, of_class = np.unique(np.asarray(y_true), return_inverse=True)
        members = np.eye(len(present))[of_class.ravel()]
    values = []
    for start in range(0, len(counts), chunk):
        sw = counts[start : start + chunk][:, unit_index].astype(float)
        if isinstance(metric, _Metric) and metric.weighted is not None:
            part = np.asarray(metric.weighted(y_true, y_out, sw, classes), dtype=float)
        else:
            part = np.array([_call(metric, y_true[idx], y_out[idx], classes) for idx in
                             (np.repeat(np.arange(n), row) for row in sw.astype(int))], float)
        if per_class:  # a resample that drew none of a class: undefined, not perfect
            part = np.where((sw @ members > 0).all(axis=1), part, np.nan)
        values.append(part)
    return np.concatenate(values).astype(float)


def _call(metric, y_true, y_out, classes):
    if isinstance(metric, _Metric):
        return metric(y_true, y_out, classes)
    return metric(y_true, y_out)


def _unit_index(groups, n):
    if groups is None:
        return np.arange(n), n
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} samples but y_true has {n}")
    _, index = np.unique(groups, return_inverse=True)
    return index, int(index.max()) + 1


def _quantiles(values, ci):
    if np.all(np.isnan(values)):
        return np.nan, np.nan
    low, high = np.nanquantile(values, [(1 - ci) / 2, (1 + ci) / 2])
    return float(low), float(high)


def _check_ci(n_boot, ci):
    if not isinstance(n_boot, numbers.Integral) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be between 0 and 1, got {ci!r}")


def _resolve_metric(metric):
    if isinstance(metric, str):
        if metric not in _METRICS:
            raise ValueError(f"unknown metric {metric!r}. Known: {sorted(_METRICS)!r}")
        return _METRICS[metric]
    if not callable(metric):
        raise TypeError(f"metric must be a metric name or a callable, got {metric!r}")
    return metric


def bootstrap_ci(metric, y_true, y_pred, groups=None, n_boot=1000, ci=0.95, random_state=0):
    """A metric with a percentile-bootstrap confidence interval, resampling groups.

    Cells of one image share its focus, staining and density, so they are not independent
    samples: resampling cells gives intervals that are too narrow. With `groups`, whole
    groups (images, wells) are drawn with replacement, each bringing all its samples.

    Parameters
    ----------
    metric : str or callable
        A metric name (``"accuracy"``, ``"balanced_accuracy"``, ``"precision_macro"``,
        ``"recall_macro"``, ``"f1_macro"``, ``"roc_auc"``, ``"mae"``, ``"rmse"``,
        ``"mape"``, ``"r2"``, ``"pearson_r"``, ``"mean_signed_error"``), computed for all
        resamples at once by matrix products, or any ``callable(y_true, y_pred) -> float``,
        called once per resample.
    y_true : (n_samples,) array-like
        True labels or values.
    y_pred : (n_samples,) or (n_samples, n_classes) array-like
        Predictions (scores for ``"roc_auc"``, columns in sorted class order).
    groups : (n_samples,) array-like, default=None
        Group id of each sample; None resamples the samples themselves.
    n_boot : int, default=1000
        Number of bootstrap resamples.
    ci : float, default=0.95
        Coverage of the interval.
    random_state : int, RandomState instance or None, default=0
        Seeds the resampling.

    Returns
    -------
    estimate : float
        The metric on all samples.
    low, high : float
        Percentile interval of the resampled values (resamples where the metric is
        undefined, such as AUC with one class, are left out).

    Examples
    --------
    >>> y_true = np.array([1, 1, 0, 0, 1, 0, 1, 0])
    >>> y_pred = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    >>> image = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    >>> est, low, high = bootstrap_ci("accuracy", y_true, y_pred, groups=image)
    >>> est, low <= est <= high
    (0.75, True)
    """
    _check_ci(n_boot, ci)
    metric = _resolve_metric(metric)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if len(y_pred) != len(y_true):
        raise ValueError(f"y_pred has {len(y_pred)} samples but y_true has {len(y_true)}")
    if len(y_true) == 0:
        raise ValueError("y_true is empty")
    unit_index, n_units = _unit_index(groups, len(y_true))
    classes = None
    if isinstance(metric, _Metric) and metric.task == "classification":
        classes = np.unique(y_true if metric.needs_score else np.concatenate([y_true, y_pred]))
    estimate = _call(metric, y_true, y_pred, classes)
    counts = _resample_counts(n_units, n_boot, random_state)
    values = _bootstrap_values(metric, y_true, y_pred, counts, unit_index, classes)
    low, high = _quantiles(values, ci)
    return float(estimate), low, high
