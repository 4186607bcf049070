"""Per-cell intensity features: CellProfiler's MeasureObjectIntensity and
MeasureObjectIntensityDistribution, for all cells at once.

The mask pixels of all cells are laid out cell after cell
(:class:`~featcell.features._pixels.CellPixels`); per-object sums, order
statistics, the distance to the edge and the geodesic distance from the
centre are compiled loops (:mod:`featcell.features._kernels`), each the
step of CellProfiler it is named after. Outlines and distances are measured on
one canvas holding every object in a box of its own.
"""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import CellFeatureTransformer
from ._kernels.geodesic import geodesic_distance, radial_bins
from ._kernels.intensity_sums import intensity_statistics
from ._kernels.order_stats import quartiles_and_mad
from ._kernels.outline import outline
from ._pixels import cell_pixels

__all__ = ["Intensity"]

_INTENSITY = [
    "IntegratedIntensity", "MeanIntensity", "StdIntensity", "MinIntensity", "MaxIntensity",
    "LowerQuartileIntensity", "MedianIntensity", "MADIntensity", "UpperQuartileIntensity",
]  # fmt: skip
_EDGE_OF = _INTENSITY[:5]  # integrated .. max, also on the outline
_EDGE = [f"{name}Edge" for name in _EDGE_OF]
_MASS = [
    "MassDisplacement", "CenterMassIntensityOffset_X", "CenterMassIntensityOffset_Y",
    "MaxIntensityOffset_X", "MaxIntensityOffset_Y",
]  # fmt: skip
_RADIAL = ("FracAtD", "MeanFrac", "RadialCV")
_N_WEDGES = 8


def _open_edges(cells):
    """Per cell: True if it was cut by the image border (``Metadata_TouchesBorder``)."""
    if "Metadata_TouchesBorder" not in cells.metadata:
        return np.zeros(len(cells), dtype=bool)
    return cells.metadata["Metadata_TouchesBorder"].to_numpy(dtype=bool)


# ---------------------------------------------------------------------- radial geometry
def _distance_to_edge(cells, pix):
    """Per mask pixel: Euclidean distance to the nearest pixel outside its object.

    Each object is measured alone on a background
    (:attr:`~featcell.features._pixels.CellPixels.squared_distances`), but
    CellProfiler does not treat the image border as background: for a cell
    cut by the border (flagged ``Metadata_TouchesBorder`` and reaching its
    crop's side there) the ring of its box on that side repeats the object's
    pixels next to it, so nearest-background distances behave as at an image
    border (also for a cell cut on opposite sides, which a mirrored copy of
    the box would give background beyond the border).
    """
    distance, canvas = np.sqrt(pix.squared_distances), pix.canvas
    cut = _open_edges(cells) & pix.has
    if cut.any():  # a few cells: copy their rim into the ring, and measure them again
        edges = canvas.inside.copy()
        for i in np.flatnonzero(cut):
            (r0, c0), (top, left, h, w) = canvas.corners[i], canvas.boxes[i]
            box, ring = edges[r0 : r0 + h, c0 : c0 + w], edges[r0 - 1 : r0 + h + 1]
            if top == 0:
                edges[r0 - 1, c0 : c0 + w] = box[0]
            if top + h == pix.shapes[i, 0]:
                edges[r0 + h, c0 : c0 + w] = box[-1]
            if left == 0:  # (the corners of the ring too)
                ring[:, c0 - 1] = ring[:, c0]
            if left + w == pix.shapes[i, 1]:
                ring[:, c0 + w] = ring[:, c0 + w - 1]
        again = np.flatnonzero(np.repeat(cut, pix.counts))
        distance[again] = np.sqrt(canvas.squared_distances(edges, canvas.rings[cut], again))
    return distance


def _radial_geometry(cells, pix, n_rings):
    """The radial bins of every mask pixel, as CellProfiler (a :class:`_RadialBins`).

    The centre of an object is its point farthest from the edge (the first in
    row-major order on ties); a pixel's normalised distance is
    ``d_centre / (d_centre + d_edge + 0.001)``, with ``d_centre`` the geodesic
    distance from the centre inside the object, undefined where the centre
    cannot be reached (other fragments of a disconnected object: left out).
    """
    d_edge, canvas = _distance_to_edge(cells, pix), pix.canvas
    centre = pix.first_where(d_edge == pix.spread(pix.reduce(np.maximum, d_edge)))
    d_centre = np.full(canvas.inside.size, np.inf)
    inside = canvas.inside.view(np.uint8)
    geodesic_distance(inside, canvas.lin[centre[pix.has]], pix.counts.max(), d_centre)
    slot = np.empty(pix.index.size, np.intp)
    radial_bins(d_centre.take(canvas.lin), d_edge, pix.row, pix.col, pix.starts, pix.counts,
                centre, n_rings, slot)  # fmt: skip
    return _RadialBins(pix, slot, n_rings)


