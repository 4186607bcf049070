"""Counting cells in whole images, as scikit-learn estimators.

Three routes, built by :func:`make_counter`: count the objects of a classical
segmentation (optionally calibrated), regress the count on image-level features
(:class:`ImageFeatures`), or regress it on a CNN embedding of the image.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy import ndimage as ndi
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils import get_tags
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from .features._base import check_n_jobs
from .features.image import (
    ImageFeatures,
    PixelFeatures,
    _check_images,
    _clump_corrected_count,
    _grey_float,
    _in_unit_scale,
    _read_for_maps,
    _upsample_channels_first,
    upsample_linear,
)
from .heads import make_head
from .points import _dot_spacing, _DotCountScore, _resolve_points, density_target
from .segmentation import _check_segment_params, _typical_area, segment

__all__ = ["DensityCounter", "ImageFeatures", "SegmentationCounter", "make_counter"]

_COUNTERS = ("segmentation", "regression", "cnn", "density", "cnn_density")


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

    def _check_params(self):
        """Every parameter, at fit (even without calibration) and at predict."""
        if self.count_by not in ("objects", "area"):
            raise ValueError(f"count_by={self.count_by!r}; expected 'objects' or 'area'")
        if not isinstance(self.calibrate, (bool, np.bool_)):
            raise ValueError(f"calibrate={self.calibrate!r}; expected True or False")
        check_n_jobs(self.n_jobs)
        _check_segment_params(method=self.method, seed=self.seed, invert=self.invert,
                              min_size=self.min_size, min_distance=self.min_distance,
                              sigma=self.sigma, channel=self.channel)

    def _segmented_counts(self, images):
        self._check_params()
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
        self._check_params()
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
            Calibrated counts (not rounded, never negative).
        """
        check_is_fitted(self)
        images = _check_images(images)
        # the calibration line may cross zero below the counts it saw: no count is negative
        return np.maximum(self.intercept_ + self.coef_ * self._segmented_counts(images), 0.0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


class DensityCounter(_DotCountScore, RegressorMixin, BaseEstimator):
    """Count objects as the sum of a density map learnt from dot annotations.

    The method of ilastik's Cell Density Counting workflow (Lempitsky & Zisserman,
    2010; Fiaschi et al., 2012). Each training image's dots are smoothed by a
    Gaussian of standard deviation ``sigma`` into a density map that sums to the
    image's count (:func:`featcell.points.density_target`); a regression head
    learns that density at each pixel from the pixel's filter responses
    (:class:`featcell.features.image.PixelFeatures`, optionally with early CNN
    feature maps). An image's count is the sum of its predicted density, so the
    counter also says *where* the objects are (:meth:`predict_density`) and how
    many lie in any region (:meth:`count_in`).

    With ``auto_context`` (Tu, 2008; ilastik's autocontext workflow), a first
    head's density gives the next head context: each pixel also sees that
    density and its Gaussian averages at 0.5, 1, 2 and 4 times ``sigma``, the
    number of objects expected around it, so that the next head can correct
    crowded and sparse regions the pixel features alone cannot tell apart. The
    first head's density of each training image comes from the fold head that
    did not see the image (cross-fitting), as it will on new images; further
    stages repeat this.

    Each image's feature maps are computed once, on the grid of pixels the
    counter predicts on (every ``stride``-th pixel), and only a random sample of
    pixels (for the head) and a regular sub-grid (for the out-of-fold counts of
    ``sigma="auto"`` and ``calibrate``) are kept: memory grows with
    ``n_samples``, not with the number of images.

    Parameters
    ----------
    sigma : float or "auto", default="auto"
        Standard deviation of the Gaussian around each dot, in pixels. ``"auto"``
        chooses it from ``sigma_grid`` by cross-validation over the training
        images (the count error of the held-out images' summed density, after
        the count calibration when ``calibrate`` is on, itself fitted leaving
        each image out).
    sigma_grid : sequence of float, default=(2.0, 4.0)
        Candidates for ``sigma="auto"``. Each candidate costs ``cv`` fits of the
        head.
    features : {"filters", "cnn", "filters+cnn"}, default="filters+cnn"
        Pixel features: the filter bank, early feature maps of the bundled CNN
        (:class:`featcell.features.image.CNNPixelFeatures`), or both. Adding the
        CNN maps to the filter bank counted VGG cells more accurately (see
        ``examples/count_vgg_cells.py``: MAE 3.4 against 4.0 at N = 32); the CNN
        maps take about a third of the filter bank's time per image, and the
        wider head (100 columns against 30) about twice as long to fit.
        ``"filters"`` alone is the faster, classical (ilastik) choice.
    filters : sequence of str or dict, default=("gaussian", "log", "gradient", "dog", \
"hessian")
        Filters of the bank (``None``: all six); a dict ``{channel: filters}``
        selects them per channel. See
        :class:`~featcell.features.image.PixelFeatures`. The structure tensor is
        left out by default: it costs a third of the bank's time and did not
        count VGG cells better.
    scales : sequence of float, default=(0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
        Scales of the filter bank, in pixels.
    channels : sequence of int, optional
        Channels to filter, each on its own; by default colour is averaged.
    head : str or estimator, default="xgb"
        Pixel regressor: a name for :func:`featcell.heads.make_head` (``"xgb"``,
        ``"rf"``, ``"lr"``, ``"mlp"``, ``"svm"``; the last three behind a
        ``StandardScaler``) or a scikit-learn regressor (cloned). ``"xgb"`` is
        :func:`~featcell.heads.make_head`'s with 150 trees of depth 5, learning
        rate 0.2 and 64 bins (100 trees in the auto-context stages): a default
        fit trains 8 heads (the context stage: 2 sigmas x 3 folds and the
        stage's head; then the final head), in seconds, each stage's pixels
        binned once for all its heads. Against the previous 150 trees of depth
        4 at rate 0.1, the deeper, faster-learning trees counted VGG cells more
        accurately (MAE 2.97 against 3.20 at N = 32 with 32,000 pixels, 2.92
        against 3.10 with 64,000; 5 exploration draws of
        ``examples/count_vgg_cells.py``'s protocol, the head varied by a
        scratch script).
    n_samples : int, default=64000
        Pixels sampled for the final head, spread evenly over the training
        images with dots; the auto-context stages' heads learn from every
        other one. The out-of-fold sub-grids keep at most four times as many
        rows: every image gets one, spaced at most ``2 * min(sigma)`` pixels
        where the budget allows, more coarsely on large images. Twice the
        previous 32,000 pixels counted VGG cells more accurately with the
        previous head (MAE 3.10 against 3.20, 5 exploration draws at N = 32),
        barely with the current one (2.96 against 2.97; the same scratch runs).
    auto_context : int, default=1
        Auto-context stages before the final head (0 to 3; 0: one head on the
        pixel features alone). Each stage's head (``"xgb"``: with 100 trees) is
        also fitted ``cv`` times for the out-of-fold densities its successor
        learns from, and predicts on every other grid point only; the first
        stage chooses ``sigma``. With ``calibrate="auto"`` the last head is then
        fitted once, so that one stage costs no more than the single-stage
        counter with its out-of-fold calibration. On VGG cells (N = 32, 5
        draws, with the previous depth-4 head and 32,000 pixels) the count MAE
        went from 3.4 with no stage to 3.1 with one (but
        rose a little with the filter bank or the CNN maps alone); a second
        stage (with 60-tree heads) did not do better there and fits about 40 %
        longer. Each stage makes prediction about a fifth slower.
    calibrate : {"auto", True, False}, default="auto"
        Also fit ``count = intercept_ + coef_ * summed density`` on sums that
        the head did not see: out-of-fold sums of the images with dots
        (``cv`` folds), and images given with a count only (held back from the
        head). Never on in-sample sums. ``"auto"`` keeps the line only if it
        lowers the count error of those sums, each image calibrated by a line
        fitted on the others (leave-one-out); ``True`` always keeps it.
        Out-of-fold sums are estimated from a regular sub-grid of each image's
        prediction grid, spaced at most ``2 * min(sigma)`` pixels, from a
        random offset: an unbiased estimate of the whole sum, within about 1 %
        for a smooth density.
    cv : int, default=3
        Folds over images for ``sigma="auto"``, ``calibrate`` and
        ``auto_context``.
    stride : int, default=2
        Predict the density on every ``stride``-th pixel of each row and column
        and interpolate bilinearly in between (``stride`` ** 2 times fewer
        pixels for the head; the density is smooth at the scale of ``sigma``,
        so keep ``stride`` at most about ``sigma``).
    zoom : float or "auto", default="auto"
        Resize every image by this factor (bilinear, smoothed first when
        shrinking), and its dots with it, before its pixels are measured: the
        pixel scales, sigmas and stride above then apply to the resized
        images. Counts are those of the whole image; density maps come back at
        the image's own size. ``"auto"``: these defaults were chosen on VGG
        cells, whose neighbouring dots lie about 8.5 pixels apart; when the
        training dots' median spacing is more than 1.5 times that, and the fit
        computes out-of-fold counts (see ``calibrate``), the counter is also
        fitted at the zoom that brings it to 8.5 pixels (at least 1/8; a
        second fit, on smaller images: DSB2018 nuclei, 11-15 CPU s per fit
        against 5-6), and that zoom is kept only if its out-of-fold count
        errors are lower than those at 1 by more than one standard error of
        their paired difference (otherwise 1). Denser dots are not enlarged
        (the pixel maps' memory would grow with the square of the zoom); set a
        number to fix the zoom (1: never resize; up to 2).
    random_state : int or None, default=0
        Seed of the pixel sample, the folds and the head.
    n_jobs : int, default=None
        Number of jobs for the heads that can run in parallel (rf, xgb) and
        threads for the CNN maps. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context. ``-1`` means using all
        processors.

    Attributes
    ----------
    sigma_ : float
        The sigma used for the final fit.
    cv_mae_ : dict
        ``{sigma: out-of-fold count MAE}`` of the first stage when
        cross-validation ran, else empty (calibrated leaving each image out when
        ``calibrate`` is on; the better of calibrated and not with ``"auto"``).
    head_ : estimator
        The fitted pixel regressor (of the last stage).
    context_heads_ : list of estimators
        The auto-context stages' heads, fitted on all training images (empty
        without ``auto_context``).
    pixel_features_ : list of transformers
        The pixel feature extractors (each with a ``maps(image)`` method).
    feature_names_ : ndarray of str
        Names of the pixel features.
    coef_, intercept_ : float
        The count calibration (1 and 0 without ``calibrate``).
    n_train_pixels_ : int
        Pixels the head was fitted on.
    channel_counts_ : tuple of int
        The numbers of channels of the training images (1 for grey); an image
        with another number is refused at predict.
    zoom_ : float
        The zoom the counter was fitted at (1.0: images as they are).
    zoom_cv_mae_ : dict
        ``{zoom: out-of-fold count MAE}`` when ``zoom="auto"`` tried two,
        else empty.

    See Also
    --------
    featcell.points.read_points : dot annotations from files.
    featcell.metrics.game : grid average mean absolute error of density counts.

    References
    ----------
    .. [1] V. Lempitsky and A. Zisserman, "Learning to count objects in images",
       NIPS 2010.
    .. [2] L. Fiaschi, U. Koethe, R. Nair and F. A. Hamprecht, "Learning to count
       with regression forest and structured labels", ICPR 2012.
    .. [3] Z. Tu, "Auto-context and its application to high-level vision tasks",
       CVPR 2008.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.counting import DensityCounter
    >>> rng = np.random.default_rng(0)
    >>> def blobs(k):
    ...     points = rng.uniform(4, 44, size=(k, 2))
    ...     yy, xx = np.mgrid[:48, :48]
    ...     image = sum(np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 8) for r, c in points)
    ...     return image, points
    >>> data = [blobs(k) for k in (3, 6, 9, 12)]
    >>> counter = DensityCounter(sigma=2.0, features="filters", head="lr", scales=[1, 2, 4])
    >>> counter = counter.fit([d[0] for d in data], [d[1] for d in data])
    >>> image, points = blobs(7)
    >>> bool(abs(counter.predict([image])[0] - 7) < 1.5)
    True
    """

    def __init__(
        self,
        sigma="auto",
        *,
        sigma_grid=(2.0, 4.0),
        features="filters+cnn",
        filters=("gaussian", "log", "gradient", "dog", "hessian"),
        scales=(0.7, 1.0, 1.6, 3.5, 5.0, 10.0),
        channels=None,
        head="xgb",
        n_samples=64_000,
        auto_context=1,
        calibrate="auto",
        cv=3,
        stride=2,
        zoom="auto",
        random_state=0,
        n_jobs=None,
    ):
        self.sigma = sigma
        self.sigma_grid = sigma_grid
        self.features = features
        self.filters = filters
        self.scales = scales
        self.channels = channels
        self.head = head
        self.n_samples = n_samples
        self.auto_context = auto_context
        self.calibrate = calibrate
        self.cv = cv
        self.stride = stride
        self.zoom = zoom
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ----------------------------------------------------------------- parameters

    def _sigmas(self):
        if isinstance(self.sigma, str):
            if self.sigma != "auto":
                raise ValueError(f"sigma={self.sigma!r}; expected a number of pixels or 'auto'")
            grid = self.sigma_grid
            if (
                isinstance(grid, (str, numbers.Number))
                or len(grid) == 0
                or not all(isinstance(v, numbers.Real) and 0 <= v <= 100 for v in grid)
            ):
                raise ValueError(
                    f"sigma_grid={grid!r}; expected a non-empty list of numbers in [0, 100]"
                )
            return [float(v) for v in grid]
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, numbers.Real) or not (
            0 <= self.sigma <= 100
        ):
            raise ValueError(f"sigma={self.sigma!r}; expected a number of pixels in [0, 100] or 'auto'")
        return [float(self.sigma)]

    def _extractors(self):
        kinds = {"filters": ("filters",), "cnn": ("cnn",), "filters+cnn": ("filters", "cnn")}
        if self.features not in kinds:
            raise ValueError(f"features={self.features!r}; expected one of {tuple(kinds)}")
        out = []
        if "filters" in kinds[self.features]:
            out.append(PixelFeatures(self.filters, scales=self.scales, channels=self.channels).fit())
        if "cnn" in kinds[self.features]:
            from .features.image import CNNPixelFeatures

            # n_jobs=None means one thread, as for the head; -1 lets onnxruntime choose
            threads = 1 if self.n_jobs is None else (None if self.n_jobs < 0 else self.n_jobs)
            out.append(CNNPixelFeatures(channels=self.channels, n_threads=threads).fit())
        return out

    def _new_head(self, final=True):
        """A new pixel head; ``final=False``: an auto-context stage's (fewer xgb trees)."""
        if not isinstance(self.head, str):
            if not hasattr(self.head, "fit") or not hasattr(self.head, "predict"):
                raise TypeError(f"head={self.head!r}; expected a head name or a regressor")
            return clone(self.head)
        head = make_head(self.head, "regression", random_state=self.random_state,
                         n_jobs=self.n_jobs)
        if self.head == "xgb":
            head.set_params(**_PIXEL_XGB)
            if not final:
                head.set_params(n_estimators=_CONTEXT_XGB_TREES)
        if self.head in ("lr", "svm", "mlp"):
            return make_pipeline(StandardScaler(), head)
        return head

    def _check_n_samples(self):
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, numbers.Integral) or (
            self.n_samples < 100
        ):
            raise ValueError(f"n_samples={self.n_samples!r}; expected an integer >= 100")
        if isinstance(self.cv, bool) or not isinstance(self.cv, numbers.Integral) or self.cv < 2:
            raise ValueError(f"cv={self.cv!r}; expected an integer >= 2")
        if isinstance(self.stride, bool) or not isinstance(self.stride, numbers.Integral) or not (
            1 <= self.stride <= 16
        ):
            raise ValueError(f"stride={self.stride!r}; expected an integer from 1 to 16")
        if isinstance(self.auto_context, bool) or not isinstance(
            self.auto_context, numbers.Integral
        ) or not 0 <= self.auto_context <= 3:
            raise ValueError(
                f"auto_context={self.auto_context!r}; expected an integer from 0 to 3"
            )
        if self.calibrate not in (True, False, "auto"):
            raise ValueError(f"calibrate={self.calibrate!r}; expected True, False or 'auto'")

    # ----------------------------------------------------------------- pixels

    def _maps(self, item, extractors=None):
        """(m, n, n_features) float32 pixel features of one image on the prediction grid.

        The grid is every ``stride``-th pixel of each row and column of the image
        resized by ``zoom_`` (:func:`_zoomed`), starting at pixel ``stride // 2``;
        also returns the resized and the original ``(rows, cols)``.
        """
        image = _read_for_maps(item)  # (its shape checked before any resizing)
        n = 1 if image.ndim == 2 else int(image.shape[-1])
        if "_seen_channels" in self.__dict__:  # fitting
            self._seen_channels.add(n)
        elif n not in getattr(self, "channel_counts_", (n,)):  # (older models: no check)
            raise ValueError(f"image has {n} channel(s) but the counter was fitted on images "
                             f"with {' or '.join(map(str, self.channel_counts_))}")
        original = image.shape[:2]
        step = int(self.stride)
        # (older models: no zoom); every side keeps a grid point
        image = _zoomed(image, getattr(self, "zoom_", 1.0), step // 2 + 1)
        parts = [e.maps(image, step) for e in (extractors or self.pixel_features_)]
        maps = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        return maps, image.shape[:2], original

    def _context_planes(self, coarse, chain):
        """Auto-context of one image on its coarse grid (every other grid point).

        Each stage's head of ``chain`` predicts the density on the coarse grid from the
        pixel maps ``coarse`` and the previous stage's context; the context is that
        density and its Gaussian averages at ``_CONTEXT_SCALES`` times ``sigma_`` (the
        objects expected around each point, at growing radii):
        ``(1 + len(_CONTEXT_SCALES), m, n)`` planes, or None for an empty chain.
        """
        spacing = 2 * int(self.stride)  # pixels between the coarse points
        unit = max(float(self.sigma_), float(self.stride))
        features, planes = coarse, None
        for model in chain:
            density = self._grid_density(model, features).astype(np.float32)
            planes = np.stack([density] + [
                ndi.gaussian_filter(density, scale * unit / spacing, mode="reflect")
                for scale in _CONTEXT_SCALES
            ])
            features = np.concatenate([coarse, np.moveaxis(planes, 0, -1)], axis=-1)
        return planes

    def _features(self, item):
        """The final head's features of one image on the grid, and the resized and
        original image shapes (:meth:`_maps`): the pixel maps and, with auto-context,
        the context interpolated onto the grid."""
        maps, shape, original = self._maps(item)
        chain = getattr(self, "context_heads_", [])
        if not chain:
            return maps, shape, original
        planes = self._context_planes(maps[::2, ::2], chain)
        context = _upsample_channels_first(planes, maps.shape[:2], 2, 0)
        return np.concatenate([maps, np.moveaxis(context, 0, -1)], axis=-1), shape, original

    def _grid_density(self, model, maps):
        """The head's density on the grid points of ``maps``."""
        flat = np.ascontiguousarray(maps).reshape(-1, maps.shape[-1])
        return np.asarray(model.predict(flat), dtype=np.float64).reshape(maps.shape[:2])

    def _density(self, model, maps, shape, original):
        """The density map of one image: the grid's values interpolated onto every pixel
        of the resized image, then brought back to its ``original`` size with the same
        sum (:func:`_unzoomed`)."""
        step = int(self.stride)
        density = self._grid_density(model, maps)
        if step > 1:
            density = upsample_linear(density, shape, step, step // 2)
        return _unzoomed(density, original)

    def _sum(self, model, maps, shape):
        """``_density(...).sum()`` without building the map: grid values times their weights
        (on the resized image: the original size does not change the count)."""
        rows, cols = _sum_weights(maps.shape[:2], shape, int(self.stride))
        # elementwise, not a matrix product: no BLAS threads for so little work
        return float((rows[:, None] * self._grid_density(model, maps) * cols).sum())

    # ----------------------------------------------------------------- fit

    def fit(self, images, points):
        """Learn the pixel density from dot-annotated images.

        Each image's feature maps are computed once, on the prediction grid; the
        head's training pixels, a regular sub-grid of each image (for its
        out-of-fold count) and, with ``auto_context``, every other grid point
        (for the context stages) are kept, at most ``n_samples``, ``4 *
        n_samples`` and ``4 * n_samples`` rows in all, whatever the number of
        images (the maps of images beyond the last budget are computed again).

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Training images; sizes may differ.
        points : list, or str or path-like
            Per image, a ``(k, 2)`` array of ``(row, col)`` dot positions, or a
            number (a count only: such images are held back from the head and
            used for ``calibrate``); or a folder or table of points files for
            :func:`featcell.points.read_points` (``images`` must then be paths).

        Returns
        -------
        self : DensityCounter
            The fitted counter.
        """
        images = _check_images(images)
        self._sigmas()
        self._check_n_samples()
        check_n_jobs(self.n_jobs)
        targets = _resolve_points(images, points)
        zooms = self._zooms(targets)
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            del self.__dict__[name]  # a refit: each zoom's fit below keeps only its own state
        self._seen_channels = set()  # the channel counts of the training images (_maps)
        try:
            fits = {}
            for zoom in zooms:
                self.zoom_ = zoom
                errors = self._fit(images, targets)
                fits[zoom] = errors, {k: v for k, v in vars(self).items()
                                      if k.endswith("_") and not k.startswith("_")}
            self.channel_counts_ = tuple(sorted(self._seen_channels))
        finally:
            del self._seen_channels
        self.zoom_cv_mae_ = {}
        if len(zooms) > 1:
            (plain, _), (zoomed, _) = fits[zooms[0]], fits[zooms[1]]
            if plain is not None and zoomed is not None:
                self.zoom_cv_mae_ = {z: float(fits[z][0].mean()) for z in zooms}
            # the resized images win only by more than one standard error of the paired
            # difference of the images' out-of-fold errors
            wins = self.zoom_cv_mae_ and _clearly_lower(zoomed, plain)
            self.__dict__.update(fits[zooms[1] if wins else zooms[0]][1])
        return self

    def _zooms(self, targets):
        """The zooms to fit: ``[zoom]``, or with ``"auto"`` ``[1.0]`` and, for dots far
        from ``_REFERENCE_SPACING`` apart, the zoom that brings them to it."""
        if self.zoom != "auto":
            if isinstance(self.zoom, bool) or not isinstance(self.zoom, numbers.Real) or not (
                _ZOOM_RANGE[0] <= self.zoom <= _ZOOM_RANGE[1]
            ):
                raise ValueError(f"zoom={self.zoom!r}; expected 'auto' or a number from "
                                 f"{_ZOOM_RANGE[0]} to {_ZOOM_RANGE[1]}")
            return [float(self.zoom)]
        dots = [t for t in targets if isinstance(t, np.ndarray)]  # (checked by fit)
        spacing = _dot_spacing(dots)
        if spacing is None or spacing == 0 or not self._folds(len(dots))[2]:
            return [1.0]  # (without out-of-fold counts, no other zoom could be chosen)
        zoom = float(np.clip(_REFERENCE_SPACING / spacing, *_AUTO_ZOOM_RANGE))  # (<= 1)
        if zoom >= 1 / _ZOOM_TOLERANCE:
            return [1.0]
        return [1.0, round(zoom, 4)]

    def _folds(self, n_dotted):
        """``(k, stages, out_of_fold)`` of a fit on ``n_dotted`` dotted images: the folds,
        the auto-context stages (they need two dotted images at least) and whether the
        fit computes out-of-fold counts (for sigma="auto", calibrate or auto-context)."""
        k = min(int(self.cv), n_dotted)
        stages = int(self.auto_context) if k >= 2 else 0
        out_of_fold = (len(self._sigmas()) > 1 or bool(self.calibrate) or stages > 0) and k >= 2
        return k, stages, out_of_fold

    def _fit(self, images, targets):
        """Fit at ``zoom_`` to ``targets`` (:func:`_resolve_points`; the parameters checked
        by :meth:`fit`); returns the per-image out-of-fold count errors of the chosen
        sigma's first stage (None without them)."""
        sigmas = self._sigmas()
        if min(sigmas) < self.stride / 2:  # the target, sampled every stride, misses dots
            raise ValueError(
                f"sigma {min(sigmas)} is below half the stride ({self.stride}): the density "
                "target, sampled every stride pixels, would miss most dots; raise sigma or "
                "lower stride"
            )
        extractors = self._extractors()
        dotted = [i for i, t in enumerate(targets) if isinstance(t, np.ndarray)]
        if not dotted:
            raise ValueError(
                "points gives counts only; a DensityCounter learns from dot annotations "
                "((k, 2) arrays of positions) - for counts alone use make_counter('regression')"
            )
        held_back = [i for i, t in enumerate(targets) if not isinstance(t, np.ndarray)]
        rng = np.random.default_rng(self.random_state)
        step = int(self.stride)
        per_image = max(1, int(self.n_samples) // len(dotted))
        k, stages, need_cv = self._folds(len(dotted))
        # images whose summed density is needed without the head having seen them: each
        # keeps a sub-grid, together at most the budget (large images, a coarser one)
        wanted_sums = set(dotted if need_cv else []) | set(held_back if self.calibrate else [])
        budget = _OOF_ROWS * int(self.n_samples)
        # sub-grid spacing at most 2 sigma where the budget allows: the sum of a smooth map
        # is then estimated to a fraction of a percent
        q = max(1, int(2 * min(sigmas) // step))
        X, Y, owner = [], [], []  # the head's training pixels
        taken = {}  # image -> the grid points of its training pixels
        sub = {}  # image -> (features, weights, grid points) of its sub-grid, for its sum
        coarse = {}  # image -> its maps on every other grid point, for auto-context
        cached = 0
        for i in rng.permutation(sorted(set(dotted) | wanted_sums)).tolist():
            maps, shape, original = self._maps(images[i], extractors)
            flat = maps.reshape(-1, maps.shape[-1])
            dense = None
            if isinstance(targets[i], np.ndarray):
                dots = _zoomed_points(_check_inside(targets[i], original, i), original, shape)
                dense = np.column_stack([
                    density_target(dots, shape, s)[step // 2 :: step, step // 2 :: step]
                    .ravel() for s in sigmas
                ])
                take = rng.choice(len(flat), size=min(per_image, len(flat)), replace=False)
                taken[i] = take
                X.append(flat[take])
                Y.append(dense[take])
                owner.append(np.full(len(take), i))
            if i in wanted_sums:  # every such image gets its sub-grid, coarser if need be
                sub[i] = _systematic_subgrid(maps, shape, step, max(q, _fitting_spacing(
                    len(flat), len(wanted_sums), budget)), rng)
            # auto-context predicts on the coarse grid only: keep it (within the same
            # budget as the sub-grids) rather than computing the maps again
            size = len(range(0, maps.shape[0], 2)) * len(range(0, maps.shape[1], 2))
            if stages and i in set(taken) | set(sub) and cached + size <= budget:
                coarse[i] = (maps[::2, ::2].copy(), maps.shape[:2])
                cached += size
            del maps, flat, dense
        X, Y, owner = np.concatenate(X), np.concatenate(Y), np.concatenate(owner)
        true = {i: float(len(targets[i])) for i in dotted}
        summed = [i for i in dotted if i in sub]  # the dotted images with out-of-fold sums
        wanted = np.array([true[i] for i in summed])
        fold_of = {}
        if need_cv:
            fold_of = {int(i): f % k for f, i in enumerate(rng.permutation(dotted))}
        sample_fold = np.array([fold_of.get(int(i), -1) for i in owner])

        self.pixel_features_ = extractors
        self.feature_names_ = np.concatenate([e.get_feature_names_out() for e in extractors])
        self.cv_mae_ = {}
        self.context_heads_ = []
        self.sigma_ = sigmas[0]
        best = 0
        oof = None  # the last stage's out-of-fold sums, for the calibration
        oof_errors = None  # the first stage's, of the chosen sigma, per image
        fold_heads = []  # per context stage, its k fold heads: the chain of out-of-fold maps
        # out-of-fold sums through a chain of cross-fitted heads misjudge the final chain,
        # whose heads all saw more images: "auto" calibrates those on held-back images only
        oof_calibration = self.calibrate is True or (self.calibrate == "auto" and stages == 0)
        for stage in range(stages + 1):
            last = stage == stages
            # the out-of-fold sums: to choose sigma (first stage), to calibrate (last), and
            # the out-of-fold maps the next stage learns its context from
            folds = need_cv and (
                (stage == 0 and len(sigmas) > 1) or not last or oof_calibration
            ) and len(summed) >= (2 if last else 0)
            candidates = range(len(sigmas)) if stage == 0 else [best]
            models = {}
            oof = None
            # the context stages' heads learn from every _CONTEXT_ROW_STEP-th training pixel
            part = slice(None, None, 1 if last else _CONTEXT_ROW_STEP)
            rows = _HeadRows(X[part], sample_fold[part], rng)  # binned once for xgb
            labels = Y[part]
            if folds:
                oof = np.full((len(sigmas), len(summed)), np.nan)
                for j in candidates:
                    models[j] = []
                    for f in range(k):
                        model = rows.fit(self._new_head(last), labels[:, j], f)
                        models[j].append(model)
                        for n, i in enumerate(summed):
                            if fold_of[i] == f:
                                oof[j, n] = _subgrid_sum(model, sub[i])
                if stage == 0 and len(summed) >= 2:
                    errors = {j: self._oof_errors(oof[j], wanted) for j in candidates}
                    self.cv_mae_ = {sigmas[j]: float(e.mean()) for j, e in errors.items()}
                    best = min(candidates, key=lambda j: self.cv_mae_[sigmas[j]]) if len(
                        sigmas) > 1 else 0
                    self.sigma_ = sigmas[best]
                    oof_errors = errors[best]
            head = rows.fit(self._new_head(last), labels[:, best])
            del rows, labels
            if last:
                self.head_ = head
                break
            self.context_heads_.append(head)
            fold_heads.append(models[best])
            X, sub = self._add_context(images, X, owner, taken, sub, coarse, fold_heads,
                                       fold_of)
        self.n_train_pixels_ = len(X)
        del X, Y
        self.coef_, self.intercept_ = 1.0, 0.0
        if self.calibrate:
            found = [] if oof is None else list(oof[best])
            found_wanted = [] if oof is None else list(wanted)
            for i in held_back:
                if i not in sub:
                    continue
                found.append(_subgrid_sum(self.head_, sub[i]))
                found_wanted.append(float(targets[i]))
            self.coef_, self.intercept_ = _linear_calibration(found, found_wanted)
            if self.calibrate == "auto" and len(found) >= 2 and _calibrated_oof_errors(
                found, found_wanted
            ).mean() >= np.abs(np.subtract(found, found_wanted)).mean():
                self.coef_, self.intercept_ = 1.0, 0.0  # the line did not help out-of-fold
        return oof_errors

    def _oof_errors(self, found, wanted):
        """Per image, the count error of out-of-fold sums, as the counter will calibrate
        them (``"auto"``: calibrated or not, whichever errs less on average)."""
        raw = np.abs(found - wanted)
        if not self.calibrate:
            return raw
        calibrated = _calibrated_oof_errors(found, wanted)
        if self.calibrate == "auto" and raw.mean() <= calibrated.mean():
            return raw
        return calibrated

    def _add_context(self, images, X, owner, taken, sub, coarse, fold_heads, fold_of):
        """Replace the context columns of the training pixels and sub-grids by the last
        context stage's, computed out-of-fold: each dotted image through the fold heads
        that did not see it, the others through the final heads. ``coarse``: the cached
        coarse grids' maps, ``{image: (maps, grid shape)}``."""
        n_maps = len(self.feature_names_)
        columns = n_maps + len(_CONTEXT_SCALES) + 1
        out = np.empty((len(X), columns), dtype=np.float32)
        out[:, :n_maps] = X[:, :n_maps]
        rows = {}
        for i in np.unique(owner):
            rows[int(i)] = np.flatnonzero(owner == i)
        new_sub = {}
        for i in sorted(set(taken) | set(sub)):
            if i in coarse:
                small, grid = coarse[i]
            else:  # beyond the cache's budget: computed again
                maps = self._maps(images[i])[0]
                small, grid = maps[::2, ::2], maps.shape[:2]
                del maps
            if i in fold_of:
                chain = [models[fold_of[i]] for models in fold_heads]
            else:
                chain = self.context_heads_
            planes = self._context_planes(small, chain)
            context = _upsample_channels_first(planes, grid, 2, 0).reshape(len(planes), -1)
            if i in taken:
                out[rows[i], n_maps:] = context[:, taken[i]].T
            if i in sub:
                new_sub[i] = (np.hstack([sub[i][0][:, :n_maps], context[:, sub[i][2]].T]),
                              sub[i][1], sub[i][2])
        return out, new_sub

    # ----------------------------------------------------------------- predict

    def predict_density(self, images):
        """The predicted density map of each image (scaled by ``coef_``).

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Images; sizes may differ.

        Returns
        -------
        densities : list of (M, N) ndarray of float64
            Objects per pixel; a map sums to the image's count less ``intercept_``.
        """
        check_is_fitted(self)
        return [self.coef_ * self._density(self.head_, *self._features(item))
                for item in _check_images(images)]

    def predict(self, images):
        """Count the objects of each image: the sum of its predicted density.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Images; sizes may differ.

        Returns
        -------
        counts : ndarray of shape (n_images,)
            Counts (not rounded, never negative).
        """
        check_is_fitted(self)
        sums = [self._sum(self.head_, *self._features(item)[:2])
                for item in _check_images(images)]
        # a head's density may dip below zero, and the calibration cross it: no count does
        return np.maximum(self.intercept_ + self.coef_ * np.asarray(sums, dtype=np.float64), 0.0)

    def predict_grid(self, images, level=3):
        """Objects per cell of a ``2**level x 2**level`` grid over each image, for GAME.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Images; sizes may differ.
        level : int, default=3
            Grid level (see :func:`featcell.metrics.grid_counts`).

        Returns
        -------
        cells : (n_images, 4 ** level) ndarray
            Summed density per cell, the intercept spread evenly over the cells,
            so that a row sums to :meth:`predict`'s count.
        """
        from .metrics import grid_counts

        cells = grid_counts(self.predict_density(images), level=level)
        cells = cells + self.intercept_ / cells.shape[1]
        cells[cells.sum(axis=1) < 0] = 0.0  # as predict: no count below zero
        return cells

    def count_in(self, images, regions):
        """Count the objects in regions of each image, as ilastik's counting boxes do.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Images.
        regions : list
            Per image: ``(k, 4)`` boxes ``xmin, ymin, xmax, ymax`` (0-based,
            exclusive ends, as :func:`featcell.read_voc` returns), an
            ``(M, N)`` label image (one count per label 1..max), or an ``(M, N)``
            boolean mask (one count).

        Returns
        -------
        counts : list of ndarray
            Per image, the summed density in each region (scaled by ``coef_``;
            the intercept belongs to whole images and is not added).
        """
        images = _check_images(images)
        if isinstance(regions, np.ndarray) and regions.ndim == 2 and len(images) == 1:
            regions = [regions]
        regions = list(regions)
        if len(regions) != len(images):
            raise ValueError(
                f"regions has {len(regions)} entries but there are {len(images)} images"
            )
        out = []
        for n, (density, region) in enumerate(zip(self.predict_density(images), regions)):
            out.append(_region_sums(density, region, n))
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


def _check_inside(points, shape, i):
    from .points import _check_points

    return _check_points(points, f"points[{i}]", shape)


# the "xgb" pixel head: 7 fits per default fit (2 sigmas x 3 folds + 1) must take seconds
_PIXEL_XGB = {"n_estimators": 150, "learning_rate": 0.2, "max_depth": 5, "max_bin": 64}
_OOF_ROWS = 4  # the out-of-fold sub-grids keep at most this many times n_samples rows
# zoom="auto": the defaults were chosen on VGG cells, whose neighbouring dots lie about this
# many pixels apart; dot spacings more than _ZOOM_TOLERANCE times away also try the zoom
# that brings them to it, within _AUTO_ZOOM_RANGE
_REFERENCE_SPACING = 8.5
_ZOOM_TOLERANCE = 1.5
_AUTO_ZOOM_RANGE = (0.125, 1.0)  # (enlarging would multiply the pixel maps' memory)
_ZOOM_RANGE = (0.05, 2.0)  # a zoom the user sets (2: four times the pixels' memory)
# auto-context: the previous stage's density and its Gaussian averages at these multiples
# of sigma (at least the stride): from one object's neighbourhood to a few objects around
_CONTEXT_SCALES = (0.5, 1.0, 2.0, 4.0)
_CONTEXT_XGB_TREES = 100  # the context stages' xgb heads: their density is only context
_CONTEXT_ROW_STEP = 2  # the context stages' heads learn from every other training pixel
_SKETCH_ROWS = 16_384  # rows that set the xgb heads' bins (see _HeadRows)


class _HeadRows:
    """The training rows of one stage's heads, for fitting them on all rows or all but a fold.

    XGBoost's ``hist`` heads (:func:`featcell.heads.make_head`'s ``"xgb"``) spent about
    40 % of their fit sketching the quantiles of their input (the counter's defaults
    before the bins were shared). Here the bins
    are sketched once per stage, on at most ``_SKETCH_ROWS`` random rows, and each
    row set (all rows, all but fold ``f``) is binned once with them and reused for
    every target (the ``sigma`` candidates); other heads are fitted as usual.
    """

    def __init__(self, X, fold, rng):
        self.X, self.fold, self.rng = X, fold, rng
        self.ref, self.binned = None, {}

    def fit(self, head, y, f=None):
        """``head`` fitted on the rows outside fold ``f`` (all rows for None)."""
        from xgboost import XGBRegressor

        keep = slice(None) if f is None else self.fold != f
        if (
            type(head) is not XGBRegressor
            or head.tree_method != "hist"
            or callable(head.objective)
            or head.callbacks is not None
            or head.early_stopping_rounds is not None
        ):  # not the plain "hist" regressor that the code below fits as XGBRegressor.fit does
            return head.fit(self.X[keep], y[keep])
        import xgboost

        params = head.get_xgb_params()
        n_jobs, bins = params.get("n_jobs"), params.get("max_bin") or 256
        if self.ref is None:
            pick = np.sort(self.rng.choice(len(self.X), min(len(self.X), _SKETCH_ROWS),
                                           replace=False))
            self.ref = xgboost.QuantileDMatrix(self.X[pick], max_bin=bins, nthread=n_jobs)
        if f not in self.binned:
            self.binned[f] = xgboost.QuantileDMatrix(self.X[keep], ref=self.ref, max_bin=bins,
                                                     nthread=n_jobs)
        data = self.binned[f]
        data.set_label(y[keep])
        # what XGBRegressor.fit does, on the data binned here
        head._Booster = xgboost.train(params, data, head.get_num_boosting_rounds())
        return head


def _sum_weights(grid, shape, step):
    """Per grid row and column, the weight of its value in the sum of the interpolated map.

    :func:`~featcell.features.image.upsample_linear` spreads each grid value over the
    pixels around it; the map's sum is ``rows @ grid_values @ cols`` with these weights
    (``step`` each inside the image, different along the edges).
    """
    out = []
    for m, n in zip(grid, shape):
        if step == 1:
            out.append(np.ones(m))
            continue
        position = np.clip((np.arange(n) - step // 2) / step, 0, m - 1)
        below = np.minimum(position.astype(np.intp), m - 1)
        above = np.minimum(below + 1, m - 1)
        frac = position - below
        out.append(np.bincount(below, 1 - frac, minlength=m) + np.bincount(above, frac, minlength=m))
    return out


def _systematic_subgrid(maps, shape, step, q, rng):
    """The features of a regular sub-grid of the prediction grid, for an unbiased sum.

    Every ``q``-th grid row and column from a random offset. Each grid point is kept
    with probability exactly ``1 / q**2``, so ``q**2`` times the sum of the kept
    points' densities, each times its :func:`_sum_weights`, is an unbiased estimate
    of the whole map's sum (Horvitz-Thompson; :func:`_subgrid_sum`), with little
    variance where the density is smooth at the scale of ``q * step`` pixels (a
    fraction of a percent for Gaussians of sigma ``q * step / 2`` away from the
    border, about 1 % with objects on the border too).

    Returns ``(features, weights, points)``: ``(p, n_features)`` rows, their weights
    and their (flat) indices in the grid.
    """
    grid = maps.shape[:2]
    rows, cols = _sum_weights(grid, shape, step)
    r = np.arange(int(rng.integers(q)), grid[0], q)
    c = np.arange(int(rng.integers(q)), grid[1], q)
    features = maps[r[:, None], c[None, :]].reshape(-1, maps.shape[-1])
    points = (r[:, None] * grid[1] + c[None, :]).ravel()
    return features.copy(), (q * q) * np.outer(rows[r], cols[c]).ravel(), points


def _fitting_spacing(n_points, n_images, budget):
    """The sub-grid spacing (in grid points) at which ``n_images`` grids of
    ``n_points`` points each keep at most ``budget`` points in all."""
    return max(1, math.ceil(math.sqrt(n_points * n_images / budget)))


def _subgrid_sum(model, subgrid):
    features, weights = subgrid[:2]
    if len(features) == 0:
        return 0.0
    return float((weights * np.asarray(model.predict(features), dtype=np.float64)).sum())


def _calibrated_oof_errors(found, wanted):
    """Per image, the count error of out-of-fold sums after the linear calibration,
    itself left-one-out.

    Each image's sum is calibrated by :func:`_linear_calibration` fitted on the
    other images' sums, so the errors estimate the calibrated counter on new
    images without the calibration seeing the image it corrects.
    """
    found, wanted = np.asarray(found, float), np.asarray(wanted, float)
    if len(found) < 2:
        return np.abs(found - wanted)
    errors = []
    for n in range(len(found)):
        keep = np.arange(len(found)) != n
        slope, intercept = _linear_calibration(found[keep], wanted[keep])
        errors.append(abs(intercept + slope * found[n] - wanted[n]))
    return np.array(errors)


def _clearly_lower(errors, reference):
    """Whether paired ``errors`` are lower than ``reference``'s by more than one
    standard error of their mean difference (the one-standard-error rule)."""
    difference = np.asarray(errors, float) - np.asarray(reference, float)
    if len(difference) < 2:
        return False
    return bool(difference.mean() + difference.std(ddof=1) / np.sqrt(len(difference)) < 0)


def _zoomed(image, zoom, min_side=2):
    """``image`` resized by ``zoom`` (bilinear; smoothed first when shrinking), each side
    at least ``min_side`` pixels (or as it was), as float32 in its dtype's scale ([0, 1]
    for integers); the image itself at zoom 1."""
    if zoom == 1:
        return image
    from skimage.transform import resize

    least = max(2, min_side)
    shape = tuple(max(min(side, least), round(side * zoom)) for side in image.shape[:2])
    plane = _in_unit_scale(image.astype(np.float32), image.dtype)
    return resize(plane, shape + image.shape[2:], order=1, anti_aliasing=zoom < 1,
                  preserve_range=True).astype(np.float32)


def _zoomed_points(points, original, shape):
    """Dot positions of an ``original``-sized image on its resized ``shape`` (pixel
    centres at integers, as :func:`_zoomed` maps them)."""
    if tuple(original) == tuple(shape):
        return points
    factor = np.asarray(shape, float) / np.asarray(original, float)
    moved = (points + 0.5) * factor - 0.5
    return np.minimum(np.maximum(moved, -0.5), np.asarray(shape) - 0.5 - 1e-6)


def _unzoomed(density, original):
    """A density map of a resized image, brought back to the ``original`` size with the
    same sum: bilinear, scaled by the ratio of the pixels' areas, and the remainder of
    the sum (the interpolation's) spread evenly."""
    if density.shape == tuple(original):
        return density
    from skimage.transform import resize

    back = resize(density, tuple(original), order=1, anti_aliasing=density.size > np.prod(
        original), preserve_range=True) * (density.size / np.prod(original))
    return back + (float(density.sum()) - float(back.sum())) / back.size


def _linear_calibration(found, wanted):
    """(slope, intercept) of wanted ~ found; an offset only with < 3 sums or one value."""
    found, wanted = np.asarray(found, float), np.asarray(wanted, float)
    if len(found) == 0:
        return 1.0, 0.0
    if len(found) < 3 or np.ptp(found) == 0:
        return 1.0, float(np.mean(wanted - found))
    slope, intercept = np.polyfit(found, wanted, 1)
    return float(slope), float(intercept)


def _region_sums(density, region, n):
    region = np.asarray(region)
    if region.ndim == 2 and region.shape == density.shape:
        if region.dtype == bool:
            return np.array([density[region].sum()])
        if not np.issubdtype(region.dtype, np.integer) or region.min() < 0:
            raise ValueError(f"regions[{n}] is not a label image of non-negative integers")
        return np.bincount(region.ravel(), weights=density.ravel(),
                           minlength=int(region.max()) + 1)[1:]
    if region.ndim == 2 and region.shape[1] == 4 or region.size == 0:
        boxes = region.reshape(-1, 4).astype(float)
        if not np.isfinite(boxes).all():
            raise ValueError(f"regions[{n}] holds NaN or infinite box coordinates")
        inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if inverted.any():
            raise ValueError(f"regions[{n}]: boxes {np.flatnonzero(inverted).tolist()[:5]} end "
                             "before they start; expected xmin, ymin, xmax, ymax")
        # summed-area table: every box in O(1)
        table = np.zeros((density.shape[0] + 1, density.shape[1] + 1))
        table[1:, 1:] = density.cumsum(0).cumsum(1)
        xmin, ymin, xmax, ymax = (
            np.clip(np.round(boxes[:, j]).astype(int), 0, density.shape[1 - j % 2])
            for j in range(4)
        )
        return table[ymax, xmax] - table[ymin, xmax] - table[ymax, xmin] + table[ymin, xmin]
    raise ValueError(
        f"regions[{n}] has shape {region.shape}; expected (k, 4) boxes or a mask/label image "
        f"of shape {density.shape}"
    )


class _NonNegativeCounts(RegressorMixin, BaseEstimator):
    """A regressor of counts whose predictions are never negative.

    A line fitted on counts crosses zero below the smallest count it saw: on an
    empty field, ridge regression on image features predicted -10 cells. The
    prediction is clipped at 0, which can only bring it closer to any count.

    Parameters
    ----------
    estimator : regressor
        The regressor (cloned in ``fit``).

    Attributes
    ----------
    estimator_ : regressor
        The fitted regressor.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> from featcell.counting import _NonNegativeCounts
    >>> model = _NonNegativeCounts(LinearRegression()).fit([[1], [2], [3]], [5, 10, 15])
    >>> model.predict([[0], [-1], [4]]).round(6).tolist()
    [0.0, 0.0, 20.0]
    """

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y):
        """Fit the regressor.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Counts.

        Returns
        -------
        self : _NonNegativeCounts
        """
        if not hasattr(self.estimator, "fit") or not hasattr(self.estimator, "predict"):
            raise TypeError(f"estimator={self.estimator!r}; expected a regressor")
        self.estimator_ = clone(self.estimator).fit(X, y)
        return self

    def predict(self, X):
        """The regressor's counts, clipped at 0.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        counts : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return np.maximum(np.asarray(self.estimator_.predict(X), dtype=np.float64), 0.0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = get_tags(self.estimator).input_tags.allow_nan
        return tags


def make_counter(method="regression", head=None, *, random_state=0, **params):
    """Build a cell counter: ``fit(images, counts)``, ``predict(images)``.

    Parameters
    ----------
    method : {"segmentation", "regression", "cnn", "density", "cnn_density"}, \
default="regression"
        ``"segmentation"``: a :class:`SegmentationCounter` (count the objects of a
        classical segmentation, linearly calibrated on the training images);
        ``"regression"``: :class:`ImageFeatures` → ``StandardScaler`` → a
        regression head; ``"cnn"``: :class:`featcell.cnn.CNNEmbedding` →
        ``StandardScaler`` → a regression head; ``"density"``: a
        :class:`DensityCounter`, fitted on dot annotations (``fit(images,
        points)``) rather than counts; ``"cnn_density"``: a
        :class:`featcell.cnn.CNNDensityCounter`, a small fully-convolutional
        network trained on the dots (torch to train, onnxruntime to run).
    head : str, optional
        Regression head, by name of :func:`featcell.heads.make_head` (``"lr"``,
        ``"rf"``, ``"svm"``, ``"xgb"``, ``"mlp"``). Not for ``"segmentation"`` and
        ``"cnn_density"``, which have no head (a ``ValueError``).
        By default ridge regression (``"lr"``) for ``"regression"`` and ``"cnn"``,
        which suits features that grow linearly with the count and, unlike trees,
        extrapolates beyond the counts seen in training; for ``"density"`` the
        pixel regressor of :class:`DensityCounter` (``"xgb"``). The head's counts
        are clipped at 0 (the pipeline's last step holds it as ``estimator``): a
        line crosses zero below the smallest count it saw.
    random_state : int or None, default=0
        Seed of the head.
    **params
        Parameters of the first step: :class:`SegmentationCounter`,
        :class:`ImageFeatures` or ``CNNEmbedding`` (for example ``channel=2`` and
        ``n_jobs=-1``), or of :class:`DensityCounter`.

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
    if head is not None and method in ("segmentation", "cnn_density"):
        raise ValueError(f"head={head!r}: the {method!r} counter has no regression head")
    if method == "segmentation":
        return SegmentationCounter(**params)
    if method == "density":
        if head is not None:
            params["head"] = head
        return DensityCounter(random_state=random_state, **params)
    if method == "cnn_density":
        from .cnn import CNNDensityCounter

        return CNNDensityCounter(random_state=random_state, **params)
    regressor = _NonNegativeCounts(
        make_head("lr" if head is None else head, "regression", random_state=random_state))
    if method == "regression":
        return make_pipeline(ImageFeatures(**params), StandardScaler(), regressor)
    from .cnn import CNNEmbedding

    return make_pipeline(CNNEmbedding(**params), StandardScaler(), regressor)
