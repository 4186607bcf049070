import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from numpy.testing import assert_allclose, assert_array_equal
from scipy import ndimage as ndi
from skimage.morphology import disk
from skimage.segmentation import relabel_sequential
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from featcell import CellSet
from featcell.features import _base, granularity
from featcell.features._kernels.lbp import uniform_lbp
from featcell.features.haralick import HARALICK_FEATURES, quantize
from featcell.features.lbp import _taps
from featcell.features.texture import Texture

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# one 12x12 square cell (id 1) in a 32x32 field
SQUARE = np.zeros((32, 32), dtype=np.int32)
SQUARE[10:22, 10:22] = 1


def _cells(image, labels=SQUARE, **kwargs):
    return CellSet.from_labels(image, labels, channels=["DNA"], **kwargs)


def _row(image, labels=SQUARE, **params):
    table = Texture(**params).set_output(transform="pandas")
    return table.fit_transform(_cells(image, labels)).iloc[0]


def _field(seed=0, shape=(72, 72)):
    """Four textured blobs (one cut by the border) on a dim noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    labels[(yy - 18) ** 2 + (xx - 18) ** 2 <= 81] = 1
    labels[((yy - 50) / 10.0) ** 2 + ((xx - 46) / 7.0) ** 2 <= 1] = 2
    labels[:8, 40:64] = 3  # touches the top border
    labels[30:44, 6:22] = 4
    image = rng.random(shape) * 0.15
    inside = labels > 0
    image[inside] += 0.3 + 0.5 * rng.random(int(inside.sum()))
    return image.astype(np.float32), labels


def _grid_cells(side=200, step=7):
    """Cells of 5 x 5 pixels every ``step`` pixels on a noisy field (784 at the defaults)."""
    rng = np.random.default_rng(1)
    labels = np.zeros((side, side), dtype=np.int32)
    k = 0
    for y in range(2, side - 6, step):
        for x in range(2, side - 6, step):
            k += 1
            labels[y : y + 5, x : x + 5] = k
    image = (rng.random((side, side)) * 0.9 + 0.05).astype(np.float32)
    return _cells(image, labels, margin=2)


# ---------------------------------------------------------------------- Haralick
def test_constant_cell_has_the_textbook_values():
    row = _row(np.full((32, 32), 0.5), features="haralick", scales=[1])
    for a in range(4):
        value = {f: row[f"Texture_{f}_DNA_1_{a:02d}_256"] for f in HARALICK_FEATURES}
        assert value["Contrast"] == 0.0
        assert value["AngularSecondMoment"] == 1.0
        assert value["Entropy"] == 0.0
        assert value["Correlation"] == 1.0  # mahotas' convention for zero variance
        assert value["Variance"] == 0.0
        assert value["InverseDifferenceMoment"] == 1.0
        assert value["SumAverage"] == 2 * 128  # both levels are rint(0.5 * 255)
        assert value["InfoMeas1"] == 0.0 and value["InfoMeas2"] == 0.0
        # p_{|x-y|} = [1, 0, ..., 0] over 129 entries (mahotas' matrix is max level + 1)
        assert_allclose(value["DifferenceVariance"], 1 / 129 - 1 / 129**2)


def test_checkerboard_contrast_at_distance_one():
    yy, xx = np.mgrid[:32, :32]
    image = np.where((yy + xx) % 2, 0.6, 0.2)  # levels 153 and 51
    row = _row(image, features="haralick", scales=[1])
    for a in (0, 2):  # horizontal and vertical neighbours always differ
        assert_allclose(row[f"Texture_Contrast_DNA_1_{a:02d}_256"], (153 - 51) ** 2)
        assert_allclose(row[f"Texture_AngularSecondMoment_DNA_1_{a:02d}_256"], 0.5)
        assert_allclose(row[f"Texture_Entropy_DNA_1_{a:02d}_256"], 1.0)
        assert_allclose(row[f"Texture_Correlation_DNA_1_{a:02d}_256"], -1.0)
    for a in (1, 3):  # diagonal neighbours never do
        assert row[f"Texture_Contrast_DNA_1_{a:02d}_256"] == 0.0


def test_quantisation_follows_cellprofiler():
    values = np.array([0.0, 0.5, 1.0, 1.7, -0.2], np.float32)
    assert_array_equal(quantize(values), [0, 128, 255, 255, 0])
    assert_array_equal(quantize(values, 8), [0, 3, 7, 7, 0])


def test_cells_without_pairs_are_nan_like_cellprofiler():
    labels = np.zeros((32, 32), dtype=np.int32)
    labels[5, 5] = 1  # one pixel
    labels[15:25, 20] = 2  # one pixel wide: no horizontal pairs
    labels[2:6, 25:29] = 3  # all levels quantised to 0
    image = np.full((32, 32), 0.5, np.float32)
    image[2:6, 25:29] = 0.001
    table = Texture(features="haralick", scales=[1]).fit_transform(_cells(image, labels))
    assert np.isnan(table).all()


def test_names_shapes_and_order():
    model = Texture(scales=(1, 3), gray_levels=8, gabor_angles=2).fit(_cells(*_field()))
    names = list(model.get_feature_names_out())
    haralick = [n for n in names if n.startswith("Texture_") and n.endswith("_8")]
    assert len(haralick) == 2 * 4 * 13
    assert names[0] == "Texture_AngularSecondMoment_DNA_1_00_8"
    assert names[12] == "Texture_InfoMeas2_DNA_1_00_8"
    assert names[13] == "Texture_AngularSecondMoment_DNA_1_01_8"
    assert "Texture_Contrast_DNA_3_03_8" in names
    assert "Texture_Gabor_DNA_3" in names
    assert "Texture_GaborEnergy_DNA_1_01" in names
    assert [n for n in names if n.startswith("Texture_LBP")] == [
        f"Texture_LBP_{b}_DNA_8_1" for b in range(10)
    ]
    assert names[-1] == "Granularity_16_DNA"
    assert model.transform(_cells(*_field())).shape == (4, len(names))


def test_family_and_channel_selection():
    image, labels = _field()
    cells = CellSet.from_labels(np.stack([image, image[::-1]], -1), labels, channels=["DNA", "PH3"])
    model = Texture(features=["lbp", "gabor"], channels="PH3", compartment="Nuclei").fit(cells)
    names = list(model.get_feature_names_out())
    assert names[0] == "Nuclei_Texture_Gabor_PH3_3"
    assert all("_PH3_" in n for n in names) and model.families_ == ("gabor", "lbp")
    full = Texture(features=["lbp", "gabor"]).fit(cells)
    expected = full.set_output(transform="pandas").transform(cells)
    got = model.transform(cells)
    assert_allclose(got, expected[[n.removeprefix("Nuclei_") for n in names]].to_numpy())


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"gray_levels": 1}, "gray_levels"),
        ({"gray_levels": 300}, "gray_levels"),
        ({"scales": (0,)}, "scales"),
        ({"scales": ()}, "scales"),
        ({"scales": (3, 3)}, "scales"),
        ({"scales": (1.5,)}, "scales"),
        ({"gabor_angles": 0}, "gabor_angles"),
        ({"lbp_radius": 0}, "lbp_radius"),
        ({"granularity_subsample_size": -1}, "granularity_subsample_size"),
        ({"features": ["haralick", "fractal"]}, "fractal"),
    ],
)
def test_invalid_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        Texture(**params).fit(_cells(*_field()))


# ---------------------------------------------------------------------- sklearn behaviour
def test_pandas_output_pipeline_and_empty_input():
    image, labels = _field()
    cells = _cells(image, labels)
    table = Texture(scales=[1]).set_output(transform="pandas").fit_transform(cells)
    assert isinstance(table, pd.DataFrame) and table.shape[0] == 4
    assert list(table.columns) == list(Texture(scales=[1]).fit(cells).get_feature_names_out())

    empty = _cells(image, np.zeros_like(labels))
    model = Texture(scales=[1]).fit(cells)
    assert model.transform(empty).shape == (0, len(model.get_feature_names_out()))

    pipe = make_pipeline(
        Texture(features=["haralick", "lbp"], scales=[1]), StandardScaler(), LogisticRegression()
    )
    pipe.fit(cells, [0, 1, 0, 1])
    assert pipe.predict(cells).shape == (4,)


def test_n_jobs_gives_the_same_values():
    cells = _grid_cells()
    assert len(cells) > 512  # more than one chunk of 512 cells
    params = {"features": ["haralick", "lbp", "gabor"], "scales": [1]}
    serial = Texture(**params).fit_transform(cells)
    with parallel_config(backend="threading"):  # same chunking, no process start-up
        parallel = Texture(n_jobs=2, **params).fit_transform(cells)
    assert_array_equal(serial, parallel)


def test_one_pixel_and_border_cells_do_not_crash():
    labels = np.zeros((40, 40), dtype=np.int32)
    labels[20, 20] = 1
    labels[0:6, 0:7] = 2  # corner of the image
    image = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    table = Texture(scales=[1]).set_output(transform="pandas").fit_transform(_cells(image, labels))
    one, corner = table.iloc[0], table.iloc[1]
    assert np.isnan(one.filter(regex=r"_DNA_1_0\d_256$").to_numpy()).all()  # no pixel pairs
    assert one["Texture_Gabor_DNA_1"] == 0.0  # a single centred pixel
    assert_allclose(one.filter(like="Texture_LBP_").sum(), 1.0)
    assert np.isfinite(corner.to_numpy()).all()


# ---------------------------------------------------------------------- Gabor, LBP
def test_gabor_is_zero_on_a_flat_cell_and_ignores_intensity_scaling():
    assert _row(np.full((32, 32), 0.4), features="gabor")["Texture_Gabor_DNA_3"] == 0.0
    image, labels = _field()
    model = Texture(features="gabor", scales=[3, 5])
    base = model.fit_transform(_cells(image, labels))
    scaled = model.fit_transform(_cells(image * 0.5 + 0.2, labels))
    assert_allclose(base, scaled, rtol=1e-6)  # CellProfiler rescales each cell to [0, 1]
    assert (base > 0).all()


def test_gabor_energy_equals_scikit_image_inside_the_margin():
    from skimage.filters import gabor

    image, labels = _field()
    interior = labels.copy()
    interior[interior == 3] = 0  # the border cell sees a different outside
    table = Texture(features="gabor_energy", scales=[3], gabor_angles=4)
    ours = table.fit_transform(_cells(image, interior))
    for a in range(4):
        real, imag = gabor(image.astype(np.float64), 1 / 3, np.pi * a / 4)
        ref = ndi.mean(np.hypot(real, imag), interior, [1, 2, 4])
        assert_allclose(ours[:, a], ref, rtol=1e-9)


def test_lbp_of_a_flat_region_is_the_flat_bin():
    row = _row(np.full((32, 32), 0.3), features="lbp")
    assert row["Texture_LBP_8_DNA_8_1"] == 1.0
    assert row.filter(like="Texture_LBP_").sum() == 1.0


def local_binary_pattern(image, points=8, radius=1.0):
    """The uniform LBP code of every pixel of ``image``, as one crop whose mask is all of it."""
    H, W = image.shape
    rows, cols = np.divmod(np.arange(H * W, dtype=np.int32), np.int32(W))
    crop = (np.zeros(1, np.int64), np.array([[H, W]], np.intp), np.array([0, H * W], np.int64))
    codes = uniform_lbp(image.astype(np.float64).ravel(), *crop, rows, cols, *_taps(points, radius))
    return codes.reshape(H, W)


@pytest.mark.parametrize(("points", "radius"), [(8, 1), (16, 2), (8, 1.5)])
def test_lbp_matches_scikit_image_without_ties(points, radius):
    from skimage.feature import local_binary_pattern as reference

    image = np.random.default_rng(2).random((30, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float input warning
        expected = reference(image, points, radius, method="uniform")
    assert_array_equal(local_binary_pattern(image, points, radius), expected)


def test_lbp_codes_do_not_depend_on_position():
    image = np.random.default_rng(3).integers(0, 3, (30, 30)).astype(float)  # many ties
    shifted = np.pad(image, ((5, 0), (9, 0)))
    assert_array_equal(local_binary_pattern(shifted)[5:, 9:], local_binary_pattern(image))


# ---------------------------------------------------------------------- granularity
def test_granularity_of_a_flat_crop():
    row = _row(np.full((32, 32), 0.5), features="granularity")
    assert_allclose(row["Granularity_1_DNA"], 100.0)  # all signal is background
    assert_allclose(row.filter(like="Granularity_").to_numpy()[1:], 0.0, atol=1e-12)


def test_granularity_of_tiny_images_is_nan():
    labels = np.zeros((7, 7), dtype=np.int32)
    labels[2:4, 2:4] = 1
    image = np.full((7, 7), 0.5, np.float32)
    table = Texture(features="granularity").fit_transform(_cells(image, labels))
    assert np.isnan(table).all()  # a 7x7 image subsamples to 1x1
    crops = CellSet.from_crops(np.full((1, 4, 4), 0.5), np.ones((1, 4, 4), bool), channels=["DNA"])
    assert np.isnan(Texture(features="granularity").fit_transform(crops)).all()


def test_granularity_measures_each_image_once(monkeypatch):
    # the image's work (subsampling, background, 16 reconstructions) was repeated for each
    # task of 512 cells: here twice for the image of 784 cells
    big, small = _grid_cells(), _grid_cells(side=60)
    cells = CellSet.concat([big, small])
    assert len(big) > 512
    calls = []
    spectrum = granularity._spectrum
    monkeypatch.setattr(granularity, "_spectrum",
                        lambda image, *a: calls.append(image.shape) or spectrum(image, *a))
    table = Texture(features="granularity").fit_transform(cells)
    assert calls == [(200, 200), (60, 60)]
    # the same values as when every task is small (each repeats its images' work)
    monkeypatch.setattr(_base, "_IMAGE_CHUNK_PIXELS", 1000)
    assert_array_equal(Texture(features="granularity").fit_transform(cells), table)
    assert len(calls) > 4  # the image of 784 cells (crops of 9 x 9) in tasks of 12 cells
    with parallel_config(backend="threading"):  # two tasks, one per worker
        assert_array_equal(Texture(features="granularity", n_jobs=2).fit_transform(cells), table)


def test_parts_of_one_cellset_concatenated_share_its_image(monkeypatch):
    big = _grid_cells(side=60)
    cells = CellSet.concat([big[:10], big[30:], big[[12, 3]]])
    images, index = cells.fields()
    assert len(images) == 1 and set(index) == {0}
    calls = []
    spectrum = granularity._spectrum
    monkeypatch.setattr(granularity, "_spectrum",
                        lambda image, *a: calls.append(image.shape) or spectrum(image, *a))
    table = Texture(features="granularity").fit_transform(cells)
    assert calls == [(60, 60)]
    whole = Texture(features="granularity").fit_transform(big)
    rows = np.r_[0:10, 30:len(big), 12, 3]
    assert_array_equal(table, whole[rows])


def test_tasks_hold_every_cell_once_and_whole_images():
    # three images of 64 cells (separate arrays) and one of 784
    cells = CellSet.concat([_grid_cells(side=60) for _ in range(3)] + [_grid_cells()])
    crops = CellSet.from_crops([np.ones((4, 4))] * 1100, [np.ones((4, 4), bool)] * 1100)
    for X, n_jobs, whole in [(cells, 1, True), (cells, 2, True), (cells, 1, False),
                             (crops, 1, True)]:
        chunks = _base._chunks(X, n_jobs, whole)
        assert_array_equal(np.sort(np.concatenate(chunks)), np.arange(len(X)))
        field = X.fields()[1]
        split = [f for f in np.unique(field) if sum(np.isin(f, field[c]) for c in chunks) > 1]
        sizes = sorted(len(c) for c in chunks)
        if X is crops:  # no image: runs of 512 at most
            assert max(sizes) <= 512 and len(chunks) == 3
        elif not whole:
            assert sizes == [464, 512]
        elif n_jobs == 1:  # the three small images packed together, the large one alone
            assert sizes == [192, 784] and split == [] and len(np.unique(field)) == 4
        else:  # the large image split between the two workers (tasks of 976 / 2 at most)
            assert sizes == [192, 392, 392] and len(split) == 1
    # ten images of 64 cells: packed in runs of at most 512, none split
    many = CellSet.concat([_grid_cells(side=60) for _ in range(10)])
    chunks = _base.image_chunks(many, 512)
    assert [len(c) for c in chunks] == [512, 128]
    assert all(np.unique(many.fields()[1][c]).size * 64 == len(c) for c in chunks)


def test_granularity_follows_the_whole_image_or_the_crop():
    image, labels = _field()
    cells = _cells(image, labels)
    whole = Texture(features="granularity").fit_transform(cells)
    # the same cells without their image: each crop is measured alone
    crops = CellSet.from_crops(
        [cells.crop(i) for i in range(len(cells))],
        [cells.mask(i) for i in range(len(cells))],
        channels=["DNA"],
    )
    alone = Texture(features="granularity").fit_transform(crops)
    assert not np.allclose(whole, alone)
    # a subset (pickled, as to a joblib worker), or the cells of two images together, keep
    # their own image and only it
    subset = pickle.loads(pickle.dumps(cells[[2, 0]]))
    assert len(subset.fields()[0]) == 1 and subset.fields()[1].tolist() == [0, 0]
    assert_array_equal(Texture(features="granularity").fit_transform(subset), whole[[2, 0]])
    other, other_labels = _field(seed=1)
    both = CellSet.concat([_cells(other, other_labels), crops, cells])
    table = Texture(features="granularity").fit_transform(both)
    assert_array_equal(table[-4:], whole)
    assert_array_equal(table[4:8], alone)
    boxes = CellSet.from_boxes(image, [[6, 28, 24, 46]], channels=["DNA"])  # x0, y0, x1, y1
    assert boxes.fields()[1].tolist() == [0] and boxes.fields()[0][0].shape == (1, 72, 72)


def test_grid_sampling_equals_map_coordinates():
    image = np.random.default_rng(0).random((9, 13)).astype(np.float32)
    i, j = np.arange(5) * 2.1, np.arange(7) * 2.0  # past the last row: 0
    expected = ndi.map_coordinates(image.astype(float), np.meshgrid(i, j, indexing="ij"), order=1)
    assert_allclose(granularity._sample(image, i, j), expected, rtol=1e-12, atol=1e-15)


def test_disk_filter_equals_grey_erosion_and_dilation():
    rng = np.random.default_rng(0)
    for shape in [(6, 9), (2, 30), (25, 3)]:
        image = rng.random(shape)
        for erode, morphology in ((True, ndi.grey_erosion), (False, ndi.grey_dilation)):
            fill = np.inf if erode else -np.inf
            padded = np.pad(image, 4, constant_values=fill)
            expected = morphology(padded, footprint=disk(4).astype(bool))[4:-4, 4:-4]
            assert_array_equal(granularity._disk_filter(image, 4, erode=erode), expected)


# ---------------------------------------------------------------------- against cp_measure
@pytest.mark.parametrize(("scale", "gray_levels"), [(1, 256), (3, 256), (2, 8)])
def test_haralick_matches_cp_measure(scale, gray_levels):
    pytest.importorskip("cp_measure")
    from cp_measure.core.measuretexture import get_texture

    image, labels = _field()
    ours = Texture(features="haralick", scales=[scale], gray_levels=gray_levels)
    ours = ours.set_output(transform="pandas").fit_transform(_cells(image, labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = get_texture(labels, image.astype(np.float64), scale=scale, gray_levels=gray_levels)
    for key, values in ref.items():
        name = f"Texture_{key.split('_')[0]}_DNA_{'_'.join(key.split('_')[1:])}"
        assert_allclose(ours[name], values, rtol=1e-9, atol=1e-12, err_msg=name)


def _padded(morphology, fill):
    def apply(image, footprint=None, **_):
        r = footprint.shape[0] // 2
        big = np.pad(image, r, mode="constant", constant_values=fill)
        return morphology(big, footprint=footprint, mode="constant", cval=fill)[r:-r, r:-r]

    return apply


_GRANULARITY_SETTINGS = [
    {},
    {"subsample_size": 1.0, "image_sample_size": 0.5, "element_size": 3, "length": 5},
    {"subsample_size": 0.3, "image_sample_size": 1.0, "element_size": 4, "length": 4},
]


def _granularity_settings(settings):
    cp_settings = {
        "subsample_size": settings.get("subsample_size", 0.25),
        "image_sample_size": settings.get("image_sample_size", 0.25),
        "element_size": settings.get("element_size", 10),
        "granular_spectrum_length": settings.get("length", 16),
    }
    model = Texture(
        features="granularity",
        granularity_spectrum_length=cp_settings["granular_spectrum_length"],
        granularity_subsample_size=cp_settings["subsample_size"],
        granularity_image_sample_size=cp_settings["image_sample_size"],
        granularity_element_size=cp_settings["element_size"],
    )
    return model, cp_settings


@pytest.mark.parametrize("settings", _GRANULARITY_SETTINGS)
def test_granularity_matches_cp_measure_on_the_whole_image(settings):
    pytest.importorskip("cp_measure")
    from cp_measure.core.measuregranularity import get_granularity

    model, cp_settings = _granularity_settings(settings)
    image, labels = _field(shape=(90, 110))
    ours = model.fit_transform(_cells(image, labels))
    ref = get_granularity(labels, image.astype(np.float64), **cp_settings)
    expected = np.column_stack([ref[f"Granularity_{k}"] for k in range(1, ours.shape[1] + 1)])
    assert_allclose(ours, expected, atol=1e-9)


@pytest.mark.parametrize("settings", _GRANULARITY_SETTINGS)
def test_granularity_matches_cp_measure_on_each_crop_without_image(settings, monkeypatch):
    pytest.importorskip("cp_measure")
    import cp_measure.core.measuregranularity as module

    # scipy's mode="reflect" reads outside the array when an axis of length 2 meets a
    # footprint of more than 8 pixels (cp_measure's 21x21 disk on small crops): pad explicitly
    morphology = module.skimage.morphology
    monkeypatch.setattr(morphology, "erosion", _padded(morphology.erosion, np.inf))
    monkeypatch.setattr(morphology, "dilation", _padded(morphology.dilation, -np.inf))
    model, cp_settings = _granularity_settings(settings)
    image, labels = _field()
    cells = _cells(image, labels)
    crops = CellSet.from_crops(
        [cells.crop(i) for i in range(len(cells))],
        [cells.mask(i) for i in range(len(cells))],
        channels=["DNA"],
    )
    ours = model.fit_transform(crops)
    for i in range(len(cells)):
        mask, crop = cells.mask(i).astype(np.int32), cells.crop(i)[0].astype(np.float64)
        ref = module.get_granularity(mask, crop, **cp_settings)
        expected = [ref[f"Granularity_{k}"][0] for k in range(1, ours.shape[1] + 1)]
        assert_allclose(ours[i], expected, atol=1e-9)


def test_haralick_matches_cp_measure_on_real_nuclei():
    pytest.importorskip("cp_measure")
    from cp_measure.core.measuretexture import get_texture

    from featcell.io import read_image, read_labels

    root = DATA / "segmentation" / "dsb2018"
    if not root.is_dir():
        pytest.skip(f"real data sets not found at {DATA}")
    path = min((root / "images").glob("*.png"))
    image = read_image(path)
    image = image[..., :3].mean(axis=-1) / 255.0 if image.ndim == 3 else image / 255.0
    image = image.astype(np.float32)
    labels, _, _ = relabel_sequential(read_labels(root / "labels" / path.name))
    ours = Texture(features="haralick").fit_transform(_cells(image, labels.astype(np.int32)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = get_texture(labels.astype(np.int32), image.astype(np.float64))
    assert_allclose(ours, np.column_stack(list(ref.values())), rtol=1e-8, atol=1e-10)
