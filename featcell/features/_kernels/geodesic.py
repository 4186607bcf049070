"""The geodesic distance from each object's centre, of CellProfiler's radial distribution."""

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
