"""The command line with a trained CNN: compare --model trained_cnn (a CNN trained in every
fold next to table models), and train --model trained_cnn then score."""

import shutil
from pathlib import Path

import pytest

import featcell
from featcell.cli import main

pytest.importorskip("torch")

FAST = {"width": 8, "max_epochs": 2, "patience": 1, "n_threads": 1}


@pytest.fixture
def images(tmp_path):
    live_dead = Path(featcell.__file__).parent / "data" / "live_dead"
    (tmp_path / "images").mkdir()
    (tmp_path / "boxes").mkdir()
    for image in sorted((live_dead / "images").iterdir())[::4][:8]:
        shutil.copy(image, tmp_path / "images" / image.name)
        shutil.copy(live_dead / "annotations" / f"{image.stem}.xml", tmp_path / "boxes")
    return tmp_path


@pytest.fixture
def quick_network(monkeypatch):
    """The command line's network, trained briefly: the tests check the wiring, not accuracy."""
    from featcell import tasks

    original = tasks.make_cell_classifier

    def quick(features, **kwargs):
        kwargs["cnn_params"] = {**kwargs.get("cnn_params", {}), **FAST}
        return original(features, **kwargs)

    monkeypatch.setattr(tasks, "make_cell_classifier", quick)


def test_compare_with_a_trained_cnn(capsys, images, monkeypatch, quick_network):
    from functools import partial

    from featcell.cnn import _training

    monkeypatch.setattr(  # epochs of 64 draws
        _training, "fit_network", partial(_training.fit_network, min_epoch_items=64)
    )
    report = images / "report"
    code = main(["compare", str(images / "images"), "--labels", str(images / "boxes"),
                 "--as-gray", "--target", "Class", "--families", "morphology",
                 "--candidates", "classical", "--model", "lr", "trained_cnn", "--cv", "2",
                 "--no-importance", "-o", str(report), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "classical:" in out and "trained_cnn:" in out
    text = (report / "report.md").read_text()
    assert "trained_cnn" in text and "cpu" in text  # the candidate, its training hardware


def test_compare_trained_cnn_needs_images(capsys, tmp_path):
    table = tmp_path / "features.csv"
    table.write_text("Metadata_ImageID,Class,area\na,x,1\nb,y,2\n")
    code = main(["compare", str(table), "--target", "Class", "--model", "trained_cnn",
                 "-o", str(tmp_path / "report")])
    _, err = capsys.readouterr()
    assert code == 2 and "give images" in err


def test_train_trained_cnn_then_score(capsys, images, quick_network):
    import pandas as pd

    model = images / "cnn.featcell"
    code = main(["train", str(images / "images"), "--labels", str(images / "boxes"),
                 "--as-gray", "--target", "Class", "--model", "trained_cnn", "--cv", "2",
                 "-o", str(model), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "balanced_accuracy" in out and model.is_file()
    code = main(["score", str(model), str(images / "images"), "--labels",
                 str(images / "boxes"), "-o", str(images / "scores.parquet"), "-q"])
    _, err = capsys.readouterr()
    assert code == 0, err
    scores = pd.read_parquet(images / "scores.parquet")
    assert {"Prediction", "Probability_Dead Cell", "Probability_Living Cell"} <= set(scores)
