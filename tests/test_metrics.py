"""Metrics: hand-computed UAR/WAR/F1, absent and never-predicted classes, de-duplication, fold aggregation."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pytest
import torch

from maedfer.metrics import (
    aggregate_folds,
    compute_metrics,
    confusion_matrix,
    deduplicate_predictions,
    gather_predictions,
    plot_confusion_matrix,
    pooled_metrics,
)

NAMES = ["neutral", "happy", "sad", "angry"]
# "angry" never occurs in the labels; "sad" and "angry" are never predicted.
LABELS = [0, 0, 0, 0, 1, 1, 2, 2]
PREDS = [0, 0, 0, 1, 1, 0, 1, 0]


def test_hand_computed_case() -> None:
    m = compute_metrics(LABELS, PREDS, NAMES)
    # rows = true class: neutral [3,1,0,0], happy [1,1,0,0], sad [1,1,0,0], angry [0,0,0,0]
    assert m["confusion_matrix"] == [[3, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert m["per_class_recall"] == {"neutral": 0.75, "happy": 0.5, "sad": 0.0}  # angry absent -> missing
    assert m["uar"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    assert m["war"] == pytest.approx(4 / 8)
    # F1: neutral P=3/5 R=3/4 -> 2/3; happy P=1/3 R=1/2 -> 0.4; sad 0; weights 4/8, 2/8, 2/8
    assert m["weighted_f1"] == pytest.approx(0.5 * (2 / 3) + 0.25 * 0.4)
    assert m["support"] == {"neutral": 4, "happy": 2, "sad": 2, "angry": 0}
    assert m["absent_classes"] == ["angry"]
    assert m["never_predicted"] == ["sad", "angry"]
    assert m["num_samples"] == 8
    json.dumps(m, allow_nan=False)  # strict JSON: no NaN anywhere


def test_uar_over_all_counts_absent_class_as_zero() -> None:
    m = compute_metrics(LABELS, PREDS, NAMES, uar_over="all")
    assert m["uar"] == pytest.approx((0.75 + 0.5 + 0.0 + 0.0) / 4)
    from sklearn.metrics import recall_score

    assert m["uar"] == pytest.approx(recall_score(LABELS, PREDS, labels=range(4), average="macro", zero_division=0))


def test_matches_authors_formula_when_predictions_stay_in_present_classes() -> None:
    from sklearn.metrics import confusion_matrix as sk_cm

    cm = sk_cm(y_true=LABELS, y_pred=PREDS)  # the authors' computation
    assert compute_metrics(LABELS, PREDS, NAMES)["uar"] == pytest.approx(np.mean(cm.diagonal() / cm.sum(axis=1)))


def test_probabilities_and_tensors_give_the_same_answer() -> None:
    probs = torch.full((8, 4), 0.1)
    probs[torch.arange(8), torch.tensor(PREDS)] = 0.7
    a = compute_metrics(torch.tensor(LABELS), probs, NAMES)
    b = compute_metrics(LABELS, PREDS, NAMES)
    assert a == b


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="0..3"):
        compute_metrics([0, 4], [0, 0], NAMES)
    with pytest.raises(ValueError, match="columns"):
        compute_metrics([0, 1], np.zeros((2, 3)), NAMES)
    with pytest.raises(ValueError, match="labels but"):
        confusion_matrix([0, 1], [0], 4)
    with pytest.raises(ValueError, match="uar_over"):
        compute_metrics([0], [0], NAMES, uar_over="some")


def test_deduplicate_drops_padding_copies_and_sorts() -> None:
    clips = [3, 1, 0, 2, 3, 1]  # sampler padding repeated 3 and 1
    probs = np.eye(4)[[0, 1, 2, 3, 0, 1]]
    labels = [0, 1, 2, 3, 0, 1]
    c, p, y = deduplicate_predictions(clips, probs, labels)
    assert c.tolist() == [0, 1, 2, 3]
    assert y.tolist() == [2, 1, 3, 0]
    assert p.argmax(1).tolist() == [2, 1, 3, 0]
    # outside a process group gather_predictions only de-duplicates
    c2, p2, y2 = gather_predictions(torch.tensor(clips), torch.tensor(probs), torch.tensor(labels))
    assert c2.tolist() == c.tolist() and np.array_equal(p2, p) and y2.tolist() == y.tolist()


def test_views_are_averaged_after_dropping_padding_copies() -> None:
    clips = [0, 0, 1, 1, 0]
    views = [0, 1, 0, 1, 1]  # last row: padding copy of (clip 0, view 1)
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.1, 0.9], [0.4, 0.6]])
    c, p, y = deduplicate_predictions(clips, probs, [1, 1, 0, 0, 1], view_idx=views)
    assert c.tolist() == [0, 1] and y.tolist() == [1, 0]
    np.testing.assert_allclose(p, [[0.6, 0.4], [0.2, 0.8]])


def test_conflicting_labels_for_one_clip_raise() -> None:
    with pytest.raises(ValueError, match=r"clips \[5\]"):
        deduplicate_predictions([5, 5], np.zeros((2, 2)), [0, 1])


def test_aggregate_folds_reproduces_the_published_dfew_mean() -> None:
    uars = [62.59, 61.96, 64.00, 63.07, 65.42]  # DATASETS.md: the authors' DFEW folds
    folds = {f"fold{i + 1}": {"uar": u, "war": 0.0, "weighted_f1": 0.0} for i, u in enumerate(uars)}
    agg = aggregate_folds(folds)
    assert round(agg["mean"]["uar"], 2) == 63.41
    assert agg["std"]["uar"] == pytest.approx(statistics.stdev(uars))
    assert agg["num_folds"] == 5 and agg["folds"][0] == "fold1"
    assert aggregate_folds({"only": {"uar": 1.0, "war": 1.0, "weighted_f1": 1.0}})["std"]["uar"] == 0.0
    with pytest.raises(ValueError, match="missing"):
        aggregate_folds({"a": {"uar": 1.0}})


def test_pooled_metrics_differ_from_the_mean_of_folds() -> None:
    names = ["a", "b"]
    fold1 = ([0, 1], [0, 0])  # UAR (1 + 0) / 2 = 0.5
    fold2 = ([1, 1], [1, 1])  # only "b" present: UAR 1.0
    per_fold = {"1": compute_metrics(*fold1, names), "2": compute_metrics(*fold2, names)}
    assert aggregate_folds(per_fold)["mean"]["uar"] == pytest.approx(0.75)
    pooled = pooled_metrics([fold1, fold2], names)  # labels 0,1,1,1 preds 0,0,1,1
    assert pooled["uar"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert pooled["war"] == pytest.approx(0.75)


def test_confusion_matrix_plot_is_written_atomically(tmp_path) -> None:
    m = compute_metrics(LABELS, PREDS, NAMES)
    out = plot_confusion_matrix(m["confusion_matrix"], NAMES, tmp_path / "plots" / "cm.png", title="fold 1")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert [p.name for p in out.parent.iterdir()] == ["cm.png"]  # no temporary left behind
    plot_confusion_matrix(m["confusion_matrix"], NAMES, tmp_path / "counts.png", normalize=False)
    with pytest.raises(ValueError, match="shape"):
        plot_confusion_matrix(np.zeros((2, 2)), NAMES, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    assert math.isfinite(m["uar"])
