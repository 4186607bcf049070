"""The minimum enclosing circle of CellProfiler's Zernike features."""

import numpy as np

from . import kernel


@kernel
def minimum_enclosing_circle(ys, xs, starts, counts, out):
    """Minimum enclosing circle of every convex polygon, by Chrystal's algorithm.

    centrosome's ``minimum_enclosing_circle`` (``cpmorphology``), which
    CellProfiler's MeasureObjectSizeShape uses for the Zernike features, one
    polygon at a time with the same arithmetic, so that the circles agree to
    the last bit: start from the side S0-S1 (the first two vertices); find the
    vertex V seeing it under the smallest angle S0-V-S1. If that angle is not
    acute, S0-S1 is a diameter; if the triangle S0-S1-V has no obtuse angle,
    the circle is its circumcircle; otherwise V replaces S0 if the angle at S0
    is obtuse, else S1, and the search goes on. (Among vertices seeing S
    under exactly the same angle, centrosome takes the first one a sort of
    all objects' angles puts first; this takes the first in polygon order.)

    Parameters
    ----------
    ys, xs : (M,) ndarrays of float64
        Vertices (row, column) of every polygon, polygon after polygon.
    starts, counts : (N,) ndarrays of intp
        First vertex and number of vertices (at least one) of every polygon.
    out : (N, 3) ndarray of float64
        Receives the centre row, centre column and radius of every circle.

    References
    ----------
    .. [1] Chrystal P, "On the problem to construct the minimum circle
       enclosing n given points in a plane", Proc. Edinburgh Math. Soc. 3,
       30-33 (1885).
    """
    right = np.pi / 2
    for o in range(len(starts)):
        first, n = starts[o], counts[o]
        if n == 1:
            out[o, 0], out[o, 1], out[o, 2] = ys[first], xs[first], 0.0
            continue
        if n == 2:
            cy = (ys[first] + ys[first + 1]) / 2
            cx = (xs[first] + xs[first + 1]) / 2
            out[o, 0], out[o, 1] = cy, cx
            out[o, 2] = np.sqrt((cy - ys[first]) ** 2 + (cx - xs[first]) ** 2)
            continue
        s0, s1 = first, first + 1
        while True:
            # the vertex seeing S0-S1 under the smallest angle, and the angles at S1 and S0
            s01y, s01x = ys[s0] - ys[s1], xs[s0] - xs[s1]
            s01_squared = s01y * s01y + s01x * s01x
            v, at_v, at_s1, at_s0 = -1, np.inf, 0.0, 0.0
            for k in range(first, first + n):
                if k == s0 or k == s1:
                    continue
                vs1y, vs1x = ys[k] - ys[s1], xs[k] - xs[s1]
                vs0y, vs0x = ys[k] - ys[s0], xs[k] - xs[s0]
                cosine_s1 = (s01y * vs1y + s01x * vs1x) / np.sqrt(
                    s01_squared * (vs1y * vs1y + vs1x * vs1x)
                )
                cosine_s0 = (-s01y * vs0y + -s01x * vs0x) / np.sqrt(
                    s01_squared * (vs0y * vs0y + vs0x * vs0x)
                )
                angle_s1 = np.abs(np.arccos(cosine_s1))
                angle_s0 = np.abs(np.arccos(cosine_s0))
                angle_v = np.pi - angle_s1 - angle_s0
                if angle_v < at_v:
                    v, at_v, at_s1, at_s0 = k, angle_v, angle_s1, angle_s0
            if at_v >= right:  # S0-S1 is a diameter
                out[o, 0] = (ys[s0] + ys[s1]) / 2
                out[o, 1] = (xs[s0] + xs[s1]) / 2
                out[o, 2] = np.sqrt((ys[s0] - ys[s1]) ** 2 + (xs[s0] - xs[s1]) ** 2) / 2
                break
            if at_s1 <= right and at_s0 <= right:  # the circumcircle of S0, S1, V
                cy, cx = _circumcentre(ys[s0], xs[s0], ys[s1], xs[s1], ys[v], xs[v])
                out[o, 0], out[o, 1] = cy, cx
                out[o, 2] = np.sqrt((ys[s0] - cy) ** 2 + (xs[s0] - cx) ** 2)
                break
            if at_s0 > right:
                s0 = v
            else:
                s1 = v


@kernel
def _circumcentre(ay, ax, by, bx, cy, cx):
    """Circumcentre of the triangle ABC, with centrosome's formula (for identical rounding)."""
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    a2, b2, c2 = ay * ay + ax * ax, by * by + bx * bx, cy * cy + cx * cx
    x = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
    y = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
    return y, x
