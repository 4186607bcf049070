"""Streaming, resumable, parallel scoring of image folders: :func:`score_images`.

Each image is read, turned into a :class:`~featcell.CellSet` and scored by a
worker; the parent process only collects small per-image tables and appends
them to disk, so memory stays flat however many images there are.

On disk, next to the final tables, a ``parts`` folder holds one Parquet file
per chunk of images. A part is written to ``*.tmp`` and renamed when complete,
so a run that is interrupted (Ctrl-C, a killed job, a lost node) leaves only
complete, readable parts, and the next call with the same arguments skips the
images they hold. Each part stores one row group per image and, in its
Parquet metadata, the list of images it covers (path, file size and
modification time or content hash, cell count, or the error that stopped the
image). The final tables are assembled from the parts in input order, so an
interrupted and resumed run gives exactly the tables of an uninterrupted one.

Parallelism goes through joblib (via :class:`sklearn.utils.parallel.Parallel`),
so the same call runs on a Dask cluster with ``joblib.parallel_config``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
import re
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from numbers import Integral
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from ._memory import keep_freed_memory_in_worker, tuning_token
from ._progress import progress_bar
from .io import _text, file_sha256, iter_cells, list_images

try:  # joblib >= 1.6 depends on cloudpickle, older versions vendor it
    import cloudpickle
except ImportError:  # pragma: no cover
    from joblib.externals import cloudpickle

__all__ = ["BatchResult", "score_images"]

_PART_META = b"featcell.batch"
_RUN_FILE = "run.json"
_FLUSH_SECONDS = 30.0  # write a part at least this often, even if the chunk is not full
_WRITE_ROWS = 65_536  # rows buffered per write of the final cells table
_ERROR_COLUMNS = ["path", "error_type", "message"]


@dataclass(frozen=True)
class BatchResult:
    """What :func:`score_images` wrote.

    Attributes
    ----------
    cells_path : pathlib.Path
        One row per cell: ``Metadata_*`` columns, then ``Prediction`` and
        ``Probability_<class>`` (predictors) and/or the features.
    images_path : pathlib.Path or None
        One row per scored image (``None`` when ``per_image=False``).
    errors_path : pathlib.Path
        One row per image that could not be scored: ``path``, ``error_type``,
        ``message``.
    n_images : int
        Images scored successfully (this run and resumed ones).
    n_cells : int
        Cells in the cells table.
    n_errors : int
        Images that failed.
    n_resumed : int
        Images already in ``output`` from an earlier call, not scored again.
    elapsed : float
        Wall-clock seconds of this call.
    """

    cells_path: Path
    images_path: Path | None
    errors_path: Path
    n_images: int
    n_cells: int
    n_errors: int
    n_resumed: int
    elapsed: float

    def read_cells(self, columns=None):
        """The cells table as a DataFrame (optionally only ``columns``)."""
        return _read_table(self.cells_path, columns)

    def read_images(self):
        """The per-image table as a DataFrame."""
        if self.images_path is None:
            raise ValueError("no per-image table was written (per_image=False)")
        return _read_table(self.images_path)

    def read_errors(self):
        """The errors table as a DataFrame."""
        return _read_table(self.errors_path)


@validate_params(
    {
        "model": [HasMethods(["predict"]), HasMethods(["transform"])],
        "images": [str, os.PathLike, list, tuple],
        "labels": [str, os.PathLike, dict, None],
        "output": [str, os.PathLike],
        "n_jobs": [Integral, None],
        "per_image": ["boolean"],
        "include_features": ["boolean"],
        "progress": ["boolean"],
        "resume": ["boolean", StrOptions({"content"})],
        "read_kwargs": [dict, None],
        "format": [StrOptions({"parquet", "csv"}), None],
        "chunk_size": [Interval(Integral, 1, None, closed="left")],
        "keep_parts": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def score_images(
    model,
    images,
    labels=None,
    output="featcell_results",
    *,
    n_jobs=None,
    per_image=True,
    include_features=False,
    progress=True,
    resume=True,
    read_kwargs=None,
    format=None,
    chunk_size=16,
    keep_parts=False,
):
    """Score every cell of many image files, streaming results to Parquet or CSV.

    Images are read one at a time by joblib workers (:func:`featcell.io.iter_cells`:
    label images, VOC boxes or on-the-fly segmentation), scored, and the
    small per-image results are appended to disk by the calling process, so
    memory does not grow with the number of images. A file that cannot be
    read or scored is recorded in the errors table and the others complete.
    Calling again with the same arguments resumes an interrupted run.

    Parameters
    ----------
    model : estimator
        Either a fitted predictor that takes a :class:`~featcell.CellSet`
        (typically a :class:`~sklearn.pipeline.Pipeline` whose first step
        measures cells), giving ``Prediction`` and, when it has
        ``predict_proba``, ``Probability_<class>`` columns; or a fitted
        transformer of cells (a feature extractor), whose features are written.
    images : str, path-like or list
        Folder, glob pattern or list of image files (see
        :func:`featcell.io.list_images`).
    labels : str, path-like or dict, optional
        Folder of matching label images or Pascal VOC ``.xml`` files (see
        :func:`featcell.io.iter_cells`). ``None`` segments nuclei on the fly.
        A dict of compartment name to folder (``{"Nuclei": ..., "Cells":
        ...}``) measures every cell in each compartment.
    output : str or path-like, default="featcell_results"
        A folder (gets ``cells.parquet``, ``images.parquet``, ``errors.parquet``
        and ``parts/``), or a file name ending in ``.parquet`` or ``.csv``
        (``results.parquet`` gets ``results_images.parquet``,
        ``results_errors.parquet`` and ``results_parts/`` beside it).
    n_jobs : int, default=None
        Number of jobs to run in parallel, one image per task. ``None`` means 1
        unless in a :obj:`joblib.parallel_backend` context. ``-1`` means
        using all processors. See :term:`Glossary <n_jobs>` for more details.
    per_image : bool, default=True
        Also write the per-image table: ``Count_Cells``, for classifiers
        ``Count_<class>`` and ``Fraction_<class>`` of predicted cells, and
        ``Mean_<column>`` of every numeric per-cell column (mean probabilities,
        mean features).
    include_features : bool, default=False
        For a predictor pipeline, also write the output of its first step (the
        measured features), named by its ``get_feature_names_out``.
    progress : bool, default=True
        Show a progress bar (images done, cells/s, ETA) on stderr; in a
        notebook, a widget (:mod:`tqdm.auto`).
    resume : bool or "content", default=True
        Skip images already written to ``output`` by an earlier call with the
        same model and settings. ``True`` recognises an image by its path,
        size and modification time; ``"content"`` by its path and SHA-256
        (slower: every file is read once more); ``False`` discards earlier
        results and starts afresh. Images that failed before are tried again.
    read_kwargs : dict, optional
        Keyword arguments of :func:`featcell.io.iter_cells` (``channels``,
        ``as_gray``, ``margin``, ``exclude_border``, ``segment_kwargs``,
        ``metadata``).
    format : {"parquet", "csv"}, default=None
        Format of the final tables; by default taken from the suffix of
        ``output``, else Parquet. The parts are always Parquet.
    chunk_size : int, default=16
        Images per part file: the most work an interruption can lose.
    keep_parts : bool, default=False
        Keep the parts folder after a run in which every image was scored. By
        default it is removed then; it is always kept when some images failed,
        so that a second call retries only those.

    Returns
    -------
    BatchResult
        Paths of the tables written and counts.

    Raises
    ------
    ValueError
        If ``output`` holds results of a different model or settings and
        ``resume`` is not ``False``, or an argument is invalid.
    OSError
        If the output cannot be written (checked before any image is read) or
        the disk fills up; no ``*.tmp`` file is left and a second call resumes.

    Warns
    -----
    UserWarning
        If some images could not be scored (see the errors table).

    See Also
    --------
    featcell.io.iter_cells : the reader used for every image.

    Notes
    -----
    Run it on a Dask cluster through joblib's Dask backend, unchanged::

        from dask.distributed import Client, LocalCluster
        import joblib

        client = Client(LocalCluster(n_workers=4, threads_per_worker=1))
        with joblib.parallel_config(backend="dask"):
            score_images(model, "plate1/", "plate1_masks/", "plate1_scores")

    The workers must be able to import everything the model uses (featcell
    and any custom class), and read the image files. Only the calling process
    writes to ``output``. Do not run two calls on the same ``output`` at once.

    Images are the unit of parallelism: inside each image's task the model
    runs sequentially, whatever the ``n_jobs`` of its estimators. With
    :class:`~featcell.cnn.CNNEmbedding` in the model and ``n_jobs > 1``, set its
    ``n_threads=1`` so workers do not compete for cores.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, tifffile
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from featcell.batch import score_images
    >>> root = tempfile.mkdtemp(); os.mkdir(f"{root}/img"); os.mkdir(f"{root}/lab")
    >>> lab = np.zeros((32, 32), np.uint16); lab[4:12, 4:12] = 1; lab[18:28, 18:28] = 2
    >>> tifffile.imwrite(f"{root}/img/a.tif", (lab > 0).astype(np.uint8) * 200)
    >>> tifffile.imwrite(f"{root}/lab/a.tif", lab)
    >>> n_cells = FunctionTransformer(lambda cells: np.ones((len(cells), 1)))
    >>> result = score_images(n_cells, f"{root}/img", f"{root}/lab", f"{root}/out",
    ...                       progress=False)
    >>> result.n_cells, result.read_images()["Count_Cells"].tolist()
    (2, [2])
    """
    start = time.monotonic()
    read_kwargs = _check_read_kwargs(read_kwargs)
    predicts = _check_model(model, include_features)
    layout = _Layout(output, format)
    paths = [os.path.abspath(p) for p in list_images(images)]
    if not paths:
        raise ValueError(f"no image files found in {images!r}")
    repeated = sorted(p for p, count in Counter(paths).items() if count > 1)
    if repeated:
        raise ValueError(f"images lists these files more than once: {repeated[:5]}")
    if isinstance(labels, dict):  # compartments: one folder of label images per name
        labels = {name: _check_labels_folder(folder) for name, folder in labels.items()}
    elif labels is not None:
        labels = _check_labels_folder(labels)

    # the pixel limit decides only whether a file is read, not what is measured
    settings = {k: v for k, v in read_kwargs.items() if k != "max_pixels"}
    fingerprint = _fingerprint((model, labels, settings, include_features))
    seq = layout.prepare(fingerprint, resume)
    keys = {p: _file_key(p, resume) for p in paths}
    done = {p for p, (_, record) in layout.records(keys).items() if record["status"] == "ok"}
    todo = [p for p in paths if p not in done]

    bar = progress_bar(len(paths), desc="featcell", unit="images", initial=len(done),
                       disable=not progress)
    n_cells_seen, n_failed = 0, 0
    tasks = [
        delayed(_score_image)(model, p, labels, read_kwargs, include_features, tuning_token())
        for p in todo
    ]
    buffer, last_flush = [], time.monotonic()
    try:
        for record, table in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
            record["key"] = keys[record["path"]]
            buffer.append((record, table))
            n_cells_seen += record.get("n_cells", 0)
            n_failed += record["status"] == "error"
            rate = n_cells_seen / max(time.monotonic() - start, 1e-9)
            bar.set_postfix_str(f"{rate:,.1f} cells/s" + (f", {n_failed} errors" if n_failed
                                                          else ""), refresh=False)
            bar.update()
            if len(buffer) >= chunk_size or time.monotonic() - last_flush > _FLUSH_SECONDS:
                layout.write_part(seq, buffer)
                seq, buffer, last_flush = seq + 1, [], time.monotonic()
    except BaseException:  # Ctrl-C, SIGTERM, a full disk: no worker outlives the call
        stop_workers()
        raise
    finally:  # keep finished images, also on Ctrl-C or a failing worker
        if buffer:
            layout.write_part(seq, buffer)
        bar.close()

    classes = getattr(model, "classes_", None) if predicts else None
    n_images, n_cells, n_errors = layout.finalize(paths, keys, per_image, classes)
    if not n_errors and not keep_parts:
        layout.remove_parts()
    if n_errors:
        warnings.warn(
            f"{n_errors} of {len(paths)} images could not be scored; see {str(layout.errors)!r}",
            UserWarning,
            stacklevel=3,  # the caller, above scikit-learn's validate_params wrapper
        )
    return BatchResult(
        cells_path=layout.cells,
        images_path=layout.images if per_image else None,
        errors_path=layout.errors,
        n_images=n_images,
        n_cells=n_cells,
        n_errors=n_errors,
        n_resumed=len(done),
        elapsed=time.monotonic() - start,
    )


# ---------------------------------------------------------------------- validation
def _check_read_kwargs(read_kwargs):
    read_kwargs = dict(read_kwargs or {})
    accepted = [
        name for name, p in inspect.signature(iter_cells).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(read_kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"read_kwargs has unknown keys {unknown}; iter_cells accepts {accepted}")
    return read_kwargs


def _check_labels_folder(labels):
    if not Path(labels).is_dir():
        raise FileNotFoundError(
            f"labels must be a folder of label images or VOC files; {str(labels)!r} is not"
        )
    return os.path.abspath(labels)


def _check_model(model, include_features):
    """Whether ``model`` predicts (else it transforms); raise if it is not fitted."""
    predicts = hasattr(model, "predict")
    check_is_fitted(model)
    if include_features and not (predicts and isinstance(model, Pipeline) and len(model) > 1):
        raise ValueError(
            "include_features=True needs a Pipeline whose first step measures the cells and "
            f"whose last step predicts; got {type(model).__name__}. A feature extractor alone "
            "writes its features anyway."
        )
    return predicts


# ---------------------------------------------------------------------- worker side
def _score_image(model, path, labels, read_kwargs, include_features, caller_pid=None):
    """Read and score one image: ``(record, arrow table or None)``."""
    keep_freed_memory_in_worker(caller_pid)
    record = {"path": path, "image_id": _text(os.path.basename(path))}
    try:
        # images are the unit of parallelism: the model runs sequentially in the task (on
        # Dask, a FeatureUnion would otherwise ship every image's cells to other workers)
        # a library's warnings (unclosed files, deprecations, overflow) are not the user's
        with joblib.parallel_config(backend="sequential"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cells = next(iter_cells([path], labels, **read_kwargs))
            table = _cell_table(model, cells, include_features) if len(cells) else None
    except Exception as exc:  # noqa: BLE001 - a failure of one file must not stop the batch
        record.update(status="error", error_type=type(exc).__name__, message=str(exc))
        return record, None
    record.update(status="ok", n_cells=len(cells))
    return record, table


def _cell_table(model, cells, include_features):
    frames = [cells.metadata.reset_index(drop=True)]
    if not hasattr(model, "predict"):
        frames.append(_named_frame(model, model.transform(cells)))
    else:
        final, Xt = model, cells
        if isinstance(model, Pipeline):  # measure once for both predict and predict_proba
            for i, (_, step) in enumerate(model.steps[:-1]):
                if step is None or step == "passthrough":
                    continue
                Xt = step.transform(Xt)
                if i == 0 and include_features:
                    frames.append(_named_frame(step, Xt))
            final = model.steps[-1][1]
        columns = {"Prediction": np.asarray(final.predict(Xt))}
        if hasattr(final, "predict_proba"):
            proba = np.asarray(final.predict_proba(Xt))
            for label, values in zip(final.classes_, proba.T, strict=True):
                columns[f"Probability_{label}"] = values
        frames.insert(1, pd.DataFrame(columns))
    frame = pd.concat(frames, axis=1)
    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)


def _named_frame(estimator, values):
    values = np.asarray(values)
    if hasattr(estimator, "get_feature_names_out"):
        names = [str(n) for n in estimator.get_feature_names_out()]
    else:
        names = [f"Feature_{i}" for i in range(values.shape[1])]
    return pd.DataFrame(values, columns=names)


# ---------------------------------------------------------------------- on disk
def _fingerprint(settings):
    """A hash of the model and read settings, so a resumed run never mixes two models."""
    try:
        return joblib.hash(settings)
    except pickle.PicklingError:  # lambdas and local functions: hash them by value
        return hashlib.sha256(cloudpickle.dumps(settings)).hexdigest()


def _file_key(path, resume):
    """What identifies an unchanged image file for resuming (None if it cannot be read)."""
    try:
        if resume == "content":
            return ["sha256", file_sha256(path)]
        stat = os.stat(path)
        return ["stat", stat.st_size, stat.st_mtime_ns]
    except OSError:
        return None


class _Layout:
    """File names of one output, and the part files behind them."""

    def __init__(self, output, format):
        output = Path(output)
        suffix = output.suffix.lower()
        if suffix in (".parquet", ".csv"):
            if format is not None and format != suffix[1:]:
                raise ValueError(f"format={format!r} but output {str(output)!r} ends in {suffix!r}")
            self.format = suffix[1:]
            self.cells = output
            self.images = output.with_name(f"{output.stem}_images{suffix}")
            self.errors = output.with_name(f"{output.stem}_errors{suffix}")
            self.parts = output.with_name(f"{output.stem}_parts")
        else:
            self.format = format or "parquet"
            self.cells = output / f"cells.{self.format}"
            self.images = output / f"images.{self.format}"
            self.errors = output / f"errors.{self.format}"
            self.parts = output / "parts"

    def part_files(self):
        """This run's part files (``part-NNNNNN.parquet``; other files there are ignored)."""
        return sorted(p for p in self.parts.glob("part-*.parquet")
                      if re.fullmatch(r"part-\d{6,}\.parquet", p.name))

    def prepare(self, fingerprint, resume):
        """Create the parts folder, check it belongs to this run; return the next part number."""
        if self.parts.exists() and not self.parts.is_dir():
            raise ValueError(f"{str(self.parts)!r} is a file, where this output keeps its "
                             "parts folder; move it away or choose another output")
        self.parts.mkdir(parents=True, exist_ok=True)
        for stale in [*self.parts.glob("*.tmp"), *self.cells.parent.glob("*.tmp")]:
            if stale.name.startswith(tuple(p.name for p in (self.cells, self.images,
                                                             self.errors))) or \
                    stale.parent == self.parts:  # left by an interrupted write
                stale.unlink(missing_ok=True)
        _check_writable(self.parts)
        run_file = self.parts / _RUN_FILE
        if resume is False:
            for old in [*self.part_files(), run_file, self.cells, self.images, self.errors]:
                old.unlink(missing_ok=True)
        elif run_file.exists():
            try:
                previous = json.loads(run_file.read_text()).get("fingerprint")
            except (ValueError, AttributeError):
                previous = None
            if previous != fingerprint:
                error = ValueError(
                    f"the parts folder {str(self.parts)!r} holds results of a different model, "
                    "labels or read settings; pass resume=False to overwrite them, or choose "
                    "another output"
                )
                error.parts = self.parts  # the command line names its --overwrite
                raise error
        _atomic_write_text(run_file, json.dumps({"fingerprint": fingerprint}))
        numbers = [int(p.stem.split("-")[1]) for p in self.part_files()]
        for part in self.part_files():  # a damaged part (a crash mid-write) is set aside
            try:
                _part_records(part)
            except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow's: OSErrors
                bad = part.with_name(part.name + ".damaged")
                os.replace(part, bad)
                warnings.warn(f"part file {str(part)!r} cannot be read ({exc}); renamed to "
                              f"{bad.name!r}, its images are scored again", UserWarning,
                              stacklevel=4)
        return max(numbers, default=0) + 1

    def write_part(self, seq, results):
        """Write the results of a chunk of images as one part, atomically."""
        records, tables = [], []
        for record, table in results:
            if table is not None:
                record["row_group"] = len(tables)
                tables.append(table)
            records.append(record)
        schema = _unify([t.schema for t in tables])
        schema = schema.with_metadata({_PART_META: json.dumps(records)})
        target = self.parts / f"part-{seq:06d}.parquet"
        tmp = target.with_name(target.name + ".tmp")
        with _removed_on_error(tmp):
            with pq.ParquetWriter(tmp, schema) as writer:
                for table in tables:  # one row group per image
                    writer.write_table(_conform(table, schema))
            with open(tmp, "rb") as written:  # on disk before it is named: a power cut
                os.fsync(written.fileno())  # leaves no empty part behind
        os.replace(tmp, target)

    def remove_parts(self):
        """Delete the parts folder (the final tables hold everything)."""
        for part in [*self.part_files(), *self.parts.glob("part-*.parquet.damaged"),
                     self.parts / _RUN_FILE]:
            part.unlink(missing_ok=True)
        try:
            self.parts.rmdir()
        except OSError:  # the user put other files there: leave them
            pass

    def records(self, keys):
        """``{path: (part file, record)}`` of the current images, an ok record winning."""
        found = {}
        for part in self.part_files():
            for record in _part_records(part):
                path = record["path"]
                if path not in keys or record["key"] != keys[path]:
                    continue  # another image list, or the file changed since
                if record["status"] == "ok" or found.get(path, (None, {}))[1].get("status") != "ok":
                    found[path] = (part, record)
        return found

    def finalize(self, paths, keys, per_image, classes):
        """Assemble the final tables from the parts, in input order."""
        found = self.records(keys)
        ok = [p for p in paths if p in found and found[p][1]["status"] == "ok"]
        failed = [found[p][1] for p in paths if p in found and found[p][1]["status"] == "error"]
        used = sorted({found[p][0] for p in ok})
        schema = _unify([pq.read_schema(part) for part in used])
        open_part = lru_cache(maxsize=8)(pq.ParquetFile)
        image_rows, pending, n_cells = [], [], 0
        with _TableWriter(self.cells, schema, self.format) as writer:
            for path in ok:
                part, record = found[path]
                table = None
                if record.get("row_group") is not None:
                    table = _conform(open_part(part).read_row_group(record["row_group"]), schema)
                    pending.append(table)
                    n_cells += table.num_rows
                    if sum(t.num_rows for t in pending) >= _WRITE_ROWS:
                        writer.write(pa.concat_tables(pending))
                        pending = []
                if per_image:
                    image_rows.append(_image_row(record, table, schema, classes))
            if pending:
                writer.write(pa.concat_tables(pending))
        if per_image:
            images = pd.DataFrame(image_rows, columns=_image_columns(schema, classes))
            _write_frame(images, self.images, self.format)
        errors = pd.DataFrame([[_text(r["path"]), r["error_type"], _text(r["message"])]
                               for r in failed],
                              columns=_ERROR_COLUMNS, dtype=object)
        _write_frame(errors, self.errors, self.format)
        return len(ok), n_cells, len(failed)


