"""Run a task's predictor under KServe's ModelServer, bound to the recipe's host.

Why a subclass: kserve 0.21's ``RESTServer`` builds its ``uvicorn.Config`` with
``host="0.0.0.0"`` and ``ModelServer`` offers no host argument, so the stock server would
expose a model that reads patient narrative on every interface. ``_LocalRESTServer`` sets
the host on that same Config object after construction (uvicorn reads it only when it
binds), and ``LocalModelServer.start`` is kserve's single-worker, REST-only start path
using it. A test checks the bound address, so a kserve upgrade that changes this shows.

What else differs from the stock server, and why:

- The app is built fresh (not kserve's module-level one), so ``build_app`` can build it
  in-process for tests, any number of times, without binding a port.
- The v2 model-repository routes (``/v2/repository/...``: load, unload, index) are
  removed: they have no auth, and an unload took the model offline while readiness still
  said ready. Readiness is true only while every served model is loaded.
- Errors never carry request content: request decoding is medops' own (``v2.parse_bytes``),
  handlers answer and log fixed or field-naming messages, and an unhandled exception is
  logged as its type and frames only (its message may quote the request).
- ``extensions`` are called with the finished app before it serves, so other work adds
  middleware and routers there (auth, OpenAI routes, limits).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from kserve import ModelServer
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING, PredictorProtocol
from kserve.errors import InferenceError, InvalidInput, ModelNotFound, ModelNotReady
from kserve.model import BaseKServeModel
from kserve.predictor_config import PredictorConfig
from kserve.protocol.dataplane import JSON_HEADERS, DataPlane
from kserve.protocol.rest.server import RESTServer
from starlette.types import ASGIApp, Receive, Scope, Send

from medops.errors import MedopsError
from medops.recipe import Recipe, load_recipe
from medops.registry.tracking import tracking_uri
from medops.serve import v1, v2
from medops.serve.auth import install_auth, load_keys
from medops.serve.generation import Refused
from medops.serve.limits import install_disconnect_cancel, install_limits
from medops.serve.metrics import install_metrics
from medops.serve.openai import install_openai
from medops.tasks import task_of

logger = logging.getLogger("kserve.medops")

Extension = Callable[[FastAPI], None]

MODEL_CONTROL = "/v2/repository"  # Triton's model-repository extension: load, unload, index
_V2 = PredictorProtocol.REST_V2.value


# --- error answers: a fixed text or one that names a field, never a submitted value ---


async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's default 422 body repeats the submitted values ("input"); keep where and what."""
    return JSONResponse(
        status_code=422, content={"error": f"invalid request: {v2.describe(error.errors())}"}
    )


async def _refused(_request: Request, error: InvalidInput) -> JSONResponse:
    """400. Every InvalidInput reaching here was raised by the codecs or ``_ServedDataPlane``,
    whose messages name the field and index only (kserve's own ones are replaced there)."""
    logger.warning("refused a request: %s: %s", type(error).__name__, error)
    return JSONResponse(status_code=400, content={"error": str(error)})


async def _no_such_model(_request: Request, _error: ModelNotFound) -> JSONResponse:
    """404 without the name: kserve's message repeats whatever the URL held."""
    logger.warning("refused a request: ModelNotFound")
    return JSONResponse(
        status_code=404,
        content={"error": "no model of that name is served (GET /v2/models lists them)"},
    )


async def _inference_failed(_request: Request, error: InferenceError) -> JSONResponse:
    """500. The predictor's InferenceError holds only the failing exception's type (it has
    already logged it); no traceback here, whose chained messages could quote inputs."""
    logger.error("inference failed: %s", type(error).__name__)
    return JSONResponse(status_code=500, content={"error": str(error)})


async def _internal_error(_request: Request, error: Exception) -> JSONResponse:
    """500 for anything unhandled; ``_ContainErrors`` logs where it was raised."""
    return JSONResponse(
        status_code=500,
        content={"error": f"internal error ({type(error).__name__}); the server log has where"},
    )


_HANDLERS: tuple[tuple[type[Exception], Callable[..., Any]], ...] = (
    (RequestValidationError, _invalid_request),
    (InvalidInput, _refused),
    (ModelNotFound, _no_such_model),
    (InferenceError, _inference_failed),
    (Exception, _internal_error),
)


class _ContainErrors:
    """The outermost ASGI layer. Starlette re-raises an unhandled exception after sending its
    500 so the server can log it, and uvicorn's traceback would print the exception's message,
    which may quote the request; this logs the type and frames only and stops it there."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception as error:
            frames = "".join(traceback.format_tb(error.__traceback__))
            logger.error(
                "unhandled %s (its message is not logged: it may quote the request)\n%s",
                type(error).__name__,
                frames.rstrip(),
            )


class _PathOnly(logging.Filter):
    """uvicorn's access line holds the path with its query string, which can carry request
    text: keep the path and mark that a query was there."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, query, _ = args[2].partition("?")
            record.args = (*args[:2], f"{path}?..." if query else path, *args[3:])
        return True


