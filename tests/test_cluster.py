"""Clusters and notebooks: --scheduler (Dask), allocator tuning only in featcell's own workers,
the one tqdm.auto progress bar."""

import os

import joblib
import numpy as np
import pandas as pd
import pytest
import tifffile
from pandas.testing import assert_frame_equal
from sklearn.preprocessing import FunctionTransformer

from featcell import _memory
from featcell.batch import score_images
from featcell.cli import main


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for k in range(4):
        labels = np.zeros((32, 32), np.uint16)
        labels[4:12, 4:12] = 1
        labels[18:28, 16:28 - k] = 2
        tifffile.imwrite(tmp_path / "img" / f"f{k}.tif", (labels > 0).astype(np.uint8) * 200)
        tifffile.imwrite(tmp_path / "lab" / f"f{k}.tif", labels)
    return tmp_path


def _tuned_probe():
    """A fitted transformer whose features say whether its process tuned the allocator, and
    which process that was."""

    def tuned(cells):
        from featcell import _memory

        return np.repeat([[_memory.keep_freed_memory.cache_info().currsize, os.getpid()]],
                         len(cells), axis=0).astype(float)

    return FunctionTransformer(tuned).fit(None)


@pytest.fixture
def local_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                       protocol="tcp", host="127.0.0.1", dashboard_address=None)
    with cluster:
        yield cluster


@pytest.mark.parametrize(("backend", "own"), [
    ("loky", True), ("multiprocessing", True), ("threading", False), ("sequential", False),
])
def test_tuning_token_only_for_workers_joblib_starts(backend, own):
    with joblib.parallel_config(backend=backend):
        assert _memory.tuning_token() == (os.getpid() if own else None)


def test_dask_workers_are_not_tuned(local_cluster):
    distributed = pytest.importorskip("distributed")
    with distributed.Client(local_cluster), joblib.parallel_config(backend="dask"):
        assert _memory.tuning_token() is None


def test_score_images_tunes_its_loky_workers_not_a_dask_worker_process(folder, tmp_path):
    distributed = pytest.importorskip("distributed")
    probe = _tuned_probe()
    loky = score_images(probe, folder / "img", folder / "lab", tmp_path / "loky", n_jobs=2,
                        progress=False)
    assert set(loky.read_cells()["Feature_0"]) == {1.0}
    assert os.getpid() not in set(loky.read_cells()["Feature_1"])
    # two threads: with one, joblib runs the tasks in this process, not on the cluster
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                       dashboard_address=None)
    with cluster, distributed.Client(cluster), joblib.parallel_config(backend="dask"):
        pids = set(distributed.get_client().run(os.getpid).values())
        assert os.getpid() not in pids  # the worker is another process
        dask = score_images(probe, folder / "img", folder / "lab", tmp_path / "dask",
                            progress=False)
    cells = dask.read_cells()
    assert dask.n_images == 4 and set(cells["Feature_1"]) <= pids  # it ran on the worker
    assert set(cells["Feature_0"]) == {0.0}


def test_cli_scheduler_runs_on_the_cluster(folder, tmp_path, capsys, local_cluster):
    out_local = tmp_path / "local.parquet"
    out_dask = tmp_path / "dask.parquet"
    common = [str(folder / "img"), "--labels", str(folder / "lab"), "--families", "morphology",
              "intensity"]
    assert main(["extract", *common, "-o", str(out_local), "-q"]) == 0
    assert main(["extract", *common, "-o", str(out_dask), "--scheduler",
                 local_cluster.scheduler_address]) == 0
    err = capsys.readouterr().err
    assert f"running on the Dask cluster at {local_cluster.scheduler_address} (1 workers)" in err
    assert_frame_equal(pd.read_parquet(out_dask), pd.read_parquet(out_local))


def test_cli_scheduler_that_cannot_be_reached_is_one_clear_error(folder, tmp_path, capsys,
                                                                 monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("featcell.cli._SCHEDULER_TIMEOUT", 1)
    status = main(["extract", str(folder / "img"), "--labels", str(folder / "lab"),
                   "-o", str(tmp_path / "x.parquet"), "--scheduler", "tcp://127.0.0.1:9"])
    assert status == 2
    assert "featcell: error: --scheduler 'tcp://127.0.0.1:9': could not connect" in (
        capsys.readouterr().err)


def test_progress_bar_is_tqdm_auto_and_quiet_when_asked(folder, tmp_path, capsys):
    from tqdm.auto import tqdm

    from featcell._progress import progress_bar

    bar = progress_bar(4, desc="featcell", unit="images", disable=True)
    assert isinstance(bar, tqdm)
    bar.close()
    score_images(_tuned_probe(), folder / "img", folder / "lab", tmp_path / "a")
    err = capsys.readouterr().err
    assert "4/4 images" in err and "cells/s" in err and "ETA" in err
    score_images(_tuned_probe(), folder / "img", folder / "lab", tmp_path / "b", progress=False)
    assert capsys.readouterr().err == ""
    assert main(["extract", str(folder / "img"), "--labels", str(folder / "lab"), "-q",
                 "--families", "morphology", "-o", str(tmp_path / "q.parquet")]) == 0
    assert capsys.readouterr().err == ""


def test_cli_reads_z_stacks_with_z_project(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    labels = np.zeros((32, 32), np.uint16)
    labels[4:12, 4:12] = 1
    stack = np.stack([labels * 100 * (z + 1) for z in range(3)]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "img" / "z.ome.tif", stack, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "lab" / "z.tif", labels)
    argv = ["extract", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"), "--families",
            "intensity", "-q"]
    assert main([*argv, "-o", str(tmp_path / "refused.parquet")]) == 2
    assert "Z axis has 3 planes" in capsys.readouterr().err
    assert main([*argv, "--z-project", "max", "-o", str(tmp_path / "max.parquet")]) == 0
    table = pd.read_parquet(tmp_path / "max.parquet")
    assert table["Cells_Intensity_MaxIntensity_Ch1"].iloc[0] == pytest.approx(300 / 65535)


def test_scheduler_is_an_option_of_the_commands_that_process_folders():
    from featcell.cli import build_parser

    parser = build_parser()
    for argv in (["extract", "imgs", "-o", "x.parquet"], ["score", "m.featcell", "imgs", "-o",
                                                         "x.parquet"]):
        args = parser.parse_args([*argv, "--scheduler", "tcp://10.0.0.5:8786"])
        assert args.scheduler == "tcp://10.0.0.5:8786"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "t.parquet", "--target", "y", "-o", "m", "--scheduler", "x"])
