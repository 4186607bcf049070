"""Real images and masks shared by the feature benchmarks (../shared/data)."""

from pathlib import Path

import numpy as np

from featcell.io import read_image, read_labels

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _grey_float(image):
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=-1) if image.shape[-1] >= 3 else image[..., 0]
        scale = 255.0
    else:
        scale = float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else 1.0
    return (np.asarray(image, np.float64) / scale).astype(np.float64)


def coelho_images(n=4):
    """First ``n`` Coelho 2009 DNA images and hand-drawn nucleus labels, as (name, float, labels)."""
    root = DATA / "cell_line" / "coelho2009"
    for path in sorted((root / "images").glob("*.png"))[:n]:
        yield path.name, _grey_float(read_image(path)), read_labels(root / "labels" / path.name)


def dsb2018_images(n=6, max_objects=400):
    """``n`` DSB2018 images (every k-th, for variety of modality) with their labels."""
    root = DATA / "segmentation" / "dsb2018"
    files = sorted((root / "images").glob("*.png"))
    step = max(1, len(files) // n)
    for path in files[::step][:n]:
        labels = read_labels(root / "labels" / path.name)
        if labels.max() > max_objects:
            continue
        yield path.name, _grey_float(read_image(path)), labels


def benchmark_images(n_coelho=4, n_dsb=6):
    """Coelho then DSB2018 images; raises a clear error when the data are absent."""
    if not DATA.is_dir():
        raise SystemExit(f"real data not found at {DATA}: these benchmarks need ../shared/data")
    yield from coelho_images(n_coelho)
    yield from dsb2018_images(n_dsb)
