"""Permutation importance of feature families, on held-out folds."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from featcell.importance import family_importance, family_of_features

N_IMAGES, PER_IMAGE = 24, 8


def _table(signal="AreaShape", seed=0):
    """Cells of 24 images; only the columns of one family carry the class."""
    rng = np.random.default_rng(seed)
    n = N_IMAGES * PER_IMAGE
    image = np.repeat(np.arange(N_IMAGES), PER_IMAGE)
    y = np.where(rng.random(n) < 0.4, "dead", "live")
    columns = {
        "AreaShape_Area": rng.normal(size=n),
        "AreaShape_Eccentricity": rng.normal(size=n),
        "Intensity_MeanIntensity_DNA": rng.normal(size=n),
        "RadialDistribution_FracAtD_DNA_1of4": rng.normal(size=n),
        "Texture_Contrast_DNA_3_00": rng.normal(size=n),
        "Granularity_1_DNA": rng.normal(size=n),
        "Correlation_Correlation_DNA_PH3": rng.normal(size=n),
    }
    for name, values in columns.items():
        if name.startswith(signal):
            columns[name] = values + 2.0 * (y == "live")
    return pd.DataFrame(columns), y, image


def test_family_of_features_prefix_rule():
    names = [
        "AreaShape_Area",
        "Nuclei_AreaShape_Solidity",
        "Intensity_MeanIntensity_DNA",
        "RadialDistribution_RadialCV_DNA_1of4",
        "Texture_Contrast_DNA_3_00",
        "Granularity_2_DNA",
        "Correlation_Pearson_DNA_PH3",
        "CNN_EfficientNetLite0_0001_DNA",
        "Cells_Intensity_MaxIntensity_Actin",
        "Metadata_Intensity_Thing",
        "Location_Center_X",
        "mystery",
    ]
    assert family_of_features(names).tolist() == [
        "morphology",
        "morphology",
        "intensity",
        "intensity",
        "texture",
        "texture",
        "colocalization",
        "cnn",
        "intensity",
        "metadata",
        "morphology",
        "other",
    ]


@pytest.mark.parametrize(
    "signal, family",
    [("AreaShape", "morphology"), ("Texture", "texture"), ("Correlation", "colocalization")],
)
def test_the_family_with_the_signal_dominates(signal, family):
    X, y, image = _table(signal)
    model = make_pipeline(StandardScaler(), LogisticRegression())
    table = family_importance(model, X, y, image, cv=4, n_repeats=5)
    assert list(table.columns) == [
        "family", "n_features", "drop_mean", "drop_sd", "drop_sem", "n_folds"
    ]
    top = table.iloc[0]
    assert top["family"] == family
    others = table.iloc[1:]["drop_mean"]
    assert top["drop_mean"] > 0.2
    assert (others.abs() < 0.06).all()
    assert top["drop_mean"] > 5 * others.abs().max()
    assert table.attrs["scoring"] == "balanced_accuracy"
    assert 0.8 < table.attrs["baseline"] <= 1.0
    assert set(table["family"]) == {
        "morphology", "intensity", "texture", "colocalization"
    }
    assert table.set_index("family")["n_features"].to_dict() == {
        "morphology": 2, "intensity": 2, "texture": 2, "colocalization": 1
    }
    assert (table["n_folds"] == 4).all()


class _TwoFamilies(TransformerMixin, BaseEstimator):
    """A stand-in for a cell feature step: takes rows of 'cells', gives named families."""

    def fit(self, X, y=None):
        self.family_of_feature_ = np.array(["shape", "shape", "colour"], dtype=object)
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float)[:, :3]

    def get_feature_names_out(self, input_features=None):
        return np.array(["a", "b", "c"], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


class _CNNStub(_TwoFamilies):
    def fit(self, X, y=None):
        self.n_dims_ = 2
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float)[:, 3:]

    def get_feature_names_out(self, input_features=None):
        return np.array(["CNN_net_0", "CNN_net_1"], dtype=object)


def _cells_like(seed=0, signal_column=0):
    rng = np.random.default_rng(seed)
    n = N_IMAGES * PER_IMAGE
    y = np.repeat(["a", "b"], n // 2)
    X = rng.normal(size=(n, 5))
    X[:, signal_column] += 2.5 * (y == "b")
    return X, y, np.repeat(np.arange(N_IMAGES), PER_IMAGE)


def test_families_come_from_the_feature_step():
    X, y, image = _cells_like(signal_column=2)
    model = Pipeline([("features", _TwoFamilies()), ("scale", StandardScaler()),
                      ("head", LogisticRegression())])
    table = family_importance(model, X, y, image, cv=3, n_repeats=3)
    assert table["family"].tolist()[0] == "colour"
    assert set(table["family"]) == {"shape", "colour"}


def test_feature_union_of_classical_and_cnn():
    X, y, image = _cells_like(signal_column=4)
    union = FeatureUnion([("classical", _TwoFamilies()), ("cnn", _CNNStub())])
    model = Pipeline([("features", union), ("head", LogisticRegression())])
    table = family_importance(model, X, y, image, cv=3, n_repeats=3)
    assert table.iloc[0]["family"] == "cnn"
    assert set(table["family"]) == {"shape", "colour", "cnn"}


def test_families_override_and_explicit_split():
    X, y, image = _table("Intensity")
    model = make_pipeline(StandardScaler(), LogisticRegression())
    table = family_importance(
        model, X, y, image, cv=3, n_repeats=2,
        families=lambda name: "stain" if "DNA" in name else "rest",
    )
    assert table.iloc[0]["family"] == "stain"
    table = family_importance(model, X, y, image, cv=3, n_repeats=2, feature_steps=0)
    assert table.iloc[0]["family"] == "intensity"
    with pytest.raises(ValueError, match="feature_steps"):
        family_importance(model, X, y, image, cv=3, feature_steps="nope")


def test_importance_is_measured_on_held_out_folds_only():
    # pure noise: a model fitted on the test cells would find importance; held out, ~0
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(192, 4)),
                     columns=["AreaShape_A", "AreaShape_B", "Intensity_C_DNA", "Texture_D_DNA"])
    y = rng.permutation(np.repeat(["a", "b"], 96))
    image = np.repeat(np.arange(24), 8)
    table = family_importance(make_pipeline(StandardScaler(), LogisticRegression()), X, y,
                              image, cv=4, n_repeats=5)
    assert (table["drop_mean"].abs() < 0.08).all()
    assert abs(table.attrs["baseline"] - 0.5) < 0.15


def test_same_folds_as_an_evaluation():
    X, y, image = _table()
    splits = [(np.flatnonzero(image % 3 != k), np.flatnonzero(image % 3 == k)) for k in range(3)]
    table = family_importance(make_pipeline(StandardScaler(), LogisticRegression()), X, y,
                              cv=splits, n_repeats=2)
    assert table.iloc[0]["family"] == "morphology"
    assert (table["n_folds"] == 3).all()


def test_regression_default_scoring():
    X, _y, image = _table()
    target = X["Texture_Contrast_DNA_3_00"].to_numpy() * 3 + 10
    table = family_importance(Ridge(), X, target, image, cv=3, n_repeats=3)
    assert table.attrs["scoring"] == "neg_mean_absolute_error"
    assert table.iloc[0]["family"] == "texture"


def test_groups_from_a_metadata_column_and_grouping_errors():
    X, y, image = _table()
    X = X.assign(Metadata_ImageID=image.astype(str))
    features = [c for c in X.columns if not c.startswith("Metadata_")]
    model = make_pipeline(
        # drop the metadata column inside the model, as a ColumnTransformer would
        _Select(features), StandardScaler(), LogisticRegression()
    )
    table = family_importance(model, X, y, cv=3, n_repeats=2)  # groups found in X
    assert table.iloc[0]["family"] == "morphology"
    with pytest.raises(ValueError, match="unique values but cv=30"):
        family_importance(model, X, y, cv=30)
    with pytest.raises(ValueError, match="both the training and the test"):
        family_importance(model, X, y, image, cv=[(np.arange(100), np.arange(90, 192))])
    with pytest.raises(ValueError, match="n_repeats"):
        family_importance(model, X, y, image, n_repeats=0)
    with pytest.raises(ValueError, match="y has shape"):
        family_importance(model, X, y[:10], image)


class _Select(TransformerMixin, BaseEstimator):
    def __init__(self, columns):
        self.columns = columns

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X[self.columns]


def test_a_useless_model_has_no_important_family():
    X, y, image = _table()
    table = family_importance(DummyClassifier(), X, y, image, cv=3, n_repeats=2)
    np.testing.assert_allclose(table["drop_mean"], 0.0)


def test_cell_classifier_pipeline_families_from_cell_features():
    """End to end on a CellSet: the pipeline's CellFeatures step names the families."""
    from featcell import CellSet
    from featcell.tasks import make_cell_classifier

    rng = np.random.default_rng(0)
    n, size = 96, 24
    y = np.repeat(["dim", "bright"], n // 2)
    crops = (rng.random((n, 1, size, size)) * 0.05).astype(np.float32)
    yy, xx = np.ogrid[:size, :size]
    disk = (yy - 12) ** 2 + (xx - 12) ** 2 < 36  # the same shape for every cell
    for i in range(n):
        level = 0.3 if y[i] == "dim" else 0.6
        crops[i, 0][disk] += level + rng.normal(scale=0.1)
    cells = CellSet.from_crops(crops, channels=["DNA"],
                               image_id=np.repeat(np.arange(12), 8).astype(str))
    model = make_cell_classifier(head="lr", families=["morphology", "intensity"])
    table = family_importance(model, cells, y, cv=3, n_repeats=3)  # groups from the CellSet
    assert set(table["family"]) == {"morphology", "intensity"}
    assert table.iloc[0]["family"] == "intensity"
    assert table.iloc[0]["drop_mean"] > 0.2
    assert "3 grouped folds" in table.attrs["protocol"]


class _TableStep(TransformerMixin, BaseEstimator):
    """A user's feature step returning a named table, without get_feature_names_out."""

    def fit(self, X, y=None):
        self.n_ = 2
        return self

    def transform(self, X):
        X = np.asarray(X)
        return pd.DataFrame({"AreaShape_Area": X[:, 0], "Intensity_MeanIntensity_DNA": X[:, 1]})


def test_families_from_a_feature_tables_own_column_names():
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b"], 60)
    X = np.c_[rng.normal(size=120) + 2 * (y == "a"), rng.normal(size=120)]
    groups = np.arange(120) // 4
    model = Pipeline([("features", _TableStep()), ("head", LogisticRegression())])
    table = family_importance(model, X, y, groups, cv=3, n_repeats=2, feature_steps=1)
    assert set(table["family"]) == {"morphology", "intensity"}
    assert table.loc[0, "family"] == "morphology"  # the informative column
    explicit = family_importance(model, X, y, groups, cv=3, n_repeats=2, feature_steps=1,
                                 families={"AreaShape_Area": "shape",
                                           "Intensity_MeanIntensity_DNA": "stain"})
    assert set(explicit["family"]) == {"shape", "stain"}
    with pytest.raises(ValueError, match="none of the feature columns"):
        family_importance(model, X, y, groups, cv=3, n_repeats=2, feature_steps=1,
                          families={"Area": "shape"})
    # predefined splits are not called ungrouped
    splits = [(np.flatnonzero(groups % 3 != k), np.flatnonzero(groups % 3 == k))
              for k in range(3)]
    table = family_importance(model, X, y, cv=splits, n_repeats=2, feature_steps=1)
    assert "3 predefined folds" in table.attrs["protocol"]
