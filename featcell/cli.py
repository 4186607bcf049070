"""The ``featcell`` command: features, models, scores and reports from a terminal.

Every command prints what it is doing on stderr and its results on stdout; a mistake in
the arguments or the files (a missing folder, an unknown column) ends with one line
``featcell: error: ...`` and exit status 2, never a traceback. Run ``featcell --help`` or
``featcell <command> --help`` for the options, with examples.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

__all__ = ["main"]

_CLASSICAL = ("morphology", "intensity", "texture", "colocalization")
_FAMILIES = (*_CLASSICAL, "cnn")
_HEADS = ("svm", "rf", "lr", "gnb", "xgb", "cnn")
_TASKS = ("viability", "phenotype", "counting")
_CANDIDATES = ("classical", "cnn", "both")
_TABLE_SUFFIXES = (".parquet", ".csv")
_DATA = Path(__file__).resolve().parent / "data"

_EPILOG = """\
examples:
  featcell demo -o demo_report
      run a complete small analysis (live/dead cells, bundled data) and write a report
  featcell extract images/ --labels masks/ -o features.parquet
      measure every cell (shape, intensity, texture, colocalization) into a table
  featcell train images/ --labels boxes/ --target Class --task viability -o model.featcell
      train a live/dead classifier, report its cross-validated accuracy, save it
  featcell score model.featcell new_images/ --labels new_boxes/ -o predictions.parquet
      apply a saved model to new images
  featcell compare images/ --labels boxes/ --target Class -o report/
      classical features vs a CNN on the same folds, written up as an HTML report

