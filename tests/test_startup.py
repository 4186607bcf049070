"""The command line and the workers start without the heavy modules they do not use."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("skops", "matplotlib", "xgboost", "torch", "onnxruntime")


def _loaded_after(code):
    """The heavy modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint('LOADED', *[m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = [x for x in done.stdout.splitlines() if x.startswith("LOADED")][-1]
    return line.split()[1:]


@pytest.mark.parametrize("code", [
    "import featcell",
    "import featcell.cli",
    "from featcell.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "from featcell.cli import main\nmain(['extract', '--help'])",
    "import featcell.batch, featcell.features.cell_features, featcell.tasks, featcell.evaluation",
])
def test_common_paths_do_not_import_heavy_modules(code):
    assert _loaded_after(code) == []


def test_extract_and_its_worker_do_not_import_heavy_modules(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    labels = np.zeros((32, 32), np.uint16)
    labels[4:12, 4:12] = 1
    tifffile.imwrite(tmp_path / "img" / "a.tif", (labels > 0).astype(np.uint8) * 200)
    tifffile.imwrite(tmp_path / "lab" / "a.tif", labels)
    argv = ["extract", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"), "-q",
            "-o", str(tmp_path / "out.parquet")]
    assert _loaded_after(f"from featcell.cli import main\nassert main({argv!r}) == 0") == []
    # a worker: unpickle the fitted extractor and score one image, as joblib does
    code = (
        "import pickle\nfrom featcell.batch import _score_image\n"
        "from featcell.io import read_cells\nfrom featcell import CellFeatures\n"
        f"cells = read_cells({str(tmp_path / 'img')!r}, {str(tmp_path / 'lab')!r})\n"
        "model = pickle.loads(pickle.dumps(CellFeatures().fit(cells)))\n"
        f"record, _ = _score_image(model, {str(tmp_path / 'img' / 'a.tif')!r}, "
        f"{str(tmp_path / 'lab')!r}, {{}}, False)\n"
        "assert record['status'] == 'ok', record"
    )
    assert _loaded_after(code) == []
