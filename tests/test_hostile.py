"""featcell against hostile and faulty files: crafted model files, image bombs, bad folders.

Every hostile file is built inside the test's own ``tmp_path``; nothing is written
anywhere else (ONNX caches go to ``tmp_path`` through ``FEATCELL_CACHE_DIR``).
"""

import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import tifffile
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from skops.io.exceptions import UntrustedTypesFoundException

import featcell
from featcell.cli import main
from featcell.persist import load_model, save_model

DATA = Path(featcell.__file__).parent / "data"
LIVE_DEAD = DATA / "live_dead"


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATCELL_CACHE_DIR", str(tmp_path / "cache"))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- model files
def _payload(schema, entries=None):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("schema.json", json.dumps({**schema, "protocol": 2}))
        for name, data in (entries or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _model_file(path, payload, onnx=(), metadata=None, extra=None):
    """A featcell model file around ``payload``, with a manifest that matches it."""
    manifest = {
        "format": "featcell-model", "format_version": 1, "created": "2026-01-01T00:00:00+00:00",
        "versions": {}, "estimator": "x", "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "onnx": list(onnx), "metadata": metadata or {},
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("model.skops", payload)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def _object_schema(module, name):
    return {"__class__": name, "__module__": module, "__loader__": "ObjectNode",
            "content": json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps({}))).read("schema.json"))}


def _side_effect_module(folder, name):
    """A module that, when imported, writes a marker file next to itself."""
    marker = folder / f"{name}.imported"
    (folder / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nclass Thing:\n    pass\n")
    return marker


def test_a_module_named_by_the_file_is_not_imported(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = _side_effect_module(tmp_path, "fc_evil_top")
    path = _model_file(tmp_path / "evil.featcell", _payload(_object_schema("fc_evil_top", "Thing")))
    with pytest.raises(UntrustedTypesFoundException, match="fc_evil_top.Thing"):
        load_model(path)
    assert not marker.exists() and "fc_evil_top" not in sys.modules


def test_a_module_inside_a_trusted_package_is_not_imported(tmp_path, monkeypatch):
    # a module the user's environment has inside featcell's own package: once imported,
    # because the file named a class of "featcell"
    monkeypatch.setattr(featcell, "__path__", [*featcell.__path__, str(tmp_path)])
    marker = _side_effect_module(tmp_path, "fc_evil_inner")
    path = _model_file(tmp_path / "evil.featcell",
                       _payload(_object_schema("featcell.fc_evil_inner", "Thing")))
    with pytest.raises(UntrustedTypesFoundException, match="featcell.fc_evil_inner.Thing"):
        load_model(path)
    assert not marker.exists() and "featcell.fc_evil_inner" not in sys.modules


def _memmap_file(path, victim):
    """A model file whose only object is ``numpy.memmap(victim, mode="w+")``: it truncates."""
    args = json.loads(zipfile.ZipFile(io.BytesIO(
        sio.dumps((str(victim), "uint8", "w+", 0, (4,))))).read("schema.json"))
    empty = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps({}))).read("schema.json"))
    schema = {"__class__": "memmap", "__module__": "numpy", "__loader__": "LossNode",
              "__reduce__": {"args": args}, "content": empty}
    return _model_file(path, _payload(schema))


def test_a_class_of_a_trusted_package_that_opens_a_path_is_refused(tmp_path, capsys):
    victim = tmp_path / "precious.txt"
    victim.write_text("a week of results")
    path = _memmap_file(tmp_path / "memmap.featcell", victim)
    with pytest.raises(UntrustedTypesFoundException, match="numpy.memmap"):
        load_model(path)
    (tmp_path / "img").mkdir()
    code, _, err = run(capsys, "score", path, tmp_path / "img", "-o", tmp_path / "out.csv")
    assert code == 2
    assert "--trust numpy.memmap" in err and "trusted=" not in err
    assert victim.read_text() == "a week of results"


def test_cli_trust_option_loads_a_reviewed_type(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(20, 3)), columns=["a", "b", "c"])
    y = np.array(["x", "y"] * 10)
    model = make_pipeline(PCA(2), LogisticRegression()).fit(X.to_numpy(), y)
    path = save_model(model, tmp_path / "pca.featcell",
                      metadata={"kind": "table", "feature_columns": ["a", "b", "c"]})
    X.to_csv(tmp_path / "table.csv", index=False)
    code, _, err = run(capsys, "score", path, tmp_path / "table.csv", "-o", tmp_path / "p.csv")
    assert code == 2 and "--trust sklearn.decomposition._pca.PCA" in err
    code, _, err = run(capsys, "score", path, tmp_path / "table.csv", "-o", tmp_path / "p.csv",
                       "--trust", "sklearn.decomposition._pca.PCA")
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 20


def _set_sizes(path, name, size):
    """Rewrite the declared uncompressed size of entry ``name`` (a header lie)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    encoded = name.encode()
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_at = start + (46 if signature == b"PK\x01\x02" else 30)
            if data[name_at:name_at + len(encoded)] == encoded:
                data[start + offset:start + offset + 4] = size.to_bytes(4, "little")
            start += 4
    assert info.file_size != size
    path.write_bytes(bytes(data))


def test_model_file_entry_declaring_gigabytes_is_refused_without_reading(tmp_path):
    path = save_model(LogisticRegression(), tmp_path / "lr.featcell")
    _set_sizes(path, "model.skops", 0xFFFF0000)
    start = time.monotonic()
    with pytest.raises(ValueError, match="declares .* MiB uncompressed"):
        load_model(path)
    assert time.monotonic() - start < 5


def _write_bomb(zf, name, mib=96):
    """An entry of ``mib`` MiB of zeros, about 1000 times smaller once deflated."""
    with zf.open(name, "w", force_zip64=True) as f:
        block = bytes(1 << 20)
        for _ in range(mib):
            f.write(block)


@pytest.mark.parametrize("where", ["outer", "inner"])
def test_zip_bomb_in_a_model_file_is_refused_within_seconds(tmp_path, where):
    valid = save_model(LogisticRegression(), tmp_path / "lr.featcell")
    path = tmp_path / "bomb.featcell"
    if where == "outer":  # a bomb entry next to a valid manifest and payload
        shutil.copy(valid, path)
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
            _write_bomb(zf, "onnx/bomb.onnx")
    else:  # a bomb array inside the skops payload
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("schema.json", json.dumps(
                {**_object_schema("sklearn.pipeline", "Pipeline"), "protocol": 2}))
            _write_bomb(zf, "1.npy")
        _model_file(path, buffer.getvalue())
    assert path.stat().st_size < 2 << 20
    start = time.monotonic()
    with pytest.raises(ValueError, match="would inflate .* times"):
        load_model(path)
    assert time.monotonic() - start < 5


def test_a_zip_bomb_split_into_entries_under_the_floor_is_refused(tmp_path):
    """24 arrays of 16 MiB of zeros (each at the per-entry ratio floor) declared 384 MiB
    in a 0.4 MiB file, and loaded."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("schema.json", json.dumps(
            {**_object_schema("sklearn.pipeline", "Pipeline"), "protocol": 2}))
        for k in range(24):
            _write_bomb(zf, f"{k}.npy", mib=16)
    path = _model_file(tmp_path / "split.featcell", buffer.getvalue())
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match="25 entries would inflate .* times together"):
        load_model(path)