class _RadialBins:
    """Each mask pixel's (cell, ring, wedge) slot and the per-slot pixel counts.

    Geometry only, shared by all channels; :meth:`features` bins one channel.
    Eight wedges around the centre (:func:`~._kernels.geodesic.radial_bins`);
    ring totals are sums over the wedges.
    """

    def __init__(self, pix, slot, n_rings):
        self.n_rings = n_rings
        self.shape = (pix.n, n_rings + 1, _N_WEDGES)
        good = slot >= 0  # (the others cannot be reached from their centre)
        self.good = None if good.all() else good
        self.slot = slot if self.good is None else slot[good]
        size = int(np.prod(self.shape))
        self.w_count = np.bincount(self.slot, minlength=size).reshape(self.shape)
        count = self.w_count.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.frac_pixels = count / count.sum(axis=1, keepdims=True)
        self.occupied = self.w_count > 0
        self.k = self.occupied.sum(axis=2)
        self.w_divisor = np.maximum(self.w_count, 1)

    def features(self, v):
        """FracAtD, MeanFrac and RadialCV, (n_cells, n_rings) each, of one channel (float64 ``v``)."""
        n_rings, shape = self.n_rings, self.shape
        if self.good is not None:
            v = v[self.good]
        w_total = np.bincount(self.slot, weights=v, minlength=np.prod(shape)).reshape(shape)
        total = w_total.sum(axis=2)
        occupied, k = self.occupied, self.k
        with np.errstate(invalid="ignore", divide="ignore"):
            frac_at_d = total / total.sum(axis=1, keepdims=True)
            mean_frac = frac_at_d / (self.frac_pixels + np.finfo(float).eps)
            means = np.where(occupied, w_total / self.w_divisor, 0.0)
            mu = means.sum(axis=2) / k
            sd = np.sqrt((np.where(occupied, means - mu[..., None], 0.0) ** 2).sum(axis=2) / k)
            # CellProfiler's masked division leaves the numerator where the mean is 0
            radial_cv = np.where(mu == 0, sd, sd / mu)
        radial_cv[k == 0] = 0.0
        return {
            "FracAtD": frac_at_d[:, :n_rings],
            "MeanFrac": mean_frac[:, :n_rings],
            "RadialCV": radial_cv[:, :n_rings],
        }