Cells of one image are never split between training and test folds, so the scores
say how the model does on new images. Run 'featcell COMMAND --help' for details.
"""


class UserError(Exception):
    """A mistake in the arguments or input files: reported in one line, exit status 2."""


# --------------------------------------------------------------------------- console


class _Console:
    """Progress messages on stderr (silenced by --quiet); results go to stdout."""

    def __init__(self, quiet=False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

    def say(self, message):
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def bar(self, total, label, unit):
        return _Bar(self, total, label, unit)


class _Bar:
    """A minimal progress bar: redrawn in place on a terminal, one line otherwise."""

    def __init__(self, console, total, label, unit):
        self.console, self.total, self.label, self.unit = console, total, label, unit
        self.done = 0
        self.start = time.monotonic()
        self.last = 0.0
        self.extra = ""

    def update(self, n=1, extra=""):
        self.done += n
        self.extra = extra
        now = time.monotonic()
        if self.console.quiet or not self.console.tty:
            return
        if now - self.last < 0.1 and self.done < self.total:
            return
        self.last = now
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0
        line = (
            f"\r{self.label} |{'█' * filled}{'·' * (width - filled)}| {self.done}/{self.total} "
            f"{self.unit} {elapsed:5.1f} s (ETA {eta:4.0f} s){self.extra}"
        )
        print(line, end="", file=sys.stderr, flush=True)

    def close(self, summary=None):
        elapsed = time.monotonic() - self.start
        if self.console.quiet:
            return
        if self.console.tty:
            print("\r\033[K", end="", file=sys.stderr)
        text = summary or f"{self.label}: {self.done} {self.unit}"
        print(f"{text} ({elapsed:.1f} s)", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=min(100, _terminal_width()))


def _wrap(text):
    """Fill prose paragraphs to the terminal width (the formatter keeps them as written)."""
    import textwrap

    width = min(100, _terminal_width()) - 2
    return "\n\n".join(
        textwrap.fill(p, width, break_on_hyphens=False) for p in text.split("\n\n")
    )


def _terminal_width():
    import shutil

    columns = shutil.get_terminal_size((100, 24)).columns
    return columns if columns >= 60 else 100


def _add_reading(parser, labels_help=None):
    parser.add_argument(
        "--labels",
        metavar="FOLDER",
        help=labels_help
        or (
            "folder of label images (same file name as each image, 0 = background) or of "
            "Pascal VOC .xml box files; without it, nuclei are segmented automatically"
        ),
    )
    parser.add_argument(
        "--channels",
        nargs="+",
        metavar="NAME",
        help="names of the image channels, in order (letters and digits, e.g. DNA Actin)",
    )
    parser.add_argument(
        "--as-gray",
        action="store_true",
        help="read every image as one grey channel (for folders mixing colour and grey files)",
    )
    parser.add_argument(
        "--metadata",
        metavar="CSV",
        help=(
            "table with one row per image: a column of image file names (image, file or "
            "filename) and columns such as cell_line or count, copied to every cell"
        ),
    )
    parser.add_argument(
        "--margin",
        type=int,
        default=8,
        metavar="PIXELS",
        help="context pixels kept around each cell (default: %(default)s)",
    )


def _add_common(parser):
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        metavar="N",
        help="CPU cores to use (-1: all; default: 1)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")


def _add_cv(parser):
    parser.add_argument(
        "--cv", type=int, default=5, metavar="K", help="cross-validation folds (default: 5)"
    )
    parser.add_argument(
        "--group-by",
        default="image",
        metavar="COLUMN",
        help=(
            "cells sharing this metadata value are kept in the same fold (default: image; "
            "e.g. Well or Plate; 'none' only if rows are truly independent)"
        ),
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def build_parser():
    """The argument parser of the ``featcell`` command."""
    from featcell import __version__

    parser = argparse.ArgumentParser(
        prog="featcell",
        description=_wrap(
            "featcell turns microscopy images of cells into per-cell measurements and "
            "CNN embeddings, trains models (live/dead, cell line or phenotype, cell "
            "counts), measures them honestly with cross-validation grouped by image, and "
            "writes reports for a paper."
        ),
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"featcell {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full Python traceback of any error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    # extract ---------------------------------------------------------------------------
    p = sub.add_parser(
        "extract",
        help="measure every cell of a folder of images into a table",
        description=_wrap(
            "Measure every cell in a folder of images and write one row per cell: "
            "Metadata_* columns (image, position, class from VOC boxes) then the features, "
            "named as in CellProfiler (AreaShape_Area, Intensity_MeanIntensity_DNA, ...). "
            "The table feeds 'featcell train' or your own analysis (pandas, R, KNIME)."
        ),
        epilog=(
            "examples:\n"
            "  featcell extract images/ --labels masks/ -o features.parquet\n"
            "  featcell extract 'plate1/*.tif' --channels DNA PH3 --families morphology "
            "intensity -o plate1.csv\n"
            "  featcell extract images/ --labels boxes/ --families cnn --as-gray "
            "-o embeddings.parquet\n\n"
            "The run can be interrupted and started again with the same command: finished "
            "images are kept."
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("images", metavar="IMAGES", help="folder of images, or a pattern such as 'plate1/*.tif'")
    p.add_argument(
        "-o", "--output", required=True, metavar="TABLE",
        help="output table, .parquet (recommended) or .csv",
    )
    p.add_argument(
        "--families",
        nargs="+",
        choices=_FAMILIES,
        default=list(_CLASSICAL),
        metavar="FAMILY",
        help=(
            "what to measure: morphology (shape), intensity, texture, colocalization "
            "(between channels), cnn (a pretrained network's embedding); default: the four "
            "classical families"
        ),
    )
    _add_reading(p)
    _add_common(p)
    p.set_defaults(run=_cmd_extract)

    # train -----------------------------------------------------------------------------
    p = sub.add_parser(
        "train",
        help="train a model, report its cross-validated scores, save it",
        description=_wrap(
            "Train a model on labelled cells (or images, for counting), estimate how well "
            "it does on new images by cross-validation grouped by image, print the scores "
            "with 95% confidence intervals, then fit it on all the data and save it for "
            "'featcell score'. The input is a folder of images (with --labels) or a feature "
            "table from 'featcell extract'."
        ),
        epilog=(
            "examples:\n"
            "  featcell train images/ --labels boxes/ --target Class --task viability "
            "-o viability.featcell\n"
            "  featcell train features.parquet --target Class --model rf -o model.featcell\n"
            "  featcell train images/ --labels masks/ --metadata images.csv --target "
            "cell_line --task phenotype -o cell_line.featcell --report cv_report/\n"
            "  featcell train images/ --metadata counts.csv --target count --task counting "
            "-o counter.featcell\n\n"
        ) + _wrap(
            "models: svm (support-vector machine), rf (random forest), lr (logistic or "
            "ridge regression), gnb (naive Bayes), xgb (gradient boosting), cnn (a "
            "pretrained CNN's embedding of each cell + logistic regression), trained_cnn "
            "(a small CNN trained on the cells' crops: needs torch, featcell[train], to "
            "train; scoring needs only onnxruntime); counting "
            "also accepts segmentation (count segmented nuclei, calibrated)."
        ),
        formatter_class=_Formatter,
    )
    p.add_argument(
        "input", metavar="TABLE_OR_FOLDER",
        help="feature table (.parquet/.csv from 'featcell extract') or folder of images",
    )
    p.add_argument(
        "--target", required=True, metavar="COLUMN",
        help="what to predict: a column such as Class (VOC box names), cell_line or count",
    )
    p.add_argument(
        "--task", choices=_TASKS, default="viability",
        help="viability or phenotype: classify cells; counting: cells per image "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--model", choices=(*_HEADS, "segmentation", "trained_cnn"), default="svm",
        help="the model (default: %(default)s); see below",
    )
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write (.featcell)")
    p.add_argument(
        "--families", nargs="+", choices=_FAMILIES, default=None, metavar="FAMILY",
        help="features to measure when the input is images (default: the four classical "
        "families; cnn with --model cnn)",
    )
    p.add_argument("--report", metavar="FOLDER", help="also write an HTML/Markdown report of the cross-validation")
    _add_reading(p)
    _add_cv(p)
    _add_common(p)
    p.set_defaults(run=_cmd_train)

    # score -----------------------------------------------------------------------------
    p = sub.add_parser(
        "score",
        help="apply a saved model to new images (or a feature table)",
        description=_wrap(
            "Apply a model saved by 'featcell train' to new images: one row per cell with "
            "the prediction and class probabilities, plus a per-image summary (cells per "
            "class) in <output>_images.parquet. Images are read the way the model's "
            "training images were (channels, grey). An interrupted run resumes."
        ),
        epilog=(
            "examples:\n"
            "  featcell score viability.featcell new_images/ --labels new_boxes/ "
            "-o predictions.parquet\n"
            "  featcell score model.featcell 'plate2/*.tif' -o plate2.csv --n-jobs 4\n"
            "  featcell score model.featcell features.parquet -o predictions.parquet"
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("model", metavar="MODEL", help="a model file written by 'featcell train'")
    p.add_argument("input", metavar="IMAGES", help="folder or pattern of images, or a feature table")
    p.add_argument("-o", "--output", required=True, metavar="TABLE", help="predictions table, .parquet or .csv")
    _add_reading(p)
    for action in p._actions:  # reading settings default to the model's
        if action.dest in ("as_gray", "margin", "channels"):
            action.default = None
            action.help = action.help.replace("%(default)s", "as for the training images")
    _add_common(p)
    p.set_defaults(run=_cmd_score)

    # compare ---------------------------------------------------------------------------
    p = sub.add_parser(
        "compare",
        help="compare classical features and a CNN on the same folds; write a report",
        description=_wrap(
            "Compare candidate models on exactly the same cross-validation folds (grouped "
            "by image): classical features (shape, intensity, texture), the embedding of "
            "a pretrained CNN, and both together. Writes an HTML and a Markdown report "
            "with the metrics and their confidence intervals, paired tests, confusion "
            "matrices, ROC curves, which feature families the models use, a map of the "
            "cells and example cells."
        ),
        epilog=(
            "examples:\n"
            "  featcell compare images/ --labels boxes/ --target Class -o report/\n"
            "  featcell compare features.parquet --target Class --model rf lr -o report/\n"
            "  featcell compare images/ --labels masks/ --metadata images.csv --target "
            "cell_line --candidates classical cnn -o report/"
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("input", metavar="TABLE_OR_FOLDER", help="folder of images or a feature table")
    p.add_argument("--target", required=True, metavar="COLUMN", help="the class column, e.g. Class")
    p.add_argument("-o", "--output", required=True, metavar="FOLDER", help="report folder")
    p.add_argument(
        "--candidates", nargs="+", choices=_CANDIDATES, default=list(_CANDIDATES),
        help="feature sets to compare (default: all three)",
    )
    p.add_argument(
        "--model", nargs="+", choices=_HEADS[:-1], default=["svm"], metavar="MODEL",
        help="classifier(s) on top of each feature set: svm, rf, lr, gnb, xgb "
        "(default: svm)",
    )
    p.add_argument(
        "--families", nargs="+", choices=_CLASSICAL, default=list(_CLASSICAL),
        metavar="FAMILY", help="classical families to measure (default: all four)",
    )
    p.add_argument("--title", default=None, help="report title")
    p.add_argument(
        "--no-importance", action="store_true",
        help="skip the feature-family importance (faster)",
    )
    _add_reading(p)
    _add_cv(p)
    _add_common(p)
    p.set_defaults(run=_cmd_compare)

    # demo ------------------------------------------------------------------------------
    p = sub.add_parser(
        "demo",
        help="run a complete small analysis on bundled real data and write a report",
        description=_wrap(
            "Run a complete analysis on real images that ship with featcell: 40 "
            "bright-field images of living and dead cells (maxKudi/Cell-Dataset, MIT "
            "licence) with their annotated boxes. featcell measures every cell, compares "
            "classical features, a CNN embedding and both with 5-fold cross-validation "
            "grouped by image, and writes an HTML report. Takes about a minute."
        ),
        epilog="example:\n  featcell demo -o demo_report\n  open demo_report/report.html",
        formatter_class=_Formatter,
    )
    p.add_argument("-o", "--output", default="featcell_demo", metavar="FOLDER", help="report folder (default: %(default)s)")
    p.add_argument(
        "--images", type=int, default=40, metavar="N",
        help="use N of the 40 bundled images, for a quicker run (default: all 40)",
    )
    _add_common(p)
    p.set_defaults(run=_cmd_demo)
    return parser


# --------------------------------------------------------------------------- main


def main(argv=None):
    """Run the ``featcell`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a mistake in the arguments or input files,
        1 for an unexpected failure (a bug: please report it, with ``--debug``).

    Examples
    --------
    >>> from featcell.cli import main
    >>> main(["--version"])  # doctest: +SKIP
    featcell 0.1.0
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's own usage error (status 2)
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    console = _Console(getattr(args, "quiet", False))
    args.argv = argv
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not console.quiet:
            print(f"featcell: warning: {message}", file=sys.stderr, flush=True)

    warnings.showwarning = show
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show
            args.run(args, console)
        return 0
    except KeyboardInterrupt:
        print("\nfeatcell: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, UserError) or _is_user_error(exc):
            print(f"featcell: error: {_message(exc)}", file=sys.stderr)
            return 2
        import traceback

        traceback.print_exc()
        print(
            f"featcell: internal error ({type(exc).__name__}); please report it with the "
            "command line and the output of --debug",
            file=sys.stderr,
        )
        return 1
    finally:
        warnings.showwarning = shown


def _is_user_error(exc):
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError,
                        PermissionError, ValueError, KeyError)):
        return True
    return type(exc).__name__ == "UntrustedTypesFoundException"


def _message(exc):
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.strerror}: {exc.filename!r}"
    return str(exc)


# --------------------------------------------------------------------------- shared steps


def _read_kwargs(args):
    kwargs = {}
    if getattr(args, "channels", None):
        kwargs["channels"] = list(args.channels)
    if getattr(args, "as_gray", None):
        kwargs["as_gray"] = True
    if getattr(args, "margin", None) is not None:
        if args.margin < 0:
            raise UserError(f"--margin must be 0 or more pixels, got {args.margin}")
        kwargs["margin"] = args.margin
    if getattr(args, "metadata", None):
        kwargs["metadata"] = _read_image_table(args.metadata)
    return kwargs


def _read_image_table(path):
    """A per-image CSV/Parquet table indexed by image file name."""
    import pandas as pd

    table = _read_table(path)
    for column in ("image", "Image", "file", "File", "filename", "FileName", "file_name",
                   "Metadata_ImageID", "Metadata_FileName"):
        if column in table.columns:
            break
    else:
        column = table.columns[0]
    names = table[column].astype(str).map(lambda v: Path(v).name)
    if names.duplicated().any():
        raise UserError(
            f"{path}: column {column!r} names image {names[names.duplicated()].iloc[0]!r} "
            "more than once; expected one row per image"
        )
    table = table.drop(columns=[column])
    table.index = pd.Index(names, name="image")
    table.columns = [str(c).removeprefix("Metadata_") for c in table.columns]
    return table


def _read_table(path):
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such table: {str(path)!r}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t")
    except Exception as exc:  # pyarrow and the CSV parser raise many kinds
        raise UserError(f"could not read table {str(path)!r}: {exc}") from exc
    raise UserError(f"{str(path)!r}: expected a .parquet or .csv table")


def _is_table(path):
    if isinstance(path, (list, tuple)):
        return False
    return Path(path).suffix.lower() in (*_TABLE_SUFFIXES, ".tsv") and Path(path).is_file()


def _check_images_source(source):
    from featcell.io import list_images

    if _is_table(source):
        return None
    try:
        files = list_images(source)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    if not files:
        raise UserError(f"no image files (.tif, .png, .jpg, .bmp) in {str(source)!r}")
    return files


def _check_output_table(path):
    suffix = Path(path).suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        raise UserError(f"-o {path!r}: the output table must end with .parquet or .csv")
    Path(path).resolve().parent.mkdir(parents=True, exist_ok=True)


def _read_cells(files, labels, read_kwargs, console):
    """All cells of the image files, one image at a time, with progress."""
    from featcell.cells import CellSet
    from featcell.io import iter_cells

    if labels is not None and not Path(labels).is_dir():
        raise UserError(f"--labels {labels!r} is not a folder")
    metadata = read_kwargs.get("metadata")
    if metadata is not None:
        missing = [f.name for f in files if f.name not in metadata.index]
        if missing:
            raise UserError(
                f"--metadata has no row for {len(missing)} image(s), e.g. {missing[0]!r}"
            )
    bar = console.bar(len(files), "reading images", "images")
    parts = []
    for path in files:
        try:
            cells = next(iter_cells([path], labels, **read_kwargs))
        except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path.name}: {_message(exc)}") from exc
        parts.append(cells)
        bar.update(1)
    channels = {tuple(p.channel_names) for p in parts}
    if len(channels) > 1:
        raise UserError(
            f"the images do not all have the same channels ({sorted(channels)}); use "
            "--as-gray for a folder that mixes grey and colour files, or --channels"
        )
    cells = CellSet.concat(parts)
    bar.close(f"read {len(files)} images, {len(cells)} cells")
    if len(cells) == 0:
        raise UserError("no cells found in the images")
    return cells


def _feature_step(families, n_jobs=None, cnn_threads=None):
    """The (unfitted) transformer that measures the chosen families of every cell."""
    from sklearn.pipeline import FeatureUnion

    from featcell.features.cell_features import CellFeatures

    classical = [f for f in families if f in _CLASSICAL]
    steps = []
    if classical:
        steps.append(("classical", CellFeatures(classical, n_jobs=n_jobs)))
    if "cnn" in families:
        from featcell.cnn import CNNEmbedding

        steps.append(("cnn", CNNEmbedding(n_threads=cnn_threads)))
    if not steps:
        raise UserError("--families is empty")
    if len(steps) == 1:
        return steps[0][1]
    return FeatureUnion(steps, verbose_feature_names_out=False)


def _measure(step, cells, console, n_jobs=None):
    """Fit `step` on the cells and measure them in chunks, with progress; a DataFrame."""
    import numpy as np
    import pandas as pd

    step.fit(cells)
    names = list(step.get_feature_names_out())
    if not names:
        raise UserError(
            f"nothing to measure on images with channels {list(cells.channel_names)} "
            "(colocalization needs two or more channels); choose other --families"
        )
    chunk = 256 if not n_jobs or n_jobs == 1 else 512 * (os.cpu_count() if n_jobs < 0 else n_jobs)
    bar = console.bar(len(cells), "measuring cells", "cells")
    parts = []
    for start in range(0, len(cells), chunk):
        part = cells[np.arange(start, min(start + chunk, len(cells)))]
        parts.append(np.asarray(step.transform(part), dtype=np.float32))
        bar.update(len(part))
    bar.close(f"measured {len(cells)} cells: {len(names)} features")
    return pd.DataFrame(np.vstack(parts), columns=names)


def _check_columns(metadata, args):
    _target(metadata, args.target, "cells")
    _groups(metadata, args.group_by, len(metadata))


def _target(metadata, column, what="cells"):
    for name in (column, f"Metadata_{column}"):
        if name in metadata.columns:
            return metadata[name]
    available = [c.removeprefix("Metadata_") for c in metadata.columns]
    raise UserError(
        f"--target {column!r} is not a column of the {what}; available: {available}"
    )


def _groups(metadata, group_by, n):
    import numpy as np

    if group_by is None or group_by.lower() == "none":
        return "none", "none (rows treated as independent)"
    aliases = {"image": "Metadata_ImageID", "object": "Metadata_ObjectNumber"}
    for name in (aliases.get(group_by, group_by), group_by, f"Metadata_{group_by}"):
        if name in metadata.columns:
            values = metadata[name].astype(str).to_numpy()
            return values, f"{name} ({len(np.unique(values))} groups)"
    raise UserError(
        f"--group-by {group_by!r}: no such column (available: "
        f"{[c for c in metadata.columns if c.startswith('Metadata_')]}); cells of one image "
        "must stay in one fold for honest scores. Pass --group-by none only if the rows are "
        "truly independent."
    )


def _note_missing(X, console):
    """Mark values that could not be measured (cells of a few pixels) as NaN and say so.

    They are imputed inside every cross-validation fold with the training cells'
    median (the pipeline's first step), so no test cell informs the fill; the saved
    model imputes the same way when it meets such cells later.
    """
    import numpy as np

    values = np.array(X.to_numpy(dtype=float), copy=True)
    bad = ~np.isfinite(values)
    if not bad.any():
        return X, None
    values[bad] = np.nan
    rows = int(bad.any(axis=1).sum())
    note = (
        f"{int(bad.sum())} values in {rows} cells could not be measured (e.g. shape features "
        "of cells of a few pixels); they are imputed with the training cells' median inside "
        "each fold."
    )
    console.say(f"note: {note}")
    return X.__class__(values, columns=X.columns, index=X.index), note


def _classifier_rest(head, n_jobs, seed):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from featcell.heads import make_head

    return Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("head", make_head(head, "classification", random_state=seed, n_jobs=n_jobs)),
    ])


def _describe_groups(result, text):
    """Name the grouping column in the result's protocol (for the report)."""
    for protocol in [result.protocol, *(r.protocol for r in getattr(result, "results", {}).values())]:
        if protocol.get("grouped"):
            protocol["groups_source"] = text.split(" (")[0]


def _print_scores(result):
    """The cross-validated metrics on stdout, one line per metric (and candidate)."""
    p = result.protocol
    ci = f"{p.get('ci', 0.95):.0%} CI"
    results = getattr(result, "results", {"model": result})
    width = max(len(m) for m in p["metrics"])
    for name, res in results.items():
        if len(results) > 1:
            print(f"{name}:")
        for row in res.summary.itertuples():
            print(
                f"  {row.metric:<{width}}  {row.pooled:7.3f}  [{row.ci_low:.3f}, "
                f"{row.ci_high:.3f}] {ci}   folds: {row.mean:.3f} ± {row.sd:.3f}"
            )


def _scores_metadata(result):
    rows = result.summary.to_dict(orient="records")
    return {
        "protocol": result.describe(),
        "scores": [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in rows
        ],
    }


# --------------------------------------------------------------------------- extract


def _settings_path(output):
    output = Path(output)
    return output.with_name(f"{output.stem}_settings.json")


def _cmd_extract(args, console):
    from featcell.batch import score_images
    from featcell.io import iter_cells

    files = _check_images_source(args.images)
    if files is None:
        raise UserError(f"{args.images!r} is a table; extract needs images")
    _check_output_table(args.output)
    read_kwargs = _read_kwargs(args)
    n_jobs = args.n_jobs
    step = _feature_step(args.families, n_jobs=None,
                         cnn_threads=1 if n_jobs not in (None, 1) else None)
    if args.labels is not None and not Path(args.labels).is_dir():
        raise UserError(f"--labels {args.labels!r} is not a folder")
    console.say(f"featcell extract: {len(files)} images, families {' '.join(args.families)}")
    try:
        first = next(iter_cells([files[0]], args.labels, **read_kwargs))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{files[0].name}: {_message(exc)}") from exc
    step.fit(first)
    names = list(step.get_feature_names_out())
    if not names:
        raise UserError(
            f"nothing to measure with --families {' '.join(args.families)} on images with "
            f"channels {list(first.channel_names)} (colocalization needs two or more channels)"
        )
    console.say(f"{len(names)} features per cell, channels {', '.join(first.channel_names)}")
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        result = score_images(
            step, [str(f) for f in files], args.labels, args.output, n_jobs=n_jobs,
            per_image=False, progress=not console.quiet, read_kwargs=read_kwargs,
        )
    settings = {
        "featcell": _version(),
        "families": list(args.families),
        "channel_names": list(first.channel_names),
        "read": {k: v for k, v in read_kwargs.items() if k != "metadata"},
        "labels": _labels_kind(args.labels),
        "feature_names": names,
    }
    _settings_path(args.output).write_text(json.dumps(settings, indent=2))
    console.say(
        f"wrote {result.n_cells} cells x {len(names)} features from {result.n_images} images "
        f"to {args.output}"
        + (f" ({result.n_resumed} images resumed)" if result.n_resumed else "")
    )
    if result.n_errors:
        console.say(f"{result.n_errors} images failed: see {result.errors_path}")
    print(Path(args.output))


def _labels_kind(labels):
    if labels is None:
        return "segmented (featcell.segment)"
    if any(Path(labels).glob("*.xml")):
        return "Pascal VOC boxes, each cell segmented inside its box"
    return "label images"


def _version():
    from featcell import __version__

    return __version__


# --------------------------------------------------------------------------- train


class _Data:
    """The samples of a train/compare run: features, metadata and what made them."""

    def __init__(self, features, metadata, cells=None, step=None, settings=None, source=""):
        self.features = features  # DataFrame of numeric features
        self.metadata = metadata  # DataFrame of Metadata_* columns
        self.cells = cells
        self.step = step  # fitted feature transformer of cells, or None (table only)
        self.settings = settings or {}
        self.source = source


def _load_data(args, console, families):
    """Features and metadata from a table (+ its settings) or from images.

    The target and grouping columns are checked before any feature is measured, so that
    a typo fails in seconds.
    """
    if _is_table(args.input):
        data = _data_from_table(args, console)
        _check_columns(data.metadata, args)
        return data
    files = _check_images_source(args.input)
    read_kwargs = _read_kwargs(args)
    cells = _read_cells(files, args.labels, read_kwargs, console)
    _check_columns(cells.metadata, args)
    threads = 1 if args.n_jobs not in (None, 1) else None
    step = _feature_step(families, n_jobs=args.n_jobs, cnn_threads=threads)
    features = _measure(step, cells, console, args.n_jobs)
    settings = {
        "families": list(families),
        "channel_names": list(cells.channel_names),
        "read": {k: v for k, v in read_kwargs.items() if k != "metadata"},
        "labels": _labels_kind(args.labels),
    }
    return _Data(features, cells.metadata, cells, step, settings, source=str(args.input))


def _data_from_table(args, console, use_settings=True):
    import numpy as np

    table = _read_table(args.input)
    meta_cols = [c for c in table.columns if str(c).startswith("Metadata_")]
    numeric = [
        c for c in table.columns
        if c not in meta_cols and np.issubdtype(table[c].dtype, np.number)
        and table[c].dtype != bool
    ]
    other = [c for c in table.columns if c not in meta_cols and c not in numeric]
    metadata = table[meta_cols + other].copy()
    features = table[numeric].astype("float32")
    if features.shape[1] == 0:
        raise UserError(f"{args.input}: no numeric feature columns")
    settings = {}
    step = None
    path = _settings_path(args.input)
    if use_settings and path.is_file():
        settings = json.loads(path.read_text())
        step = _step_from_settings(settings, features, console)
        if step is not None:
            features = features[list(step.get_feature_names_out())]
    console.say(
        f"read {len(table)} rows x {features.shape[1]} features from {args.input}"
        + ("" if step is not None else " (feature table only: the model will score tables)")
    )
    return _Data(features, metadata, None, step, settings, source=str(args.input))


def _step_from_settings(settings, features, console):
    """Rebuild the fitted feature step that produced a table from 'featcell extract'."""
    import numpy as np

    from featcell.cells import CellSet

    try:
        channels = settings["channel_names"]
        step = _feature_step(settings["families"])
        probe = CellSet.from_crops(np.zeros((1, len(channels), 16, 16), np.float32),
                                   channels=channels)
        step.fit(probe)
    except (KeyError, TypeError, ValueError, OSError) as exc:  # old or edited settings file
        console.say(f"note: could not rebuild the feature extraction ({exc})")
        return None
    names = list(step.get_feature_names_out())
    if set(names) - set(features.columns):
        console.say(
            "note: the table's columns differ from what its settings file describes; the "
            "model will score feature tables only"
        )
        return None
    return step


def _cmd_train(args, console):
    import numpy as np

    out = Path(args.output)
    if out.suffix.lower() in (*_TABLE_SUFFIXES, ".png", ".tif"):
        raise UserError(f"-o {args.output!r} should be a model file such as model.featcell")
    if args.task == "counting":
        return _train_counter(args, console)
    if args.model == "segmentation":
        raise UserError("--model segmentation is for --task counting")
    if args.model == "trained_cnn":
        return _train_cnn(args, console)
    families = args.families or (["cnn"] if args.model == "cnn" else list(_CLASSICAL))
    head = "lr" if args.model == "cnn" else args.model
    if args.model == "cnn" and "cnn" not in families:
        families = [*families, "cnn"]
    console.say(f"featcell train: {args.task}, model {args.model}, target {args.target}")
    data = _load_data(args, console, families)
    y = _target(data.metadata, args.target, "cells")
    keep = y.notna().to_numpy()
    if not keep.all():
        console.say(f"skipping {int((~keep).sum())} cells without a {args.target} value")
    y = y[keep].astype(str).to_numpy()
    X, missing_note = _note_missing(data.features[keep].reset_index(drop=True), console)
    data.settings["missing"] = missing_note
    metadata = data.metadata[keep].reset_index(drop=True)
    classes, counts = np.unique(y, return_counts=True)
    console.say("classes: " + ", ".join(f"{c} ({n})" for c, n in zip(classes, counts)))
    if len(classes) < 2:
        raise UserError(f"--target {args.target!r} has a single class {classes[0]!r}")
    if args.task == "viability" and len(classes) != 2:
        console.say(
            f"note: viability usually has two classes, {args.target} has {len(classes)}"
        )
    groups, groups_text = _groups(metadata, args.group_by, len(y))
    rest = _classifier_rest(head, args.n_jobs, args.seed)
    console.say(f"cross-validating ({args.cv} folds, grouped by {groups_text})")
    from featcell.evaluation import evaluate
    result = evaluate(rest, X.to_numpy(), y, groups, cv=args.cv, random_state=args.seed,
                      n_jobs=args.n_jobs)
    _describe_groups(result, groups_text)
    print(f"{result.describe()}")
    _print_scores(result)
    if args.report:
        _write_cv_report(args, result, data, X, y, keep, console)
    console.say("fitting on all cells")
    rest.fit(X.to_numpy(), y)
    model, kind = _compose(data.step, rest)
    from featcell.persist import save_model

    metadata_out = {
        "kind": kind,
        "task": args.task,
        "target": args.target,
        "classes": classes.tolist(),
        "n_samples": len(y),
        "features": data.settings,
        "feature_columns": list(X.columns) if kind == "table" else None,
        "trained_on": data.source,
        "command": "featcell " + shlex.join(args.argv),
        "cross_validation": _scores_metadata(result),
    }
    save_model(model, out, metadata=metadata_out)
    console.say(f"saved the model to {out}")
    if kind == "cells":
        console.say(f"next: featcell score {out} NEW_IMAGES [--labels ...] -o predictions.parquet")
    print(out)


def _train_cnn(args, console):
    """featcell train --model trained_cnn: a CNNClassifier trained on the cells' crops."""
    import numpy as np

    from featcell.evaluation import evaluate
    from featcell.persist import save_model
    from featcell.tasks import make_cell_classifier

    if _is_table(args.input):
        raise UserError("--model trained_cnn learns from the cells' pixels: give images, "
                        "not a feature table")
    console.say(f"featcell train: {args.task}, model trained_cnn, target {args.target}")
    read_kwargs = _read_kwargs(args)
    cells = _read_cells(_check_images_source(args.input), args.labels, read_kwargs, console)
    _check_columns(cells.metadata, args)
    y = _target(cells.metadata, args.target, "cells")
    keep = y.notna().to_numpy()
    cells, y = cells[np.flatnonzero(keep)], y[keep].astype(str).to_numpy()
    classes, counts = np.unique(y, return_counts=True)
    console.say("classes: " + ", ".join(f"{c} ({n})" for c, n in zip(classes, counts)))
    if len(classes) < 2:
        raise UserError(f"--target {args.target!r} has a single class {classes[0]!r}")
    groups, groups_text = _groups(cells.metadata.reset_index(drop=True), args.group_by, len(y))
    model = make_cell_classifier("trained_cnn", random_state=args.seed,
                                 cnn_params={"verbose": not console.quiet})
    console.say(f"cross-validating ({args.cv} folds, grouped by {groups_text}); the network "
                "is trained inside every fold")
    result = evaluate(model, cells, y, groups, cv=args.cv, random_state=args.seed)
    _describe_groups(result, groups_text)
    print(result.describe())
    _print_scores(result)
    console.say("training on all cells")
    model.fit(cells, y)
    settings = {"families": [], "channel_names": list(cells.channel_names),
                "read": {k: v for k, v in read_kwargs.items() if k != "metadata"},
                "labels": _labels_kind(args.labels), "model": "trained_cnn"}
    save_model(model, args.output, metadata={
        "kind": "cells", "task": args.task, "target": args.target,
        "classes": classes.tolist(), "n_samples": len(y), "features": settings,
        "feature_columns": None, "trained_on": str(args.input),
        "command": "featcell " + shlex.join(args.argv),
        "cross_validation": _scores_metadata(result),
    })
    console.say(f"saved the model to {args.output}")
    print(args.output)


def _compose(step, rest):
    """A model of cells (feature step + rest) when the feature step is known, else rest."""
    from sklearn.pipeline import Pipeline

    if step is None:
        return rest, "table"
    return Pipeline([("features", step), *rest.steps]), "cells"


def _write_cv_report(args, result, data, X, y, keep, console):
    from featcell.report import write_report

    cells = data.cells[keep] if data.cells is not None else None
    out = write_report(
        result, args.report, title=f"featcell: {args.task} model ({args.model})",
        dataset=_dataset_description(data, args),
        preprocessing=_preprocessing_description(data.settings, X.shape[1], args.model),
        cells=cells, features=X, labels=y,
    )
    console.say(f"wrote the report {out.get('html', out.get('md'))}")


def _dataset_description(data, args):
    description = {"input": data.source}
    if getattr(args, "labels", None):
        description["labels"] = f"{args.labels} ({data.settings.get('labels', '')})"
    if getattr(args, "metadata", None):
        description["per-image metadata"] = args.metadata
    description["target"] = args.target
    return description


def _preprocessing_description(settings, n_features, head):
    steps = []
    read = settings.get("read", {})
    if settings.get("labels"):
        steps.append(f"Cells: {settings['labels']}.")
    if read.get("as_gray"):
        steps.append("Images read as one grey channel.")
    if settings.get("channel_names"):
        steps.append(f"Channels: {', '.join(settings['channel_names'])}.")
    if settings.get("families"):
        steps.append(
            f"Features: {', '.join(settings['families'])} ({n_features} columns per cell, "
            "CellProfiler-style names; CNN: the bundled ImageNet EfficientNet-Lite0 embedding "
            "of each cell's crop)."
            if "cnn" in settings["families"]
            else f"Features: {', '.join(settings['families'])} ({n_features} columns per "
            "cell, CellProfiler-style names)."
        )
    if settings.get("missing"):
        steps.append(settings["missing"])
    steps.append(
        "Features depend on each cell alone (nothing is learnt from other cells), so they "
        "were computed once; inside every training fold, missing values were imputed with "
        f"the median, features standardised, and the classifier ({head}) fitted."
    )
    return steps


# --------------------------------------------------------------------------- counting


def _train_counter(args, console):
    import numpy as np
    import pandas as pd
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from featcell.heads import make_head

    if args.model == "gnb":
        raise UserError("--model gnb (naive Bayes) is a classifier; for counting use rf, "
                        "svm, lr, xgb, cnn or segmentation")
    console.say(f"featcell train: counting, model {args.model}, target {args.target}")
    head = "lr" if args.model in ("cnn", "segmentation") else args.model
    regressor = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                          ("scale", StandardScaler()),
                          ("head", make_head(head, "regression", random_state=args.seed,
                                             n_jobs=args.n_jobs))])
    step = X = None
    if _is_table(args.input):
        if args.model in ("cnn", "segmentation"):
            raise UserError(f"--model {args.model} needs images, not a table")
        data = _data_from_table(args, console, use_settings=False)
        frame = data.features if args.target in data.features else data.metadata
        y = pd.to_numeric(_target(frame, args.target, "table"), errors="coerce")
        X, _ = _note_missing(data.features.drop(columns=[args.target], errors="ignore"), console)
        meta = data.metadata
        if args.group_by == "image" and "Metadata_ImageID" not in meta:
            meta = meta.assign(Metadata_ImageID=np.arange(len(meta)).astype(str))
        estimator, samples, kind = regressor, X.to_numpy(), "table"
    else:
        files = _check_images_source(args.input)
        if not args.metadata:
            raise UserError(
                "counting needs the true counts: pass --metadata counts.csv with a column of "
                f"image file names and a {args.target!r} column"
            )
        table = _read_image_table(args.metadata)
        missing = [f.name for f in files if f.name not in table.index]
        if missing:
            raise UserError(f"--metadata has no row for {len(missing)} image(s), e.g. "
                            f"{missing[0]!r}")
        meta = table.loc[[f.name for f in files]].reset_index()
        meta.columns = ["Metadata_ImageID", *(f"Metadata_{c}" for c in meta.columns[1:])]
        y = pd.to_numeric(_target(meta, args.target, "--metadata table"), errors="coerce")
        paths = [str(f) for f in files]
        if args.model == "segmentation":
            from featcell.counting import SegmentationCounter

            estimator, kind = SegmentationCounter(n_jobs=args.n_jobs), "images"
            samples = paths
        else:
            step = _image_step(args)
            step.fit(paths)
            bar = console.bar(len(paths), "measuring images", "images")
            rows = []
            for start in range(0, len(paths), 8):
                rows.append(np.asarray(step.transform(paths[start:start + 8]), np.float32))
                bar.update(len(rows[-1]))
            bar.close(f"measured {len(paths)} images")
            X = pd.DataFrame(np.vstack(rows), columns=list(step.get_feature_names_out()))
            X, _ = _note_missing(X, console)
            estimator, samples, kind = regressor, X.to_numpy(), "images"
    if y.isna().any():
        raise UserError(f"--target {args.target!r} has {int(y.isna().sum())} missing or "
                        "non-numeric values; counting needs a number per image")
    y = y.to_numpy(float)
    groups, groups_text = _groups(meta, args.group_by, len(y))
    console.say(f"cross-validating ({args.cv} folds, grouped by {groups_text})")
    from featcell.evaluation import evaluate

    result = evaluate(estimator, samples, y, groups, cv=args.cv, task="regression",
                      random_state=args.seed, n_jobs=args.n_jobs)
    _describe_groups(result, groups_text)
    print(result.describe())
    _print_scores(result)
    if args.report:
        from featcell.report import write_report

        out = write_report(
            result, args.report, title=f"featcell: counting model ({args.model})",
            dataset={"input": args.input, "true counts": args.metadata or args.input,
                     "target": args.target},
            features=X,
        )
        console.say(f"wrote the report {out['html']}")
    console.say("fitting on all images")
    estimator.fit(samples, y)
    model = Pipeline([("features", step), *estimator.steps]) if step is not None else estimator
    from featcell.persist import save_model

    save_model(model, args.output, metadata={
        "kind": kind, "task": "counting", "target": args.target, "n_samples": len(y),
        "features": {"read": {}},
        "feature_columns": list(X.columns) if kind == "table" else None,
        "trained_on": str(args.input), "command": "featcell " + shlex.join(args.argv),
        "cross_validation": _scores_metadata(result),
    })
    console.say(f"saved the model to {args.output}")
    print(args.output)


def _image_step(args):
    if args.model == "cnn":
        from featcell.cnn import CNNEmbedding

        return CNNEmbedding()
    from featcell.counting import ImageFeatures

    return ImageFeatures(n_jobs=args.n_jobs)


# --------------------------------------------------------------------------- score


def _cmd_score(args, console):
    import numpy as np
    import pandas as pd

    if not Path(args.model).is_file():
        raise UserError(f"no such model file: {args.model!r}")
    _check_output_table(args.output)
    from featcell.persist import load_model, read_manifest

    manifest = read_manifest(args.model)
    info = manifest.get("metadata", {})
    kind = info.get("kind", "cells")
    model = load_model(args.model)
    console.say(
        f"featcell score: {info.get('task', 'model')} model ({manifest.get('estimator')}), "
        f"trained {manifest.get('created', '?')}"
    )
    if _is_table(args.input):
        table = _read_table(args.input)
        if kind == "images" and info.get("feature_columns") is None:
            raise UserError("this counting model scores images, not tables")
        if kind == "cells":
            columns = list(model[0].get_feature_names_out())
            predictor = model[1:]
        else:
            columns = info.get("feature_columns") or []
            predictor = model
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise UserError(
                f"{args.input} lacks {len(missing)} feature columns the model needs, e.g. "
                f"{missing[0]!r}; extract it with the same families and channels"
            )
        X = table[columns].to_numpy(np.float32)
        out = table[[c for c in table.columns if str(c).startswith("Metadata_")]].copy()
        out["Prediction"] = predictor.predict(X)
        if hasattr(predictor, "predict_proba"):
            proba = predictor.predict_proba(X)
            for k, c in enumerate(predictor.classes_):
                out[f"Probability_{c}"] = proba[:, k]
        _write_table(out, args.output)
        console.say(f"scored {len(out)} rows")
        _print_prediction_summary(out)
        print(args.output)
        return
    files = _check_images_source(args.input)
    if kind == "table":
        raise UserError(
            "this model was trained on a feature table without featcell's extraction "
            "settings, so it cannot measure images itself; score a feature table with the "
            "same columns instead (featcell score MODEL features.parquet -o ...)"
        )
    read = dict(info.get("features", {}).get("read", {}))
    read.update(_read_kwargs(args))
    if kind == "images":
        paths = [str(f) for f in files]
        bar = console.bar(len(paths), "counting", "images")
        predictions = []
        for start in range(0, len(paths), 8):
            predictions.append(np.asarray(model.predict(paths[start:start + 8]), float))
            bar.update(len(predictions[-1]))
        bar.close(f"counted cells in {len(paths)} images")
        out = pd.DataFrame({"Metadata_ImageID": [f.name for f in files],
                            "Metadata_Path": paths,
                            "Prediction": np.concatenate(predictions)})
        _write_table(out, args.output)
        print(out[["Metadata_ImageID", "Prediction"]].to_string(index=False, max_rows=20))
        print(args.output)
        return
    from featcell.batch import score_images

    if args.labels is not None and not Path(args.labels).is_dir():
        raise UserError(f"--labels {args.labels!r} is not a folder")
    result = score_images(
        model, [str(f) for f in files], args.labels, args.output, n_jobs=args.n_jobs,
        progress=not console.quiet, read_kwargs=read,
    )
    console.say(
        f"scored {result.n_cells} cells in {result.n_images} images"
        + (f" ({result.n_resumed} resumed)" if result.n_resumed else "")
        + (f"; {result.n_errors} images failed, see {result.errors_path}" if result.n_errors
           else "")
    )
    if result.images_path is not None and result.n_images:
        images = result.read_images()
        shown = [c for c in images.columns if c == "Metadata_ImageID" or c.startswith("Count_")]
        print(images[shown].to_string(index=False, max_rows=20))
        console.say(f"per-image summary: {result.images_path}")
    print(result.cells_path)


def _write_table(frame, path):
    if Path(path).suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _print_prediction_summary(frame):
    counts = frame["Prediction"].value_counts()
    for value, n in counts.head(20).items():
        print(f"  {value}: {n}")


# --------------------------------------------------------------------------- compare


def _candidate_columns(features, names):
    classical = [c for c in features.columns if not str(c).startswith("CNN_")]
    cnn = [c for c in features.columns if str(c).startswith("CNN_")]
    sets = {"classical": classical, "cnn": cnn, "both": classical + cnn}
    return {name: sets[name] for name in names if sets[name]}


def _cmd_compare(args, console):
    if Path(args.output).suffix.lower() in (*_TABLE_SUFFIXES, ".html", ".md"):
        raise UserError(f"-o {args.output!r} should be a folder for the report")
    families = list(args.families)
    if any(c in ("cnn", "both") for c in args.candidates):
        families.append("cnn")
    if not any(c in ("classical", "both") for c in args.candidates):
        families = ["cnn"]
    console.say(
        f"featcell compare: {' vs '.join(args.candidates)} with {' / '.join(args.model)}, "
        f"target {args.target}"
    )
    data = _load_data(args, console, families)
    title = args.title or f"featcell: {' vs '.join(args.candidates)} for {args.target}"
    _compare_and_report(args, console, data, title, families)


def _compare_and_report(args, console, data, title, families, dataset=None, notes=None):
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from featcell.evaluation import compare
    from featcell.importance import family_importance
    from featcell.report import write_report

    y = _target(data.metadata, args.target, "cells")
    keep = y.notna().to_numpy()
    if not keep.all():
        console.say(f"skipping {int((~keep).sum())} cells without a {args.target} value")
    y = y[keep].astype(str).to_numpy()
    X, missing_note = _note_missing(data.features[keep].reset_index(drop=True), console)
    data.settings["missing"] = missing_note
    metadata = data.metadata[keep].reset_index(drop=True)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise UserError(f"--target {args.target!r} has a single class {classes[0]!r}")
    console.say("classes: " + ", ".join(f"{c} ({n})" for c, n in zip(classes, counts)))
    groups, groups_text = _groups(metadata, args.group_by, len(y))
    sets = _candidate_columns(X, args.candidates)
    if not sets:
        raise UserError(f"no features for candidates {args.candidates}")
    candidates = {}
    for set_name, columns in sets.items():
        for head in args.model:
            name = set_name if len(args.model) == 1 else f"{set_name} + {head}"
            select = ColumnTransformer([("select", "passthrough", columns)], remainder="drop",
                                       verbose_feature_names_out=False)
            candidates[name] = (
                Pipeline([("select", select), *_classifier_rest(head, None, args.seed).steps]),
                columns, head,
            )
    console.say(
        f"cross-validating {len(candidates)} candidates on the same {args.cv} folds, grouped "
        f"by {groups_text}"
    )
    result = compare({k: v[0] for k, v in candidates.items()}, X, y, groups, cv=args.cv,
                     random_state=args.seed, n_jobs=args.n_jobs)
    _describe_groups(result, groups_text)
    result.protocol["candidates"] = {
        name: f"{len(columns)} {name.split(' + ')[0]} feature columns, then\n"
        + repr(_classifier_rest(head, None, args.seed))
        for name, (_, columns, head) in candidates.items()
    }
    print(result.describe())
    _print_scores(result)
    importance = None
    if not getattr(args, "no_importance", False):
        importance = {}
        splits = next(iter(result.results.values())).splits
        bar = console.bar(len(candidates), "feature-family importance", "candidates")
        for name, (_, columns, head) in candidates.items():
            importance[name] = family_importance(
                _classifier_rest(head, None, args.seed), X[columns], y,
                groups=None if isinstance(groups, str) else groups,
                cv=splits, random_state=args.seed, n_jobs=args.n_jobs,
            )
            bar.update(1)
        bar.close("feature-family importance done")
        for name, table in importance.items():
            top = table.iloc[0]
            print(f"{name}: most important family {top['family']} (drop of "
                  f"{table.attrs['scoring']} {top['drop_mean']:.3f} ± {top['drop_sd']:.3f})")
    classical = sets.get("classical") or next(iter(sets.values()))
    cells = data.cells[keep] if data.cells is not None else None
    preprocessing = _preprocessing_description(data.settings, X.shape[1], "/".join(args.model))
    out = write_report(
        result, args.output, title=title,
        dataset=dataset or _dataset_description(data, args),
        preprocessing=preprocessing, cells=cells, features=X[classical], labels=y,
        importance=importance, notes=notes, random_state=args.seed,
    )
    console.say(f"wrote the report {out['html']}")
    print(out["html"])
    return result


# --------------------------------------------------------------------------- demo


def _cmd_demo(args, console):
    root = _DATA / "live_dead"
    if not (root / "images").is_dir():
        raise UserError(f"the bundled demo data are missing from {root}; reinstall featcell")
    import numpy as np

    from featcell.io import list_images

    start = time.monotonic()
    files = list_images(root / "images")
    if not 10 <= args.images <= len(files):
        raise UserError(f"--images must be between 10 and {len(files)}, got {args.images}")
    files = [files[i] for i in np.linspace(0, len(files) - 1, args.images).round().astype(int)]
    console.say(
        f"featcell demo: live/dead classification of cells in {len(files)} bright-field "
        "images (maxKudi/Cell-Dataset, MIT licence; see featcell/data/ATTRIBUTION.md)"
    )
    demo = argparse.Namespace(
        input=[str(f) for f in files], labels=str(root / "annotations"), metadata=None,
        channels=["BF"], as_gray=True, margin=8, target="Class", group_by="image", cv=5,
        seed=0, n_jobs=args.n_jobs, model=["lr"], candidates=list(_CANDIDATES),
        no_importance=False, quiet=args.quiet, argv=args.argv,
    )
    families = [*_CLASSICAL[:3], "cnn"]
    data = _load_data(demo, console, families)
    dataset = {
        "source": "Living and Dead Cell (LDC) dataset, O. Chukwudi, github.com/maxKudi/"
        f"Cell-Dataset (MIT licence); {len(files)} of the 40 images bundled with featcell "
        "(featcell/data/ATTRIBUTION.md)",
        "images": "bright-field, 219×225 or 220×220 pixels, read as one grey channel (BF)",
        "labels": "Pascal VOC boxes named 'Living Cell' or 'Dead Cell' (the author notes "
        "some label errors); each cell is segmented inside its box",
    }
    notes = (
        f"This is a demonstration on {len(files)} images: the confidence intervals are wide and the "
        "numbers are not a benchmark. Run the same analysis on your own images with "
        "'featcell compare IMAGES --labels LABELS --target COLUMN -o report/'."
    )
    demo.output = args.output
    _compare_and_report(
        demo, console, data, "featcell demo: living vs dead cells, classical features vs CNN",
        families, dataset=dataset, notes=notes,
    )
    console.say(
        f"demo finished in {time.monotonic() - start:.0f} s: open "
        f"{Path(args.output) / 'report.html'} in a web browser"
    )


def entry_point():
    """The ``featcell`` console script: :func:`main` in a process featcell owns.

    The allocator keeps freed memory between images (see ``featcell._memory``);
    :func:`main` itself, called from Python, leaves the caller's process alone.
    """
    from ._memory import keep_freed_memory

    keep_freed_memory()
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry_point())
