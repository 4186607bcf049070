"""The objects of a label image: their boxes and their windows (``CellSet.from_labels``)."""

import numpy as np

from . import kernel


@kernel
def label_boxes(labels):
    """Ids and bounding boxes of the objects of a label image, in one pass.

    ``scipy.ndimage.find_objects`` (regionprops' ``bbox``): per id present
    (ascending), the first and one-past-last row and column it covers.

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
    return ids.astype(np.int64), np.stack((top[ids], left[ids], bottom[ids], right[ids]), axis=1)


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


@kernel
def mask_runs(mask, shapes, origins):
    """Every cell's mask as horizontal runs: cell, row, first and last column of each run.

    The run-length encoding the shape features are measured from, in image
    coordinates (``origins``: each crop's top-left corner), sorted by cell,
    row and column; ``mask`` is laid out as in :func:`mask_pixels`.
    """
    obj = row = first = last = np.empty(0, np.intp)
    for fill in (False, True):  # count the runs, then record them
        k = p = 0
        for c in range(len(shapes)):
            width = shapes[c, 1]
            for i in range(shapes[c, 0]):
                j = 0
                while j < width:
                    if mask[p + j]:
                        start = j
                        while j < width and mask[p + j]:
                            j += 1
                        if fill:
                            obj[k], row[k] = c, i + origins[c, 0]
                            first[k], last[k] = start + origins[c, 1], j - 1 + origins[c, 1]
                        k += 1
                    j += 1
                p += width
        if not fill:
            obj, row = np.empty(k, np.intp), np.empty(k, np.intp)
            first, last = np.empty(k, np.intp), np.empty(k, np.intp)
    return obj, row, first, last
