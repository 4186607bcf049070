"""HTML and Markdown reports of evaluations and comparisons."""

import base64
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from featcell import CellSet
from featcell.evaluation import compare, evaluate
from featcell.importance import family_importance
from featcell.report import write_report

PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Collects what a reader of the report sees: images, tables, headings, text."""

    def __init__(self):
        super().__init__()
        self.images, self.tables, self.headings, self.captions = [], 0, [], []
        self._tag = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self.tables += 1
        self._tag = tag

    def handle_endtag(self, tag):
        self._tag = None

    def handle_data(self, data):
        if self._tag in ("h1", "h2"):
            self.headings.append(data.strip())
        if self._tag == "figcaption":
            self.captions.append(data.strip())
        self.text.append(data)


def _parse(path):
    page = _Page()
    page.feed(Path(path).read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.fixture(scope="module")
def viability():
    """Cells of 12 images, big live cells and small dead ones, with a feature table."""
    rng = np.random.default_rng(0)
    n, size = 96, 28
    image = np.repeat(np.arange(12), 8).astype(str)
    y = np.where(rng.random(n) < 0.35, "dead", "live")
    crops = (rng.random((n, 1, size, size)) * 0.2).astype(np.float32)
    yy, xx = np.ogrid[:size, :size]
    for i in range(n):
        radius = 8 if y[i] == "live" else 5
        crops[i, 0][(yy - 14) ** 2 + (xx - 14) ** 2 < radius**2] += 0.7
    cells = CellSet.from_crops(crops, channels=["BF"], image_id=image)
    area = (crops[:, 0] > 0.5).sum(axis=(1, 2)).astype(float)
    X = pd.DataFrame({
        "AreaShape_Area": area + rng.normal(scale=8, size=n),
        "Intensity_MeanIntensity_BF": crops.mean(axis=(1, 2, 3)) + rng.normal(scale=0.02, size=n),
        "Texture_Contrast_BF_3_00": rng.normal(size=n),
        "Metadata_ImageID": image,
    })
    return cells, X, y, image


@pytest.fixture(scope="module")
def comparison(viability):
    _cells, X, y, image = viability
    features = X.drop(columns="Metadata_ImageID")
    candidates = {
        "lr": make_pipeline(StandardScaler(), LogisticRegression()),
        "gnb": GaussianNB(),
    }
    result = compare(candidates, features, y, image, cv=3, n_boot=200)
    importance = {
        name: family_importance(est, features, y, image, cv=3, n_repeats=2)
        for name, est in candidates.items()
    }
    return result, importance


def test_html_report_is_self_contained_with_figures_and_tables(tmp_path, viability,
                                                                comparison):
    cells, X, _y, _image = viability
    result, importance = comparison
    out = write_report(
        result, tmp_path / "report", title="Viability <test> & co",
        dataset={"source": "synthetic", "stain": "none"},
        preprocessing=["cells from crops", "three features"],
        cells=cells, features=X, importance=importance, notes="A note.",
    )
    assert set(out) == {"html", "md", "figures"}
    page = _parse(out["html"])
    assert page.images, "no figures in the HTML report"
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    # confusion x2, ROC, importance, PCA map, example cells
    assert len(page.images) == 6
    assert page.tables >= 6
    for heading in ("Summary", "Data", "Preprocessing and features", "Validation protocol",
                    "Results", "Figures", "Which features does the model use?", "The cells",
                    "Software"):
        assert heading in page.headings
    assert "Viability <test> & co" in page.headings  # escaped in the file, intact when read
    text = "".join(page.text)
    assert "StratifiedGroupKFold" in text
    assert "95%" in text and "[" in text  # intervals
    assert "dead" in text and "live" in text
    assert "synthetic" in text and "cells from crops" in text and "A note." in text
    assert "src=\"http" not in out["html"].read_text()  # nothing fetched from a server
    for path in out["figures"]:
        assert path.is_file() and path.read_bytes()[:8] == PNG
    names = {p.name for p in out["figures"]}
    assert {"lr_confusion.png", "gnb_confusion.png", "roc.png", "family_importance.png",
            "embedding_pca.png", "example_cells.png"} <= names


def test_markdown_report_links_the_figure_files(tmp_path, comparison, viability):
    cells, X, _y, _image = viability
    result, importance = comparison
    out = write_report(result, tmp_path, title="Viability", cells=cells, features=X,
                       importance=importance["lr"], formats=("md",))
    assert "html" not in out
    md = out["md"].read_text()
    assert md.startswith("# Viability")
    links = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert len(links) == len(out["figures"]) == 6
    for link in links:
        assert (tmp_path / link).is_file()
    assert "| candidate |" in md and "balanced_accuracy" in md
    assert "| family |" in md and "morphology" in md


def test_evaluation_result_and_tsne_map(tmp_path, viability):
    _cells, X, y, image = viability
    features = X.drop(columns="Metadata_ImageID")
    result = evaluate(make_pipeline(StandardScaler(), LogisticRegression()), features, y,
                      image, cv=3, n_boot=200)
    out = write_report(result, tmp_path, title="One model", features=features,
                       embedding="tsne", max_points=60, labels=y)
    names = {p.name for p in out["figures"]}
    assert names == {"model_confusion.png", "roc.png", "embedding_tsne.png"}
    text = "".join(_parse(out["html"]).text)
    assert "The model" in text and "t-SNE" in text


def test_regression_report_has_predicted_vs_true(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    counts = 50 + 10 * X[:, 0] + rng.normal(size=40)
    result = compare({"ridge": Ridge(), "mean": DummyRegressor()}, X, counts,
                     groups=np.arange(40), cv=4, n_boot=200)
    out = write_report(result, tmp_path, title="Counting", features=X)
    names = {p.name for p in out["figures"]}
    assert {"ridge_pred_vs_true.png", "mean_pred_vs_true.png", "embedding_pca.png"} <= names
    page = _parse(out["html"])
    text = "".join(page.text)
    assert "mae" in text and "Highest" not in text.split("Summary")[0]
    assert "ridge" in text.split("Data")[0]  # the lower MAE is the headline


def test_report_argument_errors(tmp_path, comparison, viability):
    cells, X, _y, _image = viability
    result, _ = comparison
    with pytest.raises(TypeError, match="EvaluationResult or ComparisonResult"):
        write_report({"a": 1}, tmp_path, title="x")
    with pytest.raises(ValueError, match="formats"):
        write_report(result, tmp_path, title="x", formats=("pdf",))
    with pytest.raises(ValueError, match="title"):
        write_report(result, tmp_path, title="")
    with pytest.raises(ValueError, match="embedding"):
        write_report(result, tmp_path, title="x", embedding="umap")
    with pytest.raises(ValueError, match="differ in length"):
        write_report(result, tmp_path, title="x", cells=cells, features=X.iloc[:10])
    with pytest.raises(ValueError, match="labels has 3 values"):
        write_report(result, tmp_path, title="x", cells=cells, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="hold only"):
        write_report(result, tmp_path, title="x", features=X.iloc[:10])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (optional render check)")
def test_report_renders_in_a_headless_browser(tmp_path, comparison, viability):
    cells, X, _y, _image = viability
    result, importance = comparison
    out = write_report(result, tmp_path, title="Render check", cells=cells, features=X,
                       importance=importance)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--hide-scrollbars", "--window-size=1200,3000",
         f"--screenshot={shot}", out["html"].resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    data = shot.read_bytes()
    assert data[:8] == PNG
    from skimage.io import imread

    pixels = imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    # not a blank page: text and figures give many distinct grey levels
    assert len(np.unique(pixels[..., :3].mean(axis=-1).astype(int))) > 50


def test_summary_words_follow_the_metric_and_an_undefined_interval(tmp_path):
    from sklearn.base import BaseEstimator, ClassifierMixin

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    counts = 50 + 10 * X[:, 0] + rng.normal(size=60)
    result = compare({"ridge": Ridge(), "mean": DummyRegressor()}, X, counts,
                     groups=np.repeat(np.arange(20), 3), cv=4, n_boot=200)
    md = write_report(result, tmp_path / "a", title="t", formats=("md",))["md"].read_text()
    assert "Lowest mae: **ridge**" in md  # was "Highest mae"
    biased = DummyRegressor(strategy="constant", constant=80)  # far above every count
    result = compare({"ridge": Ridge(), "biased": biased}, X, counts,
                     groups=np.repeat(np.arange(20), 3), cv=4, n_boot=200,
                     primary="mean_signed_error")
    md = write_report(result, tmp_path / "b", title="t", formats=("md",))["md"].read_text()
    assert "Closest to 0 mean signed error: **ridge**" in md  # was "Highest ...: **biased**"

    class NoScores(ClassifierMixin, BaseEstimator):  # no predict_proba: no roc_auc
        def fit(self, X, y):
            self.lr_ = LogisticRegression().fit(X, y)
            self.classes_ = self.lr_.classes_
            return self

        def predict(self, X):
            return self.lr_.predict(X)

    image = np.repeat(np.arange(20), 10)
    y = np.where(image % 2 == 0, "a", "b")
    X = rng.normal(size=(200, 2)) + (y == "a")[:, None] * 3
    with pytest.warns(UserWarning, match="needs predict_proba"):
        result = compare({"lr": LogisticRegression(), "noscores": NoScores()}, X, y,
                         groups=image, cv=4, n_boot=200, primary="roc_auc")
    md = write_report(result, tmp_path / "b", title="t", formats=("md",))["md"].read_text()
    line = next(l for l in md.splitlines() if l.startswith("lr − noscores"))
    assert "no interval" in line and "excludes 0" not in line


def test_an_ungrouped_report_does_not_claim_a_group_bootstrap(tmp_path):
    """The captions said 'group-bootstrap' for folds that were not grouped."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = 50 + 10 * X[:, 0] + rng.normal(size=40)
    models = {"ridge": Ridge(), "mean": DummyRegressor()}
    for groups, words in (("none", "bootstrap (over samples)"),
                          (np.repeat(np.arange(10), 4), "group-bootstrap")):
        result = compare(models, X, y, groups=groups, cv=4, n_boot=50)
        text = Path(write_report(result, tmp_path / str(len(words)), title="t")["md"]).read_text()
        assert f"95% {words} confidence interval" in text and f"paired {words} interval" in text
        if words != "group-bootstrap":
            assert "group-bootstrap" not in text


