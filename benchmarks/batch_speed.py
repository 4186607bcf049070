"""Throughput and memory of ``featcell.batch.score_images`` on real images, in one run.

* Speed: the Coelho 2009 nuclei images with their hand-drawn labels, scored by a
  Morphology + Intensity + logistic-regression pipeline, with ``n_jobs=1``,
  ``n_jobs=2`` (loky processes, pool started before timing) and a Dask
  ``LocalCluster`` of two single-threaded worker processes, each timed
  ``--repeats`` times (interleaved); median images/s, cells/s and speed-up over
  ``n_jobs=1`` with its range, and whether each table equals the ``n_jobs=1`` one.
* Memory: resident memory of a fresh process scoring N DSB2018 images (a base
  set replicated with symlinks) with ``n_jobs=1``, for each N given, after a
  two-image warm-up (lazy imports, memory pools); flat means the batch never
  holds the data set.

Wall-clock speed-ups need idle cores: the table also gives the CPU seconds of
all processes, and the load average is printed, so a contended machine shows.

Run::

    python benchmarks/batch_speed.py [--n-speed 67] [--n-memory 100 1000] [--skip-dask] [--repeats 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from pandas.testing import assert_frame_equal
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import StandardScaler

from featcell.batch import score_images
from featcell.features.intensity import Intensity
from featcell.features.morphology import Morphology
from featcell.io import read_cells

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COELHO = DATA / "cell_line" / "coelho2009"
DSB = DATA / "segmentation" / "dsb2018"


def build_model():
    """Cell-line classifier fitted on 3 U2OS and 3 NIH3T3 images."""
    lines = pd.read_csv(COELHO / "images.csv").set_index("image")["cell_line"]
    names = [*lines.index[lines == "U2OS"][:3], *lines.index[lines == "NIH3T3"][:3]]
    cells = read_cells([COELHO / "images" / n for n in names], COELHO / "labels")
    y = lines.loc[cells.metadata["Metadata_ImageID"]].to_numpy()
    features = FeatureUnion(
        [("morphology", Morphology()), ("intensity", Intensity())],
        verbose_feature_names_out=False,
    )
    return make_pipeline(features, StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        cells, y
    )


def cpu_seconds():
    """CPU time of this process and all its children (loky workers, Dask worker processes)."""
    import psutil

    processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def timed(model, files, labels, out, **kwargs):
    before = cpu_seconds()
    result = score_images(model, files, labels, out, progress=False, resume=False, **kwargs)
    return result, result.elapsed, cpu_seconds() - before


def speed(model, n_images, skip_dask, workdir, repeats=3):
    files = sorted((COELHO / "images").glob("*.png"))[:n_images]
    labels = COELHO / "labels"
    runs = {"n_jobs=1": {"n_jobs": 1}, "n_jobs=2 (loky)": {"n_jobs": 2}}
    times = {name: [] for name in runs}
    rows, tables = {}, {}
    # start the loky pool (and its imports) before timing, as a long run amortises it
    score_images(model, files[:2], labels, workdir / "warm", n_jobs=2, progress=False)
    for _ in range(repeats):  # interleaved, so a noisy neighbour hits every setting alike
        for name, kwargs in runs.items():
            result, seconds, cpu = timed(model, files, labels, workdir / name.split()[0], **kwargs)
            times[name].append((seconds, cpu))
            rows[name] = result
            tables[name] = result.read_cells()
    if not skip_dask:
        from dask.distributed import Client, LocalCluster

        name = "Dask LocalCluster 2x1"
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        times[name] = []
        with cluster, Client(cluster), joblib.parallel_config(backend="dask"):
            score_images(model, files[:2], labels, workdir / "warm-dask", progress=False)
            for _ in range(repeats):
                rows[name], seconds, cpu = timed(model, files, labels, workdir / "dask")
                times[name].append((seconds, cpu))
        tables[name] = rows[name].read_cells()

    reference = tables["n_jobs=1"]
    base = np.median([t for t, _ in times["n_jobs=1"]])
    out = []
    for name, result in rows.items():
        seconds = np.array([t for t, _ in times[name]])
        try:
            assert_frame_equal(tables[name], reference)
            same = "yes"
        except AssertionError:
            same = "NO"
        median = np.median(seconds)
        out.append({
            "run": name,
            "images": result.n_images,
            "cells": result.n_cells,
            "seconds (median)": round(median, 1),
            "images/s": round(result.n_images / median, 2),
            "cells/s": round(result.n_cells / median, 1),
            "speed-up (median)": round(base / median, 2),
            "speed-up (range)": f"{base / seconds.max():.2f}-{base / seconds.min():.2f}",
            "CPU s (median, all processes)": round(np.median([c for _, c in times[name]]), 1),
            "same table as n_jobs=1": same,
        })
    return pd.DataFrame(out)


def memory_run(n, model_path, workdir):
    """In this fresh process: score ``n`` replicated DSB2018 images; print peak RSS as JSON."""
    import psutil

    model = joblib.load(model_path)
    base = sorted(p for p in (workdir / "base" / "images").iterdir())
    images, labels = workdir / f"images{n}", workdir / f"labels{n}"
    images.mkdir()
    labels.mkdir()
    for i in range(n):
        source = base[i % len(base)]
        name = f"r{i:05d}_{source.name}"
        (images / name).symlink_to(source)
        (labels / name).symlink_to(workdir / "base" / "labels" / source.name)
    # first, two images to a scratch output: the lazy imports and memory pools of reading,
    # measuring and Parquet writing are a fixed cost, not a per-image one
    score_images(model, list(images.iterdir())[:2], labels, workdir / f"warm{n}", n_jobs=1,
                 progress=False, read_kwargs={"as_gray": True})
    before = psutil.Process().memory_info().rss
    result = score_images(
        model, images, labels, workdir / f"out{n}", n_jobs=1, progress=False,
        read_kwargs={"as_gray": True},
    )
    peak = _peak_rss()
    after = psutil.Process().memory_info().rss
    print(json.dumps({
        "images": result.n_images, "cells": result.n_cells, "errors": result.n_errors,
        "seconds": result.elapsed, "rss_before_mb": before / 2**20, "peak_rss_mb": peak / 2**20,
        "rss_after_mb": after / 2**20,
    }))


def _peak_rss():
    """Peak resident memory of this process in bytes: Linux ``VmHWM``.

    Not ``getrusage``: its ``ru_maxrss`` survives ``exec`` and would report the peak
    of the parent this process was forked from.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: the memory benchmark needs Linux")


