"""onnxruntime sessions: model files, execution providers, one shared session per model.

One :class:`onnxruntime.InferenceSession` per (model sha256, providers, threads,
optimisation) is built per process and shared by every estimator, so cloning in
cross-validation costs nothing. A model is a file path (checked by content hash)
or the bytes of a network held by a fitted estimator.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import warnings
from functools import lru_cache
from pathlib import Path

import onnxruntime as ort

from ..io import file_sha256

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "models" / "efficientnet_lite0.onnx"
_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

# onnxruntime CUDA provider options: channels-last convolutions and heuristic (not
# exhaustive) cuDNN algorithm choice ran the bundled model 1.3-1.4x faster on an H200.
_CUDA_OPTIONS = {"prefer_nhwc": "1", "cudnn_conv_algo_search": "HEURISTIC"}
# One InferenceSession per (model sha256, providers, threads, optimisation) and process.
_SESSIONS: dict = {}
_SESSIONS_LOCK = threading.Lock()
# Sessions of networks held as bytes (one per fold in cross-validation) are evicted oldest
# first beyond this many; model files are few and stay.
_MAX_NETWORK_SESSIONS = 8
_NETWORK_KEYS: list = []


# ---------------------------------------------------------------------- sessions
@lru_cache(maxsize=32)
def _sha256(path, mtime_ns, size):
    """Content hash of a model file (cached while the file is unchanged)."""
    return file_sha256(path)


def _file_sha256(path):
    stat = os.stat(path)
    return _sha256(str(path), stat.st_mtime_ns, stat.st_size)


def _resolve_model(model):
    """Path of the model file, checked to exist."""
    path = BUNDLED_MODEL if model is None else Path(os.fspath(model))
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    return path


def _resolve_providers(providers):
    """Execution providers to request, as a tuple of names."""
    available = ort.get_available_providers()
    if isinstance(providers, str):  # "auto"
        if "CUDAExecutionProvider" in available:
            return ("CUDAExecutionProvider", "CPUExecutionProvider")
        return ("CPUExecutionProvider",)
    names = tuple(providers)
    if not all(isinstance(name, str) for name in names):
        raise ValueError(
            f"providers must be 'auto' or a list of provider names such as "
            f"['CUDAExecutionProvider', 'CPUExecutionProvider']; got {providers!r}"
        )
    if not names or not any(name in available for name in names):
        raise ValueError(
            f"providers={list(providers)!r} names no execution provider available in this "
            f"onnxruntime; available: {available}"
        )
    return names


@lru_cache(maxsize=1)
def _preload_cuda_libraries():
    """Load CUDA and cuDNN from NVIDIA's pip packages (``onnxruntime-gpu[cuda,cudnn]``),
    so that the CUDA provider works without ``LD_LIBRARY_PATH``; once per process."""
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        warnings.warn(
            f"could not load CUDA libraries from NVIDIA's pip packages ({exc}); onnxruntime "
            f"will look for them on the system library path",
            RuntimeWarning,
            stacklevel=2,
        )


def _new_session(path, options, providers):
    """An InferenceSession of a model file (or the bytes of a network); CUDA gets
    ``_CUDA_OPTIONS`` unless this onnxruntime refuses them."""
    plain = list(providers)
    path = path if isinstance(path, bytes) else str(path)
    if "CUDAExecutionProvider" not in plain:
        return ort.InferenceSession(path, options, providers=plain)
    _preload_cuda_libraries()
    tuned = [(p, dict(_CUDA_OPTIONS)) if p == "CUDAExecutionProvider" else p for p in plain]
    try:
        return ort.InferenceSession(path, options, providers=tuned)
    except Exception:  # noqa: BLE001 - e.g. an older onnxruntime without these options
        return ort.InferenceSession(path, options, providers=plain)


def _get_session(path, sha256, providers, n_threads, optimization):
    """The process-wide InferenceSession for this model and settings, built once."""
    key = (sha256, providers, n_threads, optimization)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            options = ort.SessionOptions()
            options.graph_optimization_level = _OPTIMIZATION[optimization]
            if n_threads is not None:
                options.intra_op_num_threads = n_threads
            try:
                session = _new_session(path, options, providers)
            except Exception as exc:  # onnxruntime raises its own exception types
                what = "network" if isinstance(path, bytes) else f"model file {str(path)!r}"
                raise ValueError(
                    f"{what} is not a valid ONNX model that onnxruntime can load: {exc}"
                ) from exc
            _SESSIONS[key] = session
            if isinstance(path, bytes):  # trained networks: keep the most recent few
                _NETWORK_KEYS.append(key)
                while len(_NETWORK_KEYS) > _MAX_NETWORK_SESSIONS:
                    _SESSIONS.pop(_NETWORK_KEYS.pop(0), None)
    return session


def _model_name(session, path):
    """Name used in feature names: model metadata, else the file stem, letters/digits only."""
    meta = session.get_modelmeta().custom_metadata_map
    name = meta.get("featcell.model_name") or path.stem
    return re.sub(r"[^A-Za-z0-9]", "", name) or "Model"


def _network_session(network, sha256, providers, n_threads, who):
    """The shared session of a network held as ONNX bytes by a fitted estimator, after
    checking the bytes still have the SHA-256 recorded when it was exported."""
    if not isinstance(network, bytes):
        raise TypeError(f"{who}.network_ must be ONNX bytes, got {type(network).__name__}")
    actual = hashlib.sha256(network).hexdigest()
    if actual != sha256:
        raise ValueError(
            f"{who}.network_ has sha256 {actual[:12]}... but was exported with "
            f"{str(sha256)[:12]}...; the network was modified after fit, refusing to run it"
        )
    return _get_session(network, sha256, _resolve_providers(providers), n_threads, "all")