def _arrays(viability):
    """The viability fixture's features as an array, labels and images."""
    _, table, y, image = viability
    return table.drop(columns="Metadata_ImageID").to_numpy(), y, image


def test_candidates_whose_names_share_a_file_name_keep_their_own_figures(tmp_path, viability):
    X, y, image = _arrays(viability)
    res = compare({"nb 1": GaussianNB(), "nb_1": GaussianNB(var_smoothing=0.5)}, X, y,
                  groups=image, cv=3, n_boot=20)
    out = write_report(res, tmp_path, title="t", formats=("md",))
    confusion = sorted(p.name for p in out["figures"] if p.name.endswith("_confusion.png"))
    assert confusion == ["nb_1_2_confusion.png", "nb_1_confusion.png"]
    md = out["md"].read_text()
    assert "Confusion matrix of nb 1:" in md and "Confusion matrix of nb\\_1:" not in md
    assert "Confusion matrix of nb_1:" in md


def test_report_words_follow_the_protocol(tmp_path, viability):
    X, y, image = _arrays(viability)
    # ungrouped: no claim that the test images were unseen
    res = evaluate(LogisticRegression(), X, y, groups="none", cv=3, n_boot=20)
    md = write_report(res, tmp_path / "a", title="t", formats=("md",))["md"].read_text()
    assert "not used to train the model (out-of-fold)" in md
    assert "cells of images that were not used" not in md
    # predefined splits testing 24 of 64 samples (8 per image) say so, and are not "list"
    splits = [(np.arange(24, 64), np.arange(0, 8)), (np.arange(24, 64), np.arange(8, 24))]
    res = evaluate(LogisticRegression(), X[:64], y[:64], groups=image[:64], cv=splits,
                   n_boot=20)
    md = write_report(res, tmp_path / "b", title="t", formats=("md",))["md"].read_text()
    assert "2 predefined folds (cross-validation over 64 samples, 24 of them tested)" in md
    assert "list cross-validation" not in md and "samples tested (in a test fold) | 24" in md
    # a regression's map is coloured by the true value, and its caption ends
    value = X[:, 0] + 0.1 * np.arange(len(X)) % 3
    res = evaluate(Ridge(), X, value, groups=image, cv=3, n_boot=20)
    md = write_report(res, tmp_path / "c", title="t", features=X, formats=("md",))["md"].read_text()
    assert "standardised features, coloured by true value.*" in md


def test_many_classes_get_distinct_colours():
    from featcell._plots import class_colours

    for n in (3, 15, 25, 60):
        colours = class_colours([f"c{i}" for i in range(n)])
        assert len(set(colours.values())) == n


def test_markdown_escapes_names_and_titles(tmp_path, viability):
    X, y, image = _arrays(viability)
    y = np.where(y == "live", "live *A*", "<dead>")
    res = evaluate(LogisticRegression(), X, y, groups=image, cv=3, n_boot=20)
    md = write_report(res, tmp_path, title="Viability <script>x</script> & more",
                      formats=("md",))["md"].read_text()
    for raw in ("<dead>", "<script>", " & "):
        assert raw not in md
    assert "\\<dead\\>" in md and "\\<script\\>" in md
