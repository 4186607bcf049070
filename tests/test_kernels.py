"""Every compiled kernel against a plain, obviously correct reference on small inputs."""

import heapq
import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import ndimage as ndi

from featcell.features._kernels.distance import object_radii, squared_distance_to_background
from featcell.features._kernels.enclosing_circle import minimum_enclosing_circle
from featcell.features._kernels.feret import feret_diameters
from featcell.features._kernels.geodesic import geodesic_distance, radial_bins
from featcell.features._kernels.intensity_sums import intensity_statistics
from featcell.features._kernels.objects import gather_windows, label_boxes, mask_pixels, mask_runs
from featcell.features._kernels.order_stats import quartiles_and_mad
from featcell.features._kernels.outline import outline

SQRT2 = np.sqrt(2.0)


def _random_masks(n, seed):
    rng = np.random.default_rng(seed)
    for trial in range(n):
        h, w = rng.integers(1, 13, 2)
        mask = rng.random((h, w)) < 0.75
        if trial % 2:  # blob-like shapes, holes and several fragments
            mask = ndi.binary_opening(mask) | (rng.random((h, w)) < 0.05)
        yield rng, mask


def test_distance_to_background_matches_scipy():
    for _, mask in _random_masks(60, 0):
        h, w = mask.shape
        canvas = np.zeros((h + 4, w + 5), bool)
        canvas[2 : 2 + h, 3 : 3 + w] = mask
        out = np.full(canvas.shape, -1.0)
        squared_distance_to_background(canvas.view(np.uint8), np.array([[1, 2, h + 2, w + 2]]), out)
        box = canvas[1 : h + 3, 2 : w + 4]  # the mask and a ring of background
        expected = np.rint(ndi.distance_transform_edt(box) ** 2)
        assert_array_equal(out[1 : h + 3, 2 : w + 4], expected)
        assert (out[0] == -1).all() and (out[:, :2] == -1).all()  # outside the box: untouched


def test_distance_boxes_do_not_see_each_other():
    canvas = np.zeros((6, 9), bool)
    canvas[1:5, 1:4] = True  # 4 x 3, its box has a ring
    canvas[:, 5:] = True  # no background in its box: the box stands alone
    out = np.zeros(canvas.shape)
    squared_distance_to_background(
        canvas.view(np.uint8), np.array([[0, 0, 6, 5], [0, 5, 6, 4]]), out
    )
    assert_array_equal(out[:, :5], np.rint(ndi.distance_transform_edt(canvas[:, :5]) ** 2))
    assert (out[:, 5:] > 6**2 + 4**2).all()  # farther than anything inside the box


def test_object_radii_match_numpy():
    labels = np.zeros((30, 45), np.int32)
    boxes = []
    for o, (rng, mask) in enumerate(_random_masks(6, 2)):  # side by side, one column apart
        h, w = mask.shape
        left = 1 + 14 * (o % 3) if o < 3 else 1 + 14 * (o - 3)
        top = 1 if o < 3 else 16
        labels[top : top + h, left : left + w][mask] = o + 1
        boxes.append([top - 1, left - 1, h + 2, w + 2])
    boxes = np.array(boxes, dtype=np.intp)
    squared = np.zeros(labels.shape)
    squared_distance_to_background((labels > 0).view(np.uint8), boxes, squared)
    # the objects' pixels object after object (an empty object among them)
    objects = [labels == o + 1 for o in range(len(boxes))]
    counts = np.array([m.sum() for m in objects], np.intp)
    starts = np.cumsum(counts) - counts
    out = np.empty((len(boxes), 3))
    object_radii(np.concatenate([squared[m] for m in objects]), starts, counts, out)
    distance = ndi.distance_transform_edt(labels > 0)
    for o in range(len(boxes)):
        radii = distance[objects[o]]
        if radii.size:
            assert_allclose(out[o], [radii.max(), radii.mean(), np.median(radii)], rtol=1e-12)
        else:
            assert np.isnan(out[o]).all()


