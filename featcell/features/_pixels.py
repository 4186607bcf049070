"""The one per-cell pixel layout every feature family uses, and the one shelf packer.

:class:`CellPixels` lays out the mask pixels of a :class:`~featcell.CellSet`
cell after cell (cells ascending, row-major inside each crop), so a per-cell
sum, minimum or maximum is one ``ufunc.reduceat`` and a per-cell value is
spread back to the pixels with one ``np.repeat``. :func:`shelf_pack` places
boxes on one canvas so that a whole-image routine (a distance transform, a
filter, a labelled-image measurement) measures every cell in one call.
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_right
from functools import cached_property
from itertools import accumulate

import numpy as np

from ._kernels.distance import squared_distance_to_background
from ._kernels.objects import mask_pixels

__all__ = ["CellPixels", "ObjectCanvas", "Segments", "cell_pixels", "shelf_pack"]

_CELL_PIXELS = weakref.WeakKeyDictionary()  # CellSet -> its CellPixels


def cell_pixels(cells):
    """The :class:`CellPixels` of ``cells``, built once per CellSet for all the families
    that measure it (kept while the CellSet lives)."""
    pixels = _CELL_PIXELS.get(cells)
    if pixels is None:
        pixels = _CELL_PIXELS[cells] = CellPixels(cells)
    return pixels


class Segments:
    """Values laid out cell after cell: per-cell reductions without ``bincount``.

    ``counts[i]`` consecutive values belong to cell ``i``. ``ufunc.reduceat``
    over the segment starts is many times faster than ``np.bincount`` with
    weights, and ``np.repeat`` than gathering per-cell values by cell index.

    Parameters
    ----------
    counts : (n_cells,) ndarray of int
        Values per cell.
    """

    def __init__(self, counts):
        self.counts = np.asarray(counts, dtype=np.intp)
        self.n = self.counts.size
        self.bounds = np.concatenate([[0], np.cumsum(self.counts)])  # segment i: bounds[i:i+2]
        self.starts = self.bounds[:-1]
        self.has = self.counts > 0
        self._at = self.starts[self.has]

    def reduce(self, ufunc, values, empty=0.0, dtype=np.float64):
        """``ufunc`` over each cell's values into ``dtype`` (sums accumulated in float64);
        ``empty`` for cells without any."""
        out = np.full(self.n, empty, dtype=dtype)
        if self._at.size:
            accumulate_as = np.float64 if ufunc is np.add else None
            out[self.has] = ufunc.reduceat(values, self._at, dtype=accumulate_as)
        return out

    def sum(self, values):
        """Per-cell sums (0 for an empty cell)."""
        return self.reduce(np.add, values)

    def mean(self, values):
        """Per-cell means (NaN for an empty cell)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum(values) / self.counts

    def spread(self, per_cell):
        """Each cell's value repeated for each of its values (``per_cell[obj]``)."""
        return np.repeat(per_cell, self.counts)

    def select(self, keep):
        """The segments of ``values[keep]`` for a boolean ``keep`` over all values."""
        counts = np.zeros(self.n, dtype=np.intp)
        if self._at.size:
            counts[self.has] = np.add.reduceat(keep, self._at, dtype=np.intp)
        return Segments(counts)

    def first_where(self, hit):
        """Index of the first ``True`` of ``hit`` in each cell (-1 where none)."""
        where = np.flatnonzero(hit)
        cell = np.searchsorted(self.starts + self.counts, where, side="right")
        leading = np.r_[True, cell[1:] != cell[:-1]] if where.size else np.zeros(0, dtype=bool)
        first = np.full(self.n, -1, dtype=np.intp)
        first[cell[leading]] = where[leading]
        return first

    def sort(self, values, positions=False):
        """``values`` sorted within each cell (``np.sort`` cell by cell: numpy's vectorised
        sort beats any compiled loop), or the ``positions`` in ``values`` that sort them
        (equal values in any order)."""
        out = np.empty(len(values), dtype=np.intp if positions else values.dtype)
        for start, stop in zip(self.starts.tolist(), self.bounds[1:].tolist()):
            part = values[start:stop]
            out[start:stop] = np.argsort(part) + start if positions else np.sort(part)
        return out


class CellPixels(Segments):
    """The mask pixels of a CellSet, cell after cell (a :class:`Segments`).

    Parameters
    ----------
    cells : CellSet
        The cells.

    Attributes
    ----------
    flat : FlatCells
        The cells' flat crop pixels (values, mask, crop shapes).
    shapes : (n_cells, 2) ndarray of intp
        Crop shapes.
    crop_starts : (n_cells,) ndarray of intp
        Where each crop starts in ``flat``'s arrays.
    index : (M,) ndarray of intp
        Position of every mask pixel in ``flat``'s arrays.
    obj, row, col : (M,) ndarrays of int32
        Cell of every mask pixel and its coordinates in the cell's crop (int32:
        they run over every mask pixel of every cell).
    """

    def __init__(self, cells):
        self.flat = cells.flat()
        self.shapes = self.flat.shapes
        sizes = self.shapes[:, 0] * self.shapes[:, 1]
        self.crop_starts = np.cumsum(sizes) - sizes
        m = np.count_nonzero(self.flat.mask)
        self.index, counts = np.empty(m, np.intp), np.empty(len(self.shapes), np.intp)
        self.obj, self.row, self.col = (np.empty(m, np.int32) for _ in range(3))
        mask = self.flat.mask.view(np.uint8)
        mask_pixels(mask, self.shapes, self.index, counts, self.obj, self.row, self.col)
        super().__init__(counts)

    def values(self, channel):
        """float32 intensities of the mask pixels in one channel."""
        return self.flat.values[channel].take(self.index)  # (take: 3x faster than indexing)

    @cached_property
    def canvas(self):
        """The masks on one canvas (an :class:`ObjectCanvas`), built once."""
        return ObjectCanvas(self)

    @cached_property
    def squared_distances(self):
        """Per mask pixel: squared Euclidean distance to the nearest pixel outside its mask
        (the crop's outside is background), computed once for MeasureObjectSizeShape's
        radii and the radial distribution's distance to the edge."""
        return self.canvas.squared_distances(self.canvas.inside, self.canvas.rings)


