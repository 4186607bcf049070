import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from featcell import CellSet
from featcell.features._pixels import CellPixels


def test_from_labels_crops_masks_and_metadata(two_objects):
    image, labels = two_objects
    cells = CellSet.from_labels(image, labels, channels=["DNA", "PH3"], image_id="A01", margin=2)
    assert len(cells) == 2 and cells.n_channels == 2
    meta = cells.metadata
    assert meta["Metadata_ObjectNumber"].tolist() == [3, 8]
    assert meta[["Metadata_BoundingBox_MinY", "Metadata_BoundingBox_MinX",
                 "Metadata_BoundingBox_MaxY", "Metadata_BoundingBox_MaxX"]].values.tolist() == [
        [5, 5, 11, 11], [20, 24, 30, 32]]
    np.testing.assert_allclose(meta["Metadata_Location_Center_Y"], [7.5, 24.5])
    np.testing.assert_allclose(meta["Metadata_Location_Center_X"], [7.5, 27.5])
    assert cells.crop(0).shape == (2, 10, 10) and cells.crop(0).dtype == np.float32
    assert cells.mask(1).sum() == 80
    # integer images are rescaled by the dtype range, as CellProfiler does
    np.testing.assert_allclose(cells.crop(0)[:, 2:8, 2:8], image[5:11, 5:11].transpose(2, 0, 1) / 255,
                               rtol=1e-6)
    assert cells.groups("image").tolist() == ["A01", "A01"]


def test_channels_first_and_list_of_planes(two_objects):
    image, labels = two_objects
    a = CellSet.from_labels(image, labels)
    b = CellSet.from_labels(np.moveaxis(image, -1, 0), labels, channel_axis=0)
    c = CellSet.from_labels([image[..., 0], image[..., 1]], labels)
    for other in (b, c):
        np.testing.assert_array_equal(a.crop(1), other.crop(1))
    assert a.channel_names == ("Ch1", "Ch2")


def test_indexing_matches_sklearn_expectations(two_objects):
    image, labels = two_objects
    cells = CellSet.concat([CellSet.from_labels(image, labels, image_id=i) for i in "abc"])
    assert len(cells) == 6
    sub = cells[np.array([5, 0])]
    np.testing.assert_array_equal(sub.crop(0), cells.crop(5))
    np.testing.assert_array_equal(sub.mask(1), cells.mask(0))
    assert sub.groups("image").tolist() == ["c", "a"]
    assert len(cells[cells.groups("image") == "b"]) == 2
    assert len(cells[1:4]) == 3 and len(cells[[]]) == 0
    assert cells[-1].metadata["Metadata_ObjectNumber"].tolist() == [8]
    with pytest.raises(IndexError, match="out of range"):
        cells[[6]]


def test_grouped_cross_validation_runs_on_cellset(two_objects):
    image, labels = two_objects
    cells = CellSet.concat(
        [CellSet.from_labels(image, labels, image_id=f"img{i}") for i in range(6)]
    )
    y = np.tile([0, 1], 6)
    area = FunctionTransformer(lambda X: np.array([[X.mask(i).sum()] for i in range(len(X))]))
    model = make_pipeline(area, DecisionTreeClassifier(random_state=0))
    scores = cross_val_score(model, cells, y, groups=cells.groups("image"), cv=GroupKFold(3))
    np.testing.assert_allclose(scores, 1.0)


def test_pickle_round_trip_is_cheap_and_exact(two_objects):
    image, labels = two_objects
    cells = CellSet.from_labels(image, labels, metadata={"well": "B02", "dose": [1.0, 2.0]})
    again = pickle.loads(pickle.dumps(cells))
    np.testing.assert_array_equal(again.crop(1), cells.crop(1))
    pd.testing.assert_frame_equal(again.metadata, cells.metadata)
    assert again.groups("well").tolist() == ["B02", "B02"]
    assert cells.groups("dose").tolist() == [1.0, 2.0]


def test_flat_and_mosaic_cover_every_pixel(two_objects):
    image, labels = two_objects
    cells = CellSet.from_labels(image, labels, margin=3)
    flat = cells.flat()
    for i in range(len(cells)):
        sel = flat.obj == i
        np.testing.assert_array_equal(cells.crop(i)[:, flat.row[sel], flat.col[sel]],
                                      flat.values[:, sel])
    pix = CellPixels(cells)
    np.testing.assert_array_equal(pix.index, np.flatnonzero(flat.mask))
    assert pix.counts.tolist() == [36, 80] and pix.obj.dtype == pix.col.dtype == np.int32
    for name in ("obj", "row", "col"):
        np.testing.assert_array_equal(getattr(pix, name), getattr(flat, name)[pix.index])
    canvas, mosaic_labels, offsets = cells.mosaic()
    assert np.bincount(mosaic_labels.ravel()).tolist()[1:] == [36, 80]
    y, x = offsets[1]
    h, w = cells.crop_shapes[1]
    np.testing.assert_array_equal(canvas[:, y:y + h, x:x + w], cells.crop(1))


