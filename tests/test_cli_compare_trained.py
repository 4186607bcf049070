"""featcell compare --model trained_cnn: a CNN trained in every fold next to table models."""

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


def test_compare_with_a_trained_cnn(capsys, images, monkeypatch):
    from functools import partial

    from featcell import tasks
    from featcell.cnn import _training

    monkeypatch.setattr(  # epochs of 64 draws: the test checks the wiring, not accuracy
        _training, "fit_network", partial(_training.fit_network, min_epoch_items=64)
    )

    original = tasks.make_cell_classifier

    def quick(features, **kwargs):  # the CLI's network, trained briefly
        kwargs["cnn_params"] = {**kwargs.get("cnn_params", {}), **FAST}
        return original(features, **kwargs)

    monkeypatch.setattr(tasks, "make_cell_classifier", quick)
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
