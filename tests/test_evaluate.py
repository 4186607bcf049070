"""featcell.evaluation (featcell.evaluate, featcell.compare): grouped folds, warnings, identical folds in compare, CIs, errors."""

import doctest
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, LeaveOneGroupOut
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC

import featcell.evaluation as fe
from featcell import metrics as fm
from featcell.evaluation import compare, evaluate

N_IMAGES, PER_IMAGE = 24, 6


def _grouped_data(task="classification", seed=0):
    """24 images of 6 cells; the label is per image and each image has its own offset."""
    rng = np.random.default_rng(seed)
    image = np.repeat(np.arange(N_IMAGES), PER_IMAGE)
    image_effect = rng.normal(scale=0.5, size=(N_IMAGES, 3))[image]
    if task == "classification":
        y = np.array(["G1", "S", "G2"])[image % 3]
        signal = (image % 3)[:, None] * np.array([1.0, 0.0, -1.0])
    else:
        y = 40 + 5 * (image % 6) + rng.integers(0, 3, size=len(image))
        signal = (y[:, None] - 50) / 10 * np.array([1.0, 0.5, 0.0])
    X = signal + image_effect + rng.normal(scale=0.3, size=(len(image), 3))
    return X, y, image


@pytest.fixture
def classes_data():
    return _grouped_data("classification")


@pytest.fixture
def counts_data():
    return _grouped_data("regression")


def _assert_no_group_leak(result, groups):
    fold = result.fold_assignment
    assert fold.min() >= 0  # every sample tested exactly once
    for k, (train, test) in enumerate(result.splits):
        assert_array_equal(np.sort(test), np.flatnonzero(fold == k))
        assert not set(groups[train]) & set(groups[test]), f"fold {k} splits a group"
    # each group sits in exactly one test fold
    per_group = pd.Series(fold).groupby(groups).nunique()
    assert (per_group == 1).all()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_folds_never_split_groups(task):
    X, y, image = _grouped_data(task)
    model = GaussianNB() if task == "classification" else Ridge()
    res = evaluate(model, X, y, groups=image, cv=4, n_boot=50)
    _assert_no_group_leak(res, image)
    expected = "StratifiedGroupKFold" if task == "classification" else "GroupKFold"
    assert res.task == task
    assert res.protocol["cv_class"] == expected
    assert res.protocol["n_groups"] == N_IMAGES
    assert res.protocol["n_splits"] == 4
    assert res.protocol["n_samples"] == len(y)
    assert "24 groups" in res.describe()


def test_result_tables(classes_data):
    X, y, image = classes_data
    res = evaluate(GaussianNB(), X, y, groups=image, cv=4, n_boot=100)
    assert list(res.fold_scores.columns) == ["fold", "metric", "value"]
    assert len(res.fold_scores) == 4 * 4  # folds x default metrics
    assert list(res.summary.columns) == ["metric", "mean", "sd", "pooled", "ci_low", "ci_high"]
    assert res.summary["metric"].tolist() == [
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "roc_auc",
    ]
    assert res.primary_metric == "balanced_accuracy"
    pred = res.predictions
    assert pred.columns.tolist() == [
        "sample", "group", "fold", "y_true", "y_pred", "proba_G1", "proba_G2", "proba_S",
    ]  # fmt: skip
    assert_array_equal(pred["sample"], np.arange(len(y)))
    assert_array_equal(pred["group"], image)
    assert_allclose(pred[["proba_G1", "proba_G2", "proba_S"]].sum(axis=1), 1.0)
    # fold scores are the metric on each fold's out-of-fold predictions
    first = pred[pred["fold"] == 0]
    got = res.fold_scores.query("fold == 0 and metric == 'balanced_accuracy'")["value"].item()
    assert_allclose(got, fm.balanced_accuracy(first["y_true"], first["y_pred"]))
    # and the predictions are those of a model fitted on the fold's training set
    train, test = res.splits[0]
    model = GaussianNB().fit(X[train], y[train])
    assert_array_equal(pred.loc[test, "y_pred"], model.predict(X[test]))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_ci_contains_estimate(task):
    X, y, image = _grouped_data(task)
    model = GaussianNB() if task == "classification" else Ridge()
    res = evaluate(model, X, y, groups=image, cv=3, n_boot=300)
    summary = res.summary.set_index("metric")
    assert (summary["ci_low"] <= summary["pooled"]).all()
    assert (summary["pooled"] <= summary["ci_high"]).all()
    assert (summary["ci_low"] < summary["ci_high"]).all()
    for name, values in res.bootstrap.items():
        assert values.shape == (300,), name