def memory(model, sizes, workdir, n_base=50, max_objects=400):
    from featcell.io import read_labels

    base = workdir / "base"
    (base / "images").mkdir(parents=True)
    (base / "labels").mkdir()
    kept = 0
    for path in sorted((DSB / "images").glob("*.png")):
        if read_labels(DSB / "labels" / path.name).max() > max_objects:
            continue
        (base / "images" / path.name).symlink_to(path)
        (base / "labels" / path.name).symlink_to(DSB / "labels" / path.name)
        kept += 1
        if kept == n_base:
            break
    model_path = workdir / "model.joblib"
    joblib.dump(model, model_path)
    rows = []
    for n in sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--memory-run", str(n), "--model", str(model_path),
             "--workdir", str(workdir)],
            check=True, stdout=subprocess.PIPE, text=True,  # warnings go to stderr
        )
        stats = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append({
            "images": stats["images"],
            "errors": stats["errors"],
            "cells": stats["cells"],
            "seconds": round(stats["seconds"], 1),
            "RSS before (MiB)": round(stats["rss_before_mb"]),
            "peak RSS (MiB)": round(stats["peak_rss_mb"]),
            "RSS after (MiB)": round(stats["rss_after_mb"]),
            "peak - before (MiB)": round(stats["peak_rss_mb"] - stats["rss_before_mb"]),
        })
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-speed", type=int, default=67, help="Coelho images to time")
    parser.add_argument("--n-memory", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median)")
    parser.add_argument("--memory-run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_run:
        memory_run(args.memory_run, args.model, Path(args.workdir))
        return
    if not DATA.is_dir():
        raise SystemExit(f"real data not found at {DATA}: this benchmark needs ../shared/data")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    start = time.monotonic()
    model = build_model()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        table = speed(model, args.n_speed, args.skip_dask, workdir, args.repeats)
        print("\nSpeed: Coelho 2009 (1030x1349 px, hand-drawn labels), Morphology + Intensity + LR")
        print(table.to_string(index=False))
        if args.n_memory:
            table = memory(model, args.n_memory, workdir)
            print("\nMemory: DSB2018 (50 images replicated by symlinks), n_jobs=1, fresh process")
            print(table.to_string(index=False))
    print(f"\nload average {os.getloadavg()[0]:.1f} at end; total {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
