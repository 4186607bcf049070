"""Local binary pattern histograms: scikit-image's uniform LBP, per cell."""

from __future__ import annotations

import numpy as np

from ._kernels.lbp import uniform_lbp

__all__ = ["lbp", "lbp_names", "local_binary_pattern"]


def _taps(points, radius):
    """The pixels and bilinear weights of every LBP neighbour, as scikit-image places them.

    Neighbour ``p`` sits at ``(-radius sin(2 pi p / points), radius cos(2 pi
    p / points))``, rounded to 5 decimals.
    """
    angles = 2 * np.pi * np.arange(points) / points
    ys = np.round(-radius * np.sin(angles), 5)
    xs = np.round(radius * np.cos(angles), 5)
    y0, x0 = np.floor(ys), np.floor(xs)
    fy, fx = ys - y0, xs - x0
    dy = np.stack([y0, y0, y0 + 1, y0 + 1], axis=1).astype(np.int64)
    dx = np.stack([x0, x0 + 1, x0, x0 + 1], axis=1).astype(np.int64)
    weight = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], axis=1)
    return dy, dx, weight


def local_binary_pattern(image, points=8, radius=1.0):
    """Rotation-invariant uniform local binary patterns, translation-invariant.

    scikit-image's ``local_binary_pattern(image, points, radius,
    method="uniform")``: neighbour ``p`` sits at ``(-radius sin(2 pi p /
    points), radius cos(2 pi p / points))`` (rounded to 5 decimals), its
    value is interpolated bilinearly (0 outside the image), and its bit is
    set when it is not below the centre. Codes ``0 .. points`` count the set
    bits of patterns with at most two bit changes along ``p = 0 .. points -
    1``; other patterns get ``points + 1``. scikit-image interpolates at
    absolute coordinates, so its code for a neighbour that ties with the
    centre depends on where the pixel lies; here ties always set the bit.

    Parameters
    ----------
    image : (H, W) ndarray of float
    points : int, default=8
    radius : float, default=1.0

    Returns
    -------
    (H, W) ndarray of uint8
        The code of every pixel.

    Examples
    --------
    >>> import numpy as np
    >>> codes = local_binary_pattern(np.full((5, 5), 0.3))
    >>> int(codes[2, 2])  # a flat region: every neighbour ties with the centre
    8
    """
    image = np.asarray(image, dtype=np.float64)
    H, W = image.shape
    rows, cols = np.divmod(np.arange(H * W, dtype=np.int32), np.int32(max(W, 1)))
    codes = uniform_lbp(
        image.ravel(),
        np.zeros(1, np.int64),
        np.array([[H, W]], np.intp),
        np.array([0, H * W], np.int64),
        rows,
        cols,
        *_taps(points, radius),
    )
    return codes.reshape(H, W)


def lbp_names(channel, points, radius):
    """Column names, ``Texture_LBP_<bin>_<Channel>_<points>_<radius>``."""
    return [f"Texture_LBP_{b}_{channel}_{points}_{radius:g}" for b in range(points + 2)]


def lbp(pixels, channel_index, channel, points=8, radius=1.0):
    """Histogram of every cell's uniform LBP codes, normalised to sum 1.

    Neighbours come from the cell's crop (0 beyond it), so they are the
    whole image's when the crop margin is at least ``radius + 1``. Returns
    the columns of :func:`lbp_names` for channel ``channel_index``.
    """
    codes = uniform_lbp(
        pixels.flat.values[channel_index].astype(np.float64),
        pixels.crop_starts,
        pixels.shapes,
        pixels.bounds,
        pixels.row,
        pixels.col,
        *_taps(points, radius),
    )
    n_bins = points + 2
    counts = np.bincount(pixels.obj * n_bins + codes, minlength=pixels.n * n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        histogram = counts.reshape(pixels.n, n_bins) / pixels.counts[:, None]
    return {
        f"Texture_LBP_{b}_{channel}_{points}_{radius:g}": histogram[:, b] for b in range(n_bins)
    }
