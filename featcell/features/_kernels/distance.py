"""The Euclidean distance transform of CellProfiler's radii and radial distribution."""

import numpy as np

from . import kernel


@kernel
def squared_distance_to_background(inside, boxes, out):
    """Squared Euclidean distance from every pixel of each box to the nearest pixel of the
    same box that is not ``inside`` (0 there), written into ``out``.

    What ``scipy.ndimage.distance_transform_edt`` computes for CellProfiler's
    MeasureObjectSizeShape radii and for centrosome's ``distance_to_edge``
    (MeasureObjectIntensityDistribution), box by box: Felzenszwalb and
    Huttenlocher's exact algorithm, the distance to the nearest background
    pixel of the same column, then the lower envelope of the parabolas
    ``(x - q)**2 + f(q)`` along every row. A box should hold some background
    (a ring round the object); pixels without any get more than any distance
    inside the box.

    Parameters
    ----------
    inside : (H, W) ndarray of uint8
        The canvas (a bool array's bytes): object pixels 1.
    boxes : (N, 4) ndarray of intp
        Top, left, height and width of every box on the canvas.
    out : (H, W) ndarray of float64
        Receives the squared distances inside the boxes (elsewhere untouched).

    References
    ----------
    .. [1] Felzenszwalb PF, Huttenlocher DP, "Distance transforms of sampled
       functions", Theory of Computing 8, 415-428 (2012).
    """
    widest = max(boxes[:, 3].max(), 1) if len(boxes) else 1
    f = np.empty(widest, np.intp)  # a row's squared column distances (whole numbers)
    g = np.empty(widest, np.intp)  # f(q) + q**2
    v = np.empty(widest, np.intp)  # apexes of the parabolas of the lower envelope
    for b in range(len(boxes)):
        top, left, height, width = boxes[b]
        far = float(height + width)  # farther than any background pixel of the box
        # 1. down, then up the columns (row by row, in memory order): the distance to
        # the nearest background pixel of the same column
        for j in range(width):
            out[top, left + j] = far if inside[top, left + j] else 0.0
        for i in range(top + 1, top + height):
            above, here = out[i - 1, left : left + width], out[i, left : left + width]
            mask = inside[i, left : left + width]
            for j in range(width):
                here[j] = min(above[j] + 1.0, far) if mask[j] else 0.0
        for i in range(top + height - 2, top - 1, -1):
            below, here = out[i + 1, left : left + width], out[i, left : left + width]
            for j in range(width):
                here[j] = min(here[j], below[j] + 1.0)
        # 2. along the rows: min over q of (x - q)**2 + f(q), the lower envelope of the
        # parabolas. Parabola q overtakes parabola p at (g(q) - g(p)) / 2 (q - p); all
        # values are whole numbers, so the comparisons of these points are made on the
        # cross products, exactly
        for i in range(top, top + height):
            here = out[i, left : left + width]
            for q in range(width):
                f[q] = int(here[q]) ** 2
                g[q] = f[q] + q * q
            n = 0  # the envelope is v[0..n], v[k] lowest between its crossings with its neighbours
            v[0] = 0
            for q in range(1, width):
                # drop v[n] while q overtakes it no later than v[n] overtook v[n - 1]
                while n > 0:
                    p, r = v[n - 1], v[n]
                    if (g[q] - g[r]) * (r - p) > (g[r] - g[p]) * (q - r):
                        break
                    n -= 1
                n += 1
                v[n] = q
            k = 0
            for q in range(width):
                while k < n and g[v[k + 1]] - g[v[k]] < 2 * q * (v[k + 1] - v[k]):
                    k += 1
                here[q] = (q - v[k]) ** 2 + f[v[k]]


@kernel
def object_radii(squared, starts, counts, out):
    """Maximum, mean and median distance to the background of each object's pixels.

    CellProfiler's MeasureObjectSizeShape ``MaximumRadius``, ``MeanRadius``
    and ``MedianRadius``: statistics of the distance transform over the
    object's pixels (the median averages the two middle values for an even
    count). The squared distances are integers, so each object's statistics
    come from a histogram of them rather than a sort.

    Parameters
    ----------
    squared : (M,) ndarray of float64
        Squared distances (:func:`squared_distance_to_background`) of the objects'
        pixels, object after object.
    starts, counts : (N,) ndarrays of intp
        Where each object's pixels start in ``squared``, and how many there are.
    out : (N, 3) ndarray of float64
        Receives maximum, mean and median radius per object (NaN without pixels).
    """
    for o in range(len(starts)):
        count = counts[o]
        if count == 0:
            out[o, :] = np.nan
            continue
        values = squared[starts[o] : starts[o] + count]
        histogram = np.zeros(int(values.max()) + 1, np.intp)
        for value in values:
            histogram[int(value)] += 1
        # the largest value, the sum, and the values of ranks (count - 1) // 2 and count // 2
        total, seen, low, high, largest = 0.0, 0, -1, -1, 0
        for value in range(len(histogram)):
            if histogram[value]:
                total += histogram[value] * np.sqrt(value)
                largest = value
                seen += histogram[value]
                if low < 0 and seen > (count - 1) // 2:
                    low = value
                if high < 0 and seen > count // 2:
                    high = value
        out[o, 0] = np.sqrt(largest)
        out[o, 1] = total / count
        out[o, 2] = (np.sqrt(low) + np.sqrt(high)) / 2
