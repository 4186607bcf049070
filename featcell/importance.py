"""Which kind of feature does a model rely on? Permutation importance by feature family.

A cell model built from a few hundred CellProfiler-style measurements (or 1280 CNN
dimensions) is hard to read column by column, and correlated columns share their
importance so that each one looks unimportant. :func:`family_importance` answers the
question a biologist asks instead — does the model use the cell's *shape*, its
*intensity*, its *texture*, the *colocalization* of its stains, or the *CNN* embedding?
— by permuting all the columns of a family together, on held-out cells only.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils.parallel import Parallel, delayed

__all__ = ["FAMILY_PREFIXES", "family_importance", "family_of_features"]

#: CellProfiler measurement categories and the feature family each belongs to.
FAMILY_PREFIXES = {
    "AreaShape": "morphology",
    "Zernike": "morphology",
    "Location": "morphology",
    "Intensity": "intensity",
    "RadialDistribution": "intensity",
    "Texture": "texture",
    "Granularity": "texture",
    "Correlation": "colocalization",
    "CNN": "cnn",
}
_UNKNOWN = "other"
_METADATA = "metadata"  # Metadata_* columns describe cells; they are never permuted


def family_of_features(names):
    """Feature family of each column name, by CellProfiler's category prefix.

    ``AreaShape_`` → morphology, ``Intensity_``/``RadialDistribution_`` → intensity,
    ``Texture_``/``Granularity_`` → texture, ``Correlation_`` → colocalization,
    ``CNN_`` → cnn; a compartment prefix (``Nuclei_AreaShape_Area``) is allowed;
    ``Metadata_*`` columns are ``"metadata"`` (not features: never permuted); anything
    else is ``"other"``.

    Parameters
    ----------
    names : list of str
        Column names.

    Returns
    -------
    families : ndarray of str objects
        One family per name.

    Examples
    --------
    >>> from featcell.importance import family_of_features
    >>> family_of_features(["AreaShape_Area", "Nuclei_Texture_Contrast_DNA_3_00",
    ...                     "CNN_EfficientNetLite0_0001_DNA", "Metadata_Well"]).tolist()
    ['morphology', 'texture', 'cnn', 'metadata']
    """
    out = []
    for name in names:
        parts = str(name).split("_")
        if parts[0] == "Metadata":
            out.append(_METADATA)
            continue
        family = FAMILY_PREFIXES.get(parts[0])
        if family is None and len(parts) > 2:
            family = FAMILY_PREFIXES.get(parts[1])  # <Compartment>_<Category>_...
        out.append(family or _UNKNOWN)
    return np.asarray(out, dtype=object)


def family_importance(
    estimator,
    X,
    y,
    groups=None,
    *,
    cv=5,
    scoring=None,
    n_repeats=5,
    random_state=0,
    families=None,
    feature_steps=None,
    n_jobs=None,
):
    """Permutation importance of each feature family, measured on held-out folds.

    For every cross-validation fold the estimator is fitted on the training cells.
    The pipeline is then split into its feature step(s) (:class:`~featcell.CellFeatures`,
    :class:`~featcell.cnn.CNNEmbedding`, a ``FeatureUnion`` of them) and the rest
    (imputer, scaler, classifier): the test cells' features are computed once, and
    all the columns of one family are shuffled together across the test cells (one
    shuffle of whole rows of the family's block, so the family's internal correlations
    are kept) before the rest of the pipeline scores them. The importance of a family
    is the drop of the test score; it is never measured on cells the model was fitted on.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Cloned and fitted per fold. A pipeline whose first step(s) turn a
        :class:`~featcell.CellSet` (or images) into a table, e.g. from
        :func:`featcell.make_cell_classifier`, or any estimator of a feature table.
    X : CellSet, pandas.DataFrame or array-like
        The samples. A table is used as the feature table itself.
    y : (n_samples,) array-like
        Class labels or target values.
    groups : (n_samples,) array-like, str or None, default=None
        Group (image, well) of each sample; folds never split a group. A string names
        a group level of a CellSet (``"image"``) or a column of a DataFrame. None takes
        ``X.groups("image")`` from a CellSet or a ``Metadata_ImageID`` column, if any.
        ``"none"`` splits samples at random.
    cv : int, splitter or iterable of (train, test), default=5
        Folds; an int gives ``StratifiedGroupKFold``/``GroupKFold`` with groups
        (``StratifiedKFold``/``KFold`` without), shuffled with `random_state`. Pass
        ``result.splits`` of an :class:`~featcell.evaluation.EvaluationResult` to use the
        folds of an earlier evaluation.
    scoring : str, callable or None, default=None
        A scikit-learn scorer (higher is better). ``None``: ``"balanced_accuracy"``
        for classifiers, ``"neg_mean_absolute_error"`` for regressors (the drop is
        then the increase of the mean absolute error).
    n_repeats : int, default=5
        Shuffles per family and fold.
    random_state : int, RandomState instance or None, default=0
        Seeds the folds and the shuffles.
    families : dict of str to str, callable or None, default=None
        Family of each feature column, overriding the default: ``{column: family}``
        or ``callable(column_name) -> family``. By default the feature step's
        ``family_of_feature_`` is used, ``"cnn"`` for :class:`~featcell.cnn.CNNEmbedding`
        columns, and :func:`family_of_features` (CellProfiler prefixes) otherwise.
    feature_steps : int, str or None, default=None
        How many leading pipeline steps compute features (an int), or the name of the
        last of them. ``None`` detects them: every step up to the last one that does
        not take a plain table (its ``input_tags.two_d_array`` is False).
    n_jobs : int, default=None
        Number of jobs to run in parallel over folds. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context. ``-1`` means using all processors.

    Returns
    -------
    pandas.DataFrame
        One row per family, most important first: ``family``, ``n_features``,
        ``drop_mean`` (mean drop of the score over folds and repeats), ``drop_sd``
        (its standard deviation), ``drop_sem`` (standard error of the mean of the
        per-fold drops) and ``n_folds``. ``attrs`` holds ``scoring``, ``baseline``
        (mean held-out score without shuffling) and ``protocol`` (a sentence for a
        report).

    Notes
    -----
    Shuffling a family breaks its link with the label while keeping its marginal
    distribution, so a family whose information is also carried by another family
    (cell area by the CNN embedding, say) can show a small drop: the importance is
    "what the model loses without this family, given the others", not a causal claim.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from featcell.importance import family_importance
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["live", "dead"], 60)
    >>> X = pd.DataFrame({"AreaShape_Area": rng.normal(size=120) + 2 * (y == "live"),
    ...                   "Intensity_MeanIntensity_DNA": rng.normal(size=120),
    ...                   "Texture_Contrast_DNA_3_00": rng.normal(size=120)})
    >>> imp = family_importance(make_pipeline(StandardScaler(), LogisticRegression()),
    ...                         X, y, groups=np.arange(120) // 4, cv=3)
    >>> imp["family"].iloc[0]
    'morphology'
    """
    if not isinstance(n_repeats, numbers.Integral) or n_repeats < 1:
        raise ValueError(f"n_repeats must be a positive integer, got {n_repeats!r}")
    n = _n_samples(X)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y has shape {y.shape} but X has {n} samples")
    group_values = _resolve_groups(groups, X, n)
    splits = _make_splits(cv, estimator, y, group_values, random_state)
    if scoring is None:
        scoring = "balanced_accuracy" if is_classifier(estimator) else "neg_mean_absolute_error"
    scorer = check_scoring(estimator, scoring=scoring)
    rng = check_random_state(random_state)
    seeds = rng.randint(np.iinfo(np.int32).max, size=len(splits))
    outputs = Parallel(n_jobs=n_jobs)(
        delayed(_fold_importance)(
            clone(estimator), X, y, train, test, scorer, n_repeats, seed, families,
            feature_steps,
        )
        for (train, test), seed in zip(splits, seeds)
    )
    order = list(dict.fromkeys(f for out in outputs for f in out["families"]))
    rows = []
    for family in order:
        per_fold = [out["drops"][family] for out in outputs if family in out["drops"]]
        drops = np.concatenate(per_fold)
        fold_means = np.array([d.mean() for d in per_fold])
        rows.append(
            {
                "family": family,
                "n_features": int(max(out["families"].get(family, 0) for out in outputs)),
                "drop_mean": float(drops.mean()),
                "drop_sd": float(drops.std(ddof=1)) if len(drops) > 1 else np.nan,
                "drop_sem": (
                    float(fold_means.std(ddof=1) / np.sqrt(len(fold_means)))
                    if len(fold_means) > 1
                    else np.nan
                ),
                "n_folds": len(per_fold),
            }
        )
    table = pd.DataFrame(
        rows, columns=["family", "n_features", "drop_mean", "drop_sd", "drop_sem", "n_folds"]
    )
    table = table.sort_values("drop_mean", ascending=False, kind="stable").reset_index(drop=True)
    scoring_name = scoring if isinstance(scoring, str) else getattr(scoring, "__name__", "score")
    baseline = float(np.mean([out["baseline"] for out in outputs]))
    table.attrs["scoring"] = scoring_name
    table.attrs["baseline"] = baseline
    grouped = ("grouped" if group_values is not None else
               "predefined" if not isinstance(cv, numbers.Integral) and not hasattr(cv, "split")
               else "ungrouped")  # (a list of splits: grouped or not, as they were made)
    table.attrs["protocol"] = (
        f"Permutation importance of feature families on held-out folds ({len(splits)} "
        f"{grouped} folds, {n_repeats} shuffles per family and fold): the drop of "
        f"{scoring_name} (held-out baseline {baseline:.3f}) when all columns of a family "
        "are shuffled together across the test cells."
    )
    return table


# --------------------------------------------------------------------------- internals


def _n_samples(X):
    try:
        return len(X)
    except TypeError:
        return X.shape[0]


def _resolve_groups(groups, X, n):
    if isinstance(groups, str):
        if groups == "none":
            return None
        if callable(getattr(X, "groups", None)):
            try:
                values = np.asarray(X.groups(groups))
            except KeyError as err:
                raise ValueError(f"groups={groups!r}: {err.args[0]}") from None
        else:
            frame = getattr(X, "metadata", X)
            columns = [c for c in (groups, f"Metadata_{groups}") if isinstance(frame, pd.DataFrame)
                       and c in frame.columns]
            if not columns:
                raise ValueError(
                    f"groups={groups!r} is not a column of X; pass an array of group ids "
                    "or groups='none'"
                )
            values = frame[columns[0]].to_numpy()
    elif groups is None:
        values = None
        if callable(getattr(X, "groups", None)):
            try:
                values = np.asarray(X.groups("image"))
            except KeyError:
                values = None
        if values is None:
            frame = getattr(X, "metadata", X)
            if isinstance(frame, pd.DataFrame) and "Metadata_ImageID" in frame.columns:
                values = frame["Metadata_ImageID"].to_numpy()
        if values is None:
            return None
    else:
        values = np.asarray(groups)
    if values.ndim != 1 or len(values) != n:
        raise ValueError(f"groups has shape {values.shape} but X has {n} samples")
    return values


def _make_splits(cv, estimator, y, groups, random_state):
    n = len(y)
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if cv < 2:
            raise ValueError(f"cv must be at least 2 folds, got {cv!r}")
        if groups is not None and len(np.unique(groups)) < cv:
            raise ValueError(
                f"groups has {len(np.unique(groups))} unique values but cv={cv} folds need "
                f"at least {cv}; lower cv or pass finer groups"
            )
        classify = is_classifier(estimator)
        if groups is not None:
            kind = StratifiedGroupKFold if classify else GroupKFold
        else:
            kind = StratifiedKFold if classify else KFold
        splits = kind(n_splits=cv, shuffle=True, random_state=random_state).split(
            np.zeros((n, 1)), y, groups
        )
    elif hasattr(cv, "split"):
        splits = cv.split(np.zeros((n, 1)), y, groups)
    elif hasattr(cv, "__iter__") and not isinstance(cv, str):
        splits = cv
    else:
        raise ValueError(
            f"cv must be a number of folds, a splitter or an iterable of (train, test), got {cv!r}"
        )
    splits = [(np.asarray(tr, dtype=np.intp), np.asarray(te, dtype=np.intp)) for tr, te in splits]
    if not splits:
        raise ValueError(f"cv={cv!r} produced no splits")
    if groups is not None:
        for k, (train, test) in enumerate(splits):
            shared = np.intersect1d(groups[train], groups[test])
            if len(shared):
                raise ValueError(
                    f"cv={cv!r} puts group {shared[0]!r} in both the training and the test "
                    f"set of fold {k}; use a group-aware splitter or cv=<number of folds>"
                )
    return splits


def _takes_table(step):
    """Whether a step consumes an ordinary 2-D table (its tags say so)."""
    if step is None or step == "passthrough":
        return True
    if isinstance(step, FeatureUnion):
        return all(_takes_table(t) for _, t in step.transformer_list)
    if isinstance(step, Pipeline):
        return _takes_table(step.steps[0][1])
    try:
        return bool(step.__sklearn_tags__().input_tags.two_d_array)
    except AttributeError:
        return True


def _split_point(pipeline, feature_steps):
    """Number of leading steps of `pipeline` that compute the feature table."""
    if not isinstance(pipeline, Pipeline):
        if feature_steps not in (None, 0):
            raise ValueError(
                f"feature_steps={feature_steps!r} needs a Pipeline, got "
                f"{type(pipeline).__name__}"
            )
        return 0
    names = [name for name, _ in pipeline.steps]
    if feature_steps is None:
        k = 0
        for i, (_, step) in enumerate(pipeline.steps[:-1]):
            if not _takes_table(step):
                k = i + 1
        return k
    if isinstance(feature_steps, str):
        if feature_steps not in names:
            raise ValueError(f"feature_steps={feature_steps!r} is not a step of {names!r}")
        return names.index(feature_steps) + 1
    if (
        isinstance(feature_steps, numbers.Integral)
        and not isinstance(feature_steps, bool)
        and 0 <= feature_steps < len(names)
    ):
        return int(feature_steps)
    raise ValueError(
        f"feature_steps must be a step name or a number of steps in [0, {len(names) - 1}], "
        f"got {feature_steps!r}"
    )


def _names_out(step, n_columns):
    try:
        names = np.asarray(step.get_feature_names_out(), dtype=object)
    except (AttributeError, ValueError, TypeError):
        return np.asarray([f"x{i}" for i in range(n_columns)], dtype=object)
    return names


def _step_families(step, n_columns):
    """Family of every output column of a fitted feature step."""
    if isinstance(step, Pipeline):
        return _step_families(step.steps[-1][1], n_columns)
    if isinstance(step, FeatureUnion):
        parts = []
        for _, transformer in step.transformer_list:
            if transformer in (None, "drop"):
                continue
            width = len(_names_out(transformer, 0))
            parts.append(_step_families(transformer, width))
        families = np.concatenate(parts) if parts else np.empty(0, object)
        if len(families) == n_columns:
            return families
        return family_of_features(_names_out(step, n_columns))
    own = getattr(step, "family_of_feature_", None)
    if own is not None and len(own) == n_columns:
        return np.asarray(own, dtype=object)
    names = _names_out(step, n_columns)
    if type(step).__name__ == "CNNEmbedding":
        return np.full(len(names), "cnn", dtype=object)
    return family_of_features(names)


def _column_families(features_step, X_table, families):
    n_columns = X_table.shape[1]
    if features_step is None:
        names = (
            np.asarray(X_table.columns, dtype=object)
            if isinstance(X_table, pd.DataFrame)
            else np.asarray([f"x{i}" for i in range(n_columns)], dtype=object)
        )
        default = family_of_features(names)
    else:
        names = _names_out(features_step, n_columns)
        default = _step_families(features_step, n_columns)
        if isinstance(X_table, pd.DataFrame) and not hasattr(features_step,
                                                             "get_feature_names_out"):
            names = np.asarray(X_table.columns, dtype=object)  # the step's table names them
            default = family_of_features(names)
    if families is None:
        out = default
    elif isinstance(families, Mapping):
        if not set(families) & set(names):
            raise ValueError(
                f"families names none of the feature columns (such as {list(names[:3])}); "
                "its keys must be the names the feature step outputs"
            )
        out = np.asarray([families.get(n, d) for n, d in zip(names, default)], dtype=object)
    elif callable(families):
        out = np.asarray([families(n) for n in names], dtype=object)
    else:
        raise ValueError(
            f"families must be None, a dict of column -> family or a callable, got {families!r}"
        )
    if len(out) != n_columns:
        raise ValueError(
            f"the feature step gives {n_columns} columns but {len(out)} family names; pass "
            "families= explicitly"
        )
    return out


def _fold_importance(estimator, X, y, train, test, scorer, n_repeats, seed, families,
                     feature_steps):
    estimator.fit(_safe_indexing(X, train), y[train])
    k = _split_point(estimator, feature_steps)
    X_test = _safe_indexing(X, test)
    if k:
        features = estimator[:k]
        Z = features.transform(X_test)
        rest = estimator[k:]
        step = features if k > 1 else features.steps[0][1]
        column_family = _column_families(step, Z, families)
    else:
        Z, rest = X_test, estimator
        column_family = _column_families(None, Z, families)
    frame = Z if isinstance(Z, pd.DataFrame) else None
    values = (frame.to_numpy() if frame is not None else np.asarray(Z)).copy()
    y_test = y[test]

    def score(matrix):
        table = (
            pd.DataFrame(matrix, columns=frame.columns, index=frame.index)
            if frame is not None
            else matrix
        )
        return float(scorer(rest, table, y_test))

    baseline = score(values)
    rng = np.random.default_rng(seed)
    counts = dict(zip(*np.unique(column_family, return_counts=True)))
    drops = {}
    for family in dict.fromkeys(column_family):
        if family == _METADATA:
            continue
        columns = np.flatnonzero(column_family == family)
        scores = []
        original = values[:, columns].copy()
        for _ in range(n_repeats):
            values[:, columns] = original[rng.permutation(len(values))]
            scores.append(score(values))
        values[:, columns] = original
        drops[family] = baseline - np.asarray(scores)
    return {
        "baseline": baseline,
        "drops": drops,
        "families": {f: int(counts[f]) for f in dict.fromkeys(column_family) if f != _METADATA},
    }
