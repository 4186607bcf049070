"""Image-level features: one row per image, and the per-pixel filter bank of density counting.

:class:`ImageFeatures` summarises each image in numbers that grow with the number of
cells (for counters that learn from one count per image). :class:`PixelFeatures` is
ilastik's pixel filter bank (Gaussian smoothing, Laplacian of Gaussian, gradient
magnitude, difference of Gaussians, structure-tensor and Hessian eigenvalues over
several scales), one feature map per filter, scale and channel, from which
:class:`featcell.counting.DensityCounter` learns a density per pixel.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import os
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.parallel import Parallel, delayed

from ..segmentation import _check_dtype, _check_segment_params, _to_grey, _typical_area, segment

__all__ = ["CNNPixelFeatures", "ImageFeatures", "PixelFeatures", "upsample_linear"]


def _read(item):
    """An image from an array or a file path (:func:`featcell.io.read_image`, naming the file)."""
    if isinstance(item, (str, os.PathLike)):
        from ..io import read_image

        return read_image(item)
    image = np.asarray(item)
    _check_dtype(image, "an image")
    return image


def _check_images(images):
    """Reject inputs that are one image or one path rather than a collection."""
    if isinstance(images, (str, os.PathLike)):
        raise TypeError(f"images={images!r} is a single path; expected a list of images or paths")
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] <= 4):
            raise ValueError(
                f"images is an array of shape {images.shape}, which looks like a single "
                "image; expected a list of images (or an (n_images, M, N[, C]) stack)"
            )
        if images.ndim not in (3, 4):
            raise ValueError(
                f"images is an array of shape {images.shape}; expected a list of images "
                "or an (n_images, M, N[, C]) stack"
            )
    images = list(images)
    if not images:
        raise ValueError("images is empty; expected at least one image")
    return images


def _grey_float(item, channel):
    """Read an image and return it as 2-D float in the scale of its dtype ([0, 1] for ints)."""
    image = _read(item)
    dtype = image.dtype
    grey = _to_grey(image, channel)
    if np.issubdtype(dtype, np.integer):
        grey = grey / np.iinfo(dtype).max
    elif np.issubdtype(dtype, np.bool_):
        grey = grey.astype(np.float64)
    return grey


def _clump_corrected_count(areas, typical):
    """Objects counted as their area over a single object's (rounded, at least 1)."""
    # a clump of k nuclei has about k times the area of a single one
    return float(np.maximum(1, np.round(areas / typical)).sum())


def _log_features(grey, sigmas, thresholds):
    """Blob statistics from the scale-normalised Laplacian of Gaussian at each scale."""
    values = []
    for sigma in sigmas:
        response = -(sigma**2) * ndi.gaussian_laplace(grey, sigma)
        size = 2 * round(sigma) + 1
        peaks = (response == ndi.maximum_filter(response, size=size)) & (response > 0)
        heights = np.sort(response[peaks])
        top = heights[-1] if heights.size else 0.0
        values += [np.clip(response, 0, None).sum()]
        values += [np.count_nonzero(response > t) for t in thresholds]
        values += [heights.size - np.searchsorted(heights, t, side="right") for t in thresholds]
        values += [np.count_nonzero(heights > f * top) for f in (0.1, 0.25, 0.5)]
    return values


def _segmentation_features(grey, segment_params):
    labels = segment(grey, **segment_params)
    n = int(labels.max())
    if n == 0:
        return [0.0] * len(_SEGMENTATION)
    areas = np.bincount(labels.ravel())[1:].astype(np.float64)
    typical = _typical_area(areas)
    ratio = areas / typical
    histogram = [
        np.count_nonzero(ratio < 0.5),
        np.count_nonzero((ratio >= 0.5) & (ratio < 1.5)),
        np.count_nonzero((ratio >= 1.5) & (ratio < 2.5)),
        np.count_nonzero(ratio >= 2.5),
    ]
    clumps = _clump_corrected_count(areas, typical)
    return [n, areas.sum(), areas.mean(), typical, areas.sum() / typical, clumps, *histogram]


def _intensity_features(grey):
    quantiles = np.percentile(grey, [50, 1, 5, 25, 75, 95, 99])
    return [grey.mean(), grey.std(), *quantiles, grey.max(), grey.size, np.log(grey.size)]


def _foreground_features(grey):
    smooth = ndi.gaussian_filter(grey, 1.0)
    if np.ptp(smooth) == 0:
        return [0.0, 0.0, 0.0, grey.mean()]
    from skimage.filters import threshold_otsu

    foreground = smooth > threshold_otsu(smooth)
    n_components = ndi.label(foreground)[1]
    return [foreground.sum(), foreground.mean(), n_components, grey[foreground].mean()]


