"""Grey-level co-occurrence matrices and the Haralick features computed from them.

CellProfiler's MeasureTexture counts each object's co-occurrence matrices
(mahotas ``cooccurence``) and reduces each to Haralick's 13 features (mahotas
``haralick_features``); here a matrix keeps only its non-empty upper triangle.
"""

import numpy as np

from . import kernel


@kernel
def cooccurrence_matrices(levels, cell_start, rows, cols, shapes, offsets):
    """Symmetric co-occurrence matrices of every cell, one per direction.

    ``mahotas.features.texture.cooccurence(crop, direction, symmetric=True)``
    as MeasureTexture calls it: the pixel pairs ``(p, p + offset)`` of a cell,
    neither of level 0. Pairs ``(a, b)`` and ``(b, a)`` are one entry ``(min,
    max)``.

    ``levels`` (M,) uint8, ``rows`` and ``cols`` (M,) int32 give every mask
    pixel's level and place in its crop, cells one after another (cell ``i``
    owns pixels ``cell_start[i]`` to ``cell_start[i + 1] - 1``); ``shapes``
    are the crops' shapes, ``offsets`` (D, 2) the ``(dy, dx)`` of each
    direction. Returns ``matrix_start`` (N D + 1): the matrix of cell ``i`` in
    direction ``d`` holds entries ``matrix_start[i D + d]`` to
    ``matrix_start[i D + d + 1] - 1``, and the entries' ``low <= high``
    levels (uint8) and ``count`` of pixel pairs (int64, > 0).
    """
    n_cells, n_dir = shapes.shape[0], offsets.shape[0]
    matrix_start = np.zeros(n_cells * n_dir + 1, np.int64)
    low = np.empty(levels.size * n_dir, np.uint8)
    high = np.empty(levels.size * n_dir, np.uint8)
    count = np.empty(levels.size * n_dir, np.int64)
    crop = np.zeros(max(1, (shapes[:, 0] * shapes[:, 1]).max()) if n_cells else 1, np.uint8)
    matrix = np.zeros((256, 256), np.int64)  # scratch, zero again after each direction
    n = 0
    for i in range(n_cells):
        height, width = shapes[i, 0], shapes[i, 1]
        for p in range(cell_start[i], cell_start[i + 1]):  # the cell's levels, 0 elsewhere
            crop[rows[p] * width + cols[p]] = levels[p]
        for d in range(n_dir):
            first = n
            for p in range(cell_start[i], cell_start[i + 1]):
                a = levels[p]
                y, x = rows[p] + offsets[d, 0], cols[p] + offsets[d, 1]
                if a == 0 or y < 0 or y >= height or x < 0 or x >= width:
                    continue
                b = crop[y * width + x]
                if b == 0:
                    continue
                r, c = min(a, b), max(a, b)
                if matrix[r, c] == 0:  # a new entry
                    low[n], high[n] = r, c
                    n += 1
                matrix[r, c] += 1
            for e in range(first, n):
                count[e] = matrix[low[e], high[e]]
                matrix[low[e], high[e]] = 0
            matrix_start[i * n_dir + d + 1] = n
        for p in range(cell_start[i], cell_start[i + 1]):
            crop[rows[p] * width + cols[p]] = 0
    return matrix_start, low[:n].copy(), high[:n].copy(), count[:n].copy()


@kernel
def _entropy(p, size):
    """Entropy in bits of ``p[:size]``, with ``0 log 0 = 0`` (mahotas' convention)."""
    h = 0.0
    for k in range(size):
        if p[k] > 0:
            h -= p[k] * np.log2(p[k])
    return h


