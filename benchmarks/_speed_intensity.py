"""Speed of featcell ``Intensity`` against its peers, on one image and mask.

``run(image, labels)`` times, on the same objects:

* family ``intensity`` (MeasureObjectIntensity: whole-object statistics,
  edge and mass features, 19 per channel): featcell ``Intensity(["intensity",
  "edge", "mass"])`` vs cp_measure ``get_intensity``, scikit-image
  ``regionprops_table`` (mean/min/max/std only) and nyxus twice: the same
  features (``NYXUS_INTENSITY``: the nine whole-object statistics, the five
  edge ones, mass displacement, the centroid and the intensity-weighted
  centroid; nyxus has no brightest-pixel location, and it takes the edge
  pixels from the contour it traces for its perimeter, more work than
  CellProfiler's outline), and
  ``*ALL_INTENSITY*`` (36 whole-object statistics: the nine and 27 others such
  as skewness, entropy and percentiles, but no edge or mass feature);
* family ``radial`` (MeasureObjectIntensityDistribution, 4 rings): featcell
  ``Intensity("radial")`` vs cp_measure ``get_radial_distribution`` and
  nyxus's ``FRAC_AT_D``, ``MEAN_FRAC`` and ``RADIAL_CV`` (the same three
  features, on 8 rings: nyxus 0.11 has no setting for their number).

featcell is timed on a ready :class:`~featcell.CellSet` (``transform`` only)
and once more including ``CellSet.from_labels``: the peers take the label
image and parse it themselves, so the row with ``from_labels`` is the one to
compare with them. Each ``transform`` gets a CellSet it has not seen (featcell
lays out a CellSet's pixels once for all the families that measure it). Each
timing is the best of ``repeat`` runs (one run for anything slower than a
second); nyxus runs on one thread.

nyxus casts the intensity image to ``uint32`` (``Nyxus.featurize``), so the
float image in [0, 1] the other tools get would reach it as all zeros and
every intensity feature would measure a blank image (earlier versions of these
benchmarks did that). nyxus gets the same image as 16-bit levels
(:func:`nyxus_input`, made outside the timing); the row ``(before) nyxus ...,
float image read as 0`` repeats the old call for comparison.

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
    """Objects per second per (family, tool) and the speed-up over the family's first
    cp_measure tool and its first nyxus tool (the one computing the same features)."""
    import pandas as pd

    table = pd.DataFrame(rows).groupby(["family", "tool"], sort=False)[["objects", "seconds"]].sum()
    table["objects/s"] = table["objects"] / table["seconds"]
    tools = table.index.get_level_values("tool")
    for peer in ("cp_measure", "nyxus"):
        reference = {
            family: part["objects/s"].iloc[0]
            for family, part in table[tools.str.startswith(peer)].groupby(level="family")
        }
        table[f"x {peer}"] = [
            value / reference.get(family, np.nan)
            for (family, _), value in table["objects/s"].items()
        ]
    return table


# the features of featcell's Intensity(["intensity", "edge", "mass"]) that nyxus has
NYXUS_INTENSITY = [
    "INTEGRATED_INTENSITY", "MEAN", "STANDARD_DEVIATION_BIASED", "MIN", "MAX", "P25", "MEDIAN",
    "MEDIAN_ABSOLUTE_DEVIATION", "P75", "EDGE_INTEGRATED_INTENSITY", "EDGE_MEAN_INTENSITY",
    "EDGE_STDDEV_INTENSITY", "EDGE_MIN_INTENSITY", "EDGE_MAX_INTENSITY", "MASS_DISPLACEMENT",
    "CENTROID_X", "CENTROID_Y", "WEIGHTED_CENTROID_X", "WEIGHTED_CENTROID_Y",
]  # fmt: skip


def nyxus_input(image, labels):
    """The image and labels as nyxus reads them: intensities in [0, 1] as 16-bit levels
    (``x 65535``, rounded; nyxus casts a float image to ``uint32``, which would make one in
    [0, 1] all zeros) and labels as ``uint32``."""
    levels = np.rint(np.clip(image, 0.0, 1.0) * 65535).astype(np.uint16)
    return levels, np.asarray(labels).astype(np.uint32)


def nyxus(features, image, labels, metaparams=(), **params):
    """nyxus ``features`` (feature or group names) on one thread, with feature settings
    ``metaparams`` (e.g. ``"glcm/offset=3"``) and constructor ``params``; ``image`` and
    ``labels`` from :func:`nyxus_input`."""
    from nyxus import Nyxus

    engine = Nyxus(features, n_feature_calc_threads=1, **params)
    for setting in metaparams:
        engine.set_metaparam(setting)
    return engine.featurize(image, labels)


def unseen(cells, repeat):
    """A function returning another copy of ``cells`` at each call (``repeat`` made ahead):
    a transformer timed on cells it has measured before would skip their pixel layout."""
    copies = iter([cells[:] for _ in range(repeat)])
    return lambda: next(copies)


def run(image, labels, repeat=3, with_nyxus=True):
    """Time featcell and its peers on one image.

    Parameters
    ----------
    image : (H, W) ndarray of float
        One channel.
    labels : (H, W) ndarray of int
        Instance labels.
    repeat : int, default=3
        Runs per tool; the best is kept.
    with_nyxus : bool, default=True
        Time nyxus too (where installed).

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
    n, (levels, ulabels) = int(labels.max()), nyxus_input(pixels, labels)
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
            "nyxus, the same features (no brightest-pixel place, 1 thread)",
            lambda: nyxus(NYXUS_INTENSITY, levels, ulabels),
        ),
        (
            "intensity",
            "nyxus *ALL_INTENSITY* (36 statistics, no edge or mass, 1 thread)",
            lambda: nyxus(["*ALL_INTENSITY*"], levels, ulabels),
        ),
        (
            "intensity",
            "(before) nyxus *ALL_INTENSITY*, float image read as 0",
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
            "nyxus FRAC_AT_D+MEAN_FRAC+RADIAL_CV (8 rings, 1 thread)",
            lambda: nyxus(["FRAC_AT_D", "MEAN_FRAC", "RADIAL_CV"], levels, ulabels),
        ),
        (
            "radial",
            "(before) nyxus FRAC_AT_D+MEAN_FRAC+RADIAL_CV, float image read as 0",
            lambda: nyxus(["FRAC_AT_D", "MEAN_FRAC", "RADIAL_CV"], pixels, ulabels),
        ),
    ]
    if not with_nyxus:
        tools = [tool for tool in tools if "nyxus" not in tool[1]]
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
