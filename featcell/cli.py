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
_HEADS = ("svm", "rf", "lr", "lr_cv", "gnb", "xgb", "cnn")
_TASKS = ("viability", "phenotype", "counting")
_CANDIDATES = ("classical", "cnn", "both")
_COMPARE_COUNTERS = ("density", "cnn_density", "regression", "cnn", "segmentation")
_TABLE_SUFFIXES = (".parquet", ".csv")
_DATA = Path(__file__).resolve().parent / "data"
_FAILED_IMAGES = r"\d+ of \d+ images could not be scored"  # score_images' warning

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
    """featcell's progress bar (tqdm.auto) for one step on a terminal, then a summary line."""

    def __init__(self, console, total, label, unit):
        from featcell._progress import progress_bar

        self.console, self.total, self.label, self.unit = console, total, label, unit
        self.done = 0
        self.start = time.monotonic()
        self.bar = progress_bar(total, desc=label, unit=unit, leave=False,
                                disable=console.quiet or not console.tty)

    def update(self, n=1, extra=""):
        self.done += n
        if extra:
            self.bar.set_postfix_str(extra.strip(" ,;"), refresh=False)
        self.bar.update(n)

    def close(self, summary=None):
        elapsed = time.monotonic() - self.start
        self.bar.close()
        if self.console.quiet:
            return
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


class _LabelsAction(argparse.Action):
    """``--labels FOLDER`` (a str), or ``--labels Nuclei=DIR Cells=DIR`` (a dict)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) == 1 and "=" not in values[0]:
            setattr(namespace, self.dest, values[0])
            return
        labels = {}
        for item in values:
            name, _, folder = item.partition("=")
            if not folder or not name.isalnum() or not name[:1].isalpha() or name in labels:
                parser.error(
                    f"--labels takes one FOLDER, or NAME=FOLDER pairs with distinct names of "
                    f"letters and digits (e.g. Nuclei=nuclei/ Cells=cells/); got {item!r}"
                )
            labels[name] = folder
        setattr(namespace, self.dest, labels)


class _MetadataAction(argparse.Action):
    """``--metadata TABLE`` and/or ``KEY=VALUE``: the table in ``metadata``, the rest in
    ``metadata_values``."""

    def __call__(self, parser, namespace, values, option_string=None):
        tables = [v for v in values if "=" not in v]
        if len(tables) > 1:
            parser.error(f"--metadata takes at most one table, got {tables}")
        constants = {}
        for item in values:
            if "=" in item:
                key, _, value = item.partition("=")
                key = key.removeprefix("Metadata_")
                if not key.isidentifier():
                    parser.error(f"--metadata {item!r}: expected KEY=VALUE, e.g. Plate=P1")
                constants[key] = value
        setattr(namespace, self.dest, tables[0] if tables else None)
        namespace.metadata_values = constants


def _add_reading(parser, labels_help=None):
    parser.add_argument(
        "--labels",
        metavar="FOLDER",
        nargs="+",
        action=_LabelsAction,
        help=labels_help
        or (
            "folder of label images (same file name as each image, 0 = background) or of "
            "Pascal VOC .xml box files; without it, nuclei are segmented automatically. "
            "Several compartments: NAME=FOLDER pairs, e.g. Nuclei=nuclei/ Cells=cells/ "
            "(each cell measured in its nucleus, cell and cytoplasm)"
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
        metavar="CSV_OR_KEY=VALUE",
        nargs="+",
        action=_MetadataAction,
        help=(
            "table with one row per image: a column of image file names (image, file or "
            "filename) and columns such as cell_line or count, copied to every cell; "
            "and/or KEY=VALUE for all images (e.g. Plate=P1). Plate, Well and Site also "
            "come from plate-reader file names (Opera, ImageXpress, CellVoyager, Cellomics)"
        ),
    )
    parser.add_argument(
        "--save-labels",
        metavar="FOLDER",
        help=(
            "write the label image of every image featcell segmented itself (no --labels, "
            "or boxes) as <image>_labels.tif, to check in napari; extract and score do it "
            "by default, into <output>_labels/"
        ),
    )
    parser.add_argument(
        "--no-save-labels", action="store_true", help="do not write the segmented labels"
    )
    parser.add_argument(
        "--margin",
        type=int,
        default=8,
        metavar="PIXELS",
        help="context pixels kept around each cell (default: %(default)s)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="N",
        help="refuse images declaring more pixels than N before decoding them (default: "
        "2**28, a 16384 x 16384 plane); raise it for genuinely larger images",
    )
    parser.add_argument(
        "--channel-axis",
        type=int,
        default=None,
        metavar="AXIS",
        help="the axis of the stored image that holds the channels (e.g. 0 for an ImageJ "
        "stack whose channels were saved as slices); default: from the file's metadata",
    )
    parser.add_argument(
        "--z-project",
        choices=("max", "mean"),
        default=None,
        help="project z-stacks to one plane by their maximum or mean (a z-stack is "
        "refused otherwise)",
    )
    parser.add_argument(
        "--timepoint",
        type=int,
        default=None,
        metavar="K",
        help="take time point K (from 0) of time series (a time series is refused otherwise)",
    )


def _add_common(parser):
    parser.add_argument(
        "--n-jobs",
        type=_n_jobs,
        default=None,
        metavar="N",
        help="CPU cores to use (-1: all; default: 1)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")


def _add_scheduler(parser):
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the images on a Dask cluster: the address of its scheduler, e.g. "
        "tcp://10.0.0.5:8786 (needs featcell[dask]; workers must reach the image files)",
    )


_SCHEDULER_TIMEOUT = 30  # seconds to reach the Dask scheduler


def _cluster(address, console):
    """joblib's Dask backend on the Dask scheduler at ``address`` (a context manager)."""
    import contextlib

    stack = contextlib.ExitStack()
    if address is None:
        return stack
    try:
        import joblib
        from distributed import Client
    except ImportError:
        raise UserError(
            "--scheduler needs Dask's distributed scheduler: pip install 'featcell[dask]'"
        ) from None
    try:
        client = stack.enter_context(Client(address, timeout=_SCHEDULER_TIMEOUT))
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"--scheduler {address!r}: could not connect ({exc})") from exc
    stack.enter_context(joblib.parallel_config(backend="dask"))
    n_workers = len(client.scheduler_info().get("workers", {}))
    console.say(f"running on the Dask cluster at {address} ({n_workers} workers)")
    return stack


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


def _subparsers(parser):
    """``{command: its parser}`` of the top-level parser."""
    import argparse

    return next((a.choices for a in parser._actions
                 if isinstance(a, argparse._SubParsersAction)), {})


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
    p.add_argument(
        "--compartment",
        metavar="NAME",
        help=(
            "prefix of every feature column, as CellProfiler and pycytominer name them "
            "(Cells_AreaShape_Area); default Cells, or the name given in --labels NAME=FOLDER"
        ),
    )
    p.add_argument(
        "--format",
        choices=("parquet", "csv", "h5ad"),
        help=(
            "table format (default: from the -o suffix); h5ad writes an AnnData file for "
            "scanpy (features in X, metadata in obs, CNN embeddings and positions in obsm) "
            "and keeps the Parquet table beside it, which makes the run resumable"
        ),
    )
    _add_reading(p)
    _add_resume(p)
    _add_common(p)
    _add_scheduler(p)
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
            "-o counter.featcell\n"
            "  featcell train images/ --task counting --model density --points dots/ "
            "-o counter.featcell\n\n"
        ) + _wrap(
            "models: svm (support-vector machine), rf (random forest), lr (logistic or "
            "ridge regression), lr_cv (logistic regression with its penalty chosen by "
            "cross-validation), gnb (naive Bayes), xgb (gradient boosting), cnn (a "
            "pretrained CNN's embedding of each cell + logistic regression), trained_cnn "
            "(a small CNN trained on the cells' crops: needs torch, featcell[train], to "
            "train; scoring needs only onnxruntime); counting also accepts segmentation "
            "(count segmented nuclei, calibrated), density (a density map learnt from "
            "dot annotations, --points) and cnn_density (a small density network trained "
            "on the dots: needs featcell[train] to train)."
        ),
        formatter_class=_Formatter,
    )
    p.add_argument(
        "input", metavar="TABLE_OR_FOLDER",
        help="feature table (.parquet/.csv from 'featcell extract') or folder of images",
    )
    p.add_argument(
        "--target", metavar="COLUMN",
        help="what to predict: a column such as Class (VOC box names), cell_line or count "
        "(required except for --model density, which counts the --points)",
    )
    p.add_argument(
        "--task", choices=_TASKS, default="viability",
        help="viability or phenotype: classify cells; counting: cells per image "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--model", choices=(*_HEADS, "segmentation", "density", "cnn_density", "trained_cnn"),
        default="svm",
        help="the model (default: %(default)s); see below",
    )
    p.add_argument(
        "--points", metavar="DIR_OR_CSV",
        help="--model density or cnn_density: dot annotations, one point per object: a "
        "folder of dot images or point files matched to the images by name, or one CSV "
        "with an image column (napari, Fiji multi-point, x,y or row,col)",
    )
    p.add_argument(
        "--sigma", default="auto", metavar="PIXELS",
        help="--model density or cnn_density: Gaussian sigma around each dot, in pixels, or "
        "auto (chosen by validation on the training images; cnn_density: from half and all "
        "of the dot spacing's sigma; default: %(default)s)",
    )
    p.add_argument(
        "--pixel-features", choices=("filters", "cnn", "filters+cnn"), default="filters+cnn",
        help="--model density: pixel features, ilastik's filter bank and/or early CNN maps "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--pixel-head", choices=("xgb", "rf", "lr"), default="xgb",
        help="--model density: the pixel regressor (default: %(default)s)",
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
            "training images were (channels, grey). An interrupted run resumes where it "
            "stopped (a counting model keeps its progress in <output>_progress.jsonl)."
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
    p.add_argument(
        "--trust", action="append", default=[], metavar="TYPE",
        help="also load this type from the model file (repeatable; the error of an untrusted "
        "file lists them). Only for files whose author you trust: loading a type runs its code",
    )
    p.add_argument(
        "--save-density", metavar="FOLDER",
        help="density counting models: also write each image's density map (objects per "
        "pixel, float32 TIFF named <image>_density.tif) to this folder",
    )
    _add_reading(p)
    for action in p._actions:  # reading settings default to the model's
        if action.dest in ("as_gray", "margin", "channels"):
            action.default = None
            action.help = action.help.replace("%(default)s", "as for the training images")
    _add_resume(p)
    _add_common(p)
    _add_scheduler(p)
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
            "cell_line --candidates classical cnn -o report/\n"
            "  featcell compare images/ --labels boxes/ --target Class --model lr trained_cnn "
            "-o report/"
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("input", metavar="TABLE_OR_FOLDER", help="folder of images or a feature table")
    p.add_argument(
        "--target", metavar="COLUMN",
        help="the class column, e.g. Class (required except with --points)",
    )
    p.add_argument("-o", "--output", required=True, metavar="FOLDER", help="report folder")
    p.add_argument(
        "--points", metavar="DIR_OR_CSV",
        help="compare counters instead of classifiers: dot annotations of the images, one "
        "point per object (as for 'featcell train --model density'); --model then names "
        f"counters: {', '.join(_COMPARE_COUNTERS)} (default: density regression)",
    )
    p.add_argument(
        "--sigma", default="auto", metavar="PIXELS",
        help="with --points: the Gaussian sigma of the density counters, in pixels, or auto "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--candidates", nargs="+", choices=_CANDIDATES, default=list(_CANDIDATES),
        help="feature sets to compare (default: all three)",
    )
    p.add_argument(
        "--model", nargs="+", choices=(*_HEADS[:-1], "trained_cnn", *_COMPARE_COUNTERS),
        default=None, metavar="MODEL",
        help="classifier(s) on top of each feature set: svm, rf, lr, lr_cv, gnb, xgb "
        "(default: svm); trained_cnn adds one more candidate, a small CNN trained on the "
        "cells' crops inside every fold (images only; needs torch, featcell[train]). With "
        "--points, the counters: density (pixel regression on dots), cnn_density (a density "
        "network trained on the dots; needs torch), regression (image features and ridge "
        "regression on the counts), cnn (a CNN embedding and ridge regression), segmentation",
    )
    p.add_argument(
        "--families", nargs="+", choices=_CLASSICAL, default=None,
        metavar="FAMILY", help="classical families to measure from images (default: all four)",
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
            "grouped by image, and writes an HTML report. Takes seconds to a minute."
        ),
        epilog="example:\n  featcell demo -o demo_report\n  open demo_report/report.html",
        formatter_class=_Formatter,
    )
    p.add_argument("-o", "--output", default="featcell_demo", metavar="FOLDER", help="report folder (default: %(default)s)")
    p.add_argument(
        "--images", type=int, default=40, metavar="N",
        help="use N (10 to 40) of the 40 bundled images, for a quicker run (default: all 40)",
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
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # a misspelled option: the command's own usage, not the top level's
            command = _subparsers(parser).get(getattr(args, "command", None), parser)
            command.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # --help, --version, or argparse's own usage error (status 2)
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    console = _Console(getattr(args, "quiet", False))
    args.argv = argv
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        # featcell's own warnings only: a library's (unclosed files, deprecations,
        # joblib's notes, numpy overflow) say nothing the user can act on
        if not console.quiet and _is_featcell_warning(category, filename):
            print(f"featcell: warning: {message}", file=sys.stderr, flush=True)

    warnings.showwarning = show
    environment = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = "ignore"  # worker processes started by this command
    previous_handler = _handle_sigterm()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show
            with _cluster(getattr(args, "scheduler", None), console):
                args.run(args, console)
        return 0
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, _Terminated)
        resumable = getattr(args, "resumable", False)  # set where score_images starts
        print(f"\nfeatcell: {'terminated' if terminated else 'interrupted'}"
              + ("; finished images are kept: run the same command again to resume"
                 if resumable else "; nothing was saved"), file=sys.stderr)
        return 128 + (15 if terminated else 2)
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
        _restore_sigterm(previous_handler)
        if environment is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = environment
        if "joblib.externals.loky.reusable_executor" in sys.modules:
            from featcell.batch import stop_workers

            stop_workers()  # no idle worker process outlives the command


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster's scheduler, ``kill``), handled as Ctrl-C is."""


