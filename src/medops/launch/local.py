"""Run a recipe's pipeline on this machine with Kubeflow Pipelines' local runner.

The very pipeline that is compiled for a cluster runs here. ``runner="subprocess"``: each
task a subprocess of the current interpreter (``SubprocessRunner(use_venv=False)``: no
per-task pip installs, the project venv is the image). ``runner="docker"``: each task in
its own container from the medops image, set up as a pod is (``medops.launch.containers``).
kfp.local streams every task's output to stdout and keeps no log file, so the run's stdout
is teed into ``<run>/pipeline.log`` and split into ``<run>/<task>/task.log``; a failure
then surfaces as one ``PipelineFailed`` line that names the task and its log instead of the
task's traceback.

Layout under ``<recipe.out>/pipeline``: ``<recipe.name>-<timestamp>/<task>/<artifact>``.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import re
import sys
import warnings
from pathlib import Path
from typing import TextIO

import kfp.local

from medops.launch.containers import (
    check_image,
    check_stage_outputs,
    docker_runner,
    writable_by_image,
)
from medops.launch.errors import PipelineFailed
from medops.recipe import Recipe
from pipelines.classification import STAGE_OUTPUTS, build_pipeline

PIPELINE_LOG = "pipeline.log"
TASK_LOG = "task.log"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '(?P<task>[^']+)'")
_TASK_FAILED = re.compile(r"Task '(?P<task>[^']+)' finished with status FAILURE")
_TASK_DONE = re.compile(r"Task '[^']+' finished with status")
_PIPELINE_DONE = re.compile(r"Pipeline '[^']+' finished with status")
# kfp.local's error when a task it counted as a success left no outputs (a container whose
# exit code was lost: medops.launch.containers)
_NO_OUTPUTS = re.compile(r"from task '(?P<task>[^']+)', but task '[^']+' not found")


# what a user watches on the console: task starts and ends, medops' own stage progress,
# training steps and errors. The executor's input dumps and Ray's housekeeping lines go to
# the log files only (the run prints where they are).
_PROGRESS = re.compile(
    r"- INFO - (Executing task|Task '[^']+' finished|Pipeline '[^']+' finished)"
    r"|INFO\]: (prepare|train|evaluate|register|baseline|evaluate model|champion|"
    r"few-shot baseline)[: ]"
    r"|\) train: "
    r"|\bERROR\b|Traceback"
)


class _Progress(io.TextIOBase):
    """Keeps every line for the log and shows the console only the progress lines."""

    def __init__(self, console: TextIO, log: TextIO) -> None:
        super().__init__()
        self._console, self._log, self._partial = console, log, ""

    def write(self, text: str) -> int:
        self._log.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if _PROGRESS.search(_ANSI.sub("", line)):
                self._console.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._console.flush()
        self._log.flush()


def run_local(recipe: Recipe, runner: str = "subprocess") -> dict[str, Path]:
    """Run prepare -> train -> evaluate -> register; return each stage's output directory."""
    pipeline_root = (recipe.out / "pipeline").resolve()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    earlier_runs = set(pipeline_root.iterdir())
    in_containers = runner == "docker"
    if in_containers:
        check_image(recipe.cluster.images.cpu)
    kfp.local.init(
        runner=docker_runner(recipe)
        if in_containers
        else kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=False,
    )
    pipeline = build_pipeline(recipe, image=recipe.cluster.images.cpu if in_containers else None)
    captured = io.StringIO()
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(_Progress(sys.stdout, captured)),
        writable_by_image(recipe.out.resolve()) if in_containers else contextlib.nullcontext(),
    ):
        # the image is ours and medops is installed here: the "non-Python image" hint is noise
        warnings.filterwarnings("ignore", ".*non-Python base image", RuntimeWarning)
        try:
            outputs = pipeline().outputs
        except ValueError as error:
            lost = _NO_OUTPUTS.search(str(error))
            if not lost:
                raise
            outputs, lost_task = {}, lost["task"]
        else:
            lost_task = None

    run_dir = _run_dir(pipeline_root, earlier_runs, recipe.name)
    log = _ANSI.sub("", captured.getvalue())
    sections = _task_sections(log)
    task_logs = _write_logs(run_dir, log, sections)
    print(f"full log: {run_dir / PIPELINE_LOG}", flush=True)
    failed = _TASK_FAILED.search(log)
    if lost_task:
        raise PipelineFailed(
            lost_task,
            task_logs.get(lost_task, run_dir / PIPELINE_LOG),
            "the step wrote no outputs: it failed in its container, whose exit code kfp.local "
            f"lost ({_last_line(sections.get(lost_task, '')) or 'see the log'})",
        )
    if failed or set(outputs) != set(STAGE_OUTPUTS.values()):
        task = failed["task"] if failed else "<unknown>"
        raise PipelineFailed(
            task,
            task_logs.get(task, run_dir / PIPELINE_LOG),
            _last_line(sections.get(task, "")) or "see the log",
        )
    directories = {stage: Path(outputs[name].path) for stage, name in STAGE_OUTPUTS.items()}
    check_stage_outputs(directories, task_logs, run_dir / PIPELINE_LOG)
    return directories


def _run_dir(pipeline_root: Path, earlier_runs: set[Path], pipeline_name: str) -> Path:
    """The directory kfp.local made for this run; made here if no task got far enough to."""
    new = sorted(
        path
        for path in set(pipeline_root.iterdir()) - earlier_runs
        if path.is_dir() and path.name.startswith(f"{pipeline_name}-")
    )
    if new:
        return new[-1]  # names end in a timestamp: the newest is ours
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S-%f")
    run_dir = pipeline_root / f"{pipeline_name}-{stamp}"
    run_dir.mkdir()
    return run_dir


def _task_sections(log: str) -> dict[str, str]:
    """Split the run log at kfp.local's ``Executing task '<name>'`` lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in log.splitlines(keepends=True):
        start = _TASK_START.search(line)
        if start:
            current = sections.setdefault(start["task"], [])
        elif _PIPELINE_DONE.search(line):
            current = None
        if current is not None:
            current.append(line)
    return {task: "".join(lines) for task, lines in sections.items()}


def _write_logs(run_dir: Path, log: str, sections: dict[str, str]) -> dict[str, Path]:
    """Write the whole run's log and one log per task; return task -> its log path."""
    (run_dir / PIPELINE_LOG).write_text(log, encoding="utf-8")
    paths = {}
    for task, text in sections.items():
        path = run_dir / task / TASK_LOG
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths[task] = path
    return paths


def _last_line(task_log: str) -> str:
    """The task's last own output line (for a crash, the exception), before kfp's verdict."""
    verdict = _TASK_DONE.search(task_log)
    own = task_log[: task_log.rfind("\n", 0, verdict.start())] if verdict else task_log
    lines = [line.strip() for line in own.splitlines() if line.strip()]
    return lines[-1] if lines else ""
