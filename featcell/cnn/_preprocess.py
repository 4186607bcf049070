"""Preparing crops and images for a network: intensity range, resize, canvas, batches.

Cells are prepared a block at a time by two compiled loops (numba, GIL released):
:func:`_ranges_kernel` takes every crop's intensity percentiles and
:func:`_resize_kernel` masks, area-reduces, normalises and bilinearly resizes the
crops into their canvases, reading the CellSet's flat pixel array in place. Both run
without the GIL, so blocks prepared in threads (``n_threads``) scale with the cores;
whole-image tiles go through the same loops (:func:`_fit_batch`).
"""

from __future__ import annotations

import numpy as np

from ..features._kernels import kernel

DEFAULT_INPUT_SIZE = 96
MIN_INPUT_SIZE = 32
_PERCENTILE_SAMPLES = 2048
_PREPARE_BLOCK = 32  # cells prepared together (then cut into network batches)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)
_SCALE, _OFFSET = 1.0 / IMAGENET_STD[0], -IMAGENET_MEAN[0] / IMAGENET_STD[0]


@kernel
def _axis_taps(n_in, n_out, size, below, above, weight):
    """Taps of a linear resize of ``n_in`` samples to ``n_out``, centred in ``size``.

    Output sample ``o`` reads ``below[o]`` and ``above[o]`` with ``weight[o]`` on the
    second (pixel centres aligned, as OpenCV's and scikit-image's bilinear resize);
    ``below[o] = -1`` outside the centred ``n_out`` samples (the black canvas).
    """
    offset = (size - n_out) // 2
    ratio = n_in / n_out
    for o in range(size):
        out = o - offset
        if out < 0 or out >= n_out:
            below[o], above[o], weight[o] = -1, -1, 0.0
            continue
        centre = min(max((out + 0.5) * ratio - 0.5, 0.0), n_in - 1.0)
        first = int(centre)  # centre >= 0: truncation is floor
        below[o], above[o] = first, min(first + 1, n_in - 1)
        weight[o] = np.float32(centre - first)


@kernel
def _resize_kernel(values, starts, shapes, rows, low, scale, size, mask, use_mask, out, bad):
    """Fit the crops ``rows`` of the flat (K, P) ``values`` into black canvases ``out``.

    Crop ``i`` is ``values[:, starts[i] : starts[i] + h * w]`` with ``(h, w) = shapes[i]``.
    For ``out[b]``, crop ``rows[b]`` is (with ``use_mask``) set to ``low[b]`` outside its
    ``mask``, averaged over whole ``fy x fx`` blocks when shrunk by a factor of two or more
    (area resampling, so small structures do not alias away), mapped by ``(x - low[b]) *
    scale[b]``, resized bilinearly keeping its aspect ratio to fit ``size``, centred, and
    clipped to [0, 1]. float32 arithmetic in the order of the NumPy reference.
    ``bad[b]`` is set when crop ``rows[b]`` holds a NaN or infinite pixel (anywhere).
    """
    n_channels = values.shape[0]
    row_below = np.empty(size, np.intp)
    row_above = np.empty(size, np.intp)
    row_weight = np.empty(size, np.float32)
    col_below = np.empty(size, np.intp)
    col_above = np.empty(size, np.intp)
    col_weight = np.empty(size, np.float32)
    for b in range(len(rows)):
        i = rows[b]
        h0, w0, start = shapes[i, 0], shapes[i, 1], starts[i]
        ratio = size / max(h0, w0)
        th = max(1, int(np.rint(h0 * ratio)))
        tw = max(1, int(np.rint(w0 * ratio)))
        fy, fx = max(1, h0 // th), max(1, w0 // tw)
        h, w = h0 // fy, w0 // fx
        _axis_taps(h, th, size, row_below, row_above, row_weight)
        _axis_taps(w, tw, size, col_below, col_above, col_weight)
        reduced = np.empty((h, w), np.float32)
        rows_done = np.zeros((size, w), np.float32)
        inv = 1.0 / (fy * fx)
        for k in range(n_channels):
            lo, gain = low[b, k], scale[b, k]
            check = np.float32(0.0)  # stays 0 unless a pixel is NaN or infinite
            for p in range(start, start + h0 * w0):
                check += values[k, p] * np.float32(0.0)
            if check != 0.0:
                bad[b] = True
            for y in range(h):
                for x in range(w):
                    if fy == 1 and fx == 1:
                        p = start + y * w0 + x
                        v = values[k, p] if not use_mask or mask[p] else lo
                    else:
                        total = 0.0
                        for dy in range(fy):
                            for dx in range(fx):
                                p = start + (y * fy + dy) * w0 + x * fx + dx
                                total += values[k, p] if not use_mask or mask[p] else lo
                        v = np.float32(total * inv)
                    reduced[y, x] = (v - lo) * gain
            for o in range(size):
                r0 = row_below[o]
                if r0 < 0:
                    continue
                r1, t = row_above[o], row_weight[o]
                for x in range(w):
                    a = reduced[r0, x]
                    rows_done[o, x] = a + (reduced[r1, x] - a) * t
            for o in range(size):
                r0 = row_below[o]
                for c in range(size):
                    c0 = col_below[c]
                    if r0 < 0 or c0 < 0:
                        out[b, k, o, c] = 0.0
                        continue
                    a = rows_done[o, c0]
                    v = a + (rows_done[o, col_above[c]] - a) * col_weight[c]
                    out[b, k, o, c] = min(max(v, np.float32(0.0)), np.float32(1.0))


def _resize_block(values, starts, shapes, rows, low, scale, size, mask=None):
    """(B, K, size, size) float32 canvases of the crops ``rows`` (see :func:`_resize_kernel`)."""
    out = np.empty((len(rows), values.shape[0], size, size), np.float32)
    bad = np.zeros(len(rows), np.bool_)
    _resize_kernel(
        values, starts, shapes, np.asarray(rows, np.intp),
        np.ascontiguousarray(low, np.float32), np.ascontiguousarray(scale, np.float32),
        int(size), np.zeros(1, np.bool_) if mask is None else mask, mask is not None, out, bad,
    )
    return out, bad


def _fit_batch(crops, low, scale, size):
    """Fit every (K, h, w) crop into a black (K, size, size) canvas, as intensities in [0, 1].

    Each crop is mapped by ``(x - low) * scale`` (per crop and channel, ``low``
    and ``scale`` of shape (B, K)), resized keeping its aspect ratio and
    centred, then clipped to [0, 1]. Shrinking by a factor of two or more first
    averages whole blocks (area resampling, so small structures do not alias
    away); the rest is bilinear. The crops are copied into one flat array and
    prepared by :func:`_resize_kernel`, as the cells of a CellSet.

    Returns
    -------
    (B, K, size, size) ndarray of float32
        C-contiguous.
    """
    shapes = np.array([crop.shape[1:] for crop in crops], dtype=np.intp).reshape(-1, 2)
    n_channels = crops[0].shape[0]
    values = np.concatenate(
        [np.asarray(crop, np.float32).reshape(n_channels, -1) for crop in crops], axis=1
    )
    starts = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])]).astype(np.intp)
    out, bad = _resize_block(values, starts, shapes, np.arange(len(crops)), low, scale, size)
    if bad.any():
        _check_finite(crops[int(np.argmax(bad))], f"crop {int(np.argmax(bad))}")
    return out