def _handle_sigterm():
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def terminate(signum, frame):
        raise _Terminated()

    return signal.signal(signal.SIGTERM, terminate)


def _restore_sigterm(previous):
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _is_featcell_warning(category, filename):
    package = str(Path(__file__).resolve().parent)
    return issubclass(category, UserWarning) and str(filename).startswith(package)


def _is_user_error(exc):
    import errno

    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError,
                        PermissionError, ValueError, KeyError)):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS,
                                                  errno.EACCES, errno.EFBIG):
        return True
    return type(exc).__name__ == "UntrustedTypesFoundException"


def _message(exc):
    if getattr(exc, "types", None) and type(exc).__name__ == "UntrustedTypesFoundException":
        options = " ".join(f"--trust {t}" for t in exc.types)
        return (
            f"model file {str(exc.path)!r} contains types that featcell does not trust: "
            f"{', '.join(exc.types)}. Loading them can run their code. If you trust the file's "
            f"author, run the command again with {options}"
        )
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.strerror}: {exc.filename!r}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} (nothing half-written is kept; run the command again to resume)"
    if getattr(exc, "parts", None) is not None:
        return (f"the parts folder {str(exc.parts)!r} holds results of other settings or "
                "another model; add --overwrite to replace them, or choose another -o")
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
    if getattr(args, "max_pixels", None) is not None:
        if args.max_pixels < 1:
            raise UserError(f"--max-pixels must be a positive number, got {args.max_pixels}")
        kwargs["max_pixels"] = args.max_pixels
    constants = getattr(args, "metadata_values", None) or {}
    if getattr(args, "metadata", None):
        kwargs["metadata"] = _read_image_table(args.metadata)
        for key, value in constants.items():
            kwargs["metadata"][key] = value
    elif constants:
        kwargs["metadata"] = dict(constants)
    for name in ("channel_axis", "z_project", "timepoint"):
        if getattr(args, name, None) is not None:
            kwargs[name] = getattr(args, name)
    if kwargs.get("timepoint", 0) < 0:
        raise UserError(f"--timepoint must be 0 or more, got {kwargs['timepoint']}")
    return kwargs


def _saved_read(read_kwargs):
    """The reading settings stored with a table or model (not the per-run ones)."""
    return {k: v for k, v in read_kwargs.items()
            if k not in ("metadata", "max_pixels", "save_labels")}


def _add_resume(parser):
    parser.add_argument(
        "--overwrite", action="store_true",
        help="discard the finished images of an earlier run with other settings, and (extract) "
        "a finished table at -o (by default a run resumes where the same command stopped, and "
        "extract keeps a finished table)",
    )
    parser.add_argument(
        "--keep-parts", action="store_true",
        help="keep the folder of per-chunk parts after a complete run (removed by default)",
    )


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


