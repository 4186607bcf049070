"""Per-cell texture features: CellProfiler's MeasureTexture (Haralick, Gabor)
and MeasureGranularity, plus local binary patterns and Gabor filter energies,
vectorised across cells.

*Haralick.* The symmetric co-occurrence matrices of all cells come from one
``np.bincount`` per direction (or, when the matrices would be mostly empty,
one sort) of packed ``(cell, min level, max level)`` upper-triangle keys,
built with array slices of a canvas of all cells' bounding boxes (in batches
of about 65k pixels, to keep the arrays in cache); the angular second moment
and entropy are sums over the non-empty matrix entries, every other feature
comes from the marginal histograms, for all cells at once.

*Granularity.* CellProfiler's granular spectrum (subsampling, background
subtraction by a grey opening, then erosions and reconstructions) runs on a
canvas holding every cell's subsampled crop; the 16 reconstructions use
scikit-image's reconstruction kernel on integer ranks computed once.

*Gabor, LBP.* Per-pixel arithmetic on the cells' pixels (CellProfiler's
Gabor), or separable filtering of a canvas of all crops (Gabor energy, local
binary patterns), reduced per cell with ``np.bincount``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import pairwise
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk, reconstruction
from sklearn.utils._param_validation import Interval

from ._base import CellFeatureTransformer
from ._packing import ShelfPacking

try:  # the inner loop of skimage.morphology.reconstruction, fed with our own ranking
    from skimage.morphology._grayreconstruct import reconstruction_loop as _reconstruction_loop
except ImportError:  # pragma: no cover - private scikit-image API moved; public fallback
    _reconstruction_loop = None

__all__ = ["Texture"]

HARALICK_FEATURES = (
    "AngularSecondMoment",
    "Contrast",
    "Correlation",
    "Variance",
    "InverseDifferenceMoment",
    "SumAverage",
    "SumVariance",
    "SumEntropy",
    "Entropy",
    "DifferenceVariance",
    "DifferenceEntropy",
    "InfoMeas1",
    "InfoMeas2",
)
# (dy, dx) of CellProfiler's (and mahotas') directions _00, _01, _02, _03
_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))
_HARALICK_PIXELS = 65536  # mask pixels per batch of co-occurrence counting
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


# ---------------------------------------------------------------------- Haralick
def quantize(values, gray_levels=256):
    """Quantise intensities to ``gray_levels`` levels exactly as CellProfiler does.

    ``skimage.util.img_as_ubyte`` (``rint(x * 255)`` in the input's float
    precision), then, for ``gray_levels < 256``, the fixed rescaling of
    ``[0, 255]`` to ``[0, gray_levels - 1]`` with truncation. Intensities
    outside ``[0, 1]`` are clipped (CellProfiler refuses them).

    Parameters
    ----------
    values : ndarray of float
        Intensities, nominally in [0, 1].
    gray_levels : int, default=256
        Number of levels, 2 to 256.

    Returns
    -------
    ndarray of uint8
        Levels ``0 .. gray_levels - 1``, same shape as ``values``.

    Examples
    --------
    >>> import numpy as np
    >>> quantize(np.array([0.0, 0.5, 1.0], np.float32)).tolist()
    [0, 128, 255]
    >>> quantize(np.array([0.0, 0.5, 1.0], np.float32), gray_levels=8).tolist()
    [0, 3, 7]
    """
    values = np.asarray(values)
    dtype = values.dtype if values.dtype in (np.float32, np.float64) else np.float64
    levels = np.rint(np.multiply(values, 255, dtype=dtype))
    levels = np.clip(levels, 0, 255).astype(np.uint8)
    if gray_levels != 256:
        levels = (levels / 255.0 * (gray_levels - 1)).astype(np.uint8)
    return levels


def _count_keys(keys, n_bins):
    """Sorted distinct ``keys`` and their counts.

    A dense ``np.bincount`` when the key range is small enough, else one sort.
    """
    if n_bins <= 4 * keys.size + 65536:
        counts = np.bincount(keys, minlength=n_bins)
        present = np.flatnonzero(counts > 0)  # much faster on booleans than on integers
        return present, counts[present]
    return np.unique(keys, return_counts=True)


def _segment_sum(values, starts, n_segments):
    """Sums of consecutive segments starting at ``starts`` (rows of ``values``); empty -> 0."""
    out = np.zeros(values.shape[:-1] + (n_segments,))
    if values.shape[-1]:
        segments = np.flatnonzero(np.diff(np.append(starts, values.shape[-1])) > 0)
        out[..., segments] = np.add.reduceat(values, starts[segments], axis=-1)
    return out


def _entropy(p):
    """Entropy in bits of each row of ``p``, with ``0 log 0 = 0`` (mahotas' convention)."""
    log = np.zeros_like(p)
    np.log2(p, out=log, where=p > 0)
    return -np.einsum("ij,ij->i", p, log)


def _triangle_tables(n):
    """Row ``r`` and column ``c`` of each slot ``c (c + 1) / 2 + r`` (``r <= c < n``)."""
    col = np.repeat(np.arange(n), np.arange(1, n + 1))
    row = np.arange(col.size) - col * (col + 1) // 2
    return row.astype(np.uint8), col.astype(np.uint8)


_TRIANGLE_ROW, _TRIANGLE_COL = _triangle_tables(256)


class _BoxCanvas:
    """Every cell's mask bounding box packed on one canvas, ``gap`` pixels apart.

    ``where`` is the flat canvas position of every mask pixel
    (:class:`_MaskPixels` order); pixel pairs up to ``gap`` apart never join
    two cells.
    """

    def __init__(self, pixels, gap):
        row, col = pixels.row_int, pixels.col_int
        top = pixels.reduce_int(np.minimum, row)
        left = pixels.reduce_int(np.minimum, col)
        heights = pixels.reduce_int(np.maximum, row) - top + 1
        widths = pixels.reduce_int(np.maximum, col) - left + 1
        offsets, self.shape = _shelf_pack(heights, widths, gap)
        corner = offsets[:, 0] * self.shape[1] + offsets[:, 1] - top * self.shape[1] - left
        self.where = np.repeat(corner, pixels.counts) + row * self.shape[1] + col

    def scatter(self, values, fill):
        """A canvas holding ``values`` at the mask pixels and ``fill`` elsewhere."""
        canvas = np.full(self.shape[0] * self.shape[1], fill, dtype=values.dtype)
        canvas[self.where] = values
        return canvas.reshape(self.shape)


class _CoOccurrence:
    """Symmetric co-occurrence counting of all cells of a batch, for one channel.

    Levels are shifted by each cell's lowest level (``r = q - qmin``). The
    symmetric co-occurrence matrix of a cell (``K x K``, ``K = qmax - qmin +
    1``) keeps its upper triangle only, ``K (K + 1) / 2`` slots, entry ``(r,
    c)`` (``r <= c``) in slot ``c (c + 1) / 2 + r`` after the cell's first
    slot. Every pixel carries ``col_start``, the slot of its level's column
    ``c = r``, so that the key of a pixel pair ``(a, b)`` is the larger of
    ``col_start[a] + r[b]`` and ``col_start[b] + r[a]`` (the right one,
    ``max(r) (max(r) + 1) / 2 + min(r)``; the other is never larger): pairs
    ``(a, b)`` and ``(b, a)`` land in one slot. Pixels of level 0 (and the
    canvas outside the cells) hold a large negative value, which makes the
    key of any pair touching them negative.
    """

    _NONE = -(2**30)

    def __init__(self, pixels, canvas, levels):
        n = pixels.n
        counts = pixels.counts
        has = pixels.has
        valid = levels > 0
        qmin = np.zeros(n, np.int64)
        qmax = np.zeros(n, np.int64)
        if has.any():
            starts = pixels.starts[has]
            qmin[has] = np.minimum.reduceat(np.where(valid, levels, 255), starts)
            qmax[has] = np.maximum.reduceat(levels, starts)
        qmin = np.minimum(qmin, qmax)  # cells without a non-zero level: K = 1, no pairs
        self.qmin, self.qmax = qmin, qmax
        self.K = qmax - qmin + 1
        base = np.concatenate([[0], np.cumsum(self.K * (self.K + 1) // 2)])
        self.base, self.block = base[:-1], int(base[-1])  # block: the slots of one direction
        key_type = np.int32 if len(_DIRECTIONS) * self.block < 2**30 else np.int64
        shifted = levels.astype(key_type) - np.repeat(qmin.astype(key_type), counts)
        col_start = (shifted * (shifted + 1)) >> 1
        col_start += np.repeat(self.base.astype(key_type), counts)
        none = key_type(self._NONE) if key_type is np.int32 else key_type(-(2**62))
        self.shifted = canvas.scatter(np.where(valid, shifted, none), none)
        self.col_start = canvas.scatter(np.where(valid, col_start, none), none)

    def entries(self, scale):
        """The non-empty upper-triangle entries of all co-occurrence matrices at one scale.

        Returns ``size``, the number of entries of each ``(direction, cell)``
        group (direction-major), then the entries' rows ``r <= c``, columns
        ``c`` (levels relative to the cell's lowest, uint8) and ``count``
        (pairs ``(r, c)`` plus pairs ``(c, r)``), sorted by group.
        """
        n_dir = len(_DIRECTIONS)
        H, W = self.shifted.shape
        present, found = [np.empty(0, np.intp)], [np.empty(0, np.intp)]
        for a, (dy, dx) in enumerate(_DIRECTIONS):
            dy, dx = dy * scale, dx * scale
            if dy >= H or abs(dx) >= W:
                continue
            first = (slice(0, H - dy), slice(max(0, -dx), W - max(0, dx)))
            second = (slice(dy, H), slice(max(0, dx), W + min(0, dx)))
            key = self.col_start[first] + self.shifted[second]
            np.maximum(key, self.col_start[second] + self.shifted[first], out=key)
            key, count = _count_keys(key[key >= 0], self.block)  # one direction at a time
            present.append(key + a * self.block)
            found.append(count)
        key, count = np.concatenate(present), np.concatenate(found)
        group_base = (np.arange(n_dir)[:, None] * self.block + self.base).ravel()
        size = np.diff(np.append(np.searchsorted(key, group_base), key.size))
        local = key - np.repeat(group_base, size)
        return size, _TRIANGLE_ROW[local], _TRIANGLE_COL[local], count


def _haralick_features(size, r, c, count, K, qmin, qmax):
    """The 13 Haralick features of groups of upper-triangle co-occurrence entries.

    ``size`` is the number of entries of each group (one co-occurrence
    matrix), ``r <= c`` and ``count`` the entries (all with ``count > 0``),
    sorted by group, levels relative to the group's ``qmin``; ``K``, ``qmin``
    and ``qmax`` are per group. Only the angular second moment and the
    entropy need the entries; every other feature comes from the marginals
    ``p_x``, ``p_{x+y}`` and ``p_{|x-y|}``, counted on one dense
    ``(groups, max K)`` (``2 max K`` for ``p_{x+y}``) array. Returns the
    features, (n_groups, 13), and whether each group has a pair.
    """
    n_groups = size.size
    starts = np.cumsum(size) - size
    count = count.astype(np.float64)
    pairs = _segment_sum(count, starts, n_groups)
    total = 2.0 * pairs
    with np.errstate(invalid="ignore", divide="ignore"):
        h = count / np.repeat(total, size)  # p of an off-diagonal entry (and of its transpose)
    p = np.where(r == c, h + h, h)
    terms = np.empty((2, p.size))
    np.multiply(h, p, out=terms[0])
    np.log2(p, out=terms[1])
    terms[1] *= h
    asm, entropy = _segment_sum(terms, starts, n_groups)
    asm *= 2.0  # entry (r, c) also stands for (c, r): weight 2 h
    entropy *= -2.0

    # marginals of every group, as counts of pairs, on dense (groups, slots) arrays
    m = int(K.max()) if n_groups else 1
    group = np.repeat(np.arange(n_groups) * m, size)
    row, col = group + r, group + c
    px = np.bincount(row, count, n_groups * m) + np.bincount(col, count, n_groups * m)
    pxmy = np.bincount(col - r, count, n_groups * m)
    pxpy = np.bincount(row + group + c, count, n_groups * 2 * m)
    with np.errstate(invalid="ignore", divide="ignore"):
        px = px.reshape(n_groups, m) / total[:, None]
        pxmy = pxmy.reshape(n_groups, m) / pairs[:, None]
        pxpy = pxpy.reshape(n_groups, 2 * m) / pairs[:, None]
    k = np.arange(m, dtype=np.float64)
    ks = np.arange(2 * m, dtype=np.float64)
    k2 = k * k
    mean, square = px @ k, px @ k2
    hx = _entropy(px)
    sum_mean, sum_square = pxpy @ ks, pxpy @ (ks * ks)
    sum_entropy = _entropy(pxpy)
    contrast, idm = pxmy @ k2, pxmy @ (1.0 / (1.0 + k2))
    diff_entropy = _entropy(pxmy)
    diff_square = np.einsum("ij,ij->i", pxmy, pxmy)
    cross = (sum_square - 2 * square) / 2  # E[i j] = (E[(i + j)^2] - 2 E[i^2]) / 2

    variance = square - mean * mean
    fm1 = (qmax + 1).astype(np.float64)  # mahotas' matrix size
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.where(variance > 0, (cross - mean * mean) / variance, 1.0)
        info1 = np.where(hx > 0, (entropy - 2 * hx) / hx, entropy - 2 * hx)
    info2 = np.sqrt(np.maximum(0.0, 1.0 - np.exp(-2.0 * (2 * hx - entropy))))
    features = np.stack(
        [
            asm,
            contrast,
            correlation,
            variance,
            idm,
            sum_mean + 2 * qmin,
            sum_square - sum_mean * sum_mean,
            sum_entropy,
            entropy,
            diff_square / fm1 - 1.0 / (fm1 * fm1),
            diff_entropy,
            info1,
            info2,
        ],
        axis=-1,
    )
    return features, total > 0


# ---------------------------------------------------------------------- Gabor
def cellprofiler_gabor(pixels, values, scale, n_angles=4):
    """CellProfiler's Gabor texture score of every cell at one scale.

    CellProfiler (3.x) MeasureTexture's Gabor feature: each cell's
    intensities are rescaled to [0, 1] (its minimum and maximum), centred,
    and correlated with a Gabor wavelet centred on the cell's centroid
    (wavelength ``scale`` pixels, Gaussian sigma ``sqrt(area / pi) / 3``,
    real and imaginary parts made zero-mean over the cell); the score is
    the modulus of the sum, maximised over ``n_angles`` orientations
    ``pi * k / n_angles``.

    Parameters
    ----------
    pixels : _MaskPixels
        The cells' mask pixels.
    values : (n_pixels,) ndarray of float
        Intensities of those pixels.
    scale : int
        Wavelength in pixels.
    n_angles : int, default=4
        Number of orientations.

    Returns
    -------
    (n_cells,) ndarray of float64
    """
    n = pixels.n
    area = pixels.counts.astype(np.float64)
    values = values.astype(np.float64)
    low = pixels.reduce(np.minimum, values)
    high = pixels.reduce(np.maximum, values)
    span = np.where(high > low, high - low, 1.0)
    spread = pixels.spread
    normalised = values - spread(low)
    normalised /= spread(span)
    centred = normalised
    centred -= spread(pixels.mean(normalised))
    i, j = pixels.centred_coordinates()
    sigma = np.sqrt(area / np.pi) / 3.0
    two_var = spread(2 * sigma**2)
    envelope = i * i
    envelope += j * j
    np.negative(envelope, out=envelope)
    envelope /= two_var
    np.exp(envelope, out=envelope)
    envelope *= spread(1000.0 / (2.0 * np.pi * sigma**2))
    best = np.zeros(n)
    phase = np.empty_like(i)
    g_cos = np.empty_like(i)
    for k in range(n_angles):
        theta = np.pi * k / n_angles
        np.multiply(i, np.cos(theta), out=phase)
        phase += j * np.sin(theta)
        phase *= 2 * np.pi / scale
        np.cos(phase, out=g_cos)
        g_sin = np.sin(phase, out=phase)
        g_cos *= envelope
        g_sin *= envelope
        g_cos -= spread(pixels.mean(g_cos))
        g_sin -= spread(pixels.mean(g_sin))
        g_cos *= centred
        g_sin *= centred
        score = np.hypot(pixels.sum(g_cos), pixels.sum(g_sin))
        best = np.maximum(best, score)
    return best


def _gabor_sigma(frequency):
    """Gaussian sigma of scikit-image's Gabor kernel with bandwidth 1."""
    b = 1.0
    return np.sqrt(np.log(2) / 2) / np.pi * (2.0**b + 1) / (2.0**b - 1) / frequency


def _gabor_half_width(frequency):
    """Largest half-width of scikit-image's Gabor kernel over orientations (3 sigma)."""
    return int(np.ceil(3 * _gabor_sigma(frequency)))


def _gabor_factors(frequency, theta, dtype):
    """1-D factors of ``skimage.filters.gabor_kernel(frequency, theta)`` (bandwidth 1).

    With equal sigmas the kernel is ``outer(ky, kx)``: a Gaussian times a
    plane wave separates into a row and a column factor.
    """
    sigma = _gabor_sigma(frequency)
    ct, st = np.cos(theta), np.sin(theta)
    half = int(np.ceil(max(abs(3 * sigma * ct), abs(3 * sigma * st), 1)))
    t = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-0.5 * t * t / sigma**2)
    kx = gauss * np.exp(1j * 2 * np.pi * frequency * t * ct) / (2 * np.pi * sigma**2)
    ky = gauss * np.exp(1j * 2 * np.pi * frequency * t * st)
    return kx.astype(dtype), ky.astype(dtype)


def gabor_energy(image, frequency, theta):
    """Modulus of ``skimage.filters.gabor(image, frequency, theta)``, by separable convolution.

    Parameters
    ----------
    image : (H, W) ndarray of float32 or float64
    frequency : float
        Spatial frequency (cycles per pixel).
    theta : float
        Orientation in radians.

    Returns
    -------
    (H, W) ndarray
        ``sqrt(real ** 2 + imag ** 2)`` of the Gabor filter response
        (scikit-image's kernel, bandwidth 1, 3 standard deviations, mode
        ``"reflect"``).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.filters import gabor
    >>> image = np.random.default_rng(0).random((32, 32))
    >>> real, imag = gabor(image, 0.25, 0.3)
    >>> bool(np.allclose(gabor_energy(image, 0.25, 0.3), np.hypot(real, imag)))
    True
    """
    return _gabor_energy_at(image, frequency, theta)


def _negligible(part, other):
    """Whether one part of a complex kernel is exactly or numerically zero (below 1e-12
    of the other): e.g. the imaginary part of ``cos(pi / 2)`` (6e-17) times a phase."""
    return np.abs(part).max() <= 1e-12 * np.abs(other).max()


def _gabor_energy_at(image, frequency, theta, where=None):
    """:func:`gabor_energy`, at the flat positions ``where`` only (the whole image if None).

    Kernel factors whose imaginary part vanishes (the column factor at
    ``theta = 0``, the row factor at ``pi / 2``) skip their convolutions;
    sums are formed in place and the modulus only where it is read.
    """
    complex_type = np.complex64 if image.dtype == np.float32 else np.complex128
    kx, ky = _gabor_factors(frequency, theta, complex_type)
    convolve = ndi.convolve1d
    rows_re = convolve(image, kx.real, axis=1, mode="reflect")
    rows_im = (
        None if _negligible(kx.imag, kx.real) else convolve(image, kx.imag, axis=1, mode="reflect")
    )
    ky_im = None if _negligible(ky.imag, ky.real) else ky.imag
    real = convolve(rows_re, ky.real, axis=0, mode="reflect")
    imag = None
    if rows_im is not None:
        imag = convolve(rows_im, ky.real, axis=0, mode="reflect")
    if ky_im is not None:
        if rows_im is not None:  # real -= rows_im * ky.imag, reusing rows_im's buffer
            convolve(rows_im, ky_im, axis=0, mode="reflect", output=rows_im)
            real -= rows_im
        extra = convolve(rows_re, ky_im, axis=0, mode="reflect", output=rows_re)
        imag = extra if imag is None else np.add(imag, extra, out=imag)
    if where is not None:
        real = real.ravel()[where]
        imag = None if imag is None else imag.ravel()[where]
    if imag is None:
        return np.abs(real)
    return np.hypot(real, imag)


# ---------------------------------------------------------------------- LBP
def local_binary_pattern(image, points=8, radius=1.0):
    """Rotation-invariant uniform local binary patterns, translation-invariant.

    scikit-image's ``local_binary_pattern(image, points, radius,
    method="uniform")``: neighbour ``p`` sits at ``(-radius sin(2 pi p /
    points), radius cos(2 pi p / points))`` (rounded to 5 decimals), its
    value is interpolated bilinearly (0 outside the image), and its bit is
    set when it is not below the centre. Codes ``0 .. points`` count the set
    bits of patterns with at most two bit changes along ``p = 0 .. points -
    1``; other patterns get ``points + 1``.

    Unlike scikit-image, which interpolates at absolute coordinates so that
    the rounding (and thus the code of a pixel whose neighbours tie with it)
    depends on the pixel's position, the comparison here is
    ``sum(w_k * (v_k - centre)) >= 0``: exact for ties, the same anywhere in
    the image.

    Parameters
    ----------
    image : (H, W) ndarray of float
    points : int, default=8
    radius : float, default=1.0

    Returns
    -------
    (H, W) ndarray of uint8
        The code of every pixel.

    Examples
    --------
    >>> import numpy as np
    >>> codes = local_binary_pattern(np.full((5, 5), 0.3))
    >>> int(codes[2, 2])  # a flat region: every neighbour ties with the centre
    8
    """
    image = np.asarray(image, dtype=np.float64)
    H, W = image.shape
    pad = int(np.ceil(radius)) + 1
    padded = np.zeros((H + 2 * pad, W + 2 * pad))
    padded[pad:-pad, pad:-pad] = image
    angles = 2 * np.pi * np.arange(points) / points
    rows = np.round(-radius * np.sin(angles), 5)
    cols = np.round(radius * np.cos(angles), 5)
    code_type = np.uint8 if points <= 8 else np.uint16 if points <= 16 else np.uint32
    code = np.zeros((H, W), dtype=code_type)  # the bit pattern, bit p for neighbour p
    diff = np.empty((H, W))
    term = np.empty((H, W))
    bit = np.empty((H, W), dtype=bool)
    for p in range(points):
        y0, x0 = int(np.floor(rows[p])), int(np.floor(cols[p]))
        fy, fx = rows[p] - y0, cols[p] - x0
        first = True
        for dy, dx, w in (
            (0, 0, (1 - fy) * (1 - fx)),
            (0, 1, (1 - fy) * fx),
            (1, 0, fy * (1 - fx)),
            (1, 1, fy * fx),
        ):
            if w:
                top, left = pad + y0 + dy, pad + x0 + dx
                # diff = sum of w * (neighbour - centre), in this order, without temporaries
                out = diff if first else term
                np.subtract(padded[top : top + H, left : left + W], image, out=out)
                if w != 1.0:
                    out *= w
                if not first:
                    diff += term
                first = False
        if first:  # no neighbour weight (cannot happen for radius > 0): 0 >= 0
            diff.fill(0.0)
        np.greater_equal(diff, 0, out=bit)
        code |= bit.astype(code_type) << code_type(p) if p else bit
    return _uniform_codes(points)[code]


def _uniform_codes(points):
    """LBP code of every bit pattern of ``points`` bits (for ``points`` <= 16), or a function."""
    if points > 16:
        return _UniformLookup(points)
    patterns = np.arange(2**points, dtype=np.uint32)
    bits = (patterns[:, None] >> np.arange(points, dtype=np.uint32)) & 1
    changes = (bits[:, 1:] != bits[:, :-1]).sum(axis=1)
    return np.where(changes <= 2, bits.sum(axis=1), points + 1).astype(np.uint8)


class _UniformLookup:
    """``_uniform_codes`` for more than 16 points: computed from the patterns present."""

    def __init__(self, points):
        self.points = points

    def __getitem__(self, code):
        shifts = np.arange(self.points, dtype=np.uint32)
        bits = (code[None] >> shifts.reshape(-1, 1, 1)) & 1
        changes = (bits[1:] != bits[:-1]).sum(axis=0)
        return np.where(changes <= 2, bits.sum(axis=0), self.points + 1).astype(np.uint8)


# ---------------------------------------------------------------------- granularity
def _shelf_pack(heights, widths, gap):
    """Top-left corners of boxes packed on shelves (tallest first), ``gap`` apart and from the rim.

    Returns the corners, in input order, and the canvas shape. A few canvas
    widths are tried when there are few boxes (the square one wastes most
    then) and the smallest canvas kept.
    """
    n = len(heights)
    packing = ShelfPacking(heights, widths, gap)
    if n == 0:
        return packing.corners([]), packing.shelves(0)[1]
    side = math.sqrt(float(((heights + gap) * (widths + gap)).sum()))
    limits = [side] if n > 64 else [side, 1.5 * side, 2 * side, 3 * side, widths.sum() + gap * n]
    widest = int(widths.max())
    best = None
    for limit in limits:
        firsts, shape = packing.shelves(max(widest, math.ceil(limit)))
        if best is None or shape[0] * shape[1] < best[1][0] * best[1][1]:
            best = firsts, shape
    return packing.corners(best[0]), best[1]


def _grid(shapes):
    """Cell index, row and column of every pixel of per-cell grids of the given shapes."""
    sizes = shapes[:, 0] * shapes[:, 1]
    cell = np.repeat(np.arange(len(shapes)), sizes)
    offset = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    width = shapes[cell, 1]
    return cell, offset // width, offset % width


def _reflect_indices(lo, hi, n):
    """Indices ``lo .. hi - 1`` of an axis of length ``n`` extended by ``mode="reflect"``."""
    k = np.mod(np.arange(lo, hi), 2 * n)
    return np.where(k >= n, 2 * n - 1 - k, k)  # half-sample symmetric, any number of folds


def _reflect_canvas(pixels, channel, pad):
    """Each cell's mask bounding box, padded by ``pad`` pixels of its crop (mirrored past the
    crop's sides), on one canvas.

    Returns the canvas (float64) and the canvas position of every mask pixel.
    A filter whose half-width is at most ``pad`` then sees each mask pixel
    exactly as ``mode="reflect"`` on its crop alone; the canvas holds only
    the pixels such a filter can reach (not the whole padded crops).
    """
    flat = pixels.flat
    shapes = flat.shapes
    top = pixels.reduce_int(np.minimum, pixels.row_int)
    left = pixels.reduce_int(np.minimum, pixels.col_int)
    bottom = pixels.reduce_int(np.maximum, pixels.row_int) + 1
    right = pixels.reduce_int(np.maximum, pixels.col_int) + 1
    offsets, (H, W) = _shelf_pack(bottom - top + 2 * pad, right - left + 2 * pad, 0)
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = (np.cumsum(sizes) - sizes).tolist()
    canvas = np.zeros((H, W))
    values = flat.values[channel]
    for i, (h, w) in enumerate(shapes.tolist()):  # a slice per cell, no per-pixel index arrays
        t, lft = int(top[i]) - pad, int(left[i]) - pad
        b, r = int(bottom[i]) + pad, int(right[i]) + pad
        crop = values[starts[i] : starts[i] + h * w].reshape(h, w)
        if t >= 0 and lft >= 0 and b <= h and r <= w:
            block = crop[t:b, lft:r]
        else:
            block = crop[np.ix_(_reflect_indices(t, b, h), _reflect_indices(lft, r, w))]
        y, x = offsets[i]
        canvas[y : y + b - t, x : x + r - lft] = block
    obj = pixels.obj
    where = (offsets[obj, 0] - top[obj] + pad + pixels.row_int) * W
    where += offsets[obj, 1] - left[obj] + pad + pixels.col_int
    return canvas, where


def _bilinear(cell, y, x, starts, strides, shapes):
    """Flat indices and weights of ``scipy.ndimage.map_coordinates(order=1)``.

    Each cell's 2-D array lives in a flat buffer at ``starts[cell]`` with row
    stride ``strides[cell]`` and shape ``shapes[cell]``. Points outside
    ``[0, h - 1] x [0, w - 1]`` get zero weight (``mode="constant"``).
    """
    h = shapes[cell, 0]
    w = shapes[cell, 1]
    inside = (y >= 0) & (y <= h - 1) & (x >= 0) & (x <= w - 1)
    y0 = np.clip(np.floor(y), 0, h - 1).astype(np.intp)
    x0 = np.clip(np.floor(x), 0, w - 1).astype(np.intp)
    fy = np.where(inside, y - y0, 0.0)
    fx = np.where(inside, x - x0, 0.0)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    start = starts[cell]
    stride = strides[cell]
    index = np.stack(
        [
            start + y0 * stride + x0,
            start + y0 * stride + x1,
            start + y1 * stride + x0,
            start + y1 * stride + x1,
        ]
    )
    weight = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx]) * inside
    return index, weight


@lru_cache(maxsize=16)
def _disk_half_widths(radius):
    """Half width of each row of ``skimage.morphology.disk(radius)`` (read-only)."""
    half = disk(radius).astype(bool).sum(axis=1) // 2
    half.flags.writeable = False
    return half


def _disk_filter(image, radius, erode):
    """Grey erosion/dilation by ``skimage.morphology.disk(radius)``, ignoring pixels off the image.

    Filters the last two axes of ``image`` (a canvas, or a stack of planes).
    Decomposed into one 1-D filter per distinct row width of the disk (a row
    at least as wide as the image spans it from any pixel: one filter).
    """
    half = _disk_half_widths(radius)
    fill = np.inf if erode else -np.inf
    filter1d = ndi.minimum_filter1d if erode else ndi.maximum_filter1d
    combine = np.minimum if erode else np.maximum
    rows = {}
    out = np.full_like(image, fill)
    H, W = image.shape[-2:]
    for dy, hw in zip(range(-radius, radius + 1), half):
        if abs(dy) >= H:
            continue
        hw = min(int(hw), W - 1)
        if hw not in rows:
            rows[hw] = filter1d(image, 2 * hw + 1, axis=-1, mode="constant", cval=fill)
        if dy >= 0:
            combine(out[..., : H - dy, :], rows[hw][..., dy:, :], out=out[..., : H - dy, :])
        else:
            combine(out[..., -dy:, :], rows[hw][..., : H + dy, :], out=out[..., -dy:, :])
    return out


def _erode_cross(a):
    """Grey erosion by the 4-connected cross, ignoring pixels off the canvas."""
    out = a.copy()
    np.minimum(out[1:], a[:-1], out=out[1:])
    np.minimum(out[:-1], a[1:], out=out[:-1])
    np.minimum(out[:, 1:], a[:, :-1], out=out[:, 1:])
    np.minimum(out[:, :-1], a[:, 1:], out=out[:, :-1])
    return out


def _reconstruct(seed, mask, n_values):
    """Reconstruction by dilation (4-connected) of integer rank images.

    Same result as ``skimage.morphology.reconstruction(seed, mask,
    footprint=cross)``, but the pixels are ordered by one radix sort of
    their ranks instead of a float sort per call. The outermost canvas
    pixels must have rank 0 (the canvas has a frame of gap pixels).
    """
    if _reconstruction_loop is None:  # pragma: no cover - exercised by monkeypatching in tests
        return reconstruction(seed.astype(float), mask.astype(float), footprint=_CROSS).astype(
            np.intp
        )
    size = seed.size
    signed = np.result_type(np.min_scalar_type(-2 * size), np.int32)
    unsigned = np.dtype(signed.char.upper())
    ranks = np.concatenate([seed.ravel(), mask.ravel()]).astype(unsigned)
    key = (n_values - 1) - ranks  # descending ranks; radix-sorted when they fit 16 bits
    order = np.argsort(key.astype(np.uint16) if n_values <= 65536 else key, kind="stable")
    order = order.astype(signed)
    prev = np.full(2 * size, -1, signed)
    nxt = np.full(2 * size, -1, signed)
    prev[order[1:]] = order[:-1]
    nxt[order[:-1]] = order[1:]
    width = seed.shape[1]
    strides = np.array([-width, -1, 1, width], signed)
    _reconstruction_loop(ranks, prev, nxt, strides, int(order[0]), size)
    return ranks[:size].reshape(seed.shape)


def _sample_integral(values, cell, i, j, step, starts, strides, shapes, grid):
    """``values`` at ``(i * step, j * step)`` of each cell's 2-D array, as ``_bilinear`` would
    interpolate them, when ``step`` is a whole number; ``None`` when it is not.

    Points with whole coordinates inside the array put all their weight on one
    pixel, so the other corners only add exact zeros (when every value is
    finite: ``inf * 0`` would not be zero). ``grid`` holds the per-cell grid
    shapes of ``i`` and ``j``.
    """
    if not float(step).is_integer():
        return None
    k = int(step)
    if ((grid - 1) * k > shapes - 1).any() or not np.isfinite(values).all():
        return None
    sizes = grid[:, 0] * grid[:, 1]
    index = np.repeat(starts, sizes) + np.repeat(strides * k, sizes) * i
    index += j * k
    return values[index]


def _resample(values, cell, i, j, step, starts, strides, shapes, grid):
    """``values`` at ``(i * step, j * step)`` of each cell's 2-D array, bilinearly interpolated
    (``map_coordinates(order=1)``): read directly when the points are whole pixels."""
    sampled = _sample_integral(values, cell, i, j, step, starts, strides, shapes, grid)
    if sampled is None:
        index, weight = _bilinear(cell, i * step, j * step, starts, strides, shapes)
        sampled = (values[index] * weight).sum(axis=0)
    return sampled


def granularity(
    values, pixels, length=16, subsample_size=0.25, image_sample_size=0.25, element_size=10
):
    """CellProfiler's granular spectrum of every cell, each crop taken as the image.

    Reproduces ``MeasureGranularity`` (as cp_measure's ``get_granularity``)
    run on each cell's crop with the cell's mask as the only object: the crop
    is subsampled by ``subsample_size``; a background, the grey opening by a
    disk of ``element_size`` of the crop subsampled again by
    ``image_sample_size``, is subtracted; then ``length`` times the image is
    eroded by a 4-connected cross and reconstructed under the
    background-subtracted image, and the loss of the cell's mean intensity
    (restored to the original scale by bilinear interpolation) is reported in
    percent of its original mean.

    Parameters
    ----------
    values : (P,) ndarray of float64
        Flat crop pixels of all cells (one channel), crops one after another.
    pixels : _MaskPixels
        The cells' mask pixels (and crop shapes).
    length, subsample_size, image_sample_size, element_size
        CellProfiler's settings (range of the spectrum, subsampling factors
        for the measurement and the background, radius of the background's
        structuring element).

    Returns
    -------
    (N, length) ndarray of float64
        ``Granularity_1`` ... ``Granularity_<length>``; NaN for a cell whose
        subsampled crop has fewer than 2 rows or columns.
    """
    shapes = pixels.flat.shapes
    n = len(shapes)
    out = np.full((n, length), np.nan)
    starts = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])])[:-1]
    if subsample_size < 1:
        small = (shapes * subsample_size).astype(np.intp)
    else:
        small = shapes.astype(np.intp)
    ok = np.flatnonzero((small >= 2).all(axis=1) & pixels.has)
    if ok.size == 0:
        return out
    small_all = small
    shapes_ok, small = shapes[ok], small[ok]
    m = len(ok)

    # 1. subsampled crops, packed on a canvas with a frame and gaps of zeros
    offsets, (H, W) = _shelf_pack(small[:, 0], small[:, 1], 1)
    cell, i, j = _grid(small)
    step = 1.0 / subsample_size if subsample_size < 1 else 1.0
    patch = _resample(values, cell, i, j, step, starts[ok], shapes_ok[:, 1], shapes_ok, small)
    corner = offsets[:, 0] * W + offsets[:, 1]
    where = corner[cell] + i * W + j

    # 2. background: grey opening of the crop subsampled again, restored by bilinear interpolation
    if image_sample_size < 1:
        back_size = small * image_sample_size
        back_shape = np.ceil(back_size).astype(np.intp)
    else:
        back_size = small.astype(np.float64)
        back_shape = small
    flat_patch = np.zeros(H * W)
    flat_patch[where] = patch
    bcell, bi, bj = _grid(back_shape)
    step = 1.0 / image_sample_size if image_sample_size < 1 else 1.0
    sampled = _resample(flat_patch, bcell, bi, bj, step, corner, np.full(m, W), small, back_shape)
    # each cell's background on its own plane of a stack (no gaps needed), unless padding
    # all to the largest shape costs more than a canvas with element_size gaps
    bh, bw = (int(v) for v in back_shape.max(axis=0))
    if m * bh * bw <= (back_shape + element_size).prod(axis=1).sum():
        layout, back_starts, back_stride = (m, bh, bw), np.arange(m) * (bh * bw), bw
    else:
        back_offsets, (BH, BW) = _shelf_pack(back_shape[:, 0], back_shape[:, 1], element_size)
        layout, back_stride = (BH, BW), BW
        back_starts = back_offsets[:, 0] * BW + back_offsets[:, 1]
    size = int(np.prod(layout))
    back = np.full(size, np.inf)
    back_where = back_starts[bcell] + bi * back_stride + bj
    back[back_where] = sampled
    back = _disk_filter(back.reshape(layout), element_size, erode=True).ravel()
    opened = np.full(size, -np.inf)
    opened[back_where] = back[back_where]
    back = _disk_filter(opened.reshape(layout), element_size, erode=False).ravel()
    up_y = (back_size[:, 0] - 1) / (small[:, 0] - 1)
    up_x = (back_size[:, 1] - 1) / (small[:, 1] - 1)
    index, weight = _bilinear(
        cell, i * up_y[cell], j * up_x[cell], back_starts, np.full(m, back_stride), back_shape
    )
    patch = np.maximum(patch - (back[index] * weight).sum(axis=0), 0.0)

    # 3. per-cell means at the original scale: a fixed weight per canvas pixel
    if m == n:  # the common case: every cell measured, the mask pixels are used as they are
        counts = pixels.counts
        index, row, col = pixels.index, pixels.row_int, pixels.col_int
    else:
        keep = np.repeat((small_all >= 2).all(axis=1) & pixels.has, pixels.counts)
        counts = pixels.counts[ok]
        index, row, col = pixels.index[keep], pixels.row_int[keep], pixels.col_int[keep]
    raw = values[index]
    # A pixel at (y, x) = (row sy, col sx) of the subsampled grid spreads over the four grid
    # pixels around it with the bilinear weights; they factor into a row part (gy, fy) and a
    # column part (gx, fx). The column parts of consecutive mask pixels of one cell, one row
    # and one grid column are summed first (about 1 / sx pixels each), then spread by rows.
    sy = (small[:, 0] - 1) / (shapes_ok[:, 0] - 1)
    sx = (small[:, 1] - 1) / (shapes_ok[:, 1] - 1)
    x = col * np.repeat(sx, counts)  # pixels are grouped by cell: factors repeated, not gathered
    x0 = x.astype(np.intp)  # coordinates are >= 0: truncation is floor
    fx = x - x0
    gx = 1 - fx
    # only a cell's last row (column) can land past its subsampled grid, by rounding: no weight
    if ((shapes_ok[:, 1] - 1) * sx > small[:, 1] - 1).any():
        past = x > np.repeat(small[:, 1] - 1, counts)
        fx[past] = 0.0
        gx[past] = 0.0
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cut = np.empty(len(x0), bool)
    cut[0] = True
    np.not_equal(x0[1:], x0[:-1], out=cut[1:])
    cut[1:] |= row[1:] != row[:-1]
    cut[first] = True
    segment = np.flatnonzero(cut)
    sum_gx = np.add.reduceat(gx, segment)
    sum_fx = np.add.reduceat(fx, segment)
    segment_cell = np.repeat(np.arange(m), np.add.reduceat(cut, first))
    y = row[segment] * sy[segment_cell]
    y0 = y.astype(np.intp)
    fy = y - y0
    gy = 1 - fy
    if ((shapes_ok[:, 0] - 1) * sy > small[:, 0] - 1).any():
        past = y > small[segment_cell, 0] - 1
        fy[past] = 0.0
        gy[past] = 0.0
    top_left = y0 * W
    top_left += x0[segment]
    top_left += corner[segment_cell]
    pixel_weight = np.zeros(H * W)
    np.add.at(pixel_weight, top_left, gy * sum_gx)
    np.add.at(pixel_weight[1:], top_left, gy * sum_fx)
    np.add.at(pixel_weight[W:], top_left, fy * sum_gx)
    np.add.at(pixel_weight[W + 1 :], top_left, fy * sum_fx)
    pixel_weight = pixel_weight[where]
    owner = pixels.obj if m == n else np.repeat(np.arange(m), counts)
    current = np.bincount(owner, weights=raw, minlength=m)
    counts = counts.astype(np.float64)
    current /= counts

    # 4. the spectrum, in rank space (the frame and gaps are 0 <= patch: rank 0)
    levels, inverse = np.unique(patch, return_inverse=True)
    if levels[0] != 0:
        levels = np.concatenate([[0.0], levels])
        inverse += 1
    top = len(levels)
    rank_type = np.uint16 if top < 2**16 else np.intp  # small ranks: faster erosions
    rank = np.zeros(H * W, rank_type)
    rank[where] = inverse
    rank = rank.reshape(H, W)
    gaps = np.ones(H * W, dtype=bool)
    gaps[where] = False
    gaps = gaps.reshape(H, W)
    top = rank_type(top)
    # eroded images hold top (above every rank) in the gaps, seeds 0: max / min with these
    gap_top = np.where(gaps, top, rank_type(0))
    seed_cap = np.where(gaps, rank_type(0), top)
    eroded = np.maximum(rank, gap_top)  # rank is 0 in the gaps
    start = np.maximum(current, np.finfo(float).eps)
    # canvas pixels of zero weight add exact zeros to the means (unless some level is not
    # finite: 0 * inf is NaN): left out of the loop
    used = np.flatnonzero(pixel_weight) if np.isfinite(levels).all() else np.arange(len(where))
    # in canvas order (each cell's pixels keep their order, so do its sums): the pixels of
    # the rebuilt rows are a prefix
    used = used[np.argsort(where[used], kind="stable")]
    used_where, used_cell, used_weight = where[used], cell[used], pixel_weight[used]
    gap_rows = np.flatnonzero(gaps.all(axis=1))  # the frame's last row among them
    spectrum = np.empty((m, length))
    for k in range(length):
        # eroded is 0 off the gaps below its last row, an all-gap row: those rows stay as they are
        eroded = _erode_cross(eroded)
        np.maximum(eroded, gap_top[: len(eroded)], out=eroded)
        seed = np.minimum(eroded, seed_cap[: len(eroded)])
        alive = np.flatnonzero(seed.max(axis=1))
        if alive.size == 0:  # all eroded away: the reconstruction is 0 everywhere
            new = np.zeros(m)
            eroded = eroded[:0]
        else:
            # cells are walled off by rank-0 gaps and one whose seed is all 0 rebuilds to 0:
            # the canvas is rebuilt down to the first all-gap row below the last live seed
            cut = gap_rows[np.searchsorted(gap_rows, alive[-1])] + 1
            rebuilt = _reconstruct(seed[:cut], rank[:cut], int(top)).ravel()
            live = np.searchsorted(used_where, cut * W)  # pixels below rebuild to 0
            rebuilt = levels[rebuilt[used_where[:live]]]
            new = np.bincount(used_cell[:live], weights=used_weight[:live] * rebuilt, minlength=m)
            new /= counts
            eroded = eroded[:cut]
        spectrum[:, k] = (current - new) * 100 / start
        current = new
    out[ok] = spectrum
    return out


