"""Tests of featcell.cnn.CNNClassifier: a CNN trained with torch and run with onnxruntime.

Networks are tiny (``width=8``, 32 px) and trained for a few short epochs, so the
module stays fast on 2 CPU cores; the learnable task is round versus elongated
synthetic cells.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from featcell.cells import CellSet
from featcell.cnn import CNNClassifier

pytest.importorskip("torch")


def _shapes(n, seed=0, size=24):
    """Round and elongated bright blobs (random orientation, position and brightness)."""
    rng = np.random.default_rng(seed)
    crops = rng.normal(0.3, 0.05, (n, 1, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    y = np.where(np.arange(n) % 2 == 0, "round", "long")
    for i in range(n):
        cy, cx = size // 2 + rng.integers(-2, 3), size // 2 + rng.integers(-2, 3)
        a, b = (5, 5) if y[i] == "round" else (9, 3)
        if rng.random() < 0.5:
            a, b = b, a
        crops[i, 0][((yy - cy) / a) ** 2 + ((xx - cx) / b) ** 2 <= 1] += rng.uniform(0.3, 0.8)
    return CellSet.from_crops(crops, channels=["DNA"]), y


CELLS, Y = _shapes(80)
TEST_CELLS, TEST_Y = _shapes(40, seed=1)
FAST = {"width": 8, "max_epochs": 4, "patience": 2, "n_threads": 1}


@pytest.fixture(scope="module")
def fitted():
    return CNNClassifier(**FAST).fit(CELLS, Y)


def test_shapes_names_and_attributes(fitted):
    assert list(fitted.classes_) == ["long", "round"]
    assert fitted.predict_proba(TEST_CELLS).shape == (40, 2)
    assert_rows = fitted.predict_proba(TEST_CELLS).sum(axis=1)
    np.testing.assert_allclose(assert_rows, 1.0, rtol=1e-5)
    assert fitted.transform(TEST_CELLS).shape == (40, 32)
    assert fitted.get_feature_names_out()[0] == "CNN_Trained_0000"
    assert set(fitted.predict(TEST_CELLS)) <= {"long", "round"}
    assert fitted.input_size_ == 32 and fitted.channels_ == ("DNA",)
    assert 1 <= fitted.best_epoch_ <= len(fitted.history_) <= 4
    assert fitted.device_.startswith("cpu") and fitted.fit_seconds_ > 0
    assert len(fitted.network_) < 200_000  # a small ONNX graph
    empty = fitted.predict_proba(CELLS[np.array([], dtype=int)])
    assert empty.shape == (0, 2)


def test_learns_round_versus_elongated():
    clf = CNNClassifier(width=8, max_epochs=12, patience=4, n_threads=1).fit(CELLS, Y)
    accuracy = np.mean(clf.predict(TEST_CELLS) == TEST_Y)
    assert accuracy >= 0.85, accuracy  # chance is 0.5


def test_seeded_fit_is_reproducible(fitted):
    again = CNNClassifier(**FAST).fit(CELLS, Y)
    assert again.network_sha256_ == fitted.network_sha256_ or np.allclose(
        again.predict_proba(TEST_CELLS), fitted.predict_proba(TEST_CELLS), atol=1e-6
    )
    from featcell.cnn._training import fit_seed

    # a RandomState gives the seed it draws (not 0); None, a new seed each fit
    assert fit_seed(7) == 7 and fit_seed(np.random.RandomState(1)) == fit_seed(
        np.random.RandomState(1)) != fit_seed(np.random.RandomState(2))
    with pytest.raises(ValueError):
        fit_seed("seed")
    other = CNNClassifier(**FAST, random_state=1).fit(CELLS, Y)
    assert not np.allclose(other.predict_proba(TEST_CELLS), fitted.predict_proba(TEST_CELLS))


def test_validation_scores_match_sklearn():
    from sklearn.metrics import balanced_accuracy_score, log_loss

    from featcell.cnn.trained import _validation_scores

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40, int), np.ones(40, int), [2]]  # one cell of a rare class
    logits = rng.normal(size=(81, 3)) + 2 * np.eye(3)[y]
    logits[-1] = [9.0, 0.0, -9.0]  # a confident mistake on the rare cell
    value, figures = _validation_scores(logits, y)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert value == pytest.approx(log_loss(y, proba), rel=1e-6)  # every cell counts once
    assert figures["val_balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(y, logits.argmax(axis=1))
    )
    balanced = log_loss(y, proba, sample_weight=1 / np.bincount(y)[y])
    assert figures["val_macro_cross_entropy"] == pytest.approx(balanced, rel=1e-6)
    assert value < 0.5 * balanced  # the rare cell's mistake dominates only the weighted one


def test_kept_network_is_the_best_validated_epoch(fitted):
    """The exported network is the (weight-averaged) one whose validation loss was best."""
    y_index = np.searchsorted(fitted.classes_, Y)
    _, val = CNNClassifier(**FAST)._validation_split(CELLS, y_index, 0)
    np.testing.assert_array_equal(val, fitted.validation_index_)
    proba = fitted.predict_proba(CELLS[val])
    loss = -np.mean(np.log(proba[np.arange(len(val)), y_index[val]]))
    record = fitted.history_[fitted.best_epoch_ - 1]
    assert loss == pytest.approx(record["val_loss"], rel=1e-3)
    assert record["val_loss"] == min(h["val_loss"] for h in fitted.history_)
    assert {"val_macro_cross_entropy", "val_balanced_accuracy"} <= set(record)


def test_validation_split_keeps_groups_apart():
    image = np.repeat(np.arange(16), 5)
    cells = CellSet.from_crops(CELLS.flat().values.reshape(80, 1, 24, 24), image_id=image)
    clf = CNNClassifier(**FAST)
    train, val = clf._validation_split(cells, (Y == "round").astype(int), 0)
    assert len(val) and not set(image[train]) & set(image[val])
    with pytest.raises(ValueError, match="at least 2 groups"):
        clf._validation_split(CellSet.from_crops(np.zeros((4, 8, 8)), image_id="a"),
                              np.arange(4) % 2, 0)


def test_validation_split_keeps_every_class_in_training():
    # three images, class "b" in one only: the early-stopping split never takes it all
    image = np.repeat(np.arange(3), 10)
    y_index = (image == 2).astype(int)
    cells = CellSet.from_crops(np.zeros((30, 8, 8), np.float32), image_id=image)
    clf = CNNClassifier(**FAST)
    for seed in range(20):
        train, val = clf._validation_split(cells, y_index, seed)
        assert set(y_index[train]) == {0, 1} and len(val)
        assert not set(image[train]) & set(image[val])
    # each class in one image only: no split keeps both, and the fit says so
    two = np.repeat(np.arange(2), 10)
    with pytest.warns(UserWarning, match="not learn some classes"):
        clf._validation_split(CellSet.from_crops(np.zeros((20, 8, 8), np.float32),
                                                 image_id=two), two, 0)


def test_validation_probabilities_are_the_kept_networks(fitted):
    val = fitted.validation_index_
    assert 0 < len(val) < len(Y) and len(np.unique(val)) == len(val)
    np.testing.assert_allclose(
        fitted.validation_proba_, fitted.predict_proba(CELLS[val]), atol=1e-4
    )


def test_refit_trains_on_all_cells_for_the_chosen_epochs(fitted):
    refit = CNNClassifier(**FAST, refit=True).fit(CELLS, Y)
    assert refit.best_epoch_ == fitted.best_epoch_  # the same validated run first
    np.testing.assert_allclose(refit.validation_proba_, fitted.validation_proba_, atol=1e-6)
    assert len(refit.refit_history_) == refit.best_epoch_
    # the refit follows the validated run's learning rates up to the chosen epoch
    np.testing.assert_allclose([h["learning_rate"] for h in refit.refit_history_],
                               [h["learning_rate"] for h in refit.history_[: refit.best_epoch_]])
    assert refit.network_sha256_ != fitted.network_sha256_  # a new network, on all cells
    assert refit.predict_proba(TEST_CELLS).shape == (40, 2)
    with pytest.raises(ValueError, match="cosine"):
        CNNClassifier(**FAST, refit=True, schedule="plateau").fit(CELLS, Y)
    refit.set_params(refit=False).fit(CELLS, Y)  # a refit leaves no trace of the last fit
    assert not hasattr(refit, "refit_history_")
    assert refit.network_sha256_ == fitted.network_sha256_ or np.allclose(
        refit.predict_proba(TEST_CELLS), fitted.predict_proba(TEST_CELLS), atol=1e-6)


def test_tampered_network_is_refused(fitted):
    tampered = clone(fitted).set_params()
    tampered.__dict__.update(fitted.__dict__)
    data = bytearray(fitted.network_)
    data[-20] ^= 0xFF
    tampered.network_ = bytes(data)
    with pytest.raises(ValueError, match="modified after fit"):
        tampered.predict(TEST_CELLS)


def test_bad_input(fitted):
    with pytest.raises(TypeError, match="CellSet"):
        CNNClassifier().fit(np.zeros((4, 1, 8, 8)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="single class"):
        CNNClassifier(**FAST).fit(CELLS, np.zeros(80))
    with pytest.raises(ValueError, match="80 cells"):
        CNNClassifier(**FAST).fit(CELLS, Y[:10])
    with pytest.raises(ValueError, match="not among"):
        CNNClassifier(**FAST, channels=["GFP"]).fit(CELLS, Y)
    two = CellSet.from_crops(np.zeros((2, 2, 24, 24), np.float32), channels=["DNA", "GFP"])
    with pytest.raises(ValueError, match="fitted on"):
        fitted.predict(two)


def test_sklearn_api_checks():
    from sklearn.exceptions import NotFittedError

    for method in ("predict", "predict_proba", "transform"):
        with pytest.raises(NotFittedError):  # was an AttributeError about classes_ (predict)
            getattr(CNNClassifier(), method)(TEST_CELLS)
    name = "CNNClassifier"
    check_no_attributes_set_in_init(name, CNNClassifier())
    check_parameters_default_constructible(name, CNNClassifier())
    check_get_params_invariance(name, CNNClassifier())
    check_set_params(name, CNNClassifier())


def test_make_cell_classifier_trained_cnn():
    from featcell import make_cell_classifier

    model = make_cell_classifier("trained_cnn", cnn_params=FAST).fit(CELLS, Y)
    assert model.predict_proba(TEST_CELLS).shape == (40, 2)
    both = make_cell_classifier(
        "classical+trained_cnn", head="lr", families=["morphology"], cnn_params=FAST
    ).fit(CELLS, Y)
    names = both[:-1].get_feature_names_out()
    assert any(n.startswith("CNN_Trained_") for n in names)
    assert any(n.startswith("AreaShape_") for n in names)
    # under pandas output the network's rows carry the cell ids, as every featcell
    # transformer's: the union's tables align (they were 0..n-1: twice the rows, half NaN)
    table = clone(both).set_output(transform="pandas")[:-1].fit_transform(CELLS, Y)
    assert table.shape == (80, len(names)) and list(table.index) == list(CELLS.index)
    assert not table.isna().any().any()


_NO_TORCH = textwrap.dedent(
    """
    import sys

    class _NoTorch:  # "import torch" raises ImportError, as on a machine without torch
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"import of {name} blocked (test without torch)")
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)


