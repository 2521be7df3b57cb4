from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medops.evaluate.generation_metrics import (
    extraction_metrics,
    normalise,
    parse_answer,
    rouge_l,
    token_f1,
)

FIELDS = ["drug", "condition", "sentiment"]
CLASSES = ["positive", "negative", "neutral"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('```json\n{"drug": "Lexapro"}\n```', {"drug": "Lexapro"}),
        ('```\n{"drug": "Lexapro"}\n```', {"drug": "Lexapro"}),
        (
            'Sure! Here is the answer: {"drug": "Lexapro", "sentiment": "positive"} Hope it helps.',
            {"drug": "Lexapro", "sentiment": "positive"},
        ),
        ('{"drug": "A"} {"drug": "B"}', {"drug": "A"}),
        (
            'Output: {"drug": "a {b} c", "condition": "}{"}',
            {"drug": "a {b} c", "condition": "}{"},
        ),
        ('Use {curly} braces, then {"drug": "X"}', {"drug": "X"}),
        ('{"drug": null, "dose": 20, "ok": true}', {"drug": "", "dose": "20", "ok": "true"}),
        ('{"drug": {"name": "X"}}', {"drug": '{"name": "X"}'}),
        ('{"Drug Name": "Lexapro"}', {"Drug Name": "Lexapro"}),
    ],
)
def test_parse_answer_finds_the_first_object(text: str, expected: dict[str, str]) -> None:
    assert parse_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        '[{"drug": "A"}]',
        '```json\n[{"drug": "A"}]\n```',
        '"just a string"',
        '{"drug": "Lexapro", "condition": ',
        "no json here",
        "",
    ],
)
def test_parse_answer_rejects_non_objects_and_broken_json(text: str) -> None:
    assert parse_answer(text) is None


def test_normalise_ignores_case_spacing_and_surrounding_punctuation() -> None:
    assert normalise("  Major \n Depressive   Disorder. ") == "major depressive disorder"
    assert normalise('"Lexapro"') == normalise("lexapro") == "lexapro"
    assert normalise("« Fièvre élevée »") == "fièvre élevée"
    assert normalise("type-2 diabetes") == "type-2 diabetes"


def test_token_f1_gives_partial_credit() -> None:
    # common {disorder}: precision 1/3, recall 1/2, F1 = 2 * (1/6) / (5/6) = 2/5
    assert token_f1("major depressive disorder", "depression disorder") == pytest.approx(0.4)
    # common {pain}: precision 1/2, recall 1, F1 = 2/3 (repeated tokens are not double-counted)
    assert token_f1("pain pain", "pain") == pytest.approx(2 / 3)
    assert token_f1("Back-Pain.", "back pain") == 1.0
    assert token_f1("toux", "fièvre") == 0.0
    assert token_f1("", "...") == 1.0
    assert token_f1("", "pain") == 0.0
    assert token_f1("pain", "") == 0.0


def test_rouge_l_keeps_accented_letters() -> None:
    assert rouge_l("fièvre élevée", "fièvre élevée") == 1.0
    assert rouge_l("fièvre élevée", "toux") == 0.0
    # rouge_score's default tokenizer drops "è" and would score these two as identical.
    assert rouge_l("fièvre", "fivre") == 0.0
    # LCS 2: precision 2/3, recall 1, F1 0.8
    assert rouge_l("The cat sat", "the cat") == pytest.approx(0.8)