def _damage(path, kind):
    """``path`` with its manifest's deflate data flipped, an unknown compression method
    (99) or the "encrypted" flag on every entry."""
    data = bytearray(path.read_bytes())
    if kind == "deflate":
        start = data.find(b"PK\x03\x04")
        begin = start + 30 + int.from_bytes(data[start + 26:start + 28], "little")
        data[begin + 2:begin + 12] = bytes(b ^ 0xFF for b in data[begin + 2:begin + 12])
    for signature, method, flag in ((b"PK\x03\x04", 8, 6), (b"PK\x01\x02", 10, 8)):
        start = data.find(signature)
        while start >= 0:
            if kind == "method":
                data[start + method:start + method + 2] = (99).to_bytes(2, "little")
            elif kind == "encrypted":
                data[start + flag] |= 1
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("kind", ["deflate", "method", "encrypted", "nested"])
def test_a_damaged_model_zip_is_not_a_model_file(tmp_path, capsys, kind):
    """Bad deflate data, compression method 99, an "encrypted" flag or JSON nested 100,000
    deep gave zlib.error, NotImplementedError, RuntimeError or RecursionError tracebacks."""
    path = tmp_path / f"{kind}.featcell"
    with zipfile.ZipFile(save_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]),
                                    tmp_path / "good.featcell")) as good, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in good.namelist():
            data = good.read(name)
            zf.writestr(name, b"[" * 100_000 if kind == "nested" and name == "manifest.json"
                        else data)
    if kind != "nested":
        _damage(path, kind)
    with pytest.raises(ValueError, match="is not a featcell model file"):
        load_model(path)
    code, _, err = run(capsys, "score", path, tmp_path, "-o", tmp_path / "o.csv")
    assert code == 2 and "is not a featcell model file" in err and "Traceback" not in err


def test_crafted_tree_with_out_of_range_children_is_refused(tmp_path):
    from sklearn.tree import DecisionTreeClassifier

    X = np.random.default_rng(0).normal(size=(40, 2))
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, X[:, 0] > 0)
    path = save_model(tree, tmp_path / "tree.featcell")
    with zipfile.ZipFile(path) as zf:
        payload = zf.read("model.skops")
    inner = {}
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        for name in zf.namelist():
            inner[name] = zf.read(name)
    # the node array is the .npy whose record dtype names left_child
    for name, data in inner.items():
        if name.endswith(".npy") and b"left_child" in data[:400]:
            nodes = np.load(io.BytesIO(data))
            nodes["left_child"][0] = 10_000  # points far outside the array
            buffer = io.BytesIO()
            np.save(buffer, nodes)
            inner[name] = buffer.getvalue()
    schema = json.loads(inner.pop("schema.json"))
    schema.pop("protocol")
    _model_file(path, _payload(schema, inner))
    with pytest.raises(ValueError, match="out of range"):
        load_model(path)


def test_crafted_svm_and_xgboost_trees_are_refused(tmp_path):
    """libsvm and XGBoost follow their arrays without bounds checks: a model whose sizes or
    node indices were changed crashed ``featcell score`` (SIGSEGV) or read out of memory."""
    import xgboost as xgb
    from sklearn.svm import SVC, SVR

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.repeat(["a", "b", "c"], 20)
    for fitted, crafted in [
        (SVC().fit(X, y), {"support_vectors_": lambda m: m.support_vectors_[:1]}),
        (SVC().fit(X, y), {"_dual_coef_": lambda m: m._dual_coef_[:, :3]}),
        (SVC().fit(X, y), {"support_vectors_": lambda m: m.support_vectors_[:, :1].copy()}),
        (SVR().fit(X, X[:, 0]), {"support_": lambda m: m.support_ + 1000}),
    ]:
        path = save_model(fitted, tmp_path / "svm.featcell")
        assert load_model(path).predict(X[:2]).shape == (2,)  # as fitted: accepted
        for name, change in crafted.items():
            setattr(fitted, name, change(fitted))
        path = save_model(fitted, tmp_path / "svm.featcell")
        with pytest.raises(ValueError, match="support vector machine"):
            load_model(path)
    for field, value in [("left_children", 10**6), ("split_indices", 10**6),
                         ("right_children", 0)]:
        model = xgb.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(X, X[:, 0] > 0)
        assert load_model(save_model(model, tmp_path / "xgb.featcell")).predict(X).shape == (60,)
        state = json.loads(bytes(model.get_booster().save_raw("json")))
        state["learner"]["gradient_booster"]["model"]["trees"][0][field][0] = value
        booster = xgb.Booster()
        booster.load_model(bytearray(json.dumps(state).encode()))
        model._Booster = booster
        with pytest.raises(ValueError, match="XGBoost tree whose node indices"):
            load_model(save_model(model, tmp_path / "xgb.featcell"))


def test_tampered_manifest_fields_are_refused_naming_them(tmp_path, capsys):
    """A manifest whose fields have other types gave tracebacks (AttributeError, TypeError)
    or one-word errors ("onnx", "sha256") at the command line."""
    from sklearn.preprocessing import StandardScaler

    path = save_model(make_pipeline(StandardScaler(), LogisticRegression()).fit(
        np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2), tmp_path / "m.featcell",
        metadata={"kind": "table", "feature_columns": ["a", "b"]})
    with zipfile.ZipFile(path) as zf:
        good, payload = json.loads(zf.read("manifest.json")), zf.read("model.skops")
    pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]}).to_csv(tmp_path / "t.csv", index=False)
    for key, value, named in [
        ("versions", ["1"], "versions"), ("versions", {"numpy": 2}, "versions"),
        ("format_version", "9", "format_version"), ("onnx", [1], "onnx"),
        ("onnx", [{"param": "model", "sha256": "ab", "bundled": False, "path": "x"}], "onnx"),
        ("metadata", ["kind"], "metadata"), ("estimator", None, "estimator"),
    ]:
        tampered = tmp_path / f"{key}.featcell"
        with zipfile.ZipFile(tampered, "w") as zf:
            zf.writestr("manifest.json", json.dumps({**good, key: value}))
            zf.writestr("model.skops", payload)
        with pytest.raises(ValueError, match=f"manifest's {named} is missing or of the wrong"):
            load_model(tampered)
        code, _, err = run(capsys, "score", tampered, tmp_path / "t.csv", "-o", tmp_path / "o.csv")
        assert code == 2 and named in err and "Traceback" not in err
    with zipfile.ZipFile(tmp_path / "list.featcell", "w") as zf:
        zf.writestr("manifest.json", "[1, 2]")
        zf.writestr("model.skops", payload)
    with pytest.raises(ValueError, match="not a featcell model file"):
        load_model(tmp_path / "list.featcell")
    with zipfile.ZipFile(tmp_path / "kind.featcell", "w") as zf:
        zf.writestr("manifest.json", json.dumps({**good, "metadata": {"kind": "bogus"}}))
        zf.writestr("model.skops", payload)
    code, _, err = run(capsys, "score", tmp_path / "kind.featcell", tmp_path / "t.csv", "-o",
                       tmp_path / "o.csv")
    assert code == 2 and "kind 'bogus'" in err
    code, _, err = run(capsys, "score", path, tmp_path / "t.csv", "-o", tmp_path / "o.csv")
    assert code == 0, err  # the untampered file scores


