"""The FastAPI application of `netspec serve`.

Endpoints: `GET /` the web page, `GET /health`, `GET /info`, `POST /predict` (JSON inputs),
`POST /predict/image` (uploaded image files, image models), `POST /generate` (a streamed
continuation, language models), `GET /openapi.json` and `GET /docs` (the schema as a plain page;
FastAPI's Swagger UI would load from a CDN). Predictions go through the batcher; errors have the
one format of `errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from importlib import resources
from typing import Any, AsyncIterator, Literal, Optional

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from netspec import __version__
from netspec.runtime.sample import Request as Generation
from netspec.serve import docs, errors
from netspec.serve.batcher import Batcher
from netspec.serve.inputs import BadInput
from netspec.serve.model import MAX_PROMPT, Limits, Model, check_count, png_grid

JSON = ("application/json",)
IMAGES = ("multipart/form-data", "image/")


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[Any] = Field(
        description="the inputs, each a nested list of numbers of the network's input shape (see /info: "
        "pixels in [0, 1] for an image model, token ids for a language model); an image model also takes a "
        "base64 PNG or JPEG string, a language model a text of at least its context length"
    )


class Ranked(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    class_: str = Field(alias="class", description="a class name (a language model: a character)")
    probability: float


class Prediction(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    class_: Optional[str] = Field(None, alias="class", description="the likeliest class (classifiers)")
    probability: Optional[float] = Field(None, description="its probability")
    top: Optional[list[Ranked]] = Field(None, description="the five likeliest classes, likeliest first")
    values: Optional[list[Any]] = Field(None, description="the outputs (regression): a list of the output shape")


class PredictResponse(BaseModel):
    predictions: list[Prediction] = Field(description="one per input, in order")


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: Optional[str] = Field(None, max_length=MAX_PROMPT, description="text to continue (default: a newline)")
    length: int = Field(200, ge=1, description="characters to generate (at most /info's limits.max_length)")
    temperature: float = Field(1.0, gt=0, le=100, description="below 1: safer; above: wilder")
    top_k: Optional[int] = Field(None, ge=1, description="sample only among the k likeliest characters")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="the sampling's seed: the same request, the same text")


class SampleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(16, ge=1, description="samples to draw (at most /info's limits.max_items)")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="the noise's seed: the same request, the same samples")
    label: Optional[int] = Field(None, ge=0, description="a conditional GAN's class to draw (default: each in turn)")
    format: Literal["png", "json"] = Field("png", description="a PNG grid (images only), or the arrays as JSON")


class Samples(BaseModel):
    samples: list[Any] = Field(description="the samples [count, ...]: images [C, H, W] with pixels in [0, 1]")


class Health(BaseModel):
    status: str
    network: str


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    error: str = Field(description="what was wrong")
    status: int


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "not JSON, not an image, or not base64"},
    413: {"model": ErrorBody, "description": "the body or the number of inputs is over the limit"},
    415: {"model": ErrorBody, "description": "a media type the endpoint does not take"},
    422: {"model": ErrorBody, "description": "inputs of the wrong shape or type, out of range, or empty"},
}
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "required": ["files"],
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class Service:
    """The model, its limits and, once the server runs, its batcher."""

    def __init__(self, model: Model, limits: Limits) -> None:
        self.model = model
        self.limits = limits
        self.batcher: Batcher | None = None
        self.endpoints: list[str] = []

    @property
    def running(self) -> Batcher:
        assert self.batcher is not None, "the batcher starts with the server"
        return self.batcher

    async def predict(self, items: list[Any]) -> dict[str, Any]:
        rows = await self.running.predict(items)
        return {"predictions": [self.model.answer(r) for r in rows]}


def create_app(model: Model, limits: Limits) -> FastAPI:
    service = Service(model, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.batcher = Batcher(model.forward, limits.max_batch, limits.wait_ms)
        service.batcher.start()
        yield
        await service.batcher.stop()

    description = f"Predictions of the trained network {model.name} ({model.source}), served by netspec."
    app = FastAPI(
        title=f"netspec serve: {model.name}",
        description=description,
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    media = {"/predict": JSON, "/generate": JSON, "/predict/image": IMAGES, "/sample": JSON}
    app.add_middleware(BodyGuardMiddleware, max_body=limits.max_body, media=media)
    _pages(app)
    _status(app, service)
    if model.takes == "samples":
        _samples(app, service)
    else:
        _predict(app, service)
    if model.takes == "image":
        _images(app, service)
    if model.expect.vocab is not None:
        _generate(app, service)
    service.endpoints = [
        f"{m} {getattr(r, 'path', '')}" for r in app.routes for m in sorted(getattr(r, "methods", ())) if m != "HEAD"
    ]
    errors.install(app, service.endpoints)
    return app


BodyGuardMiddleware = errors.BodyGuard


def _pages(app: FastAPI) -> None:
    page = resources.files("netspec.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return HTMLResponse(docs.render(app.openapi()))


def _status(app: FastAPI, service: Service) -> None:
    @app.get("/health", response_model=Health, summary="Whether the server answers")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "network": service.model.name}

    @app.get("/info", summary="The model: input shape and dtype, classes, preprocessing, metrics, limits")
    async def info() -> dict[str, Any]:
        stats = service.batcher.stats.summary() if service.batcher else {}
        limits = dataclasses.asdict(service.limits)
        return {**service.model.info(), "limits": limits, "batches": stats, "endpoints": service.endpoints}


def _predict(app: FastAPI, service: Service) -> None:
    @app.post(
        "/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses=ERRORS,
        summary="Predictions for a list of inputs (JSON)",
        description="Concurrent requests are batched into one forward pass; a request's inputs are answered in order.",
    )
    async def predict(body: PredictRequest) -> dict[str, Any]:
        return await service.predict(service.model.inputs(body.inputs, service.limits.max_items))


def _images(app: FastAPI, service: Service) -> None:
    @app.post(
        "/predict/image",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses=ERRORS,
        openapi_extra=IMAGE_BODY,
        summary="Predictions for uploaded image files",
        description="A multipart form with one or more `files` (PNG, JPEG, ...), or one image as the body "
        "(Content-Type image/png or image/jpeg). Each is converted to the network's channels and resized "
        "to its input size.",
    )
    async def predict_image(request: Request) -> dict[str, Any]:
        uploads = await _uploads(request, service.limits.max_items)
        decode = service.model.image
        items = [await asyncio.to_thread(decode, data, name) for name, data in uploads]
        return await service.predict(items)


async def _uploads(request: Request, max_items: int) -> list[tuple[str, bytes]]:
    """The uploaded files (name, bytes): a multipart form's file fields, or the body itself."""
    if not request.headers.get("content-type", "").startswith("multipart/"):
        return [("the body", await request.body())]
    async with request.form(max_files=max_items + 1, max_fields=max_items + 1) as form:
        files = [(k, v) for k, v in form.multi_items() if not isinstance(v, str)]
        fields = [k for k, v in form.multi_items() if isinstance(v, str)]
        if not files:
            only = f" (only the fields {', '.join(fields)})" if fields else ""
            raise BadInput(422, f"the form has no file{only}; send images as files, e.g. curl -F files=@digit.png")
        check_count(len(files), max_items, "files")
        return [(f"file {getattr(v, 'filename', None) or k!r}", await v.read()) for k, v in files]