def _part_records(part):
    """The records of the images a part file holds (its schema's metadata)."""
    return json.loads(pq.read_schema(part).metadata[_PART_META])


def _unify(schemas):
    """One schema for all tables: the union of columns, ``Metadata_*`` first. A column
    that images type in ways that do not unify (text in one, numbers in another: a blank
    cell of a metadata table) becomes text, so no single image decides the run."""
    schemas = [s.remove_metadata() for s in schemas if len(s)]
    if not schemas:
        return pa.schema([])
    try:
        fields = list(pa.unify_schemas(schemas, promote_options="permissive"))
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        fields = [_unify_column(name, kinds) for name, kinds in _column_types(schemas).items()]
    fields.sort(key=lambda f: not f.name.startswith("Metadata_"))  # stable
    return pa.schema(fields)


def _column_types(schemas):
    """Every column's types across ``schemas``, columns in order of first appearance."""
    types = {}
    for schema in schemas:
        for field in schema:
            types.setdefault(field.name, []).append(field.type)
    return types


def _unify_column(name, kinds):
    """One field for a column typed ``kinds`` by different tables; text where they clash."""
    try:
        return pa.unify_schemas([pa.schema([(name, k)]) for k in kinds],
                                promote_options="permissive").field(name)
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.field(name, pa.string())


