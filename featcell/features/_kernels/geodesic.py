"""The geodesic distance from each object's centre, and the bins of the radial distribution."""

import numpy as np

from . import kernel


@kernel
def geodesic_distance(inside, centres, largest, out):
    """8-connected geodesic distance from every centre through the ``inside`` pixels.

    centrosome's ``propagate`` as CellProfiler's
    MeasureObjectIntensityDistribution runs it (on a zero image, so a step
    costs its length: 1 to a 4-neighbour, sqrt 2 to a diagonal one):
    Dijkstra's algorithm from each centre in turn, with a bucket queue
    (Dial's). Every step is at least 1 long, so once the buckets of smaller
    distances are done, the pixels with a distance in ``[k, k + 1)`` are final
    and can be taken in any order; a pixel of bucket ``k`` only reaches buckets
    ``k + 1`` and ``k + 2``, so three buckets, reused in turn, suffice.

    Parameters
    ----------
    inside : (H, W) ndarray of uint8
        The canvas (a bool array's bytes): object pixels 1, objects apart (not 8-connected to
        each other) and off the canvas rim.
    centres : (N,) ndarray of intp
        Flat canvas index of every object's centre.
    largest : int
        Pixels of the largest object (bounds the queue).
    out : (H * W,) ndarray of float64
        ``inf`` on entry; receives the distance of every pixel connected to a
        centre (the others, such as fragments of an object away from its
        centre, stay ``inf``).
    """
    width = inside.shape[1]
    flat = inside.ravel().copy()  # 0 once a pixel's distance is final and spread
    moves = np.array([-width - 1, -width, -width + 1, -1, 1, width - 1, width, width + 1])
    lengths = np.array([np.sqrt(2.0), 1.0, np.sqrt(2.0), 1.0, 1.0, np.sqrt(2.0), 1.0, np.sqrt(2.0)])
    # a pixel enters the queue at most once per neighbour, plus the centre
    bucket = np.empty((3, 8 * largest + 1), np.intp)
    size = np.zeros(3, np.intp)
    for centre in centres:
        out[centre] = 0.0
        bucket[0, 0] = centre
        size[0] = 1
        k = 0  # the bucket of distances in [k, k + 1)
        while size[0] + size[1] + size[2]:
            now = k % 3
            for n in range(size[now]):  # (what it reaches goes to the next two buckets)
                p = bucket[now, n]
                if not flat[p]:  # in a bucket again, or twice: spread already
                    continue
                flat[p] = 0
                d = out[p]
                for move in range(8):
                    q = p + moves[move]
                    nd = d + lengths[move]
                    if flat[q] and nd < out[q]:
                        out[q] = nd
                        later = int(nd) % 3
                        bucket[later, size[later]] = q
                        size[later] += 1
            size[now] = 0
            k += 1


@kernel
def radial_bins(d_centre, d_edge, row, col, starts, counts, centre, n_rings, slot):
    """Each pixel's ring and wedge, as MeasureObjectIntensityDistribution bins it.

    Ring: of the normalised distance ``d_centre / (d_centre + d_edge + 0.001)``
    (``n_rings`` past the last one). Wedge: below the centre (+1), right of it
    (+2), steeper than the diagonal (+4). Writes ``slot`` = (cell * (n_rings +
    1) + ring) * 8 + wedge (cell ``c``: ``counts[c]`` pixels from ``starts[c]``,
    its centre ``centre[c]``), -1 where the centre is out of reach (``d_centre`` inf).
    """
    for c in range(len(starts)):
        if counts[c] == 0:
            continue
        y, x = row[centre[c]], col[centre[c]]
        for p in range(starts[c], starts[c] + counts[c]):
            normalised = d_centre[p] / (d_edge[p] + d_centre[p] + 0.001)
            if not np.isfinite(normalised):
                slot[p] = -1
                continue
            ring = min(int(normalised * n_rings), n_rings)
            dy, dx = row[p] - y, col[p] - x
            wedge = (dy > 0) + 2 * (dx > 0) + 4 * (abs(dy) > abs(dx))
            slot[p] = (c * (n_rings + 1) + ring) * 8 + wedge
