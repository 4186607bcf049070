"""Classical segmentation of nuclei and cells for images that come without masks.

:func:`segment` turns a whole image into an instance label image (threshold, hole
filling, small-object removal and a seeded watershed that splits touching nuclei);
:func:`segment_object` finds the one dominant cell inside a small window such as a
bounding box or an imaging-flow-cytometry crop; :func:`segment_cells` grows whole
cells from nuclei, as CellProfiler's IdentifySecondaryObjects does.
"""

from __future__ import annotations

import heapq
import math
import numbers

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, morphology, segmentation
from skimage.feature import peak_local_max

from .features._kernels import kernel

__all__ = ["segment", "segment_cells", "segment_object"]

_METHODS = ("otsu", "multiotsu", "li", "triangle", "local")
_SEEDS = ("distance", "intensity")
_LUMINANCE = np.array([0.2125, 0.7154, 0.0721])  # as skimage.color.rgb2gray
_MIN_SOLIDITY = 0.8  # segment_object: below this, an object is an open rim and gets its hull


def _check_dtype(image, name):
    """Raise a TypeError unless ``image`` holds real numbers or booleans (not complex,
    objects or strings: no intensities)."""
    if image.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {image.dtype}; expected a real numeric array")


def _check_finite(image, name):
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {image.shape}); expected a non-empty image")
    _check_dtype(image, name)
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or infinite values; expected finite intensities")


def _to_grey(image, channel, scale=False):
    """Return a 2-D float64 image from (M, N) or (M, N, C) input; float intensities near
    float64's limit are divided by their largest magnitude (:func:`_tame`). ``scale``: also
    return that divisor (1.0 when none)."""
    image = np.asarray(image)
    _check_finite(image, "image")
    if image.ndim == 2:
        if channel not in (None, 0):
            raise ValueError(f"channel={channel!r} given but image is 2-D grey; use channel=None")
        plane = image
    elif image.ndim != 3 or (image.shape[-1] > 4 and channel is None):
        raise ValueError(
            f"image has shape {image.shape}; expected a 2-D (M, N) grey image or an (M, N, C) "
            "image with C <= 4 channels last, or any C with channel= (3-D stacks are not "
            "supported: segment each plane)"
        )
    elif channel is not None:
        n_channels = image.shape[-1]
        if isinstance(channel, bool) or not isinstance(channel, numbers.Integral) or not (
                -n_channels <= channel < n_channels):
            raise ValueError(
                f"channel={channel!r} is not a channel index for an image with {n_channels} "
                "channels"
            )
        plane = image[..., channel]
    else:
        plane = image[..., 0] if image.shape[-1] == 1 else image
    values = plane.astype(np.float64, copy=False)
    values, divisor = _tame(values) if plane.dtype.kind == "f" else (values, 1.0)
    if values.ndim == 3:  # luminance of RGB(A), in the scale of the input; else the mean
        values = values[..., :3] @ _LUMINANCE if values.shape[-1] in (3, 4) else values.mean(-1)
    return (values, divisor) if scale else values


# float intensities beyond this are divided by their largest magnitude first: differences and
# squares of values near float64's limit overflow (segmentation needs their ratios only)
_HUGE = 1e150


def _tame(values):
    """``(values, 1.0)``, or float64 ``values`` divided by their largest magnitude and that
    divisor when it exceeds ``_HUGE``."""
    largest = float(np.abs(values).max(initial=0.0))
    return (values / largest, largest) if largest > _HUGE else (values, 1.0)