def _n_jobs(text):
    """--n-jobs: a non-zero integer (-1: every core)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a non-zero integer (-1: every core)")
    return value


def _is_table(path):
    """Whether an input is a feature table (CSV, TSV, Parquet) rather than images; an
    AnnData input is refused here, where every command first looks at its input."""
    if isinstance(path, (list, tuple)):
        return False
    if Path(path).suffix.lower() == ".h5ad" and Path(path).is_file():
        raise UserError(f"{str(path)!r} is an AnnData file, for scverse; featcell reads the "
                        f"Parquet table that extract wrote beside it "
                        f"({Path(path).with_suffix('.parquet').name})")
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
    seen = {}
    for path in files:  # a cell's id, its masks' file and its metadata row go by file name
        if path.name in seen:
            raise UserError(
                f"two images share the name {path.name!r} ({str(seen[path.name])!r} and "
                f"{str(path)!r}): their cells, saved masks and metadata rows could not be told "
                "apart; give every image a distinct name, or run each folder on its own"
            )
        seen[path.name] = path
    return files


def _check_output_table(path):
    suffix = Path(path).suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        raise UserError(f"-o {path!r}: the output table must end with .parquet or .csv")
    if Path(path).is_dir():  # found before the work, not when the table is written
        raise UserError(f"-o {path!r} is a folder; name the output table's file")
    _check_writable(Path(path).resolve().parent, f"-o {str(path)!r}")


def _check_writable(folder, what, keep=True):
    """Fail in a second, before any measuring or cross-validation, if ``folder`` is read-only.

    ``keep=False``: the folders this check made are removed again (a report's folder, made
    when the report is written: a run that fails leaves none behind)."""
    import tempfile

    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".featcell-", suffix=".tmp", dir=folder)
        os.close(fd)
        os.remove(probe)
        for made in created if not keep else ():
            made.rmdir()
    except OSError as exc:
        raise UserError(
            f"{what}: cannot write in {str(folder)!r} ({exc.strerror or exc}); choose "
            "another output"
        ) from None


def _say_scenes(console, paths):
    """One line about the files of several scenes, of which only the first is measured."""
    if paths:
        console.say(f"{len(paths)} files hold several scenes (series), e.g. "
                    f"{Path(paths[0]).name}; only the first scene of each is measured: save "
                    "each scene as its own file to measure them all")


def _no_rows(missing, table):
    named = f"; it names e.g. {str(table.index[0])!r}" if len(table.index) else ""
    return (f"--metadata has no row for {len(missing)} image(s), e.g. {missing[0]!r} (rows are "
            f"matched by file name, or by name without the extension){named}")


def _read_cells(files, labels, read_kwargs, console, step=None, keep_cells=True, n_jobs=None,
                check=None):
    """Read the image files one at a time, with progress: a finished :class:`_Measured`.

    Only what outlives an image is kept: its cells' metadata, their crops (without the
    whole image) unless ``keep_cells`` is false, and, with ``step`` (an unfitted feature
    transformer), their features, measured while the images are read. Memory follows the
    crops and features, not the folder. A bad image is skipped and named; the channels of
    most images win (:func:`_majority_channels`), and a folder that cannot have such a
    majority fails as soon as that is certain. ``check`` is called with the cell metadata
    of the first image that has cells.
    """
    from featcell.io import FirstSceneWarning, _metadata_key, _text, iter_cells

    _check_labels_option(labels)
    metadata = read_kwargs.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        missing = [f.name for f in files if _metadata_key(metadata.index, f) is None]
        if missing:
            raise UserError(_no_rows(missing, metadata))
    verb = "reading and measuring" if step is not None else "reading"
    bar = console.bar(len(files), f"{verb} images", "images")
    kept = {}  # channels -> _Measured: the images with those channels
    failed, scenes = [], []
    for path in files:
        try:  # a bad image is skipped and named, as extract and score do
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cells = next(iter_cells([path], labels, **read_kwargs))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
            failed.append((path, _message(exc)))
            console.say(f"skipped {path.name}: {failed[-1][1]}")
        else:
            if any(issubclass(w.category, FirstSceneWarning) for w in caught):
                scenes.append(path)
            if check is not None and len(cells):
                check(cells.metadata)
                check = None
            channels = tuple(cells.channel_names)
            if channels not in kept:
                kept[channels] = _Measured(channels, step, keep_cells, n_jobs, console)
            kept[channels].add(path.name, cells)
            groups = {k: m.names for k, m in kept.items()}
            # only the channels of most images so far are measured: the few others wait
            # (and are dropped), so that no odd image's measuring decides the run
            leading = max(groups, key=lambda k: len(groups[k]))
            kept[leading].measure_if_full()
            n_odd = sum(map(len, groups.values())) - max(map(len, groups.values()))
            if not _few_odd(n_odd, len(files)):  # the odd images only grow: fail now
                _majority_channels(groups, console, "")
        bar.update(1)
    if not kept:  # the first reason too: with -q nothing is "above"
        raise UserError(f"none of the {len(files)} images could be read, e.g. "
                        f"{failed[0][0].name}: {failed[0][1]}")
    _say_scenes(console, scenes)
    most = _majority_channels({k: m.names for k, m in kept.items()}, console,
                              "the others are skipped")
    measured = kept[most].finish()
    measured.skipped = sorted(_text(name) for name in [path.name for path, _ in failed]
                              + measured.skipped + [name for channels, other in kept.items()
                                                    if channels != most for name in other.names])
    if not measured.names:
        raise UserError(f"none of the {len(files)} images could be measured (see above)")
    bar.close(f"read {len(measured.names)} images, {len(measured.metadata)} cells"
              + (f"; skipped {len(failed)} that could not be read" if failed else ""))
    if len(measured.metadata) == 0:
        raise UserError("no cells found in the images")
    return measured


class _Measured:
    """The images with ``channels`` read so far; after :meth:`finish`, their cells'
    ``metadata`` (DataFrame), ``cells`` (CellSet of crops, or None), ``features``
    (DataFrame, or None without a feature step), the fitted feature ``step`` and the
    ``names`` of the images kept.

    Cells wait until the waiting images hold a chunk (about 256 cells; 512 per worker),
    are measured together, whole images at a time (granularity's image-wide work once per
    image, :func:`featcell.features._base.image_chunks`), and the images are let go. When
    measuring a chunk fails, its images are measured one by one and those that fail are
    skipped and named, as a bad file is.
    """

    def __init__(self, channels, step, keep_cells, n_jobs, console):
        from sklearn.base import clone

        self.channels = channels
        self.step = None if step is None else clone(step)
        self.keep_cells = keep_cells
        self.console = console
        workers = 1 if not n_jobs else (os.cpu_count() if n_jobs < 0 else n_jobs)
        self.chunk = 256 if workers == 1 else 512 * workers
        self.names, self.waiting, self.skipped, self.n_waiting = [], {}, [], 0
        self._fitted = False
        self._metadata, self._crops, self._values = [], [], []

    def add(self, name, cells):
        self.names.append(name)
        self.waiting[name] = cells
        self.n_waiting += len(cells)

    def measure_if_full(self):
        """Measure the waiting cells once they fill a chunk."""
        if self.n_waiting >= self.chunk:
            self._flush()

    def _flush(self):
        from featcell.cells import CellSet

        waiting, self.waiting, self.n_waiting = self.waiting, {}, 0
        cells = CellSet.concat(list(waiting.values()))
        if self.step is not None and len(cells) and not self._fitted:
            self.step.fit(cells)  # the names only: no image's values decide the fit
            self._fitted = True
            if not len(self.step.get_feature_names_out()):
                raise UserError(
                    f"nothing to measure on images with channels {list(cells.channel_names)} "
                    "(colocalization needs two or more channels); choose other --families"
                )
        try:
            self._keep(cells)
        except Exception as exc:  # noqa: BLE001 - find the image at fault, keep the others
            if len(waiting) == 1:
                self._skip(next(iter(waiting)), exc)
                return
            for name, one in waiting.items():
                try:
                    self._keep(one)
                except Exception as exc:  # noqa: BLE001 - one bad image must not stop the run
                    self._skip(name, exc)

    def _keep(self, cells):
        import numpy as np

        if self.step is not None and len(cells):
            self._values.append(np.asarray(self.step.transform(cells), np.float32))
        self._metadata.append(cells.metadata)
        if self.keep_cells:
            self._crops.append(cells._without_fields())

    def _skip(self, name, exc):
        self.names.remove(name)
        self.skipped.append(name)
        self.console.say(f"skipped {name}: its cells cannot be measured: {_message(exc)}")

    def finish(self):
        import numpy as np
        import pandas as pd

        from featcell.cells import CellSet

        if self.waiting:
            self._flush()
        self.metadata = pd.concat(self._metadata, ignore_index=True) if self._metadata else \
            pd.DataFrame()
        self.cells = CellSet.concat(self._crops) if self.keep_cells and self._crops else None
        self.features = None
        if self._values:
            self.features = pd.DataFrame(np.concatenate(self._values),
                                         columns=list(self.step.get_feature_names_out()))
        self._metadata = self._crops = self._values = None
        return self


def _feature_step(families, n_jobs=None, cnn_threads=None, compartment=None):
    """The (unfitted) transformer that measures the chosen families of every cell."""
    from sklearn.pipeline import FeatureUnion

    from featcell.features.cell_features import CellFeatures

    classical = [f for f in families if f in _CLASSICAL]
    steps = []
    if classical:
        steps.append(
            ("classical", CellFeatures(classical, compartment=compartment, n_jobs=n_jobs))
        )
    if "cnn" in families:
        from featcell.cnn import CNNEmbedding

        steps.append(("cnn", CNNEmbedding(n_threads=cnn_threads)))
    if not steps:
        raise UserError("--families is empty")
    if len(steps) == 1:
        return steps[0][1]
    return FeatureUnion(steps, verbose_feature_names_out=False)


def _check_column_names(first, files, args):
    """Refuse a --target or --group-by that no cell will have, from the first image's cell
    metadata ``first`` and the plate, well and site that any file name holds: a typo fails
    in seconds, before the folder is measured."""
    import pandas as pd

    from featcell.io import metadata_from_filename

    named = [f"Metadata_{key}" for f in files for key in metadata_from_filename(f.name)]
    frame = pd.DataFrame(columns=list(dict.fromkeys([*first.columns, *named])))
    _target(frame, args.target, "cells")
    _groups(frame, args.group_by, 0)


def _check_columns(metadata, args, features=()):
    values = _target(metadata, args.target, "cells", classes=True, features=features)
    groups, _ = _groups(metadata, args.group_by, len(metadata))
    _check_target_by_group(values, groups, args.target)


def _check_target_by_group(values, groups, target):
    """Refuse, before any measuring, a --target no grouped cross-validation can test: one
    number per image, most numbers in one image only (a count: --task counting), or classes
    that each lie in one group (the target is the grouping)."""
    import pandas as pd

    if isinstance(groups, str):  # "none": rows independent
        return
    known = values.notna().to_numpy()
    frame = pd.DataFrame({"y": values[known].astype(str).to_numpy(), "g": groups[known]})
    if frame.empty:
        return
    if frame["g"].nunique() < 2:
        raise UserError(f"--group-by finds a single group ({frame['g'].iloc[0]!r}) among the "
                        "labelled cells: grouped cross-validation needs several (group by "
                        "image, or by a column with several values)")
    per_group = frame.groupby("g")["y"].nunique()
    groups_per_value = frame.groupby("y")["g"].nunique()
    n_values = len(groups_per_value)
    # a count: one number per image, most numbers found in one image only (a design such
    # as doses repeats each value over several images)
    if (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
            and n_values > 2 and (per_group == 1).all() and (groups_per_value == 1).mean() > 0.5):
        raise UserError(
            f"--target {target!r} is one number per image, {n_values} different ones over "
            f"{len(per_group)} images: a count or a measurement, not classes; to count "
            "objects use --task counting"
        )
    if n_values > 1 and groups_per_value.max() < 2:
        raise UserError(
            f"--target {target!r}: every class lies in a single group of --group-by, so no "
            "fold can test a class it did not train on (is the target the grouping column?)"
        )


def _target(metadata, column, what="cells", classes=False, features=()):
    """The ``--target`` column; with ``classes``, refused when it holds many numbers (a
    count or a measurement, not classes: every value would be a class of its own). A
    target among ``features`` (the feature columns) is named as one."""
    import pandas as pd

    for name in (column, f"Metadata_{column}"):
        if name in metadata.columns:
            values = metadata[name]
            n_values = values.nunique()
            if classes and pd.api.types.is_numeric_dtype(values) and not \
                    pd.api.types.is_bool_dtype(values) and n_values > _MAX_NUMBER_CLASSES:
                raise UserError(
                    f"--target {column!r} holds {n_values} different numbers, not classes; "
                    "to count objects per image use --task counting, to classify cells give "
                    "a column of class names"
                )
            return values
    if column in set(map(str, features)):
        raise UserError(f"--target {column!r} is a feature (a measurement of every cell); "
                        "--target names what to predict: a column of class names, such as "
                        "Metadata_Class")
    available = [c.removeprefix("Metadata_") for c in metadata.columns]
    raise UserError(
        f"--target {column!r} is not a column of the {what}; available: {available}"
    )


_MAX_NUMBER_CLASSES = 20  # a numeric --target with more values is a measurement, not classes


def _groups(metadata, group_by, n):
    import numpy as np

    if group_by is None or group_by.lower() == "none":
        return "none", "none (rows treated as independent)"
    # the image: featcell's id, else a CellProfiler export's image number
    images = next((c for c in _IMAGE_ID_COLUMNS if c in metadata.columns), None)
    named = (images,) if group_by == "image" and images else ()
    for name in (*named, group_by, f"Metadata_{group_by}"):
        if name in metadata.columns:
            values = metadata[name].astype(str).to_numpy()
            if images and name != images:
                _check_whole_images(metadata[images].astype(str).to_numpy(), values, group_by)
            return values, f"{name} ({len(np.unique(values))} groups)"
    raise UserError(
        f"--group-by {group_by!r}: no such column (available: "
        f"{[c for c in metadata.columns if c.startswith('Metadata_')]}); cells of one image "
        "must stay in one fold for honest scores. Pass --group-by none only if the rows are "
        "truly independent."
    )


_IMAGE_ID_COLUMNS = ("Metadata_ImageID", "Metadata_ImageNumber", "ImageNumber")


def _check_whole_images(images, groups, group_by):
    """Refuse groups that split an image's cells (an object number, a per-cell measure):
    its cells would train and test in one fold, and the scores would not be those of new
    images."""
    import pandas as pd

    per_image = pd.DataFrame({"image": images, "group": groups}).groupby("image")["group"]
    split = per_image.nunique()
    if (split > 1).any():
        raise UserError(
            f"--group-by {group_by!r} splits the cells of one image across groups (image "
            f"{split.idxmax()!r}: {split.max()} groups), so folds would test on images they "
            "trained on; group by image, well or plate (--group-by none only if the cells "
            "are truly independent)"
        )


def _as_numbers(table, columns, console, mostly=0.0):
    """``table`` with each of ``columns`` that is text but numbers in at least a ``mostly``
    share of its filled cells read as numbers, the other cells NaN (a spreadsheet's
    ``#DIV/0!``, a stray word), said per column; the NaN are imputed like unmeasured values."""
    import pandas as pd

    table = table.copy()
    for column in columns:
        values = table[column]
        if values.dtype != object:
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        filled = values.notna() & (values.astype(str).str.strip() != "")
        bad = filled & numbers.isna()
        n_numbers = int((filled & numbers.notna()).sum())
        if not n_numbers or n_numbers < mostly * filled.sum():
            continue  # text: a metadata column (training), or an error below (scoring)
        if bad.any():
            row = int(bad.to_numpy().argmax())
            console.say(f"note: column {column!r} has {int(bad.sum())} cells that are not "
                        f"numbers (e.g. {values.iloc[row]!r} in row {row + 2}); they are "
                        "treated as missing values")
        table[column] = numbers
    return table


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
    per_column = bad.sum(axis=0)
    worst = np.argsort(-per_column, kind="stable")[:3]
    where = ", ".join(f"{X.columns[k]} ({int(per_column[k])})" for k in worst if per_column[k])
    note = (
        f"{int(bad.sum())} values in {rows} cells could not be measured, most in {where} "
        "(shape features of cells of a few pixels, correlations of identical or flat "
        "channels, ...); they are imputed with the training cells' median inside each fold."
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
    from featcell.interop import cellprofiler_names

    files = _check_images_source(args.images)
    if files is None:
        raise UserError(f"{args.images!r} is a table; extract needs images")
    output = Path(args.output)
    fmt = args.format or {".csv": "csv", ".h5ad": "h5ad"}.get(output.suffix.lower(), "parquet")
    if fmt == "h5ad":  # the Parquet table beside it is what a resumed run continues
        Path(args.output).resolve().parent.mkdir(parents=True, exist_ok=True)
        table_path = output.with_suffix(".parquet")
    else:
        _check_output_table(args.output)
        if args.format and output.suffix.lower() != f".{args.format}":
            raise UserError(f"-o {args.output!r} does not end with .{args.format} (--format)")
        table_path = output
    parts = table_path.with_name(f"{table_path.stem}_parts")
    if table_path.is_file() and not parts.exists() and not args.overwrite:
        # a finished run (its parts are gone): measuring again, or with other settings,
        # would replace it unasked
        raise UserError(f"-o {args.output!r} already holds a finished table; add --overwrite "
                        "to measure again, or choose another -o")
    compartment = _extract_compartment(args)
    read_kwargs = _read_kwargs(args)
    n_jobs = args.n_jobs
    step = _feature_step(args.families, n_jobs=None,
                         cnn_threads=1 if n_jobs not in (None, 1) else None,
                         compartment=None if isinstance(args.labels, dict) else compartment)
    _check_labels_option(args.labels)
    save_labels = _save_labels_folder(args, table_path)
    if save_labels is not None:
        read_kwargs["save_labels"] = str(save_labels)
    console.say(f"featcell extract: {len(files)} images, families {' '.join(args.families)}")
    channels = _settle_channels(files, read_kwargs, console, n_jobs)
    if isinstance(args.labels, dict):  # the label sets, and the cytoplasm derived from them
        derived = ["Cytoplasm"] if len(args.labels) > 1 and "Cytoplasm" not in args.labels else []
        compartments = [*args.labels, *derived]
    else:
        compartments = None
    probe = _probe_cells(channels, compartments, compartment)
    step.fit(probe)  # no image decides the fitted settings
    names = list(step.get_feature_names_out())
    if not names:
        raise UserError(
            f"nothing to measure with --families {' '.join(args.families)} on images with "
            f"channels {list(channels)} (colocalization needs two or more channels)"
        )
    console.say(f"{len(names)} features per cell, channels {', '.join(channels)}")
    args.resumable = True  # an interruption from here on keeps the finished images
    with warnings.catch_warnings():  # the failed images are reported below
        warnings.filterwarnings("ignore", message=_FAILED_IMAGES)
        result = score_images(
            step, [str(f) for f in files], args.labels, table_path, n_jobs=n_jobs,
            per_image=False, progress=not console.quiet, read_kwargs=read_kwargs,
            resume=not args.overwrite, keep_parts=args.keep_parts,
        )
    if not result.n_cells:
        raise UserError(_nothing_done(result, "measured", table_path))
    _rename_table(table_path, cellprofiler_names(_table_columns(table_path), compartment))
    if fmt == "h5ad":
        import pandas as pd

        from featcell.interop import to_anndata

        to_anndata(pd.read_parquet(table_path), channels=list(channels)).write_h5ad(
            args.output, compression="gzip"
        )
    settings = {
        "featcell": _version(),
        "families": list(args.families),
        "channel_names": list(channels),
        "read": _saved_read(read_kwargs),
        "labels": _labels_kind(args.labels),
        "compartment": compartment,
        "compartments": list(probe.compartment_names) if compartments else None,
        "feature_names": names,
    }
    _write_text(_settings_path(table_path), json.dumps(settings, indent=2))
    if save_labels is not None:
        console.say(f"segmented labels in {save_labels}")
    console.say(
        f"wrote {result.n_cells} cells x {len(names)} features from {result.n_images} images "
        f"to {args.output}"
        + (f" ({result.n_resumed} images resumed)" if result.n_resumed else "")
    )
    if result.n_errors:
        console.say(f"{result.n_errors} image{'s' * (result.n_errors != 1)} failed: see "
                    f"{result.errors_path}")
    print(Path(args.output))


def _nothing_done(result, done, output):
    """The error of a batch that wrote no cell: the commonest reason, said on the console
    (not only in the errors table), and no empty table or parts folder left to block the
    corrected command."""
    from featcell.batch import _Layout

    reason = None
    if result.n_errors:
        table = result.read_errors()
        message = table["message"].value_counts().index[0]  # the commonest reason
        example = table.loc[table["message"] == message, "path"].iloc[0]
        name = Path(example).name
        reason = message if name in message else f"e.g. {name}: {message}"
    layout = _Layout(output, None)  # the empty tables go, the errors table stays
    layout.cells.unlink(missing_ok=True)
    layout.images.unlink(missing_ok=True)
    layout.remove_parts()
    errors = f"{reason} (all errors: {result.errors_path})" if reason else ""
    if not result.n_images:
        return f"none of the {result.n_errors} images could be {done}: {errors}"
    found = (f"no cell was found in the {result.n_images} images read (empty label images, or "
             "nothing segmented)")
    return found + (f"; {result.n_errors} other images could not be {done}: {errors}"
                    if errors else "")


def _extract_compartment(args):
    """The compartment of one row: --compartment, the parent of --labels NAME=..., or Cells."""
    if isinstance(args.labels, dict):
        if args.compartment is not None:
            raise UserError(
                "--compartment cannot be combined with --labels NAME=FOLDER: the "
                "compartments are the names given there"
            )
        return "Cells" if "Cells" in args.labels else next(iter(args.labels))
    compartment = "Cells" if args.compartment is None else args.compartment
    if not compartment.isalnum() or not compartment[:1].isalpha():
        raise UserError(
            f"--compartment {compartment!r}: use letters and digits, e.g. Cells or Nuclei"
        )
    return compartment


def _check_labels_option(labels):
    folders = labels.values() if isinstance(labels, dict) else [labels]
    for folder in folders:
        if folder is not None and not Path(folder).is_dir():
            raise UserError(f"--labels {folder!r} is not a folder")


def _save_labels_folder(args, output):
    """Where to write segmented labels: --save-labels, else <output>_labels/ when featcell
    segments (no labels, or boxes), else nowhere."""
    if getattr(args, "no_save_labels", False):
        return None
    if getattr(args, "save_labels", None):
        return Path(args.save_labels)
    labels = args.labels
    segments = labels is None or (
        not isinstance(labels, dict) and any(Path(labels).glob("*.xml"))
    )
    return Path(output).with_name(f"{Path(output).stem}_labels") if segments else None


def _table_columns(path):
    import pyarrow.parquet as pq

    if not Path(path).is_file():  # every image failed: nothing was written
        return []
    if Path(path).suffix.lower() == ".csv":
        import csv

        with open(path, newline="") as f:
            return next(csv.reader(f), [])
    return pq.read_schema(path).names


def _rename_table(path, mapping):
    """Rename columns of a written Parquet or CSV table in place, streaming."""
    path = Path(path)
    if not mapping or not path.is_file():
        return
    tmp = path.with_name(f".{path.name}.renaming")
    if path.suffix.lower() == ".csv":
        import csv
        import shutil

        with open(path, newline="") as src, open(tmp, "w", newline="") as dst:
            header = next(csv.reader([src.readline()]))
            csv.writer(dst, lineterminator="\n").writerow([mapping.get(c, c) for c in header])
            shutil.copyfileobj(src, dst)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path)
        schema = source.schema_arrow
        renamed = pa.schema([f.with_name(mapping.get(f.name, f.name)) for f in schema],
                            metadata=schema.metadata)
        with pq.ParquetWriter(tmp, renamed) as writer:
            for batch in source.iter_batches():
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=renamed))
    os.replace(tmp, path)


