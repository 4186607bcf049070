"""Point annotations (featcell.points): every reader format, density targets, bad files."""

import numpy as np
import pytest
import tifffile
from numpy.testing import assert_allclose
from skimage.io import imsave

from featcell.points import density_target, read_points

POINTS = np.array([[3.0, 4.0], [10.0, 2.0], [7.0, 15.0]])


def _dots(shape=(20, 24), points=POINTS, colour=(255, 0, 0)):
    image = np.zeros((*shape, 3), np.uint8)
    for r, c in points.astype(int):
        image[r, c] = colour
    return image


def _sorted(points):
    points = np.asarray(points)
    return points[np.lexsort((points[:, 1], points[:, 0]))]


# --------------------------------------------------------------------------- readers


def test_dot_image_png(tmp_path):
    imsave(tmp_path / "a.png", _dots(), check_contrast=False)
    assert_allclose(_sorted(read_points(tmp_path / "a.png")), _sorted(POINTS))


def test_dot_image_white_background(tmp_path):
    image = np.full((20, 24), 255, np.uint8)
    image[3, 4] = image[10, 2] = image[7, 15] = 0
    tifffile.imwrite(tmp_path / "a.tif", image)
    assert_allclose(_sorted(read_points(tmp_path / "a.tif")), _sorted(POINTS))


def test_label_image_centroids(tmp_path):
    labels = np.zeros((30, 30), np.uint16)
    labels[2:5, 2:7] = 1  # centre (3, 4)
    labels[10:21, 20:23] = 7  # centre (15, 21)
    tifffile.imwrite(tmp_path / "l.tif", labels)
    assert_allclose(_sorted(read_points(tmp_path / "l.tif")), [[3, 4], [15, 21]])
    # the same file read as dots: every labelled pixel
    assert len(read_points(tmp_path / "l.tif", kind="dots")) == 15 + 33


