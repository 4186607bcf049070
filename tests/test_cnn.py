"""Tests of featcell.cnn: CNNEmbedding on cells and images, user ONNX models, bad input.

The bundled model runs at the smallest input size (32) on a few tiny crops so the
module stays fast on CPU; preprocessing is checked exactly with tiny hand-built
ONNX graphs (identity / global average pooling), built with the ``onnx`` package
(those tests skip without it).
"""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from featcell.cnn import _preprocess, _sessions
from featcell.cells import CellSet
from featcell.cnn import CNNEmbedding, make_cnn_pipeline

SIZE = 32  # smallest input size: fast
RNG = np.random.default_rng(0)
CROPS = RNG.integers(0, 4000, (4, 2, 24, 20), dtype=np.uint16)
CROPS[:, :, 6:18, 5:15] += 20000  # a bright cell in the middle
MASKS = np.zeros((4, 24, 20), dtype=bool)
MASKS[:, 6:18, 5:15] = True
CELLS = CellSet.from_crops(CROPS, masks=MASKS, channels=["DNA", "Actin"])


def fitted(X=CELLS, **params):
    return CNNEmbedding(input_size=SIZE, batch_size=3, **params).fit(X)


def save_model(path, input_shape, op="Identity", output_rank=4, **attributes):
    """A one-node ONNX graph such as Identity or GlobalAveragePool (channel means)."""
    onnx = pytest.importorskip("onnx")
    helper, TensorProto = onnx.helper, onnx.TensorProto
    node = helper.make_node(op, ["input"], ["features"], **attributes)
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None] * output_rank)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return str(path)


@pytest.fixture
def gap_model(tmp_path):
    return save_model(tmp_path / "channel_means.onnx", ["N", 3, "H", "W"], "GlobalAveragePool")


@pytest.fixture
def identity_model(tmp_path):
    return save_model(tmp_path / "ident.onnx", ["N", 3, "H", "W"])


# ---------------------------------------------------------------------- bundled model
def test_cells_per_channel_names_and_shape():
    emb = fitted()
    Z = emb.transform(CELLS)
    assert Z.shape == (4, 2 * 1280) and Z.dtype == np.float32 and np.isfinite(Z).all()
    names = emb.get_feature_names_out()
    assert names[0] == "CNN_EfficientNetLite0_0000_DNA"
    assert names[-1] == "CNN_EfficientNetLite0_1279_Actin"
    assert emb.n_dims_ == 1280 and emb.model_name_ == "EfficientNetLite0"
    assert emb.provider_ == "CPUExecutionProvider"
    # per-channel columns are the embedding of that channel alone
    alone = fitted(channels=["Actin"]).transform(CELLS)
    assert_allclose(Z[:, 1280:], alone, rtol=1e-5, atol=1e-5)


def test_rgb_names_pandas_output_and_batch_size_invariance():
    emb = fitted(channel_mode="rgb").set_output(transform="pandas")
    frame = emb.transform(CELLS)
    assert list(frame.columns[:2]) == ["CNN_EfficientNetLite0_0000", "CNN_EfficientNetLite0_0001"]
    assert frame.shape == (4, 1280)
    one_by_one = CNNEmbedding(input_size=SIZE, channel_mode="rgb", batch_size=1).fit(CELLS)
    assert_allclose(one_by_one.transform(CELLS), frame.to_numpy(), rtol=1e-4, atol=1e-5)


