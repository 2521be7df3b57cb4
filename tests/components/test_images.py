"""Every Dockerfile under components/ parses, pins its bases, runs as non-root, installs
only from the wheelhouse (no network in the build) and defaults to a console script medops
really installs. `make e2e` builds and runs the image; these checks read the instructions,
so they hold in `make test` where no container engine runs (a small parser: continuation
lines, comments, global ARGs, stages and what a stage inherits from the one it builds on)."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
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
    global_args: dict[str, str] = {}
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        assert keyword in INSTRUCTIONS, f"{path.name}: unknown instruction {keyword!r}"
        if keyword == "ARG" and not stages:  # a global ARG: what FROM lines may name
            name, _, default = arguments.partition("=")
            global_args[name.strip()] = default.strip()
        elif keyword == "FROM":
            words = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m[1], m[0]), arguments).split()
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


def _command_problem(name: str, entrypoint: str | None, command: str | None) -> list[str]:
    """No ENTRYPOINT (KFP, KubeRay and the predictor each name their command); the default
    CMD, in exec form so signals reach it, is a console script medops installs."""
    if entrypoint is not None:
        return [f"{name}: ENTRYPOINT {entrypoint}: leave it out, every user names its command"]
    try:
        words = json.loads(command or "")
    except json.JSONDecodeError:
        return [f"{name}: CMD {command!r} is not in exec form"]
    target = console_scripts().get(words[0])
    if target is None:
        return [f"{name}: CMD {words[0]} is not a medops console script"]
    module, _, attribute = target.partition(":")
    return [] if callable(getattr(importlib.import_module(module), attribute)) else [target]


def problems(path: Path) -> list[str]:
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
        found += _command_problem(
            name,
            inherited(named[name], named, "ENTRYPOINT"),
            inherited(named[name], named, "CMD"),
        )
    installs = [
        args
        for stage in stages
        for key, args in stage.lines
        if key == "RUN" and re.search(r"pip install", args)
    ]
    if not any(re.search(r"pip install [^&]*/wheels/medops/", args) for args in installs):
        found.append("no RUN installs the medops wheel from the wheelhouse")
    found += [
        f"pip install reaches an index: {args}"
        for args in installs
        if len(re.findall(r"pip install", args))
        != len(re.findall(r"pip install [^&]*--no-index", args))
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
        "ARG BASE=python\n"
        "FROM python:3.11.7-slim AS build\n"
        "# a comment between continued lines\n"
        "RUN pip install \\\n    --no-deps /wheels/medops/*.whl\n"
        "FROM ${BASE} AS cpu\n"
        "COPY --from=build /opt /opt\n"
        "USER root\n"
        "CMD medops\n"
        "FROM cpu AS gpu\n"
        'USER 1000\nENTRYPOINT ["medops"]\n'
    )
    assert problems(bad) == [
        "FROM python: pin the base by tag or digest",
        "cpu: runs as root; use a numeric non-root USER",
        "cpu: CMD 'medops' is not in exec form",
        'gpu: ENTRYPOINT ["medops"]: leave it out, every user names its command',
        "pip install reaches an index: pip install --no-deps /wheels/medops/*.whl",
    ]