def _dijkstra(mask, start):
    """Textbook Dijkstra with heapq on the 8-connected grid (steps 1 and sqrt 2)."""
    h, w = mask.shape
    best = {start: 0.0}
    queue = [(0.0, start)]
    done = set()
    while queue:
        d, (i, j) = heapq.heappop(queue)
        if (i, j) in done:
            continue
        done.add((i, j))
        for a, b in itertools.product((-1, 0, 1), repeat=2):
            ni, nj = i + a, j + b
            if (a or b) and 0 <= ni < h and 0 <= nj < w and mask[ni, nj]:
                nd = d + (SQRT2 if a and b else 1.0)
                if nd < best.get((ni, nj), np.inf):
                    best[ni, nj] = nd
                    heapq.heappush(queue, (nd, (ni, nj)))
    out = np.full(mask.shape, np.inf)
    for (i, j), d in best.items():
        out[i, j] = d
    return out


def test_geodesic_distance_matches_textbook_dijkstra():
    # several objects on one canvas, each from its own centre, as Intensity lays them out
    masks, centres = [], []
    for rng, mask in _random_masks(40, 1):
        points = np.argwhere(mask)
        if len(points):
            masks.append(mask)
            centres.append(tuple(points[rng.integers(len(points))]))
    width = sum(m.shape[1] + 1 for m in masks) + 1
    canvas = np.zeros((14, width), bool)
    corners, x = [], 1
    for mask in masks:
        canvas[1 : 1 + mask.shape[0], x : x + mask.shape[1]] = mask
        corners.append(x)
        x += mask.shape[1] + 1
    flat_centres = np.array([(1 + i) * width + x + j for (i, j), x in zip(centres, corners)])
    out = np.full(canvas.size, np.inf)
    geodesic_distance(canvas.view(np.uint8), flat_centres, max(m.sum() for m in masks), out)
    out = out.reshape(canvas.shape)
    for mask, centre, x in zip(masks, centres, corners):
        got = out[1 : 1 + mask.shape[0], x : x + mask.shape[1]]
        expected = _dijkstra(mask, centre)
        assert_array_equal(np.isinf(got[mask]), np.isinf(expected[mask]))
        assert_allclose(
            got[mask & np.isfinite(expected)], expected[mask & np.isfinite(expected)], rtol=1e-14
        )


def test_geodesic_distance_around_a_wall():
    mask = np.ones((7, 7), bool)
    mask[1:6, 3] = False  # a wall with gaps at the top and bottom rows
    canvas = np.pad(mask, 1)
    out = np.full(canvas.size, np.inf)
    centre = np.array([4 * 9 + 1])  # (3, 0)
    geodesic_distance(canvas.view(np.uint8), centre, mask.sum(), out)
    out = out.reshape(canvas.shape)[1:-1, 1:-1]
    # to (3, 6): round the wall, three diagonal steps up to the gap and three down
    assert out[3, 6] == pytest.approx(6 * SQRT2)
    assert out[3, 2] == 2 and np.isinf(out[3, 3])


@pytest.mark.parametrize("n_rings", [1, 4, 40])
def test_radial_bins_as_cellprofiler_bins_them(n_rings):
    rng = np.random.default_rng(n_rings)
    counts = np.array([5, 0, 30, 1, 12], np.intp)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
    row, col = rng.integers(0, 9, (2, counts.sum())).astype(np.int32)
    d_edge = rng.random(counts.sum()) * 5
    d_centre = np.where(rng.random(counts.sum()) < 0.1, np.inf, rng.random(counts.sum()) * 5)
    centre = np.where(counts > 0, starts + counts // 2, -1)
    slot = np.empty(counts.sum(), np.intp)
    radial_bins(d_centre, d_edge, row, col, starts, counts, centre, n_rings, slot)
    for c in range(len(counts)):  # MeasureObjectIntensityDistribution, pixel by pixel
        ci, cj = row[centre[c]], col[centre[c]]
        for p in range(starts[c], starts[c] + counts[c]):
            if np.isinf(d_centre[p]):
                assert slot[p] == -1
                continue
            normalized = d_centre[p] / (d_centre[p] + d_edge[p] + 0.001)
            ring = min(int(np.floor(normalized * n_rings)), n_rings)
            i, j = row[p], col[p]
            wedge = int(i > ci) + 2 * int(j > cj) + 4 * int(abs(i - ci) > abs(j - cj))
            assert slot[p] == (c * (n_rings + 1) + ring) * 8 + wedge


def _reference_quantile(x, q, at_n):
    p = len(x) * q if at_n else (len(x) - 1) * q
    lo = min(int(np.floor(p)), len(x) - 1)
    hi = min(lo + 1, len(x) - 1)
    return x[lo] * (1 - (p - lo)) + x[hi] * (p - lo)


@pytest.mark.parametrize("at_n", [True, False])
def test_quartiles_and_mad_match_sorting(at_n):
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 40, 50)
    counts[:3] = [1, 2, 600]
    starts = np.cumsum(counts) - counts
    values = (rng.integers(-20, 20, counts.sum()) / 7).astype(np.float32)  # many ties
    values[starts[5] : starts[5] + counts[5]] = 0.25  # a constant cell
    ordered = np.concatenate([np.sort(values[s : s + c]) for s, c in zip(starts, counts)])
    out = np.empty((50, 4))
    quartiles_and_mad(ordered, starts, counts, at_n, out)
    for i in range(50):
        x = np.sort(values[starts[i] : starts[i] + counts[i]].astype(np.float64))
        median = _reference_quantile(x, 0.5, at_n)
        mad = _reference_quantile(np.sort(np.abs(x - median)), 0.5, at_n)
        expected = [_reference_quantile(x, q, at_n) for q in (0.25, 0.5)]
        expected += [mad, _reference_quantile(x, 0.75, at_n)]
        assert_array_equal(out[i], expected)
        if not at_n:  # numpy's own definition
            assert_allclose(out[i, [0, 1, 3]], np.percentile(x, [25, 50, 75]), rtol=1e-12)
            assert_allclose(out[i, 2], np.median(np.abs(x - np.median(x))), rtol=1e-12)


