from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from featcell.segmentation import segment, segment_object

DATA = Path(__file__).parents[1] / ".." / "shared" / "data"

# three separated disks and one pair of touching disks on a 96 x 96 field
YY, XX = np.mgrid[:96, :96]
DISKS = [(20, 20, 8), (20, 70, 10), (70, 20, 7)]
TOUCHING = [(70, 60, 9), (70, 76, 9)]


def _disk(cy, cx, r):
    return (YY - cy) ** 2 + (XX - cx) ** 2 <= r**2


def _field(disks, background=10.0, foreground=200.0, noise=5.0, seed=0):
    rng = np.random.default_rng(seed)
    image = np.full(YY.shape, background)
    for cy, cx, r in disks:
        image[_disk(cy, cx, r)] = foreground
    return image + rng.normal(0, noise, image.shape)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


# li, triangle and local thresholds sit lower than Otsu and take in part of the blurred rim
@pytest.mark.parametrize(
    ("method", "min_iou"),
    [("otsu", 0.95), ("multiotsu", 0.8), ("li", 0.8), ("triangle", 0.55), ("local", 0.8)],
)
def test_separated_disks_count_and_iou(method, min_iou):
    labels = segment(_field(DISKS), method=method, block_size=61)
    assert labels.dtype == np.int32
    assert labels.max() == len(DISKS)
    for cy, cx, r in DISKS:
        found = labels == labels[cy, cx]
        assert labels[cy, cx] > 0
        assert _iou(found, _disk(cy, cx, r)) > min_iou


def test_touching_disks_are_split():
    image = _field(TOUCHING)
    assert segment(image, split_touching=False).max() == 1
    labels = segment(image)
    assert labels.max() == 2
    (a_y, a_x, _), (b_y, b_x, _) = TOUCHING
    assert labels[a_y, a_x] != labels[b_y, b_x]


def test_intensity_seeds_split_touching_blobs():
    image = np.zeros(YY.shape)
    for cy, cx, _ in TOUCHING:
        image += np.exp(-((YY - cy) ** 2 + (XX - cx) ** 2) / (2 * 5.0**2))
    assert segment(image, seed="intensity", min_distance=5).max() == 2


def test_dark_objects_on_bright_background_are_inverted():
    image = _field(DISKS, background=200.0, foreground=40.0)
    assert segment(image).max() == len(DISKS)
    assert segment(image, invert=False).max() <= 1  # the background becomes the object


def test_colour_and_channel_input():
    grey = _field(DISKS)
    rgb = np.stack([np.zeros_like(grey), np.zeros_like(grey), grey], axis=-1)
    assert segment(rgb, channel=2).max() == len(DISKS)
    assert segment(rgb.clip(0, 255).astype(np.uint8)).max() == len(DISKS)


def test_min_size_removes_small_objects():
    image = _field(DISKS + [(80, 85, 2)])
    assert segment(image, min_size=40).max() == len(DISKS)


def test_binary_input_with_every_method():
    image = np.zeros((30, 30), dtype=bool)
    image[5:15, 5:15] = True
    for method in ("otsu", "multiotsu", "li", "triangle", "local"):
        assert segment(image, method=method, sigma=0, block_size=31).max() == 1


def test_blank_image_gives_no_objects():
    assert_array_equal(segment(np.zeros((10, 12))), np.zeros((10, 12), dtype=np.int32))


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((0, 5)), {}, "empty"),
        (np.full((5, 5), np.nan), {}, "NaN"),
        (np.zeros((8, 8, 8)), {}, "3-D stacks"),
        (np.zeros((8, 8)), {"method": "magic"}, "method='magic'"),
        (np.zeros((8, 8)), {"min_size": -1}, "min_size"),
        (np.zeros((8, 8)), {"min_distance": 0}, "min_distance"),
        (np.zeros((8, 8)), {"invert": "yes"}, "invert"),
        (np.zeros((8, 8, 3)), {"channel": 3}, "channel=3"),
        (np.zeros((8, 8)), {"method": "local", "block_size": 4}, "block_size"),
        (np.zeros((8, 8)), {"offset": float("nan")}, "offset"),
        (np.zeros((8, 8)), {"offset": "a"}, "offset"),
        (np.zeros((8, 8)), {"compactness": float("nan")}, "compactness"),
        (np.zeros((8, 8, 3)), {"channel": True}, "channel"),
    ],
)
def test_bad_input(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        segment(image, **kwargs)


@pytest.mark.parametrize("contrast", [-60.0, 60.0])
def test_segment_object_dark_or_bright_cell(contrast):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:40, :48]
    cell = (yy - 22) ** 2 / 12**2 + (xx - 25) ** 2 / 9**2 <= 1
    window = 500.0 + rng.normal(0, 5, cell.shape)
    window[cell] += contrast
    window[2:5, 2:5] += contrast  # a speck in the corner is not the cell
    mask = segment_object(window)
    assert mask.dtype == bool and mask.shape == cell.shape
    assert _iou(mask, cell) > 0.85


