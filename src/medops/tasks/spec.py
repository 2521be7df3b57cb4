"""What a task plug-in declares: its recipe, and where its stage, model and serving code live.

Code is named as ``"module:attribute"`` and imported on use (torchtune's recipe registry
does the same with file paths): reading the registry loads neither torch nor Ray, so
``medops validate``, the operator and the model server can list tasks cheaply, and the
layers stay honest (the server never imports a training loop).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.errors import ConfigurationError
from medops.recipe import Recipe


def load(reference: str) -> Any:
    """``"package.module:name"`` -> the object it names."""
    module, _, attribute = reference.partition(":")
    target = importlib.import_module(module)
    return getattr(target, attribute) if attribute else target


@dataclass(frozen=True)
class Task:
    """One task: ``medops.tasks.<module>.TASK``.

    - ``prepare(recipe, out_dir) -> Manifest``: the table/FHIR/notes reader unless a task
      reads its own formats (instruct reads conversations)
    - ``train(recipe, out_dir, prepared, resume=False) -> Manifest``
    - ``evaluate(recipe, out_dir, prepared, trained) -> Manifest``
    - ``signature(recipe, trained: Trained) -> mlflow ModelSignature`` of the pyfunc
    - ``artifacts(recipe, trained: Trained, out_dir) -> {name: path}`` the pyfunc loads
    - ``pyfunc``: a module logged as MLflow "model from code" (no pickle), for
      ``mlflow.pyfunc.load_model`` users
    - ``predictor``: a ``kserve.Model`` factory taking (recipe, model_uri, tracking_uri).
      The built-in ones build their model from the version's data and never load the
      pyfunc, so no code from the registry runs in serving
    - ``review``: what clinicians review (``medops review push``): the answer fields and the
      held-out items with the evaluated version's answers
    - ``demo``: a module with ``ask(recipe, base_url, test_rows) -> dict`` (requests to the
      served model), ``scores(recipe, metrics) -> dict`` (the summary's metric keys) and
      ``show(summary)`` (what ``medops demo`` prints)
    """

    name: str
    recipe: type[Recipe]
    train: str
    evaluate: str
    signature: str
    artifacts: str
    pyfunc: str
    predictor: str
    prepare: str = "medops.tasks.context:prepare"
    review: str | None = None  # (recipe, prepared, evaluated) -> (fields, items): review push
    demo: str | None = None
    resumable: bool = False
    dry_run: bool = False  # ``medops train --dry-run`` builds its model on the meta device

    def function(self, role: str) -> Any:
        """The object the task names for ``role`` (train, evaluate, signature, ...)."""
        reference = getattr(self, role)
        if reference is None:
            raise ConfigurationError(f"task {self.name} has no {role.replace('_', ' ')}")
        return load(reference)

    def pyfunc_path(self) -> Path:
        spec = importlib.util.find_spec(self.pyfunc)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"task {self.name}: pyfunc module {self.pyfunc} not found")
        return Path(spec.origin)
