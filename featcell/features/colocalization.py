"""Per-cell colocalization between channels: CellProfiler's MeasureColocalization.

The pixels of all cells are laid out cell after cell, so every measure is a
handful of per-cell ``ufunc.reduceat`` sums; the rank-weighted coefficient
ranks intensities by occupied (cell, grey level) bins, or by sorting them within
each cell; Costes' threshold search runs its bisection for all
cells in lockstep.
"""

from __future__ import annotations

from itertools import combinations
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from ._base import CellFeatureTransformer
from ._pixels import cell_pixels

__all__ = ["Colocalization"]

# feature names per family, in the order its method returns the values; "{a}_{b}" /
# "{b}_{a}" order as CellProfiler records them
_NAMES = {
    "correlation": ("Correlation_Correlation_{a}_{b}", "Correlation_Slope_{a}_{b}"),
    "overlap": ("Correlation_Overlap_{a}_{b}", "Correlation_K_{a}_{b}", "Correlation_K_{b}_{a}"),
    "manders": ("Correlation_Manders_{a}_{b}", "Correlation_Manders_{b}_{a}"),
    "rwc": ("Correlation_RWC_{a}_{b}", "Correlation_RWC_{b}_{a}"),
    "costes": ("Correlation_Costes_{a}_{b}", "Correlation_Costes_{b}_{a}"),
}
_MAX_BISECTIONS = 256