def test_segment_object_ring_is_filled_and_channels_combine():
    # a bright-field ring (dark rim, background-like inside) in channel 0, nothing in channel 1
    yy, xx = np.mgrid[:40, :40]
    radius = np.hypot(yy - 20, xx - 20)
    rim = (radius > 9) & (radius <= 12)
    window = np.stack([100.0 - 40.0 * rim, np.full(rim.shape, 7.0)])
    window += np.random.default_rng(2).normal(0, 1, window.shape)
    mask = segment_object(window)
    assert _iou(mask, radius <= 12) > 0.85


@pytest.mark.parametrize("gaps", ["open_side", "broken"])
def test_segment_object_covers_an_open_or_broken_ring(gaps):
    # a dead cell in bright-field: a dark rim 3 px thick, background-like inside, either
    # open on one side (a crescent, no hole to fill) or broken into arcs by narrow gaps
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:48, :48]
    radius = np.hypot(yy - 24, xx - 24)
    angle = np.degrees(np.arctan2(yy - 24, xx - 24)) % 360
    rim = (radius > 9) & (radius <= 12)
    if gaps == "open_side":
        rim &= (angle < 20) | (angle > 80)  # a 60-degree opening
    else:
        rim &= np.abs((angle + 22.5) % 90 - 45) > 12  # four gaps of about 4 px
    window = 100.0 - 40.0 * rim + rng.normal(0, 1, rim.shape)
    disk = radius <= 12
    for mask in (segment_object(window), segment_object(window, box=(10, 10, 39, 39))):
        assert abs(int(mask.sum()) - int(disk.sum())) < 0.15 * disk.sum()
        assert _iou(mask, disk) > 0.8


def test_segment_object_box_with_context():
    # a bright-field cell (dark rim, grey inside) whose box touches its edge on every side
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:40, :40]
    radius = np.hypot(yy - 20, xx - 20)
    cell = radius <= 10
    window = 100.0 - 40.0 * ((radius > 8) & cell) - 15.0 * (radius <= 8)
    window += rng.normal(0, 1, window.shape)
    box = (10, 10, 31, 31)
    mask = segment_object(window, box=box)
    assert _iou(mask, cell) > 0.85
    assert not mask[:10].any() and not mask[:, 31:].any()  # confined to the box
    flat = segment_object(np.full((20, 20), 5.0), box=(5, 2, 15, 18))
    assert flat[10, 10] and not flat[3, 10] and flat.shape == (20, 20)


@pytest.mark.parametrize("box", [(0, 0, 50, 10), (5, 5, 5, 9), (1, 2, 3), "all"])
def test_segment_object_bad_box(box):
    with pytest.raises(ValueError, match="box="):
        segment_object(np.zeros((20, 20)), box=box)


def test_segment_object_falls_back_to_ellipse():
    flat = segment_object(np.full((20, 30), 3.0))
    assert flat[10, 15] and not flat[0, 0]
    assert 0.6 < flat.mean() < 0.9  # pi / 4 of the window
    assert segment_object(np.ones((2, 2))).shape == (2, 2)


@pytest.mark.parametrize(
    ("window", "match"),
    [(np.zeros((2, 3, 4, 5)), "expected \\(h, w\\)"), (np.full((4, 4), np.inf), "NaN")],
)
def test_segment_object_bad_input(window, match):
    with pytest.raises(ValueError, match=match):
        segment_object(window)


@pytest.mark.skipif(not (DATA / "phenotype").is_dir(), reason="../shared/data is absent")
def test_segment_object_on_flow_cytometry_crops():
    cells = np.load(DATA / "phenotype" / "jurkat_cell_cycle" / "cells.npz")
    images = cells["images"][:50, [0, 2]].astype(float)  # bright-field and dark-field
    areas = np.array([segment_object(im).sum() for im in images])
    # cells fill a good part of the 40 x 40 crop, never all of it
    assert np.median(areas) > 150 and areas.max() < 40 * 40 * 0.8