# ---------------------------------------------------------------------- transformer
class Intensity(CellFeatureTransformer):
    """Per-cell intensity statistics and radial distribution, per channel.

    Reproduces CellProfiler's MeasureObjectIntensity and
    MeasureObjectIntensityDistribution (as packaged by cp_measure's
    ``get_intensity`` and ``get_radial_distribution``), vectorised across
    all cells of a :class:`~featcell.CellSet`.

    Parameters
    ----------
    features : str or list of str, optional
        Feature families to compute, any of ``"intensity"`` (integrated,
        mean, std, min, max, quartiles, median, MAD), ``"edge"`` (the same
        on the object outline), ``"mass"`` (mass displacement and the
        intensity-weighted centre / brightest pixel relative to the
        centroid), ``"radial"`` (FracAtD, MeanFrac, RadialCV per ring).
        Default: all.
    channels : str or list of str, optional
        Channels to measure. Default: all channels of the cells.
    n_rings : int, default=4
        Number of concentric rings of the radial distribution (CellProfiler's
        "number of bins", scaled to each object).
    quantile_method : {"cellprofiler", "linear"}, default="cellprofiler"
        Interpolation of quartiles, median and MAD: ``"cellprofiler"`` at
        position ``n * q`` of the sorted pixels (CellProfiler and cp_measure
        with ``legacy=True``), ``"linear"`` at ``(n - 1) * q`` like
        ``numpy.percentile`` (cp_measure's default since 0.3).
    compartment : str, optional
        Prefix for the feature names, e.g. ``"Nuclei"``.
    n_jobs : int, default=None
        Jobs in parallel over chunks of cells: ``None`` is 1 (unless in a
        :obj:`joblib.parallel_backend` context), ``-1`` all processors.

    Attributes
    ----------
    channels_ : tuple of str
        The channels measured.
    families_ : tuple of str
        The feature families computed, in output order.
    feature_names_out_ : ndarray of str
        Output names, ``Intensity_<Feature>_<Channel>`` and
        ``RadialDistribution_<Feature>_<Channel>_<k>of<n_rings>``.
    n_features_in_ : int
        Number of channels of the cells seen in ``fit``.
    channel_names_in_ : tuple of str
        Channel names of the cells seen in ``fit``.

    See Also
    --------
    featcell.Colocalization : correlation between channels inside each cell.

    Notes
    -----
    Standard deviations are population (``ddof=0``) values, as in
    CellProfiler. ``MADIntensity`` is the median of ``|x - median(x)|``.
    Statistics are taken on the CellSet's float32 intensities and accumulated
    in float64; CellProfiler reads images as float64, so values agree to
    about 1e-7 relative.

    *Locations as features.* CellProfiler's ``Location_CenterMassIntensity_X/Y``
    and ``Location_MaxIntensity_X/Y`` are absolute image coordinates: they
    say where a cell sits in the field, not what it looks like, and would let
    a classifier learn the field layout. Here they are reported relative to
    the cell's centroid (``Metadata_Location_Center_X/Y``), in pixels:
    ``Intensity_CenterMassIntensityOffset_X_<Channel>`` is
    ``CenterMassIntensity_X - Center_X``, and likewise for Y and for the
    brightest pixel (``MaxIntensityOffset``, the first one in row-major order
    on ties). ``MassDisplacement`` is the length of the centre-of-mass offset.
    A cell whose integrated intensity is zero has no intensity-weighted centre:
    its ``MassDisplacement`` and ``CenterMassIntensityOffset`` are NaN, as in
    CellProfiler.

    *Edges and the image border.* The outline is CellProfiler's: object
    pixels with a 4-connected neighbour outside the object. CellProfiler does
    not treat the image border as background (neither for the outline nor
    for the distance to the edge of the radial distribution); featcell
    mirrors the object across the sides of its crop that it reaches when the
    cell is flagged ``Metadata_TouchesBorder``, which equals CellProfiler on
    the whole image whenever the crop margin is at least 1 pixel (with
    ``margin=0`` a border cell is treated as cut on every side its mask
    reaches). Other cells, including :meth:`~featcell.CellSet.from_crops`
    cells, are taken to be surrounded by background. A one-pixel object is
    its own outline, at distance 1 from the edge. A cell without outline
    pixels gets 0 edge features, a cell without any pixels NaN (edge
    features 0), as in CellProfiler.

    *Radial distribution.* Each pixel's normalised distance is
    ``d_centre / (d_centre + d_edge + 0.001)``, where the centre is the
    object point farthest from its edge (the first in row-major order on
    ties), ``d_edge`` the Euclidean distance to the nearest background pixel
    and ``d_centre`` the 8-connected geodesic distance from the centre within
    the object (steps 1 and sqrt 2, centrosome's ``propagate``); ring ``k``
    of ``n`` holds the pixels with normalised distance in ``[(k-1)/n, k/n)``.
    ``FracAtD`` is the fraction of the object's intensity in the ring,
    ``MeanFrac`` that fraction divided by the fraction of its pixels in the
    ring, and ``RadialCV`` the coefficient of variation of the mean intensity
    of eight wedges of the ring (0 for an empty ring). Fragments of a
    disconnected object that cannot be reached from its centre are left out,
    as in CellProfiler. The bins are always scaled to the object
    (CellProfiler's default); Zernike intensity moments are not computed. An
    object that fills its whole image has no background pixel at all: its
    ``d_edge`` is then larger than any distance in it (the rings follow
    ``d_centre`` alone), where CellProfiler takes scipy's distance transform of
    an all-object image, which measures from just above its top-left pixel.

    References
    ----------
    .. [1] Stirling et al., "CellProfiler 4: improvements in speed, utility and
       usability", BMC Bioinformatics 22, 433 (2021).
    .. [2] cp_measure: https://github.com/afermg/cp_measure

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet
    >>> from featcell.features.intensity import Intensity
    >>> image = np.zeros((20, 20)); image[4:8, 4:8] = [[1, 2, 3, 4]] * 4
    >>> labels = np.zeros((20, 20), dtype=int); labels[4:8, 4:8] = 1
    >>> cells = CellSet.from_labels(image, labels, channels=["DNA"])
    >>> table = Intensity(features="intensity").set_output(transform="pandas")
    >>> row = table.fit_transform(cells).iloc[0]
    >>> float(row["Intensity_IntegratedIntensity_DNA"]), float(row["Intensity_MedianIntensity_DNA"])
    (40.0, 3.0)
    """

    _families = ("intensity", "edge", "mass", "radial")

    _parameter_constraints: ClassVar[dict] = {
        "n_rings": [Interval(Integral, 1, None, closed="left")],
        "quantile_method": [StrOptions({"cellprofiler", "linear"})],
    }

    def __init__(
        self,
        features=None,
        *,
        channels=None,
        n_rings=4,
        quantile_method="cellprofiler",
        compartment=None,
        n_jobs=None,
    ):
        self.features = features
        self.channels = channels
        self.n_rings = n_rings
        self.quantile_method = quantile_method
        self.compartment = compartment
        self.n_jobs = n_jobs

    def _feature_names(self):
        names = []
        for family in self.families_:
            for channel in self.channels_:
                if family == "radial":
                    names += [
                        f"RadialDistribution_{feature}_{channel}_{k}of{self.n_rings}"
                        for feature in _RADIAL
                        for k in range(1, self.n_rings + 1)
                    ]
                else:
                    table = {"intensity": _INTENSITY, "edge": _EDGE, "mass": _MASS}[family]
                    names += [f"Intensity_{feature}_{channel}" for feature in table]
        return names

    def _compute(self, cells):
        pix = cell_pixels(cells)
        if not pix.index.size:  # only empty masks: nothing to measure
            return {}
        families = self.families_
        if "edge" in families:
            edge = np.empty(pix.index.size, np.uint8)
            cut = _open_edges(cells).view(np.uint8)
            mask = pix.flat.mask.view(np.uint8)
            outline(mask, pix.index, pix.obj, pix.row, pix.col, pix.shapes, cut, edge)
        if "radial" in families:
            radial = _radial_geometry(cells, pix, self.n_rings)
        columns = {}
        for channel in self.channels_:
            values = pix.values(self._channel_index(channel))
            features = {}
            if "intensity" in families or "mass" in families:
                stats = _statistics(values, pix, None)
            if "intensity" in families:
                features |= _whole_object(values, stats, pix, self.quantile_method)
            if "edge" in families:
                stats_edge = _statistics(values, pix, edge)
                stats_edge[stats_edge[:, 11] == 0] = 0.0  # no outline: 0, as in CellProfiler
                features |= {f"{name}Edge": stats_edge[:, k] for k, name in enumerate(_EDGE_OF)}
            if "mass" in families:
                features |= _mass(stats)
            columns |= {f"Intensity_{name}_{channel}": v for name, v in features.items()}
            if "radial" in families:
                for name, per_ring in radial.features(values.astype(np.float64)).items():
                    for k in range(self.n_rings):
                        columns[f"RadialDistribution_{name}_{channel}_{k + 1}of{self.n_rings}"] = (
                            per_ring[:, k]
                        )
        return columns


