"""Files as microscopes and their software write them: OME-TIFF, ImageJ hyperstacks, bioio formats.

Every file is written here by tifffile (or bioio's writers) with the metadata those tools
store, and read back through featcell's public readers.
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile

from featcell import read_cells, read_image, read_image_metadata
from featcell.io import iter_cells, list_images

RNG = np.random.default_rng(0)


def _labels(shape=(32, 40)):
    labels = np.zeros(shape, np.uint16)
    labels[4:12, 5:15] = 1
    labels[18:28, 20:34] = 2
    return labels


def _stack(shape):
    return RNG.integers(0, 4000, shape, dtype=np.uint16)


def _folder(tmp_path, name, data, **write):
    (tmp_path / "img").mkdir(exist_ok=True)
    (tmp_path / "lab").mkdir(exist_ok=True)
    path = tmp_path / "img" / name
    tifffile.imwrite(path, data, **write)
    stem = name.split(".")[0]
    tifffile.imwrite(tmp_path / "lab" / f"{stem}.tif", _labels(data.shape[-2:]))
    return path


# ------------------------------------------------------------------ OME-TIFF
def test_ome_channel_names_are_made_valid_and_reported(tmp_path):
    data = _stack((3, 32, 40))
    path = _folder(tmp_path, "a.ome.tif", data, metadata={
        "axes": "CYX", "Channel": {"Name": ["DAPI-405", "GFP", "Cy 5"]},
        "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.7})
    info = read_image_metadata(path)
    assert info["channel_names"] == ["DAPI-405", "GFP", "Cy 5"]
    assert info["pixel_size"] == pytest.approx((0.65, 0.7))
    np.testing.assert_array_equal(read_image(path), np.moveaxis(data, 0, -1))
    with pytest.warns(UserWarning, match=r"'DAPI-405' -> 'DAPI405', 'Cy 5' -> 'Cy5'"):
        cells = read_cells(tmp_path / "img", tmp_path / "lab")
    assert cells.channel_names == ("DAPI405", "GFP", "Cy5")
    meta = cells.metadata
    assert json.loads(meta["Metadata_ChannelNames"].iloc[0]) == {"DAPI405": "DAPI-405",
                                                                  "Cy5": "Cy 5"}
    assert meta["Metadata_PixelSizeX"].tolist() == [0.65, 0.65]
    assert meta["Metadata_PixelSizeY"].tolist() == [0.7, 0.7]
    # channel GFP of the first cell's crop (rows 0:20, columns 0:23 with the margin of 8)
    np.testing.assert_allclose(cells.crop(0)[1], data[1, :20, :23] / 65535, rtol=1e-6)


def test_valid_channel_names_are_kept_without_warning(tmp_path):
    _folder(tmp_path, "a.ome.tif", _stack((2, 32, 40)),
            metadata={"axes": "CYX", "Channel": {"Name": ["DNA", "Actin"]}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cells = read_cells(tmp_path / "img", tmp_path / "lab")
    assert cells.channel_names == ("DNA", "Actin")
    assert "Metadata_ChannelNames" not in cells.metadata
    assert "Metadata_PixelSizeX" not in cells.metadata  # the file stores no pixel size


def test_names_given_by_the_caller_win(tmp_path):
    _folder(tmp_path, "a.ome.tif", _stack((2, 32, 40)),
            metadata={"axes": "CYX", "Channel": {"Name": ["DAPI-405", "GFP"]}})
    cells = read_cells(tmp_path / "img", tmp_path / "lab", channels=["DNA", "Marker"])
    assert cells.channel_names == ("DNA", "Marker")


@pytest.mark.parametrize(("names", "expected"), [
    (["405", "405", ""], ("Ch405", "Ch4052", "Ch3")),
    (["Alexa Fluor 488", "µ-tubulin"], ("AlexaFluor488", "tubulin")),
])
def test_awkward_names_become_distinct_valid_names(tmp_path, names, expected):
    _folder(tmp_path, "a.ome.tif", _stack((len(names), 32, 40)),
            metadata={"axes": "CYX", "Channel": {"Name": names}})
    with pytest.warns(UserWarning, match="renamed"):
        cells = read_cells(tmp_path / "img", tmp_path / "lab")
    assert cells.channel_names == expected


def test_pixel_size_units_are_converted_to_micrometres(tmp_path):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, _stack((32, 40)), metadata={
        "axes": "YX", "PhysicalSizeX": 650, "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 0.00065, "PhysicalSizeYUnit": "mm"})
    assert read_image_metadata(path)["pixel_size"] == pytest.approx((0.65, 0.65))


def test_ome_rgb_samples_are_channels(tmp_path):
    rgb = RNG.integers(0, 255, (32, 40, 3), dtype=np.uint8)
    path = tmp_path / "rgb.ome.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", metadata={"axes": "YXS"})
    np.testing.assert_array_equal(read_image(path), rgb)


# ------------------------------------------------------------------ Z and T
def test_z_stack_is_refused_naming_z(tmp_path):
    path = tmp_path / "z.ome.tif"
    tifffile.imwrite(path, _stack((5, 2, 32, 40)), metadata={"axes": "ZCYX"})
    with pytest.raises(ValueError, match=r"z-stack: its Z axis has 5 planes .*axes 'ZCYX'"):
        read_image(path)
    with pytest.raises(ValueError, match="z_project"):
        read_cells([path], None)


@pytest.mark.parametrize("how", ["max", "mean"])
def test_z_projection(tmp_path, how):
    data = _stack((2, 5, 32, 40))  # C, Z, Y, X
    path = _folder(tmp_path, "z.ome.tif", data, metadata={"axes": "CZYX"})
    image = read_image(path, z_project=how)
    expected = data.max(axis=1) if how == "max" else np.rint(data.mean(axis=1)).astype(np.uint16)
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, np.moveaxis(expected, 0, -1))
    cells = read_cells(tmp_path / "img", tmp_path / "lab", z_project=how)
    assert len(cells) == 2 and cells.channel_names == ("Ch1", "Ch2")


def test_single_plane_z_and_t_axes_are_dropped(tmp_path):
    data = _stack((1, 3, 1, 32, 40))
    path = tmp_path / "tczyx.ome.tif"
    tifffile.imwrite(path, data, metadata={"axes": "TCZYX"})
    np.testing.assert_array_equal(read_image(path), np.moveaxis(data[0, :, 0], 0, -1))


def test_time_series_is_refused_naming_t_or_one_timepoint_taken(tmp_path):
    data = _stack((4, 3, 32, 40))
    path = tmp_path / "t.ome.tif"
    tifffile.imwrite(path, data, metadata={"axes": "TCYX"})
    with pytest.raises(ValueError, match=r"time axis T of 4 time points"):
        read_image(path)
    np.testing.assert_array_equal(read_image(path, timepoint=2), np.moveaxis(data[2], 0, -1))
    with pytest.raises(ValueError, match="timepoint=4 but .* has 4 time points"):
        read_image(path, timepoint=4)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"z_project": "median"}, ValueError, "z_project must be one of"),
    ({"timepoint": -1}, ValueError, "timepoint must be an int >= 0"),
    ({"channel_axis": 1.0}, TypeError, "channel_axis must be an int"),
    ({"channel_axis": 3}, ValueError, "channel_axis=3 is out of range"),
])
def test_bad_reading_arguments(tmp_path, kwargs, error, match):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, _stack((3, 32, 40)), photometric="minisblack")
    with pytest.raises(error, match=match):
        read_image(path, **kwargs)


# ------------------------------------------------------------------ many channels, no metadata
def test_ten_channels_are_read(tmp_path):
    data = _stack((10, 32, 40))
    ome = _folder(tmp_path, "ten.ome.tif", data, metadata={"axes": "CYX"})
    plain = tmp_path / "ten.tif"  # tifffile's own shape metadata, axes unknown
    tifffile.imwrite(plain, data)
    pages = tmp_path / "pages.tif"  # ten plain pages, no metadata at all
    with tifffile.TiffWriter(pages) as tif:
        for plane in data:
            tif.write(plane, metadata=None)
    for path in (ome, plain, pages):
        np.testing.assert_array_equal(read_image(path), np.moveaxis(data, 0, -1))
    cells = read_cells([ome], tmp_path / "lab")
    assert len(cells) == 2 and len(cells.channel_names) == 10


def test_channels_last_array_saved_without_axes(tmp_path):
    data = _stack((32, 40, 5))
    path = tmp_path / "hwc.tif"
    tifffile.imwrite(path, data)
    np.testing.assert_array_equal(read_image(path), data)
    np.testing.assert_array_equal(read_image(path, channel_axis=-1), data)
    np.testing.assert_array_equal(read_image(path, channel_axis=0), np.moveaxis(data, 0, -1))


def test_two_unknown_axes_are_refused(tmp_path):
    path = tmp_path / "4d.tif"
    tifffile.imwrite(path, _stack((2, 3, 32, 40)), photometric="minisblack")
    with pytest.raises(ValueError, match="pass channel_axis"):
        read_image(path)


# ------------------------------------------------------------------ ImageJ
def test_imagej_hyperstack(tmp_path):
    data = _stack((3, 4, 2, 32, 40))  # T, Z, C, Y, X as ImageJ stores them
    labels = ["DNA", "Tubulin"] * 12
    path = _folder(tmp_path, "hyper.tif", data, imagej=True, resolution=(1 / 0.325, 1 / 0.325),
                   metadata={"axes": "TZCYX", "Labels": labels, "unit": "micron"})
    info = read_image_metadata(path)
    assert info["axes"] == "TZCYX" and info["channel_names"] == ["DNA", "Tubulin"]
    assert info["pixel_size"] == pytest.approx((0.325, 0.325), rel=1e-6)
    with pytest.raises(ValueError, match="time axis T of 3"):
        read_image(path, z_project="max")
    image = read_image(path, timepoint=1, z_project="max")
    np.testing.assert_array_equal(image, np.moveaxis(data[1].max(axis=0), 0, -1))
    cells = read_cells(tmp_path / "img", tmp_path / "lab", timepoint=1, z_project="max")
    assert cells.channel_names == ("DNA", "Tubulin")
    assert cells.metadata["Metadata_PixelSizeX"].iloc[0] == pytest.approx(0.325, rel=1e-6)


def test_imagej_channels_saved_as_slices(tmp_path):
    data = _stack((3, 32, 40))
    path = _folder(tmp_path, "slices.tif", data, imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(ValueError, match="Z axis has 3 planes.*or channel_axis"):
        read_image(path)
    np.testing.assert_array_equal(read_image(path, channel_axis=0), np.moveaxis(data, 0, -1))
    parts = list(iter_cells(tmp_path / "img", tmp_path / "lab", channel_axis=0))
    assert parts[0].channel_names == ("Ch1", "Ch2", "Ch3")


# ------------------------------------------------------------------ bioio (featcell[formats])
def test_vendor_formats_without_bioio_name_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "plate.czi"
    path.write_bytes(b"ZISRAWFILE")
    monkeypatch.setitem(sys.modules, "bioio", None)  # as if bioio were not installed
    with pytest.raises(ImportError, match=r"pip install 'featcell\[formats\]'"):
        read_image(path)
    assert list_images(tmp_path) == [path]


def test_ome_zarr_folder_is_one_image(tmp_path):
    (tmp_path / "a.ome.zarr").mkdir()
    (tmp_path / "b.tif").write_bytes(b"")
    assert list_images(tmp_path) == [tmp_path / "a.ome.zarr", tmp_path / "b.tif"]
    assert list_images(tmp_path / "a.ome.zarr") == [tmp_path / "a.ome.zarr"]


def test_bioio_ome_zarr_round_trip(tmp_path):
    pytest.importorskip("bioio")
    writers = pytest.importorskip("bioio_ome_zarr.writers")
    data = _stack((1, 2, 3, 32, 40))  # T, C, Z, Y, X
    path = tmp_path / "img" / "plate.ome.zarr"
    path.parent.mkdir()
    writer = writers.OMEZarrWriter(
        store=str(path), level_shapes=[data.shape], dtype=data.dtype,
        axes_names=["t", "c", "z", "y", "x"],
        axes_types=["time", "channel", "space", "space", "space"],
        axes_units=[None, None, "micrometer", "micrometer", "micrometer"],
        physical_pixel_size=[1.0, 1.0, 2.0, 0.5, 0.5],
        channels=[writers.Channel(label="DAPI-405", color="0000FF"),
                  writers.Channel(label="GFP", color="00FF00")],
    )
    writer.write_full_volume(data)
    info = read_image_metadata(path)
    assert info["channel_names"] == ["DAPI-405", "GFP"]
    with pytest.raises(ValueError, match="Z axis has 3 planes"):
        read_image(path)
    image = read_image(path, z_project="max")
    np.testing.assert_array_equal(image, np.moveaxis(data[0].max(axis=1), 0, -1))
    (tmp_path / "lab").mkdir()
    tifffile.imwrite(tmp_path / "lab" / "plate_masks.tif", _labels())
    with pytest.warns(UserWarning, match="'DAPI-405' -> 'DAPI405'"):
        cells = read_cells(tmp_path / "img", tmp_path / "lab", z_project="max")
    assert cells.channel_names == ("DAPI405", "GFP") and len(cells) == 2
    assert cells.metadata["Metadata_PixelSizeX"].iloc[0] == pytest.approx(0.5)


def test_a_file_of_several_scenes_is_read_with_a_warning_naming_them(tmp_path, capsys):
    """Multi-position OME-TIFFs (one series per position): the first is read, and both
    read_image and the command line say so (it was silent)."""
    from featcell.cli import main
    from featcell.io import read_image

    images = tmp_path / "images"
    images.mkdir()
    def scene(value):  # one bright cell
        plane = np.full((32, 32), 5, np.uint8)
        plane[8:20, 8:20] = value
        return plane

    with tifffile.TiffWriter(images / "multi.ome.tif", ome=True) as tif:
        for value in (100, 150, 200):
            tif.write(scene(value), metadata={"axes": "YX"})
    tifffile.imwrite(images / "single.tif", scene(120))
    from featcell.io import FirstSceneWarning

    with pytest.warns(FirstSceneWarning, match="holds 3 scenes"):
        assert read_image(images / "multi.ome.tif").max() == 100
    with pytest.warns(FirstSceneWarning, match="multi.ome.tif' holds 3 scenes"):
        read_cells(images)
    code = main(["extract", str(images), "--families", "intensity", "-o",
                 str(tmp_path / "f.csv")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 files hold several scenes (series), e.g. multi.ome.tif" in out + err
    # train from images reads the cells in this process: the same line
    pd.DataFrame({"image": ["multi.ome.tif", "single.tif"], "Class": ["a", "b"]}).to_csv(
        tmp_path / "meta.csv", index=False)
    main(["train", str(images), "--metadata", str(tmp_path / "meta.csv"), "--target", "Class",
          "--families", "intensity", "-o", str(tmp_path / "m.featcell")])
    out, err = capsys.readouterr()
    assert "1 files hold several scenes (series), e.g. multi.ome.tif" in out + err