class ObjectCanvas:
    """All the masks of a :class:`CellPixels` on one boolean canvas.

    Each mask sits in its tight bounding box, boxes two background pixels
    apart (:func:`shelf_pack`), so every box has a ring of background of its
    own and one pass measures every object as if it were alone on a background.

    Attributes: ``inside`` (the masks), ``lin`` (flat canvas index of every mask
    pixel), ``rings`` (per cell: top, left, height and width of its box with the
    ring), ``corners`` (its box's top-left corner) and ``boxes`` (per cell: top,
    left, height and width of its box in its crop).
    """

    def __init__(self, pix):
        # rows ascend within a cell: its first and last pixels give the top and bottom
        last = np.where(pix.has, pix.starts + pix.counts - 1, 0)
        top = np.where(pix.has, pix.row[np.where(pix.has, pix.starts, 0)], 0).astype(np.intp)
        height = np.where(pix.has, pix.row[last], 0).astype(np.intp) - top + 1
        left = pix.reduce(np.minimum, pix.col, dtype=np.intp)
        width = pix.reduce(np.maximum, pix.col, dtype=np.intp) - left + 1
        corners, shape = shelf_pack(height, width, gap=2)
        base = (corners[:, 0] - top) * shape[1] + (corners[:, 1] - left)
        self.lin = pix.spread(base)
        self.lin += np.multiply(pix.row, shape[1], dtype=np.intp)
        self.lin += pix.col
        self.inside = np.zeros(shape, dtype=bool)
        self.inside.ravel()[self.lin] = True
        self.rings = np.column_stack([corners - 1, height + 2, width + 2])
        self.corners, self.boxes = corners, np.column_stack([top, left, height, width])

    def squared_distances(self, inside, rings, pixels=slice(None)):
        """:func:`squared_distance_to_background` of ``inside`` (this canvas or a variant)
        in the ``rings`` given, at the mask ``pixels`` given (all: every pixel)."""
        squared = np.empty(inside.shape)
        squared_distance_to_background(inside.view(np.uint8), rings, squared)
        return squared.ravel().take(self.lin[pixels])


# ---------------------------------------------------------------------- shelf packing
# canvas widths tried by :func:`shelf_pack`, as multiples of the side of a square canvas
_PACK_FACTORS = tuple(np.geomspace(0.7, 3.0, 8).tolist())


def shelf_pack(heights, widths, gap=1):
    """Pack boxes on shelves (tallest first), ``gap`` pixels apart and from the rim.

    A shelf takes the next boxes (by decreasing height, ties in input order)
    while they fit in the width budget; it is as tall as its first box, and a
    box wider than the budget gets a shelf of its own. Budgets from 0.7 to 3
    times the side of a square canvas are tried and the layout with the
    smallest area kept (whole-canvas work grows with it); each try costs one
    binary search of the running widths per shelf.

    Parameters
    ----------
    heights, widths : (N,) ndarrays of int
        The boxes.
    gap : int, default=1
        Background pixels between boxes and between the boxes and the rim.

    Returns
    -------
    corners : (N, 2) ndarray of intp
        Top-left corner (row, column) of every box, in input order.
    shape : (int, int)
        The canvas shape.

    Examples
    --------
    >>> import numpy as np
    >>> corners, shape = shelf_pack(np.array([2, 3]), np.array([4, 4]), gap=1)
    >>> corners.tolist(), shape
    ([[5, 1], [1, 1]], (8, 6))
    """
    n, gap, h = len(heights), int(gap), np.asarray(heights).tolist()
    if n == 0:
        return np.zeros((0, 2), np.intp), (gap, gap)
    order = sorted(range(n), key=lambda i: -h[i])
    tall = [h[i] for i in order]
    # run[k]: the columns taken by the k tallest boxes, the gap after each included
    run = [0, *accumulate(int(widths[i]) + gap for i in order)]
    side = math.sqrt(float(((np.asarray(heights) + gap) * (np.asarray(widths) + gap)).sum()))
    widest = int(np.max(widths))
    best = None
    for factor in _PACK_FACTORS:
        limit = max(widest, math.ceil(side * factor))
        firsts, y, s, right = [], gap, 0, 0  # the first box of every shelf
        while True:
            firsts.append(s)
            # the next shelf starts at the first box k > s with run[k + 1] - gap - run[s] > limit
            k = max(bisect_right(run, run[s] + limit + gap) - 1, s + 1)
            right = max(right, gap + run[min(k, n)] - run[s])
            if k >= n:
                break
            y += tall[s] + gap
            s = k
        shape = (y + tall[s] + gap, right)
        if best is None or shape[0] * shape[1] < best[1][0] * best[1][1]:
            best = firsts, shape
    firsts, shape = best
    sizes = np.diff(firsts + [n])
    step = np.array(tall, np.intp)[firsts] + gap  # a shelf and the gap below it
    tops = gap + np.cumsum(step) - step
    run = np.array(run, np.intp)
    corners = np.empty((n, 2), np.intp)
    corners[order, 0] = np.repeat(tops, sizes)
    corners[order, 1] = gap + run[:-1] - np.repeat(run[firsts], sizes)
    return corners, shape
