"""featcell.metrics: hand-computed cases for every metric, scorers and bootstrap CIs."""

import doctest

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LogisticRegression

import featcell.metrics as fm

# --------------------------------------------------------------------------- label images
# Two 2x2 squares shifted by one pixel: intersection 2, union 6, IoU 1/3.
SQUARE = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
    ]
)
SHIFTED = np.array(
    [
        [0, 9, 9, 0],
        [0, 9, 9, 0],
        [0, 0, 0, 0],
    ]
)

# 5x5 squares shifted by one column: intersection 20, union 30, IoU 2/3.
BIG_TRUE = np.zeros((6, 7), dtype=np.uint16)
BIG_TRUE[:5, :5] = 4
BIG_PRED = np.zeros((6, 7), dtype=np.uint16)
BIG_PRED[:5, 1:6] = 7

# One true object of 8 pixels, predicted as two halves (IoU 0.5 each, not a match).
WHOLE = np.array([[3, 3, 3, 3], [3, 3, 3, 3]])
SPLIT = np.array([[5, 5, 8, 8], [5, 5, 8, 8]])

# True: A (ids 2, 4 px) found exactly, B (id 6, 4 px) missed; pred adds a 1-px false object.
SCENE_TRUE = np.array(
    [
        [2, 2, 0, 0, 0],
        [2, 2, 0, 6, 6],
        [0, 0, 0, 6, 6],
    ]
)
SCENE_PRED = np.array(
    [
        [1, 1, 0, 0, 3],
        [1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
)


def test_iou_matrix_hand_values():
    assert_allclose(fm.iou_matrix(SQUARE, SHIFTED), [[1 / 3]])
    # rows: true ids 2, 6; columns: predicted ids 1, 3
    assert_allclose(fm.iou_matrix(SCENE_TRUE, SCENE_PRED), [[1, 0], [0, 0]])
    assert_allclose(fm.iou_matrix(WHOLE, SPLIT), [[0.5, 0.5]])


def test_iou_matrix_ignores_id_values():
    relabelled = np.where(SCENE_PRED > 0, SCENE_PRED * 1000 + 7, 0).astype(np.int64)
    assert_allclose(fm.iou_matrix(SCENE_TRUE, relabelled), fm.iou_matrix(SCENE_TRUE, SCENE_PRED))


def test_iou_matrix_matches_per_object_loop():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 6, size=(30, 30))
    pred = rng.integers(0, 4, size=(30, 30)) * 3
    expected = np.array(
        [
            [
                np.sum((true == t) & (pred == p)) / np.sum((true == t) | (pred == p))
                for p in (3, 6, 9)
            ]
            for t in range(1, 6)
        ]
    )
    assert_allclose(fm.iou_matrix(true, pred), expected)


@pytest.mark.parametrize(
    "true, pred, dice, jaccard",
    [
        (SQUARE, SHIFTED, 0.5, 1 / 3),  # 2*2/(4+4), 2/6
        (BIG_TRUE, BIG_PRED, 0.8, 2 / 3),  # 2*20/50, 20/30
        (WHOLE, SPLIT, 1.0, 1.0),  # same foreground
        (SCENE_TRUE, SCENE_PRED, 8 / 13, 4 / 9),  # 2*4/(8+5), 4/9
    ],
)
def test_foreground_dice_jaccard(true, pred, dice, jaccard):
    assert_allclose(fm.foreground_dice(true, pred), dice)
    assert_allclose(fm.foreground_jaccard(true, pred), jaccard)


@pytest.mark.parametrize(
    "true, pred, jaccard, dice",
    [
        (SQUARE, SHIFTED, 1 / 3, 1 / 2),  # per pair Dice = 2 IoU / (1 + IoU)
        (BIG_TRUE, BIG_PRED, 2 / 3, 4 / 5),
        (WHOLE, SPLIT, 1 / 2, 2 / 3),  # the whole is paired with one half
        (SCENE_TRUE, SCENE_PRED, 1 / 2, 1 / 2),  # (1 + 0) / 2 true objects
    ],
)
def test_object_jaccard_and_dice(true, pred, jaccard, dice):
    assert_allclose(fm.object_jaccard(true, pred), jaccard)
    assert_allclose(fm.object_dice(true, pred), dice)


def test_object_jaccard_pairs_for_the_best_total():
    # true 1: cols 0-4, true 2: cols 6-7; pred 20: col 0, pred 10: cols 1-7.
    # IoU(1, 10) = 4/8 is true 1's best, but taking it leaves true 2 alone (0.5 / 2);
    # pairing 1-20 (1/5) and 2-10 (2/7) gives the larger total.
    true = np.array([[1, 1, 1, 1, 1, 0, 2, 2]])
    pred = np.array([[20, 10, 10, 10, 10, 10, 10, 10]])
    assert_allclose(fm.iou_matrix(true, pred), [[1 / 2, 1 / 5], [2 / 7, 0]])
    assert_allclose(fm.object_jaccard(true, pred), (1 / 5 + 2 / 7) / 2)


@pytest.mark.parametrize(
    "true, pred, threshold, expected",
    [  # expected: tp, fp, fn, precision, recall, f1
        (SQUARE, SHIFTED, 0.5, (0, 1, 1, 0, 0, 0)),
        (SQUARE, SHIFTED, 0.3, (1, 0, 0, 1, 1, 1)),
        (BIG_TRUE, BIG_PRED, 0.5, (1, 0, 0, 1, 1, 1)),
        (BIG_TRUE, BIG_PRED, 0.7, (0, 1, 1, 0, 0, 0)),
        # IoU exactly 0.5 is not above 0.5
        (WHOLE, SPLIT, 0.5, (0, 2, 1, 0, 0, 0)),
        # below 0.5 only one of the halves may match the whole (one-to-one)
        (WHOLE, SPLIT, 0.4, (1, 1, 0, 0.5, 1, 2 / 3)),
        (SCENE_TRUE, SCENE_PRED, 0.5, (1, 1, 1, 0.5, 0.5, 0.5)),
    ],
)
def test_detection_scores(true, pred, threshold, expected):
    got = fm.detection_scores(true, pred, threshold=threshold)
    keys = ("tp", "fp", "fn", "precision", "recall", "f1")
    assert_allclose([got[key] for key in keys], expected)


def test_detection_mean_matched_iou():
    assert_allclose(fm.detection_scores(BIG_TRUE, BIG_PRED)["mean_matched_iou"], 2 / 3)
    assert fm.detection_scores(SQUARE, SHIFTED)["mean_matched_iou"] == 0.0


def test_hungarian_matching_finds_most_matches():
    # true 1: cols 0-4, true 2: cols 6-9; pred 5: col 0, pred 4: cols 1-7.
    # IoU(1, 4) = 1/2, IoU(1, 5) = 1/5, IoU(2, 4) = 2/9. Greedy on IoU takes (1, 4) and
    # stops at one match; below IoU 0.5 the matching must find both pairs.
    true = np.array([[1, 1, 1, 1, 1, 0, 2, 2, 2, 2]])
    pred = np.array([[5, 4, 4, 4, 4, 4, 4, 4, 0, 0]])
    got = fm.detection_scores(true, pred, threshold=0.1)
    assert (got["tp"], got["fp"], got["fn"]) == (2, 0, 0)
    assert_allclose(got["mean_matched_iou"], (1 / 5 + 2 / 9) / 2)
    got = fm.detection_scores(true, pred, threshold=0.3)
    assert (got["tp"], got["fp"], got["fn"]) == (1, 1, 1)


@pytest.mark.parametrize(
    "true, pred, expected",
    [
        (SQUARE, SHIFTED, 0.0),  # IoU 1/3 is below every threshold
        (BIG_TRUE, BIG_PRED, 0.4),  # IoU 2/3 > 0.5, 0.55, 0.6, 0.65: 4 of 10 thresholds
        (SCENE_TRUE, SCENE_PRED, 1 / 3),  # TP 1, FP 1, FN 1 at every threshold
        (SQUARE, SQUARE, 1.0),
    ],
)
def test_dsb_average_precision(true, pred, expected):
    assert_allclose(fm.dsb_average_precision(true, pred), expected)


def test_dsb_custom_thresholds():
    assert_allclose(fm.dsb_average_precision(BIG_TRUE, BIG_PRED, thresholds=[0.5, 0.7]), 0.5)


@pytest.mark.parametrize(
    "true, pred, expected",
    [
        (SQUARE, SHIFTED, 2 / 6),
        (BIG_TRUE, BIG_PRED, 20 / 30),
        (WHOLE, SPLIT, 4 / 12),  # pair (3, 5): 4 / 8, then the unpaired half adds 4
        (SCENE_TRUE, SCENE_PRED, 4 / 9),  # 4 / (4 + missed 4 + false 1)
    ],
)
def test_aggregated_jaccard_index(true, pred, expected):
    assert_allclose(fm.aggregated_jaccard_index(true, pred), expected)


@pytest.mark.parametrize(
    "true, pred, pq, sq, rq",
    [
        (SQUARE, SHIFTED, 0, 0, 0),
        (BIG_TRUE, BIG_PRED, 2 / 3, 2 / 3, 1),
        (WHOLE, SPLIT, 0, 0, 0),
        (SCENE_TRUE, SCENE_PRED, 0.5, 1, 0.5),  # RQ = 1 / (1 + 0.5 + 0.5)
    ],
)
def test_panoptic_quality(true, pred, pq, sq, rq):
    assert_allclose(fm.panoptic_quality(true, pred, return_components=True), (pq, sq, rq))
    assert_allclose(fm.panoptic_quality(true, pred), pq)


def test_empty_images():
    empty = np.zeros((3, 3), dtype=np.uint8)
    summary = fm.segmentation_summary(empty, empty)
    assert summary["n_true"] == summary["n_pred"] == 0
    for key in ("foreground_dice", "object_jaccard", "f1", "dsb_ap", "aji", "pq"):
        assert summary[key] == 1.0, key
    only_pred = fm.segmentation_summary(empty, np.eye(3, dtype=np.uint8))
    for key in ("foreground_dice", "object_jaccard", "precision", "f1", "dsb_ap", "aji", "pq"):
        assert only_pred[key] == 0.0, key


def test_segmentation_summary_agrees_with_functions():
    s = fm.segmentation_summary(SCENE_TRUE, SCENE_PRED)
    assert (s["n_true"], s["n_pred"]) == (2, 2)
    assert_allclose(s["dsb_ap"], fm.dsb_average_precision(SCENE_TRUE, SCENE_PRED))
    assert_allclose(s["aji"], 4 / 9)
    assert_allclose((s["pq"], s["sq"], s["rq"]), (0.5, 1, 0.5))
    assert_allclose(s["foreground_dice"], 8 / 13)
    assert_allclose(s["object_jaccard"], 0.5)


def test_segmentation_3d_and_bool():
    volume = np.zeros((2, 3, 3), dtype=np.int32)
    volume[:, :2, :2] = 1
    assert fm.segmentation_summary(volume, volume)["aji"] == 1.0
    assert fm.foreground_dice(volume > 0, volume > 0) == 1.0


def test_segmentation_errors():
    with pytest.raises(ValueError, match=r"pred_labels has shape \(2, 4\) but true_labels"):
        fm.iou_matrix(SQUARE, WHOLE)
    with pytest.raises(ValueError, match="true_labels has dtype float64"):
        fm.aggregated_jaccard_index(SQUARE.astype(float), SQUARE)
    with pytest.raises(ValueError, match="threshold must be in"):
        fm.detection_scores(SQUARE, SQUARE, threshold=1.0)


# --------------------------------------------------------------------------- classification

Y_TRUE = np.array(["live", "live", "live", "dead", "dead", "live"])
Y_PRED = np.array(["live", "dead", "live", "dead", "live", "live"])
# live: 4 true, 3 found; dead: 2 true, 1 found. Predicted live 4 (3 right), dead 2 (1 right).


def test_classification_hand_values():
    assert_allclose(fm.accuracy(Y_TRUE, Y_PRED), 4 / 6)
    assert_allclose(fm.balanced_accuracy(Y_TRUE, Y_PRED), (3 / 4 + 1 / 2) / 2)
    # classes in sorted order: dead, live
    assert_allclose(fm.precision(Y_TRUE, Y_PRED, average=None), [1 / 2, 3 / 4])
    assert_allclose(fm.recall(Y_TRUE, Y_PRED, average=None), [1 / 2, 3 / 4])
    assert_allclose(fm.f1(Y_TRUE, Y_PRED), (1 / 2 + 3 / 4) / 2)
    assert_allclose(fm.confusion_matrix(Y_TRUE, Y_PRED), [[1, 1], [1, 3]])


def test_roc_auc_binary_and_ovr():
    y = np.array([0, 0, 1, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8])  # 3 of 4 positive-negative pairs ranked right
    assert_allclose(fm.roc_auc(y, score), 0.75)
    assert_allclose(fm.roc_auc(y, np.column_stack([1 - score, score])), 0.75)
    # decision-function scores of any scale work for several classes: mean of the
    # one-vs-rest AUCs, each counted pair by pair
    y3 = np.array(["a", "a", "b", "b", "c", "c"])
    scores = np.array(
        [[5, 0, 0], [0, 1, 0], [0, 6, 1], [3, 4, 0], [0, 0, 9], [4, 0, 2]], dtype=float
    )
    expected = np.mean([_pairwise_auc(scores[:, k], y3 == c) for k, c in enumerate("abc")])
    assert_allclose(fm.roc_auc(y3, scores), expected)


def _pairwise_auc(score, positive):
    pos, neg = score[positive], score[~positive]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


def test_roc_auc_edge_cases():
    assert np.isnan(fm.roc_auc([1, 1, 1], [0.2, 0.3, 0.4]))
    with pytest.raises(ValueError, match="y_score has 3 columns but there are 2 labels"):
        fm.roc_auc(["a", "b"], np.ones((2, 3)))
    # a test set lacking class "c": labels say which column is which
    got = fm.roc_auc(["a", "b"], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]], labels=["a", "b", "c"])
    assert_allclose(got, 1.0)


