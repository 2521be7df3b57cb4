"""Talk to the Redis online store directly, for what Feast's API does not do: check it
answers before a long job, and delete one entity (erasure).

The connection string is Feast's (``host:port,db=N,ssl=true,password=...``), read from the
generated configuration after Feast substituted ``${REDIS_PASSWORD}``; messages name the
server and database, never the password.
"""

from __future__ import annotations

import json
from typing import Any

from medops.features.errors import OnlineStoreUnreachable


def parse_connection(connection_string: str) -> dict[str, Any]:
    """redis-py keyword arguments of a Feast Redis connection string (one server)."""
    host, _, port = connection_string.split(",")[0].partition(":")
    settings: dict[str, Any] = {"host": host or "127.0.0.1", "port": int(port or 6379)}
    for part in connection_string.split(",")[1:]:
        key, _, value = part.partition("=")
        try:
            settings[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            settings[key.strip()] = value
    return settings


def where(connection_string: str) -> str:
    """``host:port db N`` for messages: what the user configured, without a password."""
    settings = parse_connection(connection_string)
    return f"{settings['host']}:{settings['port']} db {settings.get('db', 0)}"


def redis_client(connection_string: str) -> Any:
    """A connected client; an unreachable or refusing server is a user-fixable error."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    settings = parse_connection(connection_string)
    # one quick retry: redis-py's default backoff takes ~10 s to say a server is down
    quick = Retry(NoBackoff(), retries=1)
    client = redis.Redis(socket_connect_timeout=5, socket_timeout=10, retry=quick, **settings)
    try:
        client.ping()
    except redis.exceptions.RedisError as error:
        kind = type(error).__name__
        raise OnlineStoreUnreachable(
            f"the Redis online store at {where(connection_string)} did not answer ({kind}): "
            "start it, or fix features.online_store.connection_string (and REDIS_PASSWORD "
            "if it asks for one)"
        ) from None
    return client
