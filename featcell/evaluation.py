"""Honest cross-validation of cell models: grouped folds, out-of-fold predictions, CIs.

Cells from one image share its focus, illumination, staining and density. A random split
puts near-identical cells on both sides and reports scores that will not hold on new images,
so :func:`evaluate` and :func:`compare` split by group (image or well) whenever they know the
groups, and warn when they do not.
"""

from __future__ import annotations

import numbers
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.impute._base import _BaseImputer
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, get_tags
from sklearn.utils.parallel import Parallel, delayed

from featcell.metrics import (
    _METRICS,
    _bootstrap_values,
    _check_ci,
    _Metric,
    _quantiles,
    _resample_counts,
)

__all__ = ["ComparisonResult", "EvaluationResult", "compare", "evaluate"]

_DEFAULT_METRICS = {
    "classification": ["accuracy", "balanced_accuracy", "f1_macro", "roc_auc"],
    "regression": ["mae", "rmse", "mape", "r2", "pearson_r", "mean_signed_error"],
}
_DEFAULT_PRIMARY = {"classification": "balanced_accuracy", "regression": "mae"}
_SCORE_METHODS = ("predict_proba", "decision_function")


@dataclass(repr=False)
class EvaluationResult:
    """Everything one cross-validated evaluation produced, ready for a report.

    Attributes
    ----------
    task : {"classification", "regression"}
        The task the metrics were chosen for.
    fold_scores : pandas.DataFrame
        Tidy per-fold scores: columns ``fold``, ``metric``, ``value``.
    summary : pandas.DataFrame
        One row per metric: ``mean`` and ``sd`` of the fold scores, ``pooled`` (the metric
        on all out-of-fold predictions at once) and ``ci_low``/``ci_high``, a percentile
        bootstrap interval for ``pooled`` that resamples groups.
    predictions : pandas.DataFrame
        Out-of-fold predictions, one row per tested sample: ``sample`` (position in X),
        ``group``, ``fold``, ``y_true``, ``y_pred`` and, for classifiers that have them,
        ``proba_<class>`` (``predict_proba``) or ``score_<class>`` (``decision_function``).
    fold_assignment : (n_samples,) ndarray of int
        Test fold of every sample; -1 for a sample no fold tested.
    splits : list of (train, test) ndarray pairs
        The folds, as sample positions.
    protocol : dict
        How the evaluation was run (splitter, number of folds, groups and where they came
        from, task, metrics, interval method, seed), for reports; see :meth:`describe`.
    classes : ndarray or None
        Class labels, in the order of the score columns (classification only).
    bootstrap : dict of str to ndarray
        Bootstrap values of each metric (``n_boot`` each); :func:`compare` reuses the
        same resamples for every candidate, so differences of these are paired.
    """

    task: str
    fold_scores: pd.DataFrame
    summary: pd.DataFrame
    predictions: pd.DataFrame
    fold_assignment: np.ndarray
    splits: list
    protocol: dict
    classes: np.ndarray | None = None
    bootstrap: dict = field(default_factory=dict)

    @property
    def primary_metric(self):
        """Name of the metric that headlines this result."""
        return self.protocol["primary_metric"]

    def describe(self):
        """One paragraph stating the protocol, for a report or a figure caption."""
        return _describe(self.protocol)

    def save_figures(self, folder, name="model"):
        """Write this evaluation's figures as PNG files; see :meth:`ComparisonResult.save_figures`.

        Parameters
        ----------
        folder : str or path-like
            Created if missing.
        name : str, default="model"
            Prefix of the file names.

        Returns
        -------
        list of pathlib.Path
        """
        from featcell import _plots  # matplotlib is imported only when figures are drawn

        return _plots.save_figures({name: self}, folder)

    def scores(self):
        """Out-of-fold class scores as a (n_tested, n_classes) array, or None."""
        if self.classes is None or self.protocol["score_method"] is None:
            return None
        prefix = "proba" if self.protocol["score_method"] == "predict_proba" else "score"
        return self.predictions[[f"{prefix}_{c}" for c in self.classes]].to_numpy(float)

    def __repr__(self):
        return f"EvaluationResult({self.describe()})\n{self.summary.to_string(index=False)}"


