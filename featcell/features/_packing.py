"""Shelf packing: every cell's box on one canvas, so one whole-image call measures them all."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

import numpy as np


class ShelfPacking:
    """Boxes placed on shelves, tallest first, ``gap`` pixels apart and from the rim.

    A shelf takes the next boxes (by decreasing height, ties in input order)
    while they fit in the width budget; it is as tall as its first box. Each
    layout costs one binary search of the running widths per shelf, with no
    per-box or per-pixel work, so callers can try many widths.

    Parameters
    ----------
    heights, widths : (N,) ndarrays of int
        The boxes.
    gap : int
        Pixels between boxes, and between the boxes and the canvas rim.
    """

    def __init__(self, heights, widths, gap):
        self.n, self.gap = len(heights), int(gap)
        h = heights.tolist()
        self.order = sorted(range(self.n), key=lambda i: -h[i])
        self.tall = [h[i] for i in self.order]
        # run[k]: the columns taken by the k tallest boxes, the gap after each included
        self.run = [0, *accumulate(int(widths[i]) + self.gap for i in self.order)]

    def shelves(self, limit):
        """Shelves whose boxes and inner gaps span at most ``limit`` columns.

        A box wider than ``limit`` gets a shelf of its own. Returns the first
        box (in placement order) of every shelf and the canvas shape: rows,
        and columns up to the rim gap after the widest shelf.
        """
        n, gap, run, tall = self.n, self.gap, self.run, self.tall
        if n == 0:
            return [], (gap, gap)
        firsts, y, s, right = [], gap, 0, 0
        while True:
            firsts.append(s)
            # the next shelf starts at the first box k > s with run[k + 1] - gap - run[s] > limit
            k = max(bisect_right(run, run[s] + limit + gap) - 1, s + 1)
            right = max(right, gap + run[min(k, n)] - run[s])
            if k >= n:
                return firsts, (y + tall[s] + gap, right)
            y += tall[s] + gap
            s = k

    def corners(self, firsts):
        """Top-left corner of every box, in input order, on the shelves starting at ``firsts``."""
        if self.n == 0:
            return np.zeros((0, 2), np.intp)
        gap = self.gap
        sizes = np.diff(firsts + [self.n])
        step = np.array(self.tall, np.intp)[firsts] + gap  # a shelf and the gap below it
        tops = gap + np.cumsum(step) - step
        run = np.array(self.run, np.intp)
        corners = np.empty((self.n, 2), np.intp)
        corners[self.order, 0] = np.repeat(tops, sizes)
        corners[self.order, 1] = gap + run[:-1] - np.repeat(run[firsts], sizes)
        return corners
