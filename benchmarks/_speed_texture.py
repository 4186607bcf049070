"""Speed of featcell ``Texture`` against its peers, on one image and mask.

``run(image, labels)`` times, on the same objects, per family:

* ``haralick`` (MeasureTexture, scale 3, 256 levels, 13 features in 4
  directions): featcell ``Texture("haralick")`` vs cp_measure ``get_texture``
  (mahotas per object), cp_measure's numba backend (when numba is installed),
  ``mahotas.features.haralick`` called per object on regionprops crops and
  nyxus three times: the same 13 features (``NYXUS_HARALICK``) in the same 4
  directions at offset 3 (``glcm/offset=3``), first with nyxus's default 64
  grey levels, less work than CellProfiler's 256 for nyxus, whose matrices are
  dense (the row ``x nyxus`` refers to), then with 256 levels
  (``coarse_gray_depth=256``: nyxus's ``glcm/greydepth`` setting has no
  effect in 0.11), about 10 times slower; nyxus spreads the levels over each
  object's own intensity range where CellProfiler uses the image's 0-255
  scale. Last ``*ALL_GLCM*`` with nyxus's defaults: 30 features in 4
  directions and 29 averages, 64 levels, and offset 0 (nyxus 0.11's default
  ``glcm/offset``: each pixel paired with itself, every matrix diagonal);
* ``granularity`` (MeasureGranularity, 16 components), all on the whole image
  (CellProfiler's way): featcell vs cp_measure ``get_granularity`` and, where
  installed, its numba backend;
* ``gabor`` (CellProfiler 3's Gabor score, scale 3): featcell vs a vectorised
  numpy port of CellProfiler 3 on the whole image;
* ``gabor_energy`` (4 orientations, wavelength 3): featcell vs
  ``skimage.filters.gabor`` on the whole image plus ``ndimage.mean``;
* ``lbp`` (uniform, P=8, R=1): featcell vs
  ``skimage.feature.local_binary_pattern`` on the whole image plus a bincount;
* nyxus ``GABOR``, one row in each Gabor family (the same run): first with
  the filter bank of the Gabor energy (``NYXUS_GABOR``: 4 orientations 0, 45,
  90 and 135 degrees, wavelength 3, equal sigmas of 1.686 pixels, a 13 x 13
  kernel, as ``skimage.filters.gabor_kernel(1 / 3, theta)``), then with
  nyxus's default bank (16 x 16 kernels of aspect 0.1, frequencies 4, 16, 32
  and 64 radians per pixel, as nyxus's ``Gabor`` kernel reads them). nyxus
  convolves each object's box with the full 2-D complex kernel and with a
  low-pass one, and reports the fraction of pixels whose response passes a
  threshold, where featcell averages the response's modulus (separable
  kernels). CellProfiler's Gabor score has no nyxus counterpart: it
  correlates each object with one wavelet the object's size per orientation,
  far less work than any filter bank; the row shows nyxus's nearest feature.

nyxus has no granularity and no local binary patterns. featcell is timed on a
ready :class:`~featcell.CellSet` (``transform`` only, each time on a CellSet
it has not seen) and once more including ``CellSet.from_labels``, the row to
compare with the peers, which take the label image and parse it themselves.
Each timing is the best of ``repeat`` runs (one run for anything slower than a
second); nyxus runs on one thread, on the image as 16-bit levels
(``_speed_intensity.nyxus_input``: nyxus would read the float image in [0, 1]
as all zeros, as the ``(before)`` rows show).

Run ``python benchmarks/_speed_texture.py`` for a table on a few real images, and
``python benchmarks/_speed_texture.py --dense`` for granularity on one field of 2,401 cells
(:func:`dense_granularity`: each image's work once, against tasks of 512 cells that each
repeat it, as before, and cp_measure).
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential

from featcell import CellSet
from featcell.features.texture import Texture

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fidelity_texture import cellprofiler3_gabor
from _speed_intensity import nyxus, nyxus_input, unseen

# CellProfiler's 13 Haralick features in nyxus's names, and its settings for them
NYXUS_HARALICK = [
    "GLCM_ASM", "GLCM_CONTRAST", "GLCM_CORRELATION", "GLCM_VARIANCE", "GLCM_IDM",
    "GLCM_SUMAVERAGE", "GLCM_SUMVARIANCE", "GLCM_SUMENTROPY", "GLCM_ENTROPY", "GLCM_DIFVAR",
    "GLCM_DIFENTRO", "GLCM_INFOMEAS1", "GLCM_INFOMEAS2",
]  # fmt: skip
NYXUS_OFFSET_3 = ("glcm/offset=3",)
# skimage.filters.gabor_kernel(1 / 3, theta) in nyxus's terms: frequency 2 pi / 3 radians per
# pixel (nyxus's kernel is exp(i f x'), wavelength 2 pi / f = 3), sigma = 0.562 * 3 = 1.686
# pixels on both axes (aspect 1), 13 x 13 taps (3 sigma each side)
NYXUS_GABOR = {
    "gabor_kersize": 13, "gabor_gamma": 1.0, "gabor_sig2lam": 0.562,
    "gabor_freqs": [2 * np.pi / 3] * 4, "gabor_thetas": [0, 45, 90, 135],
}  # fmt: skip


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


def _mahotas_per_object(labels, pixels):
    import mahotas
    from skimage.measure import regionprops
    from skimage.util import img_as_ubyte

    levels = img_as_ubyte(pixels)
    levels[labels == 0] = 0
    out = []
    for prop in regionprops(labels, levels):
        try:
            out.append(
                mahotas.features.haralick(prop.image_intensity, distance=3, ignore_zeros=True)
            )
        except ValueError:
            out.append(None)
    return out


def _skimage_gabor(pixels, labels):
    from skimage.filters import gabor

    index = np.arange(1, labels.max() + 1)
    return [
        ndi.mean(np.hypot(*gabor(pixels, 1 / 3, np.pi * a / 4)), labels, index) for a in range(4)
    ]


def _skimage_lbp(pixels, labels):
    from skimage.feature import local_binary_pattern

    codes = local_binary_pattern(
        np.rint(np.clip(pixels, 0, 1) * 65535).astype(np.uint16), 8, 1, method="uniform"
    ).astype(np.intp)
    inside = labels > 0
    return np.bincount((labels[inside] - 1) * 10 + codes[inside], minlength=labels.max() * 10)


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
    from cp_measure.core.measuregranularity import get_granularity
    from cp_measure.core.measuretexture import get_texture

    pixels = np.asarray(image, dtype=np.float32).astype(np.float64)
    labels = relabel_sequential(np.asarray(labels))[0].astype(np.int32)
    n, (levels, ulabels) = int(labels.max()), nyxus_input(pixels, labels)
    cells = CellSet.from_labels(pixels, labels, channels=["DNA"])
    model = {
        f: Texture(f).fit(cells)
        for f in ("haralick", "granularity", "gabor", "gabor_energy", "lbp")
    }
    for transformer in model.values():  # warm imports and caches outside the timing
        transformer.transform(cells)

    def alone(family):
        copies = unseen(cells, repeat)
        return lambda: model[family].transform(copies())

    def build_and(family):
        return lambda: model[family].transform(
            CellSet.from_labels(pixels, labels, channels=["DNA"])
        )

    tools = [
        (
            family,
            f"featcell Texture ({family}{', incl. CellSet.from_labels' if whole else ''})",
            build_and(family) if whole else alone(family),
        )
        for family in model
        for whole in (False, True)
    ]
    tools += [
        ("haralick", "cp_measure get_texture", lambda: get_texture(labels, pixels)),
        (
            "haralick",
            "mahotas.features.haralick per object",
            lambda: _mahotas_per_object(labels, pixels),
        ),
    ]
    try:
        from cp_measure.core.numba.measuretexture import get_texture as numba_texture

        numba_texture(labels, pixels)  # compile (cached) outside the timing
        tools.append(
            ("haralick", "cp_measure get_texture (numba)", lambda: numba_texture(labels, pixels))
        )
    except ImportError:
        pass
    try:
        from cp_measure.core.numba.measuregranularity import get_granularity as numba_granularity

        numba_granularity(labels, pixels)  # compile (cached) outside the timing
        tools.append(
            (
                "granularity",
                "cp_measure get_granularity (numba)",
                lambda: numba_granularity(labels, pixels),
            )
        )
    except ImportError:
        pass
    tools += [
        (
            "granularity",
            "cp_measure get_granularity (whole image)",
            lambda: get_granularity(labels, pixels),
        ),
        (
            "gabor",
            "CellProfiler 3 Gabor (numpy port, whole image)",
            lambda: cellprofiler3_gabor(pixels, labels, 3),
        ),
        (
            "gabor_energy",
            "skimage.filters.gabor (whole image) + ndimage.mean",
            lambda: _skimage_gabor(pixels, labels),
        ),
        (
            "lbp",
            "skimage local_binary_pattern (whole image) + bincount",
            lambda: _skimage_lbp(pixels, labels),
        ),
    ]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for family, tool, fn in tools:
            seconds = best_time(fn, repeat)
            rows.append({"tool": tool, "family": family, "objects": n, "seconds": seconds})
        nyxus_runs = [
            ("the same 13 features, offset 3, 64 levels", NYXUS_HARALICK, levels,
             NYXUS_OFFSET_3, {}, ["haralick"]),
            ("the same 13 features, offset 3, 256 levels", NYXUS_HARALICK, levels,
             NYXUS_OFFSET_3, {"coarse_gray_depth": 256}, ["haralick"]),
            ("*ALL_GLCM* (defaults: 30 features, 64 levels, offset 0)", ["*ALL_GLCM*"], levels,
             (), {}, ["haralick"]),
            ("(before) nyxus *ALL_GLCM*, float image read as 0", ["*ALL_GLCM*"], pixels,
             (), {}, ["haralick"]),
            ("GABOR, the Gabor energy's bank (4 x wavelength 3, 13 x 13)", ["GABOR"], levels,
             (), NYXUS_GABOR, ["gabor", "gabor_energy"]),
            ("GABOR (defaults: 16 x 16, frequencies 4 to 64)", ["GABOR"], levels,
             (), {}, ["gabor", "gabor_energy"]),
            ("(before) nyxus GABOR, float image read as 0", ["GABOR"], pixels,
             (), {}, ["gabor", "gabor_energy"]),
        ]  # fmt: skip
        for name, features, intensities, settings, params, families in nyxus_runs:
            if not with_nyxus:
                break
            try:
                seconds = best_time(
                    lambda f=features, i=intensities, s=settings, p=params: nyxus(
                        f, i, ulabels, s, **p
                    ),
                    repeat,
                )
            except ImportError:
                break
            tool = name if name.startswith("(before)") else f"nyxus {name} (1 thread)"
            rows += [
                {"tool": tool, "family": f, "objects": n, "seconds": seconds} for f in families
            ]
    return rows


def dense_granularity(side=1400, spacing=28, size=18, repeat=3):
    """Granularity on one dense field (``(side // spacing)**2`` square cells of ``size``
    pixels on gamma noise, 2,401 at the defaults): featcell as it runs (the image's
    work once), featcell in tasks of 512 cells each repeating the image's work (as before
    ``image_chunks``), and cp_measure ``get_granularity`` on the whole image."""
    from cp_measure.core.measuregranularity import get_granularity

    from featcell.features import _base

    rng = np.random.default_rng(0)
    pixels = rng.gamma(2.0, 0.05, (side, side)).clip(0, 1)
    labels = np.zeros((side, side), np.int32)
    corners = range(10, side - size - 2, spacing)
    for k, (r, c) in enumerate(((r, c) for r in corners for c in corners), start=1):
        labels[r : r + size, c : c + size] = k
    cells = CellSet.from_labels(pixels, labels, channels=["DNA"])
    model = Texture("granularity").fit(cells)
    area = int(np.prod(cells.crop_shapes, axis=1).max())

    def in_tasks_of_512():
        saved = _base._IMAGE_CHUNK_PIXELS
        _base._IMAGE_CHUNK_PIXELS = 512 * area  # crops of one size: 512 cells per task
        try:
            return model.transform(cells)
        finally:
            _base._IMAGE_CHUNK_PIXELS = saved

    model.transform(cells)  # warm caches outside the timing
    n = len(cells)
    return [
        {"tool": tool, "family": "granularity", "objects": n, "seconds": best_time(fn, repeat)}
        for tool, fn in [
            ("cp_measure get_granularity (whole image)", lambda: get_granularity(labels, pixels)),
            ("featcell Texture (granularity, each image once)", lambda: model.transform(cells)),
            ("featcell Texture (granularity, tasks of 512 cells)", in_tasks_of_512),
        ]
    ]


if __name__ == "__main__":
    from _data import benchmark_images
    from _speed_intensity import report

    if "--dense" in sys.argv[1:]:  # one field of 2,401 cells
        rows = dense_granularity()
    else:
        rows = [row for _, image, labels in benchmark_images(2, 4) for row in run(image, labels)]
    print(report(rows).to_string(float_format=lambda v: f"{v:.4g}"))