def _cnn_model_file(tmp_path):
    from featcell import CellSet
    from featcell.cnn import CNNEmbedding

    crops = np.random.default_rng(0).integers(0, 4000, (6, 1, 36, 36), dtype=np.uint16)
    cells = CellSet.from_crops(crops, channels=["DNA"])
    model = make_pipeline(CNNEmbedding(input_size=32), LogisticRegression()).fit(
        cells, ["a", "b"] * 3)
    return save_model(model, tmp_path / "cnn.featcell", metadata={"kind": "cells"})


def _swap_network(path, network, patch_payload):
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        payload = zf.read("model.skops")
    old = manifest["onnx"][0]["sha256"]
    new = hashlib.sha256(network).hexdigest()
    if patch_payload:  # the estimator's fitted hash too: only the session check is left
        inner = {}
        with zipfile.ZipFile(io.BytesIO(payload)) as zf:
            for name in zf.namelist():
                inner[name] = zf.read(name).replace(old.encode(), new.encode())
        schema = json.loads(inner.pop("schema.json"))
        schema.pop("protocol")
        payload = _payload(schema, inner)
    entry = {**manifest["onnx"][0], "sha256": new, "bundled": False, "path": "/nonexistent.onnx"}
    return _model_file(path, payload, onnx=[entry], metadata=manifest["metadata"],
                       extra={f"onnx/{new}.onnx": network})


@pytest.mark.parametrize("patch_payload", [False, True])
def test_swapped_or_garbage_onnx_network_is_refused_at_load(tmp_path, capsys, patch_payload):
    path = _swap_network(_cnn_model_file(tmp_path), b"not a network" * 100, patch_payload)
    expected = "is not a network onnxruntime can run" if patch_payload else "fitted with"
    with pytest.raises(ValueError, match=expected):
        load_model(path)
    (tmp_path / "img").mkdir()
    tifffile.imwrite(tmp_path / "img" / "a.tif", np.zeros((32, 32), np.uint8))
    code, _, err = run(capsys, "score", path, tmp_path / "img", "-o", tmp_path / "o.csv")
    assert code == 2 and "modified or corrupted" in err
    assert not (tmp_path / "o.csv").exists()


