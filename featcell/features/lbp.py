"""Local binary pattern histograms: scikit-image's uniform LBP, per cell."""

from __future__ import annotations

import numpy as np

from ._kernels.lbp import uniform_lbp

__all__ = ["lbp", "lbp_names"]


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
    return dict(zip(lbp_names(channel, points, radius), histogram.T))
