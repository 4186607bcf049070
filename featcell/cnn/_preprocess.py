"""Preparing crops and images for a network: intensity range, resize, canvas, batches.

Cells are prepared a batch at a time: percentiles, resizing and normalisation are
a few array operations per batch rather than per crop, so that the preprocessing
costs a small fraction of the network's time even at small input sizes.
"""

from __future__ import annotations

import numpy as np

DEFAULT_INPUT_SIZE = 96
MIN_INPUT_SIZE = 32
_PERCENTILE_SAMPLES = 2048
_PREPARE_BLOCK = 32  # cells prepared together (then cut into network batches)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)
_SCALE, _OFFSET = 1.0 / IMAGENET_STD[0], -IMAGENET_MEAN[0] / IMAGENET_STD[0]


def _block_mean(image, fy, fx):
    """Average (K, h, w) over whole fy x fx blocks (area resampling before a big shrink)."""
    _, h, w = image.shape
    h, w = h // fy, w // fx
    return image[:, : h * fy, : w * fx].reshape(-1, h, fy, w, fx).mean(axis=(2, 4))


def _linear_taps(n_in, n_out, size, n_pad):
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


def _gather_rows(planes, below, above, weight):
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


def _fit_batch(crops, low, scale, size):
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
        stack[:, b, :h, :w] = _block_mean(crop, fy, fx) if fy > 1 or fx > 1 else crop
    stack -= np.asarray(low, np.float32).T[:, :, None, None]
    stack *= np.asarray(scale, np.float32).T[:, :, None, None]
    stack[:, :, height] = 0.0
    stack[:, :, :, width] = 0.0
    n = len(crops)  # taps of rows and columns in one go
    below, above, weight = _linear_taps(
        reduced.T.ravel(), target.T.ravel(), size, np.repeat([height, width], n)
    )
    rows = _gather_rows(stack, below[:n], above[:n], weight[:n])  # (K, B, size, width + 1)
    cols = _gather_rows(  # (K, B, size, size), transposed
        np.ascontiguousarray(rows.transpose(0, 1, 3, 2)), below[n:], above[n:], weight[n:]
    )
    np.clip(cols, 0.0, 1.0, out=cols)
    return np.ascontiguousarray(cols.transpose(1, 0, 3, 2))


def _percentiles(values, percentiles):
    """Per-row percentiles of (K, P) values with linear interpolation, as np.percentile.

    Rows longer than ``_PERCENTILE_SAMPLES`` are sampled on an even stride: plenty to
    place the black and white points.
    """
    values = values[:, :: -(-values.shape[1] // _PERCENTILE_SAMPLES)]
    return _sorted_percentiles(np.sort(values, axis=1), values.shape[1], percentiles)


def _sorted_percentiles(ordered, n, percentiles):
    """Percentiles of rows sorted along the last axis, each row's first ``n`` values valid.

    ``ordered`` is (..., M) and ``n`` broadcasts against its leading axes;
    returns (..., len(percentiles)).
    """
    n = np.asarray(n)[..., None]
    position = (n - 1) * (np.asarray(percentiles, dtype=np.float64) / 100.0)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, n - 1)
    weight = (position - below).astype(np.float32)
    lo = np.take_along_axis(ordered, np.broadcast_to(below, (*ordered.shape[:-1], 2)), -1)
    hi = np.take_along_axis(ordered, np.broadcast_to(above, (*ordered.shape[:-1], 2)), -1)
    return lo + (hi - lo) * weight


def _gain(low, high):
    """Scale mapping ``low`` to 0 and ``high`` to 1; 0 for a flat channel (it maps to black)."""
    span = high - low
    return np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)


def _intensity_range(image, percentiles):
    """Black point and gain, each (K,), that map the (K, h, w) image's percentiles to 0 and 1.

    With ``percentiles=None`` intensities stay as stored.
    """
    n_channels = image.shape[0]
    if percentiles is None:
        return np.zeros(n_channels, np.float32), np.ones(n_channels, np.float32)
    low, high = _percentiles(image.reshape(n_channels, -1), percentiles).T
    return low, _gain(low, high)


def _cell_ranges(values, offsets, counts, percentiles, positions=None):
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


def _tiles(image, tile):
    """Tiles (K, t, t) covering (K, H, W) on a grid, the last row/column flush with the edge."""
    _, height, width = image.shape

    def starts(n):
        if n <= tile:
            return [0]
        return sorted(set(range(0, n - tile, tile)) | {n - tile})

    return [image[:, y : y + tile, x : x + tile] for y in starts(height) for x in starts(width)]


def _dihedral_views(planes):
    """The 8 flips/90-degree rotations of (..., S, S)."""
    flipped = planes[..., ::-1]
    return [np.rot90(v, k, axes=(-2, -1)) for v in (planes, flipped) for k in range(4)]


