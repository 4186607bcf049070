"""Tests of featcell.batch.score_images: tables, bad files, resume, parallel backends."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import tifffile
from numpy.testing import assert_allclose
from pandas.testing import assert_frame_equal
from skimage import io as skio
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from featcell import read_cells
from featcell.batch import BatchResult, score_images


def area_features(cells):
    """Area and mean intensity of every cell: a stand-in for featcell's feature transformers."""
    flat = cells.flat()
    inside = flat.obj[flat.mask]
    area = np.bincount(inside, minlength=len(cells)).astype(float)
    total = np.bincount(inside, weights=flat.values[0][flat.mask], minlength=len(cells))
    return np.column_stack([area, total / np.maximum(area, 1)])


def area_names(transformer, input_features):
    return np.array(["AreaShape_Area", "Intensity_MeanIntensity_Ch1"], dtype=object)


def area_transformer():
    return FunctionTransformer(area_features, feature_names_out=area_names)


def write_field(folder, name, seed, n_objects=None, shape=(48, 48)):
    """A grey image with 1-4 square nuclei of varied size, and its label image."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    n_objects = rng.integers(1, 5) if n_objects is None else n_objects
    for k in range(n_objects):
        side = int(rng.integers(3, 9))
        y, x = 2 + 11 * (k // 2) * 2, 2 + 22 * (k % 2)
        labels[y : y + side, x : x + side] = k + 1
    image = rng.integers(0, 40, shape).astype(np.uint8)
    image[labels > 0] += np.uint8(100 + 10 * seed % 100)
    tifffile.imwrite(folder / "images" / f"{name}.tif", image)
    tifffile.imwrite(folder / "labels" / f"{name}.tif", labels)


@pytest.fixture
def dataset(tmp_path):
    """A folder of 10 small labelled fields (one without cells) and a model fitted on them."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(9):
        write_field(root, f"field{i:02d}", seed=i)
    write_field(root, "field09", seed=9, n_objects=0)
    cells = read_cells(root / "images", root / "labels")
    area = area_features(cells)[:, 0]
    model = make_pipeline(area_transformer(), LogisticRegression())
    model.fit(cells, np.where(area > np.median(area), "big", "small"))
    return root, model, len(cells)


def score(model, root, out, **kwargs):
    kwargs.setdefault("progress", False)
    return score_images(model, root / "images", root / "labels", out, **kwargs)


def test_tables(dataset, tmp_path):
    root, model, n_cells = dataset
    result = score(model, root, tmp_path / "out", include_features=True, chunk_size=3)
    assert isinstance(result, BatchResult)
    assert (result.n_images, result.n_cells, result.n_errors) == (10, n_cells, 0)
    assert result.cells_path == tmp_path / "out" / "cells.parquet"
    cells = result.read_cells()
    assert list(cells.columns[-5:]) == [
        "Prediction", "Probability_big", "Probability_small",
        "AreaShape_Area", "Intensity_MeanIntensity_Ch1",
    ]
    # input order, then object order, whatever order the parts were written in
    ids = cells["Metadata_ImageID"].tolist()
    assert ids == sorted(ids)
    expected = model.predict(read_cells(root / "images", root / "labels"))
    assert cells["Prediction"].tolist() == expected.tolist()
    assert_allclose(cells[["Probability_big", "Probability_small"]].sum(axis=1), 1.0)

    images = result.read_images()
    assert images["Metadata_ImageID"].tolist() == [f"field{i:02d}.tif" for i in range(10)]
    assert images["Count_Cells"].sum() == n_cells
    assert images["Count_Cells"].iloc[-1] == 0
    assert np.isnan(images["Fraction_big"].iloc[-1])
    assert_allclose(images["Count_big"] + images["Count_small"], images["Count_Cells"])
    per_image = cells.groupby("Metadata_ImageID", sort=True)
    assert_allclose(images["Mean_Probability_big"].iloc[:-1], per_image["Probability_big"].mean())
    assert_allclose(images["Mean_AreaShape_Area"].iloc[:-1], per_image["AreaShape_Area"].mean())
    assert result.read_errors().empty