def _percentiles(values, percentiles):
    """Per-row percentiles of (K, P) values with linear interpolation, as np.percentile.

    Rows longer than ``_PERCENTILE_SAMPLES`` are sampled on an even stride: plenty to
    place the black and white points.
    """
    values = values[:, :: -(-values.shape[1] // _PERCENTILE_SAMPLES)]
    return _sorted_percentiles(np.sort(values, axis=1), values.shape[1], percentiles)


_POOLED_SAMPLES = 200_000


def _pooled_percentiles(parts, percentiles):
    """Per-channel percentiles of the pixels of ``parts``, (K, P_i) arrays pooled (a data
    set's black and white points), from at most ``_POOLED_SAMPLES`` pixels drawn at random
    with a fixed seed: an even stride through crops laid end to end can fall on one column
    of every crop (its background edge) when it is a multiple of their width."""
    sizes = np.array([part.shape[1] for part in parts])
    total = int(sizes.sum())
    if total > _POOLED_SAMPLES:
        pick = np.sort(np.random.default_rng(0).integers(0, total, _POOLED_SAMPLES))
        part_of = np.searchsorted(np.cumsum(sizes), pick, side="right")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        values = np.concatenate([
            parts[k][:, pick[part_of == k] - starts[k]] for k in np.unique(part_of)], axis=1)
    else:
        values = np.concatenate(parts, axis=1)
    return np.percentile(values, percentiles, axis=1).T.astype(np.float32)


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


@kernel
def _percentile_taps(n, percentile):
    """Ranks below and above the ``percentile`` of ``n`` values, and the weight of the
    second, interpolated as np.percentile."""
    position = (n - 1) * (percentile / 100.0)
    below = int(np.floor(position))
    return below, min(below + 1, n - 1), np.float32(position - below)


@kernel
def _select(values, first, stop, rank):
    """Reorder ``values[first:stop]`` so that ``values[rank]`` holds the value of that rank,
    with no larger value before it and no smaller one after it (quickselect, Hoare
    partitions around a median of three); linear time on average."""
    last = stop - 1
    while last > first:
        a, b, c = values[first], values[(first + last) // 2], values[last]
        pivot = max(min(a, b), min(max(a, b), c))  # the median of the three
        i, j = first, last
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if rank <= j:
            last = j
        elif rank >= i:
            first = i
        else:
            return


@kernel
def _rank_pair(values, first, n, below, above):
    """Values of ranks ``below`` and ``above`` (``above`` is ``below`` or ``below + 1``) of
    ``values[:n]``, searching ranks from ``first`` on (the ranks before are in place)."""
    _select(values, first, n, below)
    low = values[below]
    high = low
    if above > below:
        high = values[above]
        for i in range(above, n):  # after the select: the smallest value above rank below
            high = min(high, values[i])
    return low, high


@kernel
def _ranges_kernel(values, offsets, counts, positions, use_positions, p_low, p_high,
                   max_samples, low, gain):
    """Black point and gain of every crop: its ``p_low`` and ``p_high`` percentiles over
    ``values[:, offsets[b] : offsets[b] + counts[b]]`` (or over those ``positions``),
    sampled on an even stride of at most ``max_samples`` pixels; a cell without pixels
    or a flat channel gets gain 0 (black). The four ranks needed are selected
    (quickselect, linear time), not sorted for."""
    n_channels = values.shape[0]
    for b in range(len(counts)):
        count, first = counts[b], offsets[b]
        if count == 0:
            for k in range(n_channels):
                low[b, k], gain[b, k] = 0.0, 0.0
            continue
        stride = max(1, -(-count // max_samples))
        n = -(-count // stride)
        low_below, low_above, w_low = _percentile_taps(n, p_low)
        high_below, high_above, w_high = _percentile_taps(n, p_high)
        sample = np.empty(n, np.float32)
        for k in range(n_channels):
            for j in range(n):
                p = first + j * stride
                sample[j] = values[k, positions[p] if use_positions else p]
            v0, v1 = _rank_pair(sample, 0, n, low_below, low_above)
            lo = v0 + (v1 - v0) * w_low
            v0, v1 = _rank_pair(sample, low_below, n, high_below, high_above)
            hi = v0 + (v1 - v0) * w_high
            span = hi - lo
            low[b, k] = lo
            gain[b, k] = np.float32(1.0) / span if span > 0 else np.float32(0.0)


def _cell_ranges(values, offsets, counts, percentiles, positions=None):
    """Black point and gain, each (B, K), of every crop of a batch of cells.

    Crop ``b``'s percentiles are taken over ``values[:, offsets[b] :
    offsets[b] + counts[b]]`` of the (K, P) flat pixels or, given
    ``positions``, over the pixels ``positions[offsets[b] : offsets[b] +
    counts[b]]``. Each crop is sampled on its own even stride, at most
    ``_PERCENTILE_SAMPLES`` pixels, as :func:`_percentiles` (compiled:
    :func:`_ranges_kernel`, GIL released).
    """
    n_cells, n_channels = len(counts), values.shape[0]
    if percentiles is None:
        shape = (n_cells, n_channels)
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    low = np.empty((n_cells, n_channels), np.float32)
    gain = np.empty((n_cells, n_channels), np.float32)
    _ranges_kernel(
        values, np.asarray(offsets, np.intp), np.asarray(counts, np.intp),
        np.zeros(1, np.intp) if positions is None else positions, positions is not None,
        float(percentiles[0]), float(percentiles[1]), _PERCENTILE_SAMPLES, low, gain,
    )
    return low, gain


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
    """(B, K, size, size) intensities in [0, 1] of the cells ``rows`` (see :func:`_cell_batches`).

    Two compiled calls (GIL released): the crops' percentiles, then the canvases.
    """
    if ranges is None:
        low, scale = _cell_ranges(values, offsets[rows], counts[rows], percentiles, positions)
    else:  # one black point and gain per channel for every cell
        low = np.broadcast_to(np.asarray(ranges[0], np.float32), (len(rows), values.shape[0]))
        scale = np.broadcast_to(np.asarray(ranges[1], np.float32), (len(rows), values.shape[0]))
    mask = cells.flat().mask if mask_background else None  # the background becomes black
    out, bad = _resize_block(values, starts, cells._shapes, rows, low, scale, size, mask)
    if bad.any():  # checked in the compiled loop, which reads every pixel anyway
        first = int(rows[np.flatnonzero(bad)].min())
        _check_finite(values[:, starts[first] : starts[first + 1]], f"cell {first}")
    return out


def _cell_batches(
    cells, channels, size, *, percentiles, mask_background=False, n_threads=None, ranges=None
):
    """Yield (cell indices, (B, K, size, size) intensities in [0, 1]) per block of cells.

    Each cell's crop (channels ``channels``, by name) is mapped to [0, 1] between
    its intensity ``percentiles`` (over its mask with ``mask_background``, which
    also blackens the background), resized keeping its aspect ratio and centred
    in a black ``size`` x ``size`` canvas. Cells are taken in blocks of similar
    crop size; the indices say where each result belongs. ``n_threads`` > 1
    prepares blocks in that many threads, keeping the order of the blocks (the
    compiled loops release the GIL). ``ranges`` = (low, gain), each (K,),
    replaces the per-crop percentiles by one fixed black point and gain per channel.
    """
    index = [cells.channel_names.index(c) for c in channels]
    flat = cells.flat()
    values = flat.values if index == list(range(cells.n_channels)) else flat.values[index]
    starts = cells._starts
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