def _conform(table, schema):
    """``table`` with exactly the columns and types of ``schema`` (missing ones null)."""
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _value_columns(schema, classes):
    """Numeric per-cell columns averaged per image."""
    return [
        f.name for f in schema
        if not f.name.startswith("Metadata_")
        and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
        and not (classes is not None and f.name == "Prediction")
    ]


def _image_columns(schema, classes):
    columns = ["Metadata_ImageID", "Metadata_Path", "Count_Cells"]
    if classes is not None:
        columns += [f"Count_{c}" for c in classes] + [f"Fraction_{c}" for c in classes]
    return columns + [f"Mean_{c}" for c in _value_columns(schema, classes)]


def _image_row(record, table, schema, classes):
    n = 0 if table is None else table.num_rows
    row = [record["image_id"], _text(record["path"]), n]
    if classes is not None:
        predicted = np.asarray([]) if table is None else table.column("Prediction").to_numpy()
        counts = [int(np.sum(predicted == c)) for c in classes]
        row += counts + [c / n if n else np.nan for c in counts]
    value_columns = _value_columns(schema, classes)
    if table is None:
        return row + [np.nan] * len(value_columns)
    values = table.select(value_columns).to_pandas().astype(float)
    return row + values.mean().tolist()


class _TableWriter:
    """Stream tables into one Parquet or CSV file, published atomically on close."""

    def __init__(self, path, schema, format):
        self.path, self.schema, self.format = path, schema, format
        self.tmp = path.with_name(path.name + ".tmp")

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.format == "parquet":
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        elif len(self.schema):
            self.writer = pa_csv.CSVWriter(self.tmp, self.schema)
        else:  # no cells at all: a header pandas can read, never a 0-byte file
            self.tmp.write_text("Metadata_ImageID\n")
            self.writer = None
        return self

    def write(self, table):
        self.writer.write_table(table)

    def __exit__(self, exc_type, exc, tb):
        with _removed_on_error(self.tmp):
            if self.writer is not None:
                self.writer.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
        self.tmp.unlink(missing_ok=True)


def _write_frame(frame, path, format):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with _removed_on_error(tmp):
        if format == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, path)


def _read_table(path, columns=None):
    if path.suffix == ".csv":
        return pd.read_csv(path, usecols=columns)
    return pd.read_parquet(path, columns=columns)


def _atomic_write_text(path, text):
    tmp = path.with_name(path.name + ".tmp")
    with _removed_on_error(tmp):
        tmp.write_text(text)
        os.replace(tmp, path)


class _removed_on_error:
    """Delete ``path`` if the block fails (a full disk must leave no ``*.tmp`` behind)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return self.path

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass


def _check_writable(folder):
    """Fail before any work if nothing can be written in ``folder``."""
    probe = folder / f".featcell-write-test-{os.getpid()}.tmp"
    try:
        probe.write_bytes(b"featcell")
    finally:
        probe.unlink(missing_ok=True)


def stop_workers():
    """Shut down joblib's reusable process pool (loky), killing its idle workers.

    joblib keeps worker processes alive for minutes after a parallel call so that the
    next one starts fast; a command that ends, or is interrupted, must not leave them
    behind. Does nothing if no pool was started.
    """
    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)
