"""The public API: __all__ is sorted and complete, and the estimators follow scikit-learn's contract."""

import inspect
import pkgutil

import pytest
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

import featcell

ESTIMATORS = [featcell.Morphology, featcell.Intensity, featcell.Texture, featcell.Colocalization,
              featcell.CellFeatures, featcell.CNNEmbedding, featcell.ImageFeatures]


def test_all_is_sorted_and_importable():
    assert featcell.__all__ == sorted(featcell.__all__)
    for name in featcell.__all__:
        assert hasattr(featcell, name), name


def test_every_public_name_is_listed():
    for name in featcell.__all__:
        getattr(featcell, name)  # load everything lazily exported
    public = {n for n, v in vars(featcell).items()
              if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))}
    assert public <= set(featcell.__all__)


def test_import_loads_no_submodule():
    # the command line and every worker pay for what ``import featcell`` loads
    import subprocess
    import sys
    code = ("import sys, featcell; "
            "print(sorted(m for m in sys.modules if m.startswith(('featcell.', 'sklearn', "
            "'skops', 'matplotlib', 'onnxruntime', 'pandas'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_public_name_shadows_a_submodule():
    # ``import featcell.evaluate as m`` must not hand back a function: a public name that is
    # also a module of the package is that module (``featcell.metrics``)
    modules = {m.name for m in pkgutil.iter_modules(featcell.__path__)}
    for name in modules & set(featcell.__all__):
        assert inspect.ismodule(getattr(featcell, name)), name
    assert {"evaluation", "segmentation"} <= modules


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_estimator_contract(Estimator):
    name = Estimator.__name__
    estimator = Estimator()
    check_no_attributes_set_in_init(name, estimator)
    check_parameters_default_constructible(name, estimator)
    check_get_params_invariance(name, estimator)
    check_set_params(name, estimator)
    assert inspect.getdoc(Estimator) and "Examples" in inspect.getdoc(Estimator)


@pytest.mark.parametrize("Estimator", [e for e in ESTIMATORS if "n_jobs" in e().get_params()],
                         ids=lambda e: e.__name__)
def test_n_jobs_is_checked_at_fit(Estimator):
    import numpy as np

    cells = featcell.CellSet.from_crops(np.ones((2, 1, 16, 16), np.float32), channels=["DNA"])
    data = [np.ones((16, 16))] if Estimator is featcell.ImageFeatures else cells
    for bad in (0, "two", 1.5, True):  # "two" gave a TypeError from joblib at transform
        with pytest.raises(ValueError, match="n_jobs="):
            Estimator(n_jobs=bad).fit(data)