def _tophat_features(grey, sizes, levels):
    """Intensity above a local background (a grey opening): its sum and area above levels."""
    values = []
    for size in sizes:
        # square footprints keep the opening separable, hence fast
        background = ndi.maximum_filter(ndi.minimum_filter(grey, size), size)
        excess = grey - background
        values.append(excess.sum())
        values += [np.count_nonzero(excess > level) for level in levels]
    return values


_INTENSITY = ["Mean", "Std", "Median", "Q01", "Q05", "Q25", "Q75", "Q95", "Q99", "Max"]
_FOREGROUND = ["Area", "Fraction", "Components", "MeanIntensity"]
_SEGMENTATION = [
    "Count",
    "TotalArea",
    "MeanArea",
    "TypicalArea",
    "AreaOverTypical",
    "ClumpCorrectedCount",
    "CountSmall",
    "CountSingle",
    "CountDouble",
    "CountLarge",
]
_FAMILIES = ("intensity", "foreground", "tophat", "log", "segmentation")


def _tag(value):
    return f"{value:g}".replace(".", "p")


def _image_features(item, channel, invert, families, params):
    grey = _grey_float(item, channel)
    if invert:
        grey = grey.max() - grey
    values = []
    for family in families:
        if family == "intensity":
            values += _intensity_features(grey)
        elif family == "foreground":
            values += _foreground_features(grey)
        elif family == "tophat":
            values += _tophat_features(grey, params["background_sizes"], params["levels"])
        elif family == "log":
            values += _log_features(grey, params["sigmas"], params["thresholds"])
        else:
            values += _segmentation_features(grey, params["segment_params"])
    return np.asarray(values, dtype=np.float64)


