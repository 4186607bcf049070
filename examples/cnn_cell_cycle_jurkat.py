"""Cell-cycle phase of single Jurkat cells from CNN embeddings (imaging flow cytometry).

2,383 cells, 40x40 px, three channels: ``Ch3`` bright-field, ``Ch4`` a fluorescence
marker, ``Ch6`` dark-field (side scatter); seven very imbalanced phases.
:class:`~featcell.CNNEmbedding` embeds every channel separately with the bundled
ImageNet EfficientNet-Lite0 (``channel_mode="per_channel"``: 1280 features per
channel, names ending in the channel), so the label-free model (bright-field +
dark-field, as in Blasi et al. 2016) is just the ``Ch3`` and ``Ch6`` columns of the
same embedding.

The cells come from one flow-cytometry run and are independent samples, so the
cross-validation is stratified by phase (5 folds; the peer workflow used 10, pass
``--folds 10``) rather than grouped. The head is a class-balanced logistic regression on standardised
embeddings. The embedding learns nothing from the data, so it is computed once,
outside the cross-validation.

For reference, the peer workflow (CellProfiler features, Gaussian naive Bayes,
10-fold CV; minh-doan/MLCP) reports per-class recall 0.86/0.71/0.54/0.31/0.32/0.28/0.57.

Data: Blasi et al., "Label-free cell cycle analysis for high-throughput imaging
flow cytometry", Nature Communications 2016 (BBBC048), via minh-doan/MLCP (BSD-3).

Run from the repository root (one to two minutes on 2 CPU cores; ``--max-cells``
subsamples, stratified, for a quicker look)::

    python examples/cnn_cell_cycle_jurkat.py [--input-size 128] [--max-cells 1000]
"""

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split

from featcell.cells import CellSet
from featcell.cnn import make_cnn_pipeline
from featcell.metrics import bootstrap_ci, recall

DATA = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "phenotype"
    / "jurkat_cell_cycle"
    / "cells.npz"
)
PHASES = ["G1", "S_phase", "G2", "Prophase", "Metaphase", "Anaphase", "Telophase"]
PEER_NB_RECALL = [0.86, 0.71, 0.54, 0.31, 0.32, 0.28, 0.57]


def evaluate(Z, y, head, folds):
    """Out-of-fold balanced accuracy (bootstrap 95 % CI over cells) and per-phase recall."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    pred = cross_val_predict(head, Z, y, cv=cv)
    estimate, low, high = bootstrap_ci("balanced_accuracy", y, pred, n_boot=2000)
    return estimate, low, high, recall(y, pred, average=None, labels=PHASES)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=None, help="network input side")
    parser.add_argument("--max-cells", type=int, default=None, help="stratified subsample")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)

    data = np.load(DATA)
    images, y = data["images"], data["phase"]
    if args.max_cells is not None and args.max_cells < len(y):
        keep, _ = train_test_split(
            np.arange(len(y)), train_size=args.max_cells, stratify=y, random_state=0
        )
        images, y = images[np.sort(keep)], y[np.sort(keep)]
        print(f"subsampled to {len(y)} cells (stratified)")
    cells = CellSet.from_crops(images, channels=[str(c) for c in data["channels"]])
    print(
        f"{len(cells)} cells, channels {list(cells.channel_names)}; "
        + ", ".join(f"{p} {np.sum(y == p)}" for p in PHASES)
    )

    pipe = make_cnn_pipeline("lr", input_size=args.input_size)
    embedding = pipe.named_steps["cnn"]
    start = time.perf_counter()
    Z = embedding.fit_transform(cells)
    seconds = time.perf_counter() - start
    print(
        f"embedding: {Z.shape[1]} features at {embedding.input_size_} px, "
        f"{len(cells) / seconds:.0f} cells/s = {3 * len(cells) / seconds:.0f} crops/s "
        f"({embedding.provider_})"
    )

    names = embedding.get_feature_names_out()
    label_free = np.char.endswith(names.astype(str), "_Ch3") | np.char.endswith(
        names.astype(str), "_Ch6"
    )
    head = pipe[1:]  # StandardScaler + class-balanced LogisticRegression
    print(f"stratified {args.folds}-fold CV, logistic regression on CNN embeddings")
    print(f"{'channels':<22} {'bal. acc. [95% CI]':<22} " + " ".join(f"{p[:6]:>6}" for p in PHASES))
    rows = [("all (Ch3+Ch4+Ch6)", Z), ("label-free (Ch3+Ch6)", Z[:, label_free])]
    for label, features in rows:
        estimate, low, high, recalls = evaluate(features, y, head, args.folds)
        print(
            f"{label:<22} {estimate:.3f} [{low:.3f}-{high:.3f}]   "
            + " ".join(f"{r:6.2f}" for r in recalls)
        )
    print(
        f"{'peer CellProfiler+NB':<22} {np.mean(PEER_NB_RECALL):.3f} (mean recall)  "
        + " ".join(f"{r:6.2f}" for r in PEER_NB_RECALL)
    )


if __name__ == "__main__":
    main()
