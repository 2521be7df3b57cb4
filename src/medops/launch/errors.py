"""Launcher errors, importable without importing kfp (the CLI catches them cheaply)."""

from __future__ import annotations

from pathlib import Path

from medops.errors import MedopsError


class PipelineFailed(MedopsError, RuntimeError):
    """A pipeline task failed: names the task, its last error line and where its log is."""

    def __init__(self, task: str, log: Path, reason: str) -> None:
        self.task = task
        self.log = log
        self.reason = reason
        super().__init__(f"pipeline task {task!r} failed: {reason}\n  task log: {log}")


class ClusterError(MedopsError, RuntimeError):
    """A cluster request that cannot go on (unreachable, refused, missing): one line saying why."""