GOLDS = [
    {"drug": "Lexapro", "condition": "Depression", "sentiment": "positive"},
    {"drug": "Ibuprofen", "condition": "Back Pain", "sentiment": "negative"},
    {"drug": "Metformin", "condition": "Type 2 Diabetes", "sentiment": "neutral"},
    {"drug": "Zoloft", "condition": "Anxiety", "sentiment": "positive"},
    {"drug": "Aspirin", "condition": "Headache", "sentiment": "negative"},
]
GENERATIONS = [
    # 0: fenced, case/punctuation differ -> every field matches
    '```json\n{"drug": "lexapro", "condition": "depression.", "sentiment": "Positive"}\n```',
    # 1: prose first; condition "lower back pain" vs "Back Pain" -> miss, token F1 0.8
    'Here you go: {"drug": "Ibuprofen", "condition": "lower back pain", "sentiment": "negative"}',
    # 2: invalid JSON -> every field a miss, label <invalid>
    '{"drug": "Metformin", "condition": ',
    # 3: unknown sentiment "mixed" -> label <invalid>
    '{"drug": "Zoloft", "condition": "Anxiety", "sentiment": "mixed"}',
    # 4: wrong drug, no condition, wrong (but known) sentiment
    '{"drug": "Tylenol", "sentiment": "positive"}',
]