@dataclass(repr=False)
class ComparisonResult:
    """Candidates evaluated on the same folds, with a table and paired tests.

    Attributes
    ----------
    results : dict of str to EvaluationResult
        One evaluation per candidate, all on the same folds and bootstrap resamples.
    table : pandas.DataFrame
        Tidy comparison: ``candidate``, ``metric``, ``mean``, ``sd``, ``pooled``,
        ``ci_low``, ``ci_high`` (as in :attr:`EvaluationResult.summary`).
    paired : pandas.DataFrame
        One row per pair of candidates (a, b), on the primary metric, differences taken as
        a - b: ``fold_diff_mean``, ``t_statistic`` and ``p_value`` of a paired t-test on the
        fold scores (the ``n_folds`` folds where the metric is defined for both),
        ``p_value_corrected`` (Nadeau & Bengio's correction for the overlap of
        training sets, less optimistic), ``pooled_diff`` with its paired group-bootstrap
        interval ``diff_ci_low``/``diff_ci_high`` and ``p_value_bootstrap``
        (2·min(P(Δ*≤0), P(Δ*≥0)) over the resamples).
    protocol : dict
        As in :attr:`EvaluationResult.protocol`, with ``candidates`` (name -> estimator
        repr) in place of ``estimator`` and ``score_method``.
    """

    results: dict
    table: pd.DataFrame
    paired: pd.DataFrame
    protocol: dict

    @property
    def primary_metric(self):
        """Name of the metric the paired tests use."""
        return self.protocol["primary_metric"]

    @property
    def task(self):
        """``"classification"`` or ``"regression"``."""
        return self.protocol["task"]

    def describe(self):
        """One paragraph stating the protocol, for a report or a figure caption."""
        return f"{len(self.results)} candidates on the same folds. {_describe(self.protocol)}"

    def wide(self, value="pooled"):
        """The comparison as a candidate × metric table.

        Parameters
        ----------
        value : {"pooled", "mean", "sd", "ci_low", "ci_high"}, default="pooled"
            Which column of :attr:`table` fills the cells.

        Returns
        -------
        pandas.DataFrame
            Candidates as rows (in the order given), metrics as columns.
        """
        wide = self.table.pivot(index="candidate", columns="metric", values=value)
        return wide.loc[list(self.results), self.protocol["metrics"]]

    def save_figures(self, folder):
        """Write the comparison's figures as PNG files (matplotlib, Agg backend).

        Classification: a confusion matrix per candidate (``<name>_confusion.png``), and
        ROC curves from the out-of-fold scores: all candidates in ``roc.png`` for two
        classes, one-vs-rest curves per class in ``<name>_roc.png`` for more. Regression:
        predicted against true values per candidate (``<name>_pred_vs_true.png``).

        Parameters
        ----------
        folder : str or path-like
            Created if missing.

        Returns
        -------
        list of pathlib.Path
            The files written.
        """
        from featcell import _plots

        return _plots.save_figures(self.results, folder)

    def __repr__(self):
        shown = self.table[self.table["metric"] == self.primary_metric]
        return (
            f"ComparisonResult({self.describe()})\n{shown.to_string(index=False)}\n"
            f"{self.paired.to_string(index=False)}"
        )


def evaluate(
    estimator,
    X,
    y,
    groups=None,
    *,
    cv=5,
    metrics=None,
    task="auto",
    n_jobs=None,
    random_state=0,
    n_boot=1000,
    ci=0.95,
):
    """Cross-validate an estimator without ever splitting a group across train and test.

    Parameters
    ----------
    estimator : estimator object
        Any scikit-learn estimator or pipeline; it is cloned for every fold.
    X : array-like, pandas.DataFrame or featcell.CellSet
        The samples; anything that supports ``len(X)`` and ``X[indices]`` (or ``.iloc``).
    y : (n_samples,) array-like
        Class labels or target values (e.g. counts).
    groups : (n_samples,) array-like, str or None, default=None
        Group (image, well) of each sample; folds never split a group. A string names a
        group level of a CellSet (``"image"``, ``"well"``) or a ``Metadata_*`` column of X.
        None takes ``X.groups("image")`` or a ``Metadata_ImageID`` column of X when there
        is one (the result says so) and otherwise warns, since random splits of cells
        from the same images give optimistic scores. ``"none"`` turns grouping off
        without a warning, for samples that truly are independent.
    cv : int, cross-validation splitter or iterable, default=5
        Number of folds, a splitter object or an iterable of (train, test) index arrays.
        An int gives ``StratifiedGroupKFold`` (classification) or ``GroupKFold``
        (regression) with groups, ``StratifiedKFold`` or ``KFold`` without; all shuffled
        with `random_state`. Whatever the splitter, a fold that puts one group on both
        sides is an error; test sets must not overlap.
    metrics : list of str, dict of str to callable, or None, default=None
        Metric names from :mod:`featcell.metrics` (``accuracy``, ``balanced_accuracy``,
        ``precision_macro``, ``recall_macro``, ``f1_macro``, ``roc_auc``; ``mae``, ``rmse``,
        ``mape``, ``r2``, ``pearson_r``, ``mean_signed_error``) or ``{name:
        callable(y_true, y_pred)}``. The first named one is the primary metric unless
        the task default (``balanced_accuracy``, ``mae``) is among them. Default: all of
        the task's metrics (``roc_auc`` when the estimator has ``predict_proba`` or
        ``decision_function``).
    task : {"auto", "classification", "regression"}, default="auto"
        ``"auto"``: classification when y holds labels (strings, booleans) or few distinct
        integers (at most ``max(2, min(10, n_samples // 5))``), regression otherwise.
    n_jobs : int, default=None
        Number of jobs to run in parallel over folds. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context. ``-1`` means using all processors.
    random_state : int, RandomState instance or None, default=0
        Seeds the fold shuffling and the bootstrap.
    n_boot : int, default=1000
        Bootstrap resamples for the confidence intervals.
    ci : float, default=0.95
        Coverage of the confidence intervals.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    ValueError
        If y and X differ in length, y or X has missing values, y has a single class,
        groups has fewer unique values than folds, or a fold splits a group.

    See Also
    --------
    compare : several candidates on the same folds, with paired tests.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> image = np.repeat(np.arange(12), 10)          # 12 images of 10 cells
    >>> y = np.where(image % 2 == 0, "live", "dead")
    >>> X = rng.normal(size=(120, 3)) + (y == "live")[:, None]
    >>> res = evaluate(LogisticRegression(), X, y, groups=image, cv=3, n_boot=200)
    >>> res.protocol["cv_class"], res.protocol["n_groups"]
    ('StratifiedGroupKFold', 12)
    >>> row = res.summary.set_index("metric").loc["balanced_accuracy"]
    >>> bool(row["ci_low"] <= row["pooled"] <= row["ci_high"])
    True
    """
    setup = _Setup.build(
        [estimator], X, y, groups, cv, metrics, None, task, random_state, n_boot, ci
    )
    outputs = Parallel(n_jobs=n_jobs)(
        delayed(_fit_predict)(
            clone(estimator), X, setup.fit_target, train, test, setup.classes, setup.wants_grid
        )
        for train, test in setup.splits
    )
    return setup.result(outputs, repr(estimator))


