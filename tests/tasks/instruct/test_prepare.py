"""The instruct prepare stage: every format in, every record accounted for, every turn
de-identified with one set of surrogates per conversation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medops.data.dataset import read_split
from medops.deid.pseudonyms import Pseudonymizer
from medops.errors import DataError
from medops.stages import run_stage
from tests.tasks.instruct.conftest import instruct_recipe, qa_records, write_jsonl

NAME = "Zebulon Quaxley"
KEY = "a-test-key-of-32-bytes-length!!!"


def _everything(out: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in out.iterdir() if p.is_file())


def test_each_format_is_read_and_every_record_is_kept_or_quarantined(tmp_path, tiny_lm_dir):
    train = qa_records("m", 12)
    train.append({"id": "m0", "messages": train[1]["messages"]})  # an id seen before
    train.append({"messages": [{"role": "user", "content": "no answer"}]})
    train.append(
        {"messages": [{"role": "doctor", "content": "x"}, {"role": "user", "content": "y"}]}
    )
    sharegpt = [
        {"conversations": [{"from": "human", "value": f"Q{i}"}, {"from": "gpt", "value": f"A{i}"}]}
        for i in range(4)
    ] + [{"conversations": [{"from": "gpt", "value": "A"}, {"from": "human", "value": "Q"}]}]
    alpaca = [{"instruction": "Dose?", "input": "Case h0: which drug is number 0?", "output": "x"}]
    long = [{"prompt": "word " * 400, "response": "too long"}]
    test = qa_records("h", 3)
    test.append(qa_records("m", 1)[0] | {"id": "held-copy"})  # a training conversation
    files = {
        "train.jsonl": train,
        "share.jsonl": sharegpt,
        "alpaca.jsonl": alpaca,
        "long.jsonl": long,
        "test.jsonl": test,
    }
    sources = [
        {
            "uri": str(write_jsonl(tmp_path / name, rows)),
            "role": "test" if "test" in name else "train",
        }
        for name, rows in files.items()
    ]
    recipe = instruct_recipe(tmp_path, tiny_lm_dir, sources)
    out = tmp_path / "prepared"
    manifest = run_stage("prepare", recipe, out, {})

    counts = manifest.counts
    assert counts["rows_in"] == sum(len(rows) for rows in files.values())
    assert counts["rows_in"] == counts["rows_kept"] + counts["rows_quarantined"]
    quarantine = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    reasons = {(q["source"], q["reason"]) for q in quarantine}
    assert reasons == {
        ("train.jsonl", "duplicate_id"),
        ("train.jsonl", "no_assistant_turn"),
        ("train.jsonl", "unknown_role"),
        ("share.jsonl", "roles_out_of_order"),
        ("long.jsonl", "too_many_tokens"),
        ("train.jsonl", "duplicate_of_test"),
    }
    assert {s: i["format"] for s, i in manifest.extra["sources"].items()} == {
        "train.jsonl": "messages",
        "share.jsonl": "sharegpt",
        "alpaca.jsonl": "alpaca",
        "long.jsonl": "prompt-response",
        "test.jsonl": "messages",
    }
    test_ids = [r["id"] for r in read_split(out, "test")]
    assert test_ids == ["h0", "h1", "h2", "held-copy"], "held-out rows are never dropped"
    kept = {r["id"] for split in ("train", "validation") for r in read_split(out, split)}
    assert "m1" in kept and "m0" not in kept, "m0 is the training copy of held-copy"
    assert not kept & set(test_ids)
    assert all(set(r) == {"id", "messages"} for r in read_split(out, "train"))
    assert "| share.jsonl | sharegpt | train | 5 |" in (out / "DATASET_CARD.md").read_text()


def test_first_turns_keeps_the_opening_that_fits(tmp_path, tiny_lm_dir, sources):
    long_tail = {
        "id": "multi",
        "messages": [
            {"role": "user", "content": "First question?"},
            {"role": "assistant", "content": "First answer."},
            {"role": "user", "content": "word " * 300},
            {"role": "assistant", "content": "Second answer."},
        ],
    }
    sources[0]["uri"] = str(
        write_jsonl(tmp_path / "multi.jsonl", [*qa_records("t", 12), long_tail])
    )
    recipe = instruct_recipe(tmp_path, tiny_lm_dir, sources, "lm.overlong=first_turns")
    manifest = run_stage("prepare", recipe, tmp_path / "prepared", {})
    rows = [r for s in ("train", "validation") for r in read_split(tmp_path / "prepared", s)]
    cut = next(r for r in rows if r["id"] == "multi")
    assert [m["content"] for m in cut["messages"]] == ["First question?", "First answer."]
    assert manifest.counts["conversations_cut"] == 1
    assert manifest.counts["rows_quarantined"] == 0


def test_every_turn_is_pseudonymized_with_one_surrogate_per_name(
    tmp_path, tiny_lm_dir, sources, monkeypatch
):
    monkeypatch.setenv("MEDOPS_DEID_KEY", KEY)
    planted = {
        "id": "named",
        "messages": [
            {"role": "user", "content": f"Mr. {NAME} reports chest pain since Monday."},
            {"role": "assistant", "content": f"Ask {NAME} about radiation of the pain."},
            {"role": "user", "content": f"{NAME} says it spreads to the left arm."},
            {"role": "assistant", "content": f"Call an ambulance for {NAME} now."},
        ],
    }
    sources[1]["uri"] = str(write_jsonl(tmp_path / "held.jsonl", [*qa_records("h", 3), planted]))
    recipe = instruct_recipe(tmp_path, tiny_lm_dir, sources, "deid.policy=pseudonymize")
    out = tmp_path / "prepared"
    run_stage("prepare", recipe, out, {})
    row = next(r for r in read_split(out, "test") if r["id"] == "named")
    surrogate = Pseudonymizer(KEY.encode()).token("NAME", NAME)
    assert all(surrogate in m["content"] for m in row["messages"]), row["messages"]
    assert NAME not in _everything(out) and "Quaxley" not in _everything(out)


def test_policy_none_needs_a_reason(tmp_path, tiny_lm_dir, sources):
    from medops.recipe import RecipeError

    with pytest.raises(RecipeError, match="no_phi_reason"):
        instruct_recipe(tmp_path, tiny_lm_dir, sources, "deid.policy=none")


def test_an_empty_split_is_a_clear_error(tmp_path, tiny_lm_dir, sources):
    sources[1]["uri"] = str(
        write_jsonl(tmp_path / "empty-test.jsonl", [{"prompt": "", "response": "x"}])
    )
    recipe = instruct_recipe(tmp_path, tiny_lm_dir, sources)
    with pytest.raises(DataError, match="the test split is empty"):
        run_stage("prepare", recipe, tmp_path / "prepared", {})
