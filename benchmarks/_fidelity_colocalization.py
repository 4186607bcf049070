"""featcell ``Colocalization`` against cp_measure's ``get_correlation_*`` functions.

``compare(image, labels)`` returns one row per (feature, object, channel pair)
with the featcell value and CellProfiler's (cp_measure 0.3). ``image`` is
either multi-channel ``(H, W, C)`` (every channel pair is compared) or a single
channel ``(H, W)``; both tools get the same float64 channels. A single channel is paired
with a derived partner channel
(half a Gaussian blur of it, half a 3-pixel shifted copy, on the 8-bit grid), since Coelho 2009 and
DSB2018 have one channel only. The real multi-channel check is HT29
(``../shared/data/viability/ht29_ph3``: DNA, PH3 and a cell stain, nuclei
segmented by Otsu), run by ``python benchmarks/_fidelity_colocalization.py``.

cp_measure's keys map to CellProfiler's names: ``Correlation_Pearson`` is
``Correlation_Correlation_A_B``; the ``_1``/``_2`` coefficients are ``..._A_B`` /
``..._B_A``. Costes uses CellProfiler's "Faster" search on the 8-bit grid
(``scale_max=255``), featcell's default.
"""

import sys
import warnings
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential

from featcell import CellSet
from featcell.features.colocalization import Colocalization

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_PAIRING = {  # featcell template -> cp_measure key
    "Correlation_Correlation_{a}_{b}": "Correlation_Pearson",
    "Correlation_Slope_{a}_{b}": "Correlation_Slope",
    "Correlation_Overlap_{a}_{b}": "Correlation_Overlap",
    "Correlation_K_{a}_{b}": "Correlation_K_1",
    "Correlation_K_{b}_{a}": "Correlation_K_2",
    "Correlation_Manders_{a}_{b}": "Correlation_Manders_1",
    "Correlation_Manders_{b}_{a}": "Correlation_Manders_2",
    "Correlation_RWC_{a}_{b}": "Correlation_RWC_1",
    "Correlation_RWC_{b}_{a}": "Correlation_RWC_2",
    "Correlation_Costes_{a}_{b}": "Correlation_Costes_1",
    "Correlation_Costes_{b}_{a}": "Correlation_Costes_2",
}


def partner_channel(image):
    """A second channel correlated with ``image`` (for one-channel data sets).

    In [0, 1] and quantised to the 8-bit grid ``k / 255``, like an acquired image.
    """
    image = np.asarray(image, dtype=np.float64)
    partner = 0.5 * ndi.gaussian_filter(image, 2.0) + 0.5 * np.roll(image, 3, axis=1)
    return np.round(partner * 255) / 255


def _channels(image):
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        return {"DNA": image, "Partner": partner_channel(image)}
    names = (
        ["DNA", "PH3", "Cell"]
        if image.shape[-1] == 3
        else [f"Ch{i + 1}" for i in range(image.shape[-1])]
    )
    return {name: image[..., i] for i, name in enumerate(names)}


def compare(image, labels):
    """Paired per-object values of every Colocalization feature, for every channel pair.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray of float
        Intensities in [0, 1]; one channel gets a derived partner channel.
    labels : (H, W) ndarray of int
        Instance labels (0 = background).

    Returns
    -------
    pandas.DataFrame
        Columns ``featcell_name``, ``cp_measure_name``, ``object``,
        ``featcell``, ``cp_measure``; ``featcell_name`` uses the channel names
        ``DNA``/``Partner`` (or ``DNA``/``PH3``/``Cell`` for three channels).
    """
    from cp_measure.core import measurecolocalization as mc

    channels = _channels(image)
    labels, _, _ = relabel_sequential(np.asarray(labels))
    labels = labels.astype(np.int32)
    cells = CellSet.from_labels(list(channels.values()), labels, channels=list(channels))
    ours = Colocalization().set_output(transform="pandas").fit_transform(cells)
    parts = []
    for a, b in combinations(channels, 2):
        x, y = channels[a], channels[b]
        theirs = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs.update(mc.get_correlation_pearson(x, y, labels))
            theirs.update(mc.get_correlation_overlap(x, y, labels))
            theirs.update(mc.get_correlation_manders_fold(x, y, labels))
            theirs.update(mc.get_correlation_rwc(x, y, labels))
            theirs.update(mc.get_correlation_costes(x, y, labels, scale_max=255))
        for template, key in _PAIRING.items():
            name = template.format(a=a, b=b)
            parts.append(
                pd.DataFrame(
                    {
                        "featcell_name": name,
                        "cp_measure_name": key,
                        "object": np.arange(len(ours)),
                        "featcell": ours[name].to_numpy(float),
                        "cp_measure": np.asarray(theirs[key], dtype=float),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def ht29():
    """HT29 DNA/PH3/cell-stain image (H, W, 3) in [0, 1] and Otsu-segmented nuclei."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label

    from featcell.io import read_image

    root = DATA / "viability" / "ht29_ph3"
    planes = [read_image(p) for p in sorted(root.glob("*d[012].tif"))]
    image = np.stack([np.asarray(p, np.float64) / np.iinfo(p.dtype).max for p in planes], axis=-1)
    return image, label(planes[0] > threshold_otsu(planes[0]))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _data import benchmark_images
    from fidelity_cellprofiler import summarise

    frames = [compare(*ht29())]
    frames += [compare(image, labels) for _, image, labels in benchmark_images(2, 3)]
    with pd.option_context("display.max_rows", None, "display.width", 160):
        print(summarise(pd.concat(frames)).to_string(index=False))
