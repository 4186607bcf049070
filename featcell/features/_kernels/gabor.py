"""Gabor texture: CellProfiler's per-object Gabor score and Gabor filter energies."""

import math

import numpy as np

from . import kernel


@kernel
def cellprofiler_gabor(values, cell_start, rows, cols, scale, n_angles):
    """CellProfiler 3's Gabor texture score of every cell at one scale.

    ``MeasureTexture.run_one_gabor`` with ``centrosome.filter.gabor``: the
    cell's intensities are rescaled to [0, 1] by its minimum and maximum
    and centred on their mean; a Gabor wavelet centred on the cell's
    centroid (wavelength ``scale``, Gaussian envelope of sigma ``sqrt(area /
    pi) / 3``, scaled by ``1000 / (2 pi sigma^2)``), with its real and
    imaginary parts made zero-mean over the cell, is correlated with them;
    the score is the largest modulus over the orientations ``pi k /
    n_angles``. ``values`` (float32), ``rows`` and ``cols`` (int32) are the
    mask pixels' intensities and places, cells one after another (cell ``i``
    owns pixels ``cell_start[i]`` to ``cell_start[i + 1] - 1``). Returns the
    (N,) scores.
    """
    n_cells = cell_start.size - 1
    best = np.zeros(n_cells)
    centred = np.empty(values.size)
    for cell in range(n_cells):
        first, last = cell_start[cell], cell_start[cell + 1]
        area = last - first
        if area == 0:
            continue
        low = high = np.float64(values[first])  # (float64 from here on)
        mean_row = mean_col = 0.0
        top, left, bottom, right = rows[first], cols[first], rows[first], cols[first]
        for p in range(first, last):
            low, high = min(low, values[p]), max(high, values[p])
            mean_row += rows[p]
            mean_col += cols[p]
            top, bottom = min(top, rows[p]), max(bottom, rows[p])
            left, right = min(left, cols[p]), max(right, cols[p])
        mean_row /= area
        mean_col /= area
        span = high - low if high > low else 1.0
        mean = 0.0
        for p in range(first, last):
            centred[p] = (values[p] - low) / span
            mean += centred[p]
        mean /= area
        total = 0.0  # of the centred values (0 but for round-off)
        for p in range(first, last):
            centred[p] -= mean
            total += centred[p]
        # the wavelet at (i, j) from the centroid is a product of a row and a column term:
        # exp(-(i^2 + j^2) / 2 sigma^2) exp(i phase), phase = 2 pi / scale (i cos + j sin)
        sigma = math.sqrt(area / math.pi) / 3.0
        i = np.arange(top, bottom + 1) - mean_row
        j = np.arange(left, right + 1) - mean_col
        row_envelope = np.exp(-(i * i) / (2 * sigma**2)) * (1000.0 / (2.0 * math.pi * sigma**2))
        col_envelope = np.exp(-(j * j) / (2 * sigma**2))
        for k in range(n_angles):
            theta = math.pi * k / n_angles
            row_phase = i * (math.cos(theta) * 2 * math.pi / scale)
            col_phase = j * (math.sin(theta) * 2 * math.pi / scale)
            row_cos, row_sin = np.cos(row_phase) * row_envelope, np.sin(row_phase) * row_envelope
            col_cos, col_sin = np.cos(col_phase) * col_envelope, np.sin(col_phase) * col_envelope
            # sum (g - mean g) x = sum g x - mean g sum x, for the real and imaginary parts
            sum_cos = sum_sin = real = imag = 0.0
            for p in range(first, last):
                r, c = rows[p] - top, cols[p] - left
                g_cos = row_cos[r] * col_cos[c] - row_sin[r] * col_sin[c]
                g_sin = row_sin[r] * col_cos[c] + row_cos[r] * col_sin[c]
                sum_cos += g_cos
                sum_sin += g_sin
                real += g_cos * centred[p]
                imag += g_sin * centred[p]
            real -= sum_cos / area * total
            imag -= sum_sin / area * total
            best[cell] = max(best[cell], math.hypot(real, imag))
    return best


@kernel
def _reflect(k, n):
    """Index ``k`` of an axis of length ``n`` extended by ``mode="reflect"`` (dcba|abcd|dcba)."""
    k %= 2 * n
    return 2 * n - 1 - k if k >= n else k


# the column convolutions of a Gabor kernel: yr * P, yi * Q, yr * Q and yi * P, as the
# column factor (of xr, xi, yr, yi) and the row pass (P or Q) that make each
_PRODUCTS = ((2, 0), (3, 1), (2, 1), (3, 0))