class ImageFeatures(TransformerMixin, BaseEstimator):
    """Image-level features for counting and other per-image tasks.

    One row per image, from up to five families. Most columns grow linearly with
    the number of cells, so that a linear head can learn a count (a density per
    pixel, summed) from image-level counts alone:

    - ``"intensity"``: mean, spread and quantiles of the intensity, image size;
    - ``"foreground"``: area, fraction, components and mean intensity of the
      Otsu foreground;
    - ``"tophat"``: intensity above a local background (a grey opening): its
      sum and the area above several ``levels``;
    - ``"log"``: the scale-normalised Laplacian of Gaussian at each of
      ``sigmas``: its positive sum, the area above each of ``thresholds``, the
      number of its local maxima above each of ``thresholds`` and above 10, 25
      and 50 % of the highest;
    - ``"segmentation"``: statistics of :func:`featcell.segmentation.segment` (object
      count, total, mean and typical area, a clump-corrected count, a histogram
      of areas relative to the typical one).

    Parameters
    ----------
    families : sequence of str, optional
        Families to compute, in this order; all five by default.
    channel : int, optional
        Channel to use in (M, N, C) images; by default colour is converted to
        luminance and other multichannel images are averaged.
    invert : bool, default=False
        Set for dark objects on a bright background.
    sigmas : sequence of float, default=(1, 2, 4, 8)
        Scales of the Laplacian of Gaussian, in pixels (a blob of radius r
        responds most at sigma = r / sqrt(2)).
    thresholds : sequence of float, default=(0.01, 0.02, 0.04, 0.08, 0.16)
        Absolute Laplacian of Gaussian levels, for images scaled to [0, 1]
        (integer images are divided by their dtype's maximum).
    background_sizes : sequence of int, default=(33, 65)
        Widths in pixels of the square grey openings that estimate the local
        background; choose them larger than the cells.
    levels : sequence of float, default=(0.02, 0.04, 0.08, 0.12, 0.16, 0.24, 0.32, 0.48, 0.64)
        Intensities above the local background, for images scaled to [0, 1].
    segment_params : dict, optional
        Keyword arguments of :func:`featcell.segmentation.segment` for the
        ``"segmentation"`` family.
    n_jobs : int, default=None
        Number of jobs to run in parallel over images. ``None`` means 1 unless in
        a :obj:`joblib.parallel_backend` context. ``-1`` means using all processors.

    See Also
    --------
    make_counter : counters built on these features.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.features.image import ImageFeatures
    >>> images = [np.random.default_rng(0).random((32, 40)), np.zeros((20, 20))]
    >>> ImageFeatures().fit_transform(images).shape
    (2, 102)
    >>> tophat = ImageFeatures(families=["tophat"], background_sizes=[15])
    >>> tophat.get_feature_names_out()[:2].tolist()
    ['Image_TopHat_Sum_b15', 'Image_TopHat_Area_b15_t0p02']
    """

    def __init__(
        self,
        families=None,
        *,
        channel=None,
        invert=False,
        sigmas=(1, 2, 4, 8),
        thresholds=(0.01, 0.02, 0.04, 0.08, 0.16),
        background_sizes=(33, 65),
        levels=(0.02, 0.04, 0.08, 0.12, 0.16, 0.24, 0.32, 0.48, 0.64),
        segment_params=None,
        n_jobs=None,
    ):
        self.families = families
        self.channel = channel
        self.invert = invert
        self.sigmas = sigmas
        self.thresholds = thresholds
        self.background_sizes = background_sizes
        self.levels = levels
        self.segment_params = segment_params
        self.n_jobs = n_jobs

    def fit(self, images, y=None):
        """Check the parameters; nothing is learnt.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Images.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : ImageFeatures
            The transformer.
        """
        _check_images(images)
        self._check_params()
        return self

    def _check_params(self):
        from ._base import check_n_jobs

        check_n_jobs(self.n_jobs)
        families = _FAMILIES if self.families is None else self.families
        if isinstance(families, str) or not families or not set(families) <= set(_FAMILIES):
            raise ValueError(
                f"families={self.families!r}; expected None or a non-empty list drawn from "
                f"{_FAMILIES}"
            )
        for name in ("sigmas", "thresholds", "background_sizes", "levels"):
            values = getattr(self, name)
            if (
                isinstance(values, (str, numbers.Number))
                or len(values) == 0
                or not all(isinstance(v, numbers.Real) and v > 0 for v in values)
            ):
                raise ValueError(
                    f"{name}={values!r}; expected a non-empty list of positive numbers"
                )
        segment_params = self.segment_params or {}
        if not isinstance(segment_params, dict):
            raise TypeError(f"segment_params={segment_params!r}; expected a dict or None")
        accepted = set(inspect.signature(segment).parameters) - {"image", "channel"}
        unknown = sorted(map(str, set(segment_params) - accepted))
        if unknown:
            raise ValueError(f"segment_params has unknown keys {unknown}; segment accepts "
                             f"{sorted(accepted)}")
        _check_segment_params(channel=self.channel, **{
            k: v for k, v in segment_params.items()
            if k in inspect.signature(_check_segment_params).parameters})
        params = {
            "sigmas": self.sigmas,
            "thresholds": self.thresholds,
            "background_sizes": [int(v) for v in self.background_sizes],
            "levels": self.levels,
            # the image is inverted before segmentation already
            "segment_params": {"invert": False, **segment_params},
        }
        return list(families), params

    def transform(self, images):
        """Compute the features of each image.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Images; sizes may differ.

        Returns
        -------
        features : ndarray of shape (n_images, n_features)
            One row per image, columns named by :meth:`get_feature_names_out`.
        """
        images = _check_images(images)
        families, params = self._check_params()
        rows = Parallel(n_jobs=self.n_jobs)(
            delayed(_image_features)(item, self.channel, self.invert, families, params)
            for item in images
        )
        return np.vstack(rows)

    def get_feature_names_out(self, input_features=None):
        """Feature names, CellProfiler style (``Image_<Category>_<Feature>[_<params>]``).

        Parameters
        ----------
        input_features : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        names : ndarray of str
            One name per column of :meth:`transform`'s output.
        """
        families, params = self._check_params()
        names = []
        for family in families:
            if family == "intensity":
                names += [f"Image_Intensity_{n}" for n in _INTENSITY]
                names += ["Image_Size_Pixels", "Image_Size_LogPixels"]
            elif family == "foreground":
                names += [f"Image_Foreground_{n}" for n in _FOREGROUND]
            elif family == "tophat":
                for b in params["background_sizes"]:
                    names.append(f"Image_TopHat_Sum_b{b}")
                    names += [f"Image_TopHat_Area_b{b}_t{_tag(t)}" for t in self.levels]
            elif family == "log":
                for s in map(_tag, self.sigmas):
                    names.append(f"Image_LoG_Sum_s{s}")
                    names += [f"Image_LoG_Area_s{s}_t{_tag(t)}" for t in self.thresholds]
                    names += [f"Image_LoG_Peaks_s{s}_t{_tag(t)}" for t in self.thresholds]
                    names += [f"Image_LoG_PeaksRel_s{s}_r{r}" for r in (10, 25, 50)]
            else:
                names += [f"Image_Segmentation_{n}" for n in _SEGMENTATION]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags




