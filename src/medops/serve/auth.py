"""Bearer API keys, stored only as SHA-256 hashes.

A keys file holds one ``<key-id>:<sha256 hex of the key>`` line per key (blank lines and
``#`` comments allowed), so the file reveals no usable key. ``python -m medops.serve.auth
new KEY_ID`` makes a key: the key goes to stdout once, the line for the file to stderr (or
into the file with ``--append``).

``install_auth`` guards every route except ``OPEN_PATHS`` (exact paths, any method): the
liveness/readiness probes and the metrics scrape must work without a key. Per-model
metadata, readiness and the v2 repository load/unload routes are NOT open. A missing or
malformed ``Authorization: Bearer <key>`` header is a 401 with ``WWW-Authenticate: Bearer``,
an unknown key a 403. The key id (never the key) is put in ``scope["state"]`` under
``KEY_ID_STATE`` for metrics.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from medops.errors import ConfigurationError, MedopsError, MissingInputError
from medops.serve.limits import route_path, send_error

OPEN_PATHS: frozenset[str] = frozenset(
    {
        "/",  # kserve liveness
        "/v2",  # v2 server metadata
        "/v2/health/live",
        "/v2/health/ready",
        "/metrics",  # Prometheus scrape
    }
)
KEY_ID_STATE = "medops_api_key_id"
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LINE = re.compile(rf"({KEY_ID.pattern}):([0-9a-fA-F]{{64}})")
_NEW_KEY_HELP = "create one with `python -m medops.serve.auth new KEY_ID`"


def hash_key(key: str) -> str:
    """The SHA-256 hex digest a keys file stores for ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random key; the prefix lets secret scanners recognise a leaked one."""
    return "medops_" + secrets.token_urlsafe(32)


class KeyRing:
    """Key ids by the hash of their key; the keys themselves are never held."""

    def __init__(self, hashes: Mapping[str, str]) -> None:
        self._hashes = {key_id: digest.lower() for key_id, digest in hashes.items()}

    def __len__(self) -> int:
        return len(self._hashes)

    def key_ids(self) -> frozenset[str]:
        return frozenset(self._hashes)

    def identify(self, key: str) -> str | None:
        """The id of ``key``, or None; every stored hash is compared, in constant time each."""
        digest = hash_key(key)
        found = None
        for key_id, stored in self._hashes.items():
            if hmac.compare_digest(digest, stored):
                found = key_id
        return found


def load_keys(path: str | Path) -> KeyRing:
    """Read a keys file; errors name the file and line, never the line's content."""
    path = Path(path)
    hashes = _read_hashes(path)
    if not hashes:
        raise ConfigurationError(f"API keys file {path} holds no key; {_NEW_KEY_HELP}")
    return KeyRing(hashes)


def _read_hashes(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise MissingInputError(f"API keys file {path} does not exist; {_NEW_KEY_HELP}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(
            f"API keys file {path} cannot be read: {type(error).__name__}"
        ) from None
    hashes: dict[str, str] = {}
    seen: dict[str, int] = {}  # key id or hash -> line number
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise ConfigurationError(
                f"{path}:{number}: expected '<key-id>:<sha256 hex of the key>' (key id: up to "
                "64 letters, digits, '.', '_', '-'; hash: 64 hex digits)"
            )
        key_id, digest = match[1], match[2].lower()
        for what, value in (("key id", key_id), ("key hash", digest)):
            if value in seen:
                raise ConfigurationError(
                    f"{path}:{number}: {what} already used on line {seen[value]}"
                )
            seen[value] = number
        hashes[key_id] = digest
    return hashes


def _bearer_token(scope: Scope) -> str | None:
    """The token of exactly one ``Authorization: Bearer <token>`` header, else None."""
    values = [value for name, value in scope["headers"] if name == b"authorization"]
    if len(values) != 1:
        return None
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


class AuthMiddleware:
    """401/403 for requests without a known key, outside ``open_paths``."""

    def __init__(self, app: ASGIApp, ring: KeyRing, open_paths: frozenset[str]) -> None:
        self.app = app
        self.ring = ring
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or route_path(scope) in self.open_paths:
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        key_id = self.ring.identify(token) if token is not None else None
        if key_id is not None:
            scope.setdefault("state", {})[KEY_ID_STATE] = key_id
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: a 403
        elif token is None:
            await send_error(
                scope,
                send,
                401,
                "missing or malformed Authorization header; send 'Authorization: Bearer <key>'",
                code="missing_api_key",
                headers=[(b"www-authenticate", b'Bearer realm="medops"')],
            )
        else:
            await send_error(scope, send, 403, "API key not accepted", code="invalid_api_key")


def install_auth(app: FastAPI, ring: KeyRing, open_paths: Iterable[str] = OPEN_PATHS) -> None:
    """Require a bearer key from ``ring`` on every path but ``open_paths`` (exact matches)."""
    app.add_middleware(AuthMiddleware, ring=ring, open_paths=frozenset(open_paths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medops.serve.auth", description="Manage medops serving API keys."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="create a key: the key to stdout, once")
    new.add_argument("key_id", help="name of the key (letters, digits, . _ -), e.g. ci")
    new.add_argument("--append", type=Path, metavar="FILE", help="add its line to this file")
    args = parser.parse_args(argv)
    if not KEY_ID.fullmatch(args.key_id):
        parser.error("KEY_ID: up to 64 letters, digits, '.', '_', '-'; starting alphanumeric")
    key = new_key()
    line = f"{args.key_id}:{hash_key(key)}"
    if args.append is not None:
        if args.append.is_file():
            try:  # refuses a broken file before adding to it
                taken = args.key_id in _read_hashes(args.append)
            except MedopsError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            if taken:
                parser.error(f"key id {args.key_id} is already in {args.append}")
            text = args.append.read_text(encoding="utf-8")
            line = ("" if not text or text.endswith("\n") else "\n") + line
        with args.append.open("a", encoding="utf-8") as keys_file:
            keys_file.write(line + "\n")
        print(f"added key {args.key_id} to {args.append}", file=sys.stderr)
    else:
        print(f"add this line to the API keys file:\n{line}", file=sys.stderr)
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