def compare(
    estimators,
    X,
    y,
    groups=None,
    *,
    cv=5,
    metrics=None,
    primary=None,
    task="auto",
    n_jobs=None,
    random_state=0,
    n_boot=1000,
    ci=0.95,
):
    """Evaluate several candidates on the same folds and test their differences.

    Every candidate sees the same training and test sets and its out-of-fold predictions
    are bootstrapped with the same group resamples, so differences are paired: fold by
    fold for a t-test, resample by resample for the bootstrap interval.

    Parameters
    ----------
    estimators : dict of str to estimator
        The candidates, by name.
    X, y, groups, cv, metrics, task, n_jobs, random_state, n_boot, ci
        As in :func:`evaluate`; `n_jobs` parallelises over candidates and folds.
    primary : str, default=None
        Metric for the paired tests; default ``balanced_accuracy`` (classification) or
        ``mae`` (regression) when computed, else the first metric.

    Returns
    -------
    ComparisonResult

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.dummy import DummyRegressor
    >>> from sklearn.linear_model import Ridge
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 2))
    >>> counts = 50 + 10 * X[:, 0] + rng.normal(size=60)
    >>> res = compare({"ridge": Ridge(), "mean": DummyRegressor()}, X, counts,
    ...               groups=np.repeat(np.arange(20), 3), cv=4, n_boot=200)
    >>> res.wide("pooled")["mae"].round(1).to_dict()
    {'ridge': 0.9, 'mean': 7.9}
    >>> bool(res.paired.loc[0, "diff_ci_high"] < 0)   # ridge's MAE is lower
    True
    """
    if not isinstance(estimators, Mapping) or not estimators:
        raise ValueError(
            f"estimators must be a non-empty dict of name -> estimator, got {estimators!r}"
        )
    names = list(estimators)
    bad = [name for name in names if not isinstance(name, str)]
    if bad:
        raise ValueError(f"estimators must be keyed by str names, got {bad!r}")
    setup = _Setup.build(
        list(estimators.values()),
        X,
        y,
        groups,
        cv,
        metrics,
        primary,
        task,
        random_state,
        n_boot,
        ci,
    )
    jobs = [(name, train, test) for name in names for train, test in setup.splits]
    outputs = Parallel(n_jobs=n_jobs)(
        delayed(_fit_predict)(
            clone(estimators[name]), X, setup.fit_target, train, test, setup.classes,
            setup.wants_grid,
        )
        for name, train, test in jobs
    )
    k = len(setup.splits)
    results = {
        name: setup.result(outputs[i * k : (i + 1) * k], repr(estimators[name]))
        for i, name in enumerate(names)
    }
    table = pd.concat(
        [r.summary.assign(candidate=name) for name, r in results.items()], ignore_index=True
    )
    table = table[["candidate", *results[names[0]].summary.columns]]
    protocol = setup.protocol()
    del protocol["estimator"], protocol["score_method"]
    protocol["candidates"] = {name: repr(estimators[name]) for name in names}
    protocol["training"] = {
        name: {
            "fit_seconds_mean": float(np.mean(r.protocol["fit_seconds"])),
            "hardware": ", ".join(r.protocol["hardware"]),
        }
        for name, r in results.items()
    }
    return ComparisonResult(results, table, _paired_tests(results, setup), protocol)


# --------------------------------------------------------------------------- the protocol