_PATH_ONLY = _PathOnly()  # one instance: addFilter ignores a filter already added


# --- the app ---


class _ServedApp(FastAPI):
    """FastAPI with ``_ContainErrors`` outside every middleware (extensions' too) and an
    OpenAPI document whose examples are requests this server accepts."""

    def build_middleware_stack(self) -> ASGIApp:
        return _ContainErrors(super().build_middleware_stack())

    def openapi(self) -> dict[str, Any]:
        document = super().openapi()  # cached until routes change (an extension adds some)
        schemas = document.get("components", {}).get("schemas", {})
        if "InferenceRequest" in schemas:  # kserve's example sends UINT32 and BOOL inputs
            schemas["InferenceRequest"]["example"] = v2.EXAMPLE
        return document


def _v1_document(responses: dict[str, Any]) -> dict[str, Any]:
    """kserve's v1 routes read the raw request, so FastAPI documents no body for them."""
    content = {"application/json": {"schema": v1.REQUEST_SCHEMA, "example": v1.EXAMPLE}}
    return {"requestBody": {"required": True, "content": content}, "responses": responses}


_DOCUMENTS: dict[str, dict[str, Any]] = {
    "/v1/models/{model_name}:predict": _v1_document({}),
    "/v1/models/{model_name}:explain": _v1_document(
        {"501": {"description": "the served models have no explainer: use :predict"}}
    ),
    "/v2/models/{model_name}/infer": {
        "requestBody": {"content": {"application/json": {"example": v2.EXAMPLE}}}
    },
}


def _is_model_control(route: Any) -> bool:
    return str(getattr(route, "path", "")).startswith(MODEL_CONTROL)