def _brute_force_circle(points):
    """Smallest of the circles on two or three of the points that hold all of them."""
    if len(points) == 1:
        return points[0][0], points[0][1], 0.0
    best = (0.0, 0.0, np.inf)
    candidates = []
    for a, b in itertools.combinations(points, 2):
        centre = (a + b) / 2
        candidates.append((centre, np.hypot(*(a - centre))))
    for a, b, c in itertools.combinations(points, 3):
        d = 2 * (a[1] * (b[0] - c[0]) + b[1] * (c[0] - a[0]) + c[1] * (a[0] - b[0]))
        if abs(d) < 1e-12:
            continue
        a2, b2, c2 = a @ a, b @ b, c @ c
        x = (a2 * (b[0] - c[0]) + b2 * (c[0] - a[0]) + c2 * (a[0] - b[0])) / d
        y = (a2 * (c[1] - b[1]) + b2 * (a[1] - c[1]) + c2 * (b[1] - a[1])) / d
        centre = np.array([y, x])
        candidates.append((centre, np.hypot(*(a - centre))))
    for centre, radius in candidates:
        if radius < best[2] and (np.hypot(*(points - centre).T) <= radius + 1e-9).all():
            best = (centre[0], centre[1], radius)
    return best


def _convex_polygon(rng):
    """Hull vertices of random lattice points, in order, collinear points dropped."""
    from scipy.spatial import ConvexHull, QhullError

    while True:
        points = rng.integers(0, rng.integers(2, 12), (rng.integers(3, 15), 2)).astype(float)
        points = np.unique(points, axis=0)
        if len(points) < 3:
            return points
        try:
            return points[ConvexHull(points).vertices]
        except QhullError:  # all collinear: the two ends
            ends = np.lexsort(points.T[::-1])[[0, -1]]
            return points[ends]


def test_minimum_enclosing_circle_matches_brute_force():
    rng = np.random.default_rng(4)
    polygons = [np.array([[3.0, 4.0]]), np.array([[0.0, 0.0], [2.0, 5.0]])]
    polygons += [_convex_polygon(rng) for _ in range(200)]
    counts = np.array([len(p) for p in polygons])
    starts = np.cumsum(counts) - counts
    ys, xs = np.concatenate(polygons).T.copy()
    out = np.empty((len(polygons), 3))
    minimum_enclosing_circle(ys, xs, starts, counts, out)
    for polygon, got in zip(polygons, out):
        assert_allclose(got, _brute_force_circle(polygon), atol=1e-9)


def test_minimum_enclosing_circle_is_centrosomes():
    cpmorphology = pytest.importorskip("centrosome.cpmorphology")
    labels = np.zeros((60, 60), np.int32)
    labels[2:9, 3:12] = 1  # a rectangle: four corners on the circle
    yy, xx = np.mgrid[:60, :60]
    labels[(yy - 30) ** 2 + (xx - 30) ** 2 <= 81] = 2  # a lattice disk
    labels[(np.abs(yy - 45) + np.abs(xx - 12) <= 6)] = 3  # a diamond
    labels[50:52, 40:58] = 4
    labels[15, 50] = 5
    hull, count = cpmorphology.convex_hull(labels, np.arange(1, 6))
    centres, radii = cpmorphology.minimum_enclosing_circle(labels, np.arange(1, 6), (hull, count))
    starts = np.cumsum(count) - count
    out = np.empty((5, 3))
    ys, xs = hull[:, 1].astype(float), hull[:, 2].astype(float)
    minimum_enclosing_circle(ys, xs, starts.astype(np.intp), count.astype(np.intp), out)
    assert_array_equal(out[:, :2], centres)  # to the last bit
    assert_array_equal(out[:, 2], radii)


