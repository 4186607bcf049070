"""Speed of featcell's per-cell features against the tools biologists use, in one run.

On the same real images and masks (Coelho 2009 nuclei, DSB2018), one channel:

* featcell with the families cp_measure computes, and with all its families (adding
  CellProfiler's Gabor, Gabor energy and LBP): single core, and with ``n_jobs=2`` the
  images measured two at a time by joblib workers, as ``featcell.batch`` runs them (these
  images hold 10 to 90 cells, fewer than the transformers' own ``n_jobs`` splits);
* cp_measure ``featurize`` (CellProfiler's measurements) with the same families;
* scikit-image ``regionprops_table`` (shape + intensity properties it has);
* nyxus (all 2-D features) where installed;
* per family, the peers listed in ``benchmarks/_speed_<family>.py`` (e.g. cp_measure's
  numba Haralick, mahotas) and nyxus on one thread, first computing the family's own
  features as far as nyxus has them, then its feature group with its defaults (each
  module's docstring says what every row computes): ``*ALL_MORPHOLOGY*``; the 19
  intensity, edge and mass features, then ``*ALL_INTENSITY*``; ``FRAC_AT_D``/
  ``MEAN_FRAC``/``RADIAL_CV`` (radial distribution); CellProfiler's 13 Haralick features
  at offset 3 with nyxus's 64 grey levels, then with CellProfiler's 256, then
  ``*ALL_GLCM*``; ``GABOR`` with the Gabor energy's filter bank, then with nyxus's
  default one (both Gabor families). Where CellProfiler's own setting would make nyxus
  slower (256 grey levels), the first row keeps nyxus's faster one, so the ratio to it
  is not inflated. nyxus 0.11 has no counterpart for granularity, local binary patterns and colocalization (Costes
  included). nyxus reads the label image itself, so featcell's row to compare with it
  is the one including ``CellSet.from_labels``; "x nyxus" is the ratio to the family's
  first nyxus row.

nyxus casts intensities to ``uint32``, so it gets the images as 16-bit levels
(``_speed_intensity.nyxus_input``, outside the timing): given the float images in
[0, 1] the other tools get, it would measure blank images (earlier versions of this
benchmark did; the per-family ``(before)`` rows repeat that call). ``--no-nyxus`` leaves
out every nyxus row, the per-family ones included.

Reported as objects/second and the ratio to cp_measure and to nyxus; each tool's time per
image (or, for the ``n_jobs=2`` rows, per set of images) is the median of ``--repeats``
interleaved rounds (per family: the best of 3 runs). The featcell measured is the one of
this checkout. Run::

    python benchmarks/feature_speed.py [--n-coelho 2 --n-dsb 4] [--skip-families]
        [--repeats 3] [--keep-freed-memory] [--no-nyxus]
"""

import argparse
import importlib
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _data import benchmark_images
from _speed_intensity import nyxus_input
from sklearn.base import clone

from featcell import CellFeatures, CellSet, Intensity, Morphology, Texture

FAMILIES = ["morphology", "intensity", "texture", "colocalization"]


# what cp_measure's featurize computes for one channel: size/shape, Zernike, Feret, intensity,
# radial distribution, Haralick and granularity (featcell's CellProfiler Gabor, Gabor energy
# and LBP have no cp_measure counterpart)
_CP_EQUIVALENT = [Morphology(), Intensity(), Texture(features=["haralick", "granularity"])]


def _featcell(image, labels, n_jobs, same_as_cp=False):
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    if same_as_cp:
        return np.hstack([clone(t).set_params(n_jobs=n_jobs).fit_transform(cells)
                          for t in _CP_EQUIVALENT])
    return CellFeatures(n_jobs=n_jobs).fit_transform(cells)


def _cp_measure(image, labels):
    from cp_measure.featurizer import featurize, make_featurizer_config

    config = make_featurizer_config(["DNA"], objects=["nuclei"], radial_zernikes=False)
    return featurize(image[None, None], labels[None, None].astype(np.int32), config)


def _regionprops(image, labels):
    from skimage.measure import regionprops_table

    props = ("area", "perimeter", "area_convex", "solidity", "extent", "eccentricity",
             "axis_major_length", "axis_minor_length", "orientation", "euler_number",
             "feret_diameter_max", "moments_central", "moments_normalized", "moments_hu",
             "inertia_tensor", "intensity_mean", "intensity_max", "intensity_min",
             "intensity_std")
    return regionprops_table(labels, image, properties=props)


