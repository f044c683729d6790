"""The guard figures on hand-made results: AUPRC as scikit-learn's average precision, F1, false-positive rates."""

from __future__ import annotations

import pytest

from posttrain.evals.guard import average_precision, decoded_categories, guard_metrics


def test_average_precision_matches_scikit_learns_definition():
    # by hand, as scikit-learn's average_precision_score defines it: 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/4 = 0.8055...
    assert average_precision([True, False, True, True, False], [0.9, 0.8, 0.7, 0.3, 0.2]) == pytest.approx(
        0.80555, abs=1e-4
    )
    assert average_precision([True, False], [0.5, 0.5]) == pytest.approx(0.5)  # a tie is one threshold
    assert average_precision([True, True], [0.1, 0.9]) == pytest.approx(1.0)
    assert average_precision([False], [0.3]) is None


def test_decoded_categories_read_the_judges_detail():
    assert decoded_categories("unsafe: S1,S10; P(unsafe)=0.9") == ["S1", "S10"]
    assert decoded_categories("unsafe: ?; P(unsafe)=0.9") == []
    assert decoded_categories("safe; P(unsafe)=0.1") == []
    assert decoded_categories("unparsable Llama Guard output 'x'; P(unsafe)=0.2") == []


def row(role, label, cats, score, said_cats, value=0):
    return {"role": role, "label": label, "categories": cats, "score": score,
            "predicted": "unsafe" if score >= 0.5 else "safe", "predicted_categories": said_cats, "value": value}  # fmt: skip


def test_metrics_on_a_small_table():
    rows = [
        row("User", "unsafe", ["S1"], 0.9, ["S1"]),
        row("User", "unsafe", ["S2"], 0.4, [], value=1),  # missed
        row("Agent", "unsafe", ["S1", "S2"], 0.8, ["S1"]),
        row("User", "safe", [], 0.7, ["S2"]),  # a benign prompt flagged
        row("User", "safe", [], 0.1, [], value=1),
        row("Agent", "safe", [], 0.2, [], value=-1),  # unparsable answer
    ]
    m = guard_metrics(rows, ["S1", "S2", "S3"])
    assert m["binary"]["precision"] == pytest.approx(2 / 3) and m["binary"]["recall"] == pytest.approx(2 / 3)
    assert m["binary"]["f1"] == pytest.approx(2 / 3)
    assert m["fpr_benign_prompts"] == pytest.approx(0.5) and m["n_benign_prompts"] == 2
    assert m["fpr_safe_rows"] == pytest.approx(1 / 3) and m["unparsable"] == 1
    s1, s2 = m["per_category"]["S1"], m["per_category"]["S2"]
    assert (s1["support"], s1["precision"], s1["recall"]) == (2, 1.0, 1.0)
    assert (s2["support"], s2["precision"], s2["recall"]) == (2, 0.0, 0.0)
    assert "S3" not in m["per_category"] and m["macro_f1"] == pytest.approx(0.5)
    assert m["role_User"]["n"] == 4 and m["role_Agent"]["recall"] == 1.0