# --------------------------------------------------------------------------- pixel filter bank

_FILTERS = ("gaussian", "log", "gradient", "dog", "structure", "hessian")
# names of the maps each filter gives, CellProfiler-style
_FILTER_MAPS = {
    "gaussian": ("Gaussian",),
    "log": ("LoG",),
    "gradient": ("GradientMagnitude",),
    "dog": ("DoG",),
    "structure": ("StructureTensorEig1", "StructureTensorEig2"),
    "hessian": ("HessianEig1", "HessianEig2"),
}
_MIN_DERIVATIVE_SCALE = 0.7  # as ilastik: below this only the Gaussian smoothing is defined
_TRUNCATE = 3.5  # Gaussian kernels cut at 3.5 sigma (ilastik/vigra use 3)
_PYRAMID_SCALE = 8.0  # scales from this one up are computed on block-reduced planes


def _eig2(a, b, c):
    """Eigenvalues (larger, smaller) of the symmetric 2x2 matrices [[a, b], [b, c]]
    (``hypot``: no square of float32 values overflows where the eigenvalues do not)."""
    mean = 0.5 * a + 0.5 * c
    root = np.hypot(0.5 * a - 0.5 * c, b)
    return mean + root, mean - root


def _smooth1(image, sigma, axis, order=0):
    """``ndi.gaussian_filter1d`` (mode reflect, cut at ``_TRUNCATE`` sigma), kernel cached."""
    return ndi.correlate1d(image, _gaussian_weights(float(sigma), order), axis=axis,
                           mode="reflect")


@functools.lru_cache(maxsize=256)
def _gaussian_weights(sigma, order):
    """The weights ``ndi.gaussian_filter1d`` correlates with: its impulse response, reversed."""
    radius = int(_TRUNCATE * sigma + 0.5)
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    response = ndi.gaussian_filter1d(impulse, sigma, order=order, mode="constant",
                                     truncate=_TRUNCATE)
    return response[::-1].copy()


def _grid(shape, step):
    """Offset and shape of the grid of every ``step``-th pixel, starting at ``step // 2``."""
    offset = step // 2
    return offset, tuple(len(range(offset, n, step)) for n in shape[:2])


def _filter_maps(plane, scale, filters, step=1):
    """The maps of ``filters`` at one ``scale`` (pixels) on one 2-D float32 plane, by name.

    Maps are returned on the grid of every ``step``-th pixel (:func:`_grid`). Scales of
    ``_PYRAMID_SCALE`` px and more are computed on a plane reduced 2, 4, ... times by
    block means (the box's own blur subtracted from the scale, derivatives rescaled to
    full-resolution pixels) and brought back by bilinear interpolation, as in a
    Gaussian pyramid: the same maps within interpolation error, several times faster.
    """
    factor = 1
    while scale / (2 * factor) >= _PYRAMID_SCALE / 2 and min(plane.shape) >= 32 * factor:
        factor *= 2
    if factor == 1:
        return _filter_maps_at(plane, scale, filters, step)
    small = _block_mean(plane, factor)
    reduced = np.sqrt(scale**2 - (factor**2 - 1) / 12) / factor
    maps = _filter_maps_at(small, reduced, filters)
    # derivatives per reduced pixel -> per full-resolution pixel
    power = {"GradientMagnitude": 1, "LoG": 2, "HessianEig1": 2, "HessianEig2": 2,
             "StructureTensorEig1": 2, "StructureTensorEig2": 2}
    names = list(maps)
    stack = np.stack([maps[n] / np.float32(factor ** power.get(n, 0)) for n in names], axis=-1)
    offset, shape = _grid(plane.shape, step)
    # reduced pixel i sits at full pixel factor * i + (factor - 1) / 2
    full = upsample_linear(stack, shape, factor / step, ((factor - 1) / 2 - offset) / step)
    return {n: full[..., k] for k, n in enumerate(names)}


def _block_mean(plane, factor):
    """Mean of ``factor`` x ``factor`` blocks (the last partial block padded by its edge)."""
    rows = -(-plane.shape[0] // factor) * factor
    cols = -(-plane.shape[1] // factor) * factor
    if (rows, cols) != plane.shape:
        plane = np.pad(plane, ((0, rows - plane.shape[0]), (0, cols - plane.shape[1])),
                       mode="edge")
    return plane.reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))


