"""Classical nucleus segmentation on DSB2018 (stage 1 train, fixed labels), per modality.

Every image is segmented by :func:`featcell.segmentation.segment` with its defaults (Otsu
threshold, hole filling, objects under 16 pixels dropped, distance-transform watershed
with seeds half a typical nucleus radius apart, dark-on-bright images inverted
automatically) and scored against the hand-made instance labels with F1 at IoU > 0.5, the
DSB2018 average precision over IoU 0.5:0.95 and the aggregated Jaccard index (AJI).
Nothing is fitted, so there is nothing to cross-validate; the same parameters serve all
modalities. Two variants are shown beside the defaults, for every modality (no choice
is made on these scores): the watershed switched off (connected components of the
threshold), and ``method="multiotsu"``, which keeps the brightest of three Otsu classes
(after inversion, the darkest): in bright-field images background, cytoplasm and nuclei
are three populations and plain Otsu separates cells from background, not nuclei.

The imaging modality is not given, so it is inferred from the pixels:

- *colour (H&E and other stains)*: the RGB channels differ (mean over pixels of the
  per-pixel standard deviation across channels > 0.02 of full scale);
- *grey fluorescence*: grey, and the background is dark (the median lies below the Otsu
  threshold, i.e. most of the field is dim);
- *grey bright-field*: grey, and the background is bright.

Run from the project root (about 6 minutes on 2 cores)::

    python examples/segment_dsb2018.py [--n-jobs 2] [--limit N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.filters import threshold_otsu
from skimage.io import imread
from sklearn.utils.parallel import Parallel, delayed

from featcell.metrics import segmentation_summary
from featcell.segmentation import segment

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "segmentation" / "dsb2018"


VARIANTS = {
    "otsu+watershed (defaults)": {},
    "otsu, no split": {"split_touching": False},
    "multiotsu+watershed": {"method": "multiotsu"},
}


def modality(image):
    """'colour', 'fluorescence' or 'brightfield', from an (M, N[, C]) uint8 image."""
    rgb = image[..., :3].astype(np.float64) / 255.0 if image.ndim == 3 else image / 255.0
    if rgb.ndim == 3 and rgb.std(axis=-1).mean() > 0.02:
        return "colour"
    grey = rgb.mean(axis=-1) if rgb.ndim == 3 else rgb
    if np.ptp(grey) == 0 or np.median(grey) < threshold_otsu(grey):
        return "fluorescence"
    return "brightfield"


def score(name):
    image = imread(DATA / "images" / name)
    truth = imread(DATA / "labels" / name).astype(np.int64)
    rows = []
    for variant, params in VARIANTS.items():
        summary = segmentation_summary(truth, segment(image, **params))
        rows.append(
            {
                "image": name,
                "modality": modality(image),
                "variant": variant,
                "f1@0.5": summary["f1"],
                "AP(0.5:0.95)": summary["dsb_ap"],
                "AJI": summary["aji"],
                "n_true": summary["n_true"],
                "n_pred": summary["n_pred"],
            }
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"DSB2018 not found at {DATA}")
    names = sorted(p.name for p in (DATA / "images").glob("*.png"))[: args.limit]
    rows = Parallel(n_jobs=args.n_jobs)(delayed(score)(name) for name in names)
    table = pd.DataFrame([row for image_rows in rows for row in image_rows])

    metrics = ["f1@0.5", "AP(0.5:0.95)", "AJI"]
    grouped = table.groupby(["variant", "modality"])
    summary = grouped[metrics].mean().round(3)
    summary.insert(0, "images", grouped.size())
    overall = table.groupby("variant")[metrics].mean().round(3)
    overall.insert(0, "images", table.groupby("variant").size())
    overall.index = pd.MultiIndex.from_tuples([(v, "all") for v in overall.index])
    print(f"DSB2018 stage-1 train (fixed labels), {len(names)} images; per-image means")
    print(pd.concat([summary, overall]).sort_index().to_string())


if __name__ == "__main__":
    main()
