"""A registry write is not code execution in serving (issue 22, finding 6): a registered
classifier is served from its data, and a version holding a pickle, code, or files changed
since registration is refused before anything in it is read."""

from __future__ import annotations

import asyncio
import importlib.metadata
import pickle
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest
from safetensors.torch import load_file, save_file

from medops.model.registered import fetch_model, registered_artifacts
from medops.recipe import Recipe
from medops.registry.integrity import DIGESTS_TAG, UnsafeArtifactError
from medops.registry.tracking import client, tracking_uri
from medops.stages import run_stage
from medops.tasks.classification.serving import ClassifierPredictor

TEXTS = ["skin pimples on my face", "mood sad and hopeless", "back ache, knee hurt"]


@dataclass(frozen=True)
class Version:
    recipe: Recipe
    model_uri: str
    store: Path  # the version's files in the artifact store (local: served in place)

    def predictor(self) -> ClassifierPredictor:
        return ClassifierPredictor(self.recipe, self.model_uri, tracking_uri(self.recipe))


@pytest.fixture
def version(tiny_recipe: Recipe, prepared_dir: Path, trained_dir: Path, tmp_path: Path) -> Version:
    """A classifier registered by the register stage, as a pipeline registers one."""
    gate = tiny_recipe.gate.model_copy(update={"min_value": 0.0, "not_below_baseline": False})
    # float32 serving: these tests compare answers with the pyfunc's exactly (bf16 serving,
    # serve.dtype auto on a bf16 CPU, is tested in tests/serve/test_predictor.py)
    serve = tiny_recipe.serve.model_copy(update={"dtype": "fp32"})
    recipe = tiny_recipe.model_copy(update={"gate": gate, "serve": serve})
    stages = {"prepared": prepared_dir, "trained": trained_dir}
    run_stage("evaluate", recipe, tmp_path / "evaluated", stages)
    stages["evaluated"] = tmp_path / "evaluated"
    registered = run_stage("register", recipe, tmp_path / "registered", stages)
    name, number = recipe.registry.model_name, registered.extra["version"]
    store = Path(urlsplit(client(recipe).get_model_version_download_uri(name, number)).path)
    return Version(recipe, registered.extra["model_uri"], store)


class _Payload:
    """Unpickling it creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize(
    "planted",
    ["artifacts/model/head.pkl", "artifacts/model/encoder/pytorch_model.bin", "python_model.pkl"],
)
def test_a_pickle_planted_in_a_registered_classifier_is_refused_unread(
    version: Version, tmp_path: Path, planted: str
):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Payload(marker))
    (version.store / planted).write_bytes(payload)
    predictor = version.predictor()
    with pytest.raises(UnsafeArtifactError, match=rf"'{planted}' is a pickled file.*Remove it"):
        predictor.load()
    assert not marker.exists() and predictor.ready is False
    pickle.loads(payload)  # the control: the planted payload was live
    assert marker.exists()


def test_python_code_in_a_version_is_refused_and_the_pyfunc_code_never_runs(
    version: Version, tmp_path: Path
):
    marker = tmp_path / "imported"
    code = f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
    (version.store / "artifacts/model/encoder/modeling_bert.py").write_text(code)
    with pytest.raises(UnsafeArtifactError, match=r"modeling_bert.py' is Python code"):
        version.predictor().load()
    (version.store / "artifacts/model/encoder/modeling_bert.py").unlink()

    # the pyfunc file MLflow writes is allowed, because serving never imports it
    (version.store / "pyfunc.py").write_text(code)
    predictor = version.predictor()
    assert predictor.load() is True
    assert not marker.exists()
    predictor.stop()
    mlflow.pyfunc.load_model(str(version.store))  # the control: MLflow's loader runs it
    assert marker.exists()


def _tamper_head(store: Path) -> str:
    head = store / "artifacts/model/head.safetensors"
    weights = load_file(str(head))
    save_file({"weight": -weights["weight"], "bias": weights["bias"]}, str(head))
    return "'artifacts/model/head.safetensors' has a sha256 that differs from the digest"


def _add_file(store: Path) -> str:
    (store / "artifacts/model/encoder/special_tokens_map.json").write_text("{}")
    return "'artifacts/model/encoder/special_tokens_map.json' was not recorded at registration"


def _remove_file(store: Path) -> str:
    (store / "artifacts/model/medops_model.json").unlink()
    return "'artifacts/model/medops_model.json' was recorded at registration and is missing"


@pytest.mark.parametrize("tamper", [_tamper_head, _add_file, _remove_file])
def test_files_changed_after_registration_are_refused(version: Version, tamper):
    needle = tamper(version.store)
    predictor = version.predictor()
    with pytest.raises(UnsafeArtifactError, match=rf"{needle}.*Do not serve it"):
        predictor.load()
    assert predictor.ready is False


def test_a_version_without_recorded_digests_is_refused(version: Version):
    name = version.recipe.registry.model_name
    number = version.model_uri.rsplit("/", 1)[1]
    client(version.recipe).delete_model_version_tag(name, number, DIGESTS_TAG)
    with pytest.raises(UnsafeArtifactError, match=f"has no {DIGESTS_TAG} tag"):
        version.predictor().load()
    runs_uri = ClassifierPredictor(version.recipe, str(version.store), None)
    with pytest.raises(UnsafeArtifactError, match="is not a registered version"):
        runs_uri.load()


def _answers(predictor: ClassifierPredictor) -> tuple[dict, list]:
    v1, _ = asyncio.run(predictor({"instances": TEXTS}))
    tensor = InferInput("text", [len(TEXTS)], "BYTES", [t.encode() for t in TEXTS])
    v2, _ = asyncio.run(predictor(InferRequest("condition", [tensor], request_id="r")))
    return v1, [(o.name, o.shape, o.as_numpy().tolist()) for o in v2.outputs]


def test_a_registered_classifier_serves_what_its_pyfunc_answered(version: Version):
    served = version.predictor()
    assert served.load() is True
    local = Path(fetch_model(version.model_uri, tracking_uri(version.recipe)))
    before = version.predictor()  # the previous serving path: MLflow loads the pyfunc
    before.attach(mlflow.pyfunc.load_model(str(local)), registered_artifacts(local))
    try:
        assert _answers(served) == _answers(before)
    finally:
        served.stop()
        before.stop()
    pinned = f"medops=={importlib.metadata.version('medops')}"
    assert pinned in (local / "requirements.txt").read_text().splitlines()
