"""featcell ``Texture`` against CellProfiler (cp_measure 0.3) and scikit-image.

``compare(image, labels)`` returns one row per (feature, object) with the
featcell value and the reference's. Both tools see the same float32
pixels. Pairings (``cp_measure_name`` says which reference):

* ``Texture_<F>_DNA_3_<dd>_256`` vs cp_measure ``get_texture`` (Haralick,
  CellProfiler's MeasureTexture): must agree to rounding;
* ``Granularity_<k>_DNA`` vs cp_measure ``get_granularity`` on the whole
  image (``Granularity_<k>``): featcell measures it on the image the cells
  were cut from, as CellProfiler does;
* ``Texture_Gabor_DNA_3`` vs a line-by-line port of CellProfiler 3's
  MeasureTexture Gabor (``centrosome.filter.gabor``; cp_measure has none);
* ``Texture_GaborEnergy_DNA_3_<a>`` vs ``skimage.filters.gabor`` on the whole
  image, averaged over each object;
* ``Texture_LBP_<b>_DNA_8_1`` vs ``skimage.feature.local_binary_pattern`` on
  the whole image (16-bit), histogram per object; and scikit-image against
  itself on the image shifted by (7, 13) pixels, to show that where they
  differ it is scikit-image's rounding of ties that moves.

Run ``python benchmarks/_fidelity_texture.py`` for a table on a few real images.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
from skimage.segmentation import relabel_sequential

from featcell import CellSet
from featcell.features.texture import Texture

SCALE = 3


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


def cellprofiler3_gabor(pixels, labels, scale, n_angles=4):
    """CellProfiler 3's ``MeasureTexture.run_one_gabor`` (with ``centrosome.filter.gabor``)."""
    n = int(labels.max())
    objects = np.arange(n + 1)
    low, high = ndi.extrema(pixels, labels, objects)[:2]
    divisor = np.ones(n + 1)
    divisor[high > low] = (high - low)[high > low]
    image = (pixels - np.asarray(low)[labels]) / divisor[labels]  # normalized_per_object
    areas = np.asarray(ndi.sum(np.ones(image.shape), labels, np.arange(n) + 1))
    centers = np.array(ndi.center_of_mass(np.ones(labels.shape), labels, np.arange(1, n + 1))).T
    mask = labels > 0
    i, j = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(float)
    i, j, values, lm = i[mask], j[mask], image[mask], labels[mask] - 1
    i -= centers[0, lm]
    j -= centers[1, lm]
    sigma = (np.sqrt(areas / np.pi) / 3.0)[lm]
    g_exp = 1000.0 / (2.0 * np.pi * sigma**2) * np.exp(-(i**2 + j**2) / (2 * sigma**2))
    i_norm = values - np.asarray(ndi.mean(values, lm, np.arange(n)))[lm]
    best = np.zeros(n)
    for angle in range(n_angles):
        theta = np.pi * angle / n_angles
        g_angle = 2 * np.pi / scale * (i * np.cos(theta) + j * np.sin(theta))
        g_cos = g_exp * np.cos(g_angle)
        g_sin = g_exp * np.sin(g_angle)
        g_cos -= np.asarray(ndi.mean(g_cos, lm, np.arange(n)))[lm]
        g_sin -= np.asarray(ndi.mean(g_sin, lm, np.arange(n)))[lm]
        real = ndi.sum(i_norm * g_cos, lm, np.arange(n))
        imag = ndi.sum(i_norm * g_sin, lm, np.arange(n))
        best = np.maximum(best, np.sqrt(np.asarray(real) ** 2 + np.asarray(imag) ** 2))
    return best


def _lbp_histograms(image, labels, points=8, radius=1):
    from skimage.feature import local_binary_pattern

    levels = np.rint(np.clip(image, 0, 1) * 65535).astype(np.uint16)
    codes = local_binary_pattern(levels, points, radius, method="uniform").astype(np.intp)
    inside = labels > 0
    n, bins = int(labels.max()), points + 2
    counts = np.bincount((labels[inside] - 1) * bins + codes[inside], minlength=n * bins)
    counts = counts.reshape(n, bins)
    return counts / counts.sum(axis=1, keepdims=True)


def compare(image, labels):
    """Paired per-object values of every Texture feature with a reference.

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
        ``featcell``, ``cp_measure`` (the reference value).
    """
    from cp_measure.core.measuregranularity import get_granularity
    from cp_measure.core.measuretexture import get_texture
    from skimage.filters import gabor

    pixels = np.asarray(image, dtype=np.float32).astype(np.float64)
    labels = relabel_sequential(np.asarray(labels))[0].astype(np.int32)
    cells = CellSet.from_labels(pixels, labels, channels=["DNA"])
    ours = Texture(scales=[SCALE]).set_output(transform="pandas").fit_transform(cells)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        haralick = get_texture(labels, pixels, scale=SCALE)
        whole = get_granularity(labels, pixels)

    parts = []
    for key, values in haralick.items():
        feature, rest = key.split("_", 1)
        parts.append(
            _long(
                f"Texture_{feature}_DNA_{rest}", key, ours[f"Texture_{feature}_DNA_{rest}"], values
            )
        )
    for k in range(1, len(whole) + 1):
        name = f"Granularity_{k}_DNA"
        parts.append(_long(name, f"Granularity_{k}", ours[name], whole[f"Granularity_{k}"]))
    name = f"Texture_Gabor_DNA_{SCALE}"
    gabor_ref = cellprofiler3_gabor(pixels, labels, SCALE)
    parts.append(_long(name, f"Texture_Gabor_{SCALE} [CellProfiler 3 port]", ours[name], gabor_ref))
    for a in range(4):
        real, imag = gabor(pixels, 1.0 / SCALE, np.pi * a / 4)
        energy = ndi.mean(np.hypot(real, imag), labels, np.arange(1, labels.max() + 1))
        name = f"Texture_GaborEnergy_DNA_{SCALE}_{a:02d}"
        parts.append(_long(name, f"skimage.filters.gabor {a:02d}", ours[name], energy))
    lbp = _lbp_histograms(pixels, labels)
    shifted = _lbp_histograms(np.pad(pixels, ((7, 0), (13, 0))), np.pad(labels, ((7, 0), (13, 0))))
    for b in range(lbp.shape[1]):
        name = f"Texture_LBP_{b}_DNA_8_1"
        parts.append(_long(name, f"skimage local_binary_pattern {b}", ours[name], lbp[:, b]))
        parts.append(
            _long(
                f"(skimage, shifted image) LBP {b}",
                f"skimage local_binary_pattern {b}",
                shifted[:, b],
                lbp[:, b],
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
