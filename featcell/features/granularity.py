"""Granularity: CellProfiler's MeasureGranularity, on the whole image whenever it is known."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import csr_matrix
from skimage.morphology import disk

from ._kernels.reconstruction import bilinear_weights, erode_and_reconstruct

__all__ = ["granularity", "granularity_names"]


def granularity_names(channel, length):
    """Column names, ``Granularity_<k>_<Channel>`` for ``k = 1 .. length``."""
    return [f"Granularity_{k}_{channel}" for k in range(1, length + 1)]


def granularity(
    cells,
    pixels,
    values,
    channel_index,
    channel,
    length=16,
    subsample_size=0.25,
    image_sample_size=0.25,
    element_size=10,
):
    """CellProfiler's granular spectrum of every cell.

    ``MeasureGranularity`` (as cp_measure's ``get_granularity``) on the
    image each cell was cut from (:meth:`CellSet.fields`): the image is
    subsampled by ``subsample_size``; a background, the grey opening by a
    disk of radius ``element_size`` of the image subsampled again by
    ``image_sample_size``, is subtracted; then ``length`` times the image is
    eroded by a 4-connected cross and reconstructed under the
    background-subtracted image, and the loss of each cell's mean intensity
    (the reconstruction restored to the original scale by bilinear
    interpolation) is reported in percent of its original mean. A cell
    without an image (:meth:`CellSet.from_crops`) is measured on its crop,
    with its mask as the only object.

    ``pixels`` are the cells' :class:`CellPixels`, ``values`` their
    intensities in channel ``channel_index``; the settings are
    CellProfiler's (range of the spectrum, subsampling factors of the
    measurement and of the background, radius of the background's disk after
    subsampling). Returns the columns of :func:`granularity_names`, NaN for
    the cells of an image that subsamples below 2 rows or columns.
    """
    images, field = cells.fields()
    origins = cells.crop_origins
    settings = (length, subsample_size, image_sample_size, element_size)
    spectrum = np.full((pixels.n, length), np.nan)
    for f, image in enumerate(images):
        members = np.flatnonzero(field == f)
        at = pixels.spread(field == f) if members.size < pixels.n else slice(None)
        pts = (pixels.counts[members], origins[members], pixels.row[at], pixels.col[at])
        spectrum[members] = _spectrum(image[channel_index], *pts, values[at], *settings)
    for i in np.flatnonzero(field < 0):  # only a crop: it is the image, at (0, 0)
        at = slice(pixels.starts[i], pixels.starts[i] + pixels.counts[i])
        pts = (pixels.counts[i : i + 1], np.zeros((1, 2), np.intp), pixels.row[at], pixels.col[at])
        spectrum[i] = _spectrum(cells.crop(i)[channel_index], *pts, values[at], *settings)
    return {f"Granularity_{k}_{channel}": spectrum[:, k - 1] for k in range(1, length + 1)}


def _spectrum(image, counts, origins, y, x, raw, length, subsample_size, image_sample_size,
              element_size):  # fmt: skip
    """The granular spectrum, (n_cells, length), of the cells of one image.

    ``counts`` are the cells' numbers of mask pixels, ``origins`` their crops'
    corners in ``image``; ``y``, ``x`` and ``raw`` give every mask pixel's
    position in its crop and intensity, cell after cell. cp_measure's
    ``get_granularity``, step by step.
    """
    n_cells = counts.size
    shape = np.array(image.shape)
    # 1. subsample
    new_shape = (shape * subsample_size).astype(int) if subsample_size < 1 else shape
    if (new_shape < 2).any():
        return np.full((n_cells, length), np.nan)
    if subsample_size < 1:
        rows, cols = (np.arange(n) / subsample_size for n in new_shape)
        image = _sample(image, rows, cols)
    else:
        image = image.astype(np.float64)
    # 2. background: a grey opening of the image subsampled again, restored to its size
    if image_sample_size < 1:
        back_shape = new_shape * image_sample_size
        rows, cols = (np.arange(n) / image_sample_size for n in back_shape)
        back = _sample(image, rows, cols)
    else:
        back_shape, back = new_shape, image
    back = _disk_filter(_disk_filter(back, element_size, erode=True), element_size, erode=False)
    if image_sample_size < 1:
        rows, cols = (np.arange(n) * ((b - 1) / (n - 1)) for n, b in zip(new_shape, back_shape))
        back = _sample(back, rows, cols)
    image = np.maximum(image - back, 0.0)

    # 3. each cell's mean of an image of this size, restored to the original scale
    cell_start = np.concatenate([[0], np.cumsum(counts)])
    scale = (new_shape - 1) / (shape - 1)
    weights = bilinear_weights(cell_start, y, x, origins, scale, new_shape)
    sums = csr_matrix(weights, shape=(n_cells, image.size))
    current = np.add.reduceat(raw, cell_start[:-1], dtype=np.float64) / counts
    start = np.maximum(current, np.finfo(float).eps)

    # 4. the spectrum: erode once more, reconstruct under the last reconstruction (the
    # same image as under `image`, since it is the reconstruction of a larger seed)
    spectrum = np.empty((n_cells, length))
    eroded = rebuilt = image
    for k in range(length):
        eroded, rebuilt = erode_and_reconstruct(eroded, rebuilt)
        new = sums @ rebuilt.ravel() / counts
        spectrum[:, k] = (current - new) * 100 / start
        current = new
    return spectrum


def _sample(image, i, j):
    """``scipy.ndimage.map_coordinates(image, np.meshgrid(i, j), order=1)`` in float64.

    Bilinear interpolation on a grid is linear interpolation along the rows
    ``i`` then the columns ``j``; as ``map_coordinates``, 0 past the image.
    """
    return _linear(_linear(image, i, axis=0), j, axis=1).astype(np.float64, copy=False)


def _linear(image, t, axis):
    """Linear interpolation of ``image`` at coordinates ``t`` along ``axis`` (0 outside)."""
    n = image.shape[axis]
    t0 = np.clip(np.floor(t), 0, n - 1).astype(np.intp)
    t1 = np.minimum(t0 + 1, n - 1)
    f, inside = t - t0, (t >= 0) & (t <= n - 1)
    if inside.all() and not f.any():  # whole pixels (subsampling by 1/4): read as they are
        return image.take(t0, axis)
    shape = (-1, 1) if axis == 0 else (1, -1)
    out = image.take(t0, axis) * (1 - f).reshape(shape) + image.take(t1, axis) * f.reshape(shape)
    out *= inside.reshape(shape)
    return out


@lru_cache(maxsize=16)
def _disk_half_widths(radius):
    """Half width of each row of ``skimage.morphology.disk(radius)`` (read-only)."""
    half = disk(radius).astype(bool).sum(axis=1) // 2
    half.flags.writeable = False
    return half


def _disk_filter(image, radius, erode):
    """Grey erosion or dilation by ``skimage.morphology.disk(radius)``, ignoring pixels off
    the image (for a disk, the same as scikit-image's ``mode="reflect"``).

    One 1-D minimum (maximum) filter per distinct row width of the disk, the
    rows combined with their vertical offsets.
    """
    fill = np.inf if erode else -np.inf
    filter1d = ndi.minimum_filter1d if erode else ndi.maximum_filter1d
    combine = np.minimum if erode else np.maximum
    rows = {}
    out = np.full_like(image, fill)
    H, W = image.shape
    for dy, hw in zip(range(-radius, radius + 1), _disk_half_widths(radius)):
        if abs(dy) >= H:
            continue
        hw = min(int(hw), W - 1)
        if hw not in rows:
            rows[hw] = filter1d(image, 2 * hw + 1, axis=1, mode="constant", cval=fill)
        if dy >= 0:
            combine(out[: H - dy], rows[hw][dy:], out=out[: H - dy])
        else:
            combine(out[-dy:], rows[hw][: H + dy], out=out[-dy:])
    return out
