"""Counting cells in whole images, as scikit-learn estimators.

Three routes, built by :func:`make_counter`: count the objects of a classical
segmentation (optionally calibrated), regress the count on image-level features
(:class:`ImageFeatures`), or regress it on a CNN embedding of the image.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from .heads import make_head
from .segmentation import _to_grey, _typical_area, segment

__all__ = ["ImageFeatures", "SegmentationCounter", "make_counter"]

_COUNTERS = ("segmentation", "regression", "cnn")


def _read(item):
    """An image from an array or a file path."""
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        from skimage.io import imread

        return imread(path)
    return np.asarray(item)


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


def _check_counts(counts, n_images):
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (n_images,):
        raise ValueError(
            f"counts has shape {counts.shape} but there are {n_images} images; expected one "
            "count per image"
        )
    if not np.isfinite(counts).all():
        raise ValueError("counts contains NaN or infinite values")
    if (counts < 0).any():
        first = int(np.argmax(counts < 0))
        raise ValueError(
            f"counts has {int((counts < 0).sum())} negative values (first: {counts[first]:g} "
            f"for image {first}); a cell count is 0 or more"
        )
    return counts


def _clump_corrected_count(areas, typical):
    """Objects counted as their area over a single object's (rounded, at least 1)."""
    # a clump of k nuclei has about k times the area of a single one
    return float(np.maximum(1, np.round(areas / typical)).sum())


def _object_count(item, channel, count_by, segment_params):
    labels = segment(_grey_float(item, channel), **segment_params)
    n = int(labels.max())
    if count_by == "objects" or n == 0:
        return float(n)
    areas = np.bincount(labels.ravel())[1:]
    return _clump_corrected_count(areas, _typical_area(areas))


class SegmentationCounter(RegressorMixin, BaseEstimator):
    """Count the objects of a classical segmentation, with an optional linear calibration.

    Parameters
    ----------
    channel : int, optional
        Channel to segment in (M, N, C) images; see :func:`featcell.segmentation.segment`.
    method, sigma, min_size, min_distance, invert, seed :
        Passed to :func:`featcell.segmentation.segment`.
    count_by : {"objects", "area"}, default="objects"
        ``"objects"`` counts labelled objects; ``"area"`` counts each object as
        its area divided by the typical single-object area (rounded, at least 1),
        which corrects clumps the watershed did not split.
    calibrate : bool, default=True
        Fit ``count = intercept_ + coef_ * segmented_count`` by least squares on
        the training images; when False, ``fit`` learns nothing and the raw
        segmented count is returned.
    n_jobs : int, default=None
        Number of jobs to run in parallel over images. ``None`` means 1 unless in
        a :obj:`joblib.parallel_backend` context. ``-1`` means using all processors.

    Attributes
    ----------
    coef_ : float
        Slope of the calibration (1.0 without calibration).
    intercept_ : float
        Intercept of the calibration (0.0 without calibration).

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.counting import SegmentationCounter
    >>> yy, xx = np.mgrid[:64, :64]
    >>> image = sum(((yy - y) ** 2 + (xx - x) ** 2 < 25) for y, x in [(10, 10), (40, 20), (30, 50)])
    >>> SegmentationCounter(calibrate=False).fit([image], [3]).predict([image.astype(float)])
    array([3.])
    """

    def __init__(
        self,
        *,
        channel=None,
        method="otsu",
        sigma=1.0,
        min_size=16,
        min_distance="auto",
        invert="auto",
        seed="distance",
        count_by="objects",
        calibrate=True,
        n_jobs=None,
    ):
        self.channel = channel
        self.method = method
        self.sigma = sigma
        self.min_size = min_size
        self.min_distance = min_distance
        self.invert = invert
        self.seed = seed
        self.count_by = count_by
        self.calibrate = calibrate
        self.n_jobs = n_jobs

    def _segmented_counts(self, images):
        if self.count_by not in ("objects", "area"):
            raise ValueError(f"count_by={self.count_by!r}; expected 'objects' or 'area'")
        params = {
            "method": self.method,
            "sigma": self.sigma,
            "min_size": self.min_size,
            "min_distance": self.min_distance,
            "invert": self.invert,
            "seed": self.seed,
        }
        counts = Parallel(n_jobs=self.n_jobs)(
            delayed(_object_count)(item, self.channel, self.count_by, params) for item in images
        )
        return np.asarray(counts, dtype=np.float64)

    def fit(self, images, counts):
        """Segment the training images and calibrate their counts.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Training images; sizes may differ.
        counts : array-like of shape (n_images,)
            True counts.

        Returns
        -------
        self : SegmentationCounter
            The fitted counter.
        """
        images = _check_images(images)
        counts = _check_counts(counts, len(images))
        self.coef_, self.intercept_ = 1.0, 0.0
        if self.calibrate:
            found = self._segmented_counts(images)
            if np.ptp(found) > 0:
                self.coef_, self.intercept_ = (float(v) for v in np.polyfit(found, counts, 1))
            else:  # one distinct segmented count: only an offset can be learnt
                self.intercept_ = float(np.mean(counts - found))
        return self

    def predict(self, images):
        """Count objects in each image.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Images; sizes may differ.

        Returns
        -------
        counts : ndarray of shape (n_images,)
            Calibrated counts (not rounded).
        """
        check_is_fitted(self)
        images = _check_images(images)
        return self.intercept_ + self.coef_ * self._segmented_counts(images)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


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
    >>> from featcell.counting import ImageFeatures
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


