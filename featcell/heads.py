"""Model heads: the scikit-learn estimator at the end of a featcell pipeline.

:func:`make_head` builds one by short name, with class-imbalance handling and
settings that suit a few hundred to a few hundred thousand rows of image features.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

__all__ = ["HEADS", "BalancedClassifier", "make_head"]

HEADS = ("gnb", "lr", "lr_cv", "mlp", "rf", "svm", "xgb")
_TASKS = ("classification", "regression")


def _estimator_has(attr):
    def check(self):
        return hasattr(self.estimator_ if hasattr(self, "estimator_") else self.estimator, attr)

    return check


class BalancedClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Label-encode the target and weigh samples by class for any classifier.

    For estimators without a ``class_weight`` parameter (XGBoost, Gaussian naive
    Bayes, multi-layer perceptron): classes of any type (strings included) are
    encoded to ``0..n_classes-1`` before fitting and decoded on prediction, and
    ``class_weight`` is turned into per-sample weights passed to ``fit``.

    Parameters
    ----------
    estimator : classifier
        Unfitted classifier whose ``fit`` accepts ``sample_weight``.
    class_weight : "balanced", dict or None, default="balanced"
        As in scikit-learn: ``"balanced"`` weighs each class inversely to its
        frequency; a dict maps class labels to weights; None gives equal weights.

    Attributes
    ----------
    estimator_ : classifier
        The fitted clone of ``estimator``.
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the ``predict_proba`` columns.
    n_features_in_ : int
        Number of features seen during fit.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from featcell.heads import BalancedClassifier
    >>> X = np.array([[0.0], [0.1], [0.2], [0.3], [0.9], [1.1]])
    >>> y = ["live", "live", "live", "live", "dead", "dead"]
    >>> clf = BalancedClassifier(GaussianNB()).fit(X, y)
    >>> clf.predict([[0.1], [0.95]]).tolist()
    ['live', 'dead']
    """

    def __init__(self, estimator, *, class_weight="balanced"):
        self.estimator = estimator
        self.class_weight = class_weight

    def fit(self, X, y, sample_weight=None):
        """Fit the wrapped classifier on encoded labels with class-balancing weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels of any type.
        sample_weight : array-like of shape (n_samples,), optional
            Weights multiplied with the class weights.

        Returns
        -------
        self : BalancedClassifier
            The fitted classifier.
        """
        X, y = validate_data(self, X, y, **self._check_params())
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        if self.class_weight is not None:
            weight = weight * compute_sample_weight(self.class_weight, y)
        self.estimator_ = clone(self.estimator).fit(X, encoder.transform(y), sample_weight=weight)
        return self

    def _check_params(self):
        tags = self.estimator.__sklearn_tags__().input_tags
        return {
            "accept_sparse": ["csr", "csc"] if tags.sparse else False,
            "ensure_all_finite": "allow-nan" if tags.allow_nan else True,
        }

    def _validate(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, **self._check_params())

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Predicted labels, of the type seen in fit.
        """
        X = self._validate(X)
        return self.classes_[np.asarray(self.estimator_.predict(X), dtype=int)]

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities.
        """
        X = self._validate(X)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities.
        """
        X = self._validate(X)
        return self.estimator_.predict_log_proba(X)

    @property
    def feature_importances_(self):
        """Feature importances of the wrapped estimator, where it has them."""
        check_is_fitted(self)
        return self.estimator_.feature_importances_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.input_tags.sparse = inner.input_tags.sparse
        return tags


class _RareClassCalibration(CalibratedClassifierCV):
    """``CalibratedClassifierCV`` whose folds adapt to the rarest class.

    With ``cv=3`` scikit-learn refuses a class of fewer than 3 rows. Here the
    number of folds drops to the size of the rarest class (at least 2); a class of a
    single row is calibrated on the training decision values of one classifier fitted
    on every row (the only choice, and a reasonable one for such a class).
    """

    def fit(self, X, y, sample_weight=None, **fit_params):
        counts = np.unique(np.asarray(y), return_counts=True)[1]
        folds = self.cv if isinstance(self.cv, numbers.Integral) else None
        if folds is None or len(counts) < 2 or counts.min() >= folds:
            return super().fit(X, y, sample_weight=sample_weight, **fit_params)
        params = self.get_params(deep=False)
        if counts.min() >= 2:
            inner = CalibratedClassifierCV(**{**params, "cv": int(counts.min())})
        else:
            from sklearn.frozen import FrozenEstimator

            fitted = clone(self.estimator).fit(X, y, sample_weight=sample_weight, **fit_params)
            inner = CalibratedClassifierCV(
                FrozenEstimator(fitted), method=self.method, ensemble=self.ensemble)
        return _fit_in_place_of(self, inner, X, y, sample_weight, fit_params)


class _RareClassLogisticRegressionCV(LogisticRegressionCV):
    """``LogisticRegressionCV`` whose stratified folds adapt to the rarest class.

    With 5 folds scikit-learn warns about a class of fewer than 5 rows (some inner
    folds then lack it), once per fit: in a cross-validation, once per outer fold.
    As for the svm head's calibration, the number of folds drops to the size of the
    rarest class (at least 2); a class of a single row then sits out of one inner
    fold's training rows, without the warning.
    """

    def fit(self, X, y, sample_weight=None, **params):
        counts = np.unique(np.asarray(y), return_counts=True)[1]
        cv = self.cv
        if not isinstance(cv, StratifiedKFold) or len(counts) < 2 or counts.min() >= cv.n_splits:
            return super().fit(X, y, sample_weight=sample_weight, **params)
        folds = StratifiedKFold(max(2, int(counts.min())), shuffle=cv.shuffle,
                                random_state=cv.random_state)
        inner = LogisticRegressionCV(**{**self.get_params(deep=False), "cv": folds})
        return _fit_in_place_of(self, inner, X, y, sample_weight, params)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy, as every other head's (``scoring`` only chooses ``C``; scikit-learn's
        ``LogisticRegressionCV.score`` would return that scoring, here a negative log loss)."""
        return ClassifierMixin.score(self, X, y, sample_weight=sample_weight)