def test_pooled_ci_matches_bootstrap_ci_on_predictions(counts_data):
    X, y, image = counts_data
    res = evaluate(Ridge(), X, y, groups=image, cv=3, n_boot=200, random_state=7)
    pred = res.predictions
    expected = fm.bootstrap_ci(
        "mae", pred["y_true"], pred["y_pred"], groups=pred["group"], n_boot=200, random_state=7
    )
    row = res.summary.set_index("metric").loc["mae"]
    assert_allclose([row["pooled"], row["ci_low"], row["ci_high"]], expected)


def test_warns_without_groups(classes_data):
    X, y, _ = classes_data
    with pytest.warns(UserWarning, match="optimistic"):
        res = evaluate(GaussianNB(), X, y, cv=3, n_boot=20)
    assert not res.protocol["grouped"]
    assert res.protocol["cv_class"] == "StratifiedKFold"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = evaluate(GaussianNB(), X, y, groups="none", cv=3, n_boot=20)
    assert "groups='none'" in res.protocol["groups_source"]
    assert res.protocol["ci_method"].endswith("resampling samples")


class _CellsLike:
    """The parts of featcell.CellSet that evaluate relies on."""

    def __init__(self, X, image):
        self.X = X
        self.metadata = pd.DataFrame({"Metadata_ImageID": image, "Metadata_Well": image // 4})

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        if isinstance(index, tuple):  # scikit-learn's _safe_indexing writes X[idx, ...]
            index = index[0]
        return _CellsLike(self.X[index], self.metadata["Metadata_ImageID"].to_numpy()[index])

    def groups(self, column="image"):
        name = {"image": "Metadata_ImageID", "well": "Metadata_Well"}.get(column, column)
        if name not in self.metadata:
            raise KeyError(f"no metadata column {column!r}")
        return self.metadata[name].to_numpy()


class _Flatten(GaussianNB):
    """GaussianNB on the features inside a _CellsLike."""

    def fit(self, X, y):
        return super().fit(X.X, y)

    def predict(self, X):
        return super().predict(X.X)

    def predict_proba(self, X):
        return super().predict_proba(X.X)


def test_groups_found_in_cell_container(classes_data):
    X, y, image = classes_data
    cells = _CellsLike(X, image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = evaluate(_Flatten(), cells, y, cv=3, n_boot=20)
    assert res.protocol["groups_source"] == "X.groups('image')"
    _assert_no_group_leak(res, image)
    res = evaluate(_Flatten(), cells, y, groups="well", cv=3, n_boot=20)
    assert res.protocol["n_groups"] == N_IMAGES // 4
    _assert_no_group_leak(res, image // 4)


def test_groups_found_in_dataframe(classes_data):
    X, y, image = classes_data
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(
        Metadata_ImageID=image, Metadata_Plate=image // 12
    )
    res = evaluate(DummyClassifier(), frame, y, cv=3, n_boot=20)
    assert res.protocol["groups_source"] == "X['Metadata_ImageID']"
    _assert_no_group_leak(res, image)
    # groups by column name, with or without the Metadata_ prefix
    res = evaluate(DummyClassifier(), frame, y, groups="Plate", cv=2, n_boot=20)
    assert res.protocol["groups_source"] == "X['Metadata_Plate']"


def test_with_real_cellset(classes_data):
    featcell = pytest.importorskip("featcell")
    if not hasattr(featcell, "CellSet"):
        pytest.skip("featcell.CellSet is not available")
    X, y, image = classes_data
    crops = np.repeat(X[:, :, None, None], 4, axis=2).repeat(4, axis=3)  # (N, 3, 4, 4)
    cells = featcell.CellSet.from_crops(
        crops, masks=np.ones((len(X), 4, 4), bool), image_id=[f"im{i}" for i in image]
    )

    def crop_means(cells):
        return np.stack([cells.crop(i).mean(axis=(1, 2)) for i in range(len(cells))])

    model = make_pipeline(FunctionTransformer(crop_means), GaussianNB())
    res = evaluate(model, cells, y, cv=3, metrics=["balanced_accuracy"], n_boot=20)
    assert res.protocol["groups_source"] == "X.groups('image')"
    _assert_no_group_leak(res, np.array([f"im{i}" for i in image]))


def test_compare_uses_identical_folds(classes_data):
    X, y, image = classes_data
    candidates = {
        "nb": GaussianNB(),
        "nb_again": GaussianNB(),
        "prior": DummyClassifier(),
    }
    res = compare(candidates, X, y, groups=image, cv=4, n_boot=200)
    first = res.results["nb"]
    for name, result in res.results.items():
        assert_array_equal(result.fold_assignment, first.fold_assignment, err_msg=name)
        for (tr_a, te_a), (tr_b, te_b) in zip(result.splits, first.splits, strict=True):
            assert_array_equal(tr_a, tr_b)
            assert_array_equal(te_a, te_b)
    _assert_no_group_leak(first, image)
    assert res.table.shape[0] == 3 * 4  # candidates x metrics
    assert res.wide().shape == (3, 4)
    assert list(res.wide().index) == list(candidates)
    paired = res.paired
    assert len(paired) == 3 and set(paired["metric"]) == {"balanced_accuracy"}
    same = paired.query("candidate_a == 'nb' and candidate_b == 'nb_again'").iloc[0]
    assert same["pooled_diff"] == 0 and same["p_value_bootstrap"] == 1.0
    assert np.isnan(same["p_value"])  # zero variance: no t-test
    versus_prior = paired.query("candidate_a == 'nb' and candidate_b == 'prior'").iloc[0]
    assert (
        versus_prior["diff_ci_low"] <= versus_prior["pooled_diff"] <= versus_prior["diff_ci_high"]
    )
    assert versus_prior["diff_ci_low"] > 0 and versus_prior["p_value_bootstrap"] < 0.05
    assert versus_prior["p_value_corrected"] >= versus_prior["p_value"]


def test_compare_paired_bootstrap_is_paired(counts_data):
    X, y, image = counts_data
    res = compare(
        {"ridge": Ridge(), "mean": DummyRegressor()}, X, y, groups=image, cv=3, n_boot=100
    )
    row = res.paired.iloc[0]
    diff = res.results["ridge"].bootstrap["mae"] - res.results["mean"].bootstrap["mae"]
    assert_allclose([row["diff_ci_low"], row["diff_ci_high"]], np.quantile(diff, [0.025, 0.975]))
    assert res.primary_metric == "mae"
    assert row["pooled_diff"] < 0


def test_compare_primary_and_metrics(counts_data):
    X, y, image = counts_data
    res = compare(
        {"ridge": Ridge(), "mean": DummyRegressor()}, X, y, groups=image, cv=3,
        metrics=["rmse", "r2"], primary="r2", n_boot=20,
    )  # fmt: skip
    assert res.protocol["metrics"] == ["rmse", "r2"]
    assert res.paired["metric"].tolist() == ["r2"]
    assert res.primary_metric == "r2"


def test_custom_metric_splitter_and_predefined_splits(counts_data):
    X, y, image = counts_data

    def within_five(y_true, y_pred):
        return float(np.mean(np.abs(y_true - y_pred) <= 5))

    res = evaluate(
        Ridge(), X, y, groups=image, cv=LeaveOneGroupOut(), metrics={"within5": within_five},
        n_boot=20,
    )  # fmt: skip
    assert res.protocol["n_splits"] == N_IMAGES
    assert res.summary["metric"].tolist() == ["within5"]
    assert res.primary_metric == "within5"
    splits = [(np.flatnonzero(image % 2 == k), np.flatnonzero(image % 2 != k)) for k in (0, 1)]
    res = evaluate(Ridge(), X, y, groups=image, cv=splits, metrics=["mae"], n_boot=20)
    assert res.protocol["cv_class"] == "list"
    _assert_no_group_leak(res, image)


def test_class_missing_from_a_training_fold(classes_data):
    X, y, image = classes_data
    # one fold: train on images 0-11 without class S, test on images 12-23 (with S)
    train = np.flatnonzero((image < 12) & (y != "S"))
    test = np.flatnonzero(image >= 12)
    res = evaluate(GaussianNB(), X, y, groups=image, cv=[(train, test)], n_boot=20)
    pred = res.predictions
    assert_allclose(pred["proba_S"], 0.0)  # never seen in training: probability 0
    assert_array_equal(pred["sample"], test)
    assert (res.fold_assignment == -1).sum() == len(y) - len(test)
    assert res.protocol["n_tested"] == len(test)


def test_task_inference():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    groups = np.repeat(np.arange(20), 5)
    cases = [
        (np.repeat([True, False], 50), "classification"),
        (np.arange(100) % 3, "classification"),  # 3 distinct integers
        (np.arange(100) % 40, "regression"),  # counts: many distinct integers
        (rng.normal(size=100), "regression"),
    ]
    for y, task in cases:
        model = DummyClassifier() if task == "classification" else DummyRegressor()
        res = evaluate(model, X, y, groups=groups, cv=2, n_boot=10)
        assert res.task == task, res.protocol["task_source"]
    res = evaluate(DummyClassifier(), X, np.arange(100) % 40, groups=groups, cv=2,
                   task="classification", metrics=["accuracy"], n_boot=10)  # fmt: skip
    assert res.protocol["task_source"] == "given"


class _NoScores(ClassifierMixin, BaseEstimator):
    """Predicts the first class seen; has neither predict_proba nor decision_function."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_estimator_without_scores(classes_data):
    X, y, image = classes_data
    res = evaluate(_NoScores(), X, y, groups=image, cv=3, n_boot=10)
    assert "roc_auc" not in res.summary["metric"].tolist()
    assert res.protocol["score_method"] is None
    with pytest.warns(UserWarning, match="'roc_auc' needs predict_proba"):
        res = evaluate(_NoScores(), X, y, groups=image, cv=3, metrics=["roc_auc"], n_boot=10)
    assert res.summary["pooled"].isna().all()


def test_decision_function_scores(classes_data):
    X, y, image = classes_data
    binary = np.where(y == "G1", "G1", "other")
    res = evaluate(LinearSVC(), X, binary, groups=image, cv=3, n_boot=20)
    assert res.protocol["score_method"] == "decision_function"
    pred = res.predictions
    assert_allclose(pred["score_G1"], -pred["score_other"])
    assert_allclose(
        res.summary.set_index("metric").loc["roc_auc", "pooled"],
        fm.roc_auc(pred["y_true"], pred["score_other"]),
    )


def _nan_X(X):
    X = X.copy()
    X[5, 1] = np.nan
    return X


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda X, y, g: (X, y[:-1], g), "y has 143 samples but X has 144"),
        (lambda X, y, g: (X, np.full(len(y), "G1"), g), "y has a single class 'G1'"),
        (lambda X, y, g: (X, y, np.zeros(len(y))), "groups has a single unique value"),
        (lambda X, y, g: (X, y, g % 3), "groups has 3 unique values but cv=4 folds"),
        (lambda X, y, g: (X, y, g[:-1]), r"groups has shape \(143,\) but X has 144"),
        (lambda X, y, g: (_nan_X(X), y, g), r"X has 1 NaN or infinite values in 1 samples"),
        (
            lambda X, y, g: (X, np.where(np.arange(len(y)) == 3, np.nan, 1.0 * (g % 2)), g),
            r"y has 1 missing values \(first at sample 3\)",
        ),
        (lambda X, y, g: (X, y, np.full(len(g), np.nan)), "groups has 144 missing values"),
    ],
)
def test_bad_input(classes_data, change, match):
    X, y, g = change(*classes_data)
    with pytest.raises(ValueError, match=match):
        evaluate(GaussianNB(), X, y, groups=g, cv=4, n_boot=10)


@pytest.mark.filterwarnings("ignore:The groups parameter is ignored by KFold")
def test_bad_options(classes_data):
    X, y, image = classes_data
    model = GaussianNB()
    with pytest.raises(ValueError, match="puts group .* in both the training and the test"):
        evaluate(model, X, y, groups=image, cv=KFold(3, shuffle=True, random_state=0))
    with pytest.raises(ValueError, match="cv must be at least 2 folds"):
        evaluate(model, X, y, groups=image, cv=1)
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        evaluate(model, X, y, groups=image, metrics=["auc"])
    with pytest.raises(ValueError, match="metric 'mae' is for regression"):
        evaluate(model, X, y, groups=image, metrics=["mae"])
    with pytest.raises(ValueError, match="task must be 'auto'"):
        evaluate(model, X, y, groups=image, task="count")
    with pytest.raises(ValueError, match="groups='Well' is not a column of X"):
        evaluate(model, pd.DataFrame(X), y, groups="Well")
    with pytest.raises(ValueError, match="primary='mae' is not among the metrics"):
        compare({"m": model}, X, y, groups=image, primary="mae")
    with pytest.raises(ValueError, match="estimators must be a non-empty dict"):
        compare([model], X, y, groups=image)
    with pytest.raises(ValueError, match="in more than one test set"):
        evaluate(model, X, y, groups=image, cv=[(np.arange(0), np.arange(144))] * 2)


def test_save_figures(tmp_path, classes_data, counts_data):
    X, y, image = classes_data
    multi = evaluate(GaussianNB(), X, y, groups=image, cv=3, n_boot=10)
    paths = multi.save_figures(tmp_path / "multi", name="nb")
    assert sorted(p.name for p in paths) == ["nb_confusion.png", "nb_roc.png"]
    binary = compare(
        {"nb": GaussianNB(), "prior": DummyClassifier()}, X, np.where(y == "S", "S", "x"),
        groups=image, cv=3, n_boot=10,
    )  # fmt: skip
    paths = binary.save_figures(tmp_path / "binary")
    assert sorted(p.name for p in paths) == ["nb_confusion.png", "prior_confusion.png", "roc.png"]
    X, y, image = counts_data
    single = evaluate(Ridge(), X, y, groups=image, cv=3, n_boot=10)
    paths = single.save_figures(tmp_path / "counts", name="ridge model")
    assert [p.name for p in paths] == ["ridge_model_pred_vs_true.png"]
    for path in [*paths, *(tmp_path / "multi").iterdir(), *(tmp_path / "binary").iterdir()]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_docstring_examples():
    result = doctest.testmod(fe)
    assert result.failed == 0


def test_a_fold_or_resample_lacking_a_class_is_not_scored_on_the_others():
    """A constant majority guess has balanced accuracy 0.5. Folds and group resamples that
    drew no minority image scored it 1.0 (over the classes present), so the interval of a
    constant classifier reached 1.0."""
    image = np.repeat(np.arange(10), 5)
    y = np.where(image < 2, "dead", "live")
    X = np.random.default_rng(0).normal(size=(50, 2))
    result = evaluate(DummyClassifier(strategy="most_frequent"), X, y, groups=image, cv=5,
                      metrics=["balanced_accuracy", "f1_macro", "accuracy"])
    folds = result.fold_scores.pivot(index="fold", columns="metric", values="value")
    lacking = [k for k, (_, test) in enumerate(result.splits) if "dead" not in set(y[test])]
    assert lacking and folds.loc[lacking, "balanced_accuracy"].isna().all()
    assert folds.loc[lacking, "f1_macro"].isna().all()
    assert folds.loc[lacking, "accuracy"].notna().all()  # accuracy averages no classes
    row = result.summary.set_index("metric").loc["balanced_accuracy"]
    assert row["mean"] == row["pooled"] == row["ci_low"] == row["ci_high"] == 0.5
    values = result.bootstrap["balanced_accuracy"]
    assert np.nanmax(values) == 0.5 and 0.05 < np.isnan(values).mean() < 0.2  # 0.8**10
    # the paired comparison uses the folds both are scored on, and says how many
    paired = compare({"majority": DummyClassifier(strategy="most_frequent"),
                      "prior": DummyClassifier(strategy="prior")}, X, y, groups=image, cv=5,
                     primary="balanced_accuracy").paired.iloc[0]
    assert paired["n_folds"] == 5 - len(lacking) and paired["fold_diff_mean"] == 0.0


def test_task_follows_the_estimator_before_the_values_of_y():
    """Integer counts with few distinct values looked like classes: a regressor was scored
    with stratified folds and accuracy, and failed after fitting every fold."""
    rng = np.random.default_rng(0)
    counts = np.repeat(np.arange(10, 90, 10), 5)
    X = (counts + rng.normal(size=40))[:, None]
    result = evaluate(Ridge(), X, counts, groups="none", cv=4)
    assert result.task == "regression" and "estimator is a regressor" in result.describe()
    assert result.summary.set_index("metric").loc["mae", "pooled"] < 2
    labels = np.where(counts > 40, "many", "few")
    assert evaluate(GaussianNB(), X, labels, groups="none", cv=4).task == "classification"


def test_a_split_that_tests_on_training_samples_is_refused():
    """Without groups, cv=[(all, half)] scored a 1-nearest-neighbour model on noise at 1.0."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 2)), np.arange(40) % 2
    everything, half = np.arange(40), np.arange(20)
    with pytest.raises(ValueError, match="puts sample 0 in both the training and the test set "
                                         "of fold 0 \\(20 such samples\\)"):
        evaluate(GaussianNB(), X, y, groups="none", cv=[(everything, half)])


def test_an_estimator_of_the_wrong_type_is_named_before_any_fit():
    """A regressor given labels, or a classifier given measurements, failed inside
    scikit-learn ("could not convert string to float", "Supported target types are...")."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    labels = np.repeat(["live", "dead"], 20)
    with pytest.raises(ValueError, match="Ridge is a regressor but y holds labels"):
        evaluate(Ridge(), X, labels, groups="none", cv=4)
    with pytest.raises(ValueError, match="GaussianNB is a classifier but y holds non-integer"):
        evaluate(GaussianNB(), X, rng.normal(size=40), groups="none", cv=4)
    with pytest.raises(ValueError, match="Ridge is a regressor but y holds classes"):
        compare({"nb": GaussianNB(), "ridge": Ridge()}, X, np.arange(40) % 2, groups="none",
                cv=4, task="classification")
    # numbers stored as objects (a table column read with text) are numbers, not labels
    measured = (X[:, 0] * 2 + rng.normal(size=40)).astype(object)
    assert evaluate(Ridge(), X, measured, groups="none", cv=4, n_boot=10).task == "regression"
    with pytest.raises(ValueError, match="GaussianNB is a classifier but y holds non-integer"):
        evaluate(GaussianNB(), X, measured, groups="none", cv=4)


def test_predictions_no_metric_can_score_fail_naming_the_estimator():
    class Unseen(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.full(len(X), "unknown")

    class NaNRegressor(DummyRegressor):
        def predict(self, X):
            out = super().predict(X)
            out[0] = np.nan
            return out

    X = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match=r"Unseen predicted labels \['unknown'\] that are not"):
        evaluate(Unseen(), X, np.arange(40) % 2 == 0, groups="none", cv=4)
    with pytest.raises(ValueError, match="NaNRegressor predicted 1 NaN or infinite values"):
        evaluate(NaNRegressor(), X, X[:, 0], groups="none", cv=4)


def test_groups_mixing_numbers_and_text_are_compared_as_text():
    """Groups such as [1, "well_B", ...] (a pandas column of mixed types) raised numpy's
    UFuncTypeError from np.unique."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 2)), np.arange(40) % 2
    groups = pd.Series([k if k % 2 else f"well_{k}" for k in np.repeat(np.arange(8), 5)],
                       dtype=object)
    result = evaluate(GaussianNB(), X, y, groups=groups, cv=4)
    assert result.protocol["n_groups"] == 8