def test_intensity_statistics_match_numpy():
    rng = np.random.default_rng(6)
    counts = rng.integers(0, 30, 40)
    counts[:2] = [0, 1]
    counts[4] = 3
    starts = np.cumsum(counts) - counts
    values = rng.integers(0, 5, counts.sum()).astype(np.float32) / 4  # ties for the maximum
    values[starts[4] : starts[4] + 3] = 0  # no mass: no centre of mass
    rows = rng.integers(0, 50, counts.sum()).astype(np.int32)
    cols = rng.integers(0, 50, counts.sum()).astype(np.int32)
    for keep in (None, (rng.random(counts.sum()) < 0.5).view(np.uint8)):
        out = np.empty((40, 12))
        intensity_statistics(values, rows, cols, starts, counts, keep, out)
        for i in range(40):
            part = slice(starts[i], starts[i] + counts[i])
            kept = slice(None) if keep is None else keep[part].astype(bool)
            v, r, c = values[part][kept].astype(float), rows[part][kept], cols[part][kept]
            if not v.size:
                assert np.isnan(out[i, :11]).all() and out[i, 11] == 0
                continue
            peak = np.argmax(v)  # the first maximum
            with np.errstate(invalid="ignore"):
                centre = [(v * r).sum() / v.sum(), (v * c).sum() / v.sum()]
            expected = [
                v.sum(),
                v.mean(),
                v.std(),
                v.min(),
                v.max(),
                *centre,
                r[peak],
                c[peak],
                r.mean(),
                c.mean(),
                v.size,
            ]
            assert_allclose(out[i], expected, rtol=1e-12, atol=1e-15)
    assert np.isnan(out[4, 5:7]).all() or out[4, 11] == 0


def test_outline_matches_four_neighbour_erosion():
    masks = []
    for _, mask in _random_masks(30, 5):
        masks.append(mask)
    cut = np.arange(len(masks)) % 3 == 0
    shapes = np.array([m.shape for m in masks], dtype=np.intp)
    flat = np.concatenate([m.ravel() for m in masks])
    index = np.flatnonzero(flat)
    obj = np.repeat(np.arange(len(masks)), [m.sum() for m in masks]).astype(np.int32)
    rows, cols = (np.concatenate(a).astype(np.int32) for a in zip(*(np.nonzero(m) for m in masks)))
    out = np.empty(index.size, dtype=np.uint8)
    outline(flat.view(np.uint8), index, obj, rows, cols, shapes, cut.view(np.uint8), out)
    expected = []
    for mask, is_cut in zip(masks, cut):
        # past the crop: background, or the object itself for a cut cell ("nearest" padding)
        padded = np.pad(mask, 1, mode="edge") if is_cut else np.pad(mask, 1)
        inner = ndi.binary_erosion(padded, structure=ndi.generate_binary_structure(2, 1))
        expected.append((mask & ~inner[1:-1, 1:-1])[mask])
    assert_array_equal(out, np.concatenate(expected).view(np.uint8))


def test_feret_diameters_match_calipers():
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(8)
    polygons = [np.array([[3.0, 4.0]]), np.array([[0.0, 0.0], [2.0, 5.0]])]
    polygons += [_convex_polygon(rng) for _ in range(100)]
    counts = np.array([len(p) for p in polygons])
    starts = np.cumsum(counts) - counts
    ys, xs = np.concatenate(polygons).T.copy()
    out = np.empty((len(polygons), 2))
    feret_diameters(ys, xs, starts, counts, out)
    for polygon, (low, high) in zip(polygons, out):
        assert high == pytest.approx(pdist(polygon).max() if len(polygon) > 1 else 0.0)
        if len(polygon) < 3:
            assert low == 0
            continue
        # the caliper width in every direction, and across every side (where the narrowest is)
        angles = np.linspace(0, np.pi, 20001)
        extent = polygon @ np.stack([np.cos(angles), np.sin(angles)])
        assert low == pytest.approx((extent.max(axis=0) - extent.min(axis=0)).min(), abs=2e-3)
        sides = np.roll(polygon, -1, axis=0) - polygon
        normals = np.stack([-sides[:, 1], sides[:, 0]]) / np.hypot(*sides.T)
        across = polygon @ normals
        assert low == pytest.approx((across.max(axis=0) - across.min(axis=0)).min(), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.int64])