@kernel
def gabor_energy(crops, crop_start, shapes, cell_start, rows, cols, factors, first, second):
    """Modulus of Gabor filter responses at every mask pixel, each crop filtered alone.

    ``abs`` of ``skimage.filters.gabor(crop, frequency, theta)``'s complex
    response, ``mode="reflect"``: scikit-image's ``gabor_kernel`` (bandwidth
    1, equal sigmas) is ``outer(ky, kx)``, so the crop around each cell's
    bounding box is convolved along rows with ``kx = xr + i xi`` (giving ``P``
    and ``Q``), then along columns with ``ky = yr + i yi``: the response is
    ``yr * P - yi * Q + i (yr * Q + yi * P)``. The kernel of angle ``pi -
    theta`` is ``outer(ky, conj(kx))``, so its response, ``yr * P + yi * Q +
    i (yi * P - yr * Q)``, comes from the same four column convolutions.
    ``crops`` (float32) holds the crops one after another, crop ``i`` at
    ``crop_start[i]`` with shape ``shapes[i]``; the mask pixels are as in
    :func:`cellprofiler_gabor`. ``factors`` (K, 4, L) float64 holds ``xr,
    xi, yr, yi`` of ``K`` kernels. Returns the energies, kernel ``k``'s in
    row ``first[k]`` and its mirror's in row ``second[k]`` (none where -1).
    """
    span = factors.shape[2] - 1
    half = span // 2
    energy = np.empty((max(first.max(), second.max()) + 1, rows.size))
    # scratch for the largest crop, reused by every cell
    block = np.empty((shapes[:, 0].max() + span, shapes[:, 1].max() + span))
    along = np.empty((2, block.shape[0], shapes[:, 1].max()))  # P and Q
    column = np.empty((4, shapes[:, 1].max()))  # yr * P, yi * Q, yr * Q and yi * P on one row
    nonzero = np.empty(4, np.bool_)
    for cell in range(cell_start.size - 1):
        first_pixel, last_pixel = cell_start[cell], cell_start[cell + 1]
        if first_pixel == last_pixel:
            continue
        height, width, start = shapes[cell, 0], shapes[cell, 1], crop_start[cell]
        top, bottom, left, right = rows[first_pixel], rows[last_pixel - 1] + 1, width, 0
        for p in range(first_pixel, last_pixel):
            left, right = min(left, cols[p]), max(right, cols[p] + 1)
        h, w = bottom - top, right - left
        # the bounding box and ``half`` pixels around it, mirrored past the crop's sides
        for r in range(h + span):
            y = _reflect(top - half + r, height)
            for c in range(w + span):
                block[r, c] = crops[start + y * width + _reflect(left - half + c, width)]
        for k in range(factors.shape[0]):
            for f in range(4):
                nonzero[f] = (factors[k, f] != 0).any()
            # along rows: P[r, c] = sum_t xr[t] block[r, c + 2 half - t], Q with xi
            for x in range(2):
                for r in range(h + span if nonzero[x] else 0):
                    out = along[x, r, :w]
                    out[:] = 0.0
                    for t in range(span + 1):
                        tap, source = factors[k, x, t], block[r, span - t : span - t + w]
                        if tap != 0:
                            for c in range(w):
                                out[c] += tap * source[c]
            # along columns, between each row's first and last pixel:
            # (yr * P)[r, c] = sum_t yr[t] P[r + 2 half - t, c], and so on
            end = first_pixel  # the cell's pixels, row by row
            for r in range(h):
                row_start = end
                while end < last_pixel and rows[end] == top + r:
                    end += 1
                if end == row_start:
                    continue
                lo, n = cols[row_start] - left, cols[end - 1] - cols[row_start] + 1
                for j, (y, x) in enumerate(_PRODUCTS):
                    out = column[j, :n]
                    out[:] = 0.0
                    for t in range(span + 1 if nonzero[y] and nonzero[x] else 0):
                        tap, source = factors[k, y, t], along[x, r + span - t, lo : lo + n]
                        if tap != 0:
                            for c in range(n):
                                out[c] += tap * source[c]
                yr_p, yi_q, yr_q, yi_p = column[0], column[1], column[2], column[3]
                for p in range(row_start, end):
                    c = cols[p] - left - lo
                    re, im = yr_p[c] - yi_q[c], yr_q[c] + yi_p[c]
                    energy[first[k], p] = math.sqrt(re * re + im * im)
                    if second[k] >= 0:
                        re, im = yr_p[c] + yi_q[c], yi_p[c] - yr_q[c]
                        energy[second[k], p] = math.sqrt(re * re + im * im)
    return energy
