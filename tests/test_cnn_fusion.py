"""Tests of featcell.cnn.CNNFusionClassifier: a trained CNN's and a partner's probabilities
pooled with a weight chosen on the CNN's validation cells (tiny networks, a few epochs)."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from featcell import CellSet, make_cell_classifier
from featcell.cnn import CNNClassifier, CNNFusionClassifier

pytest.importorskip("torch")

from test_cnn_trained import CELLS, FAST, TEST_CELLS, Y  # the same cells

PARTNER = make_cell_classifier("classical", head="lr", families=["morphology"])


@pytest.fixture(scope="module")
def fused():
    return CNNFusionClassifier(CNNClassifier(**FAST), PARTNER).fit(CELLS, Y)


def test_fit_chooses_the_weight_of_least_validation_loss(fused):
    v = fused.validation_
    assert len(v["weights"]) == 11 and v["weights"][0] == 0 and v["weights"][-1] == 1
    assert fused.weight_ == v["weights"][int(np.argmin(v["cross_entropy"]))]
    # the weight was chosen on the cells the network held out, the partner refitted on all
    val = fused.cnn_.validation_index_
    assert 0 < len(val) < len(Y)
    assert fused.partner_[-1].n_features_in_ > 0
    assert fused.device_.startswith("cpu") and fused.fit_seconds_ > 0
    for key in ("cnn", "partner", "fused"):
        assert 0 <= v[f"balanced_accuracy_{key}"] <= 1


def test_pooled_probabilities(fused):
    p = fused.predict_proba(TEST_CELLS)
    assert p.shape == (40, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-9)
    assert set(fused.predict(TEST_CELLS)) <= {"long", "round"}
    p_cnn = fused.cnn_.predict_proba(TEST_CELLS).astype(float)
    p_partner = fused.partner_.predict_proba(TEST_CELLS)
    w = fused.weight_
    expected = np.clip(p_cnn, 1e-6, 1) ** w * np.clip(p_partner, 1e-6, 1) ** (1 - w)
    np.testing.assert_allclose(p, expected / expected.sum(1, keepdims=True), atol=1e-6)
    # the ends of the grid: one model alone
    for weight, alone in ((1.0, p_cnn), (0.0, p_partner)):
        model = clone(fused)
        model.__dict__.update({**fused.__dict__, "weight_": weight})
        np.testing.assert_allclose(model.predict_proba(TEST_CELLS), alone, atol=1e-5)
    linear = clone(fused).set_params(pooling="linear")
    linear.__dict__.update({**fused.__dict__, "pooling": "linear"})
    np.testing.assert_allclose(
        linear.predict_proba(TEST_CELLS), w * p_cnn + (1 - w) * p_partner, atol=1e-5
    )


class _Oracle(ClassifierMixin, BaseEstimator):
    """Reads each cell's class from its image id ("<class>:<i>"); holds out every 4th cell
    (``validation_index_``, like a CNNClassifier) and, with ``noise``, is pure noise."""

    def __init__(self, noise=False):
        self.noise = noise

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.validation_index_ = np.arange(0, len(y), 4)
        return self

    def predict_proba(self, X):
        if self.noise:
            p = np.random.default_rng(len(X)).random((len(X), len(self.classes_)))
            return p / p.sum(1, keepdims=True)
        truth = np.array([g.split(":")[0] for g in X.groups("image")])
        return (truth[:, None] == self.classes_).astype(float)


def test_the_weight_goes_to_the_informative_model():
    ids = [f"{label}:{i}" for i, label in enumerate(Y)]
    cells = CellSet.from_crops(CELLS.flat().values.reshape(80, 1, 24, 24), image_id=ids)
    knows, noise = _Oracle(), _Oracle(noise=True)
    assert CNNFusionClassifier(noise, knows).fit(cells, Y).weight_ == 0.0
    model = CNNFusionClassifier(knows, noise, n_weights=5).fit(cells, Y)
    assert model.weight_ == 1.0 and model.validation_["weights"] == [0, 0.25, 0.5, 0.75, 1]
    assert model.validation_["balanced_accuracy_cnn"] == 1.0
    assert np.all(model.predict(cells) == Y)


def test_bad_input(fused):
    with pytest.raises(TypeError, match="CellSet"):
        CNNFusionClassifier().fit(np.zeros((4, 1, 8, 8)), [0, 1, 0, 1])
    with pytest.raises(TypeError, match="validation_index_"):
        CNNFusionClassifier(DummyClassifier(), PARTNER).fit(CELLS, Y)
    with pytest.raises(ValueError, match="80 cells"):
        CNNFusionClassifier(CNNClassifier(**FAST), PARTNER).fit(CELLS, Y[:10])
    with pytest.raises(TypeError, match="CellSet"):
        fused.predict(np.zeros((4, 1, 24, 24)))


def test_sklearn_api_checks():
    name = "CNNFusionClassifier"
    check_no_attributes_set_in_init(name, CNNFusionClassifier())
    check_parameters_default_constructible(name, CNNFusionClassifier())
    check_get_params_invariance(name, CNNFusionClassifier())
    check_set_params(name, CNNFusionClassifier())


def test_saved_and_loaded(fused, tmp_path):
    from featcell.persist import load_model, save_model

    path = save_model(fused, tmp_path / "fused.featcell")
    again = load_model(path)
    np.testing.assert_allclose(
        again.predict_proba(TEST_CELLS), fused.predict_proba(TEST_CELLS), atol=1e-6
    )


def test_default_partner_chooses_its_regularisation_by_inner_cv(tmp_path):
    """The default partner: classical features and a logistic regression whose C is chosen
    by cross-validation of the training cells; such a fitted model saves and loads."""
    from featcell.persist import load_model, save_model

    partner = CNNFusionClassifier()._partner()
    assert isinstance(partner[-1], LogisticRegressionCV)
    partner.set_params(features__families=["morphology", "intensity"])
    partner.fit(CELLS, Y)
    assert np.ravel(partner[-1].C_)[0] in partner[-1].Cs_
    again = load_model(save_model(partner, tmp_path / "partner.featcell"))
    np.testing.assert_allclose(again.predict_proba(TEST_CELLS), partner.predict_proba(TEST_CELLS))


def test_make_cell_classifier_late_fusion():
    model = make_cell_classifier(
        "classical+trained_cnn", head="lr", families=["morphology"], cnn_params=FAST,
        fusion="late",
    )
    fusion = model[-1]
    assert isinstance(fusion, CNNFusionClassifier)
    assert fusion.cnn.get_params()["width"] == 8
    assert fusion.partner.named_steps["features"].families == ["morphology"]
    assert type(fusion.partner[-1]).__name__ == "LogisticRegression"
    with pytest.raises(ValueError, match="fusion"):
        make_cell_classifier("classical+trained_cnn", fusion="stacked")