def test_feature_extractor_csv(dataset, tmp_path):
    root, model, n_cells = dataset
    extractor = model[0]
    result = score(extractor, root, tmp_path / "features.csv", per_image=False)
    assert result.cells_path == tmp_path / "features.csv"
    assert result.errors_path == tmp_path / "features_errors.csv"
    assert result.images_path is None
    cells = result.read_cells()
    assert len(cells) == n_cells
    assert "Prediction" not in cells
    expected = area_features(read_cells(root / "images", root / "labels"))
    assert_allclose(cells["AreaShape_Area"], expected[:, 0])
    with pytest.raises(ValueError, match="per_image=False"):
        result.read_images()


def test_regressor_gives_mean_prediction(dataset, tmp_path):
    root, _, _ = dataset
    cells = read_cells(root / "images", root / "labels")
    regressor = make_pipeline(area_transformer(), LinearRegression())
    regressor.fit(cells, area_features(cells)[:, 1])
    result = score(regressor, root, tmp_path / "out")
    images = result.read_images()
    assert list(images.columns) == [
        "Metadata_ImageID", "Metadata_Path", "Count_Cells", "Mean_Prediction",
    ]
    per_image = result.read_cells().groupby("Metadata_ImageID")["Prediction"].mean()
    assert_allclose(images["Mean_Prediction"].iloc[:-1], per_image)