_PROBE_KEYS = ("as_gray", "max_pixels", "channel_axis", "z_project", "timepoint")


def _image_channels(path, read_kwargs):
    """``(number of channels, None, scenes, grey saved as colour)`` of one image file, or
    ``(None, error message, 0, False)``.

    The file is read with the run's own reading settings (axes, projection, size limit).
    """
    import numpy as np

    from featcell.io import _read_image

    try:
        image, info = _read_image(
            path, **{k: v for k, v in read_kwargs.items() if k in _PROBE_KEYS})
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one failed image
        return None, f"{type(exc).__name__}: {exc}", 0, False
    grey_colour = image.ndim == 3 and image.shape[-1] in (3, 4) and bool(
        np.all(image[..., 1:3] == image[..., :1]))
    n = 1 if image.ndim == 2 else int(image.shape[-1])
    return n, None, info.get("n_scenes", 1), grey_colour


# images whose channels differ from the rest fail alone when they are at most this share of
# the readable ones (one file at least): no single odd file decides a run, but a folder
# split between grey and colour images is a setting to choose (--as-gray), not a few errors
_ODD_SHARE = 0.05


def _few_odd(n_odd, n_readable):
    """Whether ``n_odd`` of ``n_readable`` images may fail alone: a strict minority (with
    two images, one each way, the file order would decide) within ``_ODD_SHARE``."""
    return 2 * n_odd < n_readable and n_odd <= max(1, _ODD_SHARE * n_readable)


