"""Point-in-time join for training: each row gets the features known before its time.

Feast's ``get_historical_features`` on the duckdb offline store. Not the file (Dask)
store: it silently drops an entity row whose feature rows are all later than the row's
time (``_filter_ttl``), so a training set would lose exactly the rows with no history yet;
duckdb keeps every row, with nulls. medops still checks: every input row comes back, in
the input's order, or the join fails loudly.
"""

from __future__ import annotations

import pandas as pd

from medops.features.asof import TIMESTAMP, parse_timestamps
from medops.features.errors import FeatureDataError
from medops.features.quiet import quiet
from medops.features.spec import RepoSpec
from medops.features.store import FeatureRepo

ROW = "__medops_row"  # carries each row's position through Feast
_DTYPES = {"int64": "Int64", "float64": "Float64", "string": "string"}


class JoinLostRows(RuntimeError):
    """Feast returned other rows than it was given: a bug, never a user's to fix."""


def _entity_frame(spec: RepoSpec, rows: pd.DataFrame, timestamp: str) -> pd.DataFrame:
    """Feast's entity frame: key, UTC time and position of each row that can be joined
    (a row without a key or a readable time keeps null features)."""
    for column in (spec.join_key, timestamp):
        if column not in rows.columns:
            raise FeatureDataError(
                f"the rows to join have no {column!r} column; they need {spec.join_key!r} "
                f"(the {spec.entity} entity) and {timestamp!r} (when each row was written)"
            )
    keys = rows[spec.join_key].astype("string").str.strip()
    frame = pd.DataFrame(
        {
            spec.join_key: keys.to_numpy(dtype=object),
            TIMESTAMP: parse_timestamps(rows[timestamp]),  # indexed 0..n-1, as ROW
            ROW: range(len(rows)),
        }
    )
    usable = frame[spec.join_key].notna() & (frame[spec.join_key] != "") & frame[TIMESTAMP].notna()
    return frame[usable].reset_index(drop=True)


def historical_features(
    repo: FeatureRepo, rows: pd.DataFrame, timestamp: str = "timestamp"
) -> pd.DataFrame:
    """``rows`` with the repository's features added as of each row's ``timestamp``.

    ``rows`` names the entity by the join key (``drug``, or ``patient_key`` as prepare
    writes it). Same count, same order; typed nullable columns (duckdb returns integers as
    floats: they are made integers again).
    """
    spec = repo.spec
    entities = _entity_frame(spec, rows, timestamp)
    joined = pd.DataFrame({ROW: pd.Series(dtype="int64")})
    if len(entities):
        with quiet():
            job = repo.store.get_historical_features(entity_df=entities, features=spec.refs)
            joined = job.to_df()
    if sorted(joined[ROW].tolist()) != entities[ROW].tolist():
        raise JoinLostRows(f"the join returned {len(joined)} rows for {len(entities)}")
    by_row = joined.set_index(ROW).reindex(range(len(rows)))
    out = rows.copy()
    for name, kind in spec.features.items():
        values = by_row[name] if name in by_row else pd.Series(index=by_row.index, dtype=object)
        if kind == "int64":
            values = pd.to_numeric(values).round()
        out[name] = pd.Series(values.astype(_DTYPES[kind]).array, index=out.index)
    return out