def test_bit_depth_does_not_matter():
    # the same picture stored as 8-bit and as 16-bit gives the same embedding
    crops8 = (CROPS[:2, :1] // 257).astype(np.uint8)
    a = CellSet.from_crops(crops8, masks=MASKS[:2])
    b = CellSet.from_crops(crops8.astype(np.uint16) * 257, masks=MASKS[:2])
    assert_allclose(fitted(a).transform(a), fitted(b).transform(b), rtol=1e-4, atol=1e-5)


def test_tta_is_rotation_invariant():
    square = CellSet.from_crops(CROPS[:2, 0, :20, :20], masks=MASKS[:2, :20, :20])
    rotated = CellSet.from_crops(
        np.rot90(CROPS[:2, 0, :20, :20], axes=(1, 2)),
        masks=np.rot90(MASKS[:2, :20, :20], axes=(1, 2)),
    )
    emb = fitted(square, tta=True)
    assert_allclose(emb.transform(square), emb.transform(rotated), rtol=1e-4, atol=1e-5)


def test_mask_background_ignores_neighbours():
    noisy = CROPS[:2].copy()
    noisy[:, :, :4, :] = 65000  # a bright neighbour outside the mask
    other = CellSet.from_crops(noisy, masks=MASKS[:2], channels=["DNA", "Actin"])
    emb = fitted(mask_background=True)
    assert_allclose(emb.transform(CELLS[:2]), emb.transform(other), rtol=1e-5, atol=1e-6)
    plain = fitted()
    assert not np.allclose(plain.transform(CELLS[:2]), plain.transform(other))


def test_tiny_crops_are_resized():
    tiny = CellSet.from_crops(RNG.random((2, 3, 5)), masks=np.ones((2, 3, 5), bool))
    assert np.isfinite(fitted(tiny).transform(tiny)).all()


def test_whole_images_arrays_and_paths(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    image = RNG.integers(0, 4095, (SIZE, 2 * SIZE), dtype=np.uint16)
    path = tmp_path / "field.tif"
    tifffile.imwrite(path, image)
    emb = CNNEmbedding(input_size=SIZE, percentiles=None).fit([image])
    assert list(emb.channels_) == ["Ch1"]
    Z = emb.transform([image, path])
    assert Z.shape == (2, 1280)
    assert_allclose(Z[0], Z[1], rtol=1e-5)
    # an image two tiles wide is the mean of its tiles
    tiles = emb.transform([image[:, :SIZE], image[:, SIZE:]])
    assert_allclose(Z[0], tiles.mean(axis=0), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- preprocessing, exactly
def test_preprocessing_pipeline_with_identity_network(gap_model):
    # a GlobalAveragePool "network" returns the mean of the normalised input per RGB channel
    crop = np.zeros((1, 1, 8, 16), dtype=np.float32)
    crop[..., 4:, :] = 1.0  # half the crop white: after aspect-preserving fit, 1/4 of the canvas
    cells = CellSet.from_crops(crop, masks=np.ones((1, 8, 16), bool), channels=["DNA"])
    emb = CNNEmbedding(gap_model, input_size=SIZE).fit(cells)
    assert emb.model_name_ == "channelmeans" and emb.n_dims_ == 3
    assert list(emb.get_feature_names_out()) == [f"CNN_channelmeans_000{i}_DNA" for i in range(3)]
    expected = (0.25 - _preprocess.IMAGENET_MEAN.ravel()) / _preprocess.IMAGENET_STD.ravel()
    assert_allclose(emb.transform(cells)[0], expected, atol=1e-5)


def test_rgb_maps_first_three_channels(gap_model):
    crops = np.stack([np.full((1, 8, 8), v, np.float32) for v in (0.0, 0.5, 1.0, 0.2)], axis=1)
    cells = CellSet.from_crops(crops, masks=np.ones((1, 8, 8), bool))
    emb = CNNEmbedding(gap_model, input_size=SIZE, channel_mode="rgb", percentiles=None).fit(cells)
    assert emb.channels_ == ("Ch1", "Ch2", "Ch3")
    expected = (np.array([0.0, 0.5, 1.0]) - _preprocess.IMAGENET_MEAN.ravel()) / _preprocess.IMAGENET_STD.ravel()
    assert_allclose(emb.transform(cells)[0], expected, atol=1e-5)


def test_fit_batch_resizes_keeping_aspect_ratio():
    zeros, ones = np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32)
    image = RNG.random((2, 17, 23)).astype(np.float32)
    out = _preprocess._fit_batch([image], np.zeros((1, 2)), np.ones((1, 2)), 23)
    assert out.shape == (1, 2, 23, 23)
    assert_allclose(out[0, :, 3:20], image, rtol=1e-6)  # native size, centred
    assert out[0, :, :3].sum() == 0 and out[0, :, 20:].sum() == 0
    for size in (5, 32, 100):
        out = _preprocess._fit_batch([np.ones((1, 40, 50), np.float32)], zeros, ones, size)[0, 0]
        rows = round(40 * size / 50)
        top = (size - rows) // 2
        assert_allclose(out[top : top + rows], 1.0, rtol=1e-6)
        assert out.sum() == pytest.approx(rows * size, rel=1e-5)  # black canvas elsewhere
    # shrinking a fine checkerboard averages it instead of aliasing it to black or white
    checkerboard = (np.indices((64, 64)).sum(axis=0) % 2)[None].astype(np.float32)
    assert_allclose(_preprocess._fit_batch([checkerboard], zeros, ones, 32), 0.5)
    low, gain = np.full((1, 1), 2.0), np.full((1, 1), 0.5)
    out = _preprocess._fit_batch([np.full((1, 10, 40), 3.0, np.float32)], low, gain, 32)[0]
    assert out[0, :12].sum() == 0 and out[0, 20:].sum() == 0  # padded rows above and below
    assert_allclose(out[0, 12:20], 0.5, rtol=1e-6)  # (3 - 2) * 0.5
    assert_allclose(_preprocess._fit_batch([np.full((1, 8, 8), 9.0)], low, gain, 32), 1.0)  # clipped


def test_fit_batch_gives_each_crop_what_it_gives_alone():
    crops = [
        RNG.random((2, h, w)).astype(np.float32) for h, w in [(7, 30), (64, 64), (90, 41), (3, 3)]
    ]
    low = RNG.random((4, 2)).astype(np.float32) * 0.2
    gain = 1 + RNG.random((4, 2)).astype(np.float32)
    together = _preprocess._fit_batch(crops, low, gain, 48)
    for b, crop in enumerate(crops):
        alone = _preprocess._fit_batch([crop], low[b : b + 1], gain[b : b + 1], 48)[0]
        assert_allclose(together[b], alone, rtol=1e-6, atol=1e-7)


def test_intensity_range():
    image = np.stack([np.arange(100.0).reshape(10, 10), np.full((10, 10), 7.0)])
    low, gain = _preprocess._intensity_range(image, (0.0, 100.0))
    assert_allclose(low, [0.0, 7.0])
    assert_allclose(gain, [1 / 99.0, 0.0])  # a flat channel maps to black


def test_cell_ranges_match_per_crop_percentiles():
    sizes = [5, 401, 2048, 2049, 9000, 1]
    values = RNG.random((2, sum(sizes))).astype(np.float32)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    low, gain = _preprocess._cell_ranges(values, starts[:-1], np.diff(starts), (1.0, 99.8))
    for b in range(len(sizes)):
        crop = values[:, starts[b] : starts[b + 1]]
        expected = _preprocess._percentiles(crop, (1.0, 99.8))
        assert_allclose(low[b], expected[:, 0], rtol=1e-6)
        span = expected[:, 1] - expected[:, 0]
        assert_allclose(gain[b], np.where(span > 0, 1 / np.where(span > 0, span, 1), 0), rtol=1e-5)
    # over mask pixels only; a cell without any is black
    positions = np.concatenate([np.arange(50, 100), np.arange(420, 430)])  # cells 1 and 2
    bounds = np.searchsorted(positions, starts)
    low, gain = _preprocess._cell_ranges(values, bounds[:-1], np.diff(bounds), (0.0, 100.0), positions)
    assert_allclose(low[1], values[:, 50:100].min(axis=1))
    assert_allclose(low[2], values[:, 420:430].min(axis=1))
    assert (gain[[0, 3, 4, 5]] == 0).all() and (low[0] == 0).all()


def test_percentiles_match_numpy():
    values = RNG.random((3, 401))
    expected = np.percentile(values, (1.0, 99.8), axis=1).T
    assert_allclose(_preprocess._percentiles(values, (1.0, 99.8)), expected, rtol=1e-6)


# ---------------------------------------------------------------------- user models, bad models
def test_fixed_size_model_sets_input_size(tmp_path):
    path = save_model(tmp_path / "fixed.onnx", ["N", 3, 48, 48], "GlobalAveragePool")
    assert CNNEmbedding(path).fit(CELLS).input_size_ == 48
    with pytest.raises(ValueError, match="fixed input"):
        CNNEmbedding(path, input_size=64).fit(CELLS)


def test_model_output_rank(tmp_path):
    flat = save_model(tmp_path / "flat.onnx", ["N", 3, "H", "W"], "Flatten", output_rank=2)
    assert CNNEmbedding(flat, input_size=SIZE).fit(CELLS).n_dims_ == 3 * SIZE * SIZE
    tokens = save_model(
        tmp_path / "tokens.onnx", ["N", 3, "H", "W"], "ReduceMean", 3, axes=[1], keepdims=0
    )
    with pytest.raises(ValueError, match=r"tokens.onnx.*output has shape \(1, 32, 32\)"):
        CNNEmbedding(tokens, input_size=SIZE).fit(CELLS)


def test_model_must_take_rgb(tmp_path):
    grey = save_model(tmp_path / "grey.onnx", ["N", 1, "H", "W"], "GlobalAveragePool")
    with pytest.raises(ValueError, match="grey.onnx.*has 1 channels"):
        CNNEmbedding(grey, input_size=SIZE).fit(CELLS)


def test_identity_output_is_pooled(identity_model):
    emb = CNNEmbedding(identity_model, input_size=SIZE, channels="DNA").fit(CELLS)
    assert emb.n_dims_ == 3 and emb.model_name_ == "ident"


@pytest.mark.parametrize(
    "content, match",
    [
        (b"this is not a model\n", "not a valid ONNX model"),
        (b"", "not a valid ONNX model"),
    ],
)
def test_invalid_model_file(tmp_path, content, match):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"broken.onnx.*{match}"):
        CNNEmbedding(str(path)).fit(CELLS)


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.onnx"):
        CNNEmbedding(tmp_path / "nowhere.onnx").fit(CELLS)


def test_model_with_wrong_input_rank(tmp_path):
    path = save_model(tmp_path / "rank3.onnx", ["N", "H", "W"], output_rank=3)
    with pytest.raises(ValueError, match=r"rank3.onnx.*rank 3.*expected rank 4"):
        CNNEmbedding(path).fit(CELLS)


def test_model_changed_after_fit(tmp_path, gap_model):
    emb = CNNEmbedding(gap_model, input_size=SIZE).fit(CELLS)
    save_model(gap_model, ["N", 3, "H", "W"], "Identity")
    with pytest.raises(ValueError, match="has changed since fit"):
        emb.transform(CELLS)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "params, match",
    [
        ({"input_size": 16}, "input_size"),
        ({"percentiles": (99.0, 1.0)}, "percentiles"),
        ({"channel_mode": "stack"}, "channel_mode"),
        ({"channels": ["GFP"]}, r"\['GFP'\] not among"),
        ({"providers": ["NoSuchExecutionProvider"]}, "no execution provider available"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        CNNEmbedding(**params).fit(CELLS)


def test_empty_cellset():
    empty = CELLS[np.zeros(4, bool)]
    with pytest.raises(ValueError, match="empty CellSet"):
        CNNEmbedding().fit(empty)
    assert fitted().transform(empty).shape == (0, 2560)


@pytest.mark.parametrize(
    "X, error, match",
    [
        ("cells.tif", TypeError, "single path"),
        (np.zeros((2, 8, 8)), TypeError, "ndarray of shape"),
        ([], ValueError, "empty list"),
        ({"a": 1}, TypeError, "dict"),
        ([np.zeros((2, 8, 8, 3))], ValueError, r"image 0 has shape \(2, 8, 8, 3\)"),
        ([np.zeros((0, 20))], ValueError, r"image 0 has shape \(0, 20\).*with pixels"),
    ],
)
def test_bad_inputs(X, error, match):
    with pytest.raises(error, match=match):
        CNNEmbedding(input_size=SIZE).fit(X)


def test_nan_pixels():
    image = np.ones((20, 20), np.float32)
    image[3, 4] = np.nan
    emb = CNNEmbedding(input_size=SIZE).fit([np.ones((20, 20))])
    with pytest.raises(ValueError, match="image 1 contains NaN"):
        emb.transform([np.ones((20, 20)), image])


def test_channel_mismatch():
    emb = fitted()
    with pytest.raises(ValueError, match=r"X has channels \['Ch1'\]"):
        emb.transform(CellSet.from_crops(CROPS[:, 0], masks=MASKS))
    images = CNNEmbedding(input_size=SIZE).fit([np.ones((20, 20))])
    with pytest.raises(ValueError, match="image 0 has 3 channel"):
        images.transform([np.ones((20, 20, 3))])


# ---------------------------------------------------------------------- sessions, pickling, API
def test_session_shared_and_never_pickled(monkeypatch):
    a, b = fitted(), fitted()
    assert a.session_ is b.session_
    assert "session_" not in vars(a)
    expected, session = a.transform(CELLS[:1]), a.session_
    restored = pickle.loads(pickle.dumps(a))
    monkeypatch.setattr(_sessions, "_SESSIONS", {})  # as in a fresh joblib worker
    assert_allclose(restored.transform(CELLS[:1]), expected, rtol=1e-6)
    assert restored.session_ is not session
    assert clone(a).get_params() == a.get_params()


def test_auto_providers(monkeypatch):
    monkeypatch.setattr(_sessions.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert _sessions._resolve_providers("auto") == ("CPUExecutionProvider",)
    monkeypatch.setattr(
        _sessions.ort,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert _sessions._resolve_providers("auto")[0] == "CUDAExecutionProvider"


def test_accelerator_path_overlaps_full_batches_and_gives_the_same_result(gap_model, monkeypatch):
    # on an accelerator the next batch is prepared while one runs, in two alternating
    # buffers, and every run gets a full batch (onnxruntime-cuda redoes its set-up when
    # the input shape changes); results must not depend on it (tta keys span batches)
    plain = fitted(model=gap_model, tta=True)
    expected = plain.transform(CELLS)
    shapes, run = [], CNNEmbedding._run

    def recording_run(session, x, path):
        shapes.append(x.shape)
        return run(session, x, path)

    monkeypatch.setattr(CNNEmbedding, "_run", staticmethod(recording_run))
    overlapped = fitted(model=gap_model, tta=True)
    overlapped.provider_ = "AcceleratorExecutionProvider"  # as if CUDA had been chosen
    shapes.clear()
    assert_allclose(overlapped.transform(CELLS), expected, rtol=1e-6)
    assert len(shapes) == 22  # 4 cells x 2 channels x 8 views in batches of 3
    assert set(shapes) == {(3, 3, SIZE, SIZE)}


def test_cuda_session_gets_tuned_options_or_falls_back(monkeypatch, gap_model):
    seen = []
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")

    def session(path, options, providers):
        seen.append(providers)
        if providers != ["CUDAExecutionProvider", "CPUExecutionProvider"]:
            raise RuntimeError("unknown provider option")  # as an older onnxruntime
        return "session"

    monkeypatch.setattr(_sessions.ort, "InferenceSession", session)
    monkeypatch.setattr(_sessions, "_preload_cuda_libraries", lambda: None)
    assert _sessions._new_session(gap_model, None, providers) == "session"
    assert seen[0] == [("CUDAExecutionProvider", _sessions._CUDA_OPTIONS), "CPUExecutionProvider"]
    assert seen[1] == list(providers)


def test_cuda_libraries_preloaded_once_before_a_cuda_session(monkeypatch):
    calls = []
    monkeypatch.setattr(_sessions.ort, "preload_dlls", lambda: calls.append(1), raising=False)
    _sessions._preload_cuda_libraries.cache_clear()
    try:
        _sessions._preload_cuda_libraries()
        _sessions._preload_cuda_libraries()
    finally:
        _sessions._preload_cuda_libraries.cache_clear()
    assert calls == [1]

    def fail():
        raise OSError("libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(_sessions.ort, "preload_dlls", fail, raising=False)
    with pytest.warns(RuntimeWarning, match="libcudnn.so.9.*system library path"):
        _sessions._preload_cuda_libraries()
    _sessions._preload_cuda_libraries.cache_clear()


def test_sklearn_api_checks():
    name = "CNNEmbedding"
    check_no_attributes_set_in_init(name, CNNEmbedding())
    check_set_params(name, CNNEmbedding())
    check_get_params_invariance(name, CNNEmbedding())
    check_parameters_default_constructible(name, CNNEmbedding())
    tags = CNNEmbedding().__sklearn_tags__()
    assert not tags.input_tags.two_d_array and tags.requires_fit


def test_make_cnn_pipeline_fits_and_predicts():
    y = np.array(["a", "b", "a", "b"])
    pipe = make_cnn_pipeline("lr", input_size=SIZE, channels=["DNA"]).fit(CELLS, y)
    assert [name for name, _ in pipe.steps] == ["cnn", "scale", "head"]
    assert set(pipe.predict(CELLS)) <= {"a", "b"}
    with pytest.raises(ValueError, match="head"):
        make_cnn_pipeline("nope")
