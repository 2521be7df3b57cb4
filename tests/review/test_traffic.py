"""``serve.review_queue``: the server records answered chats de-identified, they expire, and
``review push --from traffic`` sends them to Label Studio."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from medops.model.decode import Finished, GenerationParams
from medops.recipe import Batching, Deid, RecipeError, ServeLimits
from medops.review.labelstudio import LabelStudio
from medops.review.push import from_traffic, push
from medops.review.store import DB_ENV, FeedbackStore
from medops.serve.chat_model import ServedLM
from medops.serve.guard import Guard
from tests.review.conftest import LabelStudioServer
from tests.tasks.instruct.conftest import instruct_recipe

NAME = "Zebulon Quaxley"


def _served(tiny_lm_dir: Path, store: FeedbackStore) -> ServedLM:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def record(name: str, turns: list[dict[str, str]], answer: str) -> None:
        store.enqueue(name, "models:/assistant/2", turns, answer, timedelta(days=30))

    return ServedLM(
        AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval(),
        AutoTokenizer.from_pretrained(tiny_lm_dir),
        {"assistant": None},
        Guard(Deid(), inputs=True, outputs=True),
        ServeLimits(),
        Batching(max_batch_size=4, max_wait_ms=5),
        recorder=record,
    )


async def _chat(served: ServedLM, text: str) -> str:
    prompt = await served.chat_prompt("assistant", [{"role": "user", "content": text}])
    async for item in served.stream("assistant", prompt, GenerationParams(max_tokens=4)):
        if isinstance(item, Finished):
            return item.text
    raise AssertionError("no answer")


def test_answered_chats_are_queued_de_identified_and_pushed(
    tmp_path, tiny_lm_dir, label_studio: LabelStudioServer, monkeypatch
):
    monkeypatch.setenv(DB_ENV, f"sqlite:///{tmp_path / 'feedback.db'}")
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    served = _served(tiny_lm_dir, store)
    answer = asyncio.run(_chat(served, f"Mr. {NAME} has a rash after amoxicillin. What now?"))
    deadline = time.monotonic() + 10
    while not store.queued():  # written off the event loop
        assert time.monotonic() < deadline, "the chat was not queued"
        time.sleep(0.05)
    (row,) = store.queued()
    assert row["answer"] == answer and row["model_uri"] == "models:/assistant/2"
    assert "[NAME]" in row["messages"][0]["content"] and NAME not in str(row)

    recipe = instruct_recipe(tmp_path, tiny_lm_dir, [{"uri": "x.jsonl", "role": "test"}])
    client = LabelStudio(label_studio.url, label_studio.token)
    pushed = push(recipe.model_copy(update={"name": "traffic"}), from_traffic(recipe), client, None)
    assert pushed["pushed"] == 1 and pushed["model_uris"] == ["models:/assistant/2"]
    (task,) = client.export(pushed["project"], with_unlabeled=True)
    assert task["data"]["medops_answer"] == {"answer": answer}
    assert NAME not in str(task)


def test_expired_chats_are_deleted_and_queueing_needs_de_identification(tmp_path, tiny_lm_dir):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    turns = [{"role": "user", "content": "[NAME] asks."}]
    store.enqueue("assistant", "models:/a/1", turns, "old", timedelta(seconds=-1))
    store.enqueue("assistant", "models:/a/1", turns, "new", timedelta(days=1))
    assert [r["answer"] for r in store.queued()] == ["new"]
    with store.engine.connect() as connection:
        import sqlalchemy as sa

        stored = connection.execute(sa.text("SELECT answer FROM review_queue")).scalars().all()
    assert stored == ["new"], "the expired row was deleted, not only hidden"
    with pytest.raises(RecipeError, match="serve.deidentify_input"):
        instruct_recipe(
            tmp_path,
            tiny_lm_dir,
            [{"uri": "x.jsonl", "role": "test"}],
            "serve.review_queue.enabled=true",
            "serve.deidentify_input=false",
        )
