"""The shared base of the per-cell feature transformers.

A subclass declares its feature families and implements two methods:

``_feature_names(self) -> list[str]``
    The CellProfiler-style names (without compartment prefix) of the columns
    it computes, from its parameters and the fitted ``channels_``.
``_compute(self, cells) -> dict``
    The values for a :class:`~featcell.CellSet`: a mapping from each of those
    names to its (n_cells,) column (an empty mapping when there is nothing to
    measure: all NaN). It must vectorise across cells.

The base class does the rest: input validation, channel and family selection,
names with an optional compartment prefix, joblib parallelism over chunks of
cells, empty inputs and pandas output (``set_output``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from .._memory import keep_freed_memory_in_worker, tuning_token
from ..cells import CellSet
from ..compartments import select_compartment

__all__ = ["CellFeatureTransformer"]

# cells per task: large enough to amortise dispatch, small enough to bound memory
_CHUNK = 512
# below this many cells per worker, process start-up costs more than it saves
_MIN_CHUNK = 64
# crop pixels of one image per task when a family measures the whole image (granularity):
# each task repeats the image's own work, so an image's cells stay together up to this many
# (Texture, all families: about 30 bytes of peak memory each)
_IMAGE_CHUNK_PIXELS = 4_000_000


def check_cellset(X, name="X"):
    """Raise a TypeError unless ``X`` is a CellSet."""
    if not isinstance(X, CellSet):
        hint = ""
        if isinstance(X, (str, bytes)) or hasattr(X, "__fspath__"):
            hint = "; read files first with featcell.read_cells(...)"
        elif isinstance(X, np.ndarray):
            hint = "; build cells with CellSet.from_labels(image, labels) or CellSet.from_crops(crops)"
        raise TypeError(f"{name} must be a featcell.CellSet, got {type(X).__name__}{hint}")
    return X


def check_n_jobs(n_jobs):
    """Raise a ValueError unless ``n_jobs`` is None or a non-zero integer (joblib's)."""
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(
            n_jobs, (int, np.integer)) or n_jobs == 0):
        raise ValueError(f"n_jobs={n_jobs!r}; expected None or a non-zero integer (-1: all "
                         "processors)")


