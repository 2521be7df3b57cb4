import numpy as np
import pytest

from medops.evaluate.metrics import classification_metrics, label_scores


def test_metrics_match_a_hand_computed_example() -> None:
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    result = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    summary = result["summary"]
    assert summary["accuracy"] == pytest.approx(4 / 6)
    # a: P 1, R 2/3, F1 .8 | b: P .5, R .5, F1 .5 | c: P .5, R 1, F1 2/3
    assert result["per_class"]["a"] == {
        "precision": 1.0,
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(0.8),
        "support": 3,
    }
    assert summary["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert summary["micro_f1"] == pytest.approx(4 / 6)
    assert summary["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)
    assert result["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_a_class_never_predicted_scores_zero_not_nan() -> None:
    result = classification_metrics(["a", "b"], ["a", "a"], ["a", "b", "c"])
    assert result["per_class"]["b"]["f1"] == 0.0
    assert result["per_class"]["c"]["support"] == 0


def test_mismatched_or_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        classification_metrics(["a", "b"], ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="test split is empty"):
        classification_metrics([], [], ["a"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_scores_give_sklearn_summary_from_confusion_counts(seed: int) -> None:
    """The vectorised summary the bootstrap uses is classification_metrics' summary, with a
    class that is never predicted and answers outside the classes (as causal-LM has)."""
    rng = np.random.default_rng(seed)
    classes = ["Acne", "Depression", "Pain", "Gout"]
    y_true = [classes[i] for i in rng.integers(0, 3, 80)]
    y_pred = [
        "<invalid>" if r < 0.1 else (t if r < 0.7 else classes[int(r * 10) % 3])
        for t, r in zip(y_true, rng.random(80), strict=True)
    ]
    expected = classification_metrics(y_true, y_pred, classes)["summary"]
    assert label_scores(y_true, y_pred, classes).point() == pytest.approx(expected)
    rows = np.array([0, 0, 5, 9, 9, 9, 40])  # a resample-like subset, repeats included
    subset = classification_metrics([y_true[i] for i in rows], [y_pred[i] for i in rows], classes)
    assert label_scores(y_true, y_pred, classes).on(rows) == pytest.approx(subset["summary"])


def test_label_scores_refuse_a_true_label_outside_the_classes() -> None:
    with pytest.raises(ValueError, match="1 true label"):
        label_scores(["Acne", "Gout"], ["Acne", "Acne"], ["Acne"])
