"""Per-object intensity sums of CellProfiler's MeasureObjectIntensity."""

import numpy as np

from . import kernel


@kernel
def intensity_statistics(values, rows, cols, starts, counts, out):
    """Integrated, mean, standard deviation, minimum and maximum intensity of every object,
    its intensity-weighted centre and its brightest pixel.

    CellProfiler's MeasureObjectIntensity (``scipy.ndimage`` sums per label):
    the integrated intensity is the sum of the object's pixels, the standard
    deviation the population one (two passes, as ``numpy.std``), the centre
    of mass ``sum(v row) / sum(v)`` (and likewise for columns; NaN when the
    sum is 0) and the brightest pixel the first one with the maximum in
    row-major order. An object without pixels gets NaN everywhere.

    Parameters
    ----------
    values : (M,) ndarray of float32
        Intensities of every object's pixels, object after object, row-major.
    rows, cols : (M,) ndarrays of int32
        Their coordinates.
    starts, counts : (N,) ndarrays of intp
        Where each object's pixels start and how many there are.
    out : (N, 9) ndarray of float64
        Receives integrated, mean, std, min and max intensity, the centre of
        mass (row, column) and the brightest pixel (row, column) per object.
    """
    for o in range(len(starts)):
        first, n = starts[o], counts[o]
        if n == 0:
            out[o, :] = np.nan
            continue
        total = total_row = total_col = 0.0
        brightest = first
        for p in range(first, first + n):
            v = np.float64(values[p])
            total += v
            total_row += v * rows[p]
            total_col += v * cols[p]
            if values[p] > values[brightest]:
                brightest = p
        lowest = values[first]
        squares = 0.0
        mean = total / n
        for p in range(first, first + n):
            lowest = min(lowest, values[p])
            squares += (values[p] - mean) ** 2
        out[o, 0] = total
        out[o, 1] = mean
        out[o, 2] = np.sqrt(squares / n)
        out[o, 3] = lowest
        out[o, 4] = values[brightest]
        out[o, 5] = total_row / total if total != 0 else np.nan
        out[o, 6] = total_col / total if total != 0 else np.nan
        out[o, 7] = rows[brightest]
        out[o, 8] = cols[brightest]