def _majority_channels(groups, console, others, note=""):
    """The channels of most images, from ``groups`` (channels, as a count or names: the
    names of the images with them); the images with other channels are left to fail
    alone when few (:func:`_few_odd`), which the console says with ``others`` (what
    becomes of them); more is an error naming --as-gray. ``note`` adds to the
    description of the groups."""
    most = max(groups, key=lambda k: len(groups[k]))
    if len(groups) == 1:
        return most

    def channels(key):
        return f"{key} channel(s)" if isinstance(key, int) else f"channels {list(key)}"

    described = "; ".join(f"{channels(k)}: {len(names)} images such as {names[0]!r}"
                          for k, names in sorted(groups.items())) + note
    n_readable = sum(len(names) for names in groups.values())
    if not _few_odd(n_readable - len(groups[most]), n_readable):
        raise UserError(
            f"the images do not all have the same channels ({described}); add --as-gray "
            "to read every image as one grey channel, or measure the folders separately"
        )
    # no single odd file decides the run
    console.say(f"the images do not all have the same channels ({described}); using those "
                f"with {channels(most)}, {others} (--as-gray reads every image as one grey "
                "channel)")
    return most


def _settle_channels(files, read_kwargs, console, n_jobs=None):
    """The channel names of a folder, from every image that can be read.

    The channels of most readable images; the few others (:func:`_few_odd`) fail alone,
    one by one, in the errors table. More than a few: this fails before any measuring,
    naming --as-gray. Unreadable images are reported here and recorded, one by one, in
    the errors table later.
    """
    from sklearn.utils.parallel import Parallel, delayed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = Parallel(n_jobs=n_jobs)(
            delayed(_image_channels)(str(f), read_kwargs) for f in files)
    counts = {}
    failed = []
    for path, (n, error, _, _) in zip(files, found):
        if n is None:
            failed.append((path, error))
        else:
            counts.setdefault(n, []).append(path.name)
    # the workers do not show read_image's warning: say it once here
    _say_scenes(console, [path for path, (_, _, k, _) in zip(files, found) if k > 1])
    n_grey_colour = sum(grey for *_, grey in found)
    if failed:
        console.say(f"{len(failed)} of {len(files)} images cannot be read and will be "
                    f"skipped, e.g. {failed[0][0].name}: {failed[0][1]}")
    if not counts:
        raise UserError(
            f"none of the {len(files)} images can be read, e.g. {failed[0][0].name}: "
            f"{failed[0][1]}"
        )
    grey_colour = (f"; {n_grey_colour} of the colour images are grey saved as colour (equal "
                   "R, G and B)") if n_grey_colour else ""
    n = _majority_channels(counts, console, "the others will fail and be recorded in the "
                           "errors table", grey_colour)
    if read_kwargs.get("channels"):
        if len(read_kwargs["channels"]) != n:
            raise UserError(
                f"--channels names {len(read_kwargs['channels'])} channels but the images "
                f"have {n}" + ("" if n == 1 else "; add --as-gray to read them as one grey "
                               "channel")
            )
        return tuple(read_kwargs["channels"])
    return tuple(f"Ch{i + 1}" for i in range(n))


def _probe_cells(channels, compartments=None, parent=None):
    """One blank cell with these channels: what a feature step is fitted on.

    With ``compartments`` (label-set names, e.g. from ``--labels Nuclei=... Cells=...``),
    the cell has every compartment: nested squares, the ``parent`` holding the others,
    and a derived ``Cytoplasm`` when it is named.
    """
    import numpy as np

    from featcell.cells import CellSet

    if not compartments:
        return CellSet.from_crops(np.zeros((1, len(channels), 16, 16), np.float32),
                                  channels=list(channels))
    square = np.zeros((16, 16), np.int32)
    square[2:14, 2:14] = 1
    inner = np.pad(np.ones((4, 4), np.int32), 6)
    labels = {c: square if c == parent else inner
              for c in compartments if c != "Cytoplasm" or c == parent}
    return CellSet.from_compartments(np.zeros((16, 16, len(channels)), np.float32), labels,
                                     list(channels), parent=parent,
                                     cytoplasm="Cytoplasm" in compartments)


