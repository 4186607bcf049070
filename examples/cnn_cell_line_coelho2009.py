"""Tell U2OS from NIH3T3 nuclei with ImageNet CNN embeddings (Coelho et al. 2009).

Every hand-segmented nucleus of the 67 DNA-stain (Hoechst) images becomes one
:class:`~featcell.CellSet` cell; :class:`~featcell.CNNEmbedding` (the bundled
EfficientNet-Lite0, ImageNet weights, no fine-tuning) turns each into a 1280-d
vector, and a class-balanced logistic regression is cross-validated with
GroupKFold over *images*, so no image lends cells to both training and test.
The balanced accuracy of the out-of-fold predictions gets a 95 % interval by
bootstrapping images.

The embedding is computed once, outside the cross-validation: it learns nothing
from the data (a fixed pretrained network and per-crop normalisation), so this
is equivalent to putting it in the pipeline, only five times faster.

Data: Coelho, Shariff & Murphy, "Nuclear segmentation in microscope cell images:
a hand-segmented dataset and comparison of algorithms", ISBI 2009.

Run from the repository root (about a minute on 2 CPU cores)::

    python examples/cnn_cell_line_coelho2009.py [--input-size 128] [--mask-background]
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, cross_val_predict

from featcell.cells import CellSet
from featcell.cnn import make_cnn_pipeline
from featcell.io import read_image, read_labels
from featcell.metrics import bootstrap_ci, recall

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cell_line" / "coelho2009"


def load_cells(root=DATA):
    """All labelled nuclei, one image id per source image, and their cell line."""
    table = pd.read_csv(root / "images.csv")
    cells, lines = [], []
    for name, line in zip(table["image"], table["cell_line"]):
        image = read_image(root / "images" / name)
        labels = read_labels(root / "labels" / name)
        found = CellSet.from_labels(image, labels, channels=["DNA"], image_id=name, margin=8)
        cells.append(found)
        lines += [line] * len(found)
    return CellSet.concat(cells), np.asarray(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=None, help="network input side")
    parser.add_argument("--mask-background", action="store_true")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)

    cells, y = load_cells()
    groups = cells.groups("image")
    print(
        f"{len(cells)} nuclei from {len(np.unique(groups))} images: "
        + ", ".join(f"{c} {n}" for c, n in zip(*np.unique(y, return_counts=True)))
    )

    pipe = make_cnn_pipeline("lr", input_size=args.input_size, mask_background=args.mask_background)
    embedding = pipe.named_steps["cnn"]
    start = time.perf_counter()
    Z = embedding.fit_transform(cells)
    seconds = time.perf_counter() - start
    print(
        f"embedding: {Z.shape[1]} features at {embedding.input_size_} px, "
        f"{len(cells) / seconds:.0f} cells/s ({embedding.provider_})"
    )

    head = pipe[1:]  # StandardScaler + class-balanced LogisticRegression
    pred = cross_val_predict(head, Z, y, groups=groups, cv=GroupKFold(args.folds))
    estimate, low, high = bootstrap_ci("balanced_accuracy", y, pred, groups=groups, n_boot=2000)
    classes = np.unique(y)
    recalls = recall(y, pred, average=None, labels=classes)
    print(f"GroupKFold({args.folds}) by image, logistic regression on CNN embeddings:")
    print(
        f"  balanced accuracy {estimate:.3f}  (95% CI {low:.3f}-{high:.3f}, bootstrap over images)"
    )
    print("  recall: " + ", ".join(f"{c} {r:.3f}" for c, r in zip(classes, recalls)))


if __name__ == "__main__":
    main()
