"""Speed of featcell ``Intensity`` against its peers, on one image and mask.

``run(image, labels)`` times, on the same objects:

* family ``intensity`` (MeasureObjectIntensity: whole-object statistics,
  edge and mass features): featcell ``Intensity(["intensity", "edge",
  "mass"])`` vs cp_measure ``get_intensity``, scikit-image
  ``regionprops_table`` (mean/min/max/std only) and nyxus ``*ALL_INTENSITY*``;
* family ``radial`` (MeasureObjectIntensityDistribution): featcell
  ``Intensity("radial")`` vs cp_measure ``get_radial_distribution`` and
  nyxus's ``FRAC_AT_D``, ``MEAN_FRAC`` and ``RADIAL_CV``.

featcell is timed on a ready :class:`~featcell.CellSet` (``transform`` only)
and once more including ``CellSet.from_labels``: the peers take the label
image and parse it themselves, so the row with ``from_labels`` is the one to
compare with them. Each ``transform`` gets a CellSet it has not seen (featcell
lays out a CellSet's pixels once for all the families that measure it). Each
timing is the best of ``repeat`` runs (one run for anything slower than a
second); nyxus runs on one thread.

Run ``python benchmarks/_speed_intensity.py`` for a table on a few real images.
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np
from skimage.segmentation import relabel_sequential

from featcell import CellSet
from featcell.features.intensity import Intensity


def best_time(fn, repeat=3):
    """Best wall time of ``fn()`` over ``repeat`` runs (a single run if it takes > 1 s)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if times[-1] > 1.0:
            break
    return min(times)


def report(rows):
    """Objects per second per (family, tool) and the speed-up over the family's cp_measure tool."""
    import pandas as pd

    table = pd.DataFrame(rows).groupby(["family", "tool"], sort=False)[["objects", "seconds"]].sum()
    table["objects/s"] = table["objects"] / table["seconds"]
    reference = {
        family: part["objects/s"].iloc[0]
        for family, part in table[
            table.index.get_level_values("tool").str.startswith("cp_measure")
        ].groupby(level="family")
    }
    table["x cp_measure"] = [
        value / reference.get(family, np.nan) for (family, _), value in table["objects/s"].items()
    ]
    return table


def nyxus(features, image, labels):
    """nyxus ``features`` (feature or group names) on one thread; ``labels`` uint32."""
    from nyxus import Nyxus

    return Nyxus(features, n_feature_calc_threads=1).featurize(image, labels)


def unseen(cells, repeat):
    """A function returning another copy of ``cells`` at each call (``repeat`` made ahead):
    a transformer timed on cells it has measured before would skip their pixel layout."""
    copies = iter([cells[:] for _ in range(repeat)])
    return lambda: next(copies)


def run(image, labels, repeat=3):
    """Time featcell and its peers on one image.

    Parameters
    ----------
    image : (H, W) ndarray of float
        One channel.
    labels : (H, W) ndarray of int
        Instance labels.
    repeat : int, default=3
        Runs per tool; the best is kept.

    Returns
    -------
    list of dict
        ``tool``, ``family``, ``objects``, ``seconds``.
    """
    from cp_measure.core.measureobjectintensity import get_intensity
    from cp_measure.core.measureobjectintensitydistribution import get_radial_distribution
    from skimage.measure import regionprops_table

    pixels = np.asarray(image, dtype=np.float64)
    labels = relabel_sequential(np.asarray(labels))[0].astype(np.int32)
    n, ulabels = int(labels.max()), labels.astype(np.uint32)
    cells = CellSet.from_labels(pixels, labels, channels=["DNA"])
    whole = Intensity(["intensity", "edge", "mass"]).fit(cells)
    radial = Intensity("radial").fit(cells)
    whole.transform(cells)  # warm imports and caches outside the timing
    radial.transform(cells)
    whole_cells, radial_cells = unseen(cells, repeat), unseen(cells, repeat)

    def build_and(transformer):
        return lambda: transformer.transform(CellSet.from_labels(pixels, labels, channels=["DNA"]))

    tools = [
        (
            "intensity",
            "featcell Intensity (intensity+edge+mass)",
            lambda: whole.transform(whole_cells()),
        ),
        ("intensity", "featcell Intensity (incl. CellSet.from_labels)", build_and(whole)),
        ("intensity", "cp_measure get_intensity", lambda: get_intensity(labels, pixels)),
        (
            "intensity",
            "scikit-image regionprops_table (mean/min/max/std only)",
            lambda: regionprops_table(
                labels,
                pixels,
                properties=("intensity_mean", "intensity_min", "intensity_max", "intensity_std"),
            ),
        ),
        (
            "intensity",
            "nyxus *ALL_INTENSITY* (1 thread)",
            lambda: nyxus(["*ALL_INTENSITY*"], pixels, ulabels),
        ),
        ("radial", "featcell Intensity (radial)", lambda: radial.transform(radial_cells())),
        ("radial", "featcell Intensity (radial, incl. CellSet.from_labels)", build_and(radial)),
        (
            "radial",
            "cp_measure get_radial_distribution",
            lambda: get_radial_distribution(labels, pixels),
        ),
        (
            "radial",
            "nyxus FRAC_AT_D+MEAN_FRAC+RADIAL_CV (1 thread)",
            lambda: nyxus(["FRAC_AT_D", "MEAN_FRAC", "RADIAL_CV"], pixels, ulabels),
        ),
    ]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for family, tool, fn in tools:
            try:
                seconds = best_time(fn, repeat)
            except ImportError:
                continue
            rows.append({"tool": tool, "family": family, "objects": n, "seconds": seconds})
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _data import benchmark_images

    rows = [row for _, image, labels in benchmark_images(2, 4) for row in run(image, labels)]
    print(report(rows).to_string(float_format=lambda v: f"{v:.4g}"))