def _pearson(x, y, seg):
    """Per-cell Pearson r of paired values laid out by ``seg``, and the centred sums.

    Computed on values centred on each cell's mean, as ``numpy.corrcoef`` and
    ``scipy.stats.pearsonr`` do, so near-constant cells keep their precision
    and the sign of a near-zero r agrees with theirs. Returns ``r, sxx, sxy``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - seg.spread(seg.sum(x) / seg.counts)
        dy = y - seg.spread(seg.sum(y) / seg.counts)
        sxx, syy, sxy = seg.sum(dx * dx), seg.sum(dy * dy), seg.sum(dx * dy)
        return np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0), sxx, sxy


def _constant(values, seg):
    """Per cell: all values equal (True for a cell without values)."""
    return seg.reduce(np.maximum, values, empty=0.0) == seg.reduce(np.minimum, values, empty=0.0)


def _dense_ranks(values, grid, pix, scale):
    """Rank of every pixel among the distinct values of its cell (0 = smallest).

    Intensities on the grid ``k / scale`` (``grid`` holds ``k``) are ranked by
    marking the occupied ``(cell, k)`` bins and counting them, in linear
    time; other values by sorting them within each cell.
    """
    bins = scale + 1
    if grid is not None and pix.n * bins <= max(4 * values.size, 1 << 20):
        key = pix.obj * np.intp(bins) + grid
        occupied = np.zeros(pix.n * bins, dtype=bool)
        occupied[key] = True
        seen = np.cumsum(occupied)  # distinct values up to each bin, cells in order
        before = np.concatenate([[0], seen])[np.arange(pix.n) * bins]
        return seen[key] - 1 - pix.spread(before)
    order = pix.sort(values, positions=True)
    ordered = values[order]
    new = np.ones(values.size, dtype=bool)  # a value unlike the one before it in its cell
    new[1:] = ordered[1:] != ordered[:-1]
    new[pix.starts[pix.has]] = True
    distinct = np.cumsum(new) - 1
    ranks = np.empty(values.size, dtype=np.intp)
    ranks[order] = distinct - pix.spread(pix.reduce(np.minimum, distinct, dtype=np.intp))
    return ranks


# float32's relative rounding (2**-24), with a margin: float32(k / scale) lies this close
_FLOAT32_ROUNDING = 2.0**-23


def _on_grid(values, scale):
    """float64 intensities, snapping each value that is ``float32(k / scale)`` to ``k / scale``.

    An integer image ``k`` becomes ``float32(k / scale)`` in a CellSet;
    CellProfiler works with the float64 ``k / scale``. Restoring it makes
    comparisons with thresholds on that grid (Costes) or with a fraction of
    the cell's maximum come out as in CellProfiler. Only values within float32
    rounding of a step are snapped (0 only when exactly 0), so intensities off
    the grid, however small, are kept as they are. Also returns the grid
    indices ``k`` when every value is on the grid within [0, 1], else None.
    """
    v = values.astype(np.float64)
    grid = np.rint(v * scale)
    step = grid / scale
    on = np.abs(v - step) <= _FLOAT32_ROUNDING * np.abs(step)
    snapped = np.where(on, step, v)
    if on.all() and (not grid.size or (grid.min() >= 0 and grid.max() <= scale)):
        return snapped, grid.astype(np.intp)
    return snapped, None


class _Pair:
    """Two channels' pixels over all cells, with the per-cell thresholds they share.

    ``xb``/``yb`` are the intensities where both channels reach ``threshold``
    percent of the cell's maximum (0 elsewhere); ``total_x``/``total_y`` sum
    each channel over its own above-threshold pixels. Each family's method
    returns its values in the order of the family's names in ``_NAMES``.
    """

    def __init__(self, x32, y32, pix, threshold, scale):
        self.x32, self.y32, self.pix, self.scale = x32, y32, pix, scale
        (self.x, self.grid_x), (self.y, self.grid_y) = _on_grid(x32, scale), _on_grid(y32, scale)
        fraction = threshold / 100.0
        above_x = self.x >= pix.spread(fraction * pix.reduce(np.maximum, self.x))
        above_y = self.y >= pix.spread(fraction * pix.reduce(np.maximum, self.y))
        both = above_x & above_y
        self.xb, self.yb = self.x * both, self.y * both
        self.any_both = pix.select(both).has
        self.total_x = pix.sum(self.x * above_x)
        self.total_y = pix.sum(self.y * above_y)

    def correlation(self):
        r, sxx, sxy = _pearson(self.x, self.y, self.pix)
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = sxy / sxx
        # a constant channel has no correlation (numpy's 0/0), a constant x no slope
        constant_x = _constant(self.x, self.pix)
        r[constant_x | _constant(self.y, self.pix)] = np.nan
        slope[constant_x] = np.nan
        return r, slope

    def overlap(self):
        pix, xb, yb = self.pix, self.xb, self.yb
        xx, yy, xy = pix.sum(xb * xb), pix.sum(yb * yb), pix.sum(xb * yb)
        with np.errstate(invalid="ignore", divide="ignore"):
            overlap_k1_k2 = xy / np.sqrt(xx * yy), xy / xx, xy / yy
        return [np.where(self.any_both, v, 0.0) for v in overlap_k1_k2]

    def manders(self):
        return self._fractions(self.pix.sum(self.xb), self.pix.sum(self.yb))

    def rwc(self):
        pix = self.pix
        rank_x = _dense_ranks(self.x32, self.grid_x, pix, self.scale)
        rank_y = _dense_ranks(self.y32, self.grid_y, pix, self.scale)
        top = np.maximum(pix.reduce(np.maximum, rank_x), pix.reduce(np.maximum, rank_y)) + 1
        top = pix.spread(top)
        weight = (top - np.abs(rank_x - rank_y)) / top
        return self._fractions(pix.sum(self.xb * weight), pix.sum(self.yb * weight))

    def _fractions(self, part_x, part_y):
        with np.errstate(invalid="ignore", divide="ignore"):
            x_in_y, y_in_x = part_x / self.total_x, part_y / self.total_y
        return np.where(self.any_both, x_in_y, 0.0), np.where(self.any_both, y_in_x, 0.0)


def _costes(x, y, pix, scale):
    """Costes-thresholded Manders coefficients, CellProfiler's "Faster" (bisection) mode.

    Follows cp_measure's ``bisection_costes`` and ``_costes_pair`` step for
    step, for all cells at once: each iteration tests every still-searching
    cell's candidate threshold with one set of per-cell reductions.
    Undefined cases (fewer than 3 pixels or 3 non-zero pixels, a constant
    channel, zero covariance, no valid threshold, an undefined background
    correlation or a zero denominator) give NaN. Returns (n_cells, 2).
    """
    n = pix.n
    nz = (x > 0) | (y > 0)
    seg_nz = pix.select(nz)
    x_nz, y_nz = x[nz], y[nz]
    ok = (
        (pix.counts >= 3)
        & (seg_nz.counts >= 3)
        & ~_constant(x_nz, seg_nz)
        & ~_constant(y_nz, seg_nz)
    )

    # orthogonal regression of the non-zero pixels (the covariance as CellProfiler writes it)
    with np.errstate(invalid="ignore", divide="ignore"):
        count = seg_nz.counts

        def variance(v):
            centred = v - seg_nz.spread(seg_nz.sum(v) / count)
            return seg_nz.sum(centred * centred) / (count - 1)

        var_x, var_y, var_z = variance(x_nz), variance(y_nz), variance(x_nz + y_nz)
        covar = 0.5 * (var_z - (var_x + var_y))
        ok &= np.abs(covar) > 8 * np.finfo(float).eps * np.maximum(var_x, var_y)
        slope = ((var_y - var_x) + np.sqrt((var_y - var_x) ** 2 + 4 * covar**2)) / (2 * covar)
        offset = seg_nz.sum(y_nz) / count - slope * (seg_nz.sum(x_nz) / count)
    ok &= np.isfinite(slope) & np.isfinite(offset)

    def background_correlation(thr_x):
        """Pearson r of the pixels below either threshold, per cell (NaN where undefined).

        ``thr_x`` is per cell; NaN leaves a cell out.
        """
        below = (x < pix.spread(thr_x)) | (y < pix.spread(slope * thr_x + offset))
        seg = pix.select(below)
        xs, ys = x[below], y[below]
        r = _pearson(xs, ys, seg)[0]
        r[(seg.counts < 3) | _constant(xs, seg) | _constant(ys, seg)] = np.nan
        return r

    # cp_measure's bisection_costes, every cell in lockstep
    left = np.ones(n)
    right = np.full(n, float(scale))
    mid = np.floor_divide(right - left, 6 / 5) + left
    valid = np.full(n, np.nan)
    active = ok.copy()
    for _ in range(_MAX_BISECTIONS):
        if not active.any():
            break
        r = background_correlation(np.where(active, mid / scale, np.nan))
        low = active & (~np.isfinite(r) | (r < 0))
        high = active & ~low
        left[low] = mid[low] - 1
        right[high] = mid[high] + 1
        valid[high] = mid[high]
        span = right - left
        new_mid = np.floor_divide(span, np.where(span > 6, 6 / 5, 2.0)) + left
        moved = active & (new_mid != mid)
        mid[active] = new_mid[active]
        active = moved
    ok &= ~active & np.isfinite(valid)  # converged, with a valid threshold

    thr_x = np.where(ok, (valid - 1) / scale, np.nan)
    ok &= np.isfinite(background_correlation(thr_x))
    with np.errstate(invalid="ignore", divide="ignore"):
        thr_x[~ok] = np.inf  # leaves the cell out of the sums below
        tx, ty = pix.spread(thr_x), pix.spread(slope * thr_x + offset)
        above = (x > tx) & (y > ty)
        tot_x, tot_y = pix.sum(x * (x >= tx)), pix.sum(y * (y >= ty))
        ok &= (tot_x > 0) & (tot_y > 0)
        result = np.column_stack([pix.sum(x * above) / tot_x, pix.sum(y * above) / tot_y])
    result[~ok] = np.nan
    return result


class Colocalization(CellFeatureTransformer):
    """Per-cell colocalization of every pair of channels.

    Reproduces CellProfiler's MeasureColocalization "within objects" (as
    packaged by cp_measure's ``get_correlation_*`` functions), vectorised
    across all cells of a :class:`~featcell.CellSet`.

    Parameters
    ----------
    features : str or list of str, optional
        Feature families to compute, any of ``"correlation"`` (Pearson
        correlation and regression slope), ``"overlap"`` (overlap
        coefficient and K1/K2), ``"manders"`` (M1/M2), ``"rwc"``
        (rank-weighted colocalization) and ``"costes"`` (Manders with
        Costes' automatic thresholds). Default: all.
    channels : str or list of str, optional
        Channels to pair. Default: all channels of the cells.
    pairs : list of (str, str), optional
        Channel pairs to measure. Default: every unordered pair of
        ``channels`` in channel order, as CellProfiler does (``(DNA, PH3)``,
        ``(DNA, Actin)``, ``(PH3, Actin)`` for three channels).
    threshold : float, default=15
        For overlap, Manders and RWC, only pixels at or above ``threshold``
        percent of the cell's maximum intensity in each channel count
        (CellProfiler's "threshold as percentage of maximum intensity").
    scale : int, default=255
        The acquisition's intensity scale (CellProfiler's image scale): 255
        for 8-bit images, 65535 for 16-bit ones. It is the grid ``k / scale``
        of Costes' threshold search, and intensities on that grid (what an
        integer image becomes in a :class:`~featcell.CellSet`, up to float32
        rounding) are used as exactly ``k / scale``, as CellProfiler reads
        them, so that pixels exactly at a threshold are counted as in
        CellProfiler.
    compartment : str, optional
        Prefix for the feature names, e.g. ``"Cells"``.
    n_jobs : int, default=None
        Jobs in parallel over chunks of cells: ``None`` is 1 (unless in a
        :obj:`joblib.parallel_backend` context), ``-1`` all processors.

    Attributes
    ----------
    channels_ : tuple of str
        The channels selected.
    pairs_ : list of tuple of str
        The channel pairs measured.
    families_ : tuple of str
        The feature families computed, in output order.
    feature_names_out_ : ndarray of str
        Output names, CellProfiler's: ``Correlation_Correlation_<A>_<B>``,
        ``Correlation_Slope_<A>_<B>``, ``Correlation_Overlap_<A>_<B>``,
        ``Correlation_K_<A>_<B>`` and ``Correlation_K_<B>_<A>``,
        ``Correlation_Manders_<A>_<B>`` (M1: the fraction of ``A`` where
        ``B`` is present) and ``Correlation_Manders_<B>_<A>`` (M2), and
        likewise for ``RWC`` and ``Costes``.
    n_features_in_ : int
        Number of channels of the cells seen in ``fit``.
    channel_names_in_ : tuple of str
        Channel names of the cells seen in ``fit``.

    See Also
    --------
    featcell.Intensity : per-channel intensity statistics.

    Notes
    -----
    For a cell with pixel values ``a`` and ``b`` in the two channels:

    - Correlation is Pearson's r; Slope the least-squares slope of ``b`` on
      ``a``. A cell with fewer than two pixels or a constant channel gets NaN.
    - With ``ta = threshold% * max(a)``, ``tb`` likewise and
      ``both = (a >= ta) & (b >= tb)``: Overlap is
      ``sum(a b) / sqrt(sum(a^2) sum(b^2))`` over ``both``, K1 and K2 are
      ``sum(a b) / sum(a^2)`` and ``sum(a b) / sum(b^2)``; Manders M1 is
      ``sum(a[both]) / sum(a[a >= ta])`` and M2 likewise; RWC weighs each
      pixel of M1/M2 by ``(R - |rank(a) - rank(b)|) / R``, with dense ranks
      within the cell and ``R`` one more than the largest rank (Singan et
      al. 2011). All are 0 for a cell where no pixel is above both
      thresholds, as in cp_measure.
    - Costes: the thresholds ``(t, slope * t + offset)`` along the
      orthogonal regression line of the non-zero pixels, with ``t`` found by
      CellProfiler's "Faster" bisection on the grid ``k / scale``
      (the largest threshold whose below-threshold pixels are not
      anti-correlated); then Manders with strict ``>`` on both thresholds.
      Costes needs intensities in [0, 1] (integer images are rescaled so by
      :class:`~featcell.CellSet`) and gives NaN where it is undefined: fewer
      than three (non-zero) pixels, a constant channel, zero covariance, no
      valid threshold or a zero denominator (cp_measure also warns there).

    References
    ----------
    .. [1] Manders, Verbeek and Aten, "Measurement of co-localization of
       objects in dual-colour confocal images", J. Microscopy 169 (1993).
    .. [2] Costes et al., "Automatic and quantitative measurement of
       protein-protein colocalization in live cells", Biophys. J. 86 (2004).
    .. [3] Singan et al., "Dual channel rank-based intensity weighting for
       quantitative co-localization of microscopy images", BMC
       Bioinformatics 12, 407 (2011).

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet
    >>> from featcell.features.colocalization import Colocalization
    >>> rng = np.random.default_rng(0)
    >>> dna = rng.random((30, 30))
    >>> image = np.stack([dna, 0.5 * dna], axis=-1)
    >>> labels = np.zeros((30, 30), dtype=int); labels[5:25, 5:25] = 1
    >>> cells = CellSet.from_labels(image, labels, channels=["DNA", "PH3"])
    >>> coloc = Colocalization(features="correlation").set_output(transform="pandas")
    >>> coloc.fit_transform(cells).round(3).iloc[0].to_dict()
    {'Correlation_Correlation_DNA_PH3': 1.0, 'Correlation_Slope_DNA_PH3': 0.5}
    """

    _families = ("correlation", "overlap", "manders", "rwc", "costes")

    _parameter_constraints: ClassVar[dict] = {
        "pairs": [list, tuple, None],
        "threshold": [Interval(Real, 0, 100, closed="both")],
        "scale": [Interval(Integral, 2, 2**32 - 1, closed="both")],
    }

    def __init__(
        self,
        features=None,
        *,
        channels=None,
        pairs=None,
        threshold=15,
        scale=255,
        compartment=None,
        n_jobs=None,
    ):
        self.features = features
        self.channels = channels
        self.pairs = pairs
        self.threshold = threshold
        self.scale = scale
        self.compartment = compartment
        self.n_jobs = n_jobs

    def _select_pairs(self):
        if self.pairs is None:
            if len(self.channels_) < 2:
                raise ValueError(
                    f"Colocalization needs at least two channels, got {list(self.channels_)}; "
                    "pass cells with several channels or select them with channels=[...]"
                )
            return list(combinations(self.channels_, 2))
        pairs = []
        for pair in self.pairs:
            if isinstance(pair, str) or len(pair) != 2:
                raise ValueError(f"pairs must be a list of (channel, channel) tuples, got {pair!r}")
            a, b = pair
            missing = [c for c in (a, b) if c not in self.channels_]
            if missing:
                raise ValueError(
                    f"pairs: channel(s) {missing!r} not in channels {list(self.channels_)}"
                )
            if a == b:
                raise ValueError(f"pairs: a channel cannot be paired with itself, got {pair!r}")
            if {a, b} in [set(p) for p in pairs]:  # (a, b) measures (b, a) too: K, Manders...
                raise ValueError(f"pairs: {pair!r} is given twice (in either order); each "
                                 "pair measures both directions")
            pairs.append((a, b))
        if not pairs:
            raise ValueError("pairs is empty; pass None for all channel pairs")
        return pairs

    def _feature_names(self):
        self.pairs_ = self._select_pairs()
        return [
            name.format(a=a, b=b)
            for family in self.families_
            for a, b in self.pairs_
            for name in _NAMES[family]
        ]

    def _compute(self, cells):
        pix = cell_pixels(cells)
        if not pix.index.size:  # only empty masks: nothing to measure
            return {}
        columns = {}
        for a, b in self.pairs_:
            x32 = pix.values(self._channel_index(a))
            y32 = pix.values(self._channel_index(b))
            pair = _Pair(x32, y32, pix, self.threshold, self.scale)
            for family in self.families_:
                if family == "costes":
                    for channel, v in ((a, x32), (b, y32)):
                        if v.size and (v.min() < 0 or v.max() > 1):
                            raise ValueError(
                                f"Costes colocalization needs intensities in [0, 1] but channel "
                                f"{channel!r} spans [{v.min():g}, {v.max():g}]; build the cells from "
                                "integer images (rescaled by their dtype) or rescale, or leave "
                                "Costes out: Colocalization(features=[...] without 'costes'), "
                                "or CellFeatures(families=[...] without 'colocalization')"
                            )
                    found = _costes(pair.x, pair.y, pix, self.scale).T
                else:
                    found = getattr(pair, family)()
                columns |= {name.format(a=a, b=b): v for name, v in zip(_NAMES[family], found)}
        return columns
