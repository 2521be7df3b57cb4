"""Atomic file writes: a reader (a join, a materialize) never sees half a parquet."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def _replace(path: Path, write: Any) -> None:
    """Write beside ``path`` with ``write(tmp)``, fsync, rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    _replace(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_table(table: pa.Table, path: Path) -> None:
    _replace(path, lambda tmp: pq.write_table(table, tmp))


def write_json(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"  # as write_manifest writes it
    _replace(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