def _upsample_channels_first(small, shape, step, offset):
    """:func:`upsample_linear` of ``(k, m, n)`` maps (channels first), with no BLAS call.

    Elementwise interpolation along each axis of contiguous planes: several times
    faster than :func:`upsample_linear` on a channels-last view, and free of the
    matrix products whose BLAS threads spin on a busy machine.
    """
    out = small
    for axis, n in ((1, shape[0]), (2, shape[1])):
        m = small.shape[axis]
        position = np.clip((np.arange(n) - offset) / step, 0, m - 1)
        below = np.minimum(position.astype(np.intp), m - 1)
        above = np.minimum(below + 1, m - 1)
        weight = (position - below).astype(out.dtype)
        weight = weight[:, None] if axis == 1 else weight
        a = np.take(out, below, axis=axis)
        out = a + (np.take(out, above, axis=axis) - a) * weight
    return out


def upsample_linear(small, shape, step, offset):
    """Bilinear interpolation of a coarse grid onto every pixel of ``shape``.

    Parameters
    ----------
    small : (m, n[, k]) ndarray
        Values on a grid whose point ``(i, j)`` sits at full-resolution pixel
        ``(i * step + offset, j * step + offset)``.
    shape : tuple of int
        ``(rows, cols)`` of the output.
    step : float
        Grid spacing in output pixels.
    offset : float
        Position of the first grid point, in output pixels.

    Returns
    -------
    full : (rows, cols[, k]) ndarray
        Interpolated values; beyond the outermost grid points the edge value.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.features.image import upsample_linear
    >>> upsample_linear(np.array([[0.0, 2.0]]), (1, 4), 2, 0.5)[0].tolist()
    [0.0, 0.5, 1.5, 2.0]
    """
    out = small
    for axis, n in enumerate(shape[:2]):
        m = small.shape[axis]
        position = np.clip((np.arange(n) - offset) / step, 0, m - 1)
        below = np.minimum(position.astype(np.intp), m - 1)
        above = np.minimum(below + 1, m - 1)
        weight = (position - below).astype(out.dtype)
        expand = (slice(None),) + (None,) * (out.ndim - 1 - axis)
        a = np.take(out, below, axis=axis)
        b = np.take(out, above, axis=axis)
        w = weight[expand] if axis == 0 else weight[(None, slice(None)) + (None,) * (out.ndim - 2)]
        out = a + (b - a) * w
    return out


def _filter_maps_at(plane, scale, filters, step=1):
    """The maps of ``filters`` at one ``scale`` on one 2-D float32 plane, by name.

    Derivatives share their separable passes: the plane is smoothed (0th, 1st, 2nd
    derivative) along rows once, and each result along columns. With ``step`` > 1
    only the grid's rows go through the second pass and only its pixels are kept
    (the structure tensor, whose products need every pixel, excepted).
    """
    offset = step // 2

    def rows(a):  # the grid's rows of a first-pass result
        return a[offset::step] if step > 1 else a

    def second(a, sigma, order=0):  # the pass along columns, on the grid's columns
        out = _smooth1(a, sigma, 1, order)
        return out[:, offset::step] if step > 1 else out

    out = {}
    derivatives = scale >= _MIN_DERIVATIVE_SCALE
    need_first = derivatives and bool({"gradient", "structure"} & set(filters))
    need_second = derivatives and bool({"log", "hessian"} & set(filters))
    r0 = _smooth1(plane, scale, 0)
    r0g = rows(r0)
    g = second(r0g, scale)
    if "gaussian" in filters:
        out["Gaussian"] = g
    if derivatives and "dog" in filters:
        inner = second(rows(_smooth1(plane, 0.66 * scale, 0)), 0.66 * scale)
        out["DoG"] = g - inner
    r1 = _smooth1(plane, scale, 0, 1) if need_first or (need_second and "hessian" in filters) else None
    if need_first:
        if "gradient" in filters:
            gy = second(rows(r1), scale)
            gx = second(r0g, scale, 1)
            out["GradientMagnitude"] = np.hypot(gx, gy)
        if "structure" in filters:
            gy = _smooth1(r1, scale, 1)
            gx = _smooth1(r0, scale, 1, 1)
            outer = 0.5 * scale
            jxx = second(rows(_smooth1(gx * gx, outer, 0)), outer)
            jxy = second(rows(_smooth1(gx * gy, outer, 0)), outer)
            jyy = second(rows(_smooth1(gy * gy, outer, 0)), outer)
            out["StructureTensorEig1"], out["StructureTensorEig2"] = _eig2(jxx, jxy, jyy)
    if need_second:
        gyy = second(rows(_smooth1(plane, scale, 0, 2)), scale)
        gxx = second(r0g, scale, 2)
        if "log" in filters:
            out["LoG"] = gxx + gyy
        if "hessian" in filters:
            gxy = second(rows(r1), scale, 1)
            out["HessianEig1"], out["HessianEig2"] = _eig2(gxx, gxy, gyy)
    return out