def test_border_objects_are_flagged_and_can_be_excluded():
    labels = np.zeros((20, 20), np.int32)
    labels[0:4, 0:4] = 1
    labels[8:12, 8:12] = 2
    labels[19, 19] = 3  # a 1-pixel object in the corner
    image = np.ones((20, 20), np.float32)
    cells = CellSet.from_labels(image, labels)
    assert cells.metadata["Metadata_TouchesBorder"].tolist() == [True, False, True]
    assert cells.mask(2).sum() == 1
    kept = CellSet.from_labels(image, labels, exclude_border=True)
    assert kept.metadata["Metadata_ObjectNumber"].tolist() == [2]


def test_empty_label_image_gives_empty_cellset():
    cells = CellSet.from_labels(np.ones((8, 8)), np.zeros((8, 8), np.int32), channels=["DNA"])
    assert len(cells) == 0 and cells.channel_names == ("DNA",)
    assert cells.mosaic()[1].shape == (0, 0)


@pytest.mark.parametrize(
    "image, labels, error, match",
    [
        (np.ones((8, 8)), np.ones((8, 9), np.int32), ValueError, r"labels has shape \(8, 9\)"),
        (np.ones((8, 8)), np.ones((8, 8), float), TypeError, "integer instance label image"),
        (np.ones((8, 8)), np.ones((8, 8), bool), TypeError, "skimage.measure.label"),
        (np.ones((3, 4, 8, 8)), np.ones((8, 8), np.int32), ValueError, "got 4-D"),
        (np.full((8, 8), np.nan), np.ones((8, 8), np.int32), ValueError, "NaN"),
        (np.ones((3, 8, 8)), np.ones((8, 8), np.int32), ValueError, "channel_axis=0"),
        (np.ones((8, 8)), -np.ones((8, 8), np.int32), ValueError, "negative"),
        ("x.png", np.ones((8, 8), np.int32), TypeError, "got the path 'x.png'; read files"),
    ],
)
def test_bad_input_raises_clear_errors(image, labels, error, match):
    with pytest.raises(error, match=match):
        CellSet.from_labels(image, labels)


def test_bad_metadata_keys_and_boxes():
    for labels in (np.ones((8, 8), np.int32), np.zeros((8, 8), np.int32)):  # no cell too
        with pytest.raises(TypeError, match="metadata keys must be column names"):
            CellSet.from_labels(np.ones((8, 8)), labels, metadata={5: 1})
    with pytest.raises(ValueError, match=r"boxes \[1\] hold NaN"):
        CellSet.from_boxes(np.ones((16, 16)), [[1, 1, 5, 5], [np.nan, 1, 5, 5]])


@pytest.mark.parametrize("channels", [["DNA_1"], ["DNA", "DNA"], ["1st"], ["A", "B"]])
def test_channel_names_are_validated(channels):
    with pytest.raises(ValueError, match="channel"):
        CellSet.from_labels(np.ones((8, 8)), np.ones((8, 8), np.int32), channels=channels)


def test_from_boxes_one_row_per_box_in_order():
    image = np.random.default_rng(0).normal(0.1, 0.02, (60, 60)).astype(np.float32)
    image[10:20, 10:22] += 0.9  # a 10x12 bright cell
    image[35:45, 40:48] += 0.9  # an 10x8 bright cell
    boxes = [[38, 33, 50, 47], [8, 8, 24, 22]]  # second cell first
    cells = CellSet.from_boxes(image, boxes, image_id="f")
    np.testing.assert_allclose([cells.mask(i).sum() for i in range(2)], [80, 120], atol=3)
    assert cells.metadata["Metadata_BoundingBox_MinX"].tolist() == [38, 8]
    with pytest.raises(ValueError, match="empty after clipping"):
        CellSet.from_boxes(image, [[10, 10, 10, 20]])