def test_a_path_the_manifest_names_is_not_read_unless_it_may_be_the_network(tmp_path,
                                                                            monkeypatch):
    """load_model hashed whatever local file the manifest named as the network's original
    (a 20 GiB sparse file: 65 s); only a file of the stored network's size may be it."""
    path = _cnn_model_file(tmp_path)
    with zipfile.ZipFile(path) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    manifest = json.loads(entries["manifest.json"])
    huge = tmp_path / "huge.onnx"
    with open(huge, "wb") as f:
        f.truncate(16 << 30)  # sparse: 16 GiB of zeros, no disk used
    manifest["onnx"][0].update(bundled=False, path=str(huge))
    entries["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    hashed = []

    def spy(file):
        hashed.append(Path(file))
        return featcell.io.file_sha256(file)

    monkeypatch.setattr(featcell.persist, "file_sha256", spy)
    start = time.monotonic()
    load_model(path)
    assert huge not in hashed and time.monotonic() - start < 5


# --------------------------------------------------------------------------- folders
def _live_dead(root, n=3):
    """``n`` bundled colour PNGs with their VOC boxes, in ``root/images`` and ``root/boxes``."""
    (root / "images").mkdir(parents=True)
    (root / "boxes").mkdir()
    for image in sorted((LIVE_DEAD / "images").iterdir())[:n]:
        shutil.copy(image, root / "images" / f"z{image.name}")
        shutil.copy(LIVE_DEAD / "annotations" / f"{image.stem}.xml",
                    root / "boxes" / f"z{image.stem}.xml")
    return root


def _png_bomb(path, side=60_000):
    """A PNG whose header declares side x side pixels: a few hundred bytes on disk."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (side + 1) * 4)  # the start of an all-black image
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows)
                     + chunk(b"IEND", b""))
    return path


def _tiff_bomb(path, side=60_000):
    """A TIFF whose tags declare side x side pixels over a 16 x 16 strip."""
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8))
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        offsets = [tags[name].valueoffset for name in ("ImageWidth", "ImageLength")]
        kinds = [tags[name].dtype for name in ("ImageWidth", "ImageLength")]
    for offset, kind in zip(offsets, kinds):
        size = 2 if int(kind) == 3 else 4
        data[offset:offset + size] = side.to_bytes(size, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def hostile_folder(tmp_path):
    """Three good images, and before them in sorted order everything that once stopped a run."""
    root = _live_dead(tmp_path / "data")
    images = root / "images"
    (images / "0corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    (images / "._zb_1857.png").write_bytes(b"\0\5\26\7AppleDouble sidecar")
    (images / "00folder.png").mkdir()
    first = min(images.glob("z*.png"))
    shutil.copy(first, images / "0nolabel.png")  # no 0nolabel.xml in boxes/
    _png_bomb(images / "0bomb.png")
    _tiff_bomb(images / "0bomb.tif")
    return root


def test_extract_no_file_decides_the_run(hostile_folder, tmp_path, capsys):
    out = tmp_path / "features.csv"
    code, _, err = run(capsys, "extract", hostile_folder / "images", "--labels",
                       hostile_folder / "boxes", "--families", "morphology", "-o", out)
    assert code == 0, err
    cells = pd.read_csv(out)
    assert sorted(cells["Metadata_ImageID"].unique()) == sorted(
        p.name for p in (hostile_folder / "images").glob("z*.png"))
    errors = pd.read_csv(tmp_path / "features_errors.csv")
    # every failure names its file; the sidecar and the folder are not images at all
    assert sorted(Path(p).name for p in errors["path"]) == [
        "0bomb.png", "0bomb.tif", "0corrupt.png", "0nolabel.png"]
    bombs = errors[errors["path"].str.contains("bomb")]
    assert bombs["message"].str.contains("--max-pixels").all()
    assert not errors["message"].str.contains("ffmpeg|pyav|video|codec", case=False).any()
    assert "Traceback" not in err and "Warning" not in err


def test_bomb_anywhere_is_one_failed_image_and_the_limit_can_be_raised(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    cell = np.zeros((64, 64), np.uint8)
    cell[20:40, 20:40] = 200  # one cell: a run that finds none exits non-zero
    tifffile.imwrite(images / "a.tif", cell)
    _tiff_bomb(images / "b.tif")
    tifffile.imwrite(images / "c.tif", cell)
    from featcell.io import read_image

    start = time.monotonic()
    with pytest.raises(ValueError, match="declares 60000 x 60000 pixels"):
        read_image(images / "b.tif")
    with pytest.raises(ValueError, match="limit of 1,000"):
        read_image(images / "a.tif", max_pixels=1000)
    assert time.monotonic() - start < 2
    assert read_image(images / "a.tif", max_pixels=64 * 64).shape == (64, 64)
    code, _, err = run(capsys, "extract", images, "--families", "intensity", "-o",
                       tmp_path / "f.parquet", "--max-pixels", "5000")
    assert code == 0, err  # 64 x 64 = 4096 pixels pass, the bomb fails alone
    errors = pd.read_parquet(tmp_path / "f_errors.parquet")
    assert [Path(p).name for p in errors["path"]] == ["b.tif"]


def test_grey_first_among_colour_fails_alone_naming_as_gray(tmp_path, capsys):
    root = _live_dead(tmp_path / "data")
    from PIL import Image

    Image.open(min((root / "images").glob("*.png"))).convert("L").save(
        root / "images" / "0grey.png")
    (root / "boxes" / "0grey.xml").write_bytes(
        min((root / "boxes").glob("*.xml")).read_bytes())
    out = tmp_path / "f.parquet"
    code, out_text, err = run(capsys, "extract", root / "images", "--labels", root / "boxes",
                              "--families", "intensity", "-o", out)
    assert code == 0 and "--as-gray" in out_text + err  # no single file decides the run
    assert pd.read_parquet(out)["Metadata_ImageID"].nunique() == 3
    errors = pd.read_parquet(tmp_path / "f_errors.parquet")
    assert [Path(p).name for p in errors["path"]] == ["0grey.png"]
    code, out_text, err = run(capsys, "train", root / "images", "--labels", root / "boxes",
                              "--target", "Class", "--families", "intensity", "--model", "lr",
                              "--cv", "2", "-o", tmp_path / "m.featcell")
    assert code == 0, err  # train reads the cells itself: the same rule
    assert "using those with channels ['Ch1', 'Ch2', 'Ch3'], the others are skipped" in out_text + err
    # half and half: no majority to follow, an error before any work
    for name in ("1grey.png", "2grey.png"):
        shutil.copy(root / "images" / "0grey.png", root / "images" / name)
        shutil.copy(root / "boxes" / "0grey.xml", root / "boxes" / name.replace("png", "xml"))
    code, _, err = run(capsys, "extract", root / "images", "--labels", root / "boxes",
                       "--families", "intensity", "-o", tmp_path / "g.parquet")
    assert code == 2 and "--as-gray" in err and not (tmp_path / "g.parquet").exists()
    code, _, err = run(capsys, "extract", root / "images", "--labels", root / "boxes",
                       "--families", "intensity", "--as-gray", "-o", out, "--overwrite")
    assert code == 0, err
    assert pd.read_parquet(out)["Metadata_ImageID"].nunique() == 6


def test_cnn_extract_survives_an_empty_first_image(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "a_empty.tif", np.zeros((64, 64), np.uint8))  # no cell at all
    blob = np.zeros((64, 64), np.uint8)
    blob[20:40, 20:40] = 200
    tifffile.imwrite(images / "b_cell.tif", blob)
    code, _, err = run(capsys, "extract", images, "--families", "cnn", "-o",
                       tmp_path / "emb.parquet")
    assert code == 0, err
    table = pd.read_parquet(tmp_path / "emb.parquet")
    assert set(table["Metadata_ImageID"]) == {"b_cell.tif"}


def test_nothing_extracted_or_scored_exits_non_zero(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"not a png")
    (images / "b.tif").write_bytes(b"not a tiff")
    out = tmp_path / "f.csv"
    code, _, err = run(capsys, "extract", images, "-o", out)
    assert code == 2 and "none of the 2 images" in err
    assert not out.exists() or out.stat().st_size > 0
    model = _cnn_model_file(tmp_path)
    code, _, err = run(capsys, "score", model, images, "-o", tmp_path / "p.csv")
    assert code == 2 and "could be scored" in err


def test_csv_outputs_are_never_empty_files(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    from featcell.batch import score_images

    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "blank.tif", np.zeros((32, 32), np.uint8))  # no cells
    step = FunctionTransformer(lambda cells: np.ones((len(cells), 1))).fit(None)
    result = score_images(step, images, None, tmp_path / "out.csv", progress=False)
    for path in (result.cells_path, result.images_path, result.errors_path):
        assert path.stat().st_size > 0
        pd.read_csv(path)  # pandas reads each
    assert result.n_images == 1 and result.n_cells == 0


# --------------------------------------------------------------------------- every command
@pytest.fixture
def labelled_with_bad_files(tmp_path):
    """Four good images with boxes, plus a corrupt PNG and an image without boxes first."""
    root = _live_dead(tmp_path / "data", n=4)
    (root / "images" / "0corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    shutil.copy(min((root / "images").glob("z*.png")), root / "images" / "0nolabel.png")
    return root


@pytest.mark.parametrize("command", ["train", "compare"])
def test_train_and_compare_skip_and_name_bad_images(labelled_with_bad_files, tmp_path, capsys,
                                                     command):
    root = labelled_with_bad_files
    argv = [command, root / "images", "--labels", root / "boxes", "--target", "Class",
            "--families", "morphology", "--model", "lr", "--cv", "2", "--as-gray"]
    if command == "train":
        argv += ["-o", tmp_path / "m.featcell"]
    else:
        argv += ["--candidates", "classical", "--no-importance", "-o", tmp_path / "report"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert "skipped 0corrupt.png" in err and "skipped 0nolabel.png" in err
    assert "read 4 images" in err


def test_score_with_a_counting_model_survives_bad_images(tmp_path, capsys):
    from featcell.counting import make_counter

    images = sorted((DATA / "bbbc005" / "images").iterdir())[:6]
    counts = pd.read_csv(DATA / "bbbc005" / "counts.csv").set_index("image")["count"]
    model = make_counter("segmentation").fit([str(p) for p in images],
                                             counts.loc[[p.name for p in images]].to_numpy())
    path = save_model(model, tmp_path / "counter.featcell",
                      metadata={"kind": "images", "task": "counting"})
    folder = tmp_path / "new"
    folder.mkdir()
    for image in images[:3]:
        shutil.copy(image, folder / image.name)
    (folder / "0corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    _png_bomb(folder / "0bomb.png")
    out = tmp_path / "counts.csv"
    code, _, err = run(capsys, "score", path, folder, "-o", out)
    assert code == 0, err
    assert sorted(pd.read_csv(out)["Metadata_ImageID"]) == sorted(p.name for p in images[:3])
    errors = pd.read_csv(tmp_path / "counts_errors.csv")
    assert sorted(Path(p).name for p in errors["path"]) == ["0bomb.png", "0corrupt.png"]
    assert errors["message"].str.startswith(("0bomb.png", "0corrupt.png")).all()
    assert "internal error" not in err and "Traceback" not in err


# --------------------------------------------------------------------------- fail early
def _tiny_folder(root, n=3):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        image = (rng.random((48, 48)) * 30).astype(np.uint8)
        image[10:20, 10:20] += 180
        image[28:40, 26:38] += 150
        tifffile.imwrite(root / f"img{i:02d}.tif", image)
    return root


@pytest.mark.parametrize("command", ["extract", "train", "compare"])
def test_unwritable_output_fails_before_any_work(tmp_path, capsys, command):
    images = _tiny_folder(tmp_path / "images")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    output = {"extract": blocker / "f.parquet", "train": blocker / "m.featcell",
              "compare": blocker / "report"}[command]
    argv = [command, images, "-o", output]
    if command != "extract":
        argv += ["--target", "ImageID"]
    start = time.monotonic()
    code, _, err = run(capsys, *argv)
    assert code == 2 and "cannot write" in err
    assert "reading images" not in err and "cross-validating" not in err
    assert time.monotonic() - start < 10


def test_full_disk_leaves_no_tmp_and_a_rerun_resumes(tmp_path, monkeypatch):
    import errno

    import pyarrow.parquet as pq
    from sklearn.preprocessing import FunctionTransformer

    from featcell.batch import score_images

    images = _tiny_folder(tmp_path / "images", n=4)
    step = FunctionTransformer(lambda cells: np.ones((len(cells), 1))).fit(None)
    original, calls = pq.ParquetWriter.write_table, {"n": 0}

    def full_after_one(self, table, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_after_one)
    with pytest.raises(OSError, match="No space left"):
        score_images(step, images, None, tmp_path / "out", progress=False, chunk_size=1)
    assert not list((tmp_path / "out").rglob("*.tmp"))
    monkeypatch.setattr(pq.ParquetWriter, "write_table", original)
    again = score_images(step, images, None, tmp_path / "out", progress=False, chunk_size=1)
    assert again.n_resumed == 1 and again.n_images == 4
    assert not (tmp_path / "out" / "parts").exists()  # removed after the complete run


def test_full_disk_on_the_command_line_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    import pyarrow.parquet as pq

    images = _tiny_folder(tmp_path / "images")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    code, _, err = run(capsys, "extract", images, "--families", "intensity", "-q",
                       "-o", tmp_path / "f.parquet")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("featcell: error: No space left")
    assert not list(tmp_path.rglob("*.tmp"))


def test_other_settings_name_the_parts_folder_and_overwrite(tmp_path, capsys):
    images = _tiny_folder(tmp_path / "images")
    out = tmp_path / "f.parquet"
    code, _, err = run(capsys, "extract", images, "--families", "intensity", "-o", out,
                       "--keep-parts", "-q")
    assert code == 0 and (tmp_path / "f_parts").is_dir()
    code, _, err = run(capsys, "extract", images, "--families", "morphology", "-o", out, "-q")
    assert code == 2 and "f_parts" in err and "--overwrite" in err and "resume=" not in err
    code, _, err = run(capsys, "extract", images, "--families", "morphology", "-o", out,
                       "--overwrite", "-q")
    assert code == 0, err
    assert "Cells_AreaShape_Area" in pd.read_parquet(out).columns
    assert not (tmp_path / "f_parts").exists()  # removed after success without --keep-parts


# --------------------------------------------------------------------------- signals, warnings
def _many_images(folder, n):
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        image = (rng.random((160, 160)) * 40).astype(np.uint8)
        for y, x in rng.integers(10, 140, (12, 2)):
            image[y:y + 12, x:x + 12] += 150
        tifffile.imwrite(folder / f"f{i:03d}.tif", image)
    return folder


def test_sigterm_writes_the_finished_chunk_and_leaves_no_worker(tmp_path):
    psutil = pytest.importorskip("psutil")
    images = _many_images(tmp_path / "images", 80)
    out = tmp_path / "f.parquet"
    command = [sys.executable, "-m", "featcell.cli", "extract", str(images), "-o", str(out),
               "--families", "texture", "--n-jobs", "2"]
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(command, cwd=root, stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "f_parts"
    deadline = time.monotonic() + 120
    while not list(parts.glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
        assert process.poll() is None, process.stderr.read()
    workers = psutil.Process(process.pid).children(recursive=True)
    assert workers, "expected joblib worker processes"
    process.terminate()  # SIGTERM
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers left behind: {[p.pid for p in alive]}"
    assert list(parts.glob("part-*.parquet")) and not list(parts.glob("*.tmp"))
    done = subprocess.run([*command, "-q"], cwd=root, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert pd.read_parquet(out)["Metadata_ImageID"].nunique() == 80


def _absurd_voc(path, name="cell"):
    path.write_text(
        "<annotation><object><name>" + name + "</name><bndbox><xmin>1e300</xmin>"
        "<ymin>1</ymin><xmax>1e308</xmax><ymax>5</ymax></bndbox></object></annotation>")


@pytest.mark.parametrize("quiet", [False, True])
def test_no_library_warning_reaches_the_user_even_from_workers(hostile_folder, tmp_path, quiet):
    _absurd_voc(hostile_folder / "boxes" / "zb_1857.xml")  # a box at 1e300 pixels
    command = [sys.executable, "-X", "dev", "-m", "featcell.cli", "extract",
               str(hostile_folder / "images"), "--labels", str(hostile_folder / "boxes"),
               "--families", "intensity", "--n-jobs", "2", "-o", str(tmp_path / "f.csv")]
    done = subprocess.run(command + (["-q"] if quiet else []), capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    for word in ("Warning", "warning:", "unclosed", "DICOM", "overflow", "iterator"):
        assert word not in done.stderr, done.stderr
    errors = pd.read_csv(tmp_path / "f_errors.csv")
    assert errors["path"].str.endswith("zb_1857.png").any()


# --------------------------------------------------------------------------- clear errors
def test_corrupt_png_is_not_answered_with_video_codecs(tmp_path):
    from featcell.io import read_image

    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(ValueError, match="broken.png") as info:
        read_image(path)
    assert not any(word in str(info.value).lower()
                   for word in ("ffmpeg", "pyav", "video", "codec", "plugin"))


def test_z_stack_gets_an_actionable_message(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "stack.tif", np.zeros((20, 48, 48), np.uint16),
                     metadata={"axes": "ZYX"})
    tifffile.imwrite(images / "plane.tif", np.zeros((48, 48), np.uint16))
    (tmp_path / "labels").mkdir()
    for name in ("stack.tif", "plane.tif"):
        labels = np.zeros((48, 48), np.uint16)
        labels[10:20, 10:20] = 1
        tifffile.imwrite(tmp_path / "labels" / name, labels)
    code, _, err = run(capsys, "extract", images, "--labels", tmp_path / "labels",
                       "--families", "intensity", "-o", tmp_path / "f.csv")
    assert code == 0, err
    message = pd.read_csv(tmp_path / "f_errors.csv")["message"].iloc[0]
    # the hint names what the command line can do, not a "channels first?" guess
    assert "z-stack" in message and "--z-project" in message and "--channel-axis" in message


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (("<name>cell</name><bndbox><xmin>nan</xmin><ymin>1</ymin><xmax>4</xmax>"
          "<ymax>5</ymax></bndbox>"), "xmin=nan"),
        ("<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax><ymax>5</ymax></bndbox>",
         "has no <name>"),
        (("<name>cell</name><bndbox><xmin>1e300</xmin><ymin>1</ymin><xmax>1e308</xmax>"
          "<ymax>5</ymax></bndbox>"), "expected finite pixel positions"),
    ],
)
def test_voc_objects_without_name_or_with_bad_boxes(tmp_path, obj, expected):
    from featcell.io import read_voc

    path = tmp_path / "a.xml"
    path.write_text(f"<annotation><object>{obj}</object></annotation>")
    with pytest.raises(ValueError, match=expected) as info:
        read_voc(path)
    assert "a.xml" in str(info.value)


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        (np.array(["live", None] * 10, dtype=object), "missing values"),
        (np.array(["live", 1] * 10, dtype=object), "mixes labels of different types"),
    ],
)
def test_labels_of_none_or_mixed_types(y, expected):
    from featcell.evaluation import evaluate

    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match=expected):
        evaluate(LogisticRegression(), X, y, np.repeat(np.arange(10), 2), cv=2)


def test_negative_counts_are_refused(tmp_path, capsys):
    from featcell.counting import SegmentationCounter

    images = [np.zeros((32, 32)) for _ in range(3)]
    with pytest.raises(ValueError, match="negative"):
        SegmentationCounter().fit(images, [1, -2, 3])
    folder = _tiny_folder(tmp_path / "images")
    pd.DataFrame({"image": [p.name for p in sorted(folder.iterdir())],
                  "count": [2, -1, 2]}).to_csv(tmp_path / "counts.csv", index=False)
    code, _, err = run(capsys, "train", folder, "--metadata", tmp_path / "counts.csv",
                       "--target", "count", "--task", "counting", "-o", tmp_path / "c.featcell")
    assert code == 2 and "negative" in err


def test_a_listed_class_called_with_the_files_arguments_is_refused(tmp_path):
    # bytearray is on the list (featcell's models hold bytearrays) but calling it with a
    # size from the file would allocate a terabyte
    args = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps((10**12,)))).read("schema.json"))
    empty = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps({}))).read("schema.json"))
    schema = {"__class__": "bytearray", "__module__": "builtins", "__loader__": "LossNode",
              "__reduce__": {"args": args}, "content": empty}
    path = _model_file(tmp_path / "alloc.featcell", _payload(schema))
    start = time.monotonic()
    with pytest.raises(UntrustedTypesFoundException, match="builtins.bytearray"):
        load_model(path)
    assert time.monotonic() - start < 5


def test_bombs_declared_in_samples_or_in_the_ome_header_are_refused_before_decoding(tmp_path):
    from featcell.io import read_image, read_image_metadata

    # one page of 1,000 separate samples: 36 KB holding 4,096,000 values
    tifffile.imwrite(tmp_path / "samples.tif", np.zeros((1000, 64, 64), np.uint8),
                     planarconfig="separate", photometric="minisblack", compression="zlib")
    with pytest.raises(ValueError, match="64 x 64 pixels x 1,000 planes"):
        read_image(tmp_path / "samples.tif", max_pixels=5000)
    # an OME header declaring 10**6 time points over one page: tifffile would fill them in
    xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/'
           'Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" '
           'DimensionOrder="XYCZT" Type="uint8" SizeX="64" SizeY="64" SizeC="1" SizeZ="1" '
           'SizeT="1000000"><Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData IFD="0" '
           'PlaneCount="1"/></Pixels></Image></OME>')
    tifffile.imwrite(tmp_path / "t.ome.tif", np.zeros((64, 64), np.uint8), description=xml,
                     metadata=None)
    start = time.monotonic()
    for read in (read_image, read_image_metadata):
        with pytest.raises(ValueError, match="x 1,000,000 planes"):
            read(tmp_path / "t.ome.tif")
    assert time.monotonic() - start < 2


def test_only_png_jpeg_and_bmp_are_decoded_by_pillow(tmp_path):
    """An EPS named .png would be handed to Ghostscript by Pillow; a GIF or TIFF named .png
    decoded by a plugin nobody chose: each is refused by its header, naming the file."""
    from PIL import Image

    from featcell.io import read_image

    (tmp_path / "eps.png").write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto showpage\n")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "gif.png", format="GIF")
    for name in ("eps.png", "gif.png"):
        with pytest.raises(ValueError, match=f"{name}.*not a PNG, JPEG or BMP file"):
            read_image(tmp_path / name)
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(tmp_path / "jpeg.png", format="PNG")
    assert read_image(tmp_path / "jpeg.png").max() == 7


def test_label_files_that_would_take_gigabytes(tmp_path):
    from featcell import CellSet
    from featcell.io import read_labels

    image = np.ones((16, 16), np.float32)
    labels = np.zeros((16, 16), np.uint32)
    labels[4:8, 4:8], labels[10:12, 10:12] = 2**31 - 1, 5  # tables sized by the ids: 64 GB
    cells = CellSet.from_labels(image, labels)
    assert cells.metadata["Metadata_ObjectNumber"].tolist() == [5, 2**31 - 1]
    assert [int(cells.mask(i).sum()) for i in range(2)] == [4, 16]
    with pytest.raises(ValueError, match="ids below 2\\*\\*63"):  # they wrapped negative
        CellSet.from_labels(image, np.full((16, 16), 2**63 + 5, np.uint64))
    full = np.ones((16, 16), np.int64) * 9  # no background: the ids still kept
    assert CellSet.from_labels(image, full * 10**6).metadata["Metadata_ObjectNumber"].tolist() \
        == [9 * 10**6]
    # objects of two distant pixels: each window is the whole image
    scattered = np.zeros((256, 256), np.int32)
    for k in range(1, 251):
        scattered[0, k] = scattered[255, 255 - k] = k
    with pytest.raises(ValueError, match="times the 256 x 256 image"):
        CellSet.from_labels(np.ones((256, 256)), scattered)
    with pytest.raises(ValueError, match="times the 64 x 64 image"):
        CellSet.from_boxes(np.ones((64, 64)), np.tile([0, 0, 64, 64], (2000, 1)))
    # ids above int32 are refused, not wrapped (two objects merged, one lost)
    wide = np.zeros((8, 8), np.uint64)
    wide[:2], wide[4:6] = 2**32 + 1, 2**32
    tifffile.imwrite(tmp_path / "wide.tif", wide)
    with pytest.raises(ValueError, match="wide.tif.*ids up to 4294967297"):
        read_labels(tmp_path / "wide.tif")


def test_one_bad_dots_file_leaves_its_image_out_and_a_table_must_name_the_images(tmp_path,
                                                                               capsys):
    from PIL import Image

    from featcell.points import read_points

    (tmp_path / "images").mkdir()
    (tmp_path / "dots").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        image = rng.integers(0, 40, (48, 48)).astype(np.uint8)
        dots = np.zeros((48, 48, 3), np.uint8)
        for r, c in rng.integers(4, 44, (3 + i, 2)):
            image[r - 2 : r + 3, c - 2 : c + 3] = 220
            dots[r, c] = (255, 0, 0)
        Image.fromarray(image).save(tmp_path / "images" / f"{i:03d}cell.png")
        Image.fromarray(dots).save(tmp_path / "dots" / f"{i:03d}dots.png")
    (tmp_path / "dots" / "._002dots.png").write_bytes(b"\0\5\26\7AppleDouble")  # macOS sidecar
    assert len(read_points(tmp_path / "dots")) == 6
    (tmp_path / "dots" / "005dots.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, out, err = run(capsys, "train", tmp_path / "images", "--task", "counting", "--model",
                         "density", "--pixel-features", "filters", "--points",
                         tmp_path / "dots", "--cv", "2", "-o", tmp_path / "c.featcell")
    assert code == 0, err
    assert "1 of 6 images have no readable dots and are left out, e.g. 005cell.png" in out + err
    # a table naming none of the images: an error, not six images with no objects
    pd.DataFrame({"image": ["other.png"] * 3, "x": [1, 2, 3], "y": [4, 5, 6]}).to_csv(
        tmp_path / "points.csv", index=False)
    images = sorted(str(p) for p in (tmp_path / "images").iterdir())
    with pytest.raises(ValueError, match="names none of the 6 images"):
        read_points(tmp_path / "points.csv", images=images)


def test_cellpose_masks_beside_their_images_are_not_images(tmp_path):
    from featcell.io import list_images, read_image

    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ValueError, match="folder.png' is a folder, not an image file"):
        read_image(tmp_path / "folder.png")  # was pillow's "unknown error"

    for name in ("a.png", "a_cp_masks.png", "b.tif", "b_labels.tif", "c_masks.png"):
        (tmp_path / name).write_bytes(b"")
    # a mask without its image stays: it may be an image whose name ends so
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.tif", "c_masks.png"]
    assert [p.name for p in list_images(str(tmp_path / "*.png"))] == ["a.png", "c_masks.png"]


def test_more_tables_and_settings_that_gave_tracebacks(tmp_path, capsys):
    from featcell.points import read_points

    (tmp_path / "points.csv").write_text("x,y\n" + "1" * 200_000 + ",2\n")
    with pytest.raises(ValueError, match="points.csv' is not a readable table: field larger"):
        read_points(tmp_path / "points.csv")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"Metadata_ImageID": [f"i{k % 6}" for k in range(30)],
                          "Metadata_Class": [None] * 30, "f": rng.normal(size=30)})
    table.to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run(capsys, "train", tmp_path / "t.csv", "--target", "Metadata_Class",
                       "--model", "lr", "-o", tmp_path / "m.featcell")
    assert code == 2 and "has no values" in err
    table.assign(Metadata_Class=np.arange(30) % 2).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "out.csv").mkdir()
    code, _, err = run(capsys, "train", tmp_path / "t.csv", "--target", "Metadata_Class",
                       "--model", "lr", "-o", tmp_path / "m.featcell")
    assert code == 0, err
    code, _, err = run(capsys, "score", tmp_path / "m.featcell", tmp_path / "t.csv", "-o",
                       tmp_path / "out.csv")
    assert code == 2 and "out.csv' is a folder" in err
    for text in ("[1, 2]", "{\n"):
        (tmp_path / "t_settings.json").write_text(text)
        code, _, err = run(capsys, "train", tmp_path / "t.csv", "--target", "Metadata_Class",
                           "--model", "lr", "-o", tmp_path / "m.featcell")
        assert code == 2 and "t_settings.json" in err and "Traceback" not in err


def test_a_spreadsheet_error_in_a_feature_column_is_a_missing_value(tmp_path, capsys):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"Metadata_ImageID": [f"i{k % 6}" for k in range(40)],
                          "Metadata_Class": np.where(np.arange(40) % 2, "a", "b"),
                          "f": rng.normal(size=40) + np.arange(40) % 2, "g": rng.normal(size=40)})
    table = table.astype({"f": object})
    table.loc[3, "f"] = "#DIV/0!"
    table.to_csv(tmp_path / "t.csv", index=False)
    code, out, err = run(capsys, "train", tmp_path / "t.csv", "--target", "Metadata_Class",
                         "--model", "lr", "--group-by", "Metadata_ImageID", "-o",
                         tmp_path / "m.featcell")
    assert code == 0, err
    assert "column 'f' has 1 cells that are not numbers (e.g. '#DIV/0!' in row 5)" in out + err
    assert "x 2 features" in out + err  # was 1: the column went to the metadata unsaid
    table.loc[7, "f"] = "abc"
    table.to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run(capsys, "score", tmp_path / "m.featcell", tmp_path / "t.csv", "-o",
                       tmp_path / "p.csv")
    assert code == 0, err
    assert pd.read_csv(tmp_path / "p.csv")["Prediction"].notna().all()
    table.assign(f="text").to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run(capsys, "score", tmp_path / "m.featcell", tmp_path / "t.csv", "-o",
                       tmp_path / "p.csv")
    assert code == 2 and "feature column 'f' holds text" in err


def test_command_line_mistakes_a_newcomer_makes_fail_early_and_say_why(tmp_path, capsys):
    rng = np.random.default_rng(0)
    image = np.repeat(np.arange(10), 12)
    table = pd.DataFrame({"Metadata_ImageID": [f"im{i}.png" for i in image],
                          "Metadata_count": 80 + 7 * image, "Metadata_Class": image % 2,
                          "Metadata_size": rng.normal(size=120),
                          "AreaShape_Area": rng.normal(size=120)})
    table.to_csv(tmp_path / "t.csv", index=False)

    def train(*extra):
        return run(capsys, "train", tmp_path / "t.csv", "-o", tmp_path / "m.featcell", *extra)

    code, _, err = train("--target", "count")  # forgot --task counting
    assert code == 2 and "one number per image" in err and "--task counting" in err
    code, _, err = train("--target", "size")  # a measurement
    assert code == 2 and "120 different numbers, not classes" in err
    code, _, err = train("--target", "ImageID")
    assert code == 2 and "every class lies in a single group" in err
    for option in (["--model", "cnn"], ["--families", "morphology"]):
        code, _, err = train("--target", "Class", *option)
        assert code == 2 and "a feature table is used as it is" in err
    code, _, err = train("--target", "Class", "--n-jobs", "0")
    assert code == 2 and "non-zero integer" in err
    code, _, err = train("--target", "AreaShape_Area")
    assert code == 2 and "is a feature" in err
    code, _, err = train("--target", "Class", "--famlies", "morphology")
    assert code == 2 and "featcell train: error: unrecognized arguments: --famlies" in err
    (tmp_path / "t.h5ad").write_bytes(b"")
    code, _, err = run(capsys, "train", tmp_path / "t.h5ad", "--target", "Class", "-o",
                       tmp_path / "m.featcell")
    assert code == 2 and "t.parquet" in err
    # every image fails: the reason on the console, no empty table left to block a rerun
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    cell = np.zeros((32, 32), np.uint8)
    cell[8:20, 8:20] = 200
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(images / name, cell)
    out = tmp_path / "f.parquet"
    code, _, err = run(capsys, "extract", images, "--labels", labels, "-o", out)
    assert code == 2 and "no label image for 'a.tif'" in err
    assert not out.exists() and not (tmp_path / "f_parts").exists()
    blank = tmp_path / "blank"
    blank.mkdir()
    tifffile.imwrite(blank / "c.tif", np.zeros((32, 32), np.uint8))
    code, _, err = run(capsys, "extract", blank, "-o", tmp_path / "g.parquet")
    assert code == 2 and "no cell was found in the 1 images read" in err  # was exit 0


def test_a_per_image_table_may_name_the_images_without_their_extension(tmp_path):
    from featcell import read_cells

    cell = np.zeros((32, 32), np.uint8)
    cell[8:20, 8:20] = 200
    tifffile.imwrite(tmp_path / "well_A01.tif", cell)
    meta = pd.DataFrame({"Line": ["U2OS"]}, index=pd.Index(["well_A01"], name="image"))
    cells = read_cells([tmp_path / "well_A01.tif"], metadata=meta)
    assert cells.groups("Line").tolist() == ["U2OS"] * len(cells) and len(cells)
    tifffile.imwrite(tmp_path / "well_A01.ome.tif", cell)
    cells = read_cells([tmp_path / "well_A01.ome.tif"], metadata=meta)
    assert cells.groups("Line").tolist() == ["U2OS"] * len(cells) and len(cells)


def test_score_refuses_images_without_the_models_channels_before_the_work(tmp_path, capsys):
    root = _live_dead(tmp_path / "data")  # colour images and their boxes
    code, _, err = run(capsys, "train", root / "images", "--labels", root / "boxes", "--target",
                       "Class", "--families", "intensity", "--model", "lr", "--cv", "2", "-o",
                       tmp_path / "m.featcell")
    assert code == 0, err
    grey = tmp_path / "grey"
    grey.mkdir()
    from PIL import Image

    for path in sorted((root / "images").glob("*.png")):
        Image.open(path).convert("L").save(grey / path.name)
    code, _, err = run(capsys, "score", tmp_path / "m.featcell", grey, "--labels",
                       root / "boxes", "-o", tmp_path / "p.parquet")
    assert code == 2 and "the model measures 3 channel(s)" in err and "have 1" in err
    code, _, err = run(capsys, "score", tmp_path / "m.featcell", root / "images", "--labels",
                       root / "boxes", "--channels", "DNA", "-o", tmp_path / "p.parquet")
    assert code == 2 and "--channels names 1 channel(s) but the model measures 3" in err
    code, _, err = run(capsys, "score", tmp_path / "m.featcell", grey, "--labels",
                       root / "boxes", "--channels", "R", "G", "B", "-o", tmp_path / "p.parquet")
    assert code == 2 and "the model measures 3 channel(s)" in err  # named channels: not probed
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("x.png", "y.png"):
        (bad / name).write_bytes(b"not a png")
    code, _, err = run(capsys, "score", tmp_path / "m.featcell", bad, "-o", tmp_path / "q.parquet")
    assert code == 2 and "none of the 2 images could be scored" in err
    assert sorted(p.name for p in tmp_path.glob("q*")) == ["q_errors.parquet"]  # no empty tables


def test_a_numeric_design_is_classes_and_a_two_way_split_of_channels_is_refused():
    from featcell.cli import UserError, _Console, _check_target_by_group, _majority_channels

    wells = np.arange(6)
    dose = pd.Series(wells % 3)  # doses 0, 1, 2, two wells each: classes, not a count
    _check_target_by_group(dose, wells, "dose")
    with pytest.raises(UserError, match="one number per image"):
        _check_target_by_group(pd.Series([3, 8, 5, 3, 11, 9]), wells, "n")  # a count
    # one grey and one colour image: the file order would decide, so neither does
    for groups in ({1: ["a.png"], 3: ["b.png"]}, {3: ["a.png"], 1: ["b.png"]}):
        with pytest.raises(UserError, match="--as-gray"):
            _majority_channels(groups, _Console(quiet=True), "the others fail")
    assert _majority_channels({1: ["a", "b"], 3: ["c"]}, _Console(quiet=True), "") == 1


def test_a_finished_table_is_not_replaced_unasked(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    cell = np.zeros((32, 32), np.uint8)
    cell[8:20, 8:20] = 200
    tifffile.imwrite(images / "a.tif", cell)
    out = tmp_path / "f.parquet"
    code, _, err = run(capsys, "extract", images, "--families", "morphology", "intensity",
                       "-o", out)
    assert code == 0, err
    before = pd.read_parquet(out)
    code, _, err = run(capsys, "extract", images, "--families", "morphology", "-o", out)
    assert code == 2 and "already holds a finished table; add --overwrite" in err
    pd.testing.assert_frame_equal(pd.read_parquet(out), before)  # kept as it was
    code, _, err = run(capsys, "extract", images, "--families", "morphology", "-o", out,
                       "--overwrite")
    assert code == 0, err
    assert pd.read_parquet(out).shape[1] < before.shape[1]


def test_an_interruption_promises_a_resume_only_where_parts_were_written(tmp_path, capsys,
                                                                         monkeypatch):
    import featcell.batch
    import featcell.persist

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((16, 16), np.uint8))
    monkeypatch.setattr(featcell.batch, "score_images", interrupt)
    code, _, err = run(capsys, "extract", tmp_path, "-o", tmp_path / "f.parquet")
    assert code == 130 and "run the same command again to resume" in err
    (tmp_path / "m.featcell").write_bytes(b"model")
    for name in ("read_manifest", "load_model"):  # score, interrupted before any image
        monkeypatch.setattr(featcell.persist, name, interrupt)
    code, _, err = run(capsys, "score", tmp_path / "m.featcell", tmp_path, "-o",
                       tmp_path / "p.csv")
    assert code == 130 and "nothing was saved" in err  # it promised a resume


def test_a_model_file_cannot_lift_the_size_limit_or_hand_the_reader_settings(tmp_path, capsys):
    """score took a model file's reading settings as they were: a tampered file could lift
    the decompression-bomb limit (max_pixels), hand segment() any parameter, or give
    tracebacks with settings of other types."""
    root = _live_dead(tmp_path / "data")
    model = tmp_path / "m.featcell"
    code, _, err = run(capsys, "train", root / "images", "--labels", root / "boxes", "--target",
                       "Class", "--families", "intensity", "--model", "lr", "--cv", "2", "-o",
                       model, "-q")
    assert code == 0, err
    with zipfile.ZipFile(model) as zf:
        manifest, payload = json.loads(zf.read("manifest.json")), zf.read("model.skops")
    _tiff_bomb(root / "images" / "0bomb.tif", side=20_000)  # 400 M pixels, over the limit

    def tampered(name, **read):
        features = {**manifest["metadata"]["features"],
                    "read": {**manifest["metadata"]["features"]["read"], **read}}
        path = tmp_path / f"{name}.featcell"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("manifest.json", json.dumps(
                {**manifest, "metadata": {**manifest["metadata"], "features": features}}))
            zf.writestr("model.skops", payload)
        return path

    out = tmp_path / "scores.csv"
    code, _, err = run(capsys, "score", tampered("limit", max_pixels=10**12), root / "images",
                       "--labels", root / "boxes", "-o", out)
    assert code == 0, err  # the file's limit is dropped: the bomb fails alone
    errors = pd.read_csv(tmp_path / "scores_errors.csv")
    assert [Path(p).name for p in errors["path"]] == ["0bomb.tif"]
    assert errors["message"].str.contains("more than the limit").all()
    for name, read, named in [("segment", {"segment_kwargs": {"sigma": 4000}}, "segment_kwargs"),
                              ("margin", {"margin": "8"}, "margin='8'"),
                              ("channels", {"channels": 3}, "channels=3")]:
        code, _, err = run(capsys, "score", tampered(name, **read), root / "images", "--labels",
                           root / "boxes", "-o", tmp_path / f"{name}.csv")
        assert code == 2 and named in err and "was modified" in err and "Traceback" not in err
