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
    n_angles``. ``values`` (float64), ``rows`` and ``cols`` (int32) are the
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
        low, high = values[first], values[first]
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


@kernel
def gabor_energy(crops, crop_start, shapes, cell_start, rows, cols, kx, ky):
    """Modulus of Gabor filter responses at every mask pixel, each crop filtered alone.

    ``abs`` of ``skimage.filters.gabor(crop, frequency, theta)``'s complex
    response, ``mode="reflect"``, for several kernels: scikit-image's
    ``gabor_kernel`` (bandwidth 1, equal sigmas) is ``outer(ky, kx)``, so the
    crop around each cell's bounding box is convolved along rows with
    ``kx``, then along columns with ``ky``. ``crops`` (float64) holds the
    crops one after another, crop ``i`` at ``crop_start[i]`` with shape
    ``shapes[i]``; the mask pixels are as in :func:`cellprofiler_gabor`;
    ``kx`` and ``ky`` (K, L) complex128 are the factors of ``K`` kernels.
    Returns the (K, M) energies.
    """
    n_kernels, half = kx.shape[0], kx.shape[1] // 2
    energy = np.empty((n_kernels, rows.size))
    for cell in range(cell_start.size - 1):
        first, last = cell_start[cell], cell_start[cell + 1]
        if first == last:
            continue
        height, width, start = shapes[cell, 0], shapes[cell, 1], crop_start[cell]
        top, left, bottom, right = height, width, 0, 0
        for p in range(first, last):
            top, bottom = min(top, rows[p]), max(bottom, rows[p] + 1)
            left, right = min(left, cols[p]), max(right, cols[p] + 1)
        # the bounding box and ``half`` pixels around it, mirrored past the crop's sides
        h, w = bottom - top, right - left
        block = np.empty((h + 2 * half, w + 2 * half))
        for r in range(h + 2 * half):
            y = _reflect(top - half + r, height)
            for c in range(w + 2 * half):
                block[r, c] = crops[start + y * width + _reflect(left - half + c, width)]
        for k in range(n_kernels):
            # along rows: along[r, c] = sum_t kx[t] block[r, c + 2 half - t]
            along_re = np.zeros((h + 2 * half, w))
            along_im = np.zeros((h + 2 * half, w))
            for r in range(h + 2 * half):
                row_re, row_im = along_re[r], along_im[r]
                for t in range(2 * half + 1):
                    a, b = kx[k, t].real, kx[k, t].imag
                    source = block[r, 2 * half - t : 2 * half - t + w]
                    if a != 0:
                        for c in range(w):
                            row_re[c] += a * source[c]
                    if b != 0:
                        for c in range(w):
                            row_im[c] += b * source[c]
            # along columns, between each row's first and last pixel:
            # response[r] = sum_t ky[t] along[r + 2 half - t]
            response_re, response_im = np.empty(w), np.empty(w)
            end = first  # the cell's pixels, row by row
            for r in range(h):
                start_of_row = end
                while end < last and rows[end] == top + r:
                    end += 1
                if end == start_of_row:
                    continue
                lo, hi = cols[start_of_row] - left, cols[end - 1] - left + 1
                out_re, out_im = response_re[: hi - lo], response_im[: hi - lo]
                out_re[:] = 0.0
                out_im[:] = 0.0
                for t in range(2 * half + 1):
                    a, b = ky[k, t].real, ky[k, t].imag
                    source_re = along_re[r + 2 * half - t, lo:hi]
                    source_im = along_im[r + 2 * half - t, lo:hi]
                    if a != 0:
                        for c in range(hi - lo):
                            out_re[c] += a * source_re[c]
                            out_im[c] += a * source_im[c]
                    if b != 0:
                        for c in range(hi - lo):
                            out_re[c] -= b * source_im[c]
                            out_im[c] += b * source_re[c]
                for p in range(start_of_row, end):
                    c = cols[p] - left - lo
                    energy[k, p] = math.hypot(out_re[c], out_im[c])
    return energy