def _threshold(smooth, method, block_size, offset):
    if method == "otsu":
        return smooth > filters.threshold_otsu(smooth)
    if method == "multiotsu":
        try:  # three classes need three occupied histogram bins
            return smooth > filters.threshold_multiotsu(smooth, classes=3)[-1]
        except ValueError:  # two levels: the brightest class is Otsu's
            return smooth > filters.threshold_otsu(smooth)
    if method == "li":
        return smooth > filters.threshold_li(smooth)
    if method == "triangle":
        return smooth > filters.threshold_triangle(smooth)
    # local: adaptive mean threshold, but never below the global Otsu level's floor of the
    # background so that flat dark regions do not turn into noise objects
    local = filters.threshold_local(smooth, block_size=block_size, offset=-offset)
    floor = 0.5 * filters.threshold_otsu(smooth)
    return (smooth > local) & (smooth > floor)


def _remove_small(labels, min_size):
    """Drop labelled components with fewer than ``min_size`` pixels (vectorised)."""
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def _typical_area(areas):
    """Area of a single object: the median of the smaller half of the objects' areas.

    The smaller half is mostly single nuclei; clumps inflate the larger half.
    """
    areas = np.asarray(areas, dtype=np.float64)
    return float(np.median(areas[areas <= np.median(areas)]))


def _auto_min_distance(mask):
    """Half the typical nucleus radius, from the areas of the foreground components."""
    labels, n = ndi.label(mask)
    if n == 0:
        return 1
    radius = np.sqrt(_typical_area(np.bincount(labels.ravel())[1:]) / np.pi)
    return max(2, round(0.5 * radius))


