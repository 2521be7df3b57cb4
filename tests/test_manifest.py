from pathlib import Path

import pytest

from medops.manifest import Manifest, read_manifest, sha256_path, timed, write_manifest


def test_directory_hash_tracks_content_and_names(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("two")
    first = sha256_path(tmp_path)
    assert sha256_path(tmp_path) == first
    (tmp_path / "b.txt").write_text("two!")
    assert sha256_path(tmp_path) != first
    (tmp_path / "b.txt").write_text("two")
    (tmp_path / "b.txt").rename(tmp_path / "c.txt")
    assert sha256_path(tmp_path) != first


def test_manifest_round_trip_records_time_and_versions(tmp_path: Path) -> None:
    manifest = Manifest(stage="prepare", recipe_hash="abc")
    with timed(manifest):
        manifest.counts["rows_in"] = 3
    write_manifest(manifest, tmp_path)
    data = read_manifest(tmp_path)
    assert data["counts"] == {"rows_in": 3}
    assert data["wall_seconds"] >= 0
    assert "torch" in data["versions"]


def test_missing_manifest_says_which_stage_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="has no manifest.json"):
        read_manifest(tmp_path)