def _nyxus(levels, labels):
    from nyxus import Nyxus

    return Nyxus(["*ALL*"], n_feature_calc_threads=1).featurize(levels, labels)


def _time(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _featcell_images(images, n_jobs, same_as_cp=False):
    """featcell over all the images, ``n_jobs`` images at a time (each one single-core)."""
    Parallel(n_jobs=n_jobs)(
        delayed(_featcell)(image, labels, 1, same_as_cp) for _, image, labels in images
    )


def overall(images, with_nyxus=True, repeats=1):
    tools = {
        "featcell (cp_measure's families, n_jobs=1)": lambda im, lab: _featcell(im, lab, 1, True),
        "featcell (all families incl. Gabor, LBP, n_jobs=1)": lambda im, lab: _featcell(im, lab, 1),
        "cp_measure featurize (same families)": _cp_measure,
        "scikit-image regionprops_table (shape+intensity only)": _regionprops,
    }
    if with_nyxus:  # on 16-bit levels (a float image in [0, 1] is all zeros to nyxus)
        levels = {id(image): nyxus_input(image, labels) for _, image, labels in images}
        tools["nyxus *ALL* (1 thread)"] = lambda image, labels: _nyxus(*levels[id(image)])
    batches = {
        "featcell (cp_measure's families, n_jobs=2: 2 images at a time)": True,
        "featcell (all families incl. Gabor, LBP, n_jobs=2: 2 images at a time)": False,
    }
    _featcell_images(images[:2], 2)  # start the workers outside the timing
    # rounds interleave the tools, so a machine whose speed drifts hits them alike;
    # each tool's time per image (per set, for the batches) is the median over rounds
    times = {}
    for _ in range(repeats):
        for name, image, labels in images:
            for tool, fn in tools.items():
                try:
                    times.setdefault((tool, name), []).append(_time(fn, image, labels))
                except ImportError:
                    continue
        for tool, same_as_cp in batches.items():
            times.setdefault((tool, None), []).append(
                _time(_featcell_images, images, 2, same_as_cp)
            )
    objects = {name: len(np.unique(labels)) - 1 for name, _, labels in images}
    objects[None] = sum(objects.values())
    return [
        {"tool": tool, "family": "all", "objects": objects[name], "seconds": np.median(t)}
        for (tool, name), t in times.items()
    ]


def report(rows, references=("cp_measure", "nyxus")):
    table = pd.DataFrame(rows).groupby(["family", "tool"], sort=False)[["objects", "seconds"]].sum()
    families = list(dict.fromkeys(table.index.get_level_values("family")))
    table = table.iloc[np.argsort([families.index(f) for f, _ in table.index], kind="stable")]
    table["objects/s"] = table["objects"] / table["seconds"]
    for reference in references:  # the family's first tool of that name
        ratios = []
        for (family, tool), row in table.iterrows():
            ref = [k for k in table.loc[family].index if k.startswith(reference)]
            base = table.loc[(family, ref[0]), "objects/s"] if ref else np.nan
            ratios.append(row["objects/s"] / base)
        table[f"x {reference}"] = ratios
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-coelho", type=int, default=2)
    parser.add_argument("--n-dsb", type=int, default=4)
    parser.add_argument("--skip-families", action="store_true")
    parser.add_argument("--no-nyxus", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="tune glibc's allocator for this whole process (all tools), as the featcell "
        "command and featcell's workers do",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.keep_freed_memory:
        from featcell._memory import keep_freed_memory

        print(f"# glibc keeps freed memory (all tools): {keep_freed_memory()}")
    images = list(benchmark_images(args.n_coelho, args.n_dsb))
    _featcell(*images[0][1:], 1)  # warm caches/imports outside the timing
    rows = overall(images, with_nyxus=not args.no_nyxus, repeats=args.repeats)
    if not args.skip_families:
        for family in FAMILIES:
            module = importlib.import_module(f"_speed_{family}")
            for _, image, labels in images:
                rows.extend(module.run(image, labels, with_nyxus=not args.no_nyxus))
    n_objects = sum(len(np.unique(lab)) - 1 for _, _, lab in images)
    print(f"# {len(images)} real images, {n_objects} objects, one channel")
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print(report(rows).to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