# ---------------------------------------------------------------------- segment_cells
def _blurred_field(seed, shape=(60, 70), n_seeds=6):
    rng = np.random.default_rng(seed)
    from scipy import ndimage as ndi

    image = ndi.gaussian_filter(rng.random(shape), 2)
    nuclei = np.zeros(shape, np.int32)
    for k, (y, x) in enumerate(rng.integers(3, min(shape) - 6, (n_seeds, 2))):
        nuclei[y : y + 3, x : x + 3] = k + 1
    return image, nuclei


@pytest.mark.parametrize("weight", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_propagation_matches_centrosome(seed, weight):
    """The grown labels equal CellProfiler's own propagation (centrosome), pixel for pixel."""
    propagate = pytest.importorskip("centrosome.propagate").propagate
    from featcell.segmentation import _propagate

    image, nuclei = _blurred_field(seed)
    mask = image > np.percentile(image, 30)
    expected, _ = propagate(image, nuclei, mask, weight)
    assert_array_equal(_propagate(image, nuclei, mask, weight), expected)


def test_segment_cells_follows_the_stain_and_keeps_nucleus_ids():
    from featcell.segmentation import segment_cells

    # two touching cells of different brightness, nuclei off-centre: the border follows the
    # intensity step (column 30, give or take the 3x3 window), not the mid-line (column 25)
    image = np.zeros((40, 60))
    image[5:35, 5:30] = 1.0
    image[5:35, 30:55] = 0.5
    image[15, 40] = 0.0  # a one-pixel hole inside cell 2, filled
    nuclei = np.zeros(image.shape, np.int32)
    nuclei[18:22, 8:12] = 4
    nuclei[18:22, 38:42] = 9
    cells = segment_cells(image, nuclei, regularization=0.01)
    assert cells.dtype == np.int32
    assert set(np.unique(cells)) == {0, 4, 9}
    assert (cells[5:35, 5:29] == 4).all() and (cells[5:35, 31:55] == 9).all()
    assert (cells[nuclei > 0] == nuclei[nuclei > 0]).all()
    unfilled = segment_cells(image, nuclei, regularization=0.01, fill_holes=False)
    assert unfilled[15, 40] == 0 and cells[15, 40] == 9
    # a large regularization ignores the stain: equal-distance (Voronoi) border at column 25
    voronoi = segment_cells(image, nuclei, regularization=100.0)
    assert (voronoi[5:35, 26:29] == 9).all() and (voronoi[5:35, 5:24] == 4).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"nuclei": np.zeros((5, 5), np.int32)}, ValueError, "shape"),
        ({"nuclei": np.zeros((8, 8), bool)}, TypeError, "integer label"),
        ({"regularization": -1}, ValueError, "regularization"),
        ({"regularization": float("inf")}, ValueError, "regularization"),
        ({"threshold": "li"}, ValueError, "otsu"),
        ({"image": np.ones((8, 8, 3)), "channel": True}, ValueError, "channel"),
    ],
)
def test_segment_cells_bad_input(kwargs, error, match):
    from featcell.segmentation import segment_cells

    args = {"image": np.ones((8, 8)), "nuclei": np.zeros((8, 8), np.int32), **kwargs}
    with pytest.raises(error, match=match):
        segment_cells(**args)


def test_segment_cells_on_ht29(shared_data):
    """Cells grown from the nuclei of the HT29 field cover their nuclei and the stained area."""
    import tifffile

    from featcell.segmentation import segment, segment_cells

    folder = shared_data / "viability" / "ht29_ph3"
    dna = tifffile.imread(folder / "AS_09125_050116030001_D03f00d0.tif")
    stain = tifffile.imread(folder / "AS_09125_050116030001_D03f00d2.tif")
    nuclei = segment(dna)
    # a cortical stain, bright at the cell edge: plain Otsu keeps little more than the edges
    cells = segment_cells(stain, nuclei, log_transform=True)
    ids = np.unique(nuclei[nuclei > 0])
    assert set(np.unique(cells[cells > 0])) == set(ids)
    nucleus_area = np.bincount(nuclei.ravel())[ids]
    cell_area = np.bincount(cells.ravel(), minlength=nuclei.max() + 1)[ids]
    assert (cell_area >= nucleus_area).all()
    assert np.median(cell_area / nucleus_area) > 3  # cells are larger than their nuclei
    edges_only = segment_cells(stain, nuclei)
    assert (edges_only > 0).sum() < 0.6 * (cells > 0).sum()


