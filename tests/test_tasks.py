import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, GroupKFold

from featcell import CellSet
from featcell.tasks import make_cell_classifier, predict_per_image


@pytest.fixture
def big_and_small():
    """40 cells in 8 images: bright big squares vs dim small squares, with noise."""
    rng = np.random.default_rng(0)
    crops = rng.random((40, 2, 24, 24)).astype(np.float32) * 0.1
    crops[:20, :, 5:19, 5:19] += 0.8
    crops[20:, :, 8:15, 8:15] += 0.5
    y = np.repeat(["big", "small"], 20)
    images = np.concatenate([np.repeat(list("abcd"), 5), np.repeat(list("efgh"), 5)])
    return CellSet.from_crops(crops, channels=["DNA", "Actin"], image_id=images), y


def test_classical_classifier_is_a_plain_pipeline(big_and_small):
    cells, y = big_and_small
    model = make_cell_classifier(head="rf", families=["morphology", "intensity"])
    assert [name for name, _ in model.steps] == ["features", "impute", "scale", "head"]
    model.fit(cells, y)
    assert (model.predict(cells) == y).mean() == 1.0
    names = model[:-1].get_feature_names_out()
    assert "AreaShape_Area" in names and "Intensity_MeanIntensity_Actin" in names


def test_grid_search_with_groups_on_cells(big_and_small):
    cells, y = big_and_small
    model = make_cell_classifier(head="lr", families=["morphology"])
    search = GridSearchCV(model, {"head__C": [0.1, 1.0]}, cv=GroupKFold(4))
    search.fit(cells, y, groups=cells.groups("image"))
    assert search.best_score_ >= 0.9
    assert search.best_params_["head__C"] in (0.1, 1.0)


def test_per_image_vote_and_probability(big_and_small):
    cells, y = big_and_small
    model = make_cell_classifier(head="lr", families=["morphology"]).fit(cells, y)
    for method in ("proba", "vote"):
        table = predict_per_image(model, cells, method=method)
        assert table["image"].tolist() == list("abcdefgh")
        assert table["prediction"].tolist() == ["big"] * 4 + ["small"] * 4
        assert table["n_cells"].tolist() == [5] * 8
        np.testing.assert_allclose(table[["big", "small"]].sum(axis=1), 1.0)


@pytest.mark.parametrize("head", ["svm", "gnb", "xgb"])
def test_every_head_fits(big_and_small, head):
    cells, y = big_and_small
    model = make_cell_classifier(head=head, families=["morphology"]).fit(cells, y)
    assert (model.predict(cells) == y).mean() >= 0.95


def test_bad_arguments():
    with pytest.raises(ValueError, match="features must be one of"):
        make_cell_classifier(features="deep")
    with pytest.raises(ValueError, match="head"):
        make_cell_classifier(head="knn")
    with pytest.raises(TypeError, match="CellSet"):
        predict_per_image(None, np.zeros((3, 3)))