def test_classification_summary():
    s = fm.classification_summary(Y_TRUE, Y_PRED, y_score=(Y_PRED == "live").astype(float))
    assert s["labels"] == ["dead", "live"]
    assert_allclose(s["balanced_accuracy"], 0.625)
    assert s["per_class"]["dead"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert_allclose(s["roc_auc"], fm.roc_auc(Y_TRUE, (Y_PRED == "live").astype(float)))
    assert s["confusion_matrix"].tolist() == [[1, 1], [1, 3]]


# --------------------------------------------------------------------------- counting

COUNT_TRUE = np.array([10.0, 20.0, 30.0, 40.0])
COUNT_PRED = np.array([12.0, 18.0, 33.0, 40.0])  # errors +2, -2, +3, 0


def test_counting_hand_values():
    assert_allclose(fm.mae(COUNT_TRUE, COUNT_PRED), 7 / 4)
    assert_allclose(fm.rmse(COUNT_TRUE, COUNT_PRED), np.sqrt(17 / 4))
    assert_allclose(fm.mape(COUNT_TRUE, COUNT_PRED), (0.2 + 0.1 + 0.1 + 0) / 4)
    assert_allclose(fm.mean_signed_error(COUNT_TRUE, COUNT_PRED), 3 / 4)
    assert_allclose(fm.r2(COUNT_TRUE, COUNT_PRED), 1 - 17 / 500)  # SS_tot = 500
    assert_allclose(fm.pearson_r(COUNT_TRUE, COUNT_PRED), np.corrcoef(COUNT_TRUE, COUNT_PRED)[0, 1])


def test_counting_edge_cases():
    assert_allclose(fm.mape([0, 10], [5, 11]), 0.1)  # the zero count is left out
    assert np.isnan(fm.mape([0, 0], [1, 2]))
    assert np.isnan(fm.pearson_r([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="same length"):
        fm.mean_signed_error([1, 2], [1, 2, 3])


def test_counting_summary():
    s = fm.counting_summary(COUNT_TRUE, COUNT_PRED)
    assert s["n_samples"] == 4
    assert set(s) == {"n_samples", "mae", "rmse", "mape", "r2", "pearson_r", "mean_signed_error"}


# --------------------------------------------------------------------------- scorers


def test_scorers_follow_sklearn_sign_convention():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    assert_allclose(
        fm.get_scorer("balanced_accuracy")(model, X, y), fm.balanced_accuracy(y, model.predict(X))
    )
    assert_allclose(fm.get_scorer("roc_auc")(model, X, y), fm.roc_auc(y, model.predict_proba(X)))
    assert_allclose(fm.get_scorer("neg_mae")(model, X, y), -fm.mae(y, model.predict(X)))
    assert not any("mean_signed_error" in name for name in fm.SCORERS)
    with pytest.raises(ValueError, match="use 'neg_rmse'"):
        fm.get_scorer("rmse")


# --------------------------------------------------------------------------- bootstrap

_NAMED = ["accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro"]


@pytest.mark.parametrize("name", _NAMED + ["roc_auc"])
@pytest.mark.parametrize("grouped", [False, True])
def test_bootstrap_vectorised_equals_loop_classification(name, grouped):
    rng = np.random.default_rng(1)
    n = 60
    y_true = rng.choice(["a", "b", "c"], size=n)
    if name == "roc_auc":
        y_out = rng.dirichlet(np.ones(3), size=n)
        y_out[:, 0] = np.round(y_out[:, 0], 1)  # ties
    else:
        y_out = np.where(rng.random(n) < 0.6, y_true, rng.choice(["a", "b", "c"], size=n))
    groups = rng.integers(0, 12, size=n) if grouped else None
    fast = fm.bootstrap_ci(name, y_true, y_out, groups, n_boot=20, random_state=3)
    metric = fm._METRICS[name]
    slow = fm.bootstrap_ci(
        lambda t, o: metric(t, o, np.unique(y_true)),
        y_true,
        y_out,
        groups,
        n_boot=20,
        random_state=3,
    )
    assert_allclose(fast, slow)


@pytest.mark.parametrize("name", ["mae", "rmse", "mape", "r2", "pearson_r", "mean_signed_error"])
@pytest.mark.parametrize("grouped", [False, True])
def test_bootstrap_vectorised_equals_loop_regression(name, grouped):
    rng = np.random.default_rng(2)
    n = 50
    y_true = rng.integers(0, 100, size=n).astype(float)
    y_pred = y_true + rng.normal(scale=5, size=n)
    groups = np.repeat(np.arange(10), 5) if grouped else None
    fast = fm.bootstrap_ci(name, y_true, y_pred, groups, n_boot=50, random_state=4)
    slow = fm.bootstrap_ci(
        fm._METRICS[name].func, y_true, y_pred, groups, n_boot=50, random_state=4
    )
    assert_allclose(fast, slow, rtol=1e-9)


def test_bootstrap_ci_contains_estimate_and_resamples_groups():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 30)
    # errors shared within an image: 600 cells but only 20 independent images
    image_error = rng.normal(scale=5, size=20)
    y_true = np.full(600, 100.0)
    y_pred = y_true + image_error[groups] + rng.normal(scale=0.1, size=600)
    est, low, high = fm.bootstrap_ci("mean_signed_error", y_true, y_pred, groups=groups)
    assert low <= est <= high
    _, cell_low, cell_high = fm.bootstrap_ci("mean_signed_error", y_true, y_pred)
    # resampling cells ignores the clustering and gives a far narrower, overconfident interval
    assert (high - low) > 3 * (cell_high - cell_low)


def test_bootstrap_ci_is_seeded_and_checks_input():
    args = ("accuracy", [1, 0, 1, 1], [1, 0, 0, 1])
    assert fm.bootstrap_ci(*args, random_state=5) == fm.bootstrap_ci(*args, random_state=5)
    with pytest.raises(ValueError, match="groups has 3 samples but y_true has 4"):
        fm.bootstrap_ci(*args, groups=[0, 1, 2])
    with pytest.raises(ValueError, match="unknown metric 'acc'"):
        fm.bootstrap_ci("acc", [1, 0], [1, 0])
    with pytest.raises(ValueError, match="ci must be between 0 and 1"):
        fm.bootstrap_ci(*args, ci=95)
    with pytest.raises(ValueError, match="y_pred has 2 samples but y_true has 4"):
        fm.bootstrap_ci("accuracy", [1, 0, 1, 1], [1, 0])


def test_docstring_examples():
    result = doctest.testmod(fm, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


# --------------------------------------------------------------------------- GAME


def test_grid_counts_hand_values():
    from featcell.metrics import grid_counts

    # 4 x 6 image, level 1: cells split rows at 2 and columns at 3
    points = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 3.0], [3.0, 5.0], [3.4, 0.2]])
    assert_allclose(grid_counts([points], (4, 6), level=1), [[2, 0, 1, 2]])
    density = np.zeros((4, 6))
    density[0, 0], density[3, 5] = 0.5, 2.0
    assert_allclose(grid_counts([density], level=1), [[0.5, 0, 0, 2.0]])
    # level 3 grid on a 5-pixel side: some cells are empty, the total is kept
    fine = grid_counts([points], (4, 6), level=3)
    assert fine.shape == (1, 64) and fine.sum() == 5


