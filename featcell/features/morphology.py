"""Shape features of every cell: :class:`Morphology` (CellProfiler's MeasureObjectSizeShape).

Every measurement is made for all cells of a chunk at once, from the
horizontal runs of mask pixels (first and last column of every run):

* moments in closed form per run, so spatial, central, normalised and Hu
  moments, the inertia tensor and the Zernike moments (each polynomial
  expanded once into monomials in y and x) cost nothing per pixel;
* convex hulls from the leftmost and rightmost pixel of every row, reduced to
  convex chains by removing all non-convex points at once, a few times over;
  the Feret diameters, the minimum enclosing circle (Chrystal's algorithm, run
  exactly as CellProfiler's ``centrosome`` runs it) and the convex area (an
  exact lattice-point count) follow from the hulls;
* perimeter, Euler number, Crofton perimeter and the distance-transform radii
  on the canvas of every mask that the radial distribution measures too; holes
  on a canvas of the masks that may have some.

All of them reproduce CellProfiler's values (cp_measure) to round-off.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb, factorial
from numbers import Integral
from typing import ClassVar

import numpy as np
from scipy import ndimage as ndi
from sklearn.utils._param_validation import Interval

from ._base import CellFeatureTransformer
from ._kernels.distance import object_radii
from ._kernels.enclosing_circle import minimum_enclosing_circle
from ._kernels.feret import feret_diameters
from ._kernels.objects import mask_runs
from ._pixels import cell_pixels, shelf_pack

__all__ = ["Morphology", "zernike_indices"]

# highest Zernike order accepted (72 features; round-off stays below 1e-12)
_MAX_ORDER = 15
_SIZESHAPE = [
    "Area", "BoundingBoxArea", "ConvexArea", "FilledArea", "EquivalentDiameter", "Perimeter",
    "PerimeterCrofton", "FormFactor", "Compactness", "Solidity", "Extent", "EulerNumber",
    "MajorAxisLength", "MinorAxisLength", "Eccentricity", "Orientation", "MaximumRadius",
    "MeanRadius", "MedianRadius",
]  # fmt: skip
_FERET = ("MinFeretDiameter", "MaxFeretDiameter")
# CellProfiler reports spatial and central moments for p in 0..2, q in 0..3 and
# normalised moments for p, q in 0..3; p + q < 2 normalised moments are NaN
# by definition there and are left out here.
_MOMENTS = (
    [f"SpatialMoment_{p}_{q}" for p in range(3) for q in range(4)]
    + [f"CentralMoment_{p}_{q}" for p in range(3) for q in range(4)]
    + [f"NormalizedMoment_{p}_{q}" for p in range(4) for q in range(4) if p + q >= 2]
    + [f"HuMoment_{k}" for k in range(7)]
    + ["InertiaTensor_0_0", "InertiaTensor_0_1", "InertiaTensor_1_0", "InertiaTensor_1_1"]
    + ["InertiaTensorEigenvalues_0", "InertiaTensorEigenvalues_1"]
)

# skimage.measure.perimeter: weight of a border pixel by its 3x3 border configuration
_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1.0
_PERIMETER_WEIGHTS[[21, 33]] = np.sqrt(2.0)
_PERIMETER_WEIGHTS[[13, 23]] = (1.0 + np.sqrt(2.0)) / 2.0
# skimage.measure.euler_number (8-connectivity) and perimeter_crofton (4 directions):
# contribution of every 2x2 configuration
_EULER_8 = np.array([0, 0, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0, 0, 0, -1, 0], dtype=float)
_S2 = np.sqrt(2.0)
_CROFTON_4 = np.array(
    [
        0, np.pi / 4 * (1 + 1 / _S2), np.pi / (4 * _S2), np.pi / (2 * _S2),
        0, np.pi / 4 * (1 + 1 / _S2), 0, np.pi / (4 * _S2),
        np.pi / 4, np.pi / 2, np.pi / (4 * _S2), np.pi / (4 * _S2),
        np.pi / 4, np.pi / 2, 0, 0,
    ]
)  # fmt: skip


def zernike_indices(order):
    """``(n, m)`` of the Zernike polynomials up to ``order``, in CellProfiler's order.

    Parameters
    ----------
    order : int
        Highest radial order ``n``.

    Returns
    -------
    list of (int, int)
        ``n`` ascending, then ``m`` ascending, with ``n - m`` even.

    Examples
    --------
    >>> zernike_indices(3)
    [(0, 0), (1, 1), (2, 0), (2, 2), (3, 1), (3, 3)]
    """
    return [(n, m) for n in range(order + 1) for m in range(n + 1) if (n - m) % 2 == 0]


def _poly_mul(a, b, size):
    """Product of two polynomials in (y, x) stored as ``c[i, j]`` for ``y**i x**j``."""
    out = np.zeros((size, size), dtype=complex)
    for i, j in zip(*np.nonzero(a)):
        out[i:, j:] += a[i, j] * b[: size - i, : size - j]
    return out


@lru_cache(maxsize=8)
def _zernike_coefficients(order):
    """Coefficients of every Zernike polynomial in monomials ``y**p x**q``.

    A real ``((order + 1)**2, 2K)`` matrix: row ``p (order + 1) + q``, columns
    the real then the imaginary parts of the K polynomials. Polynomial
    ``(n, m)`` is ``R_n^m(r) e^{i m theta} = sum_k c_k (y^2 + x^2)^k (y + i x)^m``
    with ``c_k`` the radial coefficients (centrosome's ``z = y + i x``
    convention; the magnitude CellProfiler reports does not depend on it).
    """
    size = max(order + 1, 3)  # room for r**2 even when order < 2
    one = np.zeros((size, size), complex)
    one[0, 0] = 1
    r2 = np.zeros((size, size), complex)
    r2[2, 0] = r2[0, 2] = 1
    z = np.zeros((size, size), complex)
    z[1, 0], z[0, 1] = 1, 1j
    r2_pow, z_pow = [one], [one]
    for _ in range(order):
        r2_pow.append(_poly_mul(r2_pow[-1], r2, size))
        z_pow.append(_poly_mul(z_pow[-1], z, size))
    coefficients = []
    for n, m in zernike_indices(order):
        radial = np.zeros((size, size), complex)
        for k in range((n - m) // 2 + 1):
            c = (
                (-1) ** k
                * factorial(n - k)
                / (factorial(k) * factorial((n + m) // 2 - k) * factorial((n - m) // 2 - k))
            )
            radial += c * r2_pow[(n - m) // 2 - k]
        coefficients.append(_poly_mul(radial, z_pow[m], size)[: order + 1, : order + 1])
    coefficients = np.array(coefficients).reshape(len(coefficients), -1)
    # real matrix [Re | Im]: one real product gives both parts of every moment
    matrix = np.ascontiguousarray(np.concatenate([coefficients.real, coefficients.imag]).T)
    matrix.setflags(write=False)
    return matrix


class Morphology(CellFeatureTransformer):
    """Size and shape of every cell, as CellProfiler's MeasureObjectSizeShape.

    A scikit-learn transformer from a :class:`~featcell.CellSet` to one row of
    shape features per cell, named as CellProfiler names them
    (``AreaShape_Area``, ``AreaShape_Zernike_3_1``, ...). The features need no
    channel; location and bounding-box corners are metadata
    (:attr:`CellSet.metadata`), not features.

    Parameters
    ----------
    features : str or list of str, default=None
        Families to compute, from:

        ``"sizeshape"``
            ``Area``, ``BoundingBoxArea``, ``ConvexArea``, ``FilledArea``,
            ``EquivalentDiameter``, ``Perimeter``, ``PerimeterCrofton``,
            ``FormFactor``, ``Compactness``, ``Solidity``, ``Extent``,
            ``EulerNumber``, ``MajorAxisLength``, ``MinorAxisLength``,
            ``Eccentricity``, ``Orientation`` (degrees), ``MaximumRadius``,
            ``MeanRadius``, ``MedianRadius``.
        ``"feret"``
            ``MinFeretDiameter``, ``MaxFeretDiameter``.
        ``"zernike"``
            ``Zernike_<n>_<m>`` for ``n <= zernike_order``: magnitudes of the
            Zernike moments of the mask in its minimum enclosing circle.
        ``"moments"``
            ``SpatialMoment_<p>_<q>``, ``CentralMoment_<p>_<q>``,
            ``NormalizedMoment_<p>_<q>``, ``HuMoment_<k>``,
            ``InertiaTensor_<i>_<j>``, ``InertiaTensorEigenvalues_<k>``.

        ``None`` means all of them, in this order.
    zernike_order : int, default=9
        Highest radial order of the Zernike features, 0 to 15 (CellProfiler
        uses 9, which gives 30 features).
    compartment : str, default=None
        Prefix such as ``"Nuclei"`` for pycytominer-style names
        (``Nuclei_AreaShape_Area``).
    n_jobs : int, default=None
        Jobs in parallel over chunks of cells: ``None`` is 1 (unless in a
        :obj:`joblib.parallel_backend` context), ``-1`` all processors.

    Attributes
    ----------
    families_ : tuple of str
        The families computed.
    channels_ : tuple of str
        The cells' channels (unused: shape needs no intensities).
    n_features_in_ : int
        Number of channels of the cells seen in ``fit``.
    channel_names_in_ : tuple of str
        Channel names of the cells seen in ``fit``.
    feature_names_out_ : ndarray of str
        Output column names.

    See Also
    --------
    skimage.measure.regionprops_table : The per-object properties most of these follow.

    Notes
    -----
    Definitions follow CellProfiler (cp_measure's ``get_sizeshape``,
    ``get_zernike`` and ``get_feret``), which rest on scikit-image and
    centrosome:

    * ``Perimeter`` is scikit-image's 4-connected border estimator,
      ``PerimeterCrofton`` its 4-direction Crofton estimator, ``EulerNumber``
      uses 8-connectivity and ``FilledArea`` fills 8-connected holes.
    * ``ConvexArea`` counts the pixels whose centres lie in the convex hull of
      the pixels' edge midpoints, as ``skimage.morphology.convex_hull_image``.
    * Feret diameters and the enclosing circle use the hull of the pixel
      centres, so a one-pixel-wide line has ``MinFeretDiameter`` 0 and an
      ``s`` x ``s`` square has ``MinFeretDiameter`` ``s - 1``.
    * Zernike moments sum over the pixels inside the minimum enclosing circle
      and are normalised by its area. Pixels exactly on the circle are kept or
      dropped by round-off in CellProfiler; the circle is computed as centrosome
      computes it, so the same pixels are dropped (exactly so when the cells
      of one image are measured together, up to 512 cells per chunk).
    * Radii are Euclidean distances from each pixel to the nearest pixel
      outside the object; their maximum, mean and median.
    * Moments use coordinates relative to the bounding box corner (row power
      ``p``, column power ``q``); orientation is in degrees in ``[-90, 90]``.
    * ``NormalizedMoment_0_0``, ``_0_1`` and ``_1_0`` are NaN for every
      object in CellProfiler, so they are not produced.

    Degenerate objects: a one-pixel object has ``Perimeter`` 0, so its
    ``FormFactor`` is NaN (CellProfiler: inf), and a zero-radius enclosing
    circle, so its Zernike features are NaN (as CellProfiler). A cell whose
    mask is empty gets NaN everywhere. Objects touching the image border are
    measured as they are (the outside counts as background), like CellProfiler.

    References
    ----------
    .. [1] Stirling DR et al., "CellProfiler 4: improvements in speed, utility
       and usability", BMC Bioinformatics 22, 433 (2021).
    .. [2] Chrystal P, "On the problem to construct the minimum circle enclosing
       n given points in a plane", Proc. Edinburgh Math. Soc. 3, 30 (1885).
    .. [3] Boland MV, Markey MK, Murphy RF, "Automated recognition of patterns
       characteristic of subcellular structures in fluorescence microscopy
       images", Cytometry 33, 366-375 (1998).

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet
    >>> from featcell.features.morphology import Morphology
    >>> labels = np.zeros((40, 40), dtype=np.int32)
    >>> labels[5:15, 5:15] = 1
    >>> cells = CellSet.from_labels(np.ones((40, 40)), labels, channels=["DNA"])
    >>> table = Morphology(features="feret").set_output(transform="pandas").fit_transform(cells)
    >>> table.round(3).iloc[0].to_dict()
    {'AreaShape_MinFeretDiameter': 9.0, 'AreaShape_MaxFeretDiameter': 12.728}
    """

    _families = ("sizeshape", "feret", "zernike", "moments")

    _parameter_constraints: ClassVar[dict] = {
        "zernike_order": [Interval(Integral, 0, _MAX_ORDER, closed="both")],
    }

    def __init__(self, features=None, *, zernike_order=9, compartment=None, n_jobs=None):
        self.features = features
        self.zernike_order = zernike_order
        self.compartment = compartment
        self.n_jobs = n_jobs

    def _feature_names(self):
        zernike = [f"Zernike_{n}_{m}" for n, m in zernike_indices(self.zernike_order)]
        table = {"sizeshape": _SIZESHAPE, "feret": _FERET, "zernike": zernike, "moments": _MOMENTS}
        return [f"AreaShape_{name}" for family in self.families_ for name in table[family]]

    def _compute(self, cells):
        flat = cells.flat()  # runs (cell, row, first and last column) in image coordinates,
        # sorted by cell, row and column (the enclosing circles' round-off is CellProfiler's)
        runs = mask_runs(flat.mask.view(np.uint8), flat.shapes, cells.crop_origins)
        present = np.bincount(runs[0], minlength=len(cells)) > 0
        if not present.any():
            return {}
        if not present.all():  # cells with an empty mask: renumber the others
            runs = ((np.cumsum(present) - 1)[runs[0]],) + runs[1:]
        shape = _Shape(*runs)
        columns = {}
        for family in self.families_:
            if family == "zernike":
                columns |= shape.zernike(self.zernike_order)
            elif family == "sizeshape":
                columns |= shape.sizeshape(*_on_canvas(cells))
            else:
                columns |= getattr(shape, family)()
        out = {f"AreaShape_{name}": values for name, values in columns.items()}
        if not present.all():  # cells with an empty mask: NaN
            for name, values in out.items():
                out[name] = np.full(len(cells), np.nan)
                out[name][present] = values
        return out


class _Shape:
    """Vectorised geometry of many masks given as horizontal pixel runs.

    Runs ``(obj, row, a, b)`` cover columns ``a..b`` of ``row``, sorted by
    object, row and column; objects are numbered 0..n-1 without gaps.
    """

    def __init__(self, obj, row, a, b):
        self.obj, self.row, self.a, self.b = obj, row, a, b
        self.length = b - a + 1
        self.area = np.bincount(obj, weights=self.length).astype(float)
        self.n = len(self.area)
        run_count = np.bincount(obj, minlength=self.n)
        self.obj_run_start = _starts(run_count)
        # rows: groups of runs with equal (object, row)
        new_row = np.ones(len(obj), dtype=bool)
        new_row[1:] = (row[1:] != row[:-1]) | (obj[1:] != obj[:-1])
        row_start = np.flatnonzero(new_row)
        row_last = np.append(row_start[1:], len(obj)) - 1
        self.row_obj, self.row_y = obj[row_start], row[row_start]
        self.row_cmin, self.row_cmax = a[row_start], b[row_last]
        self.multi_run = np.bincount(obj[row_last[row_last > row_start]], minlength=self.n) > 0
        row_count = np.bincount(self.row_obj, minlength=self.n)
        obj_row_start = _starts(row_count)
        self.r0 = self.row_y[obj_row_start]
        self.r1 = self.row_y[obj_row_start + row_count - 1]
        self.c0 = np.minimum.reduceat(self.row_cmin, obj_row_start)
        self.c1 = np.maximum.reduceat(self.row_cmax, obj_row_start)
        self._cache = {}

    # ------------------------------------------------------------------ building blocks
    def _power_sums(self, y, x_mid, step, order, triangle=False):
        """``M[o, p, q]``: sum over the pixels of object o of ``y**p x**q``.

        Per run, ``y`` is constant and ``x`` runs from ``x_mid - (L-1)/2 step``
        to ``x_mid + (L-1)/2 step``; the run's sums of ``x**q`` come in closed
        form from centred power sums (all terms of one sign: no cancellation).
        With ``triangle``, only ``p + q <= order`` is summed (the rest is 0).
        """
        longest = 1 << max(int(self.length.max()), 1).bit_length()
        half = _centred_power_sums(longest, order)  # (order + 1, longest + 1)
        mid = _powers(x_mid, order)
        x_sums = np.zeros((order + 1, len(x_mid)))
        for i in range(0, order + 1, 2):
            spread = step**i * half[i].take(self.length)
            # x_sums[q] += C(q, i) * mid[q - i] * spread for q = i..order
            x_sums[i:] += _BINOMIAL[i : order + 1, i, None] * mid[: order + 1 - i] * spread
        y_powers = _powers(y, order)
        if triangle:
            out = np.zeros((self.n, order + 1, order + 1))
            for p in range(order + 1):
                terms = y_powers[p] * x_sums[: order + 1 - p]
                out[:, p, : order + 1 - p] = np.add.reduceat(terms, self.obj_run_start, axis=1).T
            return out
        terms = y_powers[:, None, :] * x_sums[None, :, :]
        return np.moveaxis(np.add.reduceat(terms, self.obj_run_start, axis=2), 2, 0)

    def _central(self):
        """Raw (bounding-box frame) and central moments up to order 3."""
        if "central" not in self._cache:
            y = (self.row - self.r0[self.obj]).astype(float)
            x = (self.a + self.b) / 2 - self.c0[self.obj]
            raw = self._power_sums(y, x, 1.0, 3)
            y_bar = raw[:, 1, 0] / raw[:, 0, 0]
            x_bar = raw[:, 0, 1] / raw[:, 0, 0]
            central = self._power_sums(y - y_bar[self.obj], x - x_bar[self.obj], 1.0, 3)
            central[:, 0, 1] = central[:, 1, 0] = 0.0  # zero by construction
            self._cache["central"] = raw, central
        return self._cache["central"]

    def _chains(self):
        """Convex chains of every object, all found in two vectorised passes.

        Returns four ``(object, y, x)`` vertex lists, sorted by object and y:
        the left and the mirrored (``-x``) right chain of the pixel centres,
        then of the pixels' edge midpoints in doubled coordinates (pixel
        ``(r, c)`` has edge midpoints ``(2r +- 1, 2c)`` and ``(2r, 2c +- 1)``).
        """
        if "chains" not in self._cache:
            n = self.n
            # chain k of object o is group k * n + o: blocks stay sorted by (group, y)
            group = np.concatenate([self.row_obj, self.row_obj + n])
            ys = np.concatenate([self.row_y, self.row_y])
            xs = np.concatenate([self.row_cmin, -self.row_cmax])
            vertex = _convex_chain(group, ys, xs)
            group, ys, xs = group[vertex], ys[vertex], xs[vertex]
            # the hull of the edge midpoints is that of the pixel centres plus the
            # diamond of a pixel's midpoints, so the vertices' midpoints suffice
            mid_group = np.repeat(group + 2 * n, 3)
            mid_y = (2 * ys[:, None] + np.array([-1, 0, 1])).ravel()
            mid_x = (2 * xs[:, None] - np.array([0, 1, 0])).ravel()
            # rows r and r + 1 both give a point at 2r + 1: keep the outermost
            dup = np.flatnonzero((mid_group[1:] == mid_group[:-1]) & (mid_y[1:] == mid_y[:-1]))
            mid_x[dup] = np.minimum(mid_x[dup], mid_x[dup + 1])
            keep = np.ones(len(mid_y), dtype=bool)
            keep[dup + 1] = False
            mid_group, mid_y, mid_x = mid_group[keep], mid_y[keep], mid_x[keep]
            vertex = _convex_chain(mid_group, mid_y, mid_x)
            group = np.concatenate([group, mid_group[vertex]])
            ys = np.concatenate([ys, mid_y[vertex]])
            xs = np.concatenate([xs, mid_x[vertex]])
            bounds = np.searchsorted(group, np.arange(n, 4 * n, n))
            self._cache["chains"] = [
                (g - k * n, y, x)
                for k, (g, y, x) in enumerate(zip(*(np.split(a, bounds) for a in (group, ys, xs))))
            ]
        return self._cache["chains"]

    def _centre_hull(self):
        """Convex hull of the pixel centres: (object, y, x, start, count) of its vertices.

        Vertices run in centrosome's order (from the leftmost, then topmost,
        vertex, clockwise on screen), collinear points dropped.
        """
        if "hull" not in self._cache:
            (l_obj, l_y, l_x), (r_obj, r_y, r_x) = self._chains()[:2]
            r_x = -r_x
            # the right chain's end points repeat the left chain's on single-pixel end rows
            row_of = np.searchsorted(
                self.row_obj * (self.row_y.max() + 1) + self.row_y,
                r_obj * (self.row_y.max() + 1) + r_y,
            )
            ends = (r_y == self.r0[r_obj]) | (r_y == self.r1[r_obj])
            same = ends & (self.row_cmin[row_of] == self.row_cmax[row_of])
            r_obj, r_y, r_x = r_obj[~same], r_y[~same], r_x[~same]
            v_obj = np.concatenate([l_obj, r_obj])
            v_y = np.concatenate([l_y, r_y])
            v_x = np.concatenate([l_x, r_x])
            # down the left chain, then up the right one (anticlockwise on screen)
            side = np.repeat([0, 1], [len(l_obj), len(r_obj)])
            order = np.lexsort((np.where(side == 0, v_y, -v_y), side, v_obj))
            v_obj, v_y, v_x = v_obj[order], v_y[order], v_x[order]
            count = np.bincount(v_obj, minlength=self.n)
            start = _starts(count)
            # reverse, and rotate to start at the leftmost-then-topmost vertex
            local = np.arange(len(v_obj)) - start[v_obj]
            key = v_x * (int(v_y.max()) + 1) + v_y
            first = local[key == np.repeat(np.minimum.reduceat(key, start), count)]
            size = count[v_obj]
            position = ((size - local) - (count - first)[v_obj]) % size
            order[start[v_obj] + position] = np.arange(len(v_obj))
            self._cache["hull"] = (
                v_obj[order],
                v_y[order].astype(float),
                v_x[order].astype(float),
                start,
                count,
            )
        return self._cache["hull"]

    def _canvas(self, objects):
        """The masks of ``objects`` in one label canvas (object ``o`` has label ``o + 1``),
        1 background pixel apart and from the edges."""
        height, width = self.r1 - self.r0 + 1, self.c1 - self.c0 + 1
        corners, shape = shelf_pack(height[objects], width[objects], gap=1)
        slot = np.full(self.n, -1)
        slot[objects] = np.arange(len(objects))
        runs = np.flatnonzero(slot[self.obj] >= 0)
        obj, k = self.obj[runs], slot[self.obj[runs]]
        y = corners[k, 0] + self.row[runs] - self.r0[obj]
        x = corners[k, 1] + self.a[runs] - self.c0[obj]
        marks = np.zeros(shape, dtype=np.int32)
        marks[y, x] = obj + 1
        marks[y, x + self.length[runs]] = -(obj + 1)
        return np.cumsum(marks, axis=1, dtype=np.int32)

    # ------------------------------------------------------------------ families
    def sizeshape(self, labels, foreground, radii):
        """The size and shape features, given the objects on a canvas (:func:`_on_canvas`)."""
        area = self.area
        bbox_area = (self.r1 - self.r0 + 1.0) * (self.c1 - self.c0 + 1.0)
        convex_area = self._convex_area()
        perimeter = self._perimeter(labels, foreground)
        euler, crofton = self._euler_crofton(labels, foreground)
        filled = area + self._hole_area()
        max_r, mean_r, median_r = radii.T
        major, minor, eccentricity, orientation = _ellipse(self._central()[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            form_factor = np.where(perimeter > 0, 4 * np.pi * area / perimeter**2, np.nan)
        return {
            "Area": area,
            "BoundingBoxArea": bbox_area,
            "ConvexArea": convex_area,
            "FilledArea": filled,
            "EquivalentDiameter": np.sqrt(4 * area / np.pi),
            "Perimeter": perimeter,
            "PerimeterCrofton": crofton,
            "FormFactor": form_factor,
            "Compactness": perimeter**2 / np.maximum(4 * np.pi * area, 1.0),
            "Solidity": area / convex_area,
            "Extent": area / bbox_area,
            "EulerNumber": euler,
            "MajorAxisLength": major,
            "MinorAxisLength": minor,
            "Eccentricity": eccentricity,
            "Orientation": np.degrees(orientation),
            "MaximumRadius": max_r,
            "MeanRadius": mean_r,
            "MedianRadius": median_r,
        }

    def feret(self):
        _, v_y, v_x, v_start, v_count = self._centre_hull()
        diameters = np.empty((self.n, 2))
        feret_diameters(v_y, v_x, v_start, v_count, diameters)
        return {"MinFeretDiameter": diameters[:, 0], "MaxFeretDiameter": diameters[:, 1]}

    def zernike(self, order):
        v_obj, v_y, v_x, v_start, v_count = self._centre_hull()
        circle = np.empty((self.n, 3))
        minimum_enclosing_circle(v_y, v_x, v_start, v_count, circle)
        centre_y, centre_x, radius = circle.T
        scale = np.where(radius > 0, radius, 1.0)
        y = (self.row - centre_y[self.obj]) / scale[self.obj]
        x = ((self.a + self.b) / 2 - centre_x[self.obj]) / scale[self.obj]
        # Zernike polynomials up to order n have no monomial with p + q > n
        sums = self._power_sums(y, x, 1 / scale[self.obj], order, triangle=True)
        # centrosome drops pixels with r**2 > 1: on the circle, round-off decides. Only
        # hull vertices can lie on it; repeat its arithmetic there and drop the same ones.
        vy = (v_y - centre_y[v_obj]) / scale[v_obj]
        vx = (v_x - centre_x[v_obj]) / scale[v_obj]
        out = np.flatnonzero(vx * vx + vy * vy > 1)
        if out.size:
            drop = _powers(vy[out], order)[:, None, :] * _powers(vx[out], order)[None, :, :]
            np.subtract.at(sums, v_obj[out], np.moveaxis(drop, 2, 0))
        values = sums.reshape(self.n, -1) @ _zernike_coefficients(order)
        half = values.shape[1] // 2
        score = np.hypot(values[:, :half], values[:, half:]) / (np.pi * scale**2)[:, None]
        score[radius == 0] = np.nan
        return {f"Zernike_{n}_{m}": score[:, k] for k, (n, m) in enumerate(zernike_indices(order))}

    def moments(self):
        raw, central = self._central()
        # normalised moment (p, q): central (p, q) / mu00 ** ((p + q) / 2 + 1), p + q >= 2
        mu00 = central[:, 0, 0]
        powers = np.stack([mu00 ** (k / 2 + 1) if k >= 2 else mu00 for k in range(7)], axis=1)
        normalized = central / powers[:, _ORDER]
        hu = _hu(normalized)
        it00, it01, it11, eig0, eig1 = _inertia(central)
        pq = [(p, q) for p in range(4) for q in range(4)]
        return {
            **{f"SpatialMoment_{p}_{q}": raw[:, p, q] for p, q in pq if p < 3},
            **{f"CentralMoment_{p}_{q}": central[:, p, q] for p, q in pq if p < 3},
            **{f"NormalizedMoment_{p}_{q}": normalized[:, p, q] for p, q in pq if p + q >= 2},
            **{f"HuMoment_{k}": hu[:, k] for k in range(7)},
            "InertiaTensor_0_0": it00,
            "InertiaTensor_0_1": it01,
            "InertiaTensor_1_0": it01,
            "InertiaTensor_1_1": it11,
            "InertiaTensorEigenvalues_0": eig0,
            "InertiaTensorEigenvalues_1": eig1,
        }

    # ------------------------------------------------------------------ measurements
    def _convex_area(self):
        """Pixels whose centre is in the hull of the pixels' edge midpoints (exact count)."""
        bounds = self._chains()[2:]
        # every image row 2r of every bounding box lies strictly inside its chains
        height = self.r1 - self.r0 + 1
        r_obj = np.repeat(np.arange(self.n), height)
        r_y = 2 * (np.arange(len(r_obj)) - np.repeat(_starts(height), height) + self.r0[r_obj])
        fractions = []
        for v_obj, v_y, v_x in bounds:
            low = int(v_y.min())
            span = int(v_y.max()) - low + 2
            keys = v_obj * span + (v_y - low)
            a = np.searchsorted(keys, r_obj * span + (r_y - low), side="right") - 1
            den = v_y[a + 1] - v_y[a]
            fractions.append((v_x[a] * den + (v_x[a + 1] - v_x[a]) * (r_y - v_y[a]), 2 * den))
        # columns c with x_left <= 2c <= x_right
        (num_l, den_l), (num_r, den_r) = fractions
        c_min = -(-num_l // den_l)
        c_max = -num_r // den_r
        return np.bincount(r_obj, weights=np.maximum(c_max - c_min + 1, 0), minlength=self.n)

    def _perimeter(self, labels, foreground):
        """scikit-image's 4-connected perimeter estimator, per object."""
        # on the flat canvas (background all round) neighbours are +-1 and +-width away
        width = labels.shape[1]
        fg = foreground.ravel()
        border = fg.copy()
        border[width:-width] &= ~(
            fg[width - 1 : -width - 1] & fg[width + 1 : -width + 1] & fg[: -2 * width]
            & fg[2 * width :]
        )  # fmt: skip
        index = np.flatnonzero(border)
        b = border.view(np.uint8)
        edge = b[index - 1].astype(np.intp) + b[index + 1] + b[index - width] + b[index + width]
        corner = (
            b[index - width - 1].astype(np.intp)
            + b[index - width + 1]
            + b[index + width - 1]
            + b[index + width + 1]
        )
        weights = _PERIMETER_WEIGHTS[1 + 2 * edge + 10 * corner]
        return np.bincount(labels.ravel()[index] - 1, weights=weights, minlength=self.n)

    def _euler_crofton(self, labels, foreground):
        """Euler number (8-connectivity) and Crofton perimeter from 2x2 configurations."""
        # 2x2 windows by top-left pixel k on the flat canvas: k, k + 1, k + width, k + width + 1
        # (windows wrapping round the last column hold background only)
        width = labels.shape[1]
        fg = foreground.view(np.uint8).ravel()
        config = 8 * fg[: -width - 1] + 4 * fg[width:-1]
        config += 2 * fg[1:-width]
        config += fg[width + 1 :]
        k = np.flatnonzero(config - np.uint8(1) < 14)  # 0 (outside) and 15 (inside) count 0
        flat = labels.ravel()
        owner = np.maximum(
            np.maximum(flat[k], flat[k + 1]), np.maximum(flat[k + width], flat[k + width + 1])
        )
        config = config[k]
        euler = np.bincount(owner - 1, weights=_EULER_8[config], minlength=self.n)
        crofton = np.bincount(owner - 1, weights=_CROFTON_4[config], minlength=self.n)
        return euler, crofton

    def _hole_area(self):
        """Background pixels not 8-connected to the outside, per enclosing object."""
        # a hole needs a row that crosses the object twice: look at those objects only
        candidates = np.flatnonzero(self.multi_run)
        if not candidates.size:
            return np.zeros(self.n)
        labels = self._canvas(candidates)
        background, _ = ndi.label(labels == 0, structure=np.ones((3, 3), dtype=bool))
        hy, hx = np.nonzero((background != background[0, 0]) & (background > 0))
        # a hole belongs to the nearest object pixel on its left (a box holds one object)
        left = np.where(labels > 0, np.arange(labels.shape[1]), 0)
        np.maximum.accumulate(left, axis=1, out=left)
        return np.bincount(labels[hy, left[hy, hx]] - 1, minlength=self.n).astype(float)


def _on_canvas(cells):
    """The cells with a mask on the canvas every family of the CellSet shares: labels (the
    i-th has label i + 1), foreground, and the max, mean and median distance from each
    mask pixel to the nearest background pixel (from the shared distance transform)."""
    pix = cell_pixels(cells)
    labels = np.zeros(pix.canvas.inside.shape, np.int32)
    labels.ravel()[pix.canvas.lin] = np.cumsum(pix.has, dtype=np.int32).take(pix.obj)
    radii = np.empty((pix.n, 3))
    object_radii(pix.squared_distances, pix.starts, pix.counts, radii)
    return labels, pix.canvas.inside, radii[pix.has]


_ORDER = np.add.outer(np.arange(4), np.arange(4))  # p + q
_BINOMIAL = np.array(
    [[float(comb(q, i)) for i in range(_MAX_ORDER + 1)] for q in range(_MAX_ORDER + 1)]
)


def _starts(counts):
    """Start offsets of consecutive blocks of the given sizes."""
    return np.concatenate([[0], np.cumsum(counts[:-1])]).astype(np.intp)


@lru_cache(maxsize=32)
def _centred_power_sums(length, order):
    """``table[i, L] = sum_{j<L} (j - (L-1)/2)**i`` (0 for odd ``i``), for ``L <= length``
    (a power of two, so that few tables are cached; read-only)."""
    half = np.arange(1, length // 2 + 2, dtype=float)
    lengths = np.arange(length + 1)
    table = np.zeros((order + 1, length + 1))
    table[0] = lengths
    for i in range(2, order + 1, 2):
        # odd L: offsets 0, +-1, ..., +-(L-1)/2; even L: +-1/2, ..., +-(L-1)/2
        whole = np.concatenate([[0.0], np.cumsum(half**i)])
        halves = np.concatenate([[0.0], np.cumsum((half - 0.5) ** i)])
        table[i] = np.where(
            lengths % 2 == 1, 2 * whole[(lengths - 1) // 2], 2 * halves[lengths // 2]
        )
    table.setflags(write=False)
    return table


def _powers(values, order):
    """(order + 1, len(values)) array of ``values**k``."""
    out = np.empty((order + 1, len(values)))
    out[0] = 1.0
    if order >= 1:
        out[1] = values
    for k in range(2, order + 1):
        np.multiply(out[k - 1], values, out=out[k])
    return out


def _convex_chain(group, y, x):
    """Indices of the points on the left (smallest-x) convex chain of every group.

    Points are sorted by ``(group, y)`` with ``y`` strictly increasing inside a
    group. A point on or to the right of the segment joining its neighbours is
    not a hull vertex, so all such points are removed at once, repeatedly,
    until every remaining triple turns strictly left. Integer inputs are exact.
    """
    idx = np.arange(len(y))
    while len(idx) > 2:
        # cross product of the steps a -> b and b -> c (that of b - a and c - a)
        dx, dy = np.diff(x), np.diff(y)
        cross = dx[:-1] * dy[1:]
        cross -= dx[1:] * dy[:-1]
        drop = cross >= 0
        drop &= group[:-2] == group[2:]
        if not drop.any():
            break
        keep = np.ones(len(idx), dtype=bool)
        keep[1:-1] = ~drop
        idx, group, y, x = idx[keep], group[keep], y[keep], x[keep]
    return idx


def _inertia(central):
    """Inertia tensor entries and eigenvalues (scikit-image's convention)."""
    mu00 = central[:, 0, 0]
    a = central[:, 2, 0] / mu00
    b = central[:, 1, 1] / mu00
    c = central[:, 0, 2] / mu00
    half_trace = (a + c) / 2
    disc = np.sqrt(((c - a) / 2) ** 2 + b**2)
    return c, -b, a, np.clip(half_trace + disc, 0, None), np.clip(half_trace - disc, 0, None)


def _ellipse(central):
    """Major/minor axis lengths, eccentricity and orientation (radians), as regionprops."""
    it00, it01, it11, eig0, eig1 = _inertia(central)
    with np.errstate(divide="ignore", invalid="ignore"):
        eccentricity = np.where(eig0 == 0, 0.0, np.sqrt(1 - eig1 / eig0))
    orientation = np.where(
        it00 - it11 == 0,
        np.where(it01 < 0, np.pi / 4, -np.pi / 4),
        0.5 * np.arctan2(-2 * it01, it11 - it00),
    )
    return 4 * np.sqrt(eig0), 4 * np.sqrt(eig1), eccentricity, orientation


def _hu(nu):
    """The seven Hu invariants from normalised central moments."""
    n20, n02, n11 = nu[:, 2, 0], nu[:, 0, 2], nu[:, 1, 1]
    n30, n03, n21, n12 = nu[:, 3, 0], nu[:, 0, 3], nu[:, 2, 1], nu[:, 1, 2]
    a, b = n30 + n12, n21 + n03
    return np.column_stack(
        [
            n20 + n02,
            (n20 - n02) ** 2 + 4 * n11**2,
            (n30 - 3 * n12) ** 2 + (3 * n21 - n03) ** 2,
            a**2 + b**2,
            (n30 - 3 * n12) * a * (a**2 - 3 * b**2) + (3 * n21 - n03) * b * (3 * a**2 - b**2),
            (n20 - n02) * (a**2 - b**2) + 4 * n11 * a * b,
            (3 * n21 - n03) * a * (a**2 - 3 * b**2) - (n30 - 3 * n12) * b * (3 * a**2 - b**2),
        ]
    )
