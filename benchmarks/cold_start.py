"""Cold start of featcell's compiled kernels: what numba's compilation and its disk cache cost.

Each row is a fresh Python process that imports featcell, builds a small CellSet
(``CellSet.from_labels`` runs kernels too) and measures it with every transformer that
runs kernels (Intensity with radial distribution, Morphology with Zernike, Texture,
Colocalization), twice:

* ``first-ever compile``: an empty numba cache (``NUMBA_CACHE_DIR`` pointed at a new
  folder), so every kernel is compiled;
* ``fresh process, warm cache``: the same cache folder again, as a later ``featcell``
  command or a joblib worker finds it: the kernels are loaded, not compiled;
* ``warm process``: the second measurement inside the same process.

``numba import`` is the time to import numba, ``other imports`` that of the rest
(featcell, scikit-learn, scipy: paid with or without kernels), ``first call`` and ``second
call`` the two measurements; ``kernel extra`` is what the kernels add to a process:
numba's import and the first call's excess over the second. Run
``python benchmarks/cold_start.py``.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, time
start = time.perf_counter()
import numba
numba_imported = time.perf_counter()
import numpy as np
from featcell import CellSet
from featcell.features.colocalization import Colocalization
from featcell.features.intensity import Intensity
from featcell.features.morphology import Morphology
from featcell.features.texture import Texture
imported = time.perf_counter()
rng = np.random.default_rng(0)
labels = np.zeros((64, 64), np.int32)
labels[5:20, 5:25] = 1
yy, xx = np.mgrid[:64, :64]
labels[(yy - 40) ** 2 + (xx - 40) ** 2 <= 100] = 2
image = rng.random((64, 64, 2))
transformers = [Intensity(), Morphology(), Texture(), Colocalization()]
times = []
for _ in range(2):
    t = time.perf_counter()
    cells = CellSet.from_labels(image, labels, channels=["A", "B"])
    for transformer in transformers:
        transformer.fit_transform(cells)
    times.append(time.perf_counter() - t)
print(json.dumps({"numba import": numba_imported - start, "import": imported - numba_imported,
                  "first call": times[0], "second call": times[1]}))
"""


def _run(cache_dir):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    with tempfile.TemporaryDirectory() as cache_dir:
        rows = {"first-ever compile": _run(cache_dir)}
        rows["fresh process, warm cache"] = _run(cache_dir)
    warm = rows["fresh process, warm cache"]["second call"]
    rows["warm process"] = {
        "numba import": 0.0,
        "import": 0.0,
        "first call": warm,
        "second call": warm,
    }
    header = ("numba import", "other imports", "first call", "second call", "kernel extra")
    print(f"{'':28s}" + "".join(f"{h:>15s}" for h in header))
    for name, row in rows.items():
        extra = row["numba import"] + row["first call"] - row["second call"]
        values = (row["numba import"], row["import"], row["first call"], row["second call"], extra)
        print(f"{name:28s}" + "".join(f"{v:15.3f}" for v in values))
    print("(seconds, one run each; the machine's load shows in every figure)")


if __name__ == "__main__":
    main()