def test_bad_files_are_logged_and_retried(dataset, tmp_path):
    root, model, n_cells = dataset
    images, labels = root / "images", root / "labels"
    # a truncated PNG, a text file named .tif, an image whose labels have another shape
    skio.imsave(images / "truncated.png", np.full((48, 48), 90, np.uint8), check_contrast=False)
    data = (images / "truncated.png").read_bytes()
    (images / "truncated.png").write_bytes(data[: len(data) // 2])
    tifffile.imwrite(labels / "truncated.tif", np.ones((48, 48), np.uint16))
    (images / "notes.tif").write_text("not an image")
    tifffile.imwrite(labels / "notes.tif", np.ones((48, 48), np.uint16))
    tifffile.imwrite(images / "mismatch.tif", np.ones((48, 48), np.uint8))
    tifffile.imwrite(labels / "mismatch.tif", np.ones((40, 48), np.uint16))

    with pytest.warns(UserWarning, match="3 of 13 images could not be scored"):
        result = score(model, root, tmp_path / "out", n_jobs=2, chunk_size=4)
    assert (result.n_images, result.n_cells, result.n_errors) == (10, n_cells, 3)
    errors = result.read_errors()
    assert sorted(os.path.basename(p) for p in errors["path"]) == [
        "mismatch.tif", "notes.tif", "truncated.png",
    ]
    message = errors.set_index(errors["path"].map(os.path.basename))["message"]
    assert "(40, 48)" in message["mismatch.tif"]
    assert len(result.read_images()) == 10

    # a second call skips the finished images and tries the failed ones again
    tifffile.imwrite(labels / "mismatch.tif", np.ones((48, 48), np.uint16))
    with pytest.warns(UserWarning, match="2 of 13"):
        again = score(model, root, tmp_path / "out")
    assert (again.n_resumed, again.n_images, again.n_errors) == (10, 11, 2)
    assert again.n_cells == n_cells + 1


def test_resume_skips_unchanged_files(dataset, tmp_path):
    root, model, _ = dataset
    first = score(model, root, tmp_path / "out", keep_parts=True)
    assert first.n_resumed == 0
    touched = root / "images" / "field03.tif"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = score(model, root, tmp_path / "out", keep_parts=True)
    assert second.n_resumed == 9
    assert_frame_equal(second.read_cells(), first.read_cells())
    third = score(model, root, tmp_path / "out", resume="content", keep_parts=True)
    assert third.n_resumed == 0  # content keys differ from stat keys: everything again
    assert score(model, root, tmp_path / "out", resume="content").n_resumed == 10
    assert not (tmp_path / "out" / "parts").exists()  # removed after a complete run
    assert score(model, root, tmp_path / "out", resume=False).n_resumed == 0


def test_a_damaged_or_stray_part_file_does_not_block_the_resume(dataset, tmp_path):
    root, model, _ = dataset
    first = score(model, root, tmp_path / "out", keep_parts=True, chunk_size=3)
    parts = sorted((tmp_path / "out" / "parts").glob("part-*.parquet"))
    assert len(parts) >= 2
    shutil.copy(parts[1], parts[1].with_name("part-000001 (copy).parquet"))  # ignored
    parts[0].write_bytes(b"")  # what a crash mid-write could leave
    with pytest.warns(UserWarning, match="part-000001.parquet.*cannot be read.*scored again"):
        again = score(model, root, tmp_path / "out", keep_parts=True)
    assert 0 < again.n_resumed < 10 and again.n_images == first.n_images
    assert_frame_equal(again.read_cells(), first.read_cells())
    assert parts[0].with_name("part-000001.parquet.damaged").exists()
    parts[0].with_name("part-000001 (copy).parquet").unlink()
    score(model, root, tmp_path / "out")  # complete: the parts folder goes, the damaged too
    assert not (tmp_path / "out" / "parts").exists()
    (tmp_path / "x_parts").write_text("")
    with pytest.raises(ValueError, match="is a file, where this output keeps its parts"):
        score(model, root, tmp_path / "x.parquet")


def test_resume_refuses_another_model(dataset, tmp_path):
    root, model, _ = dataset
    score(model, root, tmp_path / "out", keep_parts=True)
    with pytest.raises(ValueError, match="different model"):
        score(model[0], root, tmp_path / "out")
    assert score(model[0], root, tmp_path / "out", resume=False).n_images == 10


INTERRUPT = {"after": None, "calls": 0}


def interrupting_features(cells):
    """area_features, with a Ctrl-C after INTERRUPT["after"] calls."""
    INTERRUPT["calls"] += 1
    if INTERRUPT["after"] is not None and INTERRUPT["calls"] > INTERRUPT["after"]:
        raise KeyboardInterrupt
    return area_features(cells)


def test_ctrl_c_keeps_finished_images(dataset, tmp_path, monkeypatch):
    root, _, _ = dataset
    cells = read_cells(root / "images", root / "labels")
    model = make_pipeline(
        FunctionTransformer(interrupting_features, feature_names_out=area_names),
        LogisticRegression(),
    ).fit(cells, area_features(cells)[:, 0] > 30)
    monkeypatch.setitem(INTERRUPT, "calls", 0)
    monkeypatch.setitem(INTERRUPT, "after", 4)
    with pytest.raises(KeyboardInterrupt):
        score(model, root, tmp_path / "out")  # chunk_size=16: nothing written before Ctrl-C
    monkeypatch.setitem(INTERRUPT, "after", None)
    resumed = score(model, root, tmp_path / "out")
    assert resumed.n_resumed == 4
    assert_frame_equal(resumed.read_cells(), score(model, root, tmp_path / "full").read_cells())


SLOW_MODULE = """
import os
import time

import numpy as np


def slow_area(cells):
    time.sleep(float(os.environ.get("SLOW_AREA_SECONDS", "0")))
    flat = cells.flat()
    area = np.bincount(flat.obj[flat.mask], minlength=len(cells)).astype(float)
    return area[:, None]
"""


def test_killed_run_resumes_to_the_same_tables(dataset, tmp_path, monkeypatch):
    root, _, _ = dataset
    (tmp_path / "slowcells.py").write_text(textwrap.dedent(SLOW_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import slowcells

    cells = read_cells(root / "images", root / "labels")
    area = slowcells.slow_area(cells)[:, 0]
    model = make_pipeline(FunctionTransformer(slowcells.slow_area), LogisticRegression())
    model.fit(cells, area > np.median(area))
    joblib.dump(model, tmp_path / "model.joblib")

    out = tmp_path / "killed"
    script = (
        "import joblib, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from featcell.batch import score_images\n"
        f"model = joblib.load({str(tmp_path / 'model.joblib')!r})\n"
        f"score_images(model, {str(root / 'images')!r}, {str(root / 'labels')!r}, {str(out)!r},"
        " chunk_size=2, progress=False)\n"
    )
    env = {**os.environ, "SLOW_AREA_SECONDS": "0.3"}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        while not list((out / "parts").glob("part-*.parquet")):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no part was written within 60 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert not (out / "cells.parquet").exists()

    model = joblib.load(tmp_path / "model.joblib")
    resumed = score_images(model, root / "images", root / "labels", out, progress=False)
    assert 2 <= resumed.n_resumed < 10
    full = score_images(model, root / "images", root / "labels", tmp_path / "full", progress=False)
    assert full.n_resumed == 0
    assert_frame_equal(resumed.read_cells(), full.read_cells())
    assert_frame_equal(resumed.read_images(), full.read_images())


def test_dask_backend_matches_sequential(dataset, tmp_path):
    distributed = pytest.importorskip("distributed")
    root, model, _ = dataset
    sequential = score(model, root, tmp_path / "seq", n_jobs=1, include_features=True)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    with cluster, distributed.Client(cluster), joblib.parallel_config(backend="dask"):
        on_dask = score(model, root, tmp_path / "dask", include_features=True, chunk_size=3)
    assert_frame_equal(on_dask.read_cells(), sequential.read_cells())
    assert_frame_equal(on_dask.read_images(), sequential.read_images())


def test_segments_without_labels(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    image = np.zeros((64, 64), np.uint8)
    image[10:22, 10:22] = 200
    image[35:50, 30:48] = 180
    tifffile.imwrite(folder / "a.tif", image)
    extractor = area_transformer()
    result = score_images(extractor, folder, None, tmp_path / "out", progress=False)
    assert result.n_cells == 2
    small, large = sorted(result.read_cells()["AreaShape_Area"])
    assert small >= 144 and large >= 270


def test_progress_bar(dataset, tmp_path, capsys):
    root, model, _ = dataset
    score(model, root, tmp_path / "out", progress=True)
    err = capsys.readouterr().err
    assert "10/10 images" in err and "cells/s" in err and "ETA" in err
    score(model, root, tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""


def test_read_kwargs_and_metadata(dataset, tmp_path):
    root, model, _ = dataset
    plates = pd.DataFrame({"Plate": ["P1"] * 10}, index=[f"field{i:02d}.tif" for i in range(10)])
    result = score(model[0], root, tmp_path / "out", read_kwargs={"metadata": plates, "margin": 2})
    assert set(result.read_cells()["Metadata_Plate"]) == {"P1"}


@pytest.mark.filterwarnings("error::FutureWarning")  # (pandas' on concatenating empty tables)
def test_a_blank_metadata_cell_or_a_column_typed_two_ways_does_not_stop_the_run(dataset,
                                                                                tmp_path):
    """One blank cell in a text column of the metadata table made that image's column a
    number: the parts could not be merged and the run failed with nothing written."""
    import pyarrow as pa

    from featcell.batch import _unify

    root, model, _ = dataset
    treatment = ["DMSO", "drug", None, "DMSO", "drug", "DMSO", "drug", "DMSO", "drug", "DMSO"]
    table = pd.DataFrame({"Treatment": treatment, "Dose": [1.0, 2.0, np.nan] + [1.0] * 7},
                         index=[f"field{i:02d}.tif" for i in range(10)])
    cells = score(model[0], root, tmp_path / "out", read_kwargs={"metadata": table},
                  chunk_size=2).read_cells()
    by_image = cells.groupby("Metadata_ImageID")[["Metadata_Treatment", "Metadata_Dose"]].first()
    assert by_image.loc["field01.tif"].tolist() == ["drug", 2.0]
    assert by_image.loc["field02.tif"].isna().all()
    assert cells["Metadata_Dose"].dtype.kind == "f"  # a blank number stays a number
    # read in memory, the blank dose keeps the column numeric too (no object column)
    from featcell.io import read_cells

    in_memory = read_cells(root / "images", root / "labels", metadata=table).metadata
    assert in_memory["Metadata_Dose"].dtype.kind == "f"
    schema = _unify([pa.schema([("Metadata_A", pa.string()), ("x", pa.float32())]),
                     pa.schema([("x", pa.float64()), ("Metadata_A", pa.float64())])])
    assert schema == pa.schema([("Metadata_A", pa.string()), ("x", pa.float64())])


def test_a_file_name_that_is_not_utf8_is_scored_and_named(dataset, tmp_path):
    """One image named b"b_\\xff.tif" failed (its id could not enter the table), and then
    the errors table could not be written: the run stopped naming no file."""
    root, model, _ = dataset
    source = root / "images" / "field00.tif"
    try:
        os.rename(os.fsencode(source), os.fsencode(root / "images") + b"/b_\xff.tif")
        os.rename(os.fsencode(root / "labels" / "field00.tif"),
                  os.fsencode(root / "labels") + b"/b_\xff.tif")
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    (root / "images" / "field01.tif").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="1 of 10 images could not be scored"):
        result = score(model[0], root, tmp_path / "out.csv", per_image=True)
    assert "b_\\xff.tif" in set(result.read_cells()["Metadata_ImageID"])
    assert "b_\\xff.tif" in set(result.read_images()["Metadata_ImageID"])
    assert [Path(p).name for p in result.read_errors()["path"]] == ["field01.tif"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"resume": "yes"}, ValueError, "'resume' parameter of score_images must be"),
        ({"chunk_size": 0}, ValueError, "'chunk_size' parameter of score_images must be"),
        ({"format": "xlsx"}, ValueError, "'format' parameter of score_images must be"),
        ({"read_kwargs": {"chanels": ["DNA"]}}, TypeError, "unknown keys \\['chanels'\\]"),
    ],
)
def test_invalid_arguments(dataset, tmp_path, kwargs, error, match):
    root, model, _ = dataset
    with pytest.raises(error, match=match):
        score(model, root, tmp_path / "out", **kwargs)


def test_invalid_models_and_inputs(dataset, tmp_path):
    root, model, _ = dataset
    with pytest.raises(TypeError, match="'model' parameter of score_images must be"):
        score(object(), root, tmp_path / "out")
    with pytest.raises(NotFittedError):
        score(make_pipeline(area_transformer(), LogisticRegression()), root, tmp_path / "out")
    with pytest.raises(ValueError, match="include_features=True needs a Pipeline"):
        score(model[0], root, tmp_path / "out", include_features=True)
    with pytest.raises(ValueError, match="format='csv' but output"):
        score(model, root, tmp_path / "out.parquet", format="csv")
    image = str(root / "images" / "field00.tif")
    with pytest.raises(ValueError, match="more than once"):
        score_images(model, [image, image], root / "labels", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="labels must be a folder"):
        score_images(model, [image], root / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        score_images(model, tmp_path / "empty", None, tmp_path / "out")


def test_worker_processes_keep_freed_memory_the_caller_does_not(monkeypatch, tmp_path):
    from featcell import _memory, batch

    calls = []
    monkeypatch.setattr(_memory, "keep_freed_memory", lambda: calls.append(os.getpid()))
    missing = str(tmp_path / "missing.png")
    record, _ = batch._score_image(None, missing, None, {}, False, caller_pid=os.getpid())
    assert calls == [] and record["status"] == "error"
    batch._score_image(None, missing, None, {}, False, caller_pid=os.getpid() + 1)
    assert calls == [os.getpid()]


def test_keep_freed_memory_sets_glibc_thresholds_once():
    from featcell import _memory

    _memory.keep_freed_memory.cache_clear()
    tuned = _memory.keep_freed_memory()
    assert tuned == (sys.platform.startswith("linux") and _glibc())
    assert _memory.keep_freed_memory() is tuned  # cached: once per process


def _glibc():
    import platform

    return platform.libc_ver()[0] == "glibc"
