import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import io as skio

from featcell import read_cells, read_image, read_labels, read_voc
from featcell.io import find_label_file, iter_cells, list_images


@pytest.fixture
def folder(tmp_path):
    """Three TIFF images with matching Cellpose-style *_masks label files."""
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for k in range(3):
        labels = np.zeros((30, 30), np.uint16)
        labels[3:9, 3:9] = 1
        labels[15:25, 12:20] = 4
        if k == 2:
            labels[20:28, 2:6] = 9
        image = np.where(labels > 0, 3000, 100).astype(np.uint16)
        tifffile.imwrite(tmp_path / "img" / f"field{k}.tif", np.stack([image, image // 2]))
        tifffile.imwrite(tmp_path / "lab" / f"field{k}_masks.tif", labels)
    return tmp_path


def test_read_cells_from_folder_in_one_call(folder):
    cells = read_cells(folder / "img", folder / "lab", channels=["DNA", "Actin"])
    assert len(cells) == 7
    assert cells.channel_names == ("DNA", "Actin")
    assert cells.groups("image").tolist() == ["field0.tif"] * 2 + ["field1.tif"] * 2 + [
        "field2.tif"] * 3
    np.testing.assert_allclose(cells.crop(0).max(axis=(1, 2)), [3000 / 65535, 1500 / 65535],
                               rtol=1e-6)


def test_iter_cells_streams_one_image_at_a_time(folder):
    parts = list(iter_cells(folder / "img" / "*.tif", folder / "lab"))
    assert [len(p) for p in parts] == [2, 2, 3]


def test_metadata_table_is_copied_to_cells(folder):
    meta = pd.DataFrame({"Well": ["A01", "A02", "B01"]},
                        index=["field0.tif", "field1.tif", "field2.tif"])
    cells = read_cells(folder / "img", folder / "lab", metadata=meta)
    assert cells.groups("Well").tolist() == ["A01"] * 2 + ["A02"] * 2 + ["B01"] * 3


def test_missing_label_file_names_the_image(folder):
    (folder / "lab" / "field1_masks.tif").unlink()
    with pytest.raises(FileNotFoundError, match="field1.tif"):
        read_cells(folder / "img", folder / "lab")


def test_read_image_png_rgba_and_tiff_pages(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 90
    rgba[..., 3] = 255
    skio.imsave(tmp_path / "a.png", rgba, check_contrast=False)
    assert read_image(tmp_path / "a.png").shape == (10, 12, 3)
    assert read_image(tmp_path / "a.png", as_gray=True).shape == (10, 12)
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((3, 10, 12), np.uint16),
                     photometric="minisblack")  # three grey pages
    assert read_image(tmp_path / "s.tif").shape == (10, 12, 3)


def test_read_labels_converts_colour_coded_labels(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[1:3, 1:3] = [255, 0, 0]
    rgb[5:7, 5:7] = [0, 255, 0]
    skio.imsave(tmp_path / "l.png", rgb, check_contrast=False)
    labels = read_labels(tmp_path / "l.png")
    assert labels.dtype == np.int32 and sorted(np.unique(labels)) == [0, 1, 2]
    assert (labels[1:3, 1:3] > 0).all() and labels[0, 0] == 0


def test_voc_boxes_become_cells_in_file_order(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "ann").mkdir()
    image = np.random.default_rng(0).normal(30, 4, (40, 40))
    image[5:15, 5:15] += 170
    image[25:33, 20:30] += 170
    image = image.clip(0, 255).astype(np.uint8)
    skio.imsave(tmp_path / "img" / "x.png", image, check_contrast=False)
    objects = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
        f"<ymax>{d}</ymax></bndbox></object>"
        for n, a, b, c, d in [("Dead Cell", 19, 23, 32, 35), ("Living Cell", 4, 4, 17, 17)]
    )
    (tmp_path / "ann" / "x.xml").write_text(f"<annotation><filename>x.png</filename>{objects}"
                                            "</annotation>")
    boxes, names, filename = read_voc(tmp_path / "ann" / "x.xml")
    np.testing.assert_array_equal(boxes[0], [18, 22, 32, 35])
    assert names == ["Dead Cell", "Living Cell"] and filename == "x.png"
    cells = read_cells(tmp_path / "img", tmp_path / "ann")
    assert cells.groups("Class").tolist() == ["Dead Cell", "Living Cell"]
    np.testing.assert_allclose([cells.mask(i).sum() for i in range(2)], [80, 100], atol=3)
    # a per-image Class (treated / control) was silently replaced by the boxes' names
    with pytest.raises(ValueError, match="the metadata's 'Class' would be replaced"):
        read_cells(tmp_path / "img", tmp_path / "ann", metadata={"Class": "treated"})


@pytest.mark.parametrize(
    "content", ["not xml at all", "<annotation><object><name>a</name></object></annotation>"]
)
def test_bad_voc_is_a_value_error(tmp_path, content):
    (tmp_path / "bad.xml").write_text(content)
    with pytest.raises(ValueError, match="bad.xml"):
        read_voc(tmp_path / "bad.xml")


def test_corrupt_image_is_a_value_error_naming_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        read_image(tmp_path / "nope.tif")


def test_list_images_and_label_matching(folder):
    files = list_images(folder / "img")
    assert [f.name for f in files] == ["field0.tif", "field1.tif", "field2.tif"]
    assert find_label_file(files[0], folder / "lab").name == "field0_masks.tif"
    with pytest.raises(FileNotFoundError, match="no such"):
        list_images(folder / "missing")


def test_real_coelho_folder(shared_data):
    root = shared_data / "cell_line" / "coelho2009"
    files = list_images(root / "images")[:3]
    cells = read_cells(files, root / "labels", channels=["DNA"])
    assert cells.metadata["Metadata_ImageID"].nunique() == 3
    assert 50 < len(cells) < 200
    assert all(cells.mask(i).any() for i in range(len(cells)))


def test_any_decoder_error_is_a_value_error_naming_the_file(tmp_path, monkeypatch):
    """Byte-flipped TIFFs made tifffile raise ZeroDivisionError, AssertionError or a bare
    TypeError, without the file name: one such dots file stopped `featcell train`."""
    import tifffile

    from featcell.io import read_image, read_image_metadata

    path = tmp_path / "flipped.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8))

    def broken(*args, **kwargs):
        raise ZeroDivisionError("integer division or modulo by zero")

    monkeypatch.setattr(tifffile.TiffFile, "__init__", broken)
    for read in (read_image, read_image_metadata):
        with pytest.raises(ValueError, match=r"could not read image .*flipped\.tif.*: "
                                             r"ZeroDivisionError: integer division"):
            read(path)


def test_an_animated_png_is_refused_not_read_as_rows_and_channels(tmp_path):
    """A 3-frame 40 x 60 APNG was read as shape (3, 40, 60): 3 rows, 40 columns and 60
    channels."""
    from PIL import Image

    from featcell.io import read_image

    frames = [Image.fromarray(np.full((40, 60), 50 * k, np.uint8)) for k in range(3)]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match=r"anim\.png.*an animation of 3 frames"):
        read_image(tmp_path / "anim.png")
    frames[0].save(tmp_path / "still.png")
    assert read_image(tmp_path / "still.png").shape == (40, 60)


def test_stacked_label_planes_are_refused_not_read_as_colours(tmp_path):
    """A TIFF of two planes of ids (nuclei over cells) was decoded as colour-coded labels:
    two cells became four objects (rings and nuclei)."""
    cells = np.zeros((32, 32), np.uint16)
    cells[2:14, 2:14], cells[16:30, 16:30] = 1, 2
    nuclei = np.zeros_like(cells)
    nuclei[5:9, 5:9], nuclei[20:25, 20:25] = 1, 2
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([nuclei, cells]),
                     metadata={"axes": "CYX"})
    with pytest.raises(ValueError, match="has 2 planes that differ; expected one plane"):
        read_labels(tmp_path / "stack.tif")
    colours = np.zeros((32, 32, 3), np.uint8)
    colours[2:14, 2:14] = (255, 0, 0)
    colours[16:30, 16:30] = (0, 255, 0)
    skio.imsave(tmp_path / "colours.png", colours, check_contrast=False)
    assert np.unique(read_labels(tmp_path / "colours.png")).tolist() == [0, 1, 2]
