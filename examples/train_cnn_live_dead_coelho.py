"""Live/dead cells and Coelho 2009 nuclei: a CNN trained on the cells next to classical features.

Data sets (read as in their own examples):

- ``live_dead``: LDC bright-field images (:mod:`classify_live_dead`), a fixed random subset
  of 250 images (120 with ``--quick``), one cell per box, live vs dead;
- ``coelho``: the 67 Hoechst images of Coelho et al. 2009 (:mod:`cnn_cell_line_coelho2009`),
  every hand-segmented nucleus, U2OS vs NIH3T3.

Protocol: :func:`featcell.compare`, stratified k-fold grouped by image (no image lends cells
to both training and test), the same folds for every candidate; balanced accuracy of the
pooled out-of-fold predictions with a 95 % bootstrap interval resampling images.
Candidates:

- ``classical+lr``: :class:`featcell.CellFeatures` (computed once: they learn nothing from
  other cells) → class-balanced logistic regression (C = 0.1);
- ``trained_cnn``: :class:`featcell.CNNClassifier` with its defaults, trained in each fold
  (its epochs chosen on a validation split of that fold's training images);
- ``classical+trained_cnn``: the classical features and the trained network's embedding side
  by side → the same logistic regression (one network per fold, shared with ``trained_cnn``);
- ``late_fusion``: :class:`featcell.CNNFusionClassifier`, the network's and ``classical+lr``'s
  probabilities pooled with a weight chosen on the network's validation cells.

Training time per fold, hardware, network size and the epochs kept are printed.

Run from the repository root::

    python examples/train_cnn_live_dead_coelho.py --dataset live_dead [--quick] [--threads 1]
    python examples/train_cnn_live_dead_coelho.py --dataset coelho [--threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from train_cnn_cell_cycle_jurkat import Fusion, Rows, SharedCNN, head, pretrain, print_training

from featcell import CellFeatures, compare

KEY = "Row"  # a metadata column numbering the cells, to find their precomputed features


def load(dataset, quick):
    """Cells and labels of one data set (in its own example's way)."""
    if dataset == "live_dead":
        from classify_live_dead import DATA, load_cells

        if not DATA.is_dir():
            raise SystemExit(f"live/dead data not found at {DATA}")
        cells, y, _, _ = load_cells(120 if quick else 250)
        return cells, y
    from cnn_cell_line_coelho2009 import DATA, load_cells

    if not DATA.is_dir():
        raise SystemExit(f"Coelho 2009 data not found at {DATA}")
    return load_cells()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["live_dead", "coelho"], required=True)
    parser.add_argument("--quick", action="store_true", help="live_dead: 120 images")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch/onnxruntime threads")
    parser.add_argument("--verbose", action="store_true", help="training progress per epoch")
    parser.add_argument("--input-size", type=int, default=None, help="CNNClassifier input_size")
    parser.add_argument("--width", type=int, default=32, help="CNNClassifier width")
    parser.add_argument("--max-epochs", type=int, default=120, help="CNNClassifier max_epochs")
    parser.add_argument("--parallel-folds", type=int, default=1,
                        help="train the folds' networks in this many processes first")
    parser.add_argument("--cache", default=None,
                        help="folder keeping the folds' fitted networks for a later run")
    args = parser.parse_args(argv)
    cells, y = load(args.dataset, args.quick)
    cells.metadata[f"Metadata_{KEY}"] = np.arange(len(cells))
    images = cells.groups("image")
    sides = cells.crop_shapes.max(axis=1)
    print(f"{args.dataset}: {len(cells)} cells from {len(np.unique(images))} images, "
          + ", ".join(f"{c} {n}" for c, n in zip(*np.unique(y, return_counts=True)))
          + f"; crop side median {np.median(sides):.0f} px")

    start = time.perf_counter()
    Xc = CellFeatures().fit_transform(cells)
    print(f"classical: {Xc.shape[1]} features in {time.perf_counter() - start:.0f} s")
    ids = cells.groups(KEY)
    SharedCNN.key = KEY
    cnn = SharedCNN(n_threads=args.threads, verbose=args.verbose, input_size=args.input_size,
                    width=args.width, max_epochs=args.max_epochs)
    candidates = {
        "classical+lr": Pipeline([("rows", Rows(Xc, ids, KEY)), *head("lr")]),
        "trained_cnn": cnn,
        "classical+trained_cnn": Pipeline([
            ("features", FeatureUnion([("classical", Rows(Xc, ids, KEY)), ("cnn", cnn)])),
            *head("lr"),
        ]),
        "late_fusion": Fusion(cnn, Pipeline([("rows", Rows(Xc, ids, KEY)), *head("lr")])),
    }
    # the splits compare makes for cv=folds with groups
    splitter = StratifiedGroupKFold(args.folds, shuffle=True, random_state=0)
    splits = list(splitter.split(np.zeros(len(y)), y, images))
    if args.parallel_folds > 1 or args.cache:
        start = time.perf_counter()
        pretrain(cnn, cells, y, splits, args.parallel_folds, args.cache)
        print(f"networks of {args.folds} folds trained in {args.parallel_folds} processes in "
              f"{time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs convergence chatter
        res = compare(candidates, cells, y, groups=images, cv=splits,
                      metrics=["balanced_accuracy", "accuracy"], n_boot=1000)
    print(f"compare: {time.perf_counter() - start:.0f} s; {res.describe()}")
    rows = []
    for name, result in res.results.items():
        s = result.summary.set_index("metric").loc["balanced_accuracy"]
        training = res.protocol["training"][name]
        rows.append([name, s["pooled"], s["ci_low"], s["ci_high"],
                     training["fit_seconds_mean"], training["hardware"]])
    table = pd.DataFrame(rows, columns=["candidate", "bal_acc", "ci_low", "ci_high", "fit_s",
                                        "hardware"])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(res.paired.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print_training()


if __name__ == "__main__":
    main()