def _statistics(values, pix, keep):
    """:func:`~._kernels.intensity_sums.intensity_statistics` of the pixels ``keep`` (None:
    all) of every cell, (n_cells, 12)."""
    out = np.empty((pix.n, 12))
    intensity_statistics(values, pix.row, pix.col, pix.starts, pix.counts, keep, out)
    return out


def _whole_object(values, stats, pix, method):
    """The nine whole-object statistics of one channel (NaN for a cell without pixels)."""
    has = pix.has
    found = np.empty((has.sum(), 4))
    at_n = method == "cellprofiler"
    quartiles_and_mad(pix.sort(values), pix.starts[has], pix.counts[has], at_n, found)
    order_stats = np.full((pix.n, 4), np.nan)
    order_stats[has] = found
    columns = {name: stats[:, k] for k, name in enumerate(_EDGE_OF)}  # integrated .. max
    return columns | {name: order_stats[:, k] for k, name in enumerate(_INTENSITY[5:])}


def _mass(stats):
    """Mass displacement and centre-of-mass / brightest-pixel offsets from the centroid."""
    centroid_y, centroid_x = stats[:, 9], stats[:, 10]
    offset_y, offset_x = stats[:, 5] - centroid_y, stats[:, 6] - centroid_x
    return {
        "MassDisplacement": np.hypot(offset_x, offset_y),
        "CenterMassIntensityOffset_X": offset_x,
        "CenterMassIntensityOffset_Y": offset_y,
        "MaxIntensityOffset_X": stats[:, 8] - centroid_x,
        "MaxIntensityOffset_Y": stats[:, 7] - centroid_y,
    }