def _write_text(path, text):
    """Write a small text file whole or not at all."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _labels_kind(labels):
    if isinstance(labels, dict):
        return f"label images per compartment ({', '.join(labels)})"
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


def _load_data(args, console, families, keep_cells=True):
    """Features and metadata from a table (+ its settings) or from images, measured as they
    are read (with the cells' crops unless ``keep_cells`` is false: for a report's gallery
    and a trained network).

    The target and grouping columns are checked on the first image, so that a typo fails
    in seconds.
    """
    if _is_table(args.input):
        data = _data_from_table(args, console)
        _check_columns(data.metadata, args, features=data.features.columns)
        return data
    files = _check_images_source(args.input)
    read_kwargs = _read_kwargs(args)
    threads = 1 if args.n_jobs not in (None, 1) else None
    step = _feature_step(families, n_jobs=args.n_jobs, cnn_threads=threads)
    measured = _read_cells(files, args.labels, read_kwargs, console, step=step,
                           keep_cells=keep_cells, n_jobs=args.n_jobs,
                           check=lambda first: _check_column_names(first, files, args))
    _check_columns(measured.metadata, args)
    settings = {
        "families": list(families),
        "channel_names": list(measured.channels),
        "read": _saved_read(read_kwargs),
        "labels": _labels_kind(args.labels),
        "skipped": measured.skipped,
    }
    return _Data(measured.features, measured.metadata, measured.cells, measured.step, settings,
                 source=str(args.input))


def _data_from_table(args, console, use_settings=True):
    import numpy as np

    from featcell.interop import featcell_names

    table = _read_table(args.input)
    table = table.rename(columns=featcell_names(table.columns))  # from CellProfiler's names
    meta_cols = [c for c in table.columns if str(c).startswith("Metadata_")]
    table = _as_numbers(table, [c for c in table.columns if c not in meta_cols], console,
                        mostly=0.9)
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
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise UserError(f"{str(path)!r} (the table's extraction settings) cannot be read: "
                            f"{exc}; remove it to use the table's columns only") from None
        if not isinstance(settings, dict):
            raise UserError(f"{str(path)!r} is not featcell extraction settings (a JSON object "
                            "expected); remove it to use the table's columns only")
        step = _step_from_settings(settings, features, console)
        if step is not None:
            features = features[list(step.get_feature_names_out())]
    console.say(
        f"read {len(table)} rows x {features.shape[1]} features from {args.input}"
        + ("" if step is not None else " (feature table only: the model will score tables)")
    )
    return _Data(features, metadata, None, step, settings, source=str(args.input))


def _check_two_classes(classes, target):
    if len(classes) == 0:
        raise UserError(f"--target {target!r} has no values")
    if len(classes) < 2:
        raise UserError(f"--target {target!r} has a single class {classes[0]!r}")


def _step_from_settings(settings, features, console):
    """Rebuild the fitted feature step that produced a table from 'featcell extract'."""
    try:
        channels = settings["channel_names"]
        compartments = settings.get("compartments")
        step = _feature_step(settings["families"],
                             compartment=None if compartments else settings.get("compartment"))
        step.fit(_probe_cells(channels, compartments, settings.get("compartment")))
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
    if out.suffix.lower() in (*_TABLE_SUFFIXES, ".png", ".tif") or out.is_dir():
        raise UserError(f"-o {args.output!r} should be a model file such as model.featcell")
    _check_writable(out.resolve().parent, f"-o {args.output!r}")
    if args.report:
        _check_writable(args.report, f"--report {args.report!r}", keep=False)
    if args.task == "counting" and args.model in ("density", "cnn_density"):
        return _train_density(args, console)
    if args.model in ("density", "cnn_density") or args.points:
        raise UserError(f"--model {args.model} and --points are for --task counting")
    if args.target is None:
        raise UserError("--target is required: the column to predict, e.g. Class or count")
    if args.task == "counting":
        return _train_counter(args, console)
    if args.model == "segmentation":
        raise UserError("--model segmentation is for --task counting")
    if args.model == "trained_cnn":
        return _train_cnn(args, console)
    if _is_table(args.input) and (args.families or args.model == "cnn"):
        raise UserError(
            f"{'--families' if args.families else '--model cnn'} says what to measure from "
            "images; a feature table is used as it is (every numeric column a feature): "
            "choose a head such as --model lr, or train from the images"
        )
    families = args.families or (["cnn"] if args.model == "cnn" else list(_CLASSICAL))
    head = "lr" if args.model == "cnn" else args.model
    if args.model == "cnn" and "cnn" not in families:
        families = [*families, "cnn"]
    console.say(f"featcell train: {args.task}, model {args.model}, target {args.target}")
    data = _load_data(args, console, families, keep_cells=bool(args.report))
    y = _target(data.metadata, args.target, "cells", classes=True)
    keep = y.notna().to_numpy()
    if not keep.all():
        console.say(f"skipping {int((~keep).sum())} cells without a {args.target} value")
    y = y[keep].astype(str).to_numpy()
    X, missing_note = _note_missing(data.features[keep].reset_index(drop=True), console)
    data.settings["missing"] = missing_note
    metadata = data.metadata[keep].reset_index(drop=True)
    classes, counts = np.unique(y, return_counts=True)
    console.say("classes: " + ", ".join(f"{c} ({n})" for c, n in zip(classes, counts)))
    _check_two_classes(classes, args.target)
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
    files = _check_images_source(args.input)
    cells = _read_cells(files, args.labels, read_kwargs, console,
                        check=lambda first: _check_column_names(first, files, args)).cells
    _check_columns(cells.metadata, args)
    y = _target(cells.metadata, args.target, "cells", classes=True)
    keep = y.notna().to_numpy()
    cells, y = cells[np.flatnonzero(keep)], y[keep].astype(str).to_numpy()
    classes, counts = np.unique(y, return_counts=True)
    console.say("classes: " + ", ".join(f"{c} ({n})" for c, n in zip(classes, counts)))
    _check_two_classes(classes, args.target)
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
                "read": _saved_read(read_kwargs),
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
    skipped = data.settings.get("skipped")
    if skipped:  # the report's image count is of the others
        description["images skipped"] = (f"{len(skipped)} (could not be read or measured, or "
                                         f"had other channels): {', '.join(skipped[:10])}"
                                         + (", ..." if len(skipped) > 10 else ""))
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

    from featcell.counting import _NonNegativeCounts
    from featcell.heads import make_head
    from featcell.io import _metadata_key

    if args.model == "gnb":
        raise UserError("--model gnb (naive Bayes) is a classifier; for counting use rf, "
                        "svm, lr, xgb, cnn or segmentation")
    console.say(f"featcell train: counting, model {args.model}, target {args.target}")
    _refuse_unused_reading(args)
    head = "lr" if args.model in ("cnn", "segmentation") else args.model
    regressor = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                          ("scale", StandardScaler()),
                          ("head", _NonNegativeCounts(make_head(
                              head, "regression", random_state=args.seed,
                              n_jobs=args.n_jobs)))])
    step = X = channels = None
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
        files, channels = _readable_images(files, console, args.max_pixels)
        missing = [f.name for f in files if _metadata_key(table.index, f) is None]
        if missing:
            raise UserError(_no_rows(missing, table))
        meta = table.loc[[_metadata_key(table.index, f) for f in files]].reset_index(drop=True)
        meta.columns = [f"Metadata_{c}" for c in meta.columns]
        meta.insert(0, "Metadata_ImageID", [f.name for f in files])
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
    if (y < 0).any():
        raise UserError(f"--target {args.target!r} has {int((y < 0).sum())} negative counts "
                        f"(e.g. {float(y[y < 0].iloc[0]):g}); a cell count is 0 or more")
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
        "features": {"read": {}, "channel_names": None if kind == "table" else channels},
        "feature_columns": list(X.columns) if kind == "table" else None,
        "trained_on": str(args.input), "command": "featcell " + shlex.join(args.argv),
        "cross_validation": _scores_metadata(result),
    })
    console.say(f"saved the model to {args.output}")
    print(args.output)


def _readable_images(files, console, max_pixels=None):
    """The image files that can be decoded (the others are named and skipped), and their
    channel names when they all have as many (what score checks new images against),
    else None."""
    readable, counts = [], set()
    for path in files:
        n, error, *_ = _image_channels(str(path), {"max_pixels": max_pixels})
        if n is None:
            console.say(f"skipped {path.name}: {error}")
        else:
            readable.append(path)
            counts.add(n)
    if not readable:
        raise UserError(f"none of the {len(files)} images could be read (see above)")
    return readable, [f"Ch{i + 1}" for i in range(counts.pop())] if len(counts) == 1 else None


def _refuse_unused_reading(args):
    """Counters read whole images as they are: options about cells or channels would be
    accepted and ignored."""
    for option, value in (("--labels", args.labels), ("--families", args.families),
                          ("--channels", args.channels), ("--as-gray", args.as_gray),
                          ("--channel-axis", args.channel_axis is not None),
                          ("--z-project", args.z_project), ("--timepoint",
                                                            args.timepoint is not None)):
        if value:
            raise UserError(f"{option} is not used by --task counting (the counters read "
                            "whole images as they are); leave it out")


def _dotted_images(args, console):
    """What the density counters learn from: the readable images of ``args.input``
    (paths), their dot annotations (``--points``), ``--sigma`` (pixels, or "auto") and the
    images' metadata (``Metadata_ImageID`` and the ``--metadata`` table's columns)."""
    import pandas as pd

    from featcell.points import read_points

    sigma = args.sigma
    if sigma != "auto":
        try:
            sigma = float(sigma)
        except ValueError:
            raise UserError(f"--sigma {args.sigma!r}: expected a number of pixels or auto") from None
    files, channels = _readable_images(_check_images_source(args.input), console,
                                       args.max_pixels)
    paths = [str(f) for f in files]
    errors = (ValueError, FileNotFoundError, TypeError)
    try:
        points = read_points(args.points, images=paths)
    except errors as exc:
        if not Path(args.points).is_dir():  # one table: its error is the whole run's
            raise UserError(str(exc)) from None
        # a folder: an image whose dots file is missing or unreadable is left out alone
        found = []
        for f in files:
            try:
                found.append((f, read_points(args.points, images=[str(f)])[0], None))
            except errors as one:
                found.append((f, None, one))
        skipped = [(f, error) for f, _, error in found if error is not None]
        if len(skipped) == len(files):
            raise UserError(str(exc)) from None
        console.say(f"{len(skipped)} of {len(files)} images have no readable dots and are "
                    f"left out, e.g. {skipped[0][0].name}: {skipped[0][1]}")
        files = [f for f, _, error in found if error is None]
        points = [p for _, p, error in found if error is None]
        paths = [str(f) for f in files]
    meta = pd.DataFrame({"Metadata_ImageID": [f.name for f in files]})
    if args.metadata:
        extra = _read_image_table(args.metadata).reindex(meta["Metadata_ImageID"])
        for column in extra.columns:
            meta[f"Metadata_{column}"] = extra[column].to_numpy()
    return paths, points, sigma, meta, channels


def _train_density(args, console):
    import numpy as np

    from featcell.counting import make_counter

    if not args.points:
        raise UserError(f"--model {args.model} learns from dot annotations: pass --points "
                        "DIR_OR_CSV")
    if _is_table(args.input):
        raise UserError(f"--model {args.model} needs images, not a feature table")
    _refuse_unused_reading(args)
    paths, points, sigma, meta, channels = _dotted_images(args, console)
    what = ("density network" if args.model == "cnn_density"
            else f"density model ({args.pixel_features})")
    console.say(f"featcell train: counting, {what}, {len(paths)} images, points from "
                f"{args.points}")
    counts = np.array([len(p) for p in points], dtype=float)
    console.say(f"{int(counts.sum())} dots, {int(counts.min())}-{int(counts.max())} per image")
    if args.model == "cnn_density":
        counter = make_counter("cnn_density", sigma=sigma, random_state=args.seed,
                               verbose=not console.quiet)
    else:
        counter = make_counter("density", sigma=sigma, features=args.pixel_features,
                               head=args.pixel_head, random_state=args.seed, n_jobs=args.n_jobs)
    groups, groups_text = _groups(meta, args.group_by, len(paths))
    console.say(f"cross-validating ({args.cv} folds, grouped by {groups_text})")
    from featcell.evaluation import evaluate

    try:
        result = evaluate(counter, paths, points, groups, cv=args.cv, task="regression",
                          random_state=args.seed, n_jobs=args.n_jobs)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _describe_groups(result, groups_text)
    print(result.describe())
    _print_scores(result)
    if args.report:
        from sklearn.base import clone

        from featcell.report import write_report

        # density maps of the first fold's test images, by a counter fitted without them
        train, test = result.splits[0]
        shown = clone(counter).fit([paths[i] for i in train], [points[i] for i in train])
        out = write_report(
            result, args.report, title=f"featcell: counting model ({args.model})",
            dataset={"input": args.input, "points": args.points},
            density={"counter": shown, "images": [paths[i] for i in test[:4]],
                     "points": [points[i] for i in test[:4]],
                     "note": "The maps are out-of-fold: the counter shown was fitted on the "
                             "first fold's training images only."},
        )
        console.say(f"wrote the report {out['html']}")
    console.say("fitting on all images")
    counter.fit(paths, points)
    zooms = getattr(counter, "zoom_cv_mae_", None)  # (the classical density counter's)
    console.say(f"sigma {counter.sigma_:g} px"
                + (" (count error by sigma: " + ", ".join(
                    f"{s:g} px {e:.2f}" for s, e in counter.cv_mae_.items()) + ")"
                   if getattr(counter, "cv_mae_", None) else "")
                + (f", {counter.depth_} poolings" if hasattr(counter, "depth_") else "")
                + (f", images resized by {counter.zoom_:g}"
                   if getattr(counter, "zoom_", 1.0) != 1.0 else "")
                + (" (count error by zoom: " + ", ".join(
                    f"{z:g} {e:.2f}" for z, e in zooms.items()) + ")" if zooms else ""))
    from featcell.persist import save_model

    save_model(counter, args.output, metadata={
        "kind": "images", "task": "counting", "target": args.target or "count",
        "model": args.model, "n_samples": len(paths),
        "features": {"read": {}, "channel_names": channels},
        "feature_columns": None, "trained_on": str(args.input), "points": str(args.points),
        "command": "featcell " + shlex.join(args.argv),
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

    if not Path(args.model).is_file():
        raise UserError(f"no such model file: {args.model!r}")
    _check_output_table(args.output)
    from featcell.persist import load_model, read_manifest

    manifest = read_manifest(args.model)
    info = manifest["metadata"]
    kind = info.get("kind", "cells")
    columns = info.get("feature_columns")
    if kind not in ("cells", "table", "images") or not (
        columns is None or (isinstance(columns, list) and all(isinstance(c, str) for c in columns))
    ):
        raise UserError(f"{args.model!r}: its metadata's kind {kind!r} or feature_columns are "
                        "not what featcell writes; the model file was modified")
    saved_read, channel_names = _model_settings(info, args.model)
    model = load_model(args.model, trusted=list(args.trust) or None)
    if "kind" not in info and _counts_images(model):  # saved from Python, without the kind
        kind = "images"
    console.say(
        f"featcell score: {info.get('task', 'model')} model ({manifest.get('estimator')}), "
        f"trained {manifest.get('created', '?')}"
    )
    if _is_table(args.input):
        from featcell.interop import featcell_names

        table = _read_table(args.input)
        table = table.rename(columns=featcell_names(table.columns))  # from CellProfiler's
        if kind == "images" and info.get("feature_columns") is None:
            raise UserError("this counting model scores images, not tables")
        if kind == "cells":
            columns = list(model[0].get_feature_names_out())
            predictor = model[1:]
        else:
            columns = info.get("feature_columns") or []
            predictor = model
        missing = [c for c in columns if c not in table.columns]
        prefixes = {str(c).split("_", 1)[0] for c in table.columns if "_" in str(c)}
        # a model trained on images names its features without extract's compartment
        found = [p for p in sorted(prefixes) if all(f"{p}_{c}" in table.columns for c in missing)]
        if missing and len(found) == 1:
            table = table.rename(columns={f"{found[0]}_{c}": c for c in missing})
            missing = []
        if missing:
            raise UserError(
                f"{args.input} lacks {len(missing)} feature columns the model needs, e.g. "
                f"{missing[0]!r}; extract it with the same families and channels"
            )
        table = _as_numbers(table, columns, console)
        text = [c for c in columns if table[c].dtype == object]
        if text:
            raise UserError(f"{args.input}: feature column {text[0]!r} holds text, not numbers")
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
    read = saved_read
    read.update(_read_kwargs(args))
    if kind == "images":
        _check_model_channels(channel_names, files, read)
        _score_counts(model, files, args, console, read.get("max_pixels"))
        return
    from featcell.batch import score_images

    _check_labels_option(args.labels)
    _check_model_channels(channel_names, files, read)
    save_labels = _save_labels_folder(args, args.output)
    if save_labels is not None:
        read["save_labels"] = str(save_labels)
    args.resumable = True  # an interruption from here on keeps the finished images
    with warnings.catch_warnings():  # the failed images are reported below
        warnings.filterwarnings("ignore", message=_FAILED_IMAGES)
        result = score_images(
            model, [str(f) for f in files], args.labels, args.output, n_jobs=args.n_jobs,
            progress=not console.quiet, read_kwargs=read, resume=not args.overwrite,
            keep_parts=args.keep_parts,
        )
    if not result.n_cells:
        raise UserError(_nothing_done(result, "scored", args.output))
    console.say(
        f"scored {result.n_cells} cells in {result.n_images} images"
        + (f" ({result.n_resumed} resumed)" if result.n_resumed else "")
        + (f"; {result.n_errors} image{'s' * (result.n_errors != 1)} failed, see "
           f"{result.errors_path}" if result.n_errors
           else "")
    )
    if result.images_path is not None and result.n_images:
        images = result.read_images()
        shown = [c for c in images.columns if c == "Metadata_ImageID" or c.startswith("Count_")]
        print(images[shown].to_string(index=False, max_rows=20))
        console.say(f"per-image summary: {result.images_path}")
    print(result.cells_path)


# the reading settings a model file may hold (those _saved_read keeps), each with its check
_SAVED_READ_CHECKS = {
    "channels": lambda v: isinstance(v, list) and 0 < len(v) <= 256
    and all(isinstance(c, str) for c in v),
    "as_gray": lambda v: isinstance(v, bool),
    "margin": lambda v: type(v) is int and 0 <= v <= 100_000,
    "channel_axis": lambda v: type(v) is int and -16 <= v < 16,
    "z_project": lambda v: v in ("max", "mean"),
    "timepoint": lambda v: type(v) is int and v >= 0,
}


def _counts_images(model):
    """Whether ``model`` is one of featcell's counters, which take whole images (those of
    ``make_counter``: the density and segmentation counters, or a pipeline of image
    features ending in a count that is never negative)."""
    from sklearn.pipeline import Pipeline

    from featcell.cnn.density import CNNDensityCounter
    from featcell.counting import DensityCounter, SegmentationCounter, _NonNegativeCounts

    return isinstance(model, (DensityCounter, SegmentationCounter, CNNDensityCounter)) or (
        isinstance(model, Pipeline) and isinstance(model[-1], _NonNegativeCounts))


def _model_settings(info, model):
    """``(reading settings, channel names)`` that a model file's metadata holds, checked
    before use: only the settings :func:`_saved_read` writes, each of its type; never the
    size limit, a labels folder or segmentation parameters, which are the run's own (a
    file from others must not lift the limit on image size: an older file's are dropped,
    any other is refused)."""
    features = info.get("features", {})
    read = features.get("read", {}) if isinstance(features, dict) else None
    names = features.get("channel_names") if isinstance(features, dict) else None
    if isinstance(read, dict):  # the run's own, never the file's (older files kept them)
        read = {k: v for k, v in read.items() if k not in ("max_pixels", "save_labels")}
    if not isinstance(features, dict):
        bad = f"feature settings {features!r}"
    elif not isinstance(read, dict):
        bad = f"reading settings {read!r}"
    elif not (names is None or _SAVED_READ_CHECKS["channels"](names)):
        bad = f"channel names {names!r}"
    else:
        bad = next((f"reading setting {key}={value!r}" for key, value in read.items()
                    if not _SAVED_READ_CHECKS.get(key, lambda v: False)(value)), None)
    if bad is not None:
        raise UserError(f"{model!r}: its {bad[:200]} is not what featcell writes; the model "
                        "file was modified")
    return dict(read), names


def _check_model_channels(wanted, files, read, n_probe=5):
    """Refuse, before any work, images none of which has the ``wanted`` channels (the
    model's, from its settings): ``n_probe`` files spread over the list are looked at (one
    odd file does not decide)."""
    if not wanted:
        return
    if read.get("channels") and len(read["channels"]) != len(wanted):
        raise UserError(f"--channels names {len(read['channels'])} channel(s) but the "
                        f"model measures {len(wanted)}: {list(wanted)}")
    found = []
    spread = sorted({round(k * (len(files) - 1) / max(n_probe - 1, 1)) for k in range(n_probe)})
    for path in [files[k] for k in spread]:  # spread over the folder, not its first files
        n, *_ = _image_channels(str(path), read)
        if n is not None:
            found.append((path, n))
        if n == len(wanted):
            break
    if found and all(n != len(wanted) for _, n in found):
        path, n = found[0]
        raise UserError(
            f"the model measures {len(wanted)} channel(s) {list(wanted)}, but the images have "
            f"{n} (e.g. {path.name})" + ("; --as-gray reads colour images as one grey channel"
                                         if len(wanted) == 1 else "")
        )


def _score_counts(model, files, args, console, max_pixels=None):
    """Count the cells of every image with a counting model; a bad image is one error row."""
    import numpy as np
    import pandas as pd

    from featcell.io import _check_image_size, _text

    density_dir = None
    if getattr(args, "save_density", None):
        if not hasattr(model, "predict_density"):
            raise UserError("--save-density needs a density counting model "
                            "(featcell train --task counting --model density)")
        density_dir = Path(args.save_density)
        _check_writable(density_dir, f"--save-density {args.save_density!r}")

    def count(paths):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if density_dir is None:
                return np.asarray(model.predict([str(p) for p in paths]), float)
            import tifffile

            maps = model.predict_density([str(p) for p in paths])
            for path, density in zip(paths, maps):  # a map sums to the count less intercept_
                tifffile.imwrite(density_dir / f"{Path(path).stem}_density.tif",
                                 np.asarray(density, np.float32))
            return np.array([getattr(model, "intercept_", 0.0) + float(d.sum()) for d in maps])

    progress = _CountProgress(args, density_dir)
    done = progress.finished(files)  # {path: count} of an interrupted run of this command
    args.resumable = True  # an interruption from here on keeps the finished images
    todo = [path for path in files if str(path) not in done]
    bar = console.bar(len(todo), "counting", "images")
    rows, errors = [], []
    def failed(path, exc):
        errors.append([_text(str(path)), type(exc).__name__, _text(f"{path.name}: {exc}")])

    for start in range(0, len(todo), 8):
        batch = []
        for path in todo[start:start + 8]:
            try:  # folders and image bombs never reach the model
                if path.is_dir():
                    raise ValueError("a folder, not an image file")
                _check_image_size(path, max_pixels)
                batch.append(path)
            except Exception as exc:  # noqa: BLE001
                failed(path, exc)
        try:  # eight at a time (the model's n_jobs applies), one by one if one fails
            counts = list(count(batch)) if batch else []
        except Exception:  # noqa: BLE001
            counts = []
            for path in batch:
                try:
                    counts.append(float(count([path])[0]))
                except Exception as exc:  # noqa: BLE001 - one bad image must not stop the run
                    counts.append(None)
                    failed(path, exc)
        new = [[p.name, str(p), float(c)] for p, c in zip(batch, counts) if c is not None]
        progress.record(new)
        rows += new
        bar.update(len(todo[start:start + 8]))
    bar.close(f"counted cells in {len(rows)} images" + (f", {len(errors)} failed" if errors
                                                         else "")
              + (f" ({len(done)} resumed)" if done else ""))
    found = {row[1]: row for row in rows}
    found.update({path: [Path(path).name, path, count] for path, count in done.items()})
    rows = [[_text(name), _text(path), count]  # (names that are not UTF-8, as text)
            for name, path, count in (found[str(f)] for f in files if str(f) in found)]
    output = Path(args.output)
    errors_path = output.with_name(f"{output.stem}_errors{output.suffix}")
    # written every run, empty when none failed, as score_images does: never a stale one
    _write_table(pd.DataFrame(errors, columns=["path", "error_type", "message"], dtype=object),
                 errors_path)
    if errors:
        console.say(f"{len(errors)} images could not be counted, e.g. {errors[0][2]}; see "
                    f"{errors_path}")
    if not rows:
        raise UserError(f"none of the {len(files)} images could be counted; see {errors_path}")
    out = pd.DataFrame(rows, columns=["Metadata_ImageID", "Metadata_Path", "Prediction"])
    _write_table(out, output)
    progress.path.unlink(missing_ok=True)
    print(out[["Metadata_ImageID", "Prediction"]].to_string(index=False, max_rows=20))
    print(args.output)


class _CountProgress:
    """The images a counting run has counted, kept beside -o until its table is written
    (``<stem>_progress.jsonl``: the run's fingerprint, then a line per image), so that an
    interrupted run resumes where it stopped; failed images are tried again."""

    def __init__(self, args, density_dir):
        from featcell.batch import _fingerprint
        from featcell.io import file_sha256

        output = Path(args.output)
        self.path = output.with_name(f"{output.stem}_progress.jsonl")
        self.fingerprint = _fingerprint({"model": file_sha256(args.model),
                                         "density": None if density_dir is None
                                         else str(density_dir.resolve())})
        self.overwrite = args.overwrite

    def finished(self, files):
        """``{path: count}`` of the images an earlier run of this command counted, whose
        file has not changed since; starts this run's progress file."""
        from featcell.batch import _file_key

        keys = {str(path): _file_key(path, "stat") for path in files}
        counted = {}
        if self.path.is_file() and not self.overwrite:
            records = []
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    records.append(json.loads(line))
                except ValueError:  # a line cut by the interruption
                    continue
            if len(records) > 1 and (not isinstance(records[0], dict) or records[0].get(
                    "fingerprint") != self.fingerprint):  # (none counted yet: nothing to keep)
                raise UserError(
                    f"{str(self.path)!r} holds the images an earlier run counted with another "
                    "model or --save-density; add --overwrite to count them all again, or "
                    "choose another -o")
            for record in records[1:]:
                if isinstance(record, dict) and record.get("path") in keys and record.get(
                        "key") == keys[record["path"]] and isinstance(
                        record.get("count"), (int, float)):
                    counted[record["path"]] = float(record["count"])
        # this run's file: the fingerprint and the images kept (no stale or cut line)
        _write_text(self.path, "".join(json.dumps(line) + "\n" for line in [
            {"fingerprint": self.fingerprint},
            *({"path": p, "count": c, "key": keys[p]} for p, c in counted.items())]))
        return counted

    def record(self, rows):
        """Add the images just counted (rows of ``[name, path, count]``)."""
        from featcell.batch import _file_key

        with open(self.path, "a", encoding="utf-8") as out:
            for _, path, count in rows:
                out.write(json.dumps({"path": path, "count": count,
                                      "key": _file_key(path, "stat")}) + "\n")


def _write_table(frame, path):
    """Write a table whole or not at all (a temporary file renamed when complete)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _print_prediction_summary(frame):
    counts = frame["Prediction"].value_counts()
    for value, n in counts.head(20).items():
        print(f"  {value}: {n}")


# --------------------------------------------------------------------------- compare


class _FeatureRows:
    """The rows of a feature table measured once for all cells, looked up by cell id:
    lets table candidates share ``compare``'s folds with a model that reads the cells'
    pixels (the features learn nothing from other cells, so measuring them once is exact)."""

    def __init__(self, table):
        self.table = table

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return self.table.loc[X.index]

    def fit_transform(self, X, y=None):
        return self.transform(X)

    def get_params(self, deep=True):
        return {"table": self.table}

    def set_params(self, **params):
        self.table = params.get("table", self.table)
        return self


def _trained_cnn_candidate(args, data, keep, X):
    """(CNNClassifier pipeline, cells, feature-row lookup) for --model trained_cnn, else None."""
    import numpy as np

    if "trained_cnn" not in args.model:
        return None
    from featcell.tasks import make_cell_classifier

    cells = data.cells[np.flatnonzero(keep)]
    ids = cells.index  # unique: image file names are (_check_images_source)
    model = make_cell_classifier("trained_cnn", random_state=args.seed,
                                 cnn_params={"verbose": not getattr(args, "quiet", False)})
    return model, cells, _FeatureRows(X.set_index(ids))


def _candidate_columns(features, names):
    classical = [c for c in features.columns if not str(c).startswith("CNN_")]
    cnn = [c for c in features.columns if str(c).startswith("CNN_")]
    # "both" only where there are both: classical alone under its name would say nothing
    sets = {"classical": classical, "cnn": cnn,
            "both": classical + cnn if classical and cnn else []}
    return {name: sets[name] for name in names if sets[name]}


def _cmd_compare(args, console):
    if Path(args.output).suffix.lower() in (*_TABLE_SUFFIXES, ".html", ".md"):
        raise UserError(f"-o {args.output!r} should be a folder for the report")
    _check_writable(args.output, f"-o {args.output!r}", keep=False)
    if args.points:
        return _compare_counters(args, console)
    args.model = args.model or ["svm"]
    counters = [m for m in args.model if m in _COMPARE_COUNTERS]
    if counters:
        raise UserError(f"--model {counters[0]} is a counter: give the dot annotations with "
                        "--points to compare counters")
    if not args.target:
        raise UserError("--target COLUMN is required: the class to predict (or --points to "
                        "compare counters)")
    if args.families and _is_table(args.input):
        raise UserError("--families says what to measure from images; a feature table is "
                        "used as it is (every numeric column a feature)")
    families = list(args.families or _CLASSICAL)
    if any(c in ("cnn", "both") for c in args.candidates):
        families.append("cnn")
    if not any(c in ("classical", "both") for c in args.candidates):
        families = ["cnn"]
    console.say(
        f"featcell compare: {' vs '.join(args.candidates)} with {' / '.join(args.model)}, "
        f"target {args.target}"
    )
    if "trained_cnn" in args.model and _is_table(args.input):
        raise UserError("--model trained_cnn learns from the cells' pixels: give images, "
                        "not a feature table")
    data = _load_data(args, console, families)
    _compare_and_report(args, console, data, args.title, families)


def _compare_and_report(args, console, data, title, families, dataset=None, notes=None):
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from featcell.evaluation import compare
    from featcell.importance import family_importance
    from featcell.report import write_report

    y = _target(data.metadata, args.target, "cells", classes=True)
    keep = y.notna().to_numpy()
    if not keep.all():
        console.say(f"skipping {int((~keep).sum())} cells without a {args.target} value")
    y = y[keep].astype(str).to_numpy()
    X, missing_note = _note_missing(data.features[keep].reset_index(drop=True), console)
    data.settings["missing"] = missing_note
    metadata = data.metadata[keep].reset_index(drop=True)
    classes, counts = np.unique(y, return_counts=True)
    _check_two_classes(classes, args.target)
    console.say("classes: " + ", ".join(f"{c} ({n})" for c, n in zip(classes, counts)))
    groups, groups_text = _groups(metadata, args.group_by, len(y))
    sets = _candidate_columns(X, args.candidates)
    if not sets:
        raise UserError(f"no features for candidates {args.candidates}")
    left_out = [c for c in args.candidates if c not in sets]
    if left_out:
        console.say(f"candidates {', '.join(left_out)} left out: the features have no "
                    f"{'CNN' if 'classical' in sets else 'classical'} columns")
    run = [*sets, *(["trained_cnn"] if "trained_cnn" in args.model else [])]
    title = title or f"featcell: {' vs '.join(run)} for {args.target}"
    heads = [m for m in args.model if m != "trained_cnn"]
    trained = _trained_cnn_candidate(args, data, keep, X)  # None unless --model trained_cnn
    candidates = {}
    for set_name, columns in sets.items():
        for head in heads:
            name = set_name if len(heads) == 1 else f"{set_name} + {head}"
            select = ColumnTransformer([("select", "passthrough", columns)], remainder="drop",
                                       verbose_feature_names_out=False)
            steps = [("select", select), *_classifier_rest(head, None, args.seed).steps]
            if trained is not None:  # X is the cells: look their feature rows up first
                steps.insert(0, ("rows", trained[2]))
            candidates[name] = (Pipeline(steps), columns, head)
    console.say(
        f"cross-validating {len(candidates)} candidates on the same {args.cv} folds, grouped "
        f"by {groups_text}"
    )
    estimators = {k: v[0] for k, v in candidates.items()}
    if trained is not None:
        estimators["trained_cnn"] = trained[0]
    result = compare(estimators, X if trained is None else trained[1], y, groups, cv=args.cv,
                     random_state=args.seed, n_jobs=args.n_jobs)
    _describe_groups(result, groups_text)
    result.protocol["candidates"] = {
        name: f"{len(columns)} {name.split(' + ')[0]} feature columns, then\n"
        + repr(_classifier_rest(head, None, args.seed))
        for name, (_, columns, head) in candidates.items()
    }
    if trained is not None:
        result.protocol["candidates"]["trained_cnn"] = (
            "a CNN trained on the cells' crops in every fold, then\n" + repr(trained[0])
        )
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


class _CountsOfPoints:
    """A counter that learns from counts, fitted on dot annotations by counting the dots:
    lets ``compare`` put it on the same folds as the counters that learn from the dots."""

    def __init__(self, counter):
        self.counter = counter

    def fit(self, images, points):
        from sklearn.base import clone

        self.counter_ = clone(self.counter).fit(images, [float(len(p)) for p in points])
        return self

    def get_params(self, deep=True):
        return {"counter": self.counter}

    def set_params(self, **params):
        self.counter = params.get("counter", self.counter)
        return self

    def __repr__(self):
        return f"{self.counter!r} fitted on the dot counts"

    def predict(self, images):
        return self.counter_.predict(images)


def _compare_counters(args, console):
    """featcell compare --points: counters on the same grouped folds, with a report."""
    import numpy as np

    from sklearn.base import clone

    from featcell.counting import make_counter
    from featcell.evaluation import compare
    from featcell.report import write_report

    if _is_table(args.input):
        raise UserError("--points: the counters learn from the images; give a folder of "
                        "images, not a feature table")
    models = list(dict.fromkeys(args.model or ["density", "regression"]))
    heads = [m for m in models if m not in _COMPARE_COUNTERS]
    if heads:
        raise UserError(f"--model {heads[0]} is a classifier; with --points choose counters "
                        f"among {', '.join(_COMPARE_COUNTERS)}")
    _refuse_unused_reading(args)
    paths, points, sigma, meta, _ = _dotted_images(args, console)
    counts = np.array([len(p) for p in points], dtype=float)
    console.say(f"featcell compare: counters {' vs '.join(models)} on {len(paths)} images, "
                f"{int(counts.sum())} dots ({int(counts.min())}-{int(counts.max())} per image)")
    from_dots = {"density": {"sigma": sigma, "n_jobs": args.n_jobs},
                 "cnn_density": {"sigma": sigma, "verbose": not console.quiet}}
    estimators = {}
    for name in models:
        if name in from_dots:
            estimators[name] = make_counter(name, random_state=args.seed, **from_dots[name])
        else:
            estimators[name] = _CountsOfPoints(make_counter(name, random_state=args.seed))
    groups, groups_text = _groups(meta, args.group_by, len(paths))
    console.say(f"cross-validating {len(estimators)} counters on the same {args.cv} folds, "
                f"grouped by {groups_text}")
    try:
        result = compare(estimators, paths, points, groups, cv=args.cv, task="regression",
                         random_state=args.seed, n_jobs=args.n_jobs)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _describe_groups(result, groups_text)
    result.protocol["candidates"] = {name: repr(est) for name, est in estimators.items()}
    print(result.describe())
    _print_scores(result)
    density = None
    shown = next((name for name in models if name in from_dots), None)
    if shown is not None:  # the first fold's test images, by a counter fitted without them
        train, test = next(iter(result.results.values())).splits[0]
        counter = clone(estimators[shown]).fit([paths[i] for i in train],
                                               [points[i] for i in train])
        density = {"counter": counter, "images": [paths[i] for i in test[:4]],
                   "points": [points[i] for i in test[:4]],
                   "note": f"The maps are out-of-fold: the {shown} counter shown was fitted "
                           "on the first fold's training images only."}
    out = write_report(
        result, args.output, title=args.title or f"featcell: counters {' vs '.join(models)}",
        dataset={"input": args.input, "points": args.points}, density=density,
        random_state=args.seed,
    )
    console.say(f"wrote the report {out['html']}")
    print(out["html"])
    return result


# --------------------------------------------------------------------------- demo


def _cmd_demo(args, console):
    root = _DATA / "live_dead"
    if not (root / "images").is_dir():
        raise UserError(f"the bundled demo data are missing from {root}; reinstall featcell")
    _check_writable(args.output, f"-o {args.output!r}", keep=False)
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
