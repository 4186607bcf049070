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
import io
import json
import os
import sys
import tempfile
import warnings
import zipfile
import zlib
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from .io import file_sha256

__all__ = [
    "VersionMismatchWarning",
    "load_model",
    "read_manifest",
    "save_model",
    "trusted_types",
]

FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
_PAYLOAD = "model.skops"
# The types a model file may hold without ``trusted=``: exactly those in the pipelines
# featcell builds, as listed by ``python tools/model_types.py`` (tests/test_persist.py
# checks the list covers them). A module that adds an estimator adds its class name here.
_FEATCELL_TYPES = (
    "featcell.cnn.CNNClassifier",
    "featcell.cnn.CNNDensityCounter",
    "featcell.cnn.CNNEmbedding",
    "featcell.cnn.CNNFusionClassifier",
    "featcell.counting.DensityCounter",
    "featcell.counting._NonNegativeCounts",
    "featcell.counting.SegmentationCounter",
    "featcell.features.cell_features.CellFeatures",
    "featcell.features.colocalization.Colocalization",
    "featcell.features.image.CNNPixelFeatures",
    "featcell.features.image.ImageFeatures",
    "featcell.features.image.PixelFeatures",
    "featcell.features.intensity.Intensity",
    "featcell.features.morphology.Morphology",
    "featcell.features.texture.Texture",
    "featcell.heads.BalancedClassifier",
    "featcell.heads._RareClassCalibration",
    "featcell.heads._RareClassLogisticRegressionCV",
)
_LIBRARY_TYPES = (
    "builtins.bool",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.dict",
    "builtins.float",
    "builtins.int",
    "builtins.list",
    "builtins.set",
    "builtins.str",
    "builtins.tuple",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.random.mtrand.RandomState",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.compose._target.TransformedTargetRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.frozen._frozen.FrozenEstimator",  # svm calibration of a one-row class
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.RidgeCV",
    "sklearn.model_selection._split.StratifiedKFold",  # lr_cv's inner folds
    "sklearn.naive_bayes.GaussianNB",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._label.LabelBinarizer",
    "sklearn.svm._classes.SVC",
    "sklearn.svm._classes.SVR",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",  # node indices are bounds-checked after loading
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
)
# NumPy scalars of the plain numeric dtypes (arrays' own dtypes are checked by numpy)
_NUMPY_SCALARS = tuple(
    f"numpy.{name}" for name in (
        "bool", "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
        "uint64", "float16", "float32", "float64", "longlong", "ulonglong", "intc", "uintc",
        "str_", "bytes_",
    )
)
_TRUSTED = frozenset((*_FEATCELL_TYPES, *_LIBRARY_TYPES, *_NUMPY_SCALARS))
# skops nodes that build an object by calling its class with arguments from the file
# (featcell's own models never use them; sklearn's Tree has its own fixed constructor)
_CALLING_LOADERS = frozenset({"LossNode", "ConstructorFromReduceNode", "QuantileForestNode"})
# size limits of a model file's zip entries (checked on the declared sizes, before reading)
_MAX_ENTRIES = 100_000
_MAX_ENTRY_BYTES = 2 << 30  # 2 GiB: a trained network or a big forest fits well below
_MAX_TOTAL_BYTES = 4 << 30
_MAX_RATIO = 200  # deflate manages ~1000x on zeros; fitted arrays compress far less
_RATIO_FLOOR_BYTES = 16 << 20  # small entries may compress as they like
# what reading a damaged or crafted zip raises (JSON and UTF-8 errors are ValueErrors; an
# unknown compression method, an "encrypted" flag, bad deflate data, JSON nested too deep)
_DAMAGED = (zipfile.BadZipFile, KeyError, ValueError, zlib.error, NotImplementedError,
            RuntimeError, EOFError)
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
    try:  # the schema is read as data: nothing it names is imported
        types, called = _schema_names(payload)
    except (*_DAMAGED, TypeError) as exc:
        raise ValueError(
            f"{str(path)!r}: {_PAYLOAD} is not a valid skops payload ({exc}); the file is "
            "corrupted or was modified"
        ) from exc
    # onnxruntime and XGBoost versions matter only to models that use them
    ignored = {"onnxruntime"} if not manifest["onnx"] else set()
    if not any(name.startswith("xgboost.") for name in types):
        ignored.add("xgboost")
    _warn_versions(manifest["versions"], path, ignored)
    if trusted is not True:
        if not (trusted is None or trusted is False or isinstance(trusted, (list, tuple, set))):
            raise TypeError(
                "trusted must be None, True or a list of type names such as "
                f"['mymodule.MyTransformer'], got {trusted!r}"
            )
        extra = {t if isinstance(t, str) else f"{t.__module__}.{t.__qualname__}"
                 for t in (trusted or ())}
        refused = sorted(t for t in types if t not in extra and t not in trusted_types())
        refused += sorted(t for t in called if t not in extra and t not in refused)
        if refused:
            raise _untrusted_error(refused, path)
    import skops.io as sio  # imported when used: skops (and what it imports) is slow

    model = sio.loads(payload, trusted=sorted(types))
    _check_trees(model, path)
    if manifest["onnx"]:
        _restore_networks(model, manifest["onnx"], path, cache_dir)
    return model


