"""Per-object intensity sums of CellProfiler's MeasureObjectIntensity."""

import numpy as np

from . import kernel


@kernel
def intensity_statistics(values, rows, cols, starts, counts, keep, out):
    """Integrated, mean, standard deviation, minimum and maximum intensity of every object,
    its intensity-weighted centre, its brightest pixel and its centroid.

    CellProfiler's MeasureObjectIntensity (``scipy.ndimage`` sums per label)
    over the pixels an object keeps (all of them, or its outline for the
    ``Edge`` features): the integrated intensity is their sum, the
    standard deviation the population one (two passes, as ``numpy.std``), the
    centre of mass ``sum(v row) / sum(v)`` (and likewise for columns; NaN when
    the sum is 0), the brightest pixel the first one with the maximum in
    row-major order and the centroid their mean row and column. An object
    without such pixels gets NaN everywhere (and a count of 0).

    Parameters
    ----------
    values : (M,) ndarray of float32
        Intensities of every object's pixels, object after object, row-major.
    rows, cols : (M,) ndarrays of int32
        Their coordinates.
    starts, counts : (N,) ndarrays of intp
        Where each object's pixels start and how many there are.
    keep : (M,) ndarray of uint8, or None
        Non-zero for the pixels to measure; None: all (compiled apart).
    out : (N, 12) ndarray of float64
        Receives integrated, mean, std, min and max intensity, the centre of
        mass (row, column), the brightest pixel (row, column), the centroid
        (row, column) and the number of pixels measured, per object.
    """
    for o in range(len(starts)):
        first, last = starts[o], starts[o] + counts[o]
        n = 0
        total = total_row = total_col = sum_row = sum_col = 0.0
        brightest, lowest, highest = first, np.inf, -np.inf
        for p in range(first, last):
            if keep is None or keep[p]:
                v = np.float64(values[p])
                n += 1
                total += v
                total_row += v * rows[p]
                total_col += v * cols[p]
                sum_row += rows[p]
                sum_col += cols[p]
                lowest = min(lowest, v)
                if v > highest:
                    brightest, highest = p, v
        out[o, 11] = n
        if n == 0:
            out[o, :11] = np.nan
            continue
        mean = total / n
        squares = 0.0
        for p in range(first, last):
            if keep is None or keep[p]:
                squares += (values[p] - mean) * (values[p] - mean)
        out[o, 0] = total
        out[o, 1] = mean
        out[o, 2] = np.sqrt(squares / n)
        out[o, 3] = lowest
        out[o, 4] = highest
        out[o, 5] = total_row / total if total != 0 else np.nan
        out[o, 6] = total_col / total if total != 0 else np.nan
        out[o, 7] = rows[brightest]
        out[o, 8] = cols[brightest]
        out[o, 9] = sum_row / n
        out[o, 10] = sum_col / n