@kernel
def haralick_features(matrix_start, low, high, count, qmin, qmax, n_dir):
    """The 13 Haralick features of every co-occurrence matrix.

    ``mahotas.features.texture.haralick_features`` as MeasureTexture calls
    it, from the matrices of :func:`cooccurrence_matrices` (``n_dir`` per
    cell), levels taken relative to the cell's lowest non-zero level
    ``qmin`` (less rounding; ``qmax`` is its highest). With ``p`` the
    symmetric matrix normalised to sum 1 and its marginals ``p_x``,
    ``p_{x+y}`` and ``p_{|x-y|}``: angular second moment ``sum p^2``,
    contrast ``sum k^2 p_{|x-y|}(k)``, correlation ``(E[ij] - mu^2) /
    sigma^2`` (1 when ``sigma = 0``), variance ``sigma^2`` of ``p_x``,
    inverse difference moment ``sum p_{|x-y|}(k) / (1 + k^2)``, sum average,
    variance and entropy of ``p_{x+y}``, entropy of ``p``, difference
    variance (of the ``p_{|x-y|}`` vector over ``qmax + 1`` entries) and
    entropy, and the information measures of correlation with ``HXY1 = HXY2
    = 2 HX`` (exact for a symmetric matrix); entropies in bits. Returns (N D,
    13) float64, NaN for a matrix without pairs.
    """
    n_matrices = matrix_start.size - 1
    out = np.full((n_matrices, 13), np.nan)
    px = np.zeros(256)  # p_x, then p_{x+y} and p_{|x-y|}, as pair counts first
    pxpy = np.zeros(512)
    pxmy = np.zeros(256)
    for g in range(n_matrices):
        first, last = matrix_start[g], matrix_start[g + 1]
        if first == last:
            continue
        q0 = qmin[g // n_dir]
        size = qmax[g // n_dir] - q0 + 1
        px[:size] = 0.0
        pxpy[: 2 * size] = 0.0
        pxmy[:size] = 0.0
        pairs = 0.0
        for e in range(first, last):
            pairs += count[e]
        total = 2.0 * pairs  # every pair counts as (a, b) and as (b, a)
        asm = entropy = 0.0
        for e in range(first, last):
            r, c, n = low[e] - q0, high[e] - q0, count[e]
            h = n / total  # p(r, c), and p(c, r)
            p = h + h if r == c else h
            asm += h * p
            entropy += h * np.log2(p)
            px[r] += n
            px[c] += n
            pxpy[r + c] += n
            pxmy[c - r] += n
        asm *= 2.0
        entropy *= -2.0

        mean = square = 0.0
        for k in range(size):
            px[k] /= total
            mean += px[k] * k
            square += px[k] * (k * k)
        sum_mean = sum_square = 0.0
        for k in range(2 * size):
            pxpy[k] /= pairs
            sum_mean += pxpy[k] * k
            sum_square += pxpy[k] * (k * k)
        contrast = idm = diff_square = 0.0
        for k in range(size):
            pxmy[k] /= pairs
            contrast += pxmy[k] * (k * k)
            idm += pxmy[k] / (1.0 + k * k)
            diff_square += pxmy[k] * pxmy[k]
        hx = _entropy(px, size)
        variance = square - mean * mean
        cross = (sum_square - 2.0 * square) / 2.0  # E[ij] = (E[(i + j)^2] - 2 E[i^2]) / 2
        fm1 = qmax[g // n_dir] + 1.0  # mahotas' matrix size

        out[g, 0] = asm
        out[g, 1] = contrast
        out[g, 2] = (cross - mean * mean) / variance if variance > 0 else 1.0
        out[g, 3] = variance
        out[g, 4] = idm
        out[g, 5] = sum_mean + 2 * q0
        out[g, 6] = sum_square - sum_mean * sum_mean
        out[g, 7] = _entropy(pxpy, 2 * size)
        out[g, 8] = entropy
        out[g, 9] = diff_square / fm1 - 1.0 / (fm1 * fm1)
        out[g, 10] = _entropy(pxmy, size)
        out[g, 11] = (entropy - 2 * hx) / hx if hx > 0 else entropy - 2 * hx
        out[g, 12] = np.sqrt(max(0.0, 1.0 - np.exp(-2.0 * (2 * hx - entropy))))
    return out
