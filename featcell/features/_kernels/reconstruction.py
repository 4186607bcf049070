"""Erosion and grey reconstruction by dilation, the step that makes granularity's openings.

CellProfiler's MeasureGranularity opens the image with ever larger
structuring elements by eroding it once more with a 4-connected cross and
rebuilding the result under the image (``skimage.morphology.reconstruction``);
cp_measure's numba backend does the same with Vincent's hybrid algorithm.
"""

import numpy as np

from . import kernel


@kernel
def erode_and_reconstruct(image, mask):
    """One step of granularity: ``image`` eroded by the 4-connected cross, then
    rebuilt under ``mask`` by grey reconstruction by dilation, 4-connected.

    ``seed = skimage.morphology.erosion(image, disk(1))`` and
    ``reconstruction(seed, mask, footprint=disk(1))``, as CellProfiler's
    ``MeasureGranularity`` (and cp_measure's ``get_granularity``) take them:
    every pixel gets the largest value it can reach from the seed along a
    4-connected path on which the mask is never lower. Vincent's hybrid
    algorithm [1]_: a raster and an anti-raster scan, then a first-in
    first-out queue of the pixels that can still raise a neighbour. Only
    minima and maxima are taken: exact. Returns ``seed`` and the
    reconstruction, (H, W) float64 as ``image`` and ``mask``.

    References
    ----------
    .. [1] Vincent, "Morphological grayscale reconstruction in image analysis:
       applications and efficient algorithms", IEEE Trans. Image Process. 2,
       176-201 (1993).
    """
    H, W = image.shape
    seed, out = np.empty_like(image), np.empty_like(mask)
    for y in range(H):  # the erosion (pixels off the image ignored, as scikit-image's reflection)
        upper, row, lower = image[max(y - 1, 0)], image[y], image[min(y + 1, H - 1)]
        for x in range(W):
            seed[y, x] = min(upper[x], row[x], lower[x])
        for x in range(1, W):
            seed[y, x] = min(seed[y, x], row[x - 1])
        for x in range(W - 1):
            seed[y, x] = min(seed[y, x], row[x + 1])
    # raster scan: the seed raised to its upper and left neighbours, under the mask; two
    # rows at a time (the lower one sees the upper one's new value): two chains side by side
    for y in range(0, H, 2):
        left = left2 = -np.inf  # out[y, x - 1] and out[y + 1, x - 1]
        for x in range(W):
            up = out[y - 1, x] if y > 0 else -np.inf
            left = min(max(seed[y, x], up, left), mask[y, x])
            out[y, x] = left
            if y + 1 < H:
                left2 = min(max(seed[y + 1, x], left, left2), mask[y + 1, x])
                out[y + 1, x] = left2

    # anti-raster scan: the lower and right neighbours, rows y and y - 1 side by side; a
    # pixel that could still raise one of them goes into the queue (a ring buffer of rows
    # and columns: a pixel is in it at most once at a time)
    size = H * W + 1
    queue_y, queue_x = np.empty(size, np.intp), np.empty(size, np.intp)
    queued = np.empty((H, W), np.bool_)
    tail = 0
    for y in range(H - 1, -1, -2):
        right = right_mask = right2 = right2_mask = -np.inf  # out and mask at x + 1
        for x in range(W - 1, -1, -1):
            below, below_mask = (out[y + 1, x], mask[y + 1, x]) if y + 1 < H else (-np.inf, -np.inf)
            v = min(max(out[y, x], below, right), mask[y, x])
            out[y, x] = v
            grows = (below < min(v, below_mask)) | (right < min(v, right_mask))
            queued[y, x] = grows
            if grows:
                queue_y[tail], queue_x[tail] = y, x
                tail += 1
            right, right_mask = v, mask[y, x]
            if y > 0:  # row y - 1, below it the new v
                v2 = min(max(out[y - 1, x], v, right2), mask[y - 1, x])
                out[y - 1, x] = v2
                grows = (v < min(v2, right_mask)) | (right2 < min(v2, right2_mask))
                queued[y - 1, x] = grows
                if grows:
                    queue_y[tail], queue_x[tail] = y - 1, x
                    tail += 1
                right2, right2_mask = v2, mask[y - 1, x]

    # propagation: a dequeued pixel raises its four neighbours up to their mask
    head = 0
    while head != tail:
        y, x = queue_y[head], queue_x[head]
        head = head + 1 if head + 1 < size else 0
        queued[y, x] = False
        v = out[y, x]
        for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if not (0 <= ny < H and 0 <= nx < W):
                continue
            raised = min(v, mask[ny, nx])
            if raised > out[ny, nx]:
                out[ny, nx] = raised
                if not queued[ny, nx]:
                    queued[ny, nx] = True
                    queue_y[tail], queue_x[tail] = ny, nx
                    tail = tail + 1 if tail + 1 < size else 0
    return seed, out


@kernel
def bilinear_weights(cell_start, rows, cols, origins, scale, shape):
    """How much each pixel of an image of ``shape`` weighs in each cell's bilinear mean.

    cp_measure's ``_make_fused_upsample_mean`` (MeasureGranularity restores
    each reconstruction to the original scale with
    ``scipy.ndimage.map_coordinates(order=1)``, 0 beyond the last row or
    column, then averages it per object): the sum of a cell's interpolated
    values at its pixels (cell ``i`` owns ``rows`` and ``cols`` ``cell_start[i]``
    to ``cell_start[i + 1] - 1`` of its crop, at ``origins[i]`` in the original
    image, whose coordinates times ``scale`` are this image's) is a fixed weighted sum
    of the image's pixels. Returns that (n_cells, H * W) matrix in CSR form:
    the ``weight`` and flat image pixel ``index`` of every non-zero weight,
    cell ``i``'s from ``start[i]`` to ``start[i + 1] - 1``.
    """
    H, W = shape[0], shape[1]
    n_cells = cell_start.size - 1
    start = np.empty(n_cells + 1, np.int64)
    index = np.empty(4 * rows.size, np.int64)
    weight = np.empty(4 * rows.size)
    total = np.zeros(H * W)  # scratch, zero again after each cell
    n = 0
    for i in range(n_cells):
        start[i] = n
        for p in range(cell_start[i], cell_start[i + 1]):
            y, x = (rows[p] + origins[i, 0]) * scale[0], (cols[p] + origins[i, 1]) * scale[1]
            if y > H - 1 or x > W - 1:
                continue
            y0, x0 = int(y), int(x)
            fy, fx = y - y0, x - x0
            y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
            for q, w in (
                (y0 * W + x0, (1 - fy) * (1 - fx)),
                (y0 * W + x1, (1 - fy) * fx),
                (y1 * W + x0, fy * (1 - fx)),
                (y1 * W + x1, fy * fx),
            ):
                if w == 0.0:
                    continue
                if total[q] == 0.0:
                    index[n] = q
                    n += 1
                total[q] += w
        for e in range(start[i], n):
            weight[e] = total[index[e]]
            total[index[e]] = 0.0
    start[n_cells] = n
    return weight[:n].copy(), index[:n].copy(), start
