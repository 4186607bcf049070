"""Speed and memory of the density counter on VGG cells (256 x 256 images), on one core.

Measures, single-threaded (BLAS, OpenMP, XGBoost and onnxruntime held to one thread):

- fitting ``make_counter("density")`` on 32 images, with its defaults (sigma by
  cross-validation, calibration out-of-fold, one auto-context stage), with sigma set and
  no calibration, and without auto-context (``auto_context=0``, the single-stage counter);
- predicting one image: the filter bank alone, the CNN maps alone (both on the stride-2
  grid the counter predicts on), and the whole count;
- the peak memory that numpy allocates while fitting on 16, 32 and 64 images with the
  defaults, which must not grow with the number of images (the head sees a fixed pixel
  sample, the out-of-fold sums a bounded sub-grid);
- with ``--cnn-density`` (needs torch to train), predicting one image with the trained
  density network ``make_counter("cnn_density")``: its defaults (three networks, eight
  views) against one network with the four flips (the previous defaults). The networks
  are trained for one short epoch only: the time of a prediction does not depend on
  the weights.

Both wall-clock and process CPU seconds are printed: on a shared, loaded machine the CPU
time is the better estimate of what one idle core takes.

Run from the project root::

    python benchmarks/counting_speed.py [--cnn-density]
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from featcell import make_counter, read_points  # noqa: E402
from featcell.features.image import CNNPixelFeatures  # noqa: E402
from featcell.io import read_image  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "counting" / "vgg_cells"


def timed(function, repeat=1):
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        out = function()
    return out, (time.perf_counter() - wall) / repeat, (time.process_time() - cpu) / repeat


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cnn-density", action="store_true",
                        help="also time the trained density network's prediction")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"VGG cells not found at {DATA}")
    table = pd.read_csv(DATA / "counts.csv")
    paths = [DATA / "images" / name for name in table["image"]]
    points = read_points(DATA / "dots", images=paths)
    images = [read_image(p) for p in paths]
    print(f"{'what':58s} {'wall s':>8s} {'cpu s':>8s}")

    def row(label, wall, cpu):
        print(f"{label:58s} {wall:8.3f} {cpu:8.3f}", flush=True)

    counters = {}
    for label, params in [
        ("fit, 32 images, defaults (sigma by CV, calibrated)", {}),
        ("fit, 32 images, sigma=3 (no CV, no calibration)", {"sigma": 3.0, "calibrate": False}),
        ("fit, 32 images, one stage (auto_context=0)", {"auto_context": 0}),
    ]:
        counter = make_counter("density", channels=[2], n_jobs=1, **params)
        counters[label] = counter
        _, wall, cpu = timed(lambda c=counter: c.fit(images[:32], points[:32]))
        row(label, wall, cpu)

    image = images[40]
    default = counters["fit, 32 images, defaults (sigma by CV, calibrated)"]
    bank = default.pixel_features_[0]
    _, wall, cpu = timed(lambda: bank.maps(image, 2), repeat=10)
    row("predict: filter bank maps of one image (stride-2 grid)", wall, cpu)
    cnn = CNNPixelFeatures(channels=[2], n_threads=1).fit()
    cnn.maps(image, 2)  # session start-up
    _, wall, cpu = timed(lambda: cnn.maps(image, 2), repeat=10)
    row("predict: CNN maps of one image (stride-2 grid)", wall, cpu)
    for label, counter in counters.items():
        _, wall, cpu = timed(lambda c=counter: c.predict([image]), repeat=10)
        row(f"predict one image ({label.split(', ', 2)[-1]})", wall, cpu)
    if args.cnn_density:
        blue = [im[..., 2] for im in images[:9]]
        for label, params in [
            ("cnn_density defaults (3 networks x 8 views)", {}),
            ("cnn_density, 1 network x 4 flips", {"n_members": 1, "test_time_flips": True}),
        ]:
            counter = make_counter("cnn_density", max_epochs=1, patches_per_epoch=32,
                                   n_threads=1, **params).fit(blue, points[:9])
            counter.predict([image[..., 2]])  # session start-up
            _, wall, cpu = timed(lambda c=counter: c.predict([image[..., 2]]), repeat=5)
            row(f"predict one image ({label})", wall, cpu)

    print()
    print("peak memory allocated by numpy while fitting (defaults):")
    for n in (16, 32, 64):
        counter = make_counter("density", channels=[2], n_jobs=1)
        tracemalloc.start()
        counter.fit(paths[:n], points[:n])  # paths: images are read one at a time
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        sample = counter.n_train_pixels_ * len(counter.feature_names_) * 4
        print(f"  {n:3d} images: peak {peak / 2**20:6.1f} MiB, pixel sample "
              f"{counter.n_train_pixels_} x {len(counter.feature_names_)} = "
              f"{sample / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
