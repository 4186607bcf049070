"""featcell compare --points: counters that learn from dots and from counts on the same folds."""

import numpy as np
import pytest
import tifffile

from featcell.cli import main


@pytest.fixture
def dots(tmp_path):
    """Ten images of Gaussian blobs (3 to 30) and a CSV of their centres (x, y per image)."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    yy, xx = np.mgrid[:64, :64]
    rows = ["image,x,y"]
    for i, count in enumerate(np.linspace(3, 30, 10).astype(int)):
        points = rng.uniform(3, 60, size=(count, 2))
        image = np.full((64, 64), 0.1)
        for r, c in points:
            image += 0.8 * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 1.6**2))
        tifffile.imwrite(tmp_path / "images" / f"im{i}.tif", image.astype(np.float32))
        rows += [f"im{i}.tif,{c:.2f},{r:.2f}" for r, c in points]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_compare_counters_on_the_same_folds(capsys, dots):
    report = dots / "report"
    code = main(["compare", str(dots / "images"), "--points", str(dots / "points.csv"),
                 "--model", "density", "regression", "--sigma", "2", "--cv", "2",
                 "-o", str(report), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "density:" in out and "regression:" in out
    mae = [float(line.split()[1]) for line in out.splitlines() if line.strip().startswith("mae")]
    assert len(mae) == 2 and mae[0] < 3  # the density counter counts 3-30 blobs within 3
    text = (report / "report.md").read_text()
    assert "density" in text and "regression" in text
    assert (report / "figures" / "density_maps.png").is_file()  # out-of-fold maps, dots overlaid


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--points", "{points}", "--model", "lr"], "is a classifier"),
        (["--model", "density", "--target", "Class"], "is a counter"),
        ([], "--target COLUMN is required"),
        (["--points", "{points}", "--sigma", "wide"], "--sigma 'wide'"),
    ],
)
def test_compare_counters_bad_options(capsys, dots, extra, match):
    extra = [e.format(points=dots / "points.csv") for e in extra]
    code = main(["compare", str(dots / "images"), *extra, "-o", str(dots / "report")])
    assert code != 0
    assert match in capsys.readouterr().err
