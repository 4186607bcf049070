import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from featcell.heads import HEADS, BalancedClassifier, make_head

RNG = np.random.default_rng(0)
# three classes, strings, imbalanced 30 / 20 / 10, separable along the first two features
CLASSES = np.array(["G1"] * 30 + ["S_phase"] * 20 + ["Mitosis"] * 10)
CENTRES = {"G1": (0.0, 0.0), "S_phase": (4.0, 0.0), "Mitosis": (0.0, 4.0)}
X = np.array([CENTRES[c] for c in CLASSES]) + RNG.normal(0, 0.5, (len(CLASSES), 2))
X = np.c_[X, RNG.normal(size=(len(CLASSES), 3))]
Y_REG = X[:, 0] * 2.0 + X[:, 1] + RNG.normal(0, 0.1, len(CLASSES))


@pytest.mark.parametrize("name", HEADS)
def test_classification_heads_fit_predict_string_labels(name):
    model = make_pipeline(StandardScaler(), make_head(name, random_state=0))
    model.fit(X, CLASSES)
    assert set(model.classes_) == set(CLASSES)
    assert (model.predict(X) == CLASSES).mean() > 0.9
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name", [h for h in HEADS if h != "gnb"])
def test_regression_heads(name):
    model = make_pipeline(StandardScaler(), make_head(name, "regression")).fit(X, Y_REG)
    residual = model.predict(X) - Y_REG
    assert np.abs(residual).mean() < 0.5 * np.abs(Y_REG - Y_REG.mean()).mean()


def test_lr_cv_chooses_c_by_cross_validation():
    """Strong noise features: the inner CV picks a stronger penalty than the weakest."""
    noisy = np.c_[X[:, :1], np.random.default_rng(1).normal(size=(len(X), 40))]
    model = make_pipeline(StandardScaler(), make_head("lr_cv")).fit(noisy, CLASSES)
    head = model[-1]
    c = np.ravel(head.C_)[0]  # one C (scikit-learn >= 1.9), or one per class, all equal
    assert c in head.Cs_ and c < head.Cs_.max()
    assert head.class_weight == "balanced" and head.scoring == "neg_log_loss"
    # score is the accuracy, as every other head's, not the scoring that chose C
    assert model.score(noisy, CLASSES) == pytest.approx(np.mean(model.predict(noisy) == CLASSES))


def test_lr_cv_with_a_rare_class_uses_fewer_folds_quietly():
    """A class of 2 rows (fewer than the 5 inner folds), or of 1: no warning, every class
    in the model, the folds as many as the rarest class has rows (at least 2)."""
    for rare in (2, 1):
        y = CLASSES.copy()
        y[np.flatnonzero(y == "Mitosis")[rare:]] = "G1"
        head = make_head("lr_cv")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = make_pipeline(StandardScaler(), head).fit(X, y)
        assert list(model.classes_) == ["G1", "Mitosis", "S_phase"]
        assert model.predict_proba(X).shape == (len(X), 3)
        assert head.cv.n_splits == 5  # the parameter is left as it was
        assert _n_inner_folds(head) == max(2, rare)
    assert _n_inner_folds(make_head("lr_cv").fit(X, CLASSES)) == 5


def _n_inner_folds(head):
    """Rows of LogisticRegressionCV's scores_: one per inner fold (an array from
    scikit-learn 1.9 on, before a dict of such arrays per class)."""
    scores = head.scores_
    return len(next(iter(scores.values())) if isinstance(scores, dict) else scores)


def test_class_weight_is_passed_on():
    assert make_head("rf").class_weight == "balanced"
    assert make_head("svm", class_weight=None).estimator.class_weight is None
    assert make_head("xgb", class_weight={"a": 2.0}).class_weight == {"a": 2.0}


def test_balanced_weights_shift_the_minority_decision():
    # one feature, classes overlapping: balancing moves predictions toward the rare class
    x = np.r_[RNG.normal(0, 1, 95), RNG.normal(1.5, 1, 5)][:, None]
    y = np.array(["common"] * 95 + ["rare"] * 5)
    plain = BalancedClassifier(GaussianNB(), class_weight=None).fit(x, y)
    balanced = BalancedClassifier(GaussianNB()).fit(x, y)
    assert (balanced.predict(x) == "rare").sum() > (plain.predict(x) == "rare").sum()


def test_balanced_classifier_decodes_labels_and_combines_sample_weight():
    clf = BalancedClassifier(make_head("xgb").estimator, class_weight=None)
    clf.fit(X, CLASSES, sample_weight=np.ones(len(X)))
    assert_array_equal(clf.classes_, ["G1", "Mitosis", "S_phase"])
    assert clf.predict(X[:1]).dtype.kind == "U"
    assert clf.feature_importances_.shape == (X.shape[1],)
    with pytest.raises(ValueError, match="non-zero"):
        clf.fit(X, CLASSES, sample_weight=np.zeros(len(X)))


def test_unknown_head_and_task():
    with pytest.raises(ValueError, match=r"head 'knn' is not known; expected one of .*'svm'"):
        make_head("knn")
    with pytest.raises(ValueError, match="task='ranking'"):
        make_head("rf", "ranking")
    with pytest.raises(ValueError, match="classification only"):
        make_head("gnb", "regression")


@parametrize_with_checks(
    [BalancedClassifier(GaussianNB())],
    expected_failed_checks=lambda est: {
        "check_sample_weight_equivalence_on_dense_data": (
            "class_weight='balanced' depends on class counts, which repeating rows changes"
        ),
    },
)
def test_balanced_classifier_follows_sklearn_api(estimator, check):
    with warnings.catch_warnings():
        # GaussianNB's own log(0) when a check gives one class all the weight
        warnings.filterwarnings("ignore", "divide by zero encountered in log", RuntimeWarning)
        check(estimator)


@pytest.mark.parametrize("rare", [1, 2])
def test_default_svm_fits_a_rare_class(rare):
    """The calibration split of the default head must not fail on a class of 1 or 2 rows."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (20, 3)), rng.normal(4, 1, (20, 3)),
                   rng.normal(-4, 1, (rare, 3))])
    y = np.array(["a"] * 20 + ["b"] * 20 + ["c"] * rare)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = make_head("svm").fit(X, y)
    proba = model.predict_proba(X)
    assert model.classes_.tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (model.predict(X[:40]) == y[:40]).mean() > 0.9
