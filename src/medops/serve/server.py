"""Run a task's predictor under KServe's ModelServer, bound to the recipe's host.

Why a subclass: kserve 0.21's ``RESTServer`` builds its ``uvicorn.Config`` with
``host="0.0.0.0"`` and ``ModelServer`` offers no host argument, so the stock server would
expose a model that reads patient narrative on every interface. ``_LocalRESTServer`` sets
the host on that same Config object after construction (uvicorn reads it only when it
binds), and ``LocalModelServer.start`` is kserve's single-worker, REST-only start path
using it. A test checks the bound address, so a kserve upgrade that changes this shows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import ModelServer
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.model import BaseKServeModel
from kserve.predictor_config import PredictorConfig
from kserve.protocol.rest.server import RESTServer

from medops.recipe import Recipe, load_recipe
from medops.registry.tracking import tracking_uri
from medops.tasks import task_of


async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's default 422 body repeats the submitted values ("input"); keep where and what."""
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
    return JSONResponse(status_code=422, content={"error": f"invalid request: {problems}"})


class _LocalRESTServer(RESTServer):
    """kserve's REST server on ``host`` (not the hard-coded 0.0.0.0), with 422s that do not
    echo the request body."""

    def __init__(self, *args: Any, host: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = host  # the uvicorn.Server built above holds this same Config

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        # starlette types every handler as taking Exception, not the class it is registered for
        app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]


class LocalModelServer(ModelServer):
    """ModelServer with HTTP on ``host:port``, gRPC off and one worker.

    The settings that matter are passed explicitly: ModelServer's defaults come from
    ``sys.argv``, which kserve parses at import time, and a TLS certificate in the
    environment would move the port to 8443.
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            http_port=port,
            workers=1,
            enable_grpc=False,
            enable_latency_logging=True,  # request id and timings only, never the body
            predictor_config=PredictorConfig(predictor_host=None),  # a predictor: no upstream
            ssl_certfile=None,
            ssl_keyfile=None,
        )
        self.host = host

    def start(self, models: list[BaseKServeModel]) -> None:
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = _LocalRESTServer(
            FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            host=self.host,
            workers=1,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        self.servers.append(self._rest_server.start())
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())


def default_model_uri(recipe: Recipe) -> str:
    return f"models:/{recipe.registry.model_name}@{recipe.registry.alias}"


def serve(recipe: Recipe, model_uri: str | None = None) -> None:
    """Load the registered model and serve it until SIGINT/SIGTERM (blocking)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    predictor = task_of(recipe).function("predictor")(
        recipe.serve.model_name,
        model_uri or default_model_uri(recipe),
        tracking_uri=tracking_uri(recipe),
    )
    predictor.load()
    # imports and the model live as long as the process: freezing them keeps the collector
    # from rescanning them (shorter pauses) and cuts seconds of final collection at exit
    gc.freeze()
    LocalModelServer(recipe.serve.host, recipe.serve.port).start([predictor])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m medops.serve.server", description="Serve a recipe's registered model."
    )
    parser.add_argument("recipe", help="recipe YAML")
    parser.add_argument("--model-uri", help="MLflow model URI; default models:/<name>@<alias>")
    parser.add_argument("overrides", nargs="*", help="key.sub=value, e.g. serve.port=9000")
    args = parser.parse_intermixed_args(argv)
    serve(load_recipe(args.recipe, args.overrides), args.model_uri)


if __name__ == "__main__":
    main()