def _fit_in_place_of(estimator, inner, X, y, sample_weight, params):
    """Fit ``inner`` (``estimator``'s scikit-learn base, with folds that suit the rarest
    class) and give ``estimator`` its fitted attributes; its parameters stay as set.

    The warning about a class with fewer rows than folds is silenced: the folds were
    chosen for that class (a single-row class sits out of one fold, as documented).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        inner.fit(X, y, sample_weight=sample_weight, **params)
    estimator.__dict__.update({k: v for k, v in vars(inner).items() if k.endswith("_")})
    return estimator


def _xgb(task, random_state, n_jobs):
    from xgboost import XGBClassifier, XGBRegressor

    params = {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "max_depth": 4,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "tree_method": "hist",
        "random_state": random_state,
        # scikit-learn's convention (None means 1); XGBoost's own default takes every core
        "n_jobs": 1 if n_jobs is None else n_jobs,
    }
    if task == "regression":
        return XGBRegressor(**params)
    return XGBClassifier(**params)


def _standardised_target(regressor):
    """Fit on a standardised target: SVR's epsilon and C, an MLP's init assume unit scale."""
    from sklearn.compose import TransformedTargetRegressor

    return TransformedTargetRegressor(regressor=regressor, transformer=StandardScaler())


def make_head(name, task="classification", *, class_weight="balanced", random_state=0, n_jobs=None):
    """Build a scikit-learn estimator by short name.

    Parameters
    ----------
    name : {"svm", "rf", "lr", "lr_cv", "gnb", "xgb", "mlp"}
        ``"svm"``: RBF support-vector machine (``SVC`` with Platt-scaled
        probabilities from 3-fold ``CalibratedClassifierCV``, fewer folds when a
        class has fewer than 3 rows; or ``SVR`` on the standardised target);
        ``"rf"``: random forest of 300 trees; ``"lr"``: logistic regression, or
        ridge regression with the penalty chosen by efficient leave-one-out CV;
        ``"lr_cv"``: logistic regression with its ``C`` chosen among 9 values from
        0.001 to 10 by a stratified, shuffled 5-fold cross-validation of the training
        rows (log loss; ``LogisticRegressionCV``; fewer folds, at least 2, when a
        class has fewer than 5 rows; the inner folds do not know groups), ridge
        regression as ``"lr"`` for regression;
        ``"gnb"``: Gaussian naive Bayes (classification only); ``"xgb"``: gradient
        boosted trees (XGBoost); ``"mlp"``: a one-hidden-layer perceptron with early
        stopping (on the standardised target for regression). SVM, LR and MLP
        expect standardised features: put a ``StandardScaler`` before them.
    task : {"classification", "regression"}, default="classification"
        Kind of target.
    class_weight : "balanced", dict or None, default="balanced"
        Class weighting for classification; estimators without a ``class_weight``
        parameter (gnb, xgb, mlp) get it as per-sample weights through
        :class:`BalancedClassifier`, which also label-encodes string classes.
        Ignored for regression.
    random_state : int, RandomState instance or None, default=0
        Seed of the randomised heads.
    n_jobs : int, default=None
        Number of jobs to run in parallel for the heads that can (rf, xgb).
        ``None`` means 1 unless in a :obj:`joblib.parallel_backend` context.
        ``-1`` means using all processors.

    Returns
    -------
    estimator : scikit-learn estimator
        Unfitted.

    Raises
    ------
    ValueError
        For an unknown ``name`` or ``task``, or ``"gnb"`` with ``task="regression"``.

    Examples
    --------
    >>> from featcell.heads import make_head
    >>> make_head("rf", "regression").n_estimators
    300
    >>> X = [[i] for i in range(20)]
    >>> y = ["G1"] * 15 + ["M"] * 5
    >>> make_head("xgb").fit(X, y).predict([[2], [18]]).tolist()
    ['G1', 'M']
    """
    if not isinstance(name, str) or name not in HEADS:
        raise ValueError(f"head {name!r} is not known; expected one of {HEADS}")
    if task not in _TASKS:
        raise ValueError(f"task={task!r} is not supported; expected one of {_TASKS}")
    regression = task == "regression"

    if name == "svm":
        from sklearn.svm import SVC, SVR

        if regression:
            return _standardised_target(SVR(C=10.0, epsilon=0.01))
        # Platt scaling on 3-fold out-of-fold decision values, one SVC refitted on all rows
        # (SVC(probability=True) is deprecated since scikit-learn 1.9); fewer folds for a
        # class of fewer than 3 rows
        svc = SVC(C=1.0, class_weight=class_weight, random_state=random_state)
        return _RareClassCalibration(svc, method="sigmoid", cv=3, ensemble=False)
    if name == "rf":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        params = {"n_estimators": 300, "n_jobs": n_jobs, "random_state": random_state}
        if regression:
            return RandomForestRegressor(max_features=0.5, **params)
        return RandomForestClassifier(class_weight=class_weight, **params)
    if name in ("lr", "lr_cv"):
        from sklearn.linear_model import LogisticRegression, RidgeCV

        if regression:
            return RidgeCV(alphas=np.logspace(-1, 4, 11))
        if name == "lr_cv":
            model = _RareClassLogisticRegressionCV(
                Cs=np.logspace(-3, 1, 9), scoring="neg_log_loss", max_iter=5000,
                cv=StratifiedKFold(5, shuffle=True, random_state=random_state),
                class_weight=class_weight, n_jobs=n_jobs,
            )
            if "use_legacy_attributes" in model.get_params():  # scikit-learn >= 1.9
                model.set_params(l1_ratios=(0.0,), use_legacy_attributes=False)
            return model
        return LogisticRegression(max_iter=5000, class_weight=class_weight)
    if name == "gnb":
        if regression:
            raise ValueError(
                "head 'gnb' (Gaussian naive Bayes) is classification only; for "
                "task='regression' use one of ('lr', 'mlp', 'rf', 'svm', 'xgb')"
            )
        from sklearn.naive_bayes import GaussianNB

        return BalancedClassifier(GaussianNB(), class_weight=class_weight)
    if name == "xgb":
        model = _xgb(task, random_state, n_jobs)
        return model if regression else BalancedClassifier(model, class_weight=class_weight)
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    params = {
        "hidden_layer_sizes": (128,),
        "alpha": 1e-3,
        "early_stopping": True,
        "max_iter": 1000,
        "random_state": random_state,
    }
    if regression:
        return _standardised_target(MLPRegressor(**params))
    return BalancedClassifier(MLPClassifier(**params), class_weight=class_weight)
