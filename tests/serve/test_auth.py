"""Bearer API keys: the keys file, the middleware's 401/403 and open paths, the key CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.types import Message, Receive, Scope, Send

from medops.errors import ConfigurationError, MissingInputError
from medops.serve.auth import (
    KEY_ID_STATE,
    OPEN_PATHS,
    AuthMiddleware,
    KeyRing,
    hash_key,
    install_auth,
    load_keys,
    main,
)

KEY = "medops_test-key-for-ci"
OTHER_KEY = "medops_second-key"
OPENAI_ERROR_FIELDS = {"message", "type", "param", "code"}


def keys_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_load_keys_reads_comments_blanks_and_any_hex_case(tmp_path: Path) -> None:
    path = keys_file(
        tmp_path,
        f"# serving keys\n\nci:{hash_key(KEY)}\n  ops:{hash_key(OTHER_KEY).upper()}  \n",
    )
    ring = load_keys(path)
    assert ring.key_ids() == {"ci", "ops"}
    assert ring.identify(KEY) == "ci"
    assert ring.identify(OTHER_KEY) == "ops"
    assert ring.identify("medops_not-a-key") is None
    assert ring.identify(hash_key(KEY)) is None  # the stored hash is not a key


@pytest.mark.parametrize(
    "bad_line",
    [
        f"ci:{KEY}",  # the raw key pasted instead of its hash
        f"ci {hash_key(KEY)}",
        f":{hash_key(KEY)}",
        f"ci:{hash_key(KEY)[:-1]}",
        f"c/i:{hash_key(KEY)}",
    ],
)
def test_bad_line_names_file_and_line_never_content(tmp_path: Path, bad_line: str) -> None:
    path = keys_file(tmp_path, f"# keys\nok:{hash_key(OTHER_KEY)}\n{bad_line}\n")
    with pytest.raises(ConfigurationError) as caught:
        load_keys(path)
    message = str(caught.value)
    assert f"{path}:3:" in message
    assert bad_line not in message and KEY not in message and hash_key(KEY) not in message


def test_duplicate_id_or_hash_and_empty_file_are_refused(tmp_path: Path) -> None:
    same_id = keys_file(tmp_path, f"ci:{hash_key(KEY)}\nci:{hash_key(OTHER_KEY)}\n")
    with pytest.raises(ConfigurationError, match=r"keys.txt:2: key id already used on line 1"):
        load_keys(same_id)
    same_hash = keys_file(tmp_path, f"ci:{hash_key(KEY)}\n\nops:{hash_key(KEY)}\n")
    with pytest.raises(ConfigurationError, match=r"keys.txt:3: key hash already used on line 1"):
        load_keys(same_hash)
    with pytest.raises(ConfigurationError, match="holds no key"):
        load_keys(keys_file(tmp_path, "# nothing yet\n"))
    with pytest.raises(MissingInputError):
        load_keys(tmp_path / "absent.txt")


def make_app(**install: object) -> FastAPI:
    app = FastAPI()

    async def ok() -> dict[str, str]:
        return {"ok": "yes"}

    for path in sorted(OPEN_PATHS):
        app.add_api_route(path, ok, methods=["GET"])

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, str | None]:
        return {"key_id": getattr(request.state, KEY_ID_STATE, None)}

    @app.post("/v1/models/{name}:predict")
    async def predict(name: str) -> dict[str, str]:
        return {"model": name}

    @app.post("/v2/repository/models/{name}/unload")
    async def unload(name: str) -> dict[str, str]:
        return {"unloaded": name}

    @app.post("/openai/v1/chat/completions")
    async def chat() -> dict[str, str]:
        return {"object": "chat.completion"}

    install_auth(app, KeyRing({"ci": hash_key(KEY)}), **install)  # type: ignore[arg-type]
    return app


def client(app: FastAPI, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://test", timeout=5.0)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.asyncio
async def test_open_paths_need_no_key_and_everything_else_does() -> None:
    async with client(make_app()) as http:
        for path in sorted(OPEN_PATHS):
            assert (await http.get(path)).status_code == 200, path
        for method, path in [
            ("GET", "/whoami"),
            ("POST", "/v1/models/m:predict"),
            ("POST", "/v2/repository/models/m/unload"),  # an off-switch: never open
            ("GET", "/metrics/extra"),
            ("GET", "/v2/health/live/"),
            ("GET", "/docs"),
        ]:
            response = await http.request(method, path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert isinstance(response.json()["error"], str)


@pytest.mark.asyncio
async def test_open_paths_are_matched_below_the_root_path() -> None:
    async with client(make_app(), root_path="/svc") as http:
        assert (await http.get("/svc/v2/health/live")).status_code == 200
        assert (await http.get("/svc/whoami")).status_code == 401


@pytest.mark.asyncio
async def test_malformed_headers_are_401_and_a_wrong_key_is_403() -> None:
    async with client(make_app()) as http:
        for value in ["Basic " + KEY, "Bearer", "Bearer ", f"Bearer {KEY} extra", KEY]:
            response = await http.get("/whoami", headers={"Authorization": value})
            assert response.status_code == 401, value
            assert "www-authenticate" in response.headers
        two = httpx.Headers([("authorization", f"Bearer {KEY}"), ("authorization", "Bearer x")])
        assert (await http.get("/whoami", headers=two)).status_code == 401

        wrong = await http.post("/v1/models/m:predict", headers=bearer("medops_guessed"))
        assert wrong.status_code == 403
        assert "medops_guessed" not in wrong.text
        assert wrong.json() == {"error": "API key not accepted"}


@pytest.mark.asyncio
async def test_right_key_passes_and_only_its_id_reaches_the_app() -> None:
    async with client(make_app()) as http:
        response = await http.get("/whoami", headers=bearer(KEY))
        assert response.status_code == 200
        assert response.json() == {"key_id": "ci"}
        lower = await http.get("/whoami", headers={"Authorization": f"bearer {KEY}"})
        assert lower.json() == {"key_id": "ci"}  # the scheme is case-insensitive
        predicted = await http.post("/v1/models/m:predict", headers=bearer(KEY))
        assert predicted.json() == {"model": "m"}


@pytest.mark.asyncio
async def test_openai_paths_answer_in_the_openai_error_shape() -> None:
    async with client(make_app()) as http:
        missing = await http.post("/openai/v1/chat/completions")
        assert missing.status_code == 401
        error = missing.json()["error"]
        assert set(error) == OPENAI_ERROR_FIELDS
        assert error["code"] == "missing_api_key" and error["param"] is None
        wrong = await http.post("/openai/v1/chat/completions", headers=bearer("medops_nope"))
        assert wrong.status_code == 403
        assert wrong.json()["error"]["code"] == "invalid_api_key"
        ok = await http.post("/openai/v1/chat/completions", headers=bearer(KEY))
        assert ok.json() == {"object": "chat.completion"}


@pytest.mark.asyncio
async def test_open_paths_can_be_chosen() -> None:
    async with client(make_app(open_paths={"/whoami"})) as http:
        assert (await http.get("/whoami")).json() == {"key_id": None}
        assert (await http.get("/metrics")).status_code == 401


@pytest.mark.asyncio
async def test_websocket_without_key_is_closed_before_the_app() -> None:
    reached: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["type"])

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    middleware = AuthMiddleware(inner, KeyRing({"ci": hash_key(KEY)}), frozenset())
    scope = {"type": "websocket", "path": "/ws", "root_path": "", "headers": []}
    await middleware(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert reached == []


def test_new_key_prints_the_key_once_and_appends_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = keys_file(tmp_path, f"ops:{hash_key(OTHER_KEY)}")  # no final newline
    assert main(["new", "ci", "--append", str(path)]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("medops_") and len(key) > 40
    assert key not in err and key not in path.read_text()
    assert load_keys(path).identify(key) == "ci"
    assert load_keys(path).identify(OTHER_KEY) == "ops"

    with pytest.raises(SystemExit) as caught:
        main(["new", "ci", "--append", str(path)])
    assert caught.value.code == 2
    assert capsys.readouterr().out == ""  # no key printed for a refused id


def test_module_cli_prints_key_on_stdout_and_line_on_stderr() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "medops.serve.auth", "new", "ci"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = result.stdout.strip()
    assert "\n" not in key
    assert f"ci:{hash_key(key)}" in result.stderr
    assert key not in result.stderr