def test_from_crops_with_and_without_masks():
    crops = np.zeros((4, 2, 20, 20), np.uint16)
    crops[:, :, 5:15, 6:14] = 4000
    masks = crops[:, 0] > 0
    given = CellSet.from_crops(crops, masks, channels=["BF", "SSC"], image_id=list("aabb"))
    found = CellSet.from_crops(crops, channels=["BF", "SSC"])
    assert [given.mask(i).sum() for i in range(4)] == [80] * 4
    found_mask = found.mask(2)
    iou = (found_mask & masks[2]).sum() / (found_mask | masks[2]).sum()
    assert iou >= 0.9  # smoothing may round the square's corners
    assert given.groups("image").tolist() == list("aabb")
    assert found.groups("image").tolist() == ["crop0", "crop1", "crop2", "crop3"]
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        CellSet.from_crops(np.zeros((2, 2, 2, 8, 8)))


def test_concat_refuses_different_channels(two_objects):
    image, labels = two_objects
    a = CellSet.from_labels(image, labels, channels=["DNA", "PH3"])
    b = CellSet.from_labels(image, labels)
    with pytest.raises(ValueError, match="cannot concatenate"):
        CellSet.concat([a, b])
    with pytest.raises(TypeError, match="CellSet"):
        CellSet.concat([a, image])


def test_crop_and_mask_take_negative_indices_as_sequences_do():
    """crop(-2) gave cell 1's pixels, crop(-1) an empty array and mask(-1) a reshape error:
    the shape wrapped a negative index, the pixel slice did not."""
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 8, 8), bool)
    for i in range(3):
        masks[i, : i + 2, : i + 3] = True  # a mask of its own for each cell
    cells = CellSet.from_crops(rng.random((3, 1, 8, 8)), masks)
    for i in (-1, -2, -3):
        np.testing.assert_array_equal(cells.crop(i), cells.crop(3 + i))
        np.testing.assert_array_equal(cells.mask(i), cells.mask(3 + i))
    with pytest.raises(IndexError, match="cell 3 is out of range for a CellSet of 3 cells"):
        cells.crop(3)
    with pytest.raises(IndexError, match="cell -4"):
        cells.mask(-4)
    with pytest.raises(TypeError, match="cell index must be an integer"):
        cells.crop(1.0)


def test_boxes_of_another_shape_are_refused_not_reshaped():
    """A (4, N) array, boxes one per column, was reshaped into other boxes; (2, 6) became
    three cells."""
    image = np.zeros((60, 60))
    np.testing.assert_array_equal(
        CellSet.from_boxes(image, [5, 10, 20, 30]).metadata["Metadata_BoundingBox_MinX"], [5])
    for boxes in (np.array([[5, 30], [10, 40], [20, 45], [30, 55]]), np.ones((2, 6)),
                  np.ones((2, 3)), np.ones((1, 2, 4))):
        with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\)"):
            CellSet.from_boxes(image, boxes)


def test_finite_values_beyond_float32_are_named_as_such():
    """Finite float64 values of 1e302 were reported as 'NaN or infinite pixels'."""
    image = np.zeros((16, 16))
    image[2:6, 2:6] = 1e302
    with pytest.raises(ValueError, match="values up to 1e\\+302, beyond float32's range"):
        CellSet.from_crops(image[None, None])
    image[0, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite pixel"):
        CellSet.from_crops(image[None, None])


def test_parameters_that_made_duplicate_or_no_columns_are_refused():
    """Intensity(channels=["A", "A"]) gave duplicate columns, channels=[] none, channels=0 a
    bare TypeError; families listed twice doubled the table; image ids of the wrong length
    and planes of different shapes got pandas' and numpy's messages; sigma=nan segmented."""
    from featcell import CellFeatures, Intensity, segment

    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15], labels[20:34, 18:30] = 1, 2
    image = np.random.default_rng(0).random((40, 40, 2))
    cells = CellSet.from_labels(image, labels, channels=["A", "B"], image_id="x")
    for channels in (["A", "A"], [], 0):
        with pytest.raises(ValueError, match="expected None or a list of distinct channel"):
            Intensity(channels=channels).fit(cells)
    assert Intensity(channels=np.array(["B"])).fit(cells).channels_ == ("B",)
    with pytest.raises(ValueError, match="expected None or a list of distinct families"):
        CellFeatures(families=["morphology"] * 2).fit(cells)
    with pytest.raises(ValueError, match=r"image_id has shape \(2,\); expected one id, or one "
                                         r"per crop \(3\)"):
        CellSet.from_crops(np.ones((3, 8, 8)), image_id=["a", "b"])
    with pytest.raises(ValueError, match="list of planes of different shapes"):
        CellSet.from_labels([np.ones((40, 40)), np.ones((20, 20))], labels)
    with pytest.raises(ValueError, match="sigma=nan"):
        segment(np.pad(np.ones((10, 10)), 10), sigma=np.nan)
