"""Fine-tuning the bundled EfficientNet-Lite0: the ONNX -> torch converter and
``CNNClassifier(architecture="efficientnet_lite0")``.

Kept fast: 32 px crops, one or two short epochs, a few dozen cells.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest

from featcell.cells import CellSet
from featcell.cnn import CNNClassifier
from featcell.cnn._sessions import BUNDLED_MODEL

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


@pytest.fixture(scope="module")
def session():
    return ort.InferenceSession(str(BUNDLED_MODEL), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (3, 3, 32, 48)])
def test_converter_matches_onnxruntime(session, shape):
    from featcell.cnn._efficientnet import convert_onnx

    net = convert_onnx()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    (expected,) = session.run(None, {"input": x})
    assert got.shape == (shape[0], 1280)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 0.5  # not a trivially zero output


def test_finetune_module_starts_as_the_pretrained_net_on_grey(session):
    """A one-channel crop in [0, 1] gives the features the ONNX file gives its grey image
    (ImageNet-normalised RGB); two equal channels give the same again."""
    from featcell.cnn._efficientnet import efficientnet_lite0

    x = np.random.default_rng(1).random((2, 1, 32, 32)).astype(np.float32)
    (expected,) = session.run(None, {"input": (x - IMAGENET_MEAN) / IMAGENET_STD})
    for k in (1, 2):
        net = efficientnet_lite0(k, 3).eval()
        with torch.no_grad():
            got = net.embed(torch.from_numpy(np.repeat(x, k, axis=1))).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # only the deltas and the new head learn; the pretrained weights are buffers
    names = [name for name, _ in net.named_parameters()]
    assert all(n.endswith(("delta", "delta_bias")) or n.startswith("fc.") for n in names)
    assert net.net.convs[0].pretrained.shape[1] == 2


def test_converter_rejects_other_graphs(tmp_path):
    import onnx

    from featcell.cnn._efficientnet import convert_onnx

    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 4, 4])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Sigmoid", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "other.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    with pytest.raises(ValueError, match="Sigmoid"):
        convert_onnx(path)


def _cells(n=32, seed=0, size=32):
    """Bright round versus dim elongated blobs, two channels, 4 images."""
    rng = np.random.default_rng(seed)
    crops = rng.normal(0.2, 0.05, (n, 2, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    y = np.where(np.arange(n) % 2 == 0, "round", "long")
    for i in range(n):
        a, b = (7, 7) if y[i] == "round" else (12, 4)
        blob = ((yy - size / 2) / a) ** 2 + ((xx - size / 2) / b) ** 2 <= 1
        crops[i, :, blob] += 0.6
    image = [f"img{i % 4}" for i in range(n)]
    return CellSet.from_crops(crops, channels=["BF", "DF"], image_id=image), y, crops


@pytest.fixture
def short_epochs(monkeypatch):
    """Epochs of 32 draws (not 1024): the fine-tuning tests check the plumbing, not accuracy."""
    from functools import partial

    from featcell.cnn import _training

    monkeypatch.setattr(
        _training, "fit_network", partial(_training.fit_network, min_epoch_items=32)
    )


def test_finetuned_classifier_fits_exports_and_embeds(tmp_path, short_epochs):
    cells, y, crops = _cells()
    clf = CNNClassifier(
        "efficientnet_lite0", input_size=32, max_epochs=1, patience=1, batch_size=16,
        n_threads=1,
    ).fit(cells, y)
    assert clf.input_size_ == 32
    proba = clf.predict_proba(cells)
    assert proba.shape == (32, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert clf.transform(cells).shape == (32, 1280)
    assert clf.get_feature_names_out()[-1] == "CNN_Trained_1279"
    assert 3.0e6 < clf.n_parameters_ < 4.0e6
    # the exported graph holds the folded weights once (~13-14 MB), not pretrained + delta
    assert 10e6 < len(clf.network_) < 16e6

    # a saved model scores without torch
    from featcell.persist import save_model

    path = save_model(clf, tmp_path / "effnet.featcell")
    np.save(tmp_path / "crops.npy", crops)
    np.save(tmp_path / "expected.npy", proba)
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(textwrap.dedent(
        """
        import sys

        class _NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError(f"import of {name} blocked (test without torch)")
                return None

        sys.meta_path.insert(0, _NoTorch())
        """
    ))
    code = f"""
        import sys
        import numpy as np
        from featcell import CellSet, load_model
        model = load_model({str(path)!r})
        cells = CellSet.from_crops(np.load("crops.npy"), channels=["BF", "DF"])
        proba = model.predict_proba(cells)
        assert "torch" not in sys.modules
        np.testing.assert_allclose(proba, np.load("expected.npy"), atol=1e-5)
        print("OK", proba.shape)
        """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), root])}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert "OK (32, 2)" in result.stdout, result.stderr


def test_finetuned_default_input_size_is_a_multiple_of_32(short_epochs):
    cells, y, _ = _cells(n=16, size=40)
    clf = CNNClassifier("efficientnet_lite0", max_epochs=1, patience=1, n_threads=1)
    clf.fit(cells, y)
    assert clf.input_size_ == 64  # 40 px crops: at least 64, a multiple of 32
