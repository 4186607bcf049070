"""The objects of a label image: their boxes and their windows (``CellSet.from_labels``)."""

import numpy as np

from . import kernel


@kernel
def label_boxes(labels):
    """Ids, bounding boxes and border contact of the objects of a label image, in one pass.

    ``scipy.ndimage.find_objects`` as CellProfiler's IdentifyPrimaryObjects
    and regionprops' ``bbox`` see the objects: per id present (ascending), the
    first and one-past-last row and column it covers, and whether it touches
    the image border.

    Returns
    -------
    ids : (N,) ndarray of int64
    boxes : (N, 4) ndarray of intp
        Top, left, bottom, right (exclusive).
    """
    H, W = labels.shape
    top = np.full(labels.max() + 1 if labels.size else 1, H, np.intp)
    bottom, left, right = np.zeros_like(top), np.full_like(top, W), np.zeros_like(top)
    for y in range(H):
        x = 0
        while x < W:  # run by run: the pixels x .. end - 1 of the row have label o
            o, end = labels[y, x], x + 1
            while end < W and labels[y, end] == o:
                end += 1
            if o:
                top[o] = min(top[o], y)
                bottom[o] = y + 1
                left[o] = min(left[o], x)
                right[o] = max(right[o], end)
            x = end
    ids = np.flatnonzero(bottom[1:]) + 1
    boxes = np.empty((ids.size, 4), np.intp)
    for k in range(ids.size):
        o = ids[k]
        boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = top[o], left[o], bottom[o], right[o]
    return ids.astype(np.int64), boxes


@kernel
def gather_windows(stack, labels, ids, origins, ends, starts, values, mask, centroid):
    """Cut every object's window out of the image, with its mask and centroid.

    What regionprops' ``image``, ``image_intensity`` and ``centroid`` give per
    object (``Location_Center`` of CellProfiler's MeasureObjectSizeShape):
    window ``k`` spans rows ``origins[k, 0]`` to ``ends[k, 0] - 1`` and columns
    ``origins[k, 1]`` to ``ends[k, 1] - 1``; its pixels go row-major to
    ``values[:, starts[k]:]`` and whether they belong to object ``ids[k]`` to
    ``mask[starts[k]:]`` (uint8: a bool array's bytes); the centroid is the
    mean row and column of those pixels (whole-number sums: exact).
    """
    for k in range(ids.size):
        y0, x0, y1, x1 = origins[k, 0], origins[k, 1], ends[k, 0], ends[k, 1]
        p, width, o = starts[k], x1 - x0, ids[k]
        count = rows = cols = 0
        for y in range(y0, y1):
            for c in range(stack.shape[0]):  # (row by row: block copies)
                values[c, p : p + width] = stack[c, y, x0:x1]
            line, inside = labels[y, x0:x1], mask[p : p + width]
            n = n_cols = 0  # the row's object pixels and the sum of their columns
            for x in range(width):
                inside[x] = line[x] == o
                n += inside[x]
                n_cols += inside[x] * x
            count += n
            rows += n * (y - y0)
            cols += n_cols
            p += width
        centroid[k, 0] = rows / count + y0
        centroid[k, 1] = cols / count + x0


@kernel
def mask_pixels(mask, shapes, index, counts, obj, row, col):
    """Every cell's mask pixels in crop order: position, cell, row and column.

    The pixels regionprops' ``coords`` lists per object, for all the crops
    laid out one after another (``mask``: a bool array's bytes, crop after
    crop, row-major, of ``shapes``); ``counts`` receives each cell's number of them.
    """
    p = k = 0
    for c in range(len(shapes)):
        first = k
        for i in range(shapes[c, 0]):
            for j in range(shapes[c, 1]):
                if mask[p]:
                    index[k], obj[k], row[k], col[k] = p, c, i, j
                    k += 1
                p += 1
        counts[c] = k - first
