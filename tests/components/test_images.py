"""Every Dockerfile under components/ parses, pins its bases, runs as non-root, installs
medops against the lock and starts a console script medops really installs. No container
engine runs here, so the checks read the instructions (a small parser: continuation lines,
comments, stages and what a stage inherits from the stage it builds on)."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from medops.recipe import is_pinned_image

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(
    path
    for path in (ROOT / "components").rglob("*")
    if path.name == "Dockerfile" or path.name.endswith(".Dockerfile")
)
INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip
TARGETS = {"cpu", "gpu"}  # the stages `make images` builds


@dataclass
class Stage:
    base: str
    name: str | None
    lines: list[tuple[str, str]] = field(default_factory=list)


def parse(path: Path) -> list[Stage]:
    """Stages of a Dockerfile, each with its (INSTRUCTION, arguments) lines."""
    logical, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # blank lines and comments (parser directives too) end nothing
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path.name}: dangling line continuation"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        assert keyword in INSTRUCTIONS, f"{path.name}: unknown instruction {keyword!r}"
        if keyword == "FROM":
            words = arguments.split()
            assert len(words) in (1, 3), f"{path.name}: FROM {arguments!r}"
            stages.append(Stage(words[0], words[2] if len(words) == 3 else None))
        else:
            assert stages, f"{path.name}: {keyword} before the first FROM"
            stages[-1].lines.append((keyword, " ".join(arguments.split())))
    return stages


def inherited(stage: Stage, named: dict[str, Stage], keyword: str) -> str | None:
    """The last ``keyword`` argument in ``stage`` or, failing that, the stage it builds on."""
    own = [arguments for key, arguments in stage.lines if key == keyword]
    if own:
        return own[-1]
    parent = named.get(stage.base)
    return inherited(parent, named, keyword) if parent else None


def console_scripts() -> dict[str, str]:
    return {
        entry.name: entry.value
        for entry in importlib.metadata.distribution("medops").entry_points
        if entry.group == "console_scripts"
    }


def _user_problem(name: str, user: str | None) -> list[str]:
    uid = (user or "").split(":")[0]
    if uid.isdigit() and int(uid) != 0:
        return []
    return [f"{name}: runs as {user or 'root (no USER)'}; use a numeric non-root USER"]


def _entrypoint_problem(name: str, entrypoint: str | None) -> list[str]:
    try:
        command = json.loads(entrypoint or "")  # exec form, so signals reach the process
    except json.JSONDecodeError:
        return [f"{name}: ENTRYPOINT {entrypoint!r} is not in exec form"]
    target = console_scripts().get(command[0])
    if target is None:
        return [f"{name}: ENTRYPOINT {command[0]} is not a medops console script"]
    module, _, attribute = target.partition(":")
    return [] if callable(getattr(importlib.import_module(module), attribute)) else [target]


def problems(path: Path, context: Path = ROOT) -> list[str]:
    """What is wrong with a Dockerfile, as readable lines; empty when nothing is."""
    stages = parse(path)
    named = {stage.name: stage for stage in stages if stage.name}
    found = [
        f"FROM {stage.base}: pin the base by tag or digest"
        for index, stage in enumerate(stages)
        if stage.base not in {s.name for s in stages[:index]} and not is_pinned_image(stage.base)
    ]
    if TARGETS - set(named):
        found.append(f"stages {sorted(TARGETS - set(named))} are missing")
    for name in sorted(TARGETS & set(named)):
        found += _user_problem(name, inherited(named[name], named, "USER"))
        found += _entrypoint_problem(name, inherited(named[name], named, "ENTRYPOINT"))
    lines = [line for stage in stages for line in stage.lines]
    installs = [
        args
        for key, args in lines
        if key == "RUN" and re.search(r"pip install [^&]*\s\.(\s|$)", args)
    ]
    if not installs:
        found.append("no RUN installs medops (pip install .)")
    found += [
        f"medops installed without -c requirements.lock: {args}"
        for args in installs
        if "requirements.lock" not in args
        or not re.search(r"pip install [^&]*-c \S+ \.(\s|$)", args)
    ]
    for key, args in lines:
        words = shlex.split(args)
        if key == "COPY" and not any(word.startswith("--from") for word in words):
            sources = [word for word in words[:-1] if not word.startswith("--")]
            found += [
                f"COPY {s}: not in the build context" for s in sources if not (context / s).exists()
            ]
    return found


def test_the_image_definitions_are_found() -> None:
    found = [path.relative_to(ROOT).as_posix() for path in DOCKERFILES]
    assert "components/images/Dockerfile" in found


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_every_check(path: Path) -> None:
    assert problems(path) == []


def test_the_checks_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:3.11.7-slim AS build\n"
        "# a comment between continued lines\n"
        "RUN pip install \\\n    --no-deps .\n"
        "FROM python AS cpu\n"
        "COPY --from=build /opt /opt\n"
        "COPY missing.txt /x\n"
        "USER root\n"
        "ENTRYPOINT medops\n"
        "FROM cpu AS gpu\n"
        'USER 1000\nENTRYPOINT ["medopz"]\n'
    )
    assert problems(bad, context=tmp_path) == [
        "FROM python: pin the base by tag or digest",
        "cpu: runs as root; use a numeric non-root USER",
        "cpu: ENTRYPOINT 'medops' is not in exec form",
        "gpu: ENTRYPOINT medopz is not a medops console script",
        "medops installed without -c requirements.lock: pip install --no-deps .",
        "COPY missing.txt: not in the build context",
    ]