def make_counter(method="regression", head="lr", *, random_state=0, **params):
    """Build a cell counter: ``fit(images, counts)``, ``predict(images)``.

    Parameters
    ----------
    method : {"segmentation", "regression", "cnn"}, default="regression"
        ``"segmentation"``: a :class:`SegmentationCounter` (count the objects of a
        classical segmentation, linearly calibrated on the training images);
        ``"regression"``: :class:`ImageFeatures` → ``StandardScaler`` → a
        regression head; ``"cnn"``: :class:`featcell.cnn.CNNEmbedding` →
        ``StandardScaler`` → a regression head.
    head : str, default="lr"
        Regression head for ``"regression"`` and ``"cnn"``, by name of
        :func:`featcell.heads.make_head` (``"lr"``, ``"rf"``, ``"svm"``, ``"xgb"``,
        ``"mlp"``). Ignored for ``"segmentation"``. The default, ridge regression,
        suits features that grow linearly with the count and, unlike trees,
        extrapolates beyond the counts seen in training.
    random_state : int or None, default=0
        Seed of the head.
    **params
        Parameters of the first step: :class:`SegmentationCounter`,
        :class:`ImageFeatures` or ``CNNEmbedding`` (for example ``channel=2`` and
        ``n_jobs=-1``).

    Returns
    -------
    counter : estimator
        Unfitted; its input is a list of images (arrays or paths, sizes may differ).

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.counting import make_counter
    >>> rng = np.random.default_rng(0)
    >>> images = [rng.random((48, 48)) * (rng.random((48, 48)) < k / 100) for k in range(1, 21)]
    >>> counter = make_counter("regression").fit(images, np.arange(1, 21))
    >>> counter.predict(images[:1]).shape
    (1,)
    """
    if method not in _COUNTERS:
        raise ValueError(f"method={method!r} is not a counter; expected one of {_COUNTERS}")
    if method == "segmentation":
        return SegmentationCounter(**params)
    regressor = make_head(head, "regression", random_state=random_state)
    if method == "regression":
        return make_pipeline(ImageFeatures(**params), StandardScaler(), regressor)
    from .cnn import CNNEmbedding

    return make_pipeline(CNNEmbedding(**params), StandardScaler(), regressor)
