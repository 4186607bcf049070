"""Speed of featcell ``Colocalization`` against cp_measure, on one image and mask.

``run(image, labels)`` times one channel pair (a single channel is paired with
the derived partner of ``_fidelity_colocalization.partner_channel``):

* family ``colocalization``: featcell ``Colocalization`` without Costes vs
  cp_measure's Pearson, overlap, Manders and RWC functions;
* family ``costes``: featcell ``Colocalization("costes")`` vs cp_measure
  ``get_correlation_costes`` ("Faster" mode, 8-bit grid).

featcell's ``transform`` gets a CellSet it has not seen at each run. nyxus
has no colocalization features.

Run ``python benchmarks/_speed_colocalization.py`` for a table on HT29 (three
real channels) and a few one-channel images.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
from skimage.segmentation import relabel_sequential

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fidelity_colocalization import _channels, ht29
from _speed_intensity import best_time, report, unseen

from featcell import CellSet
from featcell.features.colocalization import Colocalization


def run(image, labels, repeat=3, with_nyxus=True):
    """Time featcell and cp_measure colocalization of the first channel pair.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray of float
        Intensities in [0, 1].
    labels : (H, W) ndarray of int
        Instance labels.
    repeat : int, default=3
        Runs per tool; the best is kept.
    with_nyxus : bool, default=True
        Ignored: nyxus has no colocalization features.

    Returns
    -------
    list of dict
        ``tool``, ``family``, ``objects``, ``seconds``.
    """
    from cp_measure.core import measurecolocalization as mc

    channels = _channels(image)
    (a, x), (b, y) = list(channels.items())[:2]
    labels = relabel_sequential(np.asarray(labels))[0].astype(np.int32)
    n = int(labels.max())
    cells = CellSet.from_labels([x, y], labels, channels=[a, b])
    plain = Colocalization(["correlation", "overlap", "manders", "rwc"]).fit(cells)
    costes = Colocalization("costes").fit(cells)
    plain.transform(cells)  # warm imports and caches outside the timing
    plain_cells, costes_cells = unseen(cells, repeat), unseen(cells, repeat)

    def cp_plain():
        mc.get_correlation_pearson(x, y, labels)
        mc.get_correlation_overlap(x, y, labels)
        mc.get_correlation_manders_fold(x, y, labels)
        mc.get_correlation_rwc(x, y, labels)

    tools = [
        (
            "colocalization",
            "featcell Colocalization (all but costes)",
            lambda: plain.transform(plain_cells()),
        ),
        (
            "colocalization",
            "featcell Colocalization (all but costes, incl. CellSet.from_labels)",
            lambda: plain.transform(CellSet.from_labels([x, y], labels, channels=[a, b])),
        ),
        ("colocalization", "cp_measure pearson+overlap+manders+rwc", cp_plain),
        ("costes", "featcell Colocalization (costes)", lambda: costes.transform(costes_cells())),
        (
            "costes",
            "cp_measure get_correlation_costes",
            lambda: mc.get_correlation_costes(x, y, labels, scale_max=255),
        ),
    ]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for family, tool, fn in tools:
            rows.append(
                {"tool": tool, "family": family, "objects": n, "seconds": best_time(fn, repeat)}
            )
    return rows


if __name__ == "__main__":
    from _data import benchmark_images

    rows = run(*ht29())
    rows += [row for _, image, labels in benchmark_images(1, 2) for row in run(image, labels)]
    print(report(rows).to_string(float_format=lambda v: f"{v:.4g}"))
