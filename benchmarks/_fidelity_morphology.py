"""featcell.Morphology against CellProfiler's MeasureObjectSizeShape (cp_measure).

``compare(image, labels)`` pairs every feature both compute, object by object
(cp_measure's ``get_sizeshape``, ``get_zernike`` and ``get_feret``), in the
long format ``benchmarks/fidelity_cellprofiler.py`` aggregates. Run alone for a
per-feature summary on a few real images::

    python benchmarks/_fidelity_morphology.py
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from featcell import CellSet
from featcell.features.morphology import Morphology

PREFIX = "AreaShape_"


def _cp_measure(image, labels):
    from cp_measure.bulk import get_core_measurements

    functions = get_core_measurements()
    result = {}
    for name in ("sizeshape", "zernike", "feret"):
        result.update(functions[name](labels, image))
    return result


def compare(image, labels):
    """Paired per-object values of every shared feature.

    Parameters
    ----------
    image : (H, W) ndarray of float
        Intensities (unused by shape features, passed to cp_measure as it asks).
    labels : (H, W) ndarray of int
        Instance labels.

    Returns
    -------
    pandas.DataFrame
        Columns ``featcell_name``, ``cp_measure_name``, ``object`` (label id),
        ``featcell``, ``cp_measure``: one row per feature and object.
    """
    labels = np.asarray(labels).astype(np.int32)
    image = np.asarray(image, dtype=np.float64)
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    transformer = Morphology().fit(cells)
    ours = transformer.transform(cells)
    theirs = _cp_measure(image, labels)
    objects = cells.metadata["Metadata_ObjectNumber"].to_numpy()
    frames = []
    for column, name in enumerate(transformer.get_feature_names_out()):
        cp_name = name.removeprefix(PREFIX)
        if cp_name not in theirs:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "featcell_name": name,
                    "cp_measure_name": cp_name,
                    "object": objects,
                    "featcell": ours[:, column],
                    "cp_measure": np.asarray(theirs[cp_name], dtype=float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def main():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _data import benchmark_images
    from fidelity_cellprofiler import summarise

    warnings.filterwarnings("ignore")
    long = pd.concat(
        [compare(image, labels).assign(image=name) for name, image, labels in benchmark_images()]
    )
    table = summarise(long)
    with pd.option_context("display.max_rows", None, "display.width", 160):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    print(f"{int(table['pass'].sum())}/{len(table)} features with r >= 0.999")


if __name__ == "__main__":
    main()
