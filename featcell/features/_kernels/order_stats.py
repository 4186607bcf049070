"""Per-cell order statistics of CellProfiler's MeasureObjectIntensity."""

import numpy as np

from . import kernel


@kernel
def quartiles_and_mad(ordered, starts, counts, at_n, out):
    """Lower quartile, median, MAD and upper quartile of every cell's sorted values.

    CellProfiler's MeasureObjectIntensity: quantile ``q`` of an object's ``n``
    sorted values ``x`` is read at position ``p = n q`` (``at_n``, CellProfiler
    and cp_measure ``legacy=True``) or ``p = (n - 1) q`` (``numpy.percentile``):
    ``x[lo] (1 - f) + x[hi] f`` with ``lo = min(floor(p), n - 1)``,
    ``hi = min(lo + 1, n - 1)`` and ``f = p - lo``. The MAD is the median,
    read the same way, of the deviations ``|x - median|``; the values below
    the median, walked down from it, and those above, walked up, give the
    deviations in two ascending runs, so merging them from the median outward
    reaches the ones needed without sorting them.

    Parameters
    ----------
    ordered : (M,) ndarray of float32
        Values sorted within each cell, cell after cell.
    starts, counts : (N,) ndarrays of intp
        Where each cell's values start and how many there are (at least one).
    at_n : bool
        Position ``n q`` (CellProfiler) rather than ``(n - 1) q``.
    out : (N, 4) ndarray of float64
        Receives lower quartile, median, MAD and upper quartile per cell.
    """
    for c in range(len(starts)):
        x = ordered[starts[c] : starts[c] + counts[c]]
        lower = _quantile(x, 0.25, at_n)
        median = _quantile(x, 0.5, at_n)
        upper = _quantile(x, 0.75, at_n)
        # deviations, smallest first: below[i] = median - x[i] going down, above up
        lo, hi, f = _position(len(x), 0.5, at_n)
        below = np.searchsorted(x, median) - 1  # the last value below the median
        above = below + 1
        low_deviation = deviation = 0.0
        for rank in range(hi + 1):
            if above >= len(x) or (below >= 0 and median - x[below] <= x[above] - median):
                deviation = median - x[below]
                below -= 1
            else:
                deviation = x[above] - median
                above += 1
            if rank == lo:
                low_deviation = deviation
        out[c, 0] = lower
        out[c, 1] = median
        out[c, 2] = low_deviation * (1.0 - f) + deviation * f
        out[c, 3] = upper


@kernel
def _position(n, q, at_n):
    """Lower index, upper index and weight of the upper one for quantile ``q`` of ``n`` values."""
    p = n * q if at_n else (n - 1) * q
    lo = min(int(np.floor(p)), n - 1)
    return lo, min(lo + 1, n - 1), p - lo


@kernel
def _quantile(x, q, at_n):
    """Quantile ``q`` of the sorted ``x``, interpolated at :func:`_position`."""
    lo, hi, f = _position(len(x), q, at_n)
    return np.float64(x[lo]) * (1.0 - f) + np.float64(x[hi]) * f
