"""featcell ``Intensity`` against cp_measure's ``get_intensity`` and ``get_radial_distribution``.

``compare(image, labels)`` returns one row per (feature, object) with the
featcell value and CellProfiler's (cp_measure 0.3), both given the same float64
image (a CellSet stores it as float32, hence relative differences up to ~1e-7).
Pairings:

* ``Intensity_<F>_DNA`` vs ``Intensity_<F>`` (cp_measure ``legacy=True``: CellProfiler's
  ``n * q`` quartiles, featcell's default), and with ``quantile_method="linear"``
  vs cp_measure's default ``legacy=False``;
* ``Intensity_CenterMassIntensityOffset_X_DNA`` vs ``Location_CenterMassIntensity_X``
  minus the object's centroid (likewise Y and ``MaxIntensity``): featcell reports
  these locations relative to the centroid;
* ``RadialDistribution_<F>_DNA_<k>of4`` vs ``RadialDistribution_<F>_<k>of4``.

Run ``python benchmarks/_fidelity_intensity.py`` for a table on a few real images.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.segmentation import relabel_sequential

from featcell import CellSet
from featcell.features.intensity import Intensity

_QUANTILES = ("LowerQuartileIntensity", "MedianIntensity", "UpperQuartileIntensity", "MADIntensity")


def _long(featcell_name, cp_name, ours, theirs):
    return pd.DataFrame(
        {
            "featcell_name": featcell_name,
            "cp_measure_name": cp_name,
            "object": np.arange(len(ours)),
            "featcell": np.asarray(ours, dtype=float),
            "cp_measure": np.asarray(theirs, dtype=float),
        }
    )


def compare(image, labels):
    """Paired per-object values of every Intensity feature that CellProfiler also computes.

    Parameters
    ----------
    image : (H, W) ndarray of float
        One channel, intensities in [0, 1].
    labels : (H, W) ndarray of int
        Instance labels (0 = background).

    Returns
    -------
    pandas.DataFrame
        Columns ``featcell_name``, ``cp_measure_name``, ``object``,
        ``featcell``, ``cp_measure``.
    """
    from cp_measure.core.measureobjectintensity import get_intensity
    from cp_measure.core.measureobjectintensitydistribution import get_radial_distribution

    pixels = np.asarray(image, dtype=np.float64)
    labels, _, _ = relabel_sequential(np.asarray(labels))
    labels = labels.astype(np.int32)
    cells = CellSet.from_labels(pixels, labels, channels=["DNA"])
    ours = Intensity().set_output(transform="pandas").fit_transform(cells)
    linear = Intensity(features="intensity", quantile_method="linear")
    linear = linear.set_output(transform="pandas").fit_transform(cells)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = get_intensity(labels, pixels, legacy=True)
        default = get_intensity(labels, pixels)
        radial = get_radial_distribution(labels, pixels)
    centre = {
        "X": cells.metadata["Metadata_Location_Center_X"].to_numpy(),
        "Y": cells.metadata["Metadata_Location_Center_Y"].to_numpy(),
    }

    parts = []
    for name in ours.columns:
        feature = name.replace("_DNA", "")
        if feature.startswith("Intensity_") and "Offset" in feature:
            location = feature.replace("Intensity_", "Location_").replace("Offset", "")
            axis = feature[-1]
            cp_name = f"{location} - Center_{axis}"
            theirs = np.asarray(legacy[location]) - centre[axis]
        elif feature.removeprefix("Intensity_") in _QUANTILES:
            cp_name, theirs = f"{feature} (legacy=True)", legacy[feature]
        elif feature.startswith("Intensity_"):
            cp_name, theirs = feature, legacy[feature]
        else:
            cp_name, theirs = feature, radial[feature]
        parts.append(_long(name, cp_name, ours[name], theirs))
    for quantile in _QUANTILES:
        name = f"Intensity_{quantile}_DNA"
        parts.append(
            _long(
                f"{name} (quantile_method=linear)",
                f"Intensity_{quantile}",
                linear[name],
                default[f"Intensity_{quantile}"],
            )
        )
    return pd.concat(parts, ignore_index=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _data import benchmark_images
    from fidelity_cellprofiler import summarise

    frames = [compare(image, labels) for _, image, labels in benchmark_images(2, 3)]
    with pd.option_context("display.max_rows", None, "display.width", 160):
        print(summarise(pd.concat(frames)).to_string(index=False))
