"""Tasks as plug-ins: every module or package here that defines ``TASK`` is a task.

Adding a task is adding one module (docs/architecture.md): its recipe model joins the
recipe's discriminated union, its functions the stages, its predictor ``medops serve``.
Nothing outside this package branches on the task's name.
"""

from __future__ import annotations

import importlib
import pkgutil

from medops.errors import ConfigurationError
from medops.recipe import Recipe
from medops.tasks.spec import Task

__all__ = ["Task", "get_task", "task_of", "tasks"]


def tasks() -> dict[str, Task]:
    """Every task found on this package's path, by name (found afresh: plug-ins may join)."""
    found: dict[str, Task] = {}
    for module in pkgutil.iter_modules(__path__):
        task = getattr(importlib.import_module(f"{__name__}.{module.name}"), "TASK", None)
        if isinstance(task, Task):
            found[task.name] = task
    return found


def get_task(name: str) -> Task:
    known = tasks()
    if name not in known:
        raise ConfigurationError(f"task {name!r} is not a task; use one of {', '.join(known)}")
    return known[name]


def task_of(recipe: Recipe) -> Task:
    return get_task(recipe.task)