def test_game_hand_worked():
    from featcell.metrics import game, grid_counts

    # true: 2 objects top-left, 1 bottom-right; predicted: all 3 top-left
    true = grid_counts([np.array([[0.0, 0.0], [1.0, 1.0], [7.0, 7.0]])], (8, 8), level=3)
    pred = grid_counts([np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])], (8, 8), level=3)
    assert game(true, pred, 0) == 0.0  # the total is right
    assert game(true, pred, 1) == 2.0  # one too many top-left, one missing bottom-right
    assert game(true, pred, 3) == 2.0
    # two images: GAME is the mean of the per-image errors
    true2 = np.vstack([true, true])
    pred2 = np.vstack([pred, true + 0.25])  # second: 0.25 too many in every one of 64 cells
    assert_allclose(game(true2, pred2, 0), (0 + 16) / 2)
    assert_allclose(game(true2, pred2, 2), (2 + 16) / 2)
    assert_allclose(game(true2, pred2, 3), (2 + 16) / 2)


def test_game_bootstrap_and_errors():
    from featcell.metrics import game, grid_counts

    rng = np.random.default_rng(0)
    true = grid_counts([rng.uniform(0, 31, (10, 2)) for _ in range(12)], (32, 32))
    pred = true + rng.normal(0, 0.2, true.shape)
    est, low, high = fm.bootstrap_ci("game2", true, pred, n_boot=200)
    assert est == pytest.approx(game(true, pred, 2)) and low <= est <= high
    with pytest.raises(ValueError, match="level >= 3"):
        game(grid_counts([np.zeros((0, 2))], (4, 4), level=2), np.zeros((1, 16)), 3)
    with pytest.raises(ValueError, match="power of 4"):
        game(np.zeros((1, 5)), np.zeros((1, 5)))
    with pytest.raises(ValueError, match="shape"):
        grid_counts([np.zeros((3, 2))])


def test_scores_and_counts_are_checked_alike():
    """roc_auc scored a class missing from labels as a negative and took 1-D scores for
    three classes; a NaN prediction gave NaN from mape, mean_signed_error and pearson_r
    but an error from mae, rmse and r2."""
    from featcell import metrics

    with pytest.raises(ValueError, match=r"y_true holds \['c'\], not among labels"):
        metrics.roc_auc(["a", "b", "c", "c"], [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.4, 0.6]],
                        labels=["a", "b"])
    with pytest.raises(ValueError, match="y_score is 1-D but there are 3 labels"):
        metrics.roc_auc([0, 1, 2], [0.1, 0.5, 0.9])
    for metric in (metrics.mape, metrics.mean_signed_error, metrics.pearson_r, metrics.mae,
                   metrics.rmse, metrics.r2):
        with pytest.raises(ValueError, match="y_pred has 1 NaN or infinite values"):
            metric([1.0, 2.0, 3.0], [np.nan, 2.0, 3.0])