# ---------------------------------------------------------------------- the transformer
class _MaskPixels:
    """The mask pixels of a CellSet, in flat order (cells ascending, row-major)."""

    def __init__(self, cells=None):
        if cells is None:  # filled by `cells_range`
            return
        flat = cells.flat()
        self.flat = flat
        self.n = len(cells)
        self.index, self.counts, self.obj, self.row_int, self.col_int = flat.mask_pixels()
        self.starts = np.cumsum(self.counts) - self.counts
        self.has = self.counts > 0

    def cells_range(self, lo, hi):
        """The pixels of cells ``lo .. hi - 1`` (renumbered from 0), as views."""
        part = _MaskPixels()
        first, last = self.starts[lo], self.starts[lo] + self.counts[lo:hi].sum()
        part.n = hi - lo
        part.index = self.index[first:last]
        part.obj = self.obj[first:last] - lo
        part.row_int = self.row_int[first:last]
        part.col_int = self.col_int[first:last]
        part.counts = self.counts[lo:hi]
        part.starts = self.starts[lo:hi] - first
        part.has = self.has[lo:hi]
        part.flat = self.flat
        return part

    def batches(self, max_pixels):
        """``(lo, hi)`` ranges of consecutive cells of about ``max_pixels`` pixels (or one cell)."""
        batch = self.starts // max_pixels
        bounds = np.flatnonzero(np.diff(batch)) + 1
        bounds = np.concatenate([[0], bounds, [self.n]]).tolist()
        return list(pairwise(bounds))

    def centred_coordinates(self):
        """Row and column of every pixel relative to its cell's centroid (float64)."""
        row = self.row_int.astype(np.float64)
        col = self.col_int.astype(np.float64)
        row -= self.spread(self.mean(row))
        col -= self.spread(self.mean(col))
        return row, col

    def sum(self, values):
        """Per-cell sum (0 for cells without pixels); pixels are grouped by cell, so one
        ``np.add.reduceat`` (much faster than a weighted ``np.bincount``)."""
        out = np.zeros(self.n)
        if self.has.any():
            out[self.has] = np.add.reduceat(values, self.starts[self.has], dtype=np.float64)
        return out

    def spread(self, per_cell):
        """Each cell's value repeated for each of its pixels (``per_cell[obj]``)."""
        return np.repeat(per_cell, self.counts)

    def mean(self, values):
        """Per-cell mean (NaN for cells without pixels)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum(values) / self.counts

    def reduce(self, ufunc, values):
        """Per-cell ``ufunc.reduceat`` (NaN for cells without pixels)."""
        out = np.full(self.n, np.nan)
        if self.has.any():
            out[self.has] = ufunc.reduceat(values, self.starts[self.has])
        return out

    def reduce_int(self, ufunc, values):
        """Per-cell integer ``ufunc.reduceat`` (0 for cells without pixels)."""
        out = np.zeros(self.n, np.intp)
        if self.has.any():
            out[self.has] = ufunc.reduceat(values, self.starts[self.has])
        return out


def _check_scales(scales):
    try:
        scales = tuple(scales)
    except TypeError:
        scales = (scales,)
    if (
        not scales
        or any(isinstance(s, bool) or not isinstance(s, Integral) or s < 1 for s in scales)
        or len(set(scales)) != len(scales)
    ):
        raise ValueError(
            f"scales must be a non-empty sequence of distinct positive integers (pixels), "
            f"e.g. (3,) or (3, 5); got {scales!r}"
        )
    return tuple(int(s) for s in scales)


class Texture(CellFeatureTransformer):
    """Per-cell texture features: Haralick, Gabor, LBP and granularity, per channel.

    Reproduces CellProfiler's MeasureTexture (Haralick features, as
    cp_measure's ``get_texture``; and the Gabor feature of CellProfiler 3)
    and MeasureGranularity (as cp_measure's ``get_granularity``, on each
    cell's crop), and adds local binary pattern histograms and Gabor filter
    energies, vectorised across all cells of a :class:`~featcell.CellSet`.

    Parameters
    ----------
    features : str or list of str, optional
        Feature families to compute, any of ``"haralick"`` (13 Haralick
        features x 4 directions per scale), ``"gabor"`` (CellProfiler's Gabor
        score per scale), ``"gabor_energy"`` (mean Gabor filter energy per
        scale and orientation), ``"lbp"`` (uniform local binary pattern
        histogram), ``"granularity"`` (granular spectrum). Default: all.
    channels : str or list of str, optional
        Channels to measure. Default: all channels of the cells.
    scales : sequence of int, default=(3,)
        Texture scales in pixels: the Haralick pixel-pair distance, and the
        wavelength of the Gabor features.
    gray_levels : int, default=256
        Number of grey levels of the Haralick co-occurrence matrices (2 to
        256), CellProfiler's fixed quantisation (see Notes).
    gabor_angles : int, default=4
        Number of Gabor orientations, ``pi * k / gabor_angles``.
    lbp_points : int, default=8
        Number of circularly symmetric neighbours of the LBP.
    lbp_radius : float, default=1
        Radius of the LBP circle, in pixels.
    granularity_spectrum_length : int, default=16
        Number of granular spectrum components (CellProfiler's "range of
        the granular spectrum").
    granularity_subsample_size : float, default=0.25
        Subsampling factor of the granularity measurement.
    granularity_image_sample_size : float, default=0.25
        Further subsampling factor of the background estimate.
    granularity_element_size : int, default=10
        Radius of the disk that estimates the background, after subsampling.
    compartment : str, optional
        Prefix for the feature names, e.g. ``"Nuclei"``.
    n_jobs : int, default=None
        Number of jobs to run in parallel over chunks of cells.
        ``None`` means 1 unless in a :obj:`joblib.parallel_backend` context.
        ``-1`` means using all processors.

    Attributes
    ----------
    channels_ : tuple of str
        The channels measured.
    families_ : tuple of str
        The feature families computed, in output order.
    feature_names_out_ : ndarray of str
        Output names: ``Texture_<Feature>_<Channel>_<scale>_<direction>_<gray_levels>``
        (Haralick, e.g. ``Texture_Contrast_DNA_3_00_256``),
        ``Texture_Gabor_<Channel>_<scale>``,
        ``Texture_GaborEnergy_<Channel>_<scale>_<orientation>``,
        ``Texture_LBP_<bin>_<Channel>_<points>_<radius>`` and
        ``Granularity_<k>_<Channel>``.
    n_features_in_ : int
        Number of channels of the cells seen in ``fit``.
    channel_names_in_ : tuple of str
        Channel names of the cells seen in ``fit``.

    See Also
    --------
    featcell.Intensity : intensity statistics and radial distribution.

    Notes
    -----
    *Haralick.* As in CellProfiler, intensities are quantised for the whole
    image with one fixed mapping (``rint(255 x)``, then truncated to
    ``gray_levels`` levels; values outside [0, 1] are clipped), not stretched
    per cell. Co-occurrences count the pairs of the cell's pixels ``scale``
    pixels apart in the directions ``_00`` (0, 1), ``_01`` (1, 1), ``_02``
    (1, 0) and ``_03`` (1, -1) (row, column), symmetrically; pairs with a
    pixel of level 0 are ignored. The features are mahotas' definitions
    (``mahotas.features.haralick``): Variance is that of the row marginal,
    SumVariance uses SumAverage, DifferenceVariance is the variance of the
    ``p_{|x-y|}`` vector over ``max level + 1`` entries, entropies are in
    bits, and InfoMeas1/2 use ``HXY1 = HXY2 = 2 HX`` (exact for a symmetric
    matrix). A cell with no valid pair in some direction (e.g. a cell
    narrower than the scale, a one-pixel cell, or one whose pixels are all
    quantised to 0) gets NaN for all features at that scale, as in
    CellProfiler. A uniform cell gets Contrast 0, AngularSecondMoment 1,
    Entropy 0 and Correlation 1.

    *Gabor.* CellProfiler's (3.x) definition: per cell, not a filter: the
    cell's intensities rescaled to [0, 1], centred, are correlated with a
    Gabor wavelet centred on the cell's centroid (wavelength ``scale``,
    sigma ``sqrt(area / pi) / 3``); the score is the largest modulus over the
    ``gabor_angles`` orientations. ``gabor_energy`` is instead the mean, over
    the cell's pixels, of the modulus of ``skimage.filters.gabor(image,
    frequency=1 / scale, theta=pi * k / gabor_angles)`` computed on the cell's
    crop with ``mode="reflect"``: the same as on the whole image whenever the
    kernel's half-width (``3 sigma``, about ``1.7 * scale`` pixels) is within
    the crop margin, including for cells cut by the image border.

    *LBP.* scikit-image's ``local_binary_pattern(method="uniform")`` of the
    channel, histogram over the cell's pixels normalised to sum 1. Bins ``0``
    ... ``lbp_points`` count the patterns with at most two bit changes by
    their number of neighbours not darker than the centre (bin
    ``lbp_points``: every pixel of a flat region), bin ``lbp_points + 1`` the
    other patterns. A neighbour that ties with the centre always sets its
    bit; scikit-image interpolates at absolute coordinates, so that its
    answer for ties depends on where the pixel lies in the image
    (:func:`local_binary_pattern`). Neighbours come from the crop (0 beyond
    the image), so they match the whole image when the crop margin is at
    least ``lbp_radius + 1``.

    *Granularity.* CellProfiler measures the granular spectrum on the whole
    image: its background is a grey opening about 160 pixels wide at the
    default settings, and its reconstructions follow bright structures
    across the image. A CellSet keeps crops, so here each cell's crop is
    the image (its context margin included) and its mask the only object:
    exactly cp_measure's ``get_granularity`` on the crop, but not on the
    whole field, where the background and large-scale components can differ
    a lot. Cells whose subsampled crop has fewer than 2 rows or columns get
    NaN, as in CellProfiler.

    References
    ----------
    .. [1] Haralick, Shanmugam and Dinstein, "Textural features for image
       classification", IEEE Trans. Syst. Man Cybern. 3, 610-621 (1973).
    .. [2] Ojala, Pietikainen and Maenpaa, "Multiresolution gray-scale and
       rotation invariant texture classification with local binary
       patterns", IEEE TPAMI 24, 971-987 (2002).
    .. [3] Stirling et al., "CellProfiler 4: improvements in speed, utility
       and usability", BMC Bioinformatics 22, 433 (2021).
    .. [4] cp_measure: https://github.com/afermg/cp_measure

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet
    >>> from featcell.features.texture import Texture
    >>> image = np.zeros((24, 24)); image[4:20, 4:20] = 0.5
    >>> image[4:20:2, 4:20] = 0.25  # horizontal stripes, one pixel thick
    >>> labels = np.zeros((24, 24), dtype=int); labels[4:20, 4:20] = 1
    >>> cells = CellSet.from_labels(image, labels, channels=["DNA"])
    >>> table = Texture(features="haralick", scales=[1]).set_output(transform="pandas")
    >>> row = table.fit_transform(cells).iloc[0]
    >>> float(row["Texture_Contrast_DNA_1_00_256"]), float(row["Texture_Contrast_DNA_1_02_256"])
    (0.0, 4096.0)
    """

    _families = ("haralick", "gabor", "gabor_energy", "lbp", "granularity")

    _parameter_constraints: ClassVar[dict] = {
        "gray_levels": [Interval(Integral, 2, 256, closed="both")],
        "gabor_angles": [Interval(Integral, 1, None, closed="left")],
        "lbp_points": [Interval(Integral, 1, 32, closed="both")],
        "lbp_radius": [Interval(Real, 0, None, closed="neither")],
        "granularity_spectrum_length": [Interval(Integral, 1, None, closed="left")],
        "granularity_subsample_size": [Interval(Real, 0, None, closed="neither")],
        "granularity_image_sample_size": [Interval(Real, 0, None, closed="neither")],
        "granularity_element_size": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        features=None,
        *,
        channels=None,
        scales=(3,),
        gray_levels=256,
        gabor_angles=4,
        lbp_points=8,
        lbp_radius=1,
        granularity_spectrum_length=16,
        granularity_subsample_size=0.25,
        granularity_image_sample_size=0.25,
        granularity_element_size=10,
        compartment=None,
        n_jobs=None,
    ):
        self.features = features
        self.channels = channels
        self.scales = scales
        self.gray_levels = gray_levels
        self.gabor_angles = gabor_angles
        self.lbp_points = lbp_points
        self.lbp_radius = lbp_radius
        self.granularity_spectrum_length = granularity_spectrum_length
        self.granularity_subsample_size = granularity_subsample_size
        self.granularity_image_sample_size = granularity_image_sample_size
        self.granularity_element_size = granularity_element_size
        self.compartment = compartment
        self.n_jobs = n_jobs

    def _check_params(self):
        self.scales_ = _check_scales(self.scales)

    # ------------------------------------------------------------------ names
    def _radius_name(self):
        return f"{self.lbp_radius:g}"

    def _feature_names(self):
        names = []
        for family in self.families_:
            for ch in self.channels_:
                if family == "haralick":
                    names += [
                        f"Texture_{f}_{ch}_{s}_{a:02d}_{self.gray_levels}"
                        for s in self.scales_
                        for a in range(len(_DIRECTIONS))
                        for f in HARALICK_FEATURES
                    ]
                elif family == "gabor":
                    names += [f"Texture_Gabor_{ch}_{s}" for s in self.scales_]
                elif family == "gabor_energy":
                    names += [
                        f"Texture_GaborEnergy_{ch}_{s}_{a:02d}"
                        for s in self.scales_
                        for a in range(self.gabor_angles)
                    ]
                elif family == "lbp":
                    names += [
                        f"Texture_LBP_{b}_{ch}_{self.lbp_points}_{self._radius_name()}"
                        for b in range(self.lbp_points + 2)
                    ]
                else:
                    names += [
                        f"Granularity_{k}_{ch}"
                        for k in range(1, self.granularity_spectrum_length + 1)
                    ]
        return names

    # ------------------------------------------------------------------ compute
    def _compute(self, cells):
        n = len(cells)
        families = set(self.families_)
        pixels = _MaskPixels(cells)
        if "lbp" in families:
            image, labels, _ = cells.mosaic(gap=int(np.ceil(self.lbp_radius)) + 1)
            owner = labels - 1
        blocks = []
        for family in self.families_:
            for ch in self.channels_:
                c = self._channel_index(ch)
                values = pixels.flat.values[c, pixels.index]
                if family == "haralick":
                    blocks.append(self._haralick(pixels, quantize(values, self.gray_levels)))
                elif family == "gabor":
                    blocks += [
                        cellprofiler_gabor(pixels, values, s, self.gabor_angles)[:, None]
                        for s in self.scales_
                    ]
                elif family == "gabor_energy":
                    for s in self.scales_:
                        canvas, where = _reflect_canvas(pixels, c, _gabor_half_width(1.0 / s))
                        for a in range(self.gabor_angles):
                            theta = np.pi * a / self.gabor_angles
                            energy = _gabor_energy_at(canvas, 1.0 / s, theta, where)
                            blocks.append(pixels.mean(energy)[:, None])
                elif family == "lbp":
                    blocks.append(self._lbp(image[c], owner, n))
                else:
                    blocks.append(
                        granularity(
                            pixels.flat.values[c].astype(np.float64),
                            pixels,
                            self.granularity_spectrum_length,
                            self.granularity_subsample_size,
                            self.granularity_image_sample_size,
                            self.granularity_element_size,
                        )
                    )
        return np.hstack(blocks) if blocks else np.empty((n, 0))

    def _haralick(self, pixels, levels):
        # co-occurrences are counted in batches of cells with about _HARALICK_PIXELS pixels
        # (cache-sized arrays); the features of all cells come at once, per scale
        n, n_dir, n_scales = pixels.n, len(_DIRECTIONS), len(self.scales_)
        entries = [[] for _ in self.scales_]
        groups = []  # per batch: each (direction, cell) group's cell, direction, K, qmin, qmax
        for lo, hi in pixels.batches(_HARALICK_PIXELS):
            part = pixels.cells_range(lo, hi)
            first = pixels.starts[lo]
            box = _BoxCanvas(part, max(self.scales_))
            counter = _CoOccurrence(part, box, levels[first : first + part.counts.sum()])
            for k, s in enumerate(self.scales_):
                entries[k].append(counter.entries(s))
            groups.append(
                [np.tile(np.arange(lo, hi), n_dir), np.repeat(np.arange(n_dir), hi - lo)]
                + [np.tile(v, n_dir) for v in (counter.K, counter.qmin, counter.qmax)]
            )
        out = np.full((n, n_scales, n_dir, len(HARALICK_FEATURES)), np.nan)
        if not groups:
            return out.reshape(n, -1)
        cell, direction, K, qmin, qmax = (np.concatenate(g) for g in zip(*groups))
        for k in range(n_scales):
            size, r, c, count = (np.concatenate(e) for e in zip(*entries[k]))
            features, has_pairs = _haralick_features(size, r, c, count, K, qmin, qmax)
            out[cell, k, direction] = features
            out[cell[~has_pairs], k] = np.nan  # a direction without pairs: NaN at this scale
        return out.reshape(n, -1)

    def _lbp(self, image, owner, n):
        codes = local_binary_pattern(image, self.lbp_points, self.lbp_radius)
        inside = owner >= 0
        n_bins = self.lbp_points + 2
        counts = np.bincount(owner[inside] * n_bins + codes[inside], minlength=n * n_bins).reshape(
            n, n_bins
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            return counts / counts.sum(axis=1, keepdims=True)
