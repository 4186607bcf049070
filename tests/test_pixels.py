import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy import ndimage as ndi

from featcell import CellSet
from featcell.features._pixels import CellPixels, cell_pixels, shelf_pack


@pytest.mark.parametrize("n", [1, 5, 60])
@pytest.mark.parametrize("gap", [0, 1, 3])
def test_packed_boxes_are_apart_and_inside_the_canvas(n, gap):
    rng = np.random.default_rng(n)
    heights, widths = rng.integers(1, 40, n), rng.integers(1, 40, n)
    corners, (height, width) = shelf_pack(heights, widths, gap)
    assert corners.shape == (n, 2)
    # each box grown by its gap ring stays inside the canvas and overlaps no other box
    grown = np.zeros((height + 2 * gap, width + 2 * gap), int)
    for (y, x), h, w in zip(corners, heights, widths):
        assert y >= gap and x >= gap and y + h + gap <= height and x + w + gap <= width
        grown[y : y + h + 2 * gap, x : x + w + 2 * gap] += 1  # shifted by gap
    core = np.zeros((height, width), int)
    for (y, x), h, w in zip(corners, heights, widths):
        core[y : y + h, x : x + w] += 1
        assert grown[y + gap : y + h + gap, x + gap : x + w + gap].max() == 1
    assert core.max() == 1
    # not much larger than the boxes (shelves, tallest first)
    assert height * width <= 3 * ((heights + gap + 1) * (widths + gap + 1)).sum() + 100


def test_no_boxes():
    corners, shape = shelf_pack(np.zeros(0, int), np.zeros(0, int), 2)
    assert corners.shape == (0, 2) and shape == (2, 2)


def test_cell_pixels_layout_and_reductions():
    labels = np.zeros((20, 20), np.int32)
    labels[2:5, 3:7] = 1
    labels[10:18, 10:12] = 2
    labels[15, 1] = 3
    image = np.arange(400, dtype=float).reshape(20, 20) / 400
    cells = CellSet.from_labels(image, labels, margin=2)
    pix = CellPixels(cells)
    assert pix.counts.tolist() == [12, 16, 1]
    assert pix.obj.dtype == pix.row.dtype == np.int32
    flat = cells.flat()
    assert_array_equal(pix.index, np.flatnonzero(flat.mask))
    assert_array_equal(pix.obj, flat.obj[pix.index])
    assert_array_equal(pix.row, flat.row[pix.index])
    assert_array_equal(pix.col, flat.col[pix.index])
    values = pix.values(0)
    for i in range(3):
        mine = labels == i + 1
        assert pix.sum(values)[i] == pytest.approx(image[mine].sum(), rel=1e-6)
        assert pix.reduce(np.maximum, values)[i] == pytest.approx(image[mine].max(), rel=1e-6)
    # built once per CellSet for all the families, not shared with another CellSet
    assert cell_pixels(cells) is cell_pixels(cells)
    other = CellSet.from_labels(image, labels, margin=2)
    assert cell_pixels(other) is not cell_pixels(cells)
    assert_array_equal(cell_pixels(other).index, pix.index)


def test_squared_distances_are_each_masks_own_distance_transform():
    # border objects, a hole, two fragments, a one-pixel object
    rng = np.random.default_rng(3)
    labels = np.zeros((40, 50), np.int32)
    labels[0:9, 5:20], labels[20:35, 0:12], labels[30:40, 35:50] = 4, 9, 2
    labels[12:24, 20:34], labels[16:19, 25:28] = 7, 0
    labels[2:6, 40:44], labels[8:10, 46:49], labels[25, 20] = 5, 5, 11
    for margin in (0, 2):
        cells = CellSet.from_labels(rng.random((40, 50)), labels, margin=margin)
        pix = cell_pixels(cells)
        assert pix.squared_distances is pix.squared_distances  # computed once
        for i in range(len(cells)):
            mask = np.pad(cells.mask(i), 1)  # the crop's outside is background
            expected = np.rint(ndi.distance_transform_edt(mask)[mask] ** 2)
            assert_array_equal(pix.squared_distances[pix.bounds[i] : pix.bounds[i + 1]], expected)


def test_a_channel_model_refuses_a_grey_image():
    """DensityCounter(channels=[1]) fitted on two-channel images counted grey images as
    if they were channel 1 (PixelFeatures took any 2-D image as the channel asked for)."""
    from featcell.features.image import PixelFeatures

    rng = np.random.default_rng(0)
    features = PixelFeatures(["gaussian"], scales=[1.0], channels=[1]).fit()
    assert features.maps(rng.random((16, 16, 2))).shape == (16, 16, 1)
    with pytest.raises(ValueError, match="channel 1 requested but the image has 1 channel"):
        features.maps(rng.random((16, 16)))
    grey = PixelFeatures(["gaussian"], scales=[1.0], channels=[0]).fit()
    assert grey.maps(rng.random((16, 16))).shape == (16, 16, 1)