def _batches(stream, batch_size):
    """Regroup ``(rows, slots, planes)`` arrays into lists of pieces (views) holding exactly
    ``batch_size`` inputs together (the last list may hold fewer)."""
    pending, n_pending = [], 0
    for item in stream:
        pending.append(item)
        n_pending += len(item[0])
        while n_pending >= batch_size:
            taken, need = [], batch_size
            while need:
                rows, slots, planes = pending[0]
                if len(rows) <= need:
                    taken.append(pending.pop(0))
                    need -= len(rows)
                else:
                    taken.append((rows[:need], slots[:need], planes[:need]))
                    pending[0] = (rows[need:], slots[need:], planes[need:])
                    need = 0
            n_pending -= batch_size
            yield taken
    if n_pending:
        yield pending


def _select_channels(channels, available):
    """The channels an estimator's ``channels`` parameter picks from ``available`` (all if None)."""
    if channels is None:
        return tuple(available)
    chosen = [channels] if isinstance(channels, str) else list(channels)
    missing = [c for c in chosen if c not in available]
    if missing or not chosen:
        raise ValueError(
            f"channels={channels!r}: {missing!r} not among the data's channels {list(available)}"
        )
    return tuple(chosen)


def _check_finite(array, what):
    if not np.isfinite(array).all():
        raise ValueError(
            f"{what} contains NaN or infinite pixels; replace them (e.g. np.nan_to_num) first"
        )


def _prepare_block(
    cells, values, rows, starts, offsets, counts, positions, size, percentiles, mask_background,
    ranges=None,
):
    """(B, K, size, size) intensities in [0, 1] of the cells ``rows`` (see :func:`_cell_batches`)."""
    shapes = cells.crop_shapes
    if ranges is None:
        low, scale = _cell_ranges(values, offsets[rows], counts[rows], percentiles, positions)
    else:  # one black point and gain per channel for every cell
        low = np.broadcast_to(np.asarray(ranges[0], np.float32), (len(rows), values.shape[0]))
        scale = np.broadcast_to(np.asarray(ranges[1], np.float32), (len(rows), values.shape[0]))
    crops = []
    for b, i in enumerate(rows.tolist()):
        crop = values[:, starts[i] : starts[i + 1]].reshape(-1, *shapes[i])
        if mask_background:  # the background becomes black
            crop = np.where(cells.mask(i), crop, low[b, :, None, None])
        crops.append(crop)
    return _fit_batch(crops, low, scale, size)


def _cell_batches(
    cells, channels, size, *, percentiles, mask_background=False, n_threads=None, ranges=None
):
    """Yield (cell indices, (B, K, size, size) intensities in [0, 1]) per block of cells.

    Each cell's crop (channels ``channels``, by name) is mapped to [0, 1] between
    its intensity ``percentiles`` (over its mask with ``mask_background``, which
    also blackens the background), resized keeping its aspect ratio and centred
    in a black ``size`` x ``size`` canvas. Cells are taken in order of crop size,
    so the crops of a block share one tight zero-padded stack; the indices say
    where each result belongs. ``n_threads`` > 1 prepares blocks in that many
    threads (NumPy releases the GIL in the sorting, gathering and arithmetic),
    keeping the order of the blocks. ``ranges`` = (low, gain), each (K,), replaces the
    per-crop percentiles by one fixed black point and gain per channel.
    """
    index = [cells.channel_names.index(c) for c in channels]
    flat = cells.flat()
    values = flat.values if index == list(range(cells.n_channels)) else flat.values[index]
    starts = cells._starts
    if not np.isfinite(values).all():
        bad = np.searchsorted(starts, np.argmin(np.isfinite(values).all(axis=0)), "right") - 1
        _check_finite(cells.crop(bad)[index], f"cell {bad}")
    if mask_background:  # percentiles over each cell's mask pixels
        positions = np.flatnonzero(flat.mask)
        bounds = np.searchsorted(positions, starts)
        offsets, counts = bounds[:-1], np.diff(bounds)
    else:
        positions, offsets, counts = None, starts[:-1], np.diff(starts)
    order = np.argsort(cells.crop_shapes.max(axis=1), kind="stable")
    blocks = [np.sort(order[f : f + _PREPARE_BLOCK]) for f in range(0, len(order), _PREPARE_BLOCK)]

    def prepare(rows):
        return _prepare_block(
            cells, values, rows, starts, offsets, counts, positions, size, percentiles,
            mask_background, ranges,
        )

    if not n_threads or n_threads <= 1 or len(blocks) < 2:
        for rows in blocks:
            yield rows, prepare(rows)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_threads) as pool:
        pending = deque()
        for rows in blocks:  # at most 2 blocks per thread in flight
            pending.append((rows, pool.submit(prepare, rows)))
            if len(pending) >= 2 * n_threads:
                done_rows, future = pending.popleft()
                yield done_rows, future.result()
        while pending:
            done_rows, future = pending.popleft()
            yield done_rows, future.result()
