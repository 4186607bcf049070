"""Tests of featcell.persist: safe model files that carry their ONNX networks."""

import json
import shutil
import zipfile
from datetime import datetime

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skops.io.exceptions import UntrustedTypesFoundException

from featcell import CellSet
from featcell.cnn import BUNDLED_MODEL, CNNEmbedding
from featcell.persist import (
    VersionMismatchWarning,
    load_model,
    read_manifest,
    save_model,
    trusted_types,
)

RNG = np.random.default_rng(0)
CROPS = RNG.integers(0, 4000, (6, 1, 36, 36), dtype=np.uint16)
CELLS = CellSet.from_crops(CROPS, channels=["DNA"])
Y = np.array(["live", "dead"] * 3)


class CropMean(TransformerMixin, BaseEstimator):
    """A custom transformer a collaborator might ship: not trusted by default."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.array([[crop.mean()] for crop, _ in X.iter_crops()])


def rewrite(path, **entries):
    """Copy the zip at ``path`` replacing some entries (name with '/' given as '__')."""
    entries = {name.replace("__", "/"): data for name, data in entries.items()}
    with zipfile.ZipFile(path) as src:
        items = {info.filename: src.read(info.filename) for info in src.infolist()}
    items.update({k: v(items[k]) if callable(v) else v for k, v in entries.items()})
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in items.items():
            dst.writestr(name, data)


@pytest.fixture(scope="module")
def cnn_pipeline():
    return make_pipeline(CNNEmbedding(input_size=32), StandardScaler(), LogisticRegression()).fit(
        CELLS, Y
    )


def test_round_trip_cnn_pipeline(cnn_pipeline, tmp_path):
    path = save_model(cnn_pipeline, tmp_path / "model.featcell", metadata={"cv_accuracy": 0.9})
    loaded = load_model(path)
    assert loaded.get_params()["cnnembedding__model"] is None  # bundled model, unchanged
    assert_array_equal(loaded.predict_proba(CELLS), cnn_pipeline.predict_proba(CELLS))
    manifest = read_manifest(path)
    assert manifest["metadata"] == {"cv_accuracy": 0.9}
    assert [(e["param"], e["bundled"]) for e in manifest["onnx"]] == [("cnnembedding__model", True)]


def test_round_trip_forest_is_trusted(tmp_path):
    X = RNG.normal(size=(40, 3))
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, X[:, 0] > 0)
    loaded = load_model(save_model(forest, tmp_path / "rf.featcell"))
    assert_array_equal(loaded.predict_proba(X), forest.predict_proba(X))


def test_manifest_records_versions(tmp_path):
    path = save_model(LogisticRegression(), tmp_path / "lr.featcell")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "model.skops"]
    manifest = read_manifest(path)
    for name in ("python", "featcell", "scikit-learn", "numpy", "onnxruntime", "skops"):
        assert manifest["versions"][name]
    assert datetime.fromisoformat(manifest["created"]).tzinfo is not None
    assert manifest["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_version_mismatch_warns(tmp_path):
    path = save_model(LogisticRegression(), tmp_path / "lr.featcell")

    def older(data):
        manifest = json.loads(data)
        manifest["versions"]["scikit-learn"] = "0.24.2"
        manifest["versions"]["onnxruntime"] = "1.0.0"  # irrelevant: no network in the model
        return json.dumps(manifest)

    rewrite(path, **{"manifest.json": older})
    with pytest.warns(VersionMismatchWarning, match=r"scikit-learn 0\.24\.2 \(installed") as record:
        load_model(path)
    assert "onnxruntime" not in str(record[0].message)


def test_untrusted_type_is_refused(tmp_path):
    model = make_pipeline(CropMean(), LogisticRegression()).fit(CELLS, Y)
    path = save_model(model, tmp_path / "custom.featcell")
    name = f"{__name__}.CropMean"
    with pytest.raises(UntrustedTypesFoundException, match=f"trusted=\\['{name}'\\]"):
        load_model(path)
    for trusted in ([name], [CropMean], True):
        loaded = load_model(path, trusted=trusted)
        assert_array_equal(loaded.predict(CELLS), model.predict(CELLS))
    with pytest.raises(TypeError, match="trusted must be"):
        load_model(path, trusted="yes")


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("featcell.cnn.CNNEmbedding", True),
        ("sklearn.pipeline.Pipeline", True),
        ("numpy.load", False),  # a function
        ("numpy.memmap", False),  # a class of a trusted package that opens a path
        ("scipy.io._netcdf.netcdf_file", False),
        ("posix.system", False),
        ("sklearn.base.defaultdict", False),
        ("sklearn.decomposition._pca.PCA", False),  # scikit-learn, but not in featcell's pipelines
        ("__main__.Anything", False),
    ],
)
def test_default_allowlist(name, trusted):
    assert (name in trusted_types()) is trusted
    assert not any(t.endswith("*") or t.count(".") < 1 for t in trusted_types())


def test_allowlist_covers_every_pipeline_featcell_builds():
    """Every type in featcell's own fitted pipelines is on the list (fast subset, no CNN).

    A failure names the new types: add them to persist._FEATCELL_TYPES (see
    tools/model_types.py, which also covers the CNN pipelines).
    """
    import importlib.util
    from pathlib import Path

    import skops.io as sio

    from featcell.persist import _types_in_payload

    spec = importlib.util.spec_from_file_location(
        "model_types", Path(__file__).resolve().parents[1] / "tools" / "model_types.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for name, model in tool.fitted_models(fast=True).items():
        missing = _types_in_payload(sio.dumps(model)) - trusted_types()
        assert not missing, f"{name}: {sorted(missing)}"


def test_user_onnx_travels_inside_the_file(tmp_path):
    network = tmp_path / "mynet.onnx"
    shutil.copyfile(BUNDLED_MODEL, network)
    model = make_pipeline(CNNEmbedding(str(network), input_size=32), LogisticRegression())
    model.fit(CELLS, Y)
    expected = model.predict_proba(CELLS)
    path = save_model(model, tmp_path / "model.featcell")
    network.unlink()  # "another machine": the original network is gone

    loaded = load_model(path, cache_dir=tmp_path / "cache")
    restored = loaded.get_params()["cnnembedding__model"]
    sha = read_manifest(path)["onnx"][0]["sha256"]
    assert restored == str(tmp_path / "cache" / "onnx" / f"{sha}.onnx")
    assert_array_equal(loaded.predict_proba(CELLS), expected)


def test_tampered_onnx_is_detected(tmp_path):
    network = tmp_path / "mynet.onnx"
    shutil.copyfile(BUNDLED_MODEL, network)
    model = CNNEmbedding(str(network), input_size=32).fit(CELLS)
    path = save_model(model, tmp_path / "model.featcell")
    sha = read_manifest(path)["onnx"][0]["sha256"]
    rewrite(path, **{f"onnx__{sha}.onnx": lambda data: data[:-1] + bytes([data[-1] ^ 1])})
    with pytest.raises(ValueError, match="modified or corrupted"):
        load_model(path, cache_dir=tmp_path / "cache")

    with open(network, "ab") as f:  # the network changes after fit
        f.write(b"\0")
    with pytest.raises(ValueError, match="changed since fit"):
        save_model(model, tmp_path / "again.featcell")


def test_corrupt_files(tmp_path):
    text = tmp_path / "model.featcell"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match="not a featcell model file"):
        load_model(text)
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_model(tmp_path / "missing.featcell")
    path = save_model(LogisticRegression(), tmp_path / "lr.featcell")
    rewrite(path, **{"model.skops": lambda data: data + b"\0"})
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        load_model(path)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_model(LogisticRegression(), tmp_path / "x.featcell", metadata={"a": object()})