def test_napari_csv(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("index,axis-0,axis-1\n0,3.0,4.0\n1,10.0,2.0\n2,7.0,15.0\n")
    assert_allclose(read_points(path), POINTS)


def test_napari_csv_3d_takes_last_two_axes(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("index,axis-0,axis-1,axis-2\n0,5,3.0,4.0\n1,5,10.0,2.0\n")
    assert_allclose(read_points(path), POINTS[:2])


def test_fiji_multipoint_csv_pixel_centres(tmp_path):
    path = tmp_path / "fiji.csv"
    # ImageJ's Measure gives X (column), Y (row) of the pixel centre (i + 0.5)
    path.write_text(" ,X,Y,Slice\n1,4.5,3.5,1\n2,2.5,10.5,1\n3,15.5,7.5,1\n")
    assert_allclose(read_points(path), POINTS)


def test_plain_xy_and_row_col(tmp_path):
    (tmp_path / "xy.csv").write_text("x,y\n4,3\n2,10\n15,7\n")
    (tmp_path / "rc.tsv").write_text("row\tcol\n3\t4\n10\t2\n7\t15\n")
    assert_allclose(read_points(tmp_path / "xy.csv"), POINTS)
    assert_allclose(read_points(tmp_path / "rc.tsv"), POINTS)


def test_table_with_image_column(tmp_path):
    path = tmp_path / "all.csv"
    path.write_text("image,x,y\na.png,4,3\nb.png,2,10\na.png,15,7\n")
    table = read_points(path)
    assert set(table) == {"a.png", "b.png"}
    assert_allclose(table["a.png"], POINTS[[0, 2]])
    # aligned with images; an image without rows has no objects
    for name in ("a.png", "b.png", "c.png"):
        imsave(tmp_path / name, np.zeros((20, 24), np.uint8), check_contrast=False)
    got = read_points(path, images=[tmp_path / "b.png", tmp_path / "a.png", tmp_path / "c.png"])
    assert [len(p) for p in got] == [1, 2, 0]


def test_voc_box_centres(tmp_path):
    path = tmp_path / "a.xml"
    # 1-based inclusive pixels 1..5 (rows) and 3..7 (cols): 0-based centres row 2, col 4
    path.write_text(
        "<annotation><object><name>cell</name><bndbox><xmin>3</xmin><ymin>1</ymin>"
        "<xmax>7</xmax><ymax>5</ymax></bndbox></object></annotation>"
    )
    assert_allclose(read_points(path), [[2.0, 4.0]])


def test_folder_matched_by_name(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "dots").mkdir()
    (tmp_path / "csv").mkdir()
    images = []
    for i, k in enumerate((1, 2, 3)):
        path = tmp_path / "img" / f"{i + 1:03d}cell.png"
        imsave(path, np.zeros((20, 24), np.uint8), check_contrast=False)
        images.append(path)
        imsave(tmp_path / "dots" / f"{i + 1:03d}dots.png", _dots(points=POINTS[:k]),
               check_contrast=False)
        np.savetxt(tmp_path / "csv" / f"{i + 1:03d}cell_points.csv", POINTS[:k, ::-1],
                   delimiter=",", header="x,y", comments="")
    assert [len(p) for p in read_points(tmp_path / "dots", images=images)] == [1, 2, 3]
    got = read_points(tmp_path / "csv", images=images)
    assert_allclose(got[2], POINTS)
    assert sorted(read_points(tmp_path / "dots")) == ["001dots.png", "002dots.png", "003dots.png"]


def test_folder_missing_file_names_image(tmp_path):
    (tmp_path / "dots").mkdir()
    imsave(tmp_path / "dots" / "x_dots.png", _dots(), check_contrast=False)
    image = tmp_path / "other.png"
    imsave(image, np.zeros((20, 24), np.uint8), check_contrast=False)
    with pytest.raises(FileNotFoundError, match="other.png"):
        read_points(tmp_path / "dots", images=[image])


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n", "expected positions"),
        ("x,y\n1,nan\n", "NaN"),
        ("x,y\n1,oops\n", "non-numeric"),
        ("x,y\n1,-5\n", "no image holds"),
        ("x,y\n1,1e300\n", "no image holds"),
        ("x,y\n1\n", "fields"),
        ("", "empty"),
    ],
)
def test_bad_table_names_file(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_points(path)
    assert "bad.csv" in str(info.value)


def test_binary_garbage_names_file(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(b"\xff\xfe\x00\x81" * 100)
    with pytest.raises(ValueError, match="garbage.csv"):
        read_points(path)
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        read_points(bad_png)


def test_the_point_cap_holds_while_reading(tmp_path, monkeypatch):
    """Blank lines are skipped, not counted; a table or dot image over the cap is refused
    (the cap was checked after every row, or every dot, had been built)."""
    from featcell import points

    monkeypatch.setattr(points, "_MAX_POINTS", 4)
    path = tmp_path / "p.csv"
    path.write_text("x,y\n" + "\n\n".join(f"{i},{i}" for i in range(4)) + "\n" * 1000)
    assert read_points(path).shape == (4, 2)
    path.write_text("x,y\n" + "\n".join(f"{i},{i}" for i in range(5)))
    with pytest.raises(ValueError, match="holds more than 4 rows"):
        read_points(path)
    board = np.zeros((8, 8), np.uint8)
    board[::2, ::2] = 255  # 16 dots
    imsave(tmp_path / "dots.png", board, check_contrast=False)
    with pytest.raises(ValueError, match="has 16 dot pixels; at most 4"):
        read_points(tmp_path / "dots.png")


def test_points_outside_image_refused(tmp_path):
    (tmp_path / "p").mkdir()
    image = tmp_path / "a.png"
    imsave(image, np.zeros((20, 24), np.uint8), check_contrast=False)
    (tmp_path / "p" / "a.csv").write_text("row,col\n3,4\n25,2\n")
    with pytest.raises(ValueError, match=r"a\.csv.*outside the image of shape \(20, 24\)"):
        read_points(tmp_path / "p", images=[image])
    with pytest.raises(ValueError, match="outside"):
        read_points(tmp_path / "p" / "a.csv", shape=(20, 24))


def test_bad_arguments():
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        read_points("nowhere.csv")
    with pytest.raises(TypeError, match="path"):
        read_points(3)
    with pytest.raises(ValueError, match="kind"):
        read_points(".", kind="json")


# --------------------------------------------------------------------------- density target


@pytest.mark.parametrize("sigma", [0, 0.5, 1.0, 3.0, 8.0, 25.0])
def test_density_sums_to_count_even_at_borders(sigma):
    rng = np.random.default_rng(0)
    points = np.vstack([rng.uniform(-0.5, 39.49, size=(30, 2)),
                        [[0, 0], [39, 0], [0, 49], [39, 49]]])
    points[:, 1] *= 50 / 40
    points = np.clip(points, -0.5, [39.49, 49.49])
    density = density_target(points, (40, 50), sigma)
    assert density.shape == (40, 50)
    assert (density >= 0).all()
    assert_allclose(density.sum(), len(points), rtol=1e-10)


def test_density_is_a_gaussian_at_the_point():
    density = density_target([[20, 30]], (41, 61), 2.0)
    assert np.unravel_index(density.argmax(), density.shape) == (20, 30)
    # symmetric, and its second moment is sigma ** 2
    rows = np.arange(41)[:, None] - 20
    assert_allclose((density * rows**2).sum(), 4.0, rtol=1e-3)


def test_density_empty_and_bad_input():
    assert density_target(np.zeros((0, 2)), (5, 5), 1.0).sum() == 0
    with pytest.raises(ValueError, match="outside"):
        density_target([[5, 0]], (5, 5), 1.0)
    for sigma in (-1, float("nan"), float("inf"), 1e9):  # 1e9: a 60 GiB kernel before
        with pytest.raises(ValueError, match="sigma"):
            density_target([[1, 1]], (5, 5), sigma)
    with pytest.raises(ValueError, match=r"\(k, 2\)"):
        density_target([[1, 1, 1]], (5, 5), 1)


def test_vgg_dots_match_counts(shared_data):
    import pandas as pd

    root = shared_data / "counting" / "vgg_cells"
    table = pd.read_csv(root / "counts.csv").head(10)
    images = [root / "images" / name for name in table["image"]]
    points = read_points(root / "dots", images=images)
    assert [len(p) for p in points] == table["count"].tolist()