def trusted_types():
    """The types a model file may hold without ``trusted``: featcell's own pipelines.

    An exact list of ``"module.Name"`` strings (never a whole package): the
    estimators featcell builds (:func:`~featcell.make_cell_classifier`,
    :func:`~featcell.make_counter`, :func:`~featcell.heads.make_head` and the
    command line's pipelines), the scikit-learn and XGBoost classes inside them,
    and NumPy arrays, dtypes and scalars. A class not on it, even in a trusted
    package (``numpy.memmap`` opens and truncates the path it is given), is
    refused unless listed in ``load_model(..., trusted=...)``.

    Returns
    -------
    frozenset of str

    Examples
    --------
    >>> from featcell.persist import trusted_types
    >>> "sklearn.pipeline.Pipeline" in trusted_types(), "numpy.memmap" in trusted_types()
    (True, False)
    """
    return _TRUSTED


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
            _check_entries(zf, repr(str(path)))
            manifest = json.loads(zf.read(_MANIFEST))
            data = zf.read(_PAYLOAD) if payload else None
    except _DAMAGED as exc:
        raise ValueError(
            f"{str(path)!r} is not a featcell model file (a zip with {_MANIFEST} and "
            f"{_PAYLOAD}, written by featcell.persist.save_model): {exc}"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != "featcell-model":
        raise ValueError(f"{str(path)!r} is not a featcell model file (no featcell manifest)")
    _check_manifest(manifest, path)
    if manifest["format_version"] > FORMAT_VERSION:
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


def _check_manifest(manifest, path):
    """Refuse a manifest whose fields are not of the types :func:`save_model` writes."""
    def strings(value):
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items())

    def network(entry):
        return (isinstance(entry, dict) and isinstance(entry.get("param"), str)
                and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
                and all(c in "0123456789abcdef" for c in entry["sha256"])
                and isinstance(entry.get("bundled"), bool) and isinstance(entry.get("path"), str))

    checks = {
        "format_version": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "payload_sha256": lambda v: isinstance(v, str),
        "estimator": lambda v: isinstance(v, str),
        "created": lambda v: isinstance(v, str),
        "versions": strings,
        "onnx": lambda v: isinstance(v, list) and all(network(e) for e in v),
        "metadata": lambda v: isinstance(v, dict),
    }
    bad = [key for key, ok in checks.items() if key not in manifest or not ok(manifest[key])]
    if bad:
        raise ValueError(
            f"{str(path)!r} is not a valid featcell model file: its manifest's "
            f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} missing or of the wrong "
            "type; the file is corrupted or was modified"
        )


def _check_entries(zf, what):
    """Refuse a zip whose entries declare absurd sizes, before inflating any of them.

    Only the zip's central directory is read. An entry larger than
    ``_MAX_ENTRY_BYTES``, all entries together larger than ``_MAX_TOTAL_BYTES``, more
    than ``_MAX_ENTRIES`` entries, or an entry (or all entries together) of more than
    ``_RATIO_FLOOR_BYTES`` inflating more than ``_MAX_RATIO`` times (a zip bomb, whole
    or in pieces) is an error. Python's
    zipfile never inflates an entry beyond its declared size, so the declared sizes
    bound what reading the archive can allocate.
    """
    infos = zf.infolist()
    if len(infos) > _MAX_ENTRIES:
        raise ValueError(f"{what} has {len(infos)} entries (at most {_MAX_ENTRIES}); "
                         "it is not a featcell model file")
    total = total_packed = 0
    for info in infos:
        size, packed = info.file_size, max(info.compress_size, 1)
        total, total_packed = total + size, total_packed + packed
        if size > _MAX_ENTRY_BYTES or total > _MAX_TOTAL_BYTES:
            raise ValueError(
                f"{what}: entry {info.filename!r} declares {size / 2**20:,.0f} MiB "
                f"uncompressed (limit {_MAX_ENTRY_BYTES / 2**20:,.0f} MiB per entry, "
                f"{_MAX_TOTAL_BYTES / 2**20:,.0f} MiB in all); refused without reading it"
            )
        if size > _RATIO_FLOOR_BYTES and size / packed > _MAX_RATIO:
            raise ValueError(
                f"{what}: entry {info.filename!r} would inflate {size / packed:,.0f} times "
                f"({packed:,} bytes to {size:,}; limit {_MAX_RATIO}x), as a zip bomb does; "
                "refused without reading it"
            )
    if total > _RATIO_FLOOR_BYTES and total / total_packed > _MAX_RATIO:  # a bomb in pieces
        raise ValueError(
            f"{what}: its {len(infos)} entries would inflate {total / total_packed:,.0f} times "
            f"together ({total_packed:,} bytes to {total:,}; limit {_MAX_RATIO}x), as a zip "
            "bomb does; refused without reading them"
        )


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