def test_extraction_metrics_match_a_hand_computed_example() -> None:
    result = extraction_metrics(GENERATIONS, GOLDS, FIELDS, "sentiment", CLASSES)
    summary = result["summary"]
    assert result["counts"] == {"rows": 5, "invalid_json": 1}
    assert summary["json_validity"] == pytest.approx(4 / 5)  # rows 0, 1, 3, 4 parse
    assert summary["field_coverage"] == pytest.approx(3 / 5)  # row 4 lacks condition
    assert summary["exact_match_drug"] == pytest.approx(3 / 5)  # rows 0, 1, 3
    assert summary["token_f1_drug"] == pytest.approx(3 / 5)  # 1 + 1 + 0 + 1 + 0
    assert summary["exact_match_condition"] == pytest.approx(2 / 5)  # rows 0, 3
    assert summary["token_f1_condition"] == pytest.approx(2.8 / 5)  # 1 + .8 + 0 + 1 + 0
    assert summary["exact_match_sentiment"] == pytest.approx(2 / 5)  # rows 0, 1
    assert summary["token_f1_sentiment"] == pytest.approx(2 / 5)  # 1 + 1 + 0 + 0 + 0
    assert summary["exact_match_all"] == pytest.approx(1 / 5)  # row 0 only

    # ROUGE-L on tokens (generation vs json.dumps(gold); JSON keys are tokens too):
    # 0: 7 tokens ("json" + 6) vs 6, LCS 6 -> P 6/7, R 1      -> F 12/13
    # 1: 11 tokens ("here you go" + 8) vs 7, LCS 7 -> P 7/11, R 1 -> F 7/9
    # 2: 3 tokens vs 8, LCS 3 -> P 1, R 3/8                   -> F 6/11
    # 3: 6 vs 6, LCS 5 (all but mixed/positive)               -> F 5/6
    # 4: 4 vs 6, LCS 2 (drug, sentiment) -> P 1/2, R 1/3      -> F 2/5
    expected_rouge = (12 / 13 + 7 / 9 + 6 / 11 + 5 / 6 + 2 / 5) / 5
    assert summary["rouge_l"] == pytest.approx(expected_rouge)

    # y_true = [pos, neg, neu, pos, neg]; y_pred = [pos, neg, <invalid>, <invalid>, pos]
    # positive: TP 1, predicted 2, support 2 -> P 1/2, R 1/2, F1 1/2
    # negative: TP 1, predicted 1, support 2 -> P 1,   R 1/2, F1 2/3
    # neutral:  TP 0, predicted 0, support 1 -> P 0,   R 0,   F1 0
    assert summary["sentiment_macro_precision"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert summary["sentiment_macro_recall"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert summary["sentiment_macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    # micro: TP 2 of 3 predictions inside the classes, 2 of 5 gold -> P 2/3, R 2/5, F1 1/2
    assert summary["sentiment_micro_f1"] == pytest.approx(1 / 2)
    assert summary["sentiment_accuracy"] == pytest.approx(2 / 5)
    assert result["per_class"]["negative"] == {
        "precision": 1.0,
        "recall": pytest.approx(1 / 2),
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert result["per_class"]["neutral"]["f1"] == 0.0
    assert "<invalid>" not in result["per_class"]
    json.dumps(result)  # JSON-serialisable for the report and MLflow


def test_without_a_label_field_there_are_no_label_metrics() -> None:
    result = extraction_metrics(GENERATIONS, GOLDS, ["drug"], None, None)
    assert set(result["summary"]) == {
        "json_validity",
        "field_coverage",
        "exact_match_drug",
        "token_f1_drug",
        "exact_match_all",
        "rouge_l",
    }
    assert result["summary"]["field_coverage"] == pytest.approx(4 / 5)
    assert result["per_class"] == {}


SECRET = "PATIENT-SECRET-7731"


@pytest.mark.parametrize(
    ("generations", "golds", "fields", "label_field", "classes", "message"),
    [
        ([SECRET, SECRET], [{"drug": SECRET}], ["drug"], None, None, "2 generations but 1 gold"),
        ([], [], ["drug"], None, None, "no rows"),
        ([SECRET], [{"drug": SECRET}], [], None, None, "fields is empty"),
        ([SECRET], [{"drug": SECRET}], ["drug"], "drug", None, "non-empty classes"),
        ([SECRET], [{"drug": SECRET}], ["drug"], "drug", [], "non-empty classes"),
        ([SECRET], [{"drug": SECRET}], ["drug"], "sentiment", ["a"], "not one of the scored"),
        ([SECRET], [{"drug": SECRET}], ["drug", "dose"], None, None, "row 0 lacks"),
        ([SECRET], [{"drug": SECRET}], ["drug"], "drug", ["a", "b"], "row 0 is not one of the 2"),
        ([SECRET], [{"drug": "a"}], ["drug"], "drug", ["A", "a."], "only 1 distinct"),
    ],
)
def test_bad_inputs_are_refused_without_echoing_text(
    generations: list[str],
    golds: list[dict[str, str]],
    fields: list[str],
    label_field: str | None,
    classes: list[str] | None,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message) as excinfo:
        extraction_metrics(generations, golds, fields, label_field, classes)
    assert SECRET not in str(excinfo.value)


_gold_rows = st.lists(
    st.fixed_dictionaries(
        {
            "drug": st.text(max_size=20),
            "condition": st.text(max_size=20),
            "sentiment": st.sampled_from(["positive", "négatif", "neutral"]),
        }
    ),
    min_size=1,
    max_size=6,
)


def _classes_of(golds: list[dict[str, str]]) -> list[str]:
    """Only the classes present: an absent class scores F1 0 (zero_division) and lowers macro."""
    return list(dict.fromkeys(gold["sentiment"] for gold in golds))


# sklearn warns about any 1x1 confusion matrix, which a one-class draw legitimately produces.
_one_class_is_fine = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")


@_one_class_is_fine
@given(golds=_gold_rows, data=st.data())
def test_every_summary_value_is_a_share(golds: list[dict[str, str]], data: st.DataObject) -> None:
    generation = st.one_of(
        st.text(max_size=60),
        st.builds(json.dumps, st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=10))),
    )
    generations = data.draw(st.lists(generation, min_size=len(golds), max_size=len(golds)))
    result = extraction_metrics(generations, golds, FIELDS, "sentiment", _classes_of(golds))
    for name, value in result["summary"].items():
        assert 0.0 <= value <= 1.0, name
    for scores in result["per_class"].values():
        assert all(0.0 <= scores[key] <= 1.0 for key in ("precision", "recall", "f1"))


@_one_class_is_fine
@given(golds=_gold_rows)
def test_echoing_the_gold_json_scores_perfectly(golds: list[dict[str, str]]) -> None:
    generations = [json.dumps(gold, ensure_ascii=False) for gold in golds]
    result = extraction_metrics(generations, golds, FIELDS, "sentiment", _classes_of(golds))
    assert result["counts"]["invalid_json"] == 0
    assert result["summary"] == {name: 1.0 for name in result["summary"]}