class CellFeatureTransformer(TransformerMixin, BaseEstimator):
    """Base class for transformers that measure every cell of a CellSet.

    Subclasses set ``_families`` (the selectable feature families, in output
    order) and implement ``_feature_names`` and ``_compute``.
    """

    _families: tuple = ()
    # families measured on each cell's whole image (once per task): their cells are
    # chunked by image (see _chunks)
    _whole_image_families: tuple = ()

    # ------------------------------------------------------------------ sklearn API
    def fit(self, X, y=None):
        """Validate the cells and fix the output feature names.

        Parameters
        ----------
        X : CellSet
            The cells.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        if hasattr(self, "_parameter_constraints"):
            self._validate_params()
        self._check_params()
        check_n_jobs(self.n_jobs)
        X = check_cellset(X)
        self.channels_ = self._select_channels(X.channel_names)
        self.families_ = self._select_families()
        self.n_features_in_ = X.n_channels
        self.channel_names_in_ = X.channel_names
        self.compartment_names_in_ = _compartment_names(X)
        prefix = self._compartment_prefix()
        self.feature_names_out_ = np.asarray(
            [prefix + name for name in self._feature_names()], dtype=object
        )
        return self

    def transform(self, X):
        """Measure every cell.

        Parameters
        ----------
        X : CellSet
            The cells, with the channels seen in ``fit``.

        Returns
        -------
        features : ndarray of shape (n_cells, n_features)
            One row per cell, columns named by ``get_feature_names_out()``.
        """
        check_is_fitted(self, "feature_names_out_")
        X = check_cellset(X)
        found = _compartment_names(X)
        fitted = getattr(self, "compartment_names_in_", found)  # older models: no check
        if found != fitted:  # a whole cell would pass for its nucleus
            raise ValueError(f"X has compartments {found} but the transformer was fitted on "
                             f"cells with compartments {fitted}")
        X = select_compartment(X, getattr(self, "compartment", None))
        if X.channel_names != self.channel_names_in_:
            raise ValueError(
                f"X has channels {list(X.channel_names)} but the transformer was fitted on "
                f"{list(self.channel_names_in_)}"
            )
        n_out = len(self.feature_names_out_)
        if len(X) == 0:
            return np.empty((0, n_out), dtype=np.float64)
        n_jobs = effective_n_jobs(self.n_jobs)
        whole_images = not set(self.families_).isdisjoint(self._whole_image_families)
        chunks = _chunks(X, n_jobs, whole_images)
        if len(chunks) == 1:
            out = _compute_chunk(self, X)
        else:
            parts = Parallel(n_jobs=n_jobs)(
                delayed(_compute_chunk)(self, X[c], tuning_token()) for c in chunks
            )
            out = np.empty((len(X), n_out))
            for rows, part in zip(chunks, parts, strict=True):
                out[rows] = part
        out = out.astype(np.float64, copy=False)
        if out.shape != (len(X), n_out):  # a broken subclass, not user input
            raise RuntimeError(
                f"{type(self).__name__} computed {out.shape} values, expected {(len(X), n_out)}"
            )
        return indexed_output(self, out, X)

    def get_feature_names_out(self, input_features=None):
        """Output feature names, CellProfiler style.

        Parameters
        ----------
        input_features : Ignored
            Not used: the input is a CellSet, not a table.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ helpers
    def _compartment_prefix(self):
        compartment = getattr(self, "compartment", None)
        if compartment is None:
            return ""
        if not isinstance(compartment, str) or not compartment.isalnum():
            raise ValueError(
                f"compartment must be letters/digits such as 'Nuclei' or 'Cells', got {compartment!r}"
            )
        return f"{compartment}_"

    def _select_channels(self, available):
        channels = getattr(self, "channels", None)
        if channels is None:
            return tuple(available)
        if isinstance(channels, str):
            channels = [channels]
        listed = list(channels) if isinstance(channels, Iterable) else []
        if not listed or len(set(map(str, listed))) != len(listed):
            raise ValueError(f"channels={channels!r}; expected None or a list of distinct "
                             f"channel names from {list(available)}")
        missing = [c for c in listed if c not in available]
        if missing:
            raise ValueError(f"channels {missing!r} are not in the cells' channels {list(available)}")
        return tuple(listed)

    def _select_families(self):
        families = getattr(self, "features", None)
        if families is None:
            return tuple(self._families)
        if isinstance(families, str):
            families = [families]
        unknown = [f for f in families if f not in self._families]
        if unknown:
            raise ValueError(
                f"unknown feature families {unknown!r} for {type(self).__name__}; "
                f"choose from {list(self._families)}"
            )
        return tuple(f for f in self._families if f in families)

    def _channel_index(self, name):
        return self.channel_names_in_.index(name)

    def _check_params(self):
        """Further parameter checks of a subclass, run by ``fit``; may set attributes."""

    def _feature_names(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _compute(self, cells):  # pragma: no cover - abstract
        raise NotImplementedError


def indexed_output(estimator, values, cells):
    """``values`` as a DataFrame indexed by ``cells.index`` under pandas output, else as is."""
    if _get_output_config("transform", estimator)["dense"] != "pandas":
        return values
    import pandas as pd

    names = estimator.get_feature_names_out()
    return pd.DataFrame(values, index=cells.index, columns=names)


def _chunks(cells, n_jobs, whole_images):
    """The cells of each task of ``transform``: index arrays that together hold every cell once.

    Runs of ``_CHUNK`` cells (fewer with ``n_jobs`` > 1, so that every worker gets some,
    down to ``_MIN_CHUNK``); with ``whole_images`` (a task repeats the work on the whole
    image of each of its cells), :func:`image_chunks` of that size.
    """
    n = len(cells)
    size = _CHUNK if n_jobs == 1 else min(_CHUNK, max(_MIN_CHUNK, -(-n // n_jobs)))
    if whole_images:
        return image_chunks(cells, size, n_jobs)
    return [np.arange(s, min(s + size, n)) for s in range(0, n, size)]


def _compartment_names(cells):
    """The compartments of ``cells`` (a list of names), None for cells without."""
    names = getattr(cells, "compartment_names", None)
    return list(names) if names else None


def image_chunks(cells, size, n_jobs=1):
    """Index arrays of about ``size`` cells that keep each image's cells together.

    The cells of small images are packed together up to ``size``; an image with more
    cells is split only to give each of ``n_jobs`` workers some, or to keep a chunk
    within ``_IMAGE_CHUNK_PIXELS`` crop pixels. Cells without an image
    (:meth:`CellSet.from_crops`) come in runs of ``size``. Together the chunks hold
    every cell once.
    """
    _, field = cells.fields()
    area = np.prod(cells.crop_shapes, axis=1)
    order = np.argsort(field, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(field[order])) + 1)
    chunks, packed, n_packed = [], [], 0
    for group in groups:
        if group.size > size:  # this image alone fills chunks (-1: crops without an image)
            parts = -(-group.size // size)
            if field[group[0]] >= 0:
                pixels = int(area[group].sum())
                parts = max(min(n_jobs, parts), -(-pixels // _IMAGE_CHUNK_PIXELS))
            chunks += np.array_split(group, min(parts, group.size))
            continue
        if n_packed + group.size > size:
            chunks.append(np.concatenate(packed))
            packed, n_packed = [], 0
        packed.append(group)
        n_packed += group.size
    if packed:
        chunks.append(np.concatenate(packed))
    return chunks


def _compute_chunk(transformer, cells, caller_pid=None):
    """``transformer._compute(cells)`` as an array in output order; in a joblib worker
    (``caller_pid`` given) whose allocator keeps freed memory."""
    keep_freed_memory_in_worker(caller_pid)
    columns = transformer._compute(cells)
    prefix = len(transformer._compartment_prefix())
    names = [name[prefix:] for name in transformer.feature_names_out_]
    if not columns:
        return np.full((len(cells), len(names)), np.nan)
    if columns.keys() != set(names):  # a broken subclass, not user input
        raise RuntimeError(
            f"{type(transformer).__name__} computed columns {sorted(columns.keys() ^ set(names))} "
            "that do not match its feature names"
        )
    return np.column_stack([columns[name] for name in names])