def test_label_boxes_and_windows_match_find_objects(dtype):
    rng = np.random.default_rng(5)
    for trial in range(25):
        h, w = rng.integers(1, 30, 2)
        ids = rng.choice(np.arange(1, 500), size=rng.integers(0, 6), replace=False)
        labels = np.zeros((h, w), dtype)
        for i in ids:  # blobs, fragments, objects on the border, ids overwritten (absent)
            y, x = rng.integers(0, h), rng.integers(0, w)
            labels[max(y - 3, 0) : y + rng.integers(1, 5), max(x - 2, 0) : x + 3] = i
            labels[rng.random((h, w)) < 0.02] = i
        found, boxes = label_boxes(labels)
        slices = ndi.find_objects(labels.astype(np.int64))
        expected = [i + 1 for i, s in enumerate(slices) if s is not None]
        assert_array_equal(found, expected)
        assert found.dtype == np.int64
        for k, i in enumerate(found):
            s = slices[i - 1]
            assert boxes[k].tolist() == [s[0].start, s[1].start, s[0].stop, s[1].stop]
        # windows one pixel larger than the boxes where the image allows
        origins = np.maximum(boxes[:, :2] - 1, 0)
        ends = np.minimum(boxes[:, 2:] + 1, [h, w])
        sizes = (ends - origins).prod(axis=1)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        stack = rng.random((2, h, w)).astype(np.float32)
        values, mask = np.empty((2, starts[-1]), np.float32), np.empty(starts[-1], bool)
        centroid = np.empty((found.size, 2))
        gather_windows(
            stack,
            labels,
            found.astype(dtype),
            origins,
            ends,
            starts,
            values,
            mask.view(np.uint8),
            centroid,
        )
        for k, i in enumerate(found):
            (y0, x0), (y1, x1) = origins[k], ends[k]
            window = slice(starts[k], starts[k + 1])
            assert_array_equal(values[:, window], stack[:, y0:y1, x0:x1].reshape(2, -1))
            assert_array_equal(mask[window], (labels[y0:y1, x0:x1] == i).ravel())
            assert_allclose(centroid[k], np.argwhere(labels == i).mean(axis=0), rtol=0, atol=1e-12)


def test_label_boxes_of_an_empty_image():
    for labels in (np.zeros((4, 5), np.int32), np.zeros((0, 3), np.int32)):
        ids, boxes = label_boxes(labels)
        assert ids.size == 0 and boxes.shape == (0, 4)


def test_mask_runs_and_pixels_match_a_plain_scan():
    masks = [mask for _, mask in _random_masks(30, 9)]
    shapes = np.array([m.shape for m in masks], np.intp)
    origins = np.arange(2 * len(masks), dtype=np.intp).reshape(-1, 2) * 3
    flat = np.concatenate([m.ravel() for m in masks]).view(np.uint8)
    expected = []
    for c, mask in enumerate(masks):
        for i, line in enumerate(mask):
            j = 0
            while j < len(line):
                if line[j]:
                    start = j
                    while j < len(line) and line[j]:
                        j += 1
                    expected.append(
                        (c, i + origins[c, 0], start + origins[c, 1], j - 1 + origins[c, 1])
                    )
                j += 1
    assert_array_equal(np.column_stack(mask_runs(flat, shapes, origins)), np.array(expected))
    m = int(flat.sum())
    index, counts, obj, row, col = (
        np.empty(m, np.intp),
        np.empty(len(masks), np.intp),
        *(np.empty(m, np.int32) for _ in range(3)),
    )
    mask_pixels(flat, shapes, index, counts, obj, row, col)
    assert_array_equal(index, np.flatnonzero(flat))
    assert counts.tolist() == [int(mask.sum()) for mask in masks]
    places = np.concatenate([np.argwhere(mask) for mask in masks])
    assert_array_equal(np.column_stack([row, col]), places)
    assert_array_equal(obj, np.repeat(np.arange(len(masks)), counts))
