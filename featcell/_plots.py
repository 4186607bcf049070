"""Figures of cross-validated results: confusion matrices, ROC curves, count scatter plots.

Figures are built with :class:`matplotlib.figure.Figure` and written by the Agg canvas, so
nothing touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_curve

from featcell import metrics


def save_figures(results, folder):
    """Write the figures of ``{name: EvaluationResult}`` into `folder`; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    first = next(iter(results.values()))
    slugs = figure_slugs(results)
    if first.task == "regression":
        for name, result in results.items():
            fig = _scatter(result, name)
            paths.append(_save(fig, folder / f"{slugs[name]}_pred_vs_true.png"))
        return paths
    for name, result in results.items():
        paths.append(_save(_confusion(result, name), folder / f"{slugs[name]}_confusion.png"))
    scored = {name: r for name, r in results.items() if r.scores() is not None}
    if len(first.classes) == 2 and scored:
        paths.append(_save(_roc_binary(scored), folder / "roc.png"))
    elif scored:
        for name, result in scored.items():
            paths.append(_save(_roc_ovr(result, name), folder / f"{slugs[name]}_roc.png"))
    return paths


def class_colours(classes):
    """``{class: RGBA}``, a distinct colour each: tab10 or tab20, then a continuous map
    sampled evenly (``turbo``) for more than 20 classes."""
    from matplotlib import colormaps

    if len(classes) <= 20:
        cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
        return {c: cmap(i) for i, c in enumerate(classes)}
    cmap = colormaps["turbo"]
    return {c: cmap(x) for c, x in zip(classes, np.linspace(0, 1, len(classes)))}


def figure_slugs(names):
    """``{name: file-name stem}`` of candidates' figures: letters, digits, ``_.-``, each
    stem once (``"nb 1"`` and ``"nb_1"`` would both be ``nb_1``: the second is ``nb_1_2``)."""
    slugs = {}
    for name in names:
        slug = base = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "model"
        n = 1
        while slug in slugs.values():
            n += 1
            slug = f"{base}_{n}"
        slugs[name] = slug
    return slugs


def _figure(**kwargs):
    """A matplotlib Figure (matplotlib is imported only when a figure is drawn)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig, path, dpi=120):
    """Write `fig` to `path` with the Agg canvas (no pyplot state); returns `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi)
    return path


def _confusion(result, name):
    pred = result.predictions
    classes = result.classes
    counts = metrics.confusion_matrix(pred["y_true"], pred["y_pred"], labels=classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = counts / counts.sum(axis=1, keepdims=True)
    size = 2.5 + 0.6 * len(classes)
    fig = _figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.nan_to_num(rates), cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        colour = "white" if np.nan_to_num(rates[i, j]) > 0.5 else "black"
        label = f"{n}\n{rates[i, j]:.0%}" if counts[i].sum() else str(n)
        ax.text(j, i, label, ha="center", va="center", color=colour, fontsize=8)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(ticks, [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    bacc = metrics.balanced_accuracy(pred["y_true"], pred["y_pred"])
    ax.set_title(f"{name}: balanced accuracy {bacc:.3f}")
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    return fig


def _roc_axes(title):
    fig = _figure(figsize=(5, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
        aspect="equal",
    )
    return fig, ax


def _roc_binary(results):
    fig, ax = _roc_axes("ROC, out-of-fold")
    for name, result in results.items():
        y_true = result.predictions["y_true"].to_numpy()
        positive = result.classes[1]
        score = result.scores()[:, 1]
        fpr, tpr, _ = roc_curve(y_true == positive, score)
        auc = metrics.roc_auc(y_true, score, labels=result.classes)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.legend(loc="lower right", fontsize=8, title=f"positive: {positive}")
    return fig


def _roc_ovr(result, name):
    fig, ax = _roc_axes(f"{name}: one-vs-rest ROC, out-of-fold")
    y_true = result.predictions["y_true"].to_numpy()
    scores = result.scores()
    colours = class_colours([str(c) for c in result.classes])
    for k, c in enumerate(result.classes):
        positive = y_true == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, scores[:, k])
        auc = metrics.roc_auc(positive, scores[:, k])
        ax.plot(fpr, tpr, linewidth=1.2, color=colours[str(c)], label=f"{c} (AUC {auc:.3f})")
    ax.legend(loc="lower right", fontsize=7)
    return fig


def _scatter(result, name):
    y_true = result.predictions["y_true"].to_numpy(float)
    y_pred = result.predictions["y_pred"].to_numpy(float)
    fig = _figure(figsize=(5, 5), layout="constrained")
    ax = fig.add_subplot()
    low, high = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.scatter(y_true, y_pred, s=12, alpha=0.7)
    ax.set(xlabel="true", ylabel="predicted (out-of-fold)", aspect="equal")
    ax.set_title(
        f"{name}: MAE {metrics.mae(y_true, y_pred):.2f}, r {metrics.pearson_r(y_true, y_pred):.3f}"
    )
    return fig
