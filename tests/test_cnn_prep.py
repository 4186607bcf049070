"""Crop preparation (featcell.cnn._preprocess): the compiled, GIL-free loops give what the
NumPy preparation they replaced gave, and threads give the same blocks as one thread.

The reference is the NumPy implementation of featcell before the compiled loops (commit
802cffb), kept here verbatim under ``_ref_*`` names.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from featcell.cells import CellSet
from featcell.cnn import _preprocess
from featcell.cnn._preprocess import _PERCENTILE_SAMPLES, _gain, _sorted_percentiles


# ---------------------------------------------------------------------- reference (802cffb)
def _ref_block_mean(image, fy, fx):
    """Average (K, h, w) over whole fy x fx blocks (area resampling before a big shrink)."""
    _, h, w = image.shape
    h, w = h // fy, w // fx
    return image[:, : h * fy, : w * fx].reshape(-1, h, fy, w, fx).mean(axis=(2, 4))


def _ref_linear_taps(n_in, n_out, size, n_pad):
    """Per-row source taps of a linear resize from ``n_in`` to ``n_out`` samples, centred
    in ``size`` output samples (all arrays (B, size)).

    Output samples outside the centred ``n_out`` read the zero sample ``n_pad``
    (per row) with weight 0, so the canvas around a resized crop stays black.
    """
    n_in, n_out = n_in[:, None], n_out[:, None]
    out = np.arange(size) - (size - n_out) // 2
    inside = (out >= 0) & (out < n_out)
    centres = np.clip((out + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    below = centres.astype(np.intp)  # centres >= 0: truncation is floor
    weight = np.where(inside, centres - below, 0.0).astype(np.float32)
    pad = np.asarray(n_pad)[:, None]
    return (
        np.where(inside, below, pad),
        np.where(inside, np.minimum(below + 1, n_in - 1), pad),
        weight,
    )


def _ref_gather_rows(planes, below, above, weight):
    """Linear interpolation along axis 2 of (K, B, n, m) with per-plane taps (B, size)."""
    k, b, n, m = planes.shape
    flat = planes.reshape(k, b * n, m)
    base = (np.arange(b) * n)[:, None]
    lo = np.take(flat, (base + below).ravel(), axis=1)
    hi = np.take(flat, (base + above).ravel(), axis=1)
    hi -= lo
    hi *= weight.reshape(-1, 1)
    hi += lo
    return hi.reshape(k, b, -1, m)


def _ref_fit_batch(crops, low, scale, size):
    """Fit every (K, h, w) crop into a black (K, size, size) canvas, as intensities in [0, 1].

    Each crop is mapped by ``(x - low) * scale`` (per crop and channel, ``low``
    and ``scale`` of shape (B, K)), resized keeping its aspect ratio and
    centred, then clipped to [0, 1]. Shrinking by a factor of two or more first
    averages whole blocks (area resampling, so small structures do not alias
    away); the rest is bilinear. All crops are resized together.

    Returns
    -------
    (B, K, size, size) ndarray of float32
        C-contiguous.
    """
    shapes = np.array([crop.shape[1:] for crop in crops], dtype=np.intp)
    n_channels = crops[0].shape[0]
    ratio = size / shapes.max(axis=1)
    target = np.maximum(1, np.rint(shapes * ratio[:, None])).astype(np.intp)
    factor = np.maximum(1, shapes // target)
    reduced = np.where(factor > 1, shapes // factor, shapes)
    height, width = reduced.max(axis=0)
    # one zero-padded stack of the crops, with a spare row and column kept black
    stack = np.zeros((n_channels, len(crops), height + 1, width + 1), np.float32)
    for b, (crop, (fy, fx), (h, w)) in enumerate(
        zip(crops, factor.tolist(), reduced.tolist(), strict=True)
    ):
        stack[:, b, :h, :w] = _ref_block_mean(crop, fy, fx) if fy > 1 or fx > 1 else crop
    stack -= np.asarray(low, np.float32).T[:, :, None, None]
    stack *= np.asarray(scale, np.float32).T[:, :, None, None]
    stack[:, :, height] = 0.0
    stack[:, :, :, width] = 0.0
    n = len(crops)  # taps of rows and columns in one go
    below, above, weight = _ref_linear_taps(
        reduced.T.ravel(), target.T.ravel(), size, np.repeat([height, width], n)
    )
    rows = _ref_gather_rows(stack, below[:n], above[:n], weight[:n])  # (K, B, size, width + 1)
    cols = _ref_gather_rows(  # (K, B, size, size), transposed
        np.ascontiguousarray(rows.transpose(0, 1, 3, 2)), below[n:], above[n:], weight[n:]
    )
    np.clip(cols, 0.0, 1.0, out=cols)
    return np.ascontiguousarray(cols.transpose(1, 0, 3, 2))


def _ref_cell_ranges(values, offsets, counts, percentiles, positions=None):
    """Black point and gain, each (B, K), of every crop of a batch of cells.

    Crop ``b``'s percentiles are taken over ``values[:, offsets[b] :
    offsets[b] + counts[b]]`` of the (K, P) flat pixels or, given
    ``positions``, over the pixels ``positions[offsets[b] : offsets[b] +
    counts[b]]``. Each crop is sampled on its own even stride, at most
    ``_PERCENTILE_SAMPLES`` pixels, as :func:`_percentiles`; all crops are then
    sorted in one call.
    """
    n_cells, n_channels = len(counts), values.shape[0]
    if percentiles is None:
        shape = (n_cells, n_channels)
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    stride = np.maximum(1, -(-counts // _PERCENTILE_SAMPLES))
    n = -(-counts // stride)
    table = np.full((n_channels, n_cells, max(1, n.max())), np.inf, np.float32)
    for b, (first, count, step, m) in enumerate(zip(offsets, counts, stride, n, strict=True)):
        if positions is None:  # a strided slice: no index arrays
            table[:, b, :m] = values[:, first : first + count : step]
        else:
            table[:, b, :m] = values[:, positions[first : first + count : step]]
    table.sort(axis=-1)
    with np.errstate(invalid="ignore"):  # rows of cells without pixels: inf - inf
        low, high = _sorted_percentiles(table, np.maximum(n, 1), percentiles).transpose(2, 1, 0)
        gain = _gain(low, high)
    empty = n == 0  # a cell without (mask) pixels is black
    low[empty], gain[empty] = 0.0, 0.0
    return low.astype(np.float32), gain.astype(np.float32)


def _ref_prepare_block(
    cells, values, rows, starts, offsets, counts, positions, size, percentiles, mask_background,
    ranges=None,
):
    """(B, K, size, size) intensities in [0, 1] of the cells ``rows`` (see :func:`_cell_batches`)."""
    shapes = cells.crop_shapes
    if ranges is None:
        low, scale = _ref_cell_ranges(values, offsets[rows], counts[rows], percentiles, positions)
    else:  # one black point and gain per channel for every cell
        low = np.broadcast_to(np.asarray(ranges[0], np.float32), (len(rows), values.shape[0]))
        scale = np.broadcast_to(np.asarray(ranges[1], np.float32), (len(rows), values.shape[0]))
    crops = []
    for b, i in enumerate(rows.tolist()):
        crop = values[:, starts[i] : starts[i + 1]].reshape(-1, *shapes[i])
        if mask_background:  # the background becomes black
            crop = np.where(cells.mask(i), crop, low[b, :, None, None])
        crops.append(crop)
    return _ref_fit_batch(crops, low, scale, size)


# ---------------------------------------------------------------------- tests
def _random_cells(seed=0, n=70, channels=2):
    """Crops of many shapes (tall, wide, tiny, larger than the canvas), 16-bit-like values,
    random masks."""
    rng = np.random.default_rng(seed)
    crops, masks = [], []
    for i in range(n):
        h, w = rng.integers(1, 130, 2) if i % 7 else rng.integers(1, 9, 2)
        crops.append(rng.gamma(2.0, 300.0, (channels, h, w)).astype(np.float32))
        masks.append(rng.random((h, w)) < 0.7)
    return CellSet.from_crops(crops, masks=masks, channels=[f"c{k}" for k in range(channels)])


def _reference(cells, channels, size, percentiles, mask_background=False, ranges=None):
    index = [cells.channel_names.index(c) for c in channels]
    flat = cells.flat()
    values = flat.values[index]
    starts = cells._starts
    if mask_background:
        positions = np.flatnonzero(flat.mask)
        bounds = np.searchsorted(positions, starts)
        offsets, counts = bounds[:-1], np.diff(bounds)
    else:
        positions, offsets, counts = None, starts[:-1], np.diff(starts)
    rows = np.arange(len(cells))
    return _ref_prepare_block(cells, values, rows, starts, offsets, counts, positions, size,
                              percentiles, mask_background, ranges)


def _prepared(cells, channels, size, **kwargs):
    out = np.full((len(cells), len(channels), size, size), np.nan, np.float32)
    for rows, block in _preprocess._cell_batches(cells, channels, size, **kwargs):
        out[rows] = block
    return out


@pytest.mark.parametrize("size", [32, 96, 45])
@pytest.mark.parametrize("mask_background", [False, True])
def test_cells_prepared_as_the_numpy_reference(size, mask_background):
    cells = _random_cells()
    channels = list(cells.channel_names)
    got = _prepared(cells, channels, size, percentiles=(1.0, 99.8),
                    mask_background=mask_background)
    expected = _reference(cells, channels, size, (1.0, 99.8), mask_background)
    assert_allclose(got, expected, atol=2e-6, rtol=0)
    assert got.min() == 0.0 and got.max() == 1.0


def test_fixed_ranges_and_a_channel_subset_as_the_reference():
    cells = _random_cells(seed=1, channels=3)
    ranges = (np.array([100.0, 0.0], np.float32), np.array([1e-3, 2e-3], np.float32))
    got = _prepared(cells, ["c2", "c0"], 64, percentiles=(1.0, 99.8), ranges=ranges)
    expected = _reference(cells, ["c2", "c0"], 64, (1.0, 99.8), ranges=ranges)
    assert_allclose(got, expected, atol=2e-6, rtol=0)


def test_percentiles_as_the_reference_including_empty_and_flat_cells():
    rng = np.random.default_rng(2)
    counts = np.array([0, 1, 5, 3000, 10_000, 2048, 2049])
    values = rng.normal(size=(2, counts.sum())).astype(np.float32)
    values[1, 1:6] = 4.0  # a flat channel: gain 0
    values[:, 6:3006] = rng.integers(0, 4, (2, 3000))  # many ties
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for positions in (None, np.arange(counts.sum())[::-1].copy()):
        got = _preprocess._cell_ranges(values, offsets, counts, (1.0, 99.8), positions)
        expected = _ref_cell_ranges(values, offsets, counts, (1.0, 99.8), positions)
        for a, b in zip(got, expected, strict=True):
            assert a.dtype == np.float32
            assert_allclose(a, b, atol=1e-6, rtol=1e-6)
    assert got[1][0].tolist() == [0.0, 0.0]  # no pixels: black


def test_fit_batch_as_the_reference():
    rng = np.random.default_rng(3)
    crops = [rng.random((3, h, w)).astype(np.float32) * 50
             for h, w in [(40, 40), (7, 90), (200, 13), (1, 1), (64, 64)]]
    low = rng.random((5, 3)).astype(np.float32)
    gain = (rng.random((5, 3)) * 0.05).astype(np.float32)
    for size in (32, 64, 100):
        assert_allclose(_preprocess._fit_batch(crops, low, gain, size),
                        _ref_fit_batch(crops, low, gain, size), atol=2e-6, rtol=0)


def test_threads_give_the_same_blocks():
    cells = _random_cells(seed=4, n=150)
    one = _prepared(cells, list(cells.channel_names), 48, percentiles=(1.0, 99.8))
    two = _prepared(cells, list(cells.channel_names), 48, percentiles=(1.0, 99.8), n_threads=2)
    assert np.array_equal(one, two)


@pytest.mark.parametrize("n_threads", [None, 2])
def test_non_finite_pixels_name_the_cell(n_threads):
    """Even a pixel outside the mask, or in a row that area reduction leaves out.
    (CellSet refuses NaN when it is built; the pixels are broken afterwards.)"""
    cells = _random_cells(seed=5, n=80)
    crops = [cells.crop(i).copy() for i in range(len(cells))]
    masks = [cells.mask(i).copy() for i in range(len(cells))]
    crops[3] = np.ones((2, 101, 9), np.float32)
    masks[3] = np.zeros((101, 9), bool)
    masks[3][:50] = True
    broken = CellSet.from_crops(crops, masks=masks, channels=list(cells.channel_names))
    # outside the mask; row 100 of 101 is left out by an area reduction by 2
    broken._values[1, broken._starts[3] + 100 * 9 + 8] = np.nan
    broken._values[0, broken._starts[60]] = np.inf
    for mask_background in (False, True):
        with pytest.raises(ValueError, match="cell 3 contains NaN"):
            _prepared(broken, list(cells.channel_names), 32, percentiles=(1.0, 99.8),
                      mask_background=mask_background, n_threads=n_threads)
    crops[60][0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="crop 1 contains NaN"):
        _preprocess._fit_batch([crops[0], crops[60]], np.zeros((2, 2)), np.ones((2, 2)), 32)


def test_a_data_sets_white_point_sees_every_column_of_its_crops():
    # 64 crops of 32 x 32, background at the edges, bright inside: an even stride through
    # the crops laid end to end fell on their left column only (white point 0.1, not 1)
    from featcell.cnn.trained import _dataset_range

    crops = np.full((64, 1, 32, 32), 0.1, np.float32)
    crops[:, :, 8:24, 8:24] = 1.0
    low, gain = _dataset_range(CellSet.from_crops(crops, channels=["DNA"]), ["DNA"],
                               (0.1, 99.9))
    assert low[0] == pytest.approx(0.1) and 1 / gain[0] == pytest.approx(0.9, abs=1e-3)