@dataclass
class _Setup:
    """Checked inputs and everything shared by the candidates: folds, metrics, resamples."""

    y: np.ndarray
    task: str
    task_source: str
    classes: np.ndarray | None
    groups: np.ndarray | None
    groups_source: str
    splits: list
    fold: np.ndarray
    cv_info: dict
    metrics: list
    primary: str
    counts: np.ndarray  # (n_boot, n_units) bootstrap multiplicities
    unit_index: np.ndarray  # bootstrap unit of each tested sample
    ci: float
    random_state: object
    fit_y: object = None  # point annotations, when y held them (y is then their counts)
    true_grid: object = None  # (n, 64) true objects per grid cell, for the GAME metrics

    @property
    def fit_target(self):
        return self.y if self.fit_y is None else self.fit_y

    @property
    def wants_grid(self):
        return self.true_grid is not None and any(_is_game(m) for m in self.metrics)

    @classmethod
    def build(cls, estimators, X, y, groups, cv, metrics, primary, task, random_state, n_boot, ci):
        _check_ci(n_boot, ci)
        n = _n_samples(X)
        fit_y = true_grid = None
        points = _point_targets(y, X, n)
        if points is not None:  # dot annotations: count metrics on their counts, GAME on grids
            y, fit_y, true_grid = points
            task = "regression" if task == "auto" else task
            if metrics is None and all(hasattr(e, "predict_grid") for e in estimators):
                metrics = [*_DEFAULT_METRICS["regression"], "game1", "game2", "game3"]
        y = _check_y(y, n)
        task, task_source = _resolve_task(task, y, estimators)
        _check_estimator_types(estimators, task, y)
        classes = None
        if task == "classification":
            classes = np.unique(y)
            if len(classes) < 2:
                raise ValueError(
                    f"y has a single class {_py(classes[0])!r}; a classifier needs at least two"
                )
        if not all(_allows_nan(est) for est in estimators):
            _check_finite_X(X)
        groups, groups_source = _resolve_groups(groups, X, n)
        splits, fold, cv_info = _make_splits(cv, task, y, groups, n, random_state)
        metrics = _resolve_metrics(metrics, task, estimators)
        primary = _resolve_primary(primary, task, metrics)
        tested = fold >= 0
        units = groups[tested] if groups is not None else np.flatnonzero(tested)
        _, unit_index = np.unique(units, return_inverse=True)
        counts = _resample_counts(int(unit_index.max()) + 1, n_boot, random_state)
        return cls(
            y=y,
            task=task,
            task_source=task_source,
            classes=classes,
            groups=groups,
            groups_source=groups_source,
            splits=splits,
            fold=fold,
            cv_info=cv_info,
            metrics=metrics,
            primary=primary,
            counts=counts,
            unit_index=unit_index,
            ci=ci,
            random_state=random_state,
            fit_y=fit_y,
            true_grid=true_grid,
        )

    def protocol(self, estimator=None, score_method=None):
        n_groups = None if self.groups is None else len(np.unique(self.groups))
        seed = self.random_state
        if not isinstance(seed, numbers.Integral | None):
            seed = repr(seed)
        return {
            "estimator": estimator,
            **self.cv_info,
            "grouped": self.groups is not None,
            "groups_source": self.groups_source,
            "n_groups": n_groups,
            "n_samples": len(self.y),
            "n_tested": int(np.sum(self.fold >= 0)),
            "task": self.task,
            "task_source": self.task_source,
            "classes": None if self.classes is None else self.classes.tolist(),
            "metrics": [m.name for m in self.metrics],
            "primary_metric": self.primary,
            "score_method": score_method,
            "ci": self.ci,
            "n_boot": len(self.counts),
            "ci_method": "percentile bootstrap of the out-of-fold predictions, resampling "
            f"{'groups' if self.groups is not None else 'samples'}",
            "random_state": seed,
        }

    def result(self, outputs, estimator_repr):
        """An EvaluationResult from the per-fold (pred, score, score_method) outputs."""
        score_method = next((o[2] for o in outputs if o[2] is not None), None)
        rows = []
        for k, ((_, test), (pred, score, *_)) in enumerate(zip(self.splits, outputs, strict=True)):
            for metric in self.metrics:
                rows.append(
                    (k, metric.name, self._score(metric, self.y[test], pred, score, test))
                )
        fold_scores = pd.DataFrame(rows, columns=["fold", "metric", "value"])

        order = np.concatenate([test for _, test in self.splits])
        sample = np.sort(order)
        back = np.argsort(order, kind="stable")
        pred = np.concatenate([o[0] for o in outputs])[back]
        score = None
        if score_method is not None and all(o[1] is not None for o in outputs):
            score = np.concatenate([o[1] for o in outputs])[back]
        else:
            score_method = None
        predictions = self._predictions(sample, pred, score, score_method)

        y_true = self.y[sample]
        summary, boot = [], {}
        for metric in self.metrics:
            values = fold_scores.loc[fold_scores["metric"] == metric.name, "value"]
            values = values.to_numpy(dtype=float)
            pooled, boot[metric.name] = self._pooled(metric, y_true, pred, score, sample)
            low, high = _quantiles(boot[metric.name], self.ci)
            values = values[~np.isnan(values)]
            summary.append(
                {
                    "metric": metric.name,
                    "mean": float(values.mean()) if len(values) else np.nan,
                    "sd": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                    "pooled": pooled,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
        return EvaluationResult(
            task=self.task,
            fold_scores=fold_scores,
            summary=pd.DataFrame(summary),
            predictions=predictions,
            fold_assignment=self.fold.copy(),
            splits=self.splits,
            protocol={
                **self.protocol(estimator_repr, score_method),
                "fit_seconds": [round(float(o[3]), 3) for o in outputs],
                "hardware": sorted({o[4] for o in outputs}),
            },
            classes=self.classes,
            bootstrap=boot,
        )

    def _score(self, metric, y_true, pred, score, test=None):
        if _is_game(metric):
            if self.true_grid is None or score is None:
                return np.nan
            return metric(self.true_grid[test], score)
        if getattr(metric, "per_class", False) and len(np.unique(y_true)) < len(self.classes):
            return np.nan  # the fold lacks a class: scored on the others alone, a constant
            # majority guess would be perfect
        if not metric.needs_score:
            return metric(y_true, pred, self.classes)
        return np.nan if score is None else metric(y_true, score, self.classes)

    def _pooled(self, metric, y_true, pred, score, sample=None):
        if _is_game(metric):
            if self.true_grid is None or score is None:
                warnings.warn(
                    f"metric {metric.name!r} needs dot annotations as y and an estimator "
                    "with predict_grid; its values are NaN",
                    UserWarning,
                    stacklevel=4,
                )
                return np.nan, np.full(len(self.counts), np.nan)
            y_true, pred = self.true_grid[sample], score
            values = _bootstrap_values(metric, y_true, pred, self.counts, self.unit_index)
            return float(metric(y_true, pred)), values
        out = score if metric.needs_score else pred
        if out is None:
            warnings.warn(
                f"metric {metric.name!r} needs predict_proba or decision_function, which "
                "the estimator lacks; its values are NaN",
                UserWarning,
                stacklevel=4,
            )
            return np.nan, np.full(len(self.counts), np.nan)
        pooled = float(metric(y_true, out, self.classes))
        values = _bootstrap_values(metric, y_true, out, self.counts, self.unit_index, self.classes)
        return pooled, values

    def _predictions(self, sample, pred, score, score_method):
        frame = pd.DataFrame(
            {
                "sample": sample,
                "group": self.groups[sample] if self.groups is not None else None,
                "fold": self.fold[sample],
                "y_true": self.y[sample],
                "y_pred": pred,
            }
        )
        if score is not None and score_method != "predict_grid":
            prefix = "proba" if score_method == "predict_proba" else "score"
            columns = {f"{prefix}_{c}": score[:, k] for k, c in enumerate(self.classes)}
            frame = pd.concat([frame, pd.DataFrame(columns)], axis=1)
        return frame


def _fit_predict(estimator, X, y, train, test, classes, grid=False):
    """Fit on the training samples; predict (and score, for classifiers) the test samples.

    With ``grid`` (GAME metrics), an estimator with ``predict_grid`` gives its objects per
    grid cell as the score, and their sums as the predictions. Returns (pred, score,
    score method, fit seconds, hardware the fit ran on).
    """
    start = time.perf_counter()
    estimator.fit(_take(X, train), y[train])
    cost = (time.perf_counter() - start, _hardware(estimator))
    X_test = _take(X, test)
    if grid and hasattr(estimator, "predict_grid"):
        cells = np.asarray(estimator.predict_grid(X_test), dtype=float)
        return cells.sum(axis=1), cells, "predict_grid", *cost
    pred = np.asarray(estimator.predict(X_test))
    _check_predictions(pred, classes, type(estimator).__name__)
    if classes is not None:
        for method in _SCORE_METHODS:
            if hasattr(estimator, method):
                raw = np.asarray(getattr(estimator, method)(X_test), dtype=float)
                return pred, _align_scores(raw, estimator.classes_, classes, method), method, *cost
    return pred, None, None, *cost


def _check_predictions(pred, classes, name):
    """Refuse predictions no metric can score, naming what is wrong, before the next fold."""
    if classes is None:
        bad = ~np.isfinite(pred.astype(float, copy=False))
        if bad.any():
            raise ValueError(f"{name} predicted {int(bad.sum())} NaN or infinite values of "
                             f"{len(pred)} in a test fold; every prediction must be a number")
        return
    unknown = np.setdiff1d(pred, classes)
    if unknown.size:
        raise ValueError(f"{name} predicted labels {unknown[:5].tolist()} that are not among "
                         f"y's classes {classes.tolist()}")


def _hardware(estimator):
    """Where a fitted estimator trained: a step's ``device_`` (trained networks), else the CPU."""
    steps = estimator.steps if isinstance(estimator, Pipeline) else [(None, estimator)]
    for _, step in steps:
        parts = [p for _, p in getattr(step, "transformer_list", [])] or [step]
        for part in parts:
            device = getattr(part, "device_", None)
            if isinstance(device, str):
                return device
    return f"cpu ({os.cpu_count()} cores)"


def _is_game(metric):
    return metric.name in ("game0", "game1", "game2", "game3")


def _point_targets(y, X, n):
    """(counts, points, true grid counts) when y holds one (k, 2) point array per sample."""
    if not isinstance(y, list | tuple) and not (isinstance(y, np.ndarray) and y.dtype == object):
        return None
    items = list(y)
    if not items or not all(
        isinstance(p, np.ndarray) and p.ndim == 2 and p.shape[1] == 2 for p in items
    ):
        return None
    if len(items) != n:
        raise ValueError(f"y has {len(items)} samples but X has {n}")
    from featcell.metrics import grid_counts
    from featcell.points import _image_shape

    points = np.empty(n, dtype=object)
    points[:] = items
    counts = np.array([len(p) for p in items], dtype=float)
    true_grid = np.full((n, 64), np.nan)
    for i in range(n):
        item = _take(X, [i])[0]
        shape = item.shape[:2] if hasattr(item, "shape") else _image_shape(Path(item))
        if shape is not None:
            true_grid[i] = grid_counts([items[i]], shape)[0]
    return counts, points, true_grid


def _take(X, indices):
    """Samples of X: scikit-learn's indexing for arrays, frames and lists, else X[indices]."""
    if hasattr(X, "iloc") or hasattr(X, "shape") or isinstance(X, list | tuple):
        return _safe_indexing(X, indices)
    return X[indices]


def _align_scores(raw, fitted_classes, classes, method):
    """Scores in the column order of all classes; a class unseen in training ranks last."""
    if raw.ndim == 1:  # binary decision_function: the score of fitted_classes[1]
        raw = np.column_stack([-raw, raw])
    fill = 0.0 if method == "predict_proba" else raw.min() - 1
    out = np.full((len(raw), len(classes)), fill)
    out[:, np.searchsorted(classes, fitted_classes)] = raw
    return out


def _py(value):
    """A numpy scalar as the Python value, for readable error messages."""
    return value.item() if isinstance(value, np.generic) else value


def _n_samples(X):
    try:
        return len(X)
    except TypeError:  # scipy sparse matrices have no len()
        return X.shape[0]


def _check_y(y, n):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label or value per sample), got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"y has {len(y)} samples but X has {n}")
    missing = pd.isna(y) if y.dtype.kind == "O" else (np.isnan(y) if y.dtype.kind == "f" else None)
    if missing is not None and missing.any():
        raise ValueError(
            f"y has {int(missing.sum())} missing values (first at sample "
            f"{int(np.argmax(missing))}); drop those samples or fill them in"
        )
    if y.dtype.kind == "O":
        kinds = {}
        for i, value in enumerate(y):  # numbers of any type are one kind, strings another
            kind = "number" if isinstance(value, (numbers.Number, np.number)) else type(value).__name__
            kinds.setdefault(kind, i)
        if len(kinds) > 1:
            examples = ", ".join(f"{y[i]!r} (sample {i})" for i in kinds.values())
            raise ValueError(
                f"y mixes labels of different types: {examples}; give every label the same "
                "type (e.g. all strings: y.astype(str))"
            )
    return y