def _generate(app: FastAPI, service: Service) -> None:
    @app.post(
        "/generate",
        response_class=StreamingResponse,
        responses={**ERRORS, 200: {"content": {"text/plain": {}}, "description": "the continuation, streamed"}},
        summary="Continue a prompt (language models), streamed as the characters come",
        description="The response is text/plain: the generated characters only (not the prompt), sent as "
        "they are sampled. The same request (prompt, length, temperature, top_k, seed) gives the same text.",
    )
    async def generate(body: GenerateRequest) -> StreamingResponse:
        most = service.limits.max_length
        if body.length > most:
            raise BadInput(422, f"length {body.length} is over the limit of {most} characters", limit=most)
        ids = service.model.prompt(body.prompt)
        asked = Generation(body.prompt, body.length, body.temperature, body.top_k, body.seed)
        steps = service.model.generation(ids, asked)
        return StreamingResponse(_stream(service.running, steps), media_type="text/plain; charset=utf-8")


async def _stream(batcher: Batcher, steps: Any) -> AsyncIterator[str]:
    while (char := await batcher.call(next, steps, None)) is not None:
        yield char


def _samples(app: FastAPI, service: Service) -> None:
    @app.post(
        "/sample",
        response_model=Samples,
        responses={**ERRORS, 200: {"content": {"image/png": {}}, "description": "a PNG grid, or the arrays as JSON"}},
        summary="Samples from a GAN's generator: a PNG grid or arrays",
        description="The samples of `netspec sample -n COUNT --seed SEED`, with the dataset's normalization undone.",
    )
    async def sample(body: SampleRequest) -> Any:
        check_count(body.count, service.limits.max_items, "samples")
        drawn = await service.running.call(service.model.samples, body.count, body.seed, body.label)
        if body.format == "json":
            return {"samples": drawn.tolist()}
        if drawn.dim() != 4:
            raise BadInput(422, f"the samples are not images ({list(drawn.shape[1:])} each): ask for format json")
        return Response(await asyncio.to_thread(png_grid, drawn), media_type="image/png")