def _check_segment_params(*, method="otsu", seed="distance", invert="auto", min_size=16,
                          min_distance="auto", sigma=1.0, block_size=51, channel=None,
                          offset=0.0, compactness=0.0):
    """Raise a ValueError naming the first of :func:`segment`'s parameters out of range
    (``channel``: its type; its range needs the image)."""
    if channel is not None and (isinstance(channel, bool)
                                or not isinstance(channel, numbers.Integral)):
        raise ValueError(f"channel={channel!r}; expected None or a channel index")
    if method not in _METHODS:
        raise ValueError(f"method={method!r} is not supported; expected one of {_METHODS}")
    if seed not in _SEEDS:
        raise ValueError(f"seed={seed!r} is not supported; expected one of {_SEEDS}")
    if not (invert == "auto" or isinstance(invert, (bool, np.bool_))):
        raise ValueError(f"invert={invert!r}; expected 'auto', True or False")
    if not isinstance(min_size, numbers.Integral) or min_size < 0:
        raise ValueError(f"min_size={min_size!r}; expected a non-negative integer")
    if not (
        min_distance == "auto" or (isinstance(min_distance, numbers.Integral) and min_distance >= 1)
    ):
        raise ValueError(f"min_distance={min_distance!r}; expected 'auto' or an integer >= 1")
    if not isinstance(sigma, numbers.Real) or not 0 <= sigma < np.inf:
        raise ValueError(f"sigma={sigma!r}; expected a non-negative number")
    if method == "local" and (
        not isinstance(block_size, numbers.Integral) or block_size < 3 or block_size % 2 == 0
    ):
        raise ValueError(f"block_size={block_size!r}; expected an odd integer >= 3")
    for name, value, least in (("offset", offset, -np.inf), ("compactness", compactness, 0.0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                least <= value < np.inf):
            raise ValueError(f"{name}={value!r}; expected a finite number"
                             + (" >= 0" if least == 0 else ""))


def segment(
    image,
    *,
    method="otsu",
    sigma=1.0,
    min_size=16,
    min_distance="auto",
    split_touching=True,
    seed="distance",
    channel=None,
    invert="auto",
    block_size=51,
    offset=0.0,
    compactness=0.0,
):
    """Segment nuclei (or other blob-like objects) into an instance label image.

    Smooth, threshold, fill holes, drop small objects, then split touching objects
    with a watershed seeded at the maxima of the distance transform (or of the
    smoothed intensity).

    Parameters
    ----------
    image : (M, N) or (M, N, C) array_like
        Grey image, or colour/multichannel image with channels last (C <= 4, or any
        number with ``channel``).
    method : {"otsu", "multiotsu", "li", "triangle", "local"}, default="otsu"
        Foreground threshold. ``"multiotsu"`` keeps the brightest of three Otsu
        classes (after inversion: the darkest), for bright-field images where
        background, cytoplasm and nuclei form three populations. ``"local"`` is
        an adaptive mean threshold over ``block_size`` windows, for uneven
        illumination.
    sigma : float, default=1.0
        Standard deviation of the Gaussian smoothing applied before thresholding,
        in pixels; 0 disables smoothing.
    min_size : int, default=16
        Objects with fewer pixels are removed (before and after the watershed).
    min_distance : int or "auto", default="auto"
        Smallest distance in pixels between two watershed seeds. ``"auto"`` uses
        half the typical object radius, estimated from the median foreground
        component area.
    split_touching : bool, default=True
        Split touching objects with a seeded watershed; when False, connected
        components are returned.
    seed : {"distance", "intensity"}, default="distance"
        Map whose local maxima seed the watershed: the smoothed Euclidean distance
        transform of the mask (shape-based, good for round nuclei) or the smoothed
        intensity (good when nuclei are brighter in their centres).
    channel : int, optional
        Channel to segment for (M, N, C) input. By default colour images are
        converted to luminance and other multichannel images are averaged.
    invert : "auto" or bool, default="auto"
        True when objects are darker than the background (bright-field, H&E).
        ``"auto"`` inverts when the image median lies above the Otsu threshold,
        that is when most of the field is bright.
    block_size : int, default=51
        Odd window size in pixels for ``method="local"``.
    offset : float, default=0.0
        For ``method="local"``, how far (in units of the image scaled to [0, 1])
        a pixel must exceed its local mean to be foreground.
    compactness : float, default=0.0
        Watershed compactness; larger values give more regular objects.

    Returns
    -------
    labels : (M, N) ndarray of int32
        Instance labels 1..n, 0 for background.

    Raises
    ------
    ValueError
        For empty input, NaN or infinite values, 3-D stacks or a bad parameter.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.segmentation import segment
    >>> yy, xx = np.mgrid[:64, :64]
    >>> image = ((yy - 20) ** 2 + (xx - 20) ** 2 < 64) | ((yy - 44) ** 2 + (xx - 40) ** 2 < 81)
    >>> labels = segment(image.astype(float))
    >>> int(labels.max())
    2
    """
    _check_segment_params(method=method, seed=seed, invert=invert, min_size=min_size,
                          min_distance=min_distance, sigma=sigma, block_size=block_size,
                          channel=channel, offset=offset, compactness=compactness)
    grey = _to_grey(image, channel)
    low, high = grey.min(), grey.max()
    if high == low:
        return np.zeros(grey.shape, dtype=np.int32)
    grey = (grey - low) / (high - low)
    smooth = filters.gaussian(grey, sigma=sigma) if sigma > 0 else grey

    if invert == "auto":
        invert = bool(np.median(smooth) > filters.threshold_otsu(smooth))
    if invert:
        smooth = 1.0 - smooth

    mask = ndi.binary_fill_holes(_threshold(smooth, method, block_size, offset))
    components, _ = ndi.label(mask)
    mask = _remove_small(components, min_size)
    if not mask.any():
        return np.zeros(grey.shape, dtype=np.int32)
    if not split_touching:
        labels, _ = ndi.label(mask)
        return labels.astype(np.int32)

    if min_distance == "auto":
        min_distance = _auto_min_distance(mask)
    min_distance = min(int(min_distance), max(mask.shape))  # (peak_local_max's footprint)
    if seed == "distance":
        # smoothing the distance map merges the ridge plateaus of elongated nuclei
        height = filters.gaussian(ndi.distance_transform_edt(mask), sigma=1.0)
    else:
        height = filters.gaussian(smooth, sigma=max(1.0, min_distance / 2))
    components, _ = ndi.label(mask)
    peaks = peak_local_max(
        height, min_distance=min_distance, labels=components, exclude_border=False
    )
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = segmentation.watershed(-height, markers, mask=mask, compactness=compactness)
    labels = np.where(_remove_small(labels, min_size), labels, 0)
    labels, _, _ = segmentation.relabel_sequential(labels)
    return labels.astype(np.int32)


def _ellipse(shape, box):
    """The ellipse inscribed in ``box`` (y0, x0, y1, x1), as a mask of ``shape``."""
    y0, x0, y1, x1 = box
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    cy, cx = (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2
    ry, rx = max((y1 - y0) / 2, 0.5), max((x1 - x0) / 2, 0.5)
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _check_box(box, shape):
    try:
        y0, x0, y1, x1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box={box!r}; expected (y0, x0, y1, x1) integers") from None
    if not (0 <= y0 < y1 <= shape[0] and 0 <= x0 < x1 <= shape[1]):
        raise ValueError(
            f"box={box!r} is not a non-empty region of the window of shape {shape}; "
            "expected 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w"
        )
    return y0, x0, y1, x1


def segment_object(window, *, box=None, sigma=None, min_contrast=3.0):
    """Mask of the single dominant cell inside a small window.

    Works for boxes and flow-cytometry crops in any modality, including
    bright-field where a cell can be darker or brighter than its surroundings:
    each channel is compared with the median of the background (the window's
    border, or everything outside ``box``) in units of the background's robust
    spread, the channels' deviations are combined and Otsu-thresholded (with the
    deviation capped so that a bright spot does not hide a darker rim), gaps in the
    rim are closed with a disk scaled to the box, holes are filled and the component
    nearest the centre is kept; a component far from convex (a rim open on one
    side) is replaced by its convex hull.

    Parameters
    ----------
    window : (h, w) or (C, h, w) array_like of float
        The window; channels first when several.
    box : tuple of int (y0, x0, y1, x1), optional
        The object's box inside the window (``y1``, ``x1`` exclusive), when the
        window adds context around it. The background is then measured outside
        the box and the mask is confined to it. Give one for tight boxes (such
        as hand-drawn Pascal VOC boxes), whose border runs along the cell's
        edge rather than through background.
    sigma : float, optional
        Gaussian smoothing in pixels; defaults to ``max(h, w) / 40`` (at least 0.5).
    min_contrast : float, default=3.0
        Smallest deviation from the background, in units of the background's
        noise, that counts as cell.

    Returns
    -------
    mask : (h, w) ndarray of bool
        The cell. When no cell stands out, the ellipse inscribed in the box
        (or the window).

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.segmentation import segment_object
    >>> yy, xx = np.mgrid[:40, :40]
    >>> cell = (yy - 20) ** 2 + (xx - 18) ** 2 < 100
    >>> window = 100.0 - 30.0 * cell + np.random.default_rng(0).normal(0, 2, cell.shape)
    >>> mask = segment_object(window)
    >>> bool(mask[20, 18]), bool(mask[0, 0]), bool(abs(int(mask.sum()) - 305) < 20)
    (True, False, True)
    >>> tight = segment_object(window, box=(10, 8, 30, 28))  # a box touching the cell
    >>> bool(abs(int(tight.sum()) - 305) < 20)
    True
    """
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, numbers.Real)
                              or not 0 <= sigma < np.inf):
        raise ValueError(f"sigma={sigma!r}; expected None or a non-negative number")
    if isinstance(min_contrast, bool) or not isinstance(min_contrast, numbers.Real) or not (
            0 <= min_contrast < np.inf):
        raise ValueError(f"min_contrast={min_contrast!r}; expected a non-negative number")
    window = np.asarray(window)
    _check_finite(window, "window")
    if window.ndim == 2:
        window = window[np.newaxis]
    if window.ndim != 3:
        raise ValueError(f"window has shape {window.shape}; expected (h, w) or (C, h, w)")
    window = _tame(window.astype(np.float64, copy=False))[0]
    h, w = window.shape[1:]
    box = (0, 0, h, w) if box is None else _check_box(box, (h, w))
    y0, x0, y1, x1 = box
    inside = np.zeros((h, w), dtype=bool)
    inside[y0:y1, x0:x1] = True
    if inside.all():  # no context: the window's border stands for the background
        background = ~ndi.binary_erosion(inside, border_value=0)
    else:
        background = ~inside
    if min(y1 - y0, x1 - x0) < 3:
        return _ellipse((h, w), box)
    if sigma is None:
        sigma = max(0.5, max(h, w) / 40)

    score = np.zeros((h, w))
    for plane in window:
        plane = filters.gaussian(plane, sigma=sigma) if sigma > 0 else plane
        edge = plane[background]
        centre = np.median(edge)
        spread = 1.4826 * np.median(np.abs(edge - centre))
        if spread <= 0:  # a background flat but for a few pixels; else noise-free, where a
            # hundredth of the window's range stands for the noise (a blur's faint halo is not
            # cell)
            spread = edge.std() or 0.01 * np.ptp(plane)
        if spread <= 0:
            continue
        score += ((plane - centre) / spread) ** 2
    score = np.sqrt(score)
    if score[inside].max() < min_contrast:
        return _ellipse((h, w), box)

    # Otsu on the score capped at a high percentile of the cell's pixels: uncapped, a very
    # bright spot (the lensing centre of a round bright-field cell) pulls the threshold far
    # above a dark rim that still stands tens of noise units off the background, the rim is
    # lost and the mask shrinks to the spot; a uniform cell sits at its plateau anyway
    cap = np.percentile(score[inside & (score >= min_contrast)], 70)
    level = filters.threshold_otsu(np.minimum(score, cap))
    mask = score > max(level, min_contrast)
    # close gaps in a broken rim with a disk scaled to the box, so that holes can be filled;
    # the padding keeps the closing from eroding objects at the window's edge
    r = max(1, round(min(y1 - y0, x1 - x0) / 12))
    padded = np.pad(mask & inside, r + 1)
    mask |= ndi.binary_closing(padded, structure=morphology.disk(r))[r + 1 : -r - 1, r + 1 : -r - 1]
    mask = ndi.binary_fill_holes(mask & inside)
    labels, n = ndi.label(mask)
    if n == 0:
        return _ellipse((h, w), box)
    if n > 1:
        areas = np.bincount(labels.ravel())[1:]
        # distance from the box centre to each component's nearest pixel
        yy, xx = np.nonzero(labels)
        dist = np.hypot(yy - (y0 + y1 - 1) / 2, xx - (x0 + x1 - 1) / 2)
        nearest = np.full(n, np.inf)
        np.minimum.at(nearest, labels[yy, xx] - 1, dist)
        # ignore specks, then prefer the nearest component and, on ties, the largest
        nearest[areas < 0.1 * areas.max()] = np.inf
        best = np.lexsort((-areas, np.round(nearest)))[0] + 1
        mask = labels == best
    # a rim open on one side (a crescent) has no hole to fill: take its convex hull when
    # the object is far from convex (a whole cell, even a kidney-shaped one, is not)
    hull = morphology.convex_hull_image(mask) & inside
    if mask.sum() < _MIN_SOLIDITY * hull.sum():
        mask = hull
    return mask