def _allows_nan(estimator):
    """True when the estimator handles NaN: it says so, or it is a pipeline with an imputer."""
    if isinstance(estimator, Pipeline):  # its own tag ignores the steps
        steps = [step for _, step in estimator.steps if step not in (None, "passthrough")]
        return any(isinstance(step, _BaseImputer) for step in steps) or _allows_nan(steps[0])
    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except (AttributeError, TypeError, ValueError):
        return False


def _check_finite_X(X):
    if isinstance(X, pd.DataFrame):
        values = X.select_dtypes("number").to_numpy(float)
    elif sp.issparse(X):
        values = X.data
    elif isinstance(X, np.ndarray) and X.dtype.kind in "fc":
        values = X
    else:
        return
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    where = ""
    if not sp.issparse(X):
        rows = bad.reshape(len(bad), -1).any(axis=1)
        where = f" in {int(rows.sum())} samples (first at sample {int(np.argmax(rows))})"
    raise ValueError(
        f"X has {int(bad.sum())} NaN or infinite values{where}; drop those samples or "
        "impute them inside the pipeline (sklearn.impute.SimpleImputer)"
    )


def _resolve_task(task, y, estimators=()):
    if task in ("classification", "regression"):
        return task, "given"
    if task != "auto":
        raise ValueError(f"task must be 'auto', 'classification' or 'regression', got {task!r}")
    # the estimators say it first: integer counts with few values are still counts
    kinds = {_kind(e) for e in estimators}
    if len(kinds) == 1 and None not in kinds:
        kind = kinds.pop()
        noun = {"regression": "regressor", "classification": "classifier"}[kind]
        return kind, f"inferred: {'every' if len(estimators) > 1 else 'the'} estimator is a {noun}"
    nature = _y_nature(y)
    if nature == "labels":
        return "classification", "inferred: y holds labels"
    if nature == "fractional":
        return "regression", "inferred: y has non-integer values"
    n_unique = len(np.unique(y))
    limit = max(2, min(10, len(y) // 5))
    if n_unique <= limit:
        return "classification", f"inferred: y has {n_unique} distinct integers (<= {limit})"
    return "regression", f"inferred: y has {n_unique} distinct integers (> {limit})"


def _y_nature(y):
    """``"labels"`` (text, booleans, objects other than numbers), ``"fractional"`` (numbers
    not all whole) or ``"integers"``; an object array of numbers (checked to be of one
    type by :func:`_check_y`) counts as numbers."""
    values = y
    if y.dtype.kind == "O" and len(y):
        first = y[0]
        if isinstance(first, (bool, np.bool_)) or not isinstance(first, (numbers.Number,
                                                                         np.number)):
            return "labels"
        values = y.astype(float)
    if y.dtype.kind in "USb":
        return "labels"
    if values.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0):
        return "fractional"
    return "integers"


def _kind(estimator):
    """``"regression"``, ``"classification"`` or None (an estimator without scikit-learn's
    tags says neither)."""
    try:
        return ("regression" if is_regressor(estimator)
                else "classification" if is_classifier(estimator) else None)
    except AttributeError:  # no __sklearn_tags__
        return None


def _check_estimator_types(estimators, task, y):
    """Refuse an estimator that cannot learn ``y`` in ``task``, naming it: a regressor given
    labels, a classifier given measurements (non-integer numbers) or asked to regress."""
    nature = _y_nature(y)
    for estimator in estimators:
        name = type(estimator).__name__
        kind = _kind(estimator)
        if kind == "regression" and (task == "classification" or nature == "labels"):
            what = "labels" if nature == "labels" else "classes (task='classification')"
            raise ValueError(f"{name} is a regressor but y holds {what}; use a classifier "
                             "(e.g. featcell.heads.make_head('lr'))")
        if kind == "classification" and (task == "regression" or nature == "fractional"):
            what = ("non-integer numbers, a measurement" if nature == "fractional"
                    else "numbers to regress (task='regression')")
            raise ValueError(f"{name} is a classifier but y holds {what}; use a regressor "
                             "(e.g. featcell.heads.make_head('lr', 'regression'))")


_UNGROUPED_WARNING = (
    "no groups were given and X has none (no X.groups('image'), no 'Metadata_ImageID' "
    "column), so the folds split samples at random. Cells of one image share "
    "its focus, illumination, staining and density: random folds put near-duplicates in "
    "training and test, and the scores will be optimistic for new images. Pass "
    "groups=<image or well id of each sample>, or groups='none' if the samples really are "
    "independent."
)


def _resolve_groups(groups, X, n):
    if isinstance(groups, str):
        if groups == "none":
            return None, "none: groups='none' (samples treated as independent)"
        values, source = _groups_by_name(X, groups)
    elif groups is None:
        found = _groups_from_X(X)
        if found is None:
            warnings.warn(_UNGROUPED_WARNING, UserWarning, stacklevel=4)
            return None, "none: no groups given or found in X (optimistic)"
        values, source = found
    else:
        values, source = np.asarray(groups), "groups argument"
    if values.ndim != 1 or len(values) != n:
        raise ValueError(f"groups has shape {values.shape} but X has {n} samples")
    if pd.isna(values).any():
        raise ValueError(f"groups has {int(pd.isna(values).sum())} missing values")
    if values.dtype == object:  # mixed numbers and text cannot be sorted: compare as text
        values = values.astype(str)
    n_groups = len(np.unique(values))
    if n_groups < 2:
        raise ValueError(
            f"groups has a single unique value {_py(values[0])!r}; grouped cross-validation needs "
            "at least as many groups as folds"
        )
    return values, source


def _groups_from_X(X):
    if callable(getattr(X, "groups", None)):
        try:
            return np.asarray(X.groups("image")), "X.groups('image')"
        except KeyError:
            pass
    metadata = getattr(X, "metadata", None)
    if isinstance(metadata, pd.DataFrame) and "Metadata_ImageID" in metadata:
        return metadata["Metadata_ImageID"].to_numpy(), "X.metadata['Metadata_ImageID']"
    if isinstance(X, pd.DataFrame) and "Metadata_ImageID" in X.columns:
        return X["Metadata_ImageID"].to_numpy(), "X['Metadata_ImageID']"
    return None


def _groups_by_name(X, name):
    if callable(getattr(X, "groups", None)):
        try:
            return np.asarray(X.groups(name)), f"X.groups({name!r})"
        except KeyError as err:
            raise ValueError(f"groups={name!r}: {err.args[0]}") from None
    frame = getattr(X, "metadata", X)
    if isinstance(frame, pd.DataFrame):
        for column in (name, f"Metadata_{name}"):
            if column in frame.columns:
                return frame[column].to_numpy(), f"X[{column!r}]"
        raise ValueError(f"groups={name!r} is not a column of X; columns: {list(frame.columns)!r}")
    raise ValueError(
        f"groups={name!r} names a column, but X ({type(X).__name__}) has no metadata; pass "
        "an array of group ids, or groups='none'"
    )


def _make_splits(cv, task, y, groups, n, random_state):
    n_groups = None if groups is None else len(np.unique(groups))
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if cv < 2:
            raise ValueError(f"cv must be at least 2 folds, got {cv!r}")
        if n_groups is not None and n_groups < cv:
            raise ValueError(
                f"groups has {n_groups} unique values but cv={cv} folds need at least {cv}; "
                "lower cv or pass finer groups"
            )
        if groups is not None:
            kind = StratifiedGroupKFold if task == "classification" else GroupKFold
        else:
            kind = StratifiedKFold if task == "classification" else KFold
        splitter = kind(n_splits=cv, shuffle=True, random_state=random_state)
    elif hasattr(cv, "split"):
        splitter = cv
    elif hasattr(cv, "__iter__") and not isinstance(cv, str):
        splitter = None
    else:
        raise ValueError(
            f"cv must be a number of folds, a splitter or an iterable of (train, test), got {cv!r}"
        )
    if splitter is None:
        splits, info = cv, {"cv": "predefined (train, test) splits", "cv_class": "list"}
    else:
        splits = splitter.split(np.zeros((n, 1)), y, groups)
        info = {"cv": repr(splitter), "cv_class": type(splitter).__name__}
    splits = [
        (np.asarray(train, dtype=np.intp), np.asarray(test, dtype=np.intp))
        for train, test in splits
    ]
    if not splits:
        raise ValueError(f"cv={cv!r} produced no splits")
    fold = np.full(n, -1)
    for k, (train, test) in enumerate(splits):
        if np.any(fold[test] >= 0):
            raise ValueError(
                f"cv={cv!r} puts sample {int(test[np.argmax(fold[test] >= 0)])} in more than "
                "one test set; evaluate needs disjoint test sets (KFold-style splitters)"
            )
        fold[test] = k
        both = np.intersect1d(train, test)
        if len(both):
            raise ValueError(
                f"cv={cv!r} puts sample {int(both[0])} in both the training and the test set "
                f"of fold {k} ({len(both)} such samples): the model would be scored on what "
                "it learnt from; give disjoint training and test indices"
            )
        if groups is not None:
            shared = np.intersect1d(groups[train], groups[test])
            if len(shared):
                raise ValueError(
                    f"cv={cv!r} puts group {_py(shared[0])!r} in both the training and the test "
                    f"set of fold {k}; use a group-aware splitter (GroupKFold, "
                    "StratifiedGroupKFold, LeaveOneGroupOut) or cv=<number of folds>"
                )
    info.update(n_splits=len(splits), fold_sizes=[len(test) for _, test in splits])
    return splits, fold, info


def _resolve_metrics(metrics, task, estimators):
    if metrics is None:
        names = list(_DEFAULT_METRICS[task])
        if not any(hasattr(e, m) for e in estimators for m in _SCORE_METHODS):
            names = [m for m in names if not _METRICS[m].needs_score]
        return [_METRICS[m] for m in names]
    if isinstance(metrics, str):
        metrics = [metrics]
    if isinstance(metrics, Mapping):
        items = list(metrics.items())
    else:
        items = [(m if isinstance(m, str) else getattr(m, "__name__", repr(m)), m) for m in metrics]
    resolved = []
    for name, metric in items:
        if isinstance(metric, str):
            if metric not in _METRICS:
                raise ValueError(f"unknown metric {metric!r}. Known: {sorted(_METRICS)!r}")
            if _METRICS[metric].task != task:
                raise ValueError(
                    f"metric {metric!r} is for {_METRICS[metric].task} but the task is {task}"
                )
            resolved.append(_METRICS[metric])
        elif callable(metric):
            resolved.append(_Metric(name, metric, task, False, None))
        else:
            raise TypeError(f"metrics must hold names or callables, got {metric!r}")
    if not resolved:
        raise ValueError("metrics is empty")
    return resolved


def _resolve_primary(primary, task, metrics):
    names = [m.name for m in metrics]
    if primary is None:
        return _DEFAULT_PRIMARY[task] if _DEFAULT_PRIMARY[task] in names else names[0]
    if primary not in names:
        raise ValueError(f"primary={primary!r} is not among the metrics {names!r}")
    return primary


def _cv_words(p):
    """The folds in words: ``"5-fold StratifiedGroupKFold cross-validation over 60 samples"``,
    ``"2 predefined folds (cross-validation over 60 samples, 20 of them tested)"``."""
    tested = p.get("n_tested", p["n_samples"])
    samples = f"{p['n_samples']} samples" + (
        f", {tested} of them tested" if tested is not None and tested < p["n_samples"] else "")
    if p["cv_class"] == "list":
        return f"{p['n_splits']} predefined folds (cross-validation over {samples})"
    return f"{p['n_splits']}-fold {p['cv_class']} cross-validation over {samples}"


def _describe(p):
    grouped = (
        f"in {p['n_groups']} groups ({p['groups_source']}); no group is on both sides of a fold"
        if p["grouped"]
        else f"ungrouped ({p['groups_source']})"
    )
    return (
        f"{_cv_words(p)} {grouped}. Task: {p['task']} ({p['task_source']}). Primary metric: "
        f"{p['primary_metric']}. Intervals: {p['ci']:.0%} {p['ci_method']} "
        f"({p['n_boot']} resamples)."
    )


# --------------------------------------------------------------------------- paired tests


def _paired_tests(results, setup):
    metric = setup.primary
    names = list(results)
    train_test = np.mean([len(test) / len(train) for train, test in setup.splits])
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            fa, fb = (
                r.fold_scores.loc[r.fold_scores["metric"] == metric, "value"].to_numpy()
                for r in (results[a], results[b])
            )
            diff = fa - fb
            diff = diff[np.isfinite(diff)]  # a fold lacking a class scores no class average
            t, p = _paired_t(diff, 0.0)
            _, p_corrected = _paired_t(diff, train_test)
            boot = results[a].bootstrap[metric] - results[b].bootstrap[metric]
            low, high = _quantiles(boot, setup.ci)
            pooled = (
                results[a].summary.set_index("metric").loc[metric, "pooled"]
                - results[b].summary.set_index("metric").loc[metric, "pooled"]
            )
            rows.append(
                {
                    "candidate_a": a,
                    "candidate_b": b,
                    "metric": metric,
                    "fold_diff_mean": float(np.mean(diff)) if diff.size else np.nan,
                    "n_folds": diff.size,
                    "t_statistic": t,
                    "p_value": p,
                    "p_value_corrected": p_corrected,
                    "pooled_diff": float(pooled),
                    "diff_ci_low": low,
                    "diff_ci_high": high,
                    "p_value_bootstrap": _bootstrap_p(boot),
                }
            )
    columns = [
        "candidate_a",
        "candidate_b",
        "metric",
        "fold_diff_mean",
        "n_folds",
        "t_statistic",
        "p_value",
        "p_value_corrected",
        "pooled_diff",
        "diff_ci_low",
        "diff_ci_high",
        "p_value_bootstrap",
    ]
    return pd.DataFrame(rows, columns=columns)


def _paired_t(diff, test_train_ratio):
    """Paired t-test on fold differences; a ratio > 0 applies Nadeau & Bengio's correction.

    The corrected variance is var(d) · (1/k + n_test/n_train) (Nadeau & Bengio, "Inference
    for the generalization error", Machine Learning 52, 2003).
    """
    diff = np.asarray(diff, dtype=float)  # the folds the metric is defined on
    k = len(diff)
    if k < 2:
        return np.nan, np.nan
    var = np.var(diff, ddof=1) * (1 / k + test_train_ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.mean(diff) / np.sqrt(var)
    if np.isnan(t):
        return np.nan, np.nan
    return float(t), float(2 * stats.t.sf(abs(t), k - 1))


def _bootstrap_p(diff):
    diff = diff[~np.isnan(diff)]
    if len(diff) == 0:
        return np.nan
    return float(min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0))))