class _Registration:
    """Stands in for the app while kserve registers its endpoints. Each router it includes
    first loses its model-control routes (load, unload, index: they answer 404) and gets
    request examples this server accepts. Done before inclusion because FastAPI 0.16x keeps
    included routers behind private wrappers rather than copying their routes."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def include_router(self, router: Any, *args: Any, **kwargs: Any) -> None:
        router.routes[:] = [route for route in router.routes if not _is_model_control(route)]
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path in _DOCUMENTS:
                route.openapi_extra = _DOCUMENTS[route.path]
        self._app.include_router(router, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


def _json_media_type(headers: dict[str, str] | None) -> dict[str, str] | None:
    """kserve matches Content-Type exactly, so ``application/json; charset=utf-8`` would
    skip JSON parsing: compare the media type only."""
    if not headers or "content-type" not in headers:
        return headers
    media = headers["content-type"].partition(";")[0].strip().lower()
    if media.endswith("+json") and media not in JSON_HEADERS:
        media = "application/json"
    return {**headers, "content-type": media}


_UNREADABLE = {  # by "is it v2": kserve's decoding failed, for a reason not repeated
    False: f"{v1.EXPECTED}; the body could not be read as a v1 request (JSON or a CloudEvent)",
    True: f"{v2.EXPECTED}; the body could not be read as a v2 request (FP16 data must be binary)",
}


class _ServedDataPlane(DataPlane):
    """kserve's data plane with truthful readiness and request decoding that never quotes
    the request in an error."""

    def metadata(self) -> dict[str, Any]:
        """No ``model_repository_extension``: its routes are removed."""
        return {**super().metadata(), "extensions": []}

    async def ready(self) -> bool:
        """Ready while at least one model is served and every served model is loaded."""
        registry = self.model_registry
        names = list(registry.get_models())
        return bool(names) and all([await registry.is_model_ready(name) for name in names])

    async def get_model(self, name: str) -> BaseKServeModel:
        """kserve would call a not-ready model's blocking ``load()`` on the event loop."""
        model = self.get_model_from_registry(name)
        if not await self.model_registry.is_model_ready(name):
            raise ModelNotReady(name)
        return model

    def decode(
        self,
        body: Any,
        headers: dict[str, str] | None,
        protocol_version: str = PredictorProtocol.REST_V1.value,
        model_name: str | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        if isinstance(body, bytes) and protocol_version.lower() == _V2:
            return v2.parse_bytes(body, headers or {}, model_name or ""), {}
        try:
            return super().decode(body, _json_media_type(headers), protocol_version, model_name)
        except InvalidInput:  # kserve's messages quote JSON errors, CloudEvents, input names
            raise InvalidInput(_UNREADABLE[protocol_version.lower() == _V2]) from None


class _LocalRESTServer(RESTServer):
    """kserve's REST server on ``host`` (not the hard-coded 0.0.0.0), serving the app that
    ``create_application`` builds."""

    def __init__(self, *args: Any, host: str, extensions: Sequence[Extension], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.config.host = host  # the uvicorn.Server built above holds this same Config
        self.extensions = tuple(extensions)

    def create_application(self) -> FastAPI:
        """kserve's routes, middleware and handlers on a fresh app, less model control,
        then each extension; uvicorn serves this object (its Config loads it at start)."""
        app = _ServedApp(
            title="KServe ModelServer",
            version=metadata.version("kserve"),
            docs_url=None,
            redoc_url=None,
        )
        self._add_middlewares(app)
        self._register_endpoints(app)
        self._add_exception_handlers(app)
        for extend in self.extensions:
            extend(app)
        self.config.app = app
        return app

    def _register_endpoints(self, app: FastAPI) -> None:
        super()._register_endpoints(_Registration(app))

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        for kind, handler in _HANDLERS:
            app.add_exception_handler(kind, handler)


class LocalModelServer(ModelServer):
    """ModelServer with HTTP on ``host:port``, gRPC off and one worker.

    The settings that matter are passed explicitly: ModelServer's defaults come from
    ``sys.argv``, which kserve parses at import time, and a TLS certificate in the
    environment would move the port to 8443. Each of ``extensions`` is called with the
    FastAPI app once kserve's routes are in and model control is out, before serving.
    """

    def __init__(self, host: str, port: int, extensions: Sequence[Extension] = ()) -> None:
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
        self.extensions = tuple(extensions)
        self.dataplane = _ServedDataPlane(model_registry=self.registered_models)

    def _rest(self) -> _LocalRESTServer:
        return _LocalRESTServer(
            FASTAPI_APP_IMPORT_STRING,  # replaced by the app create_application builds
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            host=self.host,
            extensions=self.extensions,
            workers=1,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )

    def build_app(self, models: list[BaseKServeModel]) -> FastAPI:
        """Register ``models`` and return the app ``start`` would serve, binding nothing."""
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = self._rest()
        return self._rest_server.create_application()

    def start(self, models: list[BaseKServeModel]) -> None:
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = self._rest()
        logging.getLogger("uvicorn.access").addFilter(_PATH_ONLY)
        self.servers.append(self._rest_server.start())
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())


def build_app(models: list[BaseKServeModel], extensions: Sequence[Extension] = ()) -> FastAPI:
    """The served app for loaded ``models``, in-process (tests call it through ASGI)."""
    return LocalModelServer("127.0.0.1", 0, extensions).build_app(models)


def default_model_uri(recipe: Recipe) -> str:
    return f"models:/{recipe.registry.model_name}@{recipe.registry.alias}"


async def _over_limit(_request: Request, error: Exception) -> JSONResponse:
    """A limit or a full queue met under the v1/v2 routes: 4xx/429 in KServe's shape."""
    status, message = (error.status, error.message) if isinstance(error, Refused) else (500, "")
    return JSONResponse(status_code=status, content={"error": message or "internal error"})


KEYS_ENV = "MEDOPS_API_KEYS_FILE"  # the operator mounts the keys Secret here


def data_plane(recipe: Recipe, predictor: Any) -> list[Extension]:
    """What every served model gets: OpenAI routes for a generator, then (innermost first)
    disconnect cancellation, body limits, bearer keys when configured, and metrics."""
    keys_file = os.environ.get(KEYS_ENV) or recipe.serve.api_keys_file
    ring = load_keys(keys_file) if keys_file else None

    def install(app: FastAPI) -> None:
        generator = getattr(predictor, "generator", None)
        if generator is not None:
            install_openai(app, generator, recipe.serve.limits)
        app.add_exception_handler(Refused, _over_limit)
        install_disconnect_cancel(app)
        install_limits(app, recipe.serve.limits)
        if ring is not None:
            install_auth(app, ring)
        install_metrics(app, expose=False)

    return [install]


def serve(
    recipe: Recipe, model_uri: str | None = None, extensions: Sequence[Extension] = ()
) -> None:
    """Load the registered model and serve it until SIGINT/SIGTERM (blocking)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    predictor = task_of(recipe).function("predictor")(
        recipe, model_uri or default_model_uri(recipe), tracking_uri(recipe)
    )
    predictor.load()
    extensions = [*extensions, *data_plane(recipe, predictor)]
    # imports and the model live as long as the process: freezing them keeps the collector
    # from rescanning them (shorter pauses) and cuts seconds of final collection at exit
    gc.freeze()
    LocalModelServer(recipe.serve.host, recipe.serve.port, extensions).start([predictor])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m medops.serve.server", description="Serve a recipe's registered model."
    )
    parser.add_argument("recipe", help="recipe YAML")
    parser.add_argument("--model-uri", help="MLflow model URI; default models:/<name>@<alias>")
    parser.add_argument("overrides", nargs="*", help="key.sub=value, e.g. serve.port=9000")
    args = parser.parse_intermixed_args(argv)
    try:
        serve(load_recipe(args.recipe, args.overrides), args.model_uri)
    except MedopsError as error:  # the user's to fix: one line, as `medops serve` prints it
        print(f"medops: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