def _types_in_payload(payload):
    """Every type, function and method a skops payload names, without importing any."""
    return _schema_names(payload)[0]


def _schema_names(payload):
    """``(types, called)``: the names a skops payload uses, and those it would call.

    The names come from the payload's JSON schema (every node's ``__module__`` and
    ``__class__``) and from skops' own audit of the node tree (which adds methods and
    numpy bit generators that a schema names in other fields); building that tree
    reads the file but imports nothing and creates no object. ``called`` are the
    classes the file would *call* with arguments of its own (skops' reduce-style
    nodes): even a listed class is refused there unless trusted explicitly, since
    ``bytearray(10**12)`` or a constructor that opens a path is harm enough.
    """
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        _check_entries(zf, _PAYLOAD)
        schema = json.loads(zf.read("schema.json"))
    found, called = set(), set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(name, str):
                found.add(f"{module}.{name}")
                if node.get("__loader__") in _CALLING_LOADERS:
                    called.add(f"{module}.{name}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    import skops.io as sio

    found |= set(sio.get_untrusted_types(data=payload))
    return found, called


def _untrusted_error(refused, path):
    from skops.io.exceptions import UntrustedTypesFoundException

    error = UntrustedTypesFoundException(refused)
    error.args = (
        (
            f"model file {str(path)!r} contains types that featcell does not trust: "
            f"{refused}. Loading them can run their code. If you trust the file's author, pass "
            f"load_model(..., trusted={refused!r})."
        ),
    )
    error.types, error.path = refused, path  # for the command line's own wording
    return error


def _check_trees(model, path):
    """Refuse decision trees whose node indices point outside their arrays.

    scikit-learn follows a tree's child and feature indices without bounds checks,
    so a crafted file could make ``predict`` read out of memory (see skops'
    ``UNTRUSTED_TYPE_REASONS``); a fitted tree from ``fit`` always passes.
    """
    import sys

    from sklearn.svm._base import BaseLibSVM
    from sklearn.tree._tree import Tree

    booster = getattr(sys.modules.get("xgboost.core"), "Booster", None)  # loaded if used
    seen, stack = set(), [model]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Tree):
            _check_tree(obj, path)
            continue
        if booster is not None and isinstance(obj, booster):
            _check_booster(obj, path)
            continue
        if isinstance(obj, BaseLibSVM) and hasattr(obj, "support_vectors_"):
            _check_svm(obj, path)
        if not hasattr(obj, "__dict__"):
            continue
        for value in vars(obj).values():
            if isinstance(value, (list, tuple)):
                stack.extend(value)
            elif isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, np.ndarray) and value.dtype == object:
                stack.extend(value.ravel())
            else:
                stack.append(value)


def _check_tree(tree, path):
    state = tree.__getstate__()
    nodes, n = state["nodes"], int(state["node_count"])
    left, right, feature = (np.asarray(nodes[k]) for k in ("left_child", "right_child", "feature"))
    leaf, index = left == -1, np.arange(len(nodes))
    inner = ~leaf
    ok = (
        len(nodes) == n
        and np.array_equal(leaf, right == -1)
        # children come after their parent (as fit builds them): in range and no cycles
        and np.all((left[inner] > index[inner]) & (left[inner] < n))
        and np.all((right[inner] > index[inner]) & (right[inner] < n))
        and np.all((feature[inner] >= 0) & (feature[inner] < tree.n_features))
        and np.asarray(state["values"]).shape[0] == n
    )
    if not ok:
        raise ValueError(
            f"{str(path)!r} holds a decision tree whose node indices are out of range; the "
            "file is corrupted or was crafted to crash the process"
        )