# ---------------------------------------------------------------------- cells from nuclei
def segment_cells(image, nuclei, *, regularization=0.05, threshold="otsu", log_transform=False,
                  fill_holes=True, channel=None):
    """Grow whole cells from their nuclei, as CellProfiler's IdentifySecondaryObjects.

    The propagation method (Jones, Carpenter & Golland, 2005): every nucleus
    spreads over the foreground of a cell stain along the shortest paths of a
    distance that combines, at each step between neighbouring pixels, the
    intensity change around them with ``regularization`` times the step
    length (their root sum of squares). Cells therefore stop at dark gaps
    and at the bright-to-dim edges between touching cells, and fall back to
    plain distance (a Voronoi split) where the stain is flat. The foreground is the image above ``threshold``
    (Otsu by default); holes enclosed by one cell are filled.

    Parameters
    ----------
    image : (M, N) or (M, N, C) ndarray
        The cell stain (cytoplasm or membrane marker). With channels, pick one
        with ``channel`` (else their luminance or mean is used, as in
        :func:`segment`).
    nuclei : (M, N) ndarray of int
        Instance labels of the nuclei (0 = background), e.g. from
        :func:`segment` or a label file.
    regularization : float, default=0.05
        CellProfiler's regularization factor lambda, ``>= 0``: small values
        follow intensity edges, large values give equal-distance (Voronoi)
        borders. The intensity changes it is weighed against are those of an
        integer image scaled to [0, 1] by its dtype's maximum, as CellProfiler
        loads images (float images as they are).
    threshold : "otsu" or float, default="otsu"
        Foreground of the cell stain: Otsu's threshold of the image, or a
        number in the image's own units.
    log_transform : bool, default=False
        Compute Otsu's threshold on the logarithm of the intensities
        (CellProfiler's "log transform before thresholding"): for stains
        that are bright at the cell edge and dim inside, such as membrane
        or cortical actin stains, whose plain Otsu threshold keeps only the
        edges.
    fill_holes : bool, default=True
        Fill background holes enclosed by a single cell.
    channel : int, optional
        Channel of a multi-channel ``image`` to use.

    Returns
    -------
    cells : (M, N) ndarray of int32
        Cell labels. Every cell has the id of the nucleus it grew from, and
        contains it; a nucleus outside the foreground stays a cell of its own
        (int64 when a nucleus id exceeds int32's range).

    See Also
    --------
    segment : nuclei (primary objects) from a whole image.
    featcell.CellSet.from_compartments : measure nuclei, cells and cytoplasm.

    Notes
    -----
    The step cost, the 8-connected neighbourhood and the seeding follow
    ``centrosome.propagate.propagate``, which CellProfiler calls; the test
    suite checks the labels against it.

    References
    ----------
    .. [1] T. R. Jones, A. Carpenter and P. Golland, "Voronoi-Based
       Segmentation of Cells on Image Manifolds", CVBIA 2005, LNCS 3765,
       pp. 535-543.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.segmentation import segment_cells
    >>> image = np.zeros((20, 40)); image[4:16, 2:18] = 1.0; image[4:16, 22:38] = 0.6
    >>> nuclei = np.zeros((20, 40), np.int32); nuclei[9:11, 9:11] = 1; nuclei[9:11, 29:31] = 2
    >>> cells = segment_cells(image, nuclei)
    >>> [int((cells == k).sum()) for k in (1, 2)]
    [192, 192]
    """
    grey, divisor = _to_grey(image, channel, scale=True)
    nuclei = np.asarray(nuclei)
    if nuclei.dtype == bool or not np.issubdtype(nuclei.dtype, np.integer):
        raise TypeError(
            f"nuclei must be an integer label image (0 = background), got dtype {nuclei.dtype}"
        )
    if nuclei.shape != grey.shape:
        raise ValueError(f"nuclei has shape {nuclei.shape} but image has shape {grey.shape}")
    if nuclei.size and nuclei.min() < 0:
        raise ValueError("nuclei contains negative labels; expected 0 = background, >0 = object")
    if isinstance(regularization, bool) or not isinstance(regularization, numbers.Real) or not (
            0 <= regularization < np.inf):
        raise ValueError(f"regularization must be a finite number >= 0, got {regularization!r}")
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise ValueError(f"threshold must be 'otsu' or a number, got {threshold!r}")
        values = np.log1p(grey - grey.min()) if log_transform else grey
        level = filters.threshold_otsu(values) if np.ptp(values) > 0 else values.flat[0]
        foreground = values > level
    elif isinstance(threshold, numbers.Real) and not isinstance(threshold, bool):
        foreground = grey > float(threshold) / divisor  # (the image's own units)
    else:
        raise TypeError(f"threshold must be 'otsu' or a number, got {type(threshold).__name__}")
    if np.issubdtype(np.asarray(image).dtype, np.integer):  # CellProfiler's [0, 1] scale,
        grey = grey / np.iinfo(np.asarray(image).dtype).max  # in which lambda is set
    from .cells import _compact_labels

    compact, present = _compact_labels(nuclei)  # ids above int32: numbered 1, 2, ... here
    cells = _propagate(grey, compact.astype(np.int32), foreground, float(regularization))
    if fill_holes:
        cells = _fill_enclosed_holes(cells)
    if present is None:
        return cells
    ids = present[cells]
    return ids.astype(np.int32) if ids.max(initial=0) <= np.iinfo(np.int32).max else ids