def _channel_indices(channels):
    """``channels`` (None, one index or a list of them) as a list; ``[None]``: colour averaged."""
    if channels is None:
        return [None]
    listed = [channels] if isinstance(channels, numbers.Integral) else channels
    if not listed or not all(isinstance(c, numbers.Integral) and c >= 0 for c in listed):
        raise ValueError(f"channels={channels!r}; expected a list of channel indices")
    return [int(c) for c in listed]


class _PixelMaps(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """What the pixel-feature transformers share: ``transform`` maps each image with
    the subclass's ``maps(image)``; they learn nothing from the images."""

    def __init_subclass__(cls, **kwargs):
        # their output is a list of (M, N, F) maps, not a table: set_output cannot apply
        super().__init_subclass__(auto_wrap_output_keys=None, **kwargs)

    def transform(self, images):
        """Feature maps of each image.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Images; sizes may differ.

        Returns
        -------
        maps : list of (M, N, n_features) ndarray of float32
        """
        return [self.maps(item) for item in _check_images(images)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags


class PixelFeatures(_PixelMaps):
    """ilastik's pixel filter bank: one feature map per filter, scale and channel.

    At each scale sigma (pixels) the filters are those of ilastik's pixel
    classification and density counting workflows:

    - ``"gaussian"``: Gaussian smoothing;
    - ``"log"``: Laplacian of Gaussian;
    - ``"gradient"``: Gaussian gradient magnitude;
    - ``"dog"``: difference of Gaussians, sigma minus 0.66 sigma;
    - ``"structure"``: the two eigenvalues of the structure tensor (gradients at
      sigma, averaged over sigma / 2);
    - ``"hessian"``: the two eigenvalues of the Hessian of Gaussian.

    As in ilastik, scales under 0.7 px give the Gaussian smoothing only. Integer
    images are scaled by their dtype's maximum first.

    Parameters
    ----------
    filters : sequence of str or dict, optional
        Filters to compute, drawn from the six above (all by default); or a dict
        ``{channel: filters}`` to choose them per channel (its keys then select
        the channels, overriding ``channels``).
    scales : sequence of float, default=(0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
        Gaussian scales in pixels (ilastik's defaults).
    channels : sequence of int, optional
        Channels of (M, N, C) images to filter, each on its own; by default the
        channels are averaged to one grey plane. Ignored for 2-D images.

    See Also
    --------
    featcell.counting.DensityCounter : learns a density per pixel from these maps.

    References
    ----------
    .. [1] S. Berg et al., "ilastik: interactive machine learning for (bio)image
       analysis", Nature Methods 16, 2019.
    .. [2] L. Fiaschi et al., "Learning to count with regression forest and
       structured labels", ICPR 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.features.image import PixelFeatures
    >>> bank = PixelFeatures(filters=["gaussian", "hessian"], scales=[1.0, 2.0])
    >>> maps = bank.fit_transform([np.random.default_rng(0).random((16, 20))])
    >>> maps[0].shape
    (16, 20, 6)
    >>> bank.get_feature_names_out()[:3].tolist()
    ['Pixel_Gaussian_s1', 'Pixel_HessianEig1_s1', 'Pixel_HessianEig2_s1']
    """

    def __init__(self, filters=None, *, scales=(0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0),
                 channels=None):
        self.filters = filters
        self.scales = scales
        self.channels = channels

    def _plan(self):
        """[(channel, [filters])] after validating the parameters."""
        def check(filters, where):
            if filters is None:
                return list(_FILTERS)
            if isinstance(filters, str) or not filters or not set(filters) <= set(_FILTERS):
                raise ValueError(
                    f"filters{where}={filters!r}; expected a non-empty list drawn from {_FILTERS}"
                )
            return [f for f in _FILTERS if f in filters]

        scales = self.scales
        if (
            isinstance(scales, (str, numbers.Number))
            or len(scales) == 0
            or not all(isinstance(s, numbers.Real) and 0 < s <= 256 for s in scales)
        ):
            raise ValueError(f"scales={scales!r}; expected a non-empty list of numbers in (0, 256]")
        if isinstance(self.filters, dict):
            for c in self.filters:
                if not isinstance(c, numbers.Integral) or c < 0:
                    raise ValueError(f"filters has key {c!r}; expected channel indices >= 0")
            return [(int(c), check(f, f"[{c!r}]")) for c, f in self.filters.items()]
        return [(c, check(self.filters, "")) for c in _channel_indices(self.channels)]

    def fit(self, images=None, y=None):
        """Check the parameters; nothing is learnt.

        Parameters
        ----------
        images : Ignored
            Not used, present for API consistency by convention.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : PixelFeatures
            The transformer.
        """
        self._plan()
        return self

    def _names_and_keys(self):
        keys = []
        for channel, filters in self._plan():
            for scale in self.scales:
                for f in filters:
                    if scale < _MIN_DERIVATIVE_SCALE and f != "gaussian":
                        continue
                    for name in _FILTER_MAPS[f]:
                        keys.append((channel, scale, name))
        names = [
            f"Pixel_{name}{'' if c is None else f'_Ch{c + 1}'}_s{_tag(s)}" for c, s, name in keys
        ]
        return names, keys

    def maps(self, image, step=1):
        """The feature maps of one image.

        Parameters
        ----------
        image : (M, N[, C]) ndarray or path
            One image.
        step : int, default=1
            Return the maps on every ``step``-th pixel of each row and column only,
            starting at pixel ``step // 2``: the same values as the full maps
            there, computed faster.

        Returns
        -------
        maps : (M, N, n_features) ndarray of float32
            Columns named by :meth:`get_feature_names_out`; ``(ceil((M - step //
            2) / step), ...)`` rows and columns with ``step``.
        """
        step = _check_step(step)
        image = _read_for_maps(image)
        plan = self._plan()
        _, keys = self._names_and_keys()
        planes = {}
        for channel, _ in plan:
            planes[channel] = _channel_plane(image, channel)
        out = np.empty((*_grid(image.shape, step)[1], len(keys)), dtype=np.float32)
        column = {key: i for i, key in enumerate(keys)}
        for channel, filters in plan:
            for scale in self.scales:
                maps = _filter_maps(planes[channel], float(scale), filters, step)
                for name, value in maps.items():
                    out[..., column[(channel, scale, name)]] = value
        return out

    def get_feature_names_out(self, input_features=None):
        """Feature names, ``Pixel_<Filter>[_Ch<c>]_s<scale>``.

        Parameters
        ----------
        input_features : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        names : ndarray of str
        """
        return np.asarray(self._names_and_keys()[0], dtype=object)


def _check_step(step):
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or not 1 <= step <= 16:
        raise ValueError(f"step={step!r}; expected an integer from 1 to 16")
    return int(step)


def _in_unit_scale(values, dtype):
    """float32 ``values`` of an image of ``dtype``, integers divided (in place) by the
    dtype's maximum: the [0, 1] scale the pixel features and their thresholds assume."""
    if np.issubdtype(dtype, np.integer):
        values /= np.float32(np.iinfo(dtype).max)
    return values


def _grey_plane(image, dtype=None):
    """One float32 plane in the dtype's scale ([0, 1] for integers); colour is averaged."""
    dtype = image.dtype if dtype is None else dtype
    plane = image.astype(np.float32)
    if plane.ndim == 3:
        plane = plane.mean(axis=-1)
    plane = _in_unit_scale(plane, dtype)
    if not np.isfinite(plane).all():
        raise ValueError("image contains NaN or infinite values")
    return plane


def _read_for_maps(item):
    """An image the pixel maps can filter: (M, N) or (M, N, C), at least 2 x 2 pixels."""
    image = _read(item)
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 2:
        raise ValueError(f"image has shape {image.shape}; expected (M, N) or (M, N, C), at "
                         "least 2 x 2 pixels")
    return image


def _channel_plane(image, channel):
    """The plane of ``channel`` as :func:`_grey_plane` gives it (``None``: colour averaged;
    a grey image has channel 0 only: a model of channel 1 must not read it as grey)."""
    n = 1 if image.ndim == 2 else image.shape[-1]
    if channel is None or image.ndim == 2 and channel == 0:
        return _grey_plane(image)
    if channel >= n:
        raise ValueError(f"channel {channel} requested but the image has {n} "
                         f"channel{'s' * (n != 1)}")
    return _grey_plane(image[..., channel], image.dtype)


# --------------------------------------------------------------------------- CNN pixel features

EARLY_CNN_MODEL = Path(__file__).resolve().parents[1] / "models" / "efficientnet_lite0_stride8.onnx"
_EARLY_OUTPUTS = {"stride4": 4, "stride8": 8}
_SESSIONS: dict = {}  # one onnxruntime session per (model path, threads) and process
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


def _early_session(n_threads):
    key = (str(EARLY_CNN_MODEL), n_threads)
    if key not in _SESSIONS:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if n_threads is not None:
            options.intra_op_num_threads = int(n_threads)
            options.inter_op_num_threads = 1
        _SESSIONS[key] = ort.InferenceSession(
            str(EARLY_CNN_MODEL), options, providers=["CPUExecutionProvider"]
        )
    return _SESSIONS[key]


class CNNPixelFeatures(_PixelMaps):
    """Early feature maps of the bundled CNN, upsampled to every pixel.

    The bundled EfficientNet-Lite0 (ImageNet) cut after its stride-4 stage (24
    maps) and its stride-8 stage (40 maps), ``featcell/models/
    efficientnet_lite0_stride8.onnx`` (made by ``tools/cut_onnx_early.py``). Each
    plane is scaled between its 1st and 99.8th percentiles, repeated as RGB,
    normalised the ImageNet way, padded to a multiple of 32 pixels and run
    through the network with onnxruntime; the maps are interpolated bilinearly
    back to the image's pixels. Pixel features for
    :class:`featcell.counting.DensityCounter` (``features="cnn"``), next to or
    instead of the filter bank of :class:`PixelFeatures`.

    Parameters
    ----------
    channels : sequence of int, optional
        Channels of (M, N, C) images to run, each as a grey image; by default
        the channels are averaged.
    n_threads : int, optional
        onnxruntime intra-op threads; ``None`` lets onnxruntime choose.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.features.image import CNNPixelFeatures
    >>> maps = CNNPixelFeatures().fit().maps(np.random.default_rng(0).random((40, 50)))
    >>> maps.shape
    (40, 50, 64)
    """

    def __init__(self, channels=None, *, n_threads=None):
        self.channels = channels
        self.n_threads = n_threads

    def _channels(self):
        return _channel_indices(self.channels)

    def fit(self, images=None, y=None):
        """Check the parameters; nothing is learnt.

        Parameters
        ----------
        images : Ignored
            Not used, present for API consistency by convention.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : CNNPixelFeatures
            The transformer.
        """
        self._channels()
        return self

    def get_feature_names_out(self, input_features=None):
        """Feature names, ``Pixel_CNN_s<stride>_<i>[_Ch<c>]``.

        Parameters
        ----------
        input_features : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        names : ndarray of str
        """
        names = []
        for channel in self._channels():
            suffix = "" if channel is None else f"_Ch{channel + 1}"
            names += [f"Pixel_CNN_s4_{i:02d}{suffix}" for i in range(24)]
            names += [f"Pixel_CNN_s8_{i:02d}{suffix}" for i in range(40)]
        return np.asarray(names, dtype=object)

    def maps(self, image, step=1):
        """The upsampled feature maps of one image.

        Parameters
        ----------
        image : (M, N[, C]) ndarray or path
            One image.
        step : int, default=1
            Interpolate onto every ``step``-th pixel of each row and column only,
            starting at pixel ``step // 2``.

        Returns
        -------
        maps : (M, N, 64 * n_channels) ndarray of float32
            With ``step``, on the grid's pixels only.
        """
        step = _check_step(step)
        image = _read_for_maps(image)
        parts = []
        for channel in self._channels():
            parts.append(self._plane_maps(_channel_plane(image, channel), step))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    def _plane_maps(self, plane, step=1):
        low, high = np.percentile(plane, [1.0, 99.8])
        scaled = np.clip((plane - low) / (high - low if high > low else 1.0), 0, 1)
        rows, cols = plane.shape
        pad_r, pad_c = -rows % 32, -cols % 32
        scaled = np.pad(scaled, ((0, pad_r), (0, pad_c)), mode="reflect" if min(
            rows, cols) > max(pad_r, pad_c) else "edge")
        x = (scaled[None, None].astype(np.float32) - _IMAGENET_MEAN) / _IMAGENET_STD
        outputs = _early_session(self.n_threads).run(list(_EARLY_OUTPUTS), {"input": x})
        offset, shape = _grid(plane.shape, step)
        maps = np.empty((*shape, sum(out.shape[1] for out in outputs)), dtype=np.float32)
        start = 0
        for (_, stride), out in zip(_EARLY_OUTPUTS.items(), outputs):
            # a stride-s map's point (i, j) covers input pixels s*i .. s*i + s - 1
            where = (stride / step, ((stride - 1) / 2 - offset) / step)
            grids = _upsample_channels_first(out[0], shape, *where)
            maps[..., start : start + out.shape[1]] = np.moveaxis(grids, 0, -1)
            start += out.shape[1]
        return maps
