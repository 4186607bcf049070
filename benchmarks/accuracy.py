"""Accuracy of featcell's per-cell classifiers on the real data sets, in one table.

Runs the ``run()`` of the three classification examples and prints one combined table
(task, candidate, metric, value, 95 % CI):

- ``examples/classify_cell_cycle_jurkat.py``: 7 cell-cycle phases of Jurkat cells
  (stratified CV, cells independent), label-free and all channels;
- ``examples/classify_live_dead.py``: live vs dead, LDC bright-field (CV grouped by image,
  250 of 1,250 images);
- ``examples/classify_cell_line_coelho2009.py``: U2OS vs NIH3T3 nuclei (CV grouped by
  image), per cell and per image.

Each example states its own data, protocol and subsampling when it runs. The counting and
segmentation examples (``count_vgg_cells.py``, ``count_bbbc005.py``,
``segment_dsb2018.py``) take 2-6 minutes each and print their own tables without
returning them, so they are not run here unless ``--run-existing`` is given (then their
output is shown as it is); the commands are printed either way.

Run from the repository root (about 8-12 minutes on 2 cores; ``--quick`` subsamples every
task and uses fewer folds, a few minutes)::

    python benchmarks/accuracy.py [--quick] [--only jurkat live_dead coelho] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "jurkat": "classify_cell_cycle_jurkat.py",
    "live_dead": "classify_live_dead.py",
    "coelho": "classify_cell_line_coelho2009.py",
}
EXISTING = ["count_vgg_cells.py", "count_bbbc005.py", "segment_dsb2018.py"]


def load_example(filename):
    """Import an example script as a module (examples/ is not a package)."""
    if str(ROOT / "examples") not in sys.path:  # the examples share examples/_precomputed.py
        sys.path.insert(0, str(ROOT / "examples"))
    path = ROOT / "examples" / filename
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="subsampled, fewer folds")
    parser.add_argument("--only", nargs="+", choices=list(EXAMPLES), default=list(EXAMPLES))
    parser.add_argument("--csv", default=None, help="also write the combined table here")
    parser.add_argument("--run-existing", action="store_true",
                        help="also run the counting/segmentation examples (slow)")
    args = parser.parse_args(argv)

    tables, failures, timings = [], [], {}
    for key in args.only:
        print(f"\n=== {EXAMPLES[key]} {'(--quick)' if args.quick else ''} ===", flush=True)
        start = time.perf_counter()
        try:
            tables.append(load_example(EXAMPLES[key]).run(quick=args.quick))
        except (Exception, SystemExit) as error:  # noqa: BLE001 - one failure must not stop the rest
            failures.append(f"{EXAMPLES[key]}: {type(error).__name__}: {error}")
        timings[key] = time.perf_counter() - start

    if args.run_existing:
        for name in EXISTING:
            print(f"\n=== {name} (its own output) ===", flush=True)
            subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=ROOT, check=False)

    print("\n" + "=" * 100)
    print("Combined accuracy table (value = pooled out-of-fold estimate; 95% bootstrap CI; "
          "see each example's header above for data, protocol and subsampling)")
    if tables:
        table = pd.concat(tables, ignore_index=True)
        shown = table[~table["metric"].str.startswith("recall_")]  # per-class recall above
        with pd.option_context("display.width", 200, "display.max_rows", 500,
                               "display.max_colwidth", 60):
            print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if args.csv:
            table.to_csv(args.csv, index=False)
            print(f"written {args.csv} (with per-class recall rows)")
    print("\nruntimes: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    for failure in failures:
        print(f"FAILED {failure}")
    if not args.run_existing:
        print("\nCounting/segmentation results (not run here; 2-6 minutes each):")
        for name in EXISTING:
            print(f"    python examples/{name}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
