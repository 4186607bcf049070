"""Grey reconstruction by dilation, the step that makes granularity's openings.

CellProfiler's MeasureGranularity opens the image with ever larger
structuring elements by eroding it once more with a 4-connected cross and
rebuilding the result under the image (``skimage.morphology.reconstruction``);
cp_measure's numba backend does the same with Vincent's hybrid algorithm.
"""

import numpy as np

from . import kernel


@kernel
def reconstruct_by_dilation(seed, mask):
    """Grey reconstruction by dilation of ``seed`` under ``mask``, 4-connected.

    The same image as ``skimage.morphology.reconstruction(seed, mask,
    method="dilation", footprint=disk(1))`` (CellProfiler's
    ``MeasureGranularity`` and cp_measure's ``get_granularity``): every pixel
    gets the largest value it can reach from a seed along a 4-connected path
    on which the mask is never lower. Vincent's hybrid algorithm [1]_: a
    raster and an anti-raster scan of geodesic dilations, then a first-in
    first-out queue of the pixels that can still raise a neighbour, until
    it drains. Only minima and maxima are taken, so the result is exact.
    ``seed`` and ``mask`` are (H, W) float64.

    References
    ----------
    .. [1] Vincent, "Morphological grayscale reconstruction in image analysis:
       applications and efficient algorithms", IEEE Trans. Image Process. 2,
       176-201 (1993).
    """
    H, W = seed.shape
    out = np.empty_like(mask)
    # raster scan: the seed raised to its upper and left neighbours, under the mask
    for y in range(H):
        for x in range(W):
            v = seed[y, x]
            if y > 0:
                v = max(v, out[y - 1, x])
            if x > 0:
                v = max(v, out[y, x - 1])
            out[y, x] = min(v, mask[y, x])

    # anti-raster scan: the lower and right neighbours; a pixel that could still raise one
    # of them goes into the queue (a ring buffer: a pixel is in it at most once at a time)
    size = H * W + 1
    queue = np.empty(size, np.int32)
    queued = np.zeros((H, W), np.bool_)
    head = tail = 0
    for y in range(H - 1, -1, -1):
        for x in range(W - 1, -1, -1):
            v = out[y, x]
            if y < H - 1:
                v = max(v, out[y + 1, x])
            if x < W - 1:
                v = max(v, out[y, x + 1])
            v = min(v, mask[y, x])
            out[y, x] = v
            grows = False  # (no short-circuit: fewer mispredicted branches)
            if y < H - 1:
                grows |= (out[y + 1, x] < v) & (out[y + 1, x] < mask[y + 1, x])
            if x < W - 1:
                grows |= (out[y, x + 1] < v) & (out[y, x + 1] < mask[y, x + 1])
            if grows:
                queue[tail] = y * W + x
                tail += 1
                queued[y, x] = True

    # propagation: a dequeued pixel raises its four neighbours up to their mask
    while head != tail:
        p = queue[head]
        head = head + 1 if head + 1 < size else 0
        y, x = p // W, p % W
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
                    queue[tail] = ny * W + nx
                    tail = tail + 1 if tail + 1 < size else 0
    return out


@kernel
def erode_cross(image):
    """Grey erosion by the 4-connected cross, ignoring pixels off the image.

    ``skimage.morphology.erosion(image, disk(1))`` as MeasureGranularity
    erodes before each reconstruction (scikit-image's ``mode="reflect"``
    only repeats pixels the cross already covers).
    """
    H, W = image.shape
    out = np.empty_like(image)
    for y in range(H):
        for x in range(W):
            v = image[y, x]
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < H and 0 <= nx < W:
                    v = min(v, image[ny, nx])
            out[y, x] = v
    return out


@kernel
def bilinear_weights(cell_start, y, x, shape):
    """How much each pixel of an image of ``shape`` weighs in each cell's bilinear mean.

    cp_measure's ``_make_fused_upsample_mean`` (MeasureGranularity restores
    each reconstruction to the original scale with
    ``scipy.ndimage.map_coordinates(order=1)``, 0 beyond the last row or
    column, then averages it per object): the sum of a cell's interpolated
    values at its points ``(y, x)`` (>= 0; cell ``i`` owns points
    ``cell_start[i]`` to ``cell_start[i + 1] - 1``) is a fixed weighted sum
    of the image's pixels. Returns the ``cell``, flat image pixel ``index``
    and ``weight`` of every non-zero weight.
    """
    H, W = shape[0], shape[1]
    n_cells = cell_start.size - 1
    cell = np.empty(4 * y.size, np.int64)
    index = np.empty(4 * y.size, np.int64)
    weight = np.empty(4 * y.size)
    total = np.zeros(H * W)  # scratch, zero again after each cell
    n = 0
    for i in range(n_cells):
        first = n
        for p in range(cell_start[i], cell_start[i + 1]):
            if y[p] > H - 1 or x[p] > W - 1:
                continue
            y0, x0 = int(y[p]), int(x[p])
            fy, fx = y[p] - y0, x[p] - x0
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
        for e in range(first, n):
            cell[e], weight[e] = i, total[index[e]]
            total[index[e]] = 0.0
    return cell[:n].copy(), index[:n].copy(), weight[:n].copy()
