"""Counting nuclei from dots in another domain: DSB2018 fluorescence images, dots from labels.

A second check of the density counter's defaults, beside the VGG cells they were explored
on (``examples/count_vgg_cells.py``): real nuclei of many sizes and densities rather than
synthetic cells. From the 2018 Data Science Bowl images in ``../shared/data/segmentation/
dsb2018`` take the 256 x 256 greyscale ones (fluorescence), draw 100 of them once (seed
123), and read one dot per nucleus as the centroid of its label
(:func:`featcell.read_points` with ``kind="labels"``). As in the VGG protocol: train
``make_counter("density")`` (defaults, channel 0) on N = 32 images drawn at random, score
the count MAE on the other 68, repeat for 5 draws (seeds 0-4).

Measured (a loaded machine; 5 draws; 1-90 nuclei per image, median 20): MAE 2.33 ± 0.23
(draws 2.16, 2.43, 2.17, 2.15, 2.73); before the current head and pixel sample (commit
3741515: 32,000 pixels, trees of depth 4 at learning rate 0.1) 2.48 ± 0.29 (2.86, 2.71,
2.31, 2.48, 2.03).

Run from the project root (single-threaded, about 20 CPU seconds per draw)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python examples/count_dsb2018_dots.py [--draws 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from featcell import make_counter, read_points
from featcell.io import read_image

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "segmentation" / "dsb2018"


def greyscale_256(folder):
    """The 256 x 256 images whose colour channels are equal, sorted by name."""
    names = []
    for path in sorted((folder / "images").glob("*.png")):
        image = read_image(path)
        if image.shape[:2] != (256, 256):
            continue
        if image.ndim == 2 or np.ptp(image[..., :3].astype(float), axis=-1).max() == 0:
            names.append(path.name)
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=32)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"DSB2018 not found at {DATA}")
    if args.draws < 1 or args.n_train < 2:
        parser.error("--draws must be at least 1 and --n-train at least 2")
    names = greyscale_256(DATA)
    names = [names[i] for i in np.random.default_rng(123).permutation(len(names))[:100]]
    if len(names) <= args.n_train:  # at most 100 images are used: some must be left to test
        raise SystemExit(f"DSB2018 at {DATA}: {len(names)} greyscale 256 x 256 images used, "
                         f"need more than --n-train {args.n_train}")
    paths = [DATA / "images" / name for name in names]
    points = [read_points(DATA / "labels" / name, kind="labels") for name in names]
    y = np.array([len(p) for p in points], dtype=float)
    print(f"DSB2018: {len(y)} greyscale 256 x 256 images, {int(y.min())}-{int(y.max())} nuclei "
          f"(median {np.median(y):.0f}); train on {args.n_train}, test on the others")
    maes = []
    for seed in range(args.draws):
        order = np.random.default_rng(seed).permutation(len(y))
        train, test = order[: args.n_train], order[args.n_train :]
        counter = make_counter("density", channels=[0], random_state=seed)
        cpu = time.process_time()
        counter.fit([paths[i] for i in train], [points[i] for i in train])
        fitted = time.process_time() - cpu
        maes.append(np.abs(counter.predict([paths[i] for i in test]) - y[test]).mean())
        print(f"  draw {seed}: MAE {maes[-1]:.2f}, sigma {counter.sigma_:g}, fit {fitted:.0f} CPU s",
              flush=True)
    print(f"density (defaults), N = {args.n_train}: MAE {np.mean(maes):.2f} ± {np.std(maes):.2f} "
          f"over {args.draws} draws")


if __name__ == "__main__":
    main()
