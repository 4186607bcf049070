"""The Feret diameters of CellProfiler's MeasureObjectSizeShape."""

import numpy as np

from . import kernel


@kernel
def feret_diameters(ys, xs, starts, counts, out):
    """Minimum and maximum Feret (caliper) diameter of every convex polygon.

    CellProfiler's ``MinFeretDiameter`` and ``MaxFeretDiameter`` (centrosome's
    ``feret_diameter`` on the convex hull of the pixel centres): the maximum is
    the largest distance between two vertices; the minimum, the smallest over
    the polygon's sides of the largest distance of a vertex from the side's
    line (0 for a point or a segment).

    Parameters
    ----------
    ys, xs : (M,) ndarrays of float64
        Vertices of every polygon, in order round it, polygon after polygon.
    starts, counts : (N,) ndarrays of intp
        First vertex and number of vertices (at least one) of every polygon.
    out : (N, 2) ndarray of float64
        Receives the minimum and maximum diameter of every polygon.
    """
    for o in range(len(starts)):
        first, n = starts[o], counts[o]
        largest = 0.0
        for i in range(first, first + n):
            for j in range(first, first + n):
                dy, dx = ys[j] - ys[i], xs[j] - xs[i]
                largest = max(largest, dy * dy + dx * dx)
        narrowest = np.inf if n >= 3 else 0.0
        for i in range(first, first + n if n >= 3 else first):
            following = i + 1 if i + 1 < first + n else first  # the side i -> i + 1
            ey, ex = ys[following] - ys[i], xs[following] - xs[i]
            length = np.hypot(ey, ex)
            width = 0.0
            for j in range(first, first + n):
                dy, dx = ys[j] - ys[i], xs[j] - xs[i]
                width = max(width, np.abs(ey * dx - ex * dy) / length)
            narrowest = min(narrowest, width)
        out[o, 0] = narrowest
        out[o, 1] = np.sqrt(largest)
