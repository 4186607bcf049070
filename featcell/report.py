"""Reports of cross-validated results that can go into a lab notebook or a paper.

:func:`write_report` turns an :class:`~featcell.evaluation.EvaluationResult` or a
:class:`~featcell.evaluation.ComparisonResult` into a self-contained HTML page (figures
embedded, nothing to fetch from a server) and a Markdown file with the same content, next
to a ``figures/`` folder of PNG files. The report states the data, the preprocessing, the
cross-validation protocol (how folds were grouped, so that a reader can judge the scores),
the metrics with their confidence intervals and the figures: confusion matrices, ROC
curves, predicted against true counts, feature-family importance, a 2-D map of the cells
and example cells of each class. Figures are drawn with matplotlib's Agg canvas: no display
and no server are needed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import platform
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ._plots import _figure, _save, class_colours, figure_slugs
from .evaluation import _cv_words

__all__ = ["write_report"]

_FORMATS = ("html", "md")
_LOWER_IS_BETTER = {"mae", "rmse", "mape", "game0", "game1", "game2", "game3"}
_DPI = 150
_TSNE_MAX = 1000  # t-SNE maps at most this many cells (a random subsample beyond)


def write_report(
    result,
    folder,
    *,
    title,
    dataset=None,
    preprocessing=None,
    cells=None,
    labels=None,
    features=None,
    importance=None,
    notes=None,
    embedding="pca",
    n_examples=8,
    max_points=2000,
    formats=("html", "md"),
    random_state=0,
    density=None,
):
    """Write an HTML and a Markdown report of a cross-validated evaluation or comparison.

    Parameters
    ----------
    result : EvaluationResult or ComparisonResult
        From :func:`featcell.evaluation.evaluate` or :func:`featcell.evaluation.compare`.
    folder : str or path-like
        Output folder, created if missing. It receives ``report.html``, ``report.md``
        and ``figures/*.png``.
    title : str
        Title of the report.
    dataset : str, dict or None, default=None
        What the data are: a paragraph, or ``{field: value}`` rows (source, licence,
        microscope, ...). The number of cells, images (groups) and cells per class are
        added from `result` (and channels from `cells`) in any case.
    preprocessing : str, list of str, dict or None, default=None
        How images became cells and features (segmentation, channels, feature
        families, ...): a paragraph, a list of steps or ``{step: description}``.
    cells : CellSet, default=None
        The cells that were evaluated, in the order of X. Gives the channels and a
        gallery of example cells per class (classification).
    labels : (n_samples,) array-like, default=None
        Class of every cell for the gallery and the map; default: the true labels
        held in `result` (every sample a fold tested).
    features : (n_samples, n_features) array-like or DataFrame, default=None
        A feature table of the same samples (e.g. from :class:`~featcell.CellFeatures`
        or ``featcell extract``) for a 2-D map of the cells coloured by class;
        ``Metadata_*`` and non-numeric columns are ignored.
    importance : DataFrame or dict of str to DataFrame, default=None
        Output of :func:`featcell.importance.family_importance` (one per candidate for a
        dict), shown as a table and a bar chart.
    notes : str, default=None
        A closing paragraph (caveats, what to try next).
    embedding : {"pca", "tsne"}, default="pca"
        The 2-D map: principal components of the standardised features, or t-SNE
        (scikit-learn) computed on at most ``min(max_points, 1000)`` cells.
    n_examples : int, default=8
        Example cells per class in the gallery.
    max_points : int, default=2000
        Largest number of cells drawn in the map (a random subsample beyond).
    formats : tuple of {"html", "md"}, default=("html", "md")
        Which reports to write.
    random_state : int, default=0
        Seeds the subsamples and t-SNE.
    density : dict, default=None
        For density counting: ``{"counter": fitted DensityCounter, "images": [...],
        "points": [...]}`` and optionally ``"note"`` (how the counter relates to the
        images, e.g. "out-of-fold") and ``"n_images"`` (default 4). Shows the first
        images with their predicted density map and the true dots overlaid.

    Returns
    -------
    dict
        ``{"html": Path, "md": Path, "figures": [Path, ...]}`` for what was written.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from featcell.evaluation import evaluate
    >>> from featcell.report import write_report
    >>> rng = np.random.default_rng(0)
    >>> image = np.repeat(np.arange(12), 10)
    >>> y = np.where(image % 2 == 0, "live", "dead")
    >>> X = rng.normal(size=(120, 3)) + (y == "live")[:, None]
    >>> res = evaluate(LogisticRegression(), X, y, groups=image, cv=3, n_boot=200)
    >>> out = write_report(res, tempfile.mkdtemp(), title="Viability", features=X)
    >>> sorted(k for k in out if k != "figures")
    ['html', 'md']
    """
    formats = _check_formats(formats)
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"title must be a non-empty string, got {title!r}")
    if embedding not in ("pca", "tsne"):
        raise ValueError(f"embedding must be 'pca' or 'tsne', got {embedding!r}")
    view = _View.of(result)
    folder = Path(folder)
    figdir = folder / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    n = _n_samples_of(view, cells, features)
    per_sample = view.per_sample(n)
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != n:
            raise ValueError(f"labels has {len(labels)} values but there are {n} samples")
        per_sample["label"] = labels
    rng = np.random.default_rng(random_state)

    sections = []
    sections.append(_summary_section(view))
    sections.append(_data_section(view, dataset, cells, per_sample))
    if preprocessing is not None:
        sections.append(Section("Preprocessing and features", [_free(preprocessing)]))
    sections.append(_protocol_section(view))
    sections.append(_results_section(view))

    figures = [
        FigureItem(Path(path), _caption_for(Path(path).name, view))
        for path in view.save_figures(figdir)
    ]
    sections.append(Section("Figures", figures))
    written = [f.path for f in figures]
    if importance is not None:
        blocks = _importance(importance, figdir)
        written.append(blocks[-1].path)
        sections.append(Section("Which features does the model use?", blocks))
    cell_figures = []
    if features is not None:
        cell_figures.append(
            _embedding_map(features, per_sample, view, embedding, max_points, rng, figdir)
        )
    if cells is not None and view.task == "classification":
        cell_figures.append(_gallery(cells, per_sample, view, n_examples, rng, figdir))
    cell_figures = [f for f in cell_figures if f is not None]
    if cell_figures:
        written += [f.path for f in cell_figures]
        sections.append(Section("The cells", cell_figures))
    if density is not None:
        item = _density_figure(density, figdir)
        written.append(item.path)
        sections.append(Section("Density maps", [item]))
    sections.append(_methods_section(view))
    if notes:
        sections.append(Section("Notes", [Paragraph(str(notes))]))
    sections.append(_software_section())

    out = {"figures": written}
    if "html" in formats:
        out["html"] = folder / "report.html"
        out["html"].write_text(_render_html(title, sections), encoding="utf-8")
    if "md" in formats:
        out["md"] = folder / "report.md"
        out["md"].write_text(_render_md(title, sections, folder), encoding="utf-8")
    return out


# --------------------------------------------------------------------------- content model


class Paragraph:
    def __init__(self, text, code=False, summary=None):
        self.text = text
        self.code = code
        self.summary = summary  # HTML: a collapsed block with this summary line


class Bullets:
    def __init__(self, items):
        self.items = [str(i) for i in items]


class Table:
    def __init__(self, frame, caption=None):
        self.frame = frame
        self.caption = caption


class FigureItem:
    def __init__(self, path, caption, size="small"):
        self.path = Path(path)
        self.caption = caption
        self.size = size  # HTML width: "small" (two per row), "medium" or "wide"


class Section:
    def __init__(self, heading, blocks):
        self.heading = heading
        self.blocks = [b for b in blocks if b is not None]


# --------------------------------------------------------------------------- the result


class _View:
    """A uniform view of an EvaluationResult or a ComparisonResult."""

    def __init__(self, results, table, paired, protocol, describe, source):
        self.results = results
        self.table = table
        self.paired = paired
        self.protocol = protocol
        self.describe = describe
        self.source = source
        first = next(iter(results.values()))
        self.task = first.task
        self.classes = first.classes
        self.primary = protocol["primary_metric"]
        self.best = self._best()

    @classmethod
    def of(cls, result):
        if hasattr(result, "results") and hasattr(result, "table"):
            return cls(
                dict(result.results),
                result.table,
                result.paired,
                result.protocol,
                result.describe(),
                result,
            )
        if hasattr(result, "summary") and hasattr(result, "predictions"):
            table = result.summary.assign(candidate="model")
            table = table[["candidate", *result.summary.columns]]
            return cls({"model": result}, table, None, result.protocol, result.describe(), result)
        raise TypeError(
            "result must be an EvaluationResult or ComparisonResult (from featcell.evaluate"
            f".evaluate or .compare), got {type(result).__name__}"
        )

    def _best(self):
        rows = self.table[self.table["metric"] == self.primary].set_index("candidate")["pooled"]
        rows = rows.dropna()
        if rows.empty:
            return next(iter(self.results))
        greater = _greater_is_better(self.primary)
        if greater is None:  # best at 0
            return rows.abs().idxmin()
        return rows.idxmax() if greater else rows.idxmin()

    def save_figures(self, folder):
        return list(self.source.save_figures(folder))

    def per_sample(self, n):
        """Per-sample true label / prediction of the best candidate (None where untested)."""
        pred = self.results[self.best].predictions
        frame = pd.DataFrame(index=np.arange(n))
        sample = pred["sample"].to_numpy()
        if sample.max(initial=-1) >= n:
            raise ValueError(
                f"the result tested sample {int(sample.max())} but cells/features hold only "
                f"{n} samples; pass the same cells and features that were evaluated"
            )
        for column in ("y_true", "y_pred", "group", "fold"):
            values = pd.Series([None] * n, dtype=object)
            values.iloc[sample] = pred[column].to_numpy()
            frame[column] = values.to_numpy()
        frame["label"] = frame["y_true"]
        return frame


def _greater_is_better(metric):
    """True or False, or None for a metric best at 0 (a signed bias)."""
    from featcell.metrics import _METRICS

    if metric in _METRICS:
        return _METRICS[metric].greater_is_better
    return metric not in _LOWER_IS_BETTER


def _n_samples_of(view, cells, features):
    sizes = {}
    if cells is not None:
        sizes["cells"] = len(cells)
    if features is not None:
        sizes["features"] = len(features)
    if len(set(sizes.values())) > 1:
        raise ValueError(f"cells and features differ in length: {sizes}")
    if sizes:
        return next(iter(sizes.values()))
    return int(view.protocol.get("n_samples") or 0) or int(
        max(r.predictions["sample"].max() for r in view.results.values()) + 1
    )


# --------------------------------------------------------------------------- sections


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_p(p):
    if p is None or np.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_text(p):
    text = _fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _ci(value, low, high):
    return f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"


def _summary_section(view):
    rows = view.table[view.table["metric"] == view.primary].set_index("candidate")
    best = rows.loc[view.best]
    ci = round(100 * view.protocol.get("ci", 0.95))
    several = len(view.results) > 1
    word = {True: "Highest", False: "Lowest", None: "Closest to 0"}[
        _greater_is_better(view.primary)]
    grouped = view.protocol.get("grouped", True)
    text = (
        f"{word + ' ' + view.primary.replace('_', ' ') + ': ' if several else 'The model: '}"
        f"**{view.best}**, {view.primary.replace('_', ' ')} "
        f"{_ci(best['pooled'], best['ci_low'], best['ci_high'])} ({ci}% confidence "
        "interval), measured on "
        + ("cells of images that were not used to train the model." if grouped else
           "samples that were not used to train the model (out-of-fold).")
    )
    blocks = [Paragraph(text)]
    if several and view.paired is not None and len(view.paired):
        for _, row in view.paired.iterrows():
            low, high = row["diff_ci_low"], row["diff_ci_high"]
            if np.isnan(low) or np.isnan(high):
                verdict = "no interval: a candidate has no scores for this metric"
            elif low <= 0 <= high:
                verdict = "the interval includes 0: no clear difference on these data"
            else:
                verdict = "the interval excludes 0"
            blocks.append(
                Paragraph(
                    f"{row['candidate_a']} − {row['candidate_b']}: "
                    f"{row['metric'].replace('_', ' ')} difference "
                    f"{_ci(row['pooled_diff'], low, high)} ({verdict}; bootstrap "
                    f"{_p_text(row['p_value_bootstrap'])})."
                )
            )
    if not grouped and str(view.protocol.get("groups_source", "")).startswith(
            "none: groups='none'"):  # the user's choice: samples are independent
        blocks.append(
            Paragraph(
                "The folds were not grouped (groups='none': the samples were treated as "
                "independent, e.g. whole images); if several samples come from one image "
                "or well, the scores are optimistic."
            )
        )
    elif not grouped:
        blocks.append(
            Paragraph(
                "**Warning**: the folds were not grouped by image or well, so cells of one "
                "image were on both sides of a split; the scores are likely optimistic."
            )
        )
    return Section("Summary", blocks)


def _data_section(view, dataset, cells, per_sample):
    blocks = []
    facts = []
    if isinstance(dataset, Mapping):
        facts += [(str(k), v) for k, v in dataset.items()]
    elif dataset is not None:
        blocks.append(_free(dataset))
    p = view.protocol
    facts.append(("samples (cells, or images for per-image tasks)", p.get("n_samples")))
    if p.get("n_tested") is not None and p["n_tested"] < (p.get("n_samples") or 0):
        facts.append(("samples tested (in a test fold)", p["n_tested"]))
    tested = per_sample["y_true"].notna()
    if p.get("grouped"):
        facts.append(
            ("groups (folds never split one)", f"{p.get('n_groups')} ({p.get('groups_source')})")
        )
    if cells is not None:
        facts.append(("channels", ", ".join(map(str, getattr(cells, "channel_names", ())))))
        try:
            images = cells.groups("image")
            facts.append(("images", len(pd.unique(images))))
        except (KeyError, AttributeError):
            pass
        try:
            shapes = np.asarray(cells.crop_shapes)
            if len(shapes):
                facts.append(
                    ("median crop size (pixels, margin included)",
                     f"{int(np.median(shapes[:, 0]))} × {int(np.median(shapes[:, 1]))}")
                )
        except AttributeError:
            pass
    blocks.append(Table(pd.DataFrame(facts, columns=["", "value"])))
    if view.task == "classification":
        labels = per_sample.loc[tested, "y_true"].astype(str)
        counts = labels.value_counts().rename("cells")
        table = counts.to_frame()
        table["fraction"] = (counts / counts.sum()).map(lambda v: f"{v:.1%}")
        groups = per_sample.loc[tested, "group"]
        if groups.notna().any():
            table["groups with this class"] = (
                per_sample.loc[tested].groupby(labels)["group"].nunique().reindex(table.index)
            )
        table.index.name = "class"
        blocks.append(Table(table.reset_index(), caption="Samples per class (tested samples)."))
    else:
        y = pd.to_numeric(per_sample.loc[tested, "y_true"], errors="coerce")
        desc = y.describe()[["count", "mean", "std", "min", "50%", "max"]]
        frame = pd.DataFrame({"statistic": desc.index, "target": [_fmt(v, 2) for v in desc]})
        blocks.append(Table(frame, caption="Distribution of the target over tested samples."))
    return Section("Data", blocks)


def _protocol_section(view):
    p = view.protocol
    rows = [
        ("splitter", p.get("cv")),
        ("folds", p.get("n_splits")),
        ("test-fold sizes", ", ".join(map(str, p.get("fold_sizes", [])))),
        ("grouped", "yes" if p.get("grouped") else "no"),
        ("groups from", p.get("groups_source")),
        ("number of groups", p.get("n_groups")),
        ("task", f"{p.get('task')} ({p.get('task_source')})"),
        ("primary metric", p.get("primary_metric")),
        ("intervals", f"{p.get('ci', 0):.0%} {p.get('ci_method')} ({p.get('n_boot')} resamples)"),
        ("random seed", p.get("random_state")),
    ]
    blocks = [
        Paragraph(view.describe),
        Table(pd.DataFrame([(k, _fmt(v)) for k, v in rows], columns=["", "value"])),
    ]
    training = p.get("training") or (
        {"model": {"fit_seconds_mean": float(np.mean(p["fit_seconds"])),
                   "hardware": ", ".join(p.get("hardware", []))}}
        if p.get("fit_seconds") else {}
    )
    if training:  # what each candidate cost to train, and where
        frame = pd.DataFrame(
            [(name, _fmt(t["fit_seconds_mean"], 1), t["hardware"]) for name, t in training.items()],
            columns=["candidate", "fit time per fold (s)", "hardware"],
        )
        blocks.append(Table(frame, caption="Training cost: mean wall time of one fold's fit "
                                           "(feature extraction included) and the hardware."))
    models = p.get("candidates") or {"model": p.get("estimator")}
    text = "\n\n".join(f"{name}:\n{spec}" for name, spec in models.items() if spec)
    if text:
        blocks.append(Paragraph(text, code=True,
                                summary="The candidates, as scikit-learn objects"))
    return Section("Validation protocol", blocks)


def _results_section(view):
    metrics = view.protocol.get("metrics") or list(dict.fromkeys(view.table["metric"]))
    ci = round(100 * view.protocol.get("ci", 0.95))
    pooled = {}
    folds = {}
    for name in view.results:
        rows = view.table[view.table["candidate"] == name].set_index("metric")
        pooled[name] = {
            m: _ci(rows.loc[m, "pooled"], rows.loc[m, "ci_low"], rows.loc[m, "ci_high"])
            for m in metrics
            if m in rows.index
        }
        folds[name] = {
            m: f"{_fmt(rows.loc[m, 'mean'])} ± {_fmt(rows.loc[m, 'sd'])}"
            for m in metrics
            if m in rows.index
        }
    pooled = pd.DataFrame(pooled).T.reset_index(names="candidate")
    folds = pd.DataFrame(folds).T.reset_index(names="candidate")
    # the bootstrap resamples groups only where the folds were grouped
    boot = "group-bootstrap" if view.protocol.get("grouped", True) else "bootstrap (over samples)"
    blocks = [
        Table(
            pooled,
            caption=(
                f"Out-of-fold metrics: each value is computed on all out-of-fold predictions "
                f"at once, with its {ci}% {boot} confidence interval in brackets."
            ),
        ),
        Table(folds, caption="Mean ± standard deviation of the metric over the folds."),
    ]
    if view.paired is not None and len(view.paired):
        paired = view.paired
        frame = pd.DataFrame(
            {
                "comparison": paired["candidate_a"] + " − " + paired["candidate_b"],
                "metric": paired["metric"],
                "difference [CI]": [
                    _ci(r.pooled_diff, r.diff_ci_low, r.diff_ci_high)
                    for r in paired.itertuples()
                ],
                "p (bootstrap)": paired["p_value_bootstrap"].map(_fmt_p),
                "p (corrected t-test)": paired["p_value_corrected"].map(_fmt_p),
            }
        )
        blocks.append(
            Table(
                frame,
                caption=(
                    "Paired comparisons on the same folds. The difference is of the pooled "
                    f"metric, with a paired {boot} interval; the corrected t-test is "
                    "Nadeau & Bengio's, on fold scores. p-values are not corrected for "
                    "multiple comparisons."
                ),
            )
        )
    if view.task == "classification" and view.classes is not None:
        blocks.append(_per_class_table(view))
    return Section("Results", blocks)


def _per_class_table(view):
    result = view.results[view.best]
    pred = result.predictions
    rows = []
    for c in view.classes:
        true = pred["y_true"] == c
        said = pred["y_pred"] == c
        tp = int((true & said).sum())
        rows.append(
            {
                "class": str(c),
                "cells": int(true.sum()),
                "recall": _fmt(tp / true.sum() if true.sum() else np.nan),
                "precision": _fmt(tp / said.sum() if said.sum() else np.nan),
            }
        )
    return Table(
        pd.DataFrame(rows),
        caption=f"Per-class recall and precision of {view.best} (out-of-fold predictions).",
    )


def _methods_section(view):
    import featcell

    p = view.protocol
    parts = []
    if len(view.results) > 1:
        parts.append(
            f"We compared {len(view.results)} models ({', '.join(view.results)}) on the "
            "same cross-validation folds."
        )
    grouping = (
        f"with all cells of one group ({p.get('groups_source')}) in the same fold, so that "
        "every score is measured on images the model did not see during training"
        if p.get("grouped")
        else "without grouping (samples treated as independent)"
    )
    parts.append(
        f"Performance was estimated by {_cv_words(p)}, {grouping}."
    )
    parts.append(
        f"We report metrics computed on the pooled out-of-fold predictions with "
        f"{p.get('ci', 0.95):.0%} percentile-bootstrap confidence intervals "
        f"({p.get('n_boot')} resamples of "
        f"{'groups' if p.get('grouped') else 'samples'})"
        + (
            ", and compare models with a paired bootstrap of the differences and Nadeau and "
            "Bengio's corrected paired t-test."
            if len(view.results) > 1
            else "."
        )
    )
    import sklearn

    parts.append(
        f"Analyses used featcell {featcell.__version__} and scikit-learn {sklearn.__version__}."
    )
    return Section(
        "Methods paragraph (to adapt for a paper)", [Paragraph(" ".join(parts))]
    )


def _software_section():
    import matplotlib
    import sklearn

    import featcell

    versions = [
        ("featcell", featcell.__version__),
        ("scikit-learn", sklearn.__version__),
        ("numpy", np.__version__),
        ("pandas", pd.__version__),
        ("matplotlib", matplotlib.__version__),
        ("python", platform.python_version()),
        ("written", _dt.datetime.now().isoformat(timespec="seconds")),
    ]
    return Section("Software", [Table(pd.DataFrame(versions, columns=["", "version"]))])


def _free(value):
    if isinstance(value, str):
        return Paragraph(value)
    if isinstance(value, Mapping):
        return Table(pd.DataFrame([(str(k), _fmt(v)) for k, v in value.items()],
                                  columns=["", "value"]))
    if isinstance(value, (list, tuple)):
        return Bullets(value)
    raise TypeError(
        f"expected a string, a list of strings or a dict, got {type(value).__name__}"
    )


# --------------------------------------------------------------------------- figures


def _density_figure(density, figdir):
    """Images beside their predicted density, true dots (and predicted count) overlaid."""
    if not isinstance(density, Mapping) or not {"counter", "images", "points"} <= set(density):
        raise ValueError("density must be a dict with 'counter', 'images' and 'points'")
    n = int(density.get("n_images", 4))
    images = list(density["images"])[:n]
    points = list(density["points"])[:n]
    if not images:
        raise ValueError("density['images'] is empty")
    from .features.image import _read

    maps = density["counter"].predict_density(images)
    counts = density["counter"].predict(images)
    fig = _figure(figsize=(6, 3 * len(images)), layout="constrained")
    axes = fig.subplots(len(images), 2, squeeze=False)
    for row, (item, dmap, dots, count) in enumerate(zip(images, maps, points, counts)):
        image = np.asarray(_read(item), dtype=float)
        if image.ndim == 3:
            image = image.mean(axis=-1)
        low, high = np.percentile(image, [1, 99.8])
        axes[row, 0].imshow(image, cmap="gray", vmin=low, vmax=high if high > low else low + 1)
        axes[row, 1].imshow(dmap, cmap="magma")
        dots = np.asarray(dots, dtype=float).reshape(-1, 2)
        for ax in axes[row]:
            ax.scatter(dots[:, 1], dots[:, 0], s=4, c="cyan", linewidths=0)
            ax.set_axis_off()
        name = Path(item).name if isinstance(item, (str, Path)) else f"image {row}"
        axes[row, 0].set_title(f"{name}: {len(dots)} dots", fontsize=8)
        axes[row, 1].set_title(f"predicted density: {count:.1f}", fontsize=8)
    path = _save(fig, figdir / "density_maps.png", dpi=_DPI)
    note = density.get("note") or ""
    caption = (
        "Images (left) and the density the counter predicts (right, objects per pixel); the "
        "cyan dots are the true annotations and the title gives the predicted count, the sum "
        f"of the density. {note}"
    ).strip()
    return FigureItem(path, caption, size="medium")


def _caption_for(filename, view):
    stem = Path(filename).stem
    names = {slug: str(name) for name, slug in figure_slugs(view.results).items()}

    def candidate(suffix):  # the candidate's own name, not its file name
        slug = stem[: -len(suffix)]
        return names.get(slug, slug)

    if stem == "roc":
        return (
            "ROC curves of the out-of-fold class scores; the area under the curve (AUC) is in "
            "the legend. The dashed diagonal is a model that guesses."
        )
    if stem.endswith("_confusion"):
        return (
            f"Confusion matrix of {candidate('_confusion')}: out-of-fold predictions; each "
            "row shows where the cells of one true class went (counts and fraction of the row)."
        )
    if stem.endswith("_roc"):
        return f"One-vs-rest ROC curves of {candidate('_roc')}, out-of-fold scores."
    if stem.endswith("_pred_vs_true"):
        return (
            f"Predicted against true values for {candidate('_pred_vs_true')}, out-of-fold; "
            "points on the dashed line are exact."
        )
    return stem.replace("_", " ")


def _importance(importance, figdir):
    if isinstance(importance, pd.DataFrame):
        importance = {"model": importance}
    if not isinstance(importance, Mapping) or not importance:
        raise TypeError(
            "importance must be a DataFrame from featcell.importance.family_importance or a "
            f"dict of them, got {type(importance).__name__}"
        )
    for name, frame in importance.items():
        missing = {"family", "drop_mean"} - set(frame.columns)
        if missing:
            raise ValueError(f"importance[{name!r}] lacks columns {sorted(missing)}")
    families = list(dict.fromkeys(f for frame in importance.values() for f in frame["family"]))
    first = next(iter(importance.values()))
    scoring = first.attrs.get("scoring", "score")
    height = 1.3 + 0.3 * len(families) * len(importance)
    fig = _figure(figsize=(6.4, height), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(importance)
    order = families[::-1]
    for k, (name, frame) in enumerate(importance.items()):
        frame = frame.set_index("family").reindex(order)
        pos = np.arange(len(order)) - (k - (len(importance) - 1) / 2) * width
        err = frame["drop_sd"].to_numpy(float) if "drop_sd" in frame else None
        ax.barh(pos, frame["drop_mean"].to_numpy(float), height=width, xerr=err,
                capsize=3, label=name if len(importance) > 1 else None)
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(np.arange(len(order)), order)
    ax.set_xlabel(f"drop of {scoring} when the family is shuffled (held-out cells)")
    ax.set_title("Feature-family importance")
    if len(importance) > 1:
        ax.legend(fontsize=8)
    path = _save(fig, figdir / "family_importance.png", dpi=_DPI)
    table = {}
    for name, frame in importance.items():
        rows = frame.set_index("family")
        column = {}
        for family in families:
            if family not in rows.index:
                column[family] = "–"
                continue
            sd = rows.loc[family, "drop_sd"] if "drop_sd" in rows else np.nan
            column[family] = f"{_fmt(rows.loc[family, 'drop_mean'])} ± {_fmt(sd)}"
        table[name if len(importance) > 1 else f"drop of {scoring}"] = column
    shown = pd.DataFrame(table)
    shown.insert(0, "features", [
        _fmt(max((f.set_index("family")["n_features"].get(family, 0)
                  for f in importance.values() if "n_features" in f), default=None))
        for family in families
    ])
    shown = shown.reset_index(names="family")
    caption = first.attrs.get("protocol", "Permutation importance of feature families.")
    if len(importance) > 1:
        caption += " Columns: the candidates; values: mean drop ± standard deviation."
    blocks = [Table(shown, caption=caption)]
    blocks.insert(
        0,
        Paragraph(
            "Each family of features (cell shape, intensity, texture, colocalization of "
            "stains, CNN embedding) was shuffled across held-out cells; the larger the drop "
            "of the score, the more the model relies on that family. A family whose "
            "information is also carried by another can show a small drop."
        ),
    )
    caption = (
        "Feature-family importance: mean drop of the held-out score when all columns of a "
        "family are shuffled together (bars: standard deviation over folds and shuffles)."
    )
    blocks.append(FigureItem(path, caption, size="medium"))
    return blocks


def _numeric_table(features):
    if isinstance(features, pd.DataFrame):
        keep = [
            c for c in features.columns
            if not str(c).startswith("Metadata_") and pd.api.types.is_numeric_dtype(features[c])
            and not pd.api.types.is_bool_dtype(features[c])
        ]
        return features[keep].to_numpy(dtype=float)
    array = np.asarray(features, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"features must be a 2-D table, got shape {array.shape}")
    return array


def _embedding_map(features, per_sample, view, method, max_points, rng, figdir):
    values = _numeric_table(features)
    if values.shape[1] < 2:
        return None
    values = np.where(np.isfinite(values), values, np.nan)
    medians = np.nanmedian(np.where(np.isnan(values).all(axis=0), 0, values), axis=0)
    values = np.where(np.isnan(values), medians, values)
    sd = values.std(axis=0)
    values = (values[:, sd > 0] - values[:, sd > 0].mean(axis=0)) / sd[sd > 0]
    if values.shape[1] < 2:
        return None
    labels = per_sample["label"].to_numpy()
    known = np.flatnonzero(pd.notna(labels))
    if len(known) < 3:
        return None
    limit = max_points if method == "pca" else min(max_points, _TSNE_MAX)
    if len(known) > limit:
        known = np.sort(rng.choice(known, limit, replace=False))
    from sklearn.decomposition import PCA

    X = values[known]
    n_comp = min(50, X.shape[1], len(X) - 1)
    pca = PCA(n_components=n_comp, random_state=0).fit(X)
    Z = pca.transform(X)
    if method == "tsne" and len(X) > 5:
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(X) - 1) / 3)))
        Z = TSNE(n_components=2, perplexity=perplexity, init="pca",
                 method="exact" if len(X) <= 500 else "barnes_hut",  # exact is faster there
                 random_state=int(rng.integers(2**31 - 1))).fit_transform(Z)
        xlabel, ylabel = "t-SNE 1", "t-SNE 2"
    else:
        ratio = pca.explained_variance_ratio_
        xlabel, ylabel = f"PC1 ({ratio[0]:.0%} of variance)", f"PC2 ({ratio[1]:.0%})"
    fig = _figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.add_subplot()
    y = labels[known]
    wrong = np.zeros(len(known), bool)
    if view.task == "classification":
        pred = per_sample["y_pred"].to_numpy()[known]
        tested = pd.notna(pred)
        wrong[tested] = pred[tested].astype(str) != per_sample["y_true"].to_numpy()[known][
            tested
        ].astype(str)
        classes = list(pd.unique(pd.Series(y).astype(str)))
        classes.sort()
        colours = class_colours(classes)
        for c in classes:
            sel = y.astype(str) == c
            ax.scatter(Z[sel, 0], Z[sel, 1], s=14, alpha=0.8, color=colours[c],
                       label=f"{c} ({int(sel.sum())})", edgecolors="none")
        if wrong.any():
            ax.scatter(Z[wrong, 0], Z[wrong, 1], s=40, facecolors="none", edgecolors="black",
                       linewidths=0.8, label=f"misclassified by {view.best}")
        ax.legend(fontsize=8, loc="best", markerscale=1.2)
    else:
        points = ax.scatter(Z[:, 0], Z[:, 1], s=14, c=pd.to_numeric(y), cmap="viridis")
        fig.colorbar(points, ax=ax, label="true value")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(f"{'t-SNE' if xlabel.startswith('t-SNE') else 'PCA'} map of "
                 f"{len(known)} samples")
    path = _save(fig, figdir / f"embedding_{method}.png", dpi=_DPI)
    how = (
        "t-SNE (scikit-learn, on the first principal components)"
        if xlabel.startswith("t-SNE")
        else "the first two principal components"
    )
    caption = (
        f"Map of the cells by {how} of the standardised features, coloured by "
        + ("class" if view.task == "classification" else "true value")
        + (f"; black rings mark cells that {view.best} misclassified out-of-fold"
           if wrong.any() else "")
        + "."
        + " Distances on a t-SNE map are only meaningful locally." * xlabel.startswith("t-SNE")
    )
    return FigureItem(path, caption, size="medium")


def _display(crop):
    """A (h, w) or (h, w, 3) image in [0, 1] for one (C, h, w) crop."""
    crop = np.asarray(crop, dtype=float)
    if crop.shape[0] == 3:
        image = np.moveaxis(crop, 0, -1)
    else:
        image = crop[0]
    low, high = np.percentile(image, [1, 99.5])
    return np.clip((image - low) / (high - low if high > low else 1), 0, 1)


def _gallery(cells, per_sample, view, n_examples, rng, figdir):
    labels = per_sample["label"].to_numpy()
    known = pd.notna(labels)
    if not known.any():
        return None
    classes = sorted(pd.unique(labels[known].astype(str)))
    picks = {}
    for c in classes:
        idx = np.flatnonzero(known & (labels.astype(str) == c))
        picks[c] = np.sort(rng.choice(idx, min(n_examples, len(idx)), replace=False))
    ncol = max(len(v) for v in picks.values())
    fig = _figure(figsize=(1.25 * ncol + 1.2, 1.45 * len(classes) + 0.4), layout="constrained")
    axes = fig.subplots(len(classes), ncol, squeeze=False)
    pred = per_sample["y_pred"].to_numpy()
    for r, c in enumerate(classes):
        for k in range(ncol):
            ax = axes[r, k]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if k >= len(picks[c]):
                continue
            i = int(picks[c][k])
            crop = cells.crop(i)
            image = _display(crop)
            ax.imshow(image, cmap=None if image.ndim == 3 else "gray", interpolation="nearest")
            mask = cells.mask(i)
            if mask.any() and not mask.all():
                ax.contour(mask.astype(float), levels=[0.5], colors=["#ffcc00"], linewidths=0.7)
            if pd.notna(pred[i]) and str(pred[i]) != c:
                ax.set_title(f"→ {pred[i]}", color="#c00000", fontsize=7, pad=2)
        axes[r, 0].set_ylabel(c, fontsize=9, rotation=90)
    channel = "RGB" if cells.n_channels == 3 else str(cells.channel_names[0])
    fig.suptitle(f"Example cells per class ({channel})", fontsize=10)
    path = _save(fig, figdir / "example_cells.png", dpi=_DPI)
    caption = (
        f"Example cells of each class, drawn at random (channel {channel}, contrast "
        "stretched per cell; yellow line: the cell's mask). A red arrow gives the class "
        f"that {view.best} predicted out-of-fold for a misclassified cell."
    )
    return FigureItem(path, caption, size="wide")


# --------------------------------------------------------------------------- rendering


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 60rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.7rem; border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
caption { caption-side: bottom; text-align: left; font-size: .82rem; color: #555;
          padding-top: .3rem; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem 1.5rem; align-items: flex-start; }
figure { margin: .5rem 0 1.2rem; flex: 0 1 28rem; max-width: 100%; }
figure.medium { flex: 0 1 42rem; }
figure.wide { flex: 1 1 100%; }
figure img { max-width: 100%; border: 1px solid #eee; }
details { margin: .6rem 0; }
summary { cursor: pointer; color: #245; }
figcaption { font-size: .85rem; color: #444; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: .8rem; }
.meta { color: #666; font-size: .85rem; }
"""


def _inline_md(text):
    """Escape for HTML, then render **bold** and `code` spans."""
    text = html.escape(str(text))
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _html_table(table):
    frame = table.frame
    out = ["<table>"]
    if table.caption:
        out.append(f"<caption>{_inline_md(table.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
               + "</tr></thead><tbody>")
    for row in frame.itertuples(index=False):
        out.append("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _render_html(title, sections):
    import featcell

    meta = (
        f'<p class="meta">featcell {html.escape(featcell.__version__)} report, written '
        f"{_dt.date.today().isoformat()}</p>"
    )
    body = [f"<h1>{html.escape(title)}</h1>", meta]
    for section in sections:
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        in_figures = False
        for block in section.blocks:
            if isinstance(block, FigureItem) != in_figures:
                body.append('<div class="figures">' if not in_figures else "</div>")
                in_figures = not in_figures
            if isinstance(block, Paragraph):
                if block.code and block.summary:
                    body.append(f"<details><summary>{html.escape(block.summary)}</summary>"
                                f"<pre>{html.escape(block.text)}</pre></details>")
                elif block.code:
                    body.append(f"<pre>{html.escape(block.text)}</pre>")
                else:
                    body.append(f"<p>{_inline_md(block.text)}</p>")
            elif isinstance(block, Bullets):
                body.append("<ul>" + "".join(f"<li>{_inline_md(i)}</li>" for i in block.items)
                            + "</ul>")
            elif isinstance(block, Table):
                body.append(_html_table(block))
            elif isinstance(block, FigureItem):
                data = base64.b64encode(block.path.read_bytes()).decode("ascii")
                size = f' class="{block.size}"' if block.size != "small" else ""
                body.append(
                    f'<figure{size}><img src="data:image/png;base64,{data}" '
                    f'alt="{html.escape(block.path.stem)}">'
                    f"<figcaption>{_inline_md(block.caption)}</figcaption></figure>"
                )
        if in_figures:
            body.append("</div>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _md_text(text):
    """Text with HTML's special characters escaped (a class ``<dead>`` or a title holding
    ``<script>`` reads as written), its ``**bold**`` and backticks kept, as the HTML report
    renders them (:func:`_inline_md`)."""
    return re.sub(r"([<>&])", r"\\\1", str(text))


def _md_cell(value):
    return _md_text(_fmt(value)).replace("|", "\\|").replace("\n", " ")


def _md_table(table):
    frame = table.frame
    header = [str(c) if str(c) else " " for c in frame.columns]
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if table.caption:
        lines.append("")
        lines.append(f"*{_md_text(table.caption)}*")
    return "\n".join(lines)


def _render_md(title, sections, folder):
    import featcell

    out = [f"# {_md_text(title)}", "",
           f"featcell {featcell.__version__} report, written {_dt.date.today().isoformat()}", ""]
    for section in sections:
        out += [f"## {section.heading}", ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                if block.summary:
                    out += [f"{block.summary}:", ""]
                out += (["```", block.text, "```"] if block.code
                        else [_md_text(block.text)])
            elif isinstance(block, Bullets):
                out += [f"- {_md_text(item)}" for item in block.items]
            elif isinstance(block, Table):
                out.append(_md_table(block))
            elif isinstance(block, FigureItem):
                rel = block.path.relative_to(folder).as_posix()
                out += [f"![{block.path.stem}]({rel})", "", f"*{_md_text(block.caption)}*"]
            out.append("")
    return "\n".join(out)


def _check_formats(formats):
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(formats)
    bad = [f for f in formats if f not in _FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must hold 'html' and/or 'md', got {formats!r}")
    return formats
