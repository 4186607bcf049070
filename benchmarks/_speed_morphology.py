"""Speed of featcell.Morphology against the tools that measure object shape.

``run(image, labels)`` times, on the same objects, best of a few repeats:

* featcell ``Morphology`` (all 101 features) on a built CellSet, and including
  ``CellSet.from_labels``;
* cp_measure ``get_sizeshape`` + ``get_zernike`` + ``get_feret`` (CellProfiler's
  MeasureObjectSizeShape), and with cp_measure's numba accelerator when numba
  is installed;
* scikit-image ``regionprops_table`` with the shape properties it has;
* mahotas ``zernike_moments``, one call per object (Zernike only);
* nyxus ``*ALL_MORPHOLOGY*`` (1 thread) where installed, on the image as
  16-bit levels (``_speed_intensity.nyxus_input``: nyxus casts intensities to
  ``uint32``, so the float image in [0, 1] would be blank to it).

Run alone for a table on a few real images::

    python benchmarks/_speed_morphology.py
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from featcell import CellSet
from featcell.features.morphology import Morphology

FAMILY = "morphology"
REGIONPROPS = (
    "area", "area_bbox", "area_convex", "area_filled", "equivalent_diameter_area",
    "perimeter", "perimeter_crofton", "solidity", "extent", "euler_number", "eccentricity",
    "axis_major_length", "axis_minor_length", "orientation", "feret_diameter_max", "moments",
    "moments_central", "moments_normalized", "moments_hu", "inertia_tensor",
    "inertia_tensor_eigvals",
)  # fmt: skip


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _cp_measure(image, labels):
    from cp_measure.bulk import get_core_measurements

    functions = get_core_measurements()
    return [functions[name](labels, image) for name in ("sizeshape", "zernike", "feret")]


def _cp_measure_numba(image, labels):
    import cp_measure

    cp_measure.set_accelerator("numba")
    try:
        return _cp_measure(image, labels)
    finally:
        cp_measure.set_accelerator(None)


def _mahotas_zernike(image, labels):
    import mahotas
    from scipy import ndimage as ndi

    out = []
    for index, box in enumerate(ndi.find_objects(labels)):
        if box is None:
            continue
        mask = labels[box] == index + 1
        radius = max(mask.shape) / 2
        out.append(mahotas.features.zernike_moments(mask, radius, degree=9))
    return out


def _nyxus(image, labels):
    from nyxus import Nyxus

    return Nyxus(["*ALL_MORPHOLOGY*"], n_feature_calc_threads=1).featurize(image, labels)


def run(image, labels, repeat=3, with_nyxus=True):
    """Seconds per tool on one image: a list of dicts (tool, family, objects, seconds).

    Parameters
    ----------
    image : (H, W) ndarray of float
        Intensities.
    labels : (H, W) ndarray of int
        Instance labels.
    repeat : int, default=3
        Repeats for featcell and cp_measure, keeping the best time (the others
        measure the machine's load); the slower peers run once.
    with_nyxus : bool, default=True
        Time nyxus too (where installed).
    """
    from skimage.measure import regionprops_table

    warnings.filterwarnings("ignore")
    labels = np.asarray(labels).astype(np.int32)
    image = np.asarray(image, dtype=np.float64)
    n = int(len(np.unique(labels)) - 1)
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    morphology = Morphology().fit(cells)
    tools = {
        "cp_measure sizeshape+zernike+feret": lambda: _cp_measure(image, labels),
        "featcell Morphology (n_jobs=1)": lambda: morphology.transform(cells),
        "featcell Morphology incl. CellSet.from_labels": lambda: Morphology().fit_transform(
            CellSet.from_labels(image, labels, channels=["DNA"])
        ),
        "scikit-image regionprops_table (shape props)": lambda: regionprops_table(
            labels, properties=REGIONPROPS
        ),
        "mahotas zernike_moments (Zernike only, per object)": lambda: _mahotas_zernike(
            image, labels
        ),
    }
    try:
        import numba  # noqa: F401

        tools["cp_measure numba accelerator"] = lambda: _cp_measure_numba(image, labels)
    except ImportError:
        pass
    try:
        import nyxus  # noqa: F401
        from _speed_intensity import nyxus_input

        if with_nyxus:
            levels = nyxus_input(image, labels)
            tools["nyxus *ALL_MORPHOLOGY* (1 thread)"] = lambda: _nyxus(*levels)
    except ImportError:
        pass
    rows = []
    for tool, fn in tools.items():
        fn()  # warm-up: imports, caches, numba compilation
        seconds = _best(fn, repeat if tool.startswith(("featcell", "cp_measure ")) else 1)
        rows.append({"tool": tool, "family": FAMILY, "objects": n, "seconds": seconds})
    return rows


def main():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _data import benchmark_images

    rows = [row for _, image, labels in benchmark_images() for row in run(image, labels)]
    table = pd.DataFrame(rows).groupby("tool", sort=False)[["objects", "seconds"]].sum()
    table["objects/s"] = table["objects"] / table["seconds"]
    table["x cp_measure"] = table["objects/s"] / table["objects/s"].iloc[0]
    with pd.option_context("display.width", 160):
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
