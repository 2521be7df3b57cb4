"""A real Label Studio on loopback, from its own venv (``make labelstudio``), per session."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from medops.data.dataset import read_split
from medops.review.push import RunOutputs
from medops.stages import run_stage
from tests.support.network import free_port
from tests.tasks.instruct.conftest import instruct_recipe, qa_records, write_jsonl

DEFAULT_BINARY = "/var/cache/medops/label-studio-1.23.2/bin/label-studio"
ADMIN, PASSWORD = "admin@medops.test", "Adm1n-review-pass"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
OFFLINE = {
    "LATEST_VERSION_CHECK": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
}
# a second reviewer, created the way an admin's invitation would (Django ORM)
ADD_REVIEWER = """
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
user = User.objects.create_user(email={email!r}, password={password!r}, username={email!r})
organization = Organization.objects.first()
organization.add_user(user)
user.active_organization = organization
user.save()
Token.objects.filter(user=user).delete()
Token.objects.create(user=user, key={token!r})
"""


@dataclass(frozen=True)
class LabelStudioServer:
    url: str
    token: str
    data_dir: Path
    binary: Path

    def add_reviewer(self, email: str, password: str, token: str) -> None:
        python = self.binary.parent / "python"
        manage = next(
            self.binary.parent.parent.glob("lib/python3*/site-packages/label_studio/manage.py")
        )
        env = {
            **os.environ,
            **OFFLINE,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
        }
        code = ADD_REVIEWER.format(email=email, password=password, token=token)
        subprocess.run(
            [str(python), str(manage), "shell", "-c", code],
            cwd=manage.parent,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    binary = Path(os.environ.get("MEDOPS_LABEL_STUDIO", DEFAULT_BINARY))
    if not binary.is_file():
        pytest.fail(f"Label Studio is not installed at {binary}: run `make labelstudio`")
    data_dir = tmp_path_factory.mktemp("label-studio")
    port = free_port()
    log = (data_dir / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(binary), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(port),
            "--data-dir", str(data_dir), "--username", ADMIN, "--password", PASSWORD,
            "--user-token", TOKEN, "--enable-legacy-api-token",
        ],
        env={**os.environ, **OFFLINE},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            assert process.poll() is None, f"Label Studio exited; see {data_dir / 'server.log'}"
            assert time.monotonic() < deadline, "Label Studio did not start within 180 s"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield LabelStudioServer(url, TOKEN, data_dir, binary)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


PLANTED = ("Zebulon Quaxley", "Quaxley", "QX-4412-ZK", "zebulon.quaxley@example.org")
MODEL_URI = "models:/review-test/3"


def _planted_conversation(index: int) -> dict[str, object]:
    return {
        "id": f"phi{index}",
        "messages": [
            {
                "role": "user",
                "content": f"Mr. Zebulon Quaxley (MRN QX-4412-ZK, zebulon.quaxley@example.org) "
                f"asks about dose {index} of amoxicillin.",
            },
            {"role": "assistant", "content": "500 mg three times a day."},
        ],
    }


@pytest.fixture(scope="session")
def run(tmp_path_factory, tiny_lm_dir) -> tuple[object, RunOutputs]:
    """A real instruct prepare on conversations with planted identifiers, and answers
    standing in for the evaluate stage's."""
    tmp = tmp_path_factory.mktemp("review-run")
    train = write_jsonl(tmp / "train.jsonl", qa_records("t", 12))
    test = write_jsonl(tmp / "test.jsonl", [_planted_conversation(i) for i in range(4)])
    sources = [{"uri": str(train), "role": "train"}, {"uri": str(test), "role": "test"}]
    recipe = instruct_recipe(tmp, tiny_lm_dir, sources, "name=review-test")
    prepared, evaluated = tmp / "prepared", tmp / "evaluated"
    run_stage("prepare", recipe, prepared, {})
    evaluated.mkdir()
    answers = [
        {"id": r["id"], "model": f"Take dose {i}."}
        for i, r in enumerate(read_split(prepared, "test"))
    ]
    write_jsonl(evaluated / "generations.jsonl", answers)
    summary = tmp / "run-summary.json"
    outputs = {"prepare": str(prepared), "evaluate": str(evaluated)}
    summary.write_text(json.dumps({"outputs": outputs, "model_uri": MODEL_URI}))
    return recipe, RunOutputs.read(summary)