def _propagate(image, labels, mask, weight):
    """Labels spread through ``mask`` from the labelled pixels inside it (centrosome.propagate)."""
    seeds = np.argwhere((labels > 0) & mask)
    out = _propagate_kernel(np.ascontiguousarray(image, np.float64), labels,
                            np.ascontiguousarray(mask), seeds, weight)
    out[labels > 0] = labels[labels > 0]
    return out


@kernel
def _propagate_kernel(image, labels, mask, seeds, weight):
    """Dijkstra's shortest paths from the seeds over the image manifold.

    ``centrosome/_propagate.c``: a step to one of the 8 neighbours has the
    length ``hypot(change, weight * step)``, where ``change`` is the summed
    absolute difference of the two pixels' 3x3 neighbourhoods (clamped at the
    image edge) and ``step`` the Euclidean step (1 or sqrt 2); every pixel of
    ``mask`` takes the label of its nearest seed.
    """
    height, width = image.shape
    out = np.zeros((height, width), np.int32)
    distance = np.full((height, width), np.inf)
    heap = [(0.0, 0, 0)]
    heap.pop()
    for k in range(seeds.shape[0]):
        i, j = seeds[k, 0], seeds[k, 1]
        distance[i, j] = 0.0
        out[i, j] = labels[i, j]
        heapq.heappush(heap, (0.0, i, j))
    steps = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
    while heap:
        d, i, j = heapq.heappop(heap)
        if d > distance[i, j]:
            continue
        for di, dj in steps:
            ni, nj = i + di, j + dj
            if ni < 0 or nj < 0 or ni >= height or nj >= width or not mask[ni, nj]:
                continue
            change = 0.0
            for oi in range(-1, 2):
                for oj in range(-1, 2):
                    a = image[min(max(i + oi, 0), height - 1), min(max(j + oj, 0), width - 1)]
                    b = image[min(max(ni + oi, 0), height - 1), min(max(nj + oj, 0), width - 1)]
                    change += abs(a - b)
            new = d + math.hypot(change, weight * math.sqrt(di * di + dj * dj))
            if new < distance[ni, nj]:
                distance[ni, nj] = new
                out[ni, nj] = out[i, j]
                heapq.heappush(heap, (new, ni, nj))
    return out


def _fill_enclosed_holes(labels):
    """Give every background region enclosed by one object that object's label."""
    holes, n = ndi.label(labels == 0)
    if n == 0:
        return labels
    edge = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
    square = np.ones((3, 3), bool)
    highest = ndi.grey_dilation(labels, footprint=square)
    lowest = ndi.grey_erosion(np.where(labels > 0, labels, np.iinfo(np.int32).max),
                              footprint=square)
    index = np.arange(1, n + 1)
    above = ndi.maximum(highest, holes, index)
    below = ndi.minimum(lowest, holes, index)
    fill = np.zeros(n + 1, np.int32)
    enclosed = (above == below) & (above > 0)
    fill[1:][enclosed] = above[enclosed]
    fill[edge] = 0
    return np.where(holes > 0, fill[holes], labels).astype(np.int32)
