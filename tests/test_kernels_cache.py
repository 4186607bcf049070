"""The compiled kernels' disk cache: a read-only install falls back to a user cache folder."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np

import featcell

# Measures a tiny CellSet with the order-statistics kernel. As root, chmod cannot stop
# writes, so the child makes numba's in-tree cache folder refuse them, as a read-only
# folder does for anyone else (numba tries a temporary file there to decide).
_CHILD = r"""
import os, sys
import numpy as np
if os.geteuid() == 0:
    from numba.core import caching
    package = os.path.abspath("featcell")
    ensure = caching.InTreeCacheLocator.ensure_cache_path
    def read_only(self):
        if self.get_cache_path().startswith(package):
            raise PermissionError(13, "Permission denied", self.get_cache_path())
        return ensure(self)
    caching.InTreeCacheLocator.ensure_cache_path = read_only
import featcell
assert featcell.__file__.startswith(os.getcwd()), featcell.__file__
from featcell import CellSet
from featcell.features.intensity import Intensity
labels = np.zeros((12, 12), np.int32)
labels[2:8, 3:9] = 1
image = np.arange(144, dtype=float).reshape(12, 12) / 144
cells = CellSet.from_labels(image, labels, channels=["DNA"])
row = Intensity(features="intensity", quantile_method="linear").fit_transform(cells)[0]
print(float(row[6]))  # the median
"""


def _run(cwd, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "XDG_"))}
    env["HOME"] = str(home)
    env["NUMBA_DEBUG_CACHE"] = "1"
    return subprocess.run(
        [sys.executable, "-c", _CHILD],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_read_only_package_caches_kernels_in_the_user_cache(tmp_path):
    package = tmp_path / "install" / "featcell"
    shutil.copytree(
        Path(featcell.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    home = tmp_path / "home"
    home.mkdir()
    paths = [package, *package.rglob("*")]
    try:
        for path in paths:  # read-only, as in a system-wide install
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        first = _run(package.parent, home)
        assert first.returncode == 0, first.stderr
        second = _run(package.parent, home)  # a fresh process: loads, does not compile
        assert second.returncode == 0, second.stderr
    finally:
        for path in paths:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    expected = np.median(np.arange(144).reshape(12, 12)[2:8, 3:9] / 144)
    for run in (first, second):
        assert abs(float(run.stdout.split()[-1]) - expected) < 1e-6
    cached = list((home / ".cache" / "numba").rglob("order_stats.quartiles_and_mad*.nbi"))
    assert cached, "no kernel in the user cache folder"
    assert not list(package.rglob("*.nbi")), "a kernel was cached inside the read-only package"
    assert "data loaded from" in second.stdout and str(home) in second.stdout