def _run_without_torch(tmp_path, code):
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(_NO_TORCH)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), root])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )


def test_fit_without_torch_names_the_extra(tmp_path):
    result = _run_without_torch(
        tmp_path,
        """
        import numpy as np
        from featcell import CellSet
        from featcell.cnn import CNNClassifier
        cells = CellSet.from_crops(np.zeros((4, 8, 8)), image_id=list("abcd"))
        try:
            CNNClassifier().fit(cells, [0, 1, 0, 1])
        except ImportError as exc:
            print("ERROR", exc)
        """,
    )
    assert "ERROR" in result.stdout, result.stderr
    assert "featcell[train]" in result.stdout


def test_saved_model_scores_without_torch(fitted, tmp_path):
    from featcell.persist import save_model

    path = save_model(fitted, tmp_path / "cnn.featcell")
    np.save(tmp_path / "crops.npy", TEST_CELLS.flat().values.reshape(40, 1, 24, 24))
    np.save(tmp_path / "expected.npy", fitted.predict_proba(TEST_CELLS))
    result = _run_without_torch(
        tmp_path,
        f"""
        import sys
        import numpy as np
        from featcell import CellSet, load_model
        model = load_model({str(path)!r})
        cells = CellSet.from_crops(np.load("crops.npy"), channels=["DNA"])
        proba = model.predict_proba(cells)
        assert "torch" not in sys.modules
        np.testing.assert_allclose(proba, np.load("expected.npy"), atol=1e-5)
        print("OK", proba.shape)
        """,
    )
    assert "OK (40, 2)" in result.stdout, result.stderr