def _check_svm(svm, path):
    """Refuse a support vector machine whose arrays disagree in size: libsvm trusts them
    (a crafted file crashed ``predict``, or read out of bounds)."""
    sv, dual = np.asarray(svm.support_vectors_), np.asarray(svm._dual_coef_)
    n_support, intercept = np.asarray(svm._n_support), np.asarray(svm._intercept_)
    n_rows, n_features = (int(v) for v in svm.shape_fit_)
    n = len(sv)
    ok = (
        not svm._sparse and svm.kernel != "precomputed" and sv.ndim == 2 and dual.ndim == 2
        and sv.shape[1] == n_features and dual.shape[1] == n
        and np.asarray(svm.dual_coef_).shape == dual.shape
        and np.asarray(svm.support_).shape == (n,)
        and np.all((svm.support_ >= 0) & (svm.support_ < n_rows))
    )
    if ok and hasattr(svm, "classes_"):  # one-vs-one: k - 1 rows of coefficients
        k = len(svm.classes_)
        pairs = k * (k - 1) // 2
        ok = (
            n_support.shape == (k,) and n_support.min() >= 0 and n_support.sum() == n
            and dual.shape[0] == k - 1 and intercept.shape == (pairs,)
            and len(svm._probA) in (0, pairs) and len(svm._probB) == len(svm._probA)
        )
    elif ok:
        ok = dual.shape[0] == 1 and intercept.shape == (1,)
    if not ok:
        raise ValueError(
            f"{str(path)!r} holds a support vector machine whose arrays do not match in "
            "size; the file is corrupted or was crafted to crash the process"
        )


def _check_booster(booster, path):
    """Refuse XGBoost trees whose child or feature indices are out of range, or whose
    nodes do not form a tree: XGBoost follows them without bounds checks."""
    learner = json.loads(bytes(booster.save_raw("json")))["learner"]
    n_features = int(learner["learner_model_param"]["num_feature"])
    model = learner["gradient_booster"]
    model = model.get("gbtree", model)["model"]  # dart wraps a gbtree
    for tree in model["trees"]:
        n = int(tree["tree_param"]["num_nodes"])
        left, right = np.asarray(tree["left_children"]), np.asarray(tree["right_children"])
        split = np.asarray(tree["split_indices"])
        ok = n >= 1 and all(
            len(tree[key]) == n for key in ("left_children", "right_children", "split_indices",
                                             "split_conditions", "default_left", "base_weights")
        ) and np.array_equal(left == -1, right == -1)
        if ok:
            inner = left != -1
            ok = (np.all((left[inner] > 0) & (left[inner] < n) & (right[inner] > 0)
                         & (right[inner] < n))
                  and np.all((split[inner] >= 0) & (split[inner] < n_features)))
        if ok:  # every node reached once from the root: no cycles, no shared children
            reached, stack = np.zeros(n, bool), [0]
            while stack and ok:
                node = stack.pop()
                ok = not reached[node]
                reached[node] = True
                if left[node] != -1:
                    stack += [int(left[node]), int(right[node])]
        if not ok:
            raise ValueError(
                f"{str(path)!r} holds an XGBoost tree whose node indices are out of range; "
                "the file is corrupted or was crafted to crash the process"
            )


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
            _check_network(model, entry, data, path)
            if entry["bundled"]:
                from .cnn import BUNDLED_MODEL as original
            else:
                original = Path(entry["path"])
            # the original network, unchanged on this machine (only a file of the stored
            # network's size is hashed: the manifest may name any path)
            if original.is_file() and original.stat().st_size == len(data) and \
                    file_sha256(original) == sha:
                continue
            target = _cache_dir(cache_dir) / f"{sha}.onnx"
            if not (target.is_file() and file_sha256(target) == sha):
                _atomic_write(target, data)
            updates[entry["param"]] = str(target)
    if updates:
        model.set_params(**updates)


def _check_network(model, entry, data, path):
    """Refuse a stored network that is not the one the estimator was fitted with, or no network.

    The estimator records the SHA-256 of its network at ``fit`` (``model_sha256_``);
    a file whose manifest and network were swapped together still disagrees with
    it. A network that is not featcell's bundled one must also build an
    onnxruntime session, so garbage fails here and not on every image later.
    """
    sha, param = entry["sha256"], entry["param"]
    owner_key = param.rpartition("__")[0]
    owner = model.get_params(deep=True)[owner_key] if owner_key else model
    fitted = getattr(owner, "model_sha256_", None)
    if fitted is not None and fitted != sha:
        raise ValueError(
            f"ONNX model of parameter {param!r} in {str(path)!r} has sha256 {sha[:12]}... but "
            f"the estimator was fitted with {str(fitted)[:12]}...; the model file was modified "
            "or corrupted"
        )
    from .cnn import BUNDLED_MODEL

    if entry["bundled"] and BUNDLED_MODEL.is_file() and file_sha256(BUNDLED_MODEL) == sha:
        return  # byte for byte featcell's own network
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # the error below says it; onnxruntime's log would repeat it
    try:
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ValueError(
            f"ONNX model of parameter {param!r} in {str(path)!r} is not a network onnxruntime "
            f"can run ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); the model "
            "file was modified or corrupted"
        ) from None


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
