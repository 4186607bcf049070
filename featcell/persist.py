"""Model files: save a fitted pipeline, load it safely on another machine.

A featcell model file is a zip archive holding

``manifest.json``
    Format version, creation time (UTC), the versions of Python, featcell,
    scikit-learn, NumPy, SciPy, onnxruntime and skops that wrote it, the
    SHA-256 of ``model.skops``, the ONNX models it carries and any user
    ``metadata``.
``model.skops``
    The estimator, serialised with :mod:`skops.io`.
``onnx/<sha256>.onnx``
    Every ONNX network the estimator uses, stored by content hash.

Why skops and not pickle: loading a pickle runs whatever code its author put
in it, so a model file shared by a collaborator or downloaded with a paper is
a program. skops rebuilds objects from a description and only instantiates
types it is told to trust. :func:`load_model` trusts, on top of skops' own
defaults, the classes defined by featcell, scikit-learn, NumPy, SciPy and
XGBoost (classes only, not arbitrary functions of those packages) and refuses
anything else, naming the types, unless ``trusted`` lists them.

Why the ONNX files travel inside: an estimator such as
:class:`~featcell.cnn.CNNEmbedding` stores only the *path* of its network
(``model`` parameter; ``None`` means featcell's bundled network). Saving copies
each network into the archive; loading checks its SHA-256 and restores it into
a cache folder (``cache_dir``, else ``$FEATCELL_CACHE_DIR``, else
``~/.cache/featcell``) and points the estimator there, unless the original
file (or the installed bundled model) is present with the same hash. A network
changed since ``fit`` or an archive entry that does not match its recorded
hash is an error, never a silent change of features.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import sys
import tempfile
import warnings
import zipfile
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path


from .io import file_sha256

__all__ = ["VersionMismatchWarning", "load_model", "read_manifest", "save_model"]

FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
_PAYLOAD = "model.skops"
# packages whose classes load without an explicit ``trusted``
_TRUSTED_PACKAGES = frozenset({"featcell", "sklearn", "numpy", "scipy", "xgboost"})
# distribution names recorded in the manifest and compared at load
_RECORDED = ("featcell", "scikit-learn", "numpy", "scipy", "onnxruntime", "skops", "xgboost")


class VersionMismatchWarning(UserWarning):
    """A model file was written with other library versions than those installed."""


# ---------------------------------------------------------------------- save
def save_model(model, path, *, metadata=None):
    """Save a fitted estimator, and the ONNX networks it uses, to one file.

    Parameters
    ----------
    model : estimator
        Any scikit-learn compatible estimator or pipeline, fitted or not.
    path : str or path-like
        The file to write (a zip archive; ``.featcell`` is a good suffix).
        It is written to a temporary file first and then renamed, so an
        interrupted save never leaves a half-written model.
    metadata : dict, optional
        JSON-serialisable information to keep with the model (training data,
        cross-validated scores, author...); read it back with
        :func:`read_manifest`.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If an ONNX file the model uses has changed since ``fit`` or
        ``metadata`` is not JSON-serialisable.
    FileNotFoundError
        If an ONNX file the model uses does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from featcell.persist import save_model, load_model
    >>> clf = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
    >>> path = save_model(clf, os.path.join(tempfile.mkdtemp(), "clf.featcell"))
    >>> load_model(path).predict([[0.9]])
    array([1])
    """
    path = Path(path)
    try:
        user_metadata = json.loads(json.dumps(metadata if metadata is not None else {}))
    except TypeError as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from exc
    networks = _onnx_networks(model)
    import skops.io as sio  # imported when used: skops (and what it imports) is slow

    payload = sio.dumps(model, compression=zipfile.ZIP_DEFLATED)
    manifest = {
        "format": "featcell-model",
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "estimator": f"{type(model).__module__}.{type(model).__qualname__}",
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "onnx": [{k: v for k, v in n.items() if k != "source"} for n in networks],
        "metadata": user_metadata,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_MANIFEST, json.dumps(manifest, indent=2))
            zf.writestr(_PAYLOAD, payload, compress_type=zipfile.ZIP_STORED)
            for sha in dict.fromkeys(n["sha256"] for n in networks):
                source = next(n["source"] for n in networks if n["sha256"] == sha)
                # network weights barely compress; storing keeps load fast
                zf.write(source, f"onnx/{sha}.onnx", compress_type=zipfile.ZIP_STORED)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


# ---------------------------------------------------------------------- load
def load_model(path, *, trusted=None, cache_dir=None):
    """Load a model saved by :func:`save_model`, refusing untrusted code.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_model`.
    trusted : bool or list of str, default=None
        Types to trust beyond the defaults (skops' own, and classes of
        featcell, scikit-learn, NumPy, SciPy and XGBoost), as the
        ``"module.Name"`` strings the refusal lists. ``True`` trusts every type
        in the file: only for files whose author you trust, since loading an
        untrusted type can run its code.
    cache_dir : str or path-like, optional
        Where ONNX networks carried by the file are restored. Default
        ``$FEATCELL_CACHE_DIR``, else ``~/.cache/featcell``; the networks go to
        its ``onnx/`` subfolder, named by SHA-256.

    Returns
    -------
    model : estimator
        The estimator, its ONNX ``model`` parameters pointing at files with
        the saved content.

    Raises
    ------
    skops.io.exceptions.UntrustedTypesFoundException
        If the file contains types that are neither trusted by default nor
        listed in ``trusted`` (a ``TypeError``).
    ValueError
        If ``path`` is not a featcell model file, or a stored network or the
        estimator does not match its recorded SHA-256.

    Warns
    -----
    VersionMismatchWarning
        If the file was written with other versions of featcell, scikit-learn,
        NumPy, SciPy, skops or Python (major.minor), or of onnxruntime or
        XGBoost when the model uses them.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from featcell.persist import save_model, load_model
    >>> path = save_model(StandardScaler().fit([[0.0], [2.0]]),
    ...                   os.path.join(tempfile.mkdtemp(), "scaler.featcell"))
    >>> load_model(path).mean_
    array([1.])
    """
    path = Path(path)
    manifest, payload = _read_archive(path)
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=payload)
    # onnxruntime and XGBoost versions matter only to models that use them
    ignored = {"onnxruntime"} if not manifest["onnx"] else set()
    if not any(name.startswith("xgboost.") for name in untrusted):
        ignored.add("xgboost")
    _warn_versions(manifest.get("versions", {}), path, ignored)
    if trusted is not True:
        if not (trusted is None or trusted is False or isinstance(trusted, (list, tuple, set))):
            raise TypeError(
                "trusted must be None, True or a list of type names such as "
                f"['mymodule.MyTransformer'], got {trusted!r}"
            )
        extra = set(trusted or ())
        refused = sorted(t for t in untrusted if t not in extra and not _trusted_by_default(t))
        if refused:
            raise _untrusted_error(refused, path)
    model = sio.loads(payload, trusted=untrusted)
    if manifest["onnx"]:
        _restore_networks(model, manifest["onnx"], path, cache_dir)
    return model


def read_manifest(path):
    """The manifest of a model file: versions, creation time, networks, metadata.

    Reading it runs no code from the file.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_model`.

    Returns
    -------
    manifest : dict
        Keys ``format_version``, ``created`` (ISO 8601, UTC), ``versions``,
        ``estimator``, ``onnx`` (one entry per network parameter) and
        ``metadata`` (what was passed to :func:`save_model`).

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.dummy import DummyClassifier
    >>> from featcell.persist import save_model, read_manifest
    >>> path = save_model(DummyClassifier(), os.path.join(tempfile.mkdtemp(), "m.featcell"),
    ...                   metadata={"trained_on": "coelho2009"})
    >>> read_manifest(path)["metadata"]
    {'trained_on': 'coelho2009'}
    """
    return _read_archive(Path(path), payload=False)[0]


# ---------------------------------------------------------------------- helpers
def _read_archive(path, payload=True):
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {str(path)!r}")
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read(_MANIFEST))
            data = zf.read(_PAYLOAD) if payload else None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{str(path)!r} is not a featcell model file (a zip with {_MANIFEST} and "
            f"{_PAYLOAD}, written by featcell.persist.save_model): {exc}"
        ) from exc
    if manifest.get("format") != "featcell-model":
        raise ValueError(f"{str(path)!r} is not a featcell model file (no featcell manifest)")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has model format {manifest['format_version']}, newer than this "
            f"featcell reads ({FORMAT_VERSION}); upgrade featcell"
        )
    if data is not None and hashlib.sha256(data).hexdigest() != manifest.get("payload_sha256"):
        raise ValueError(
            f"{str(path)!r}: {_PAYLOAD} does not match the SHA-256 recorded in its manifest; "
            "the file is corrupted or was modified"
        )
    return manifest, data


def _versions():
    versions = {"python": ".".join(map(str, sys.version_info[:3]))}
    for name in _RECORDED:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _warn_versions(recorded, path, ignored):
    installed = _versions()
    changed = []
    for name, saved in recorded.items():
        now = installed.get(name)
        if name in ignored:
            continue
        if name == "python":
            saved, now = ".".join(saved.split(".")[:2]), ".".join(now.split(".")[:2])
        if now is not None and now != saved:
            changed.append(f"{name} {saved} (installed {now})")
    if changed:
        warnings.warn(
            f"model file {str(path)!r} was written with {', '.join(changed)}; predictions may "
            "differ. Re-fit and save with the installed versions to silence this warning.",
            VersionMismatchWarning,
            stacklevel=3,
        )


def _trusted_by_default(name):
    """Whether ``name`` is a class defined in one of the trusted packages."""
    parts = name.split(".")
    if parts[0] not in _TRUSTED_PACKAGES:
        return False
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        # a class re-exported from another package (an alias) is not trusted
        module = getattr(obj, "__module__", None) or ""
        return isinstance(obj, type) and module.split(".")[0] in _TRUSTED_PACKAGES
    return False


def _untrusted_error(refused, path):
    from skops.io.exceptions import UntrustedTypesFoundException

    error = UntrustedTypesFoundException(refused)
    error.args = (
        (
            f"model file {str(path)!r} contains types that featcell does not trust by default: "
            f"{refused}. Loading them can run their code. If you trust the file's author, pass "
            f"load_model(..., trusted={refused!r}) (or trusted=True)."
        ),
    )
    return error


def _onnx_networks(model):
    """Every ONNX file that ``model`` (or a nested estimator) names in a ``model`` parameter."""
    if not hasattr(model, "get_params"):
        return []
    params = model.get_params(deep=True)
    networks = []
    for key, value in params.items():
        owner_key, _, name = key.rpartition("__")
        if name != "model":
            continue
        owner = params[owner_key] if owner_key else model
        bundled = value is None and type(owner).__module__ == "featcell.cnn"
        if bundled:
            from .cnn import BUNDLED_MODEL

            source = BUNDLED_MODEL
        elif isinstance(value, (str, os.PathLike)) and str(value).lower().endswith(".onnx"):
            source = Path(value)
        else:
            continue
        if not source.is_file():
            raise FileNotFoundError(
                f"ONNX model {str(source)!r} of parameter {key!r} does not exist"
            )
        sha = file_sha256(source)
        fitted = getattr(owner, "model_sha256_", None)
        if fitted is not None and fitted != sha:
            raise ValueError(
                f"ONNX model {str(source)!r} of parameter {key!r} has changed since fit "
                f"(sha256 {sha[:12]}..., fitted with {fitted[:12]}...); fit again before saving"
            )
        networks.append(
            {"param": key, "sha256": sha, "bundled": bundled, "path": str(source), "source": source}
        )
    return networks


def _cache_dir(cache_dir):
    if cache_dir is None:
        cache_dir = os.environ.get("FEATCELL_CACHE_DIR") or Path.home() / ".cache" / "featcell"
    return Path(cache_dir) / "onnx"


def _restore_networks(model, entries, path, cache_dir):
    """Check every stored network and point the estimator's parameters at a matching file."""
    updates = {}
    with zipfile.ZipFile(path) as zf:
        for entry in entries:
            sha = entry["sha256"]
            try:
                data = zf.read(f"onnx/{sha}.onnx")
            except KeyError:
                raise ValueError(
                    f"{str(path)!r} has no stored ONNX model for parameter {entry['param']!r} "
                    f"(onnx/{sha}.onnx); the file is incomplete"
                ) from None
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha:
                raise ValueError(
                    f"ONNX model of parameter {entry['param']!r} in {str(path)!r} has sha256 "
                    f"{actual[:12]}... but the file records {sha[:12]}...; the model file was "
                    "modified or corrupted"
                )
            if entry["bundled"]:
                from .cnn import BUNDLED_MODEL as original
            else:
                original = Path(entry["path"])
            if original.is_file() and file_sha256(original) == sha:
                continue  # bundled model or original network unchanged on this machine
            target = _cache_dir(cache_dir) / f"{sha}.onnx"
            if not (target.is_file() and file_sha256(target) == sha):
                _atomic_write(target, data)
            updates[entry["param"]] = str(target)
    if updates:
        model.set_params(**updates)


def _atomic_write(target, data):
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with io.FileIO(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
