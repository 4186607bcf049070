"""Haralick texture features, as CellProfiler's MeasureTexture computes them.

Each cell's intensities are quantised with CellProfiler's fixed mapping
(:func:`quantize`), its symmetric co-occurrence matrices are counted in four
directions (:func:`~featcell.features._kernels.cooccurrence.cooccurrence_matrices`)
and each matrix is reduced to the 13 features of Haralick et al. as mahotas
defines them (:func:`~featcell.features._kernels.cooccurrence.haralick_features`).
"""

from __future__ import annotations

import numpy as np

from ._kernels.cooccurrence import cooccurrence_matrices, haralick_features

__all__ = ["HARALICK_FEATURES", "haralick", "haralick_names", "quantize"]

HARALICK_FEATURES = (
    "AngularSecondMoment", "Contrast", "Correlation", "Variance", "InverseDifferenceMoment",
    "SumAverage", "SumVariance", "SumEntropy", "Entropy", "DifferenceVariance",
    "DifferenceEntropy", "InfoMeas1", "InfoMeas2",
)  # fmt: skip
# (dy, dx) of CellProfiler's (and mahotas') directions _00, _01, _02, _03
DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))


def quantize(values, gray_levels=256):
    """Quantise intensities to ``gray_levels`` levels exactly as CellProfiler does.

    ``skimage.util.img_as_ubyte`` (``rint(x * 255)`` in the input's float
    precision), then, for ``gray_levels < 256``, the fixed rescaling of
    ``[0, 255]`` to ``[0, gray_levels - 1]`` with truncation. Intensities
    outside ``[0, 1]`` are clipped (CellProfiler refuses them).

    Parameters
    ----------
    values : ndarray of float
        Intensities, nominally in [0, 1].
    gray_levels : int, default=256
        Number of levels, 2 to 256.

    Returns
    -------
    ndarray of uint8
        Levels ``0 .. gray_levels - 1``, same shape as ``values``.

    Examples
    --------
    >>> import numpy as np
    >>> quantize(np.array([0.0, 0.5, 1.0], np.float32)).tolist()
    [0, 128, 255]
    >>> quantize(np.array([0.0, 0.5, 1.0], np.float32), gray_levels=8).tolist()
    [0, 3, 7]
    """
    values = np.asarray(values)
    dtype = values.dtype if values.dtype in (np.float32, np.float64) else np.float64
    levels = np.rint(np.multiply(values, 255, dtype=dtype))
    levels = np.clip(levels, 0, 255).astype(np.uint8)
    if gray_levels != 256:
        levels = (levels / 255.0 * (gray_levels - 1)).astype(np.uint8)
    return levels


def haralick_names(channel, scales, gray_levels):
    """Column names, ``Texture_<Feature>_<Channel>_<scale>_<direction>_<gray_levels>``."""
    return [
        f"Texture_{feature}_{channel}_{scale}_{d:02d}_{gray_levels}"
        for scale in scales
        for d in range(len(DIRECTIONS))
        for feature in HARALICK_FEATURES
    ]


def haralick(pixels, values, channel, scales, gray_levels=256):
    """Haralick features of every cell per pixel-pair distance in ``scales`` and direction.

    ``pixels`` are the cells' :class:`CellPixels`, ``values`` their
    intensities. Returns the columns of :func:`haralick_names`; a cell with
    no pair of pixels in some direction at a scale (too narrow, one pixel,
    all at level 0) gets NaN for every feature at that scale, as in
    CellProfiler.
    """
    levels = quantize(values, gray_levels)
    n, n_dir = pixels.n, len(DIRECTIONS)
    qmax = pixels.reduce(np.maximum, levels, empty=0, dtype=np.int64)
    qmin = pixels.reduce(np.minimum, np.where(levels > 0, levels, 255), empty=0, dtype=np.int64)
    qmin = np.minimum(qmin, qmax)  # a cell without non-zero levels has no pairs anyway
    blocks = []  # per scale: (n, directions x features), in the order of haralick_names
    for scale in scales:
        offsets = np.array(DIRECTIONS, np.int64) * scale
        matrices = cooccurrence_matrices(
            levels, pixels.bounds, pixels.row, pixels.col, pixels.shapes, offsets
        )
        features = haralick_features(*matrices, qmin, qmax, n_dir).reshape(n, n_dir, -1)
        no_pairs = np.diff(matrices[0]).reshape(n, n_dir) == 0
        features[no_pairs.any(axis=1)] = np.nan  # a direction without pairs: NaN at this scale
        blocks.append(features.reshape(n, -1))
    return dict(zip(haralick_names(channel, scales, gray_levels), np.hstack(blocks).T))