def test_cosine_cycles():
    from featcell.cnn._training import _cycle_ends

    assert _cycle_ends(10, 60).tolist() == [10, 30, 60]  # 10, 20, then the 30 left
    assert _cycle_ends(10, 100).tolist() == [10, 30, 100]  # no short last cycle (30 < 40)
    assert _cycle_ends(10, 12).tolist() == [12]
    assert _cycle_ends(10, 5).tolist() == [5]


def _toy_fit(val_losses, **kwargs):
    """fit_network on a tiny linear model with a scripted validation curve."""
    import torch

    from featcell.cnn._training import fit_network

    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    x, t = torch.randn(64, 2), torch.randn(64, 1)
    curve = iter(val_losses)
    kwargs = {"batch_size": 16, "learning_rate": 0.1, "weight_decay": 0.0, "patience": 3,
              "min_epoch_items": 64, **kwargs}
    return fit_network(
        net, lambda model, b: torch.nn.functional.mse_loss(model(b[0]), b[1]), 64, 8,
        make_batch=lambda items, training: (x[items], t[items]),
        validate=lambda model: (next(curve), {}), device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0), **kwargs,
    )


def test_cosine_schedule_anneals_each_cycle_and_stops_after_a_useless_one():
    # cycles end at epochs 2, 6, 14; the second cycle improves, the third does not
    losses = [1.0, 0.9, 0.95, 0.9, 0.85, 0.8] + [0.85] * 8
    history, best = _toy_fit(losses, schedule="cosine", first_cycle=2, max_epochs=14)
    lr = [h["learning_rate"] for h in history]
    assert len(history) == 14 and best == 6  # the whole third cycle runs, then stops
    assert lr[1] < 0.02 and lr[5] < 0.01 and lr[13] < 0.01  # each cycle ends near zero
    assert lr[2] > 0.05 and lr[6] > 0.05  # and restarts high
    # a cycle without improvement ends training at its end, not before
    history, best = _toy_fit([1.0, 0.9] + [0.95] * 4, schedule="cosine", first_cycle=2,
                             max_epochs=14)
    assert len(history) == 6 and best == 2