def test_unusual_but_valid_images_are_segmented():
    from featcell.segmentation import segment_cells

    field = _field(DISKS)
    plain = segment(field)
    # intensities near float64's limit: the same objects
    assert_array_equal(segment(field * 1e300), plain)
    assert_array_equal(segment(field * 1e300 - 1.7e308), plain)
    # five channels, one chosen
    stack = np.stack([field, *[np.zeros_like(field)] * 4], axis=-1)
    assert_array_equal(segment(stack, channel=0), plain)
    # multi-Otsu of a two-level image with one hot pixel, and of a two-level image
    binary = np.zeros((40, 40))
    binary[5:15, 5:15] = 1.0
    binary[30, 30] = 5.0
    assert segment(binary, method="multiotsu", sigma=0, min_size=0).max() >= 1
    binary[30, 30] = 1.0  # two levels only: Otsu's two classes
    assert_array_equal(segment(binary, method="multiotsu", sigma=0, min_size=0),
                       segment(binary, method="otsu", sigma=0, min_size=0))
    # a minimum distance beyond the image is the image (no footprint of 10**6 pixels): one
    # seed per separate disk
    assert segment(field, min_distance=10**6).max() == len(DISKS)
    # huge cell-stain values and a huge regularization: the Voronoi split
    image = np.zeros((20, 40))
    image[4:16, 2:18] = 1.0
    image[4:16, 22:38] = 0.6
    nuclei = np.zeros((20, 40), np.int64)
    nuclei[9:11, 9:11] = 1
    nuclei[9:11, 29:31] = 2**40  # ids above int32 are kept
    cells = segment_cells(image * 1e300, nuclei)
    assert sorted(np.unique(cells).tolist()) == [0, 1, 2**40]
    assert [int((cells == k).sum()) for k in (1, 2**40)] == [192, 192]
    # a threshold in the image's own units, however large
    huge = segment_cells(image * 1e200, nuclei, threshold=0.3e200)
    assert [int((huge == k).sum()) for k in (1, 2**40)] == [192, 192]
    # ids above the number of pixels but within int32 stay int32, as documented
    small = np.where(nuclei > 1, 1000, nuclei)
    assert segment_cells(image, small).dtype == np.int32
    huge = segment_cells(image, nuclei, regularization=1e200)
    assert [int((huge == k).sum()) for k in (1, 2**40)] == [192, 192]


def test_segment_cells_sets_lambda_in_cellprofilers_unit_scale():
    # an integer stain is scaled to [0, 1] (as CellProfiler loads it) before the step costs
    from featcell.segmentation import segment_cells

    # a faint step at column 30 (300 of 65535), nuclei centred at columns 10 and 40: in the
    # unit scale lambda = 0.05 outweighs the step and the border is near the midpoint, 25
    stain = np.where(np.arange(60) < 30, 30000, 30300) * np.ones((40, 1))
    nuclei = np.zeros((40, 60), np.int32)
    nuclei[18:22, 8:12] = 1
    nuclei[18:22, 38:42] = 2
    cells = segment_cells(stain.astype(np.uint16), nuclei, threshold=1000)
    assert_array_equal(cells, segment_cells(stain / 65535, nuclei, threshold=1000 / 65535))
    assert 22 <= int((cells[20] == 1).sum()) <= 28


def test_segment_object_on_noise_free_windows():
    window = np.zeros((40, 40))
    window[10:30, 10:30] = 1.0
    mask = segment_object(window)  # the box, and at most the smoothing's 1-pixel rim
    assert mask[10:30, 10:30].all() and not mask[:8].any() and int(mask.sum()) <= 484
    assert_array_equal(segment_object(window * 1e300), mask)
    for kwargs, match in [({"sigma": -1.0}, "sigma"), ({"sigma": float("nan")}, "sigma"),
                          ({"min_contrast": float("nan")}, "min_contrast"),
                          ({"min_contrast": "3"}, "min_contrast")]:
        with pytest.raises(ValueError, match=match):
            segment_object(window, **kwargs)


def test_reading_more_than_four_channels_without_labels(tmp_path):
    import tifffile

    from featcell import read_cells

    field = _field(DISKS).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", np.stack([field] * 5, axis=-1))
    assert len(read_cells(tmp_path)) == len(DISKS)