def test_predictions_ignore_orientation(fitted):
    """Test-time augmentation in the exported graph: flips and 90-degree rotations of a
    cell give the same probabilities and embedding."""
    crops = TEST_CELLS.flat().values.reshape(40, 1, 24, 24)
    turned = CellSet.from_crops(np.ascontiguousarray(np.rot90(crops, 1, axes=(2, 3))[..., ::-1]),
                                channels=["DNA"])
    np.testing.assert_allclose(fitted.predict_proba(turned), fitted.predict_proba(TEST_CELLS),
                               atol=1e-5)
    np.testing.assert_allclose(fitted.transform(turned), fitted.transform(TEST_CELLS), atol=1e-4)


def test_a_refit_to_the_best_epoch_keeps_the_validated_learning_rates():
    # cosine cycles end at epochs 2, 6 and 14; the loss is lowest at epoch 4, mid-cycle: a
    # refit for 4 epochs laid over the validated 14 follows the same rates
    import torch

    from featcell.cnn._training import fit_network

    torch.manual_seed(0)
    x, t = torch.randn(64, 2), torch.randn(64, 1)

    def run(max_epochs, validation, losses=(), schedule_epochs=None):
        curve = iter(losses)
        history, best = fit_network(
            torch.nn.Linear(2, 1), lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]),
            64, validation, make_batch=lambda items, training: (x[items], t[items]),
            validate=(lambda m: (next(curve), {})) if validation else None,
            device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
            batch_size=16, learning_rate=0.1, weight_decay=0.0, patience=3,
            min_epoch_items=64, schedule="cosine", first_cycle=2, max_epochs=max_epochs,
            schedule_epochs=schedule_epochs)
        return [h["learning_rate"] for h in history], best

    validated, best = run(14, 8, [1.0, 0.9, 0.8, 0.7, 0.75, 0.72] + [0.9] * 8)
    refit, _ = run(best, 0, schedule_epochs=14)
    assert best == 4
    np.testing.assert_allclose(refit, validated[:best])
    alone, _ = run(best, 0)  # cycles laid over 4 epochs only: other rates
    assert not np.allclose(alone, validated[:best])
