"""One error format for every 4xx (and the rare 5xx): `{"error": "what was wrong", "status": 422, ...}`.

FastAPI's own errors (validation, malformed JSON, unknown paths, wrong methods) are rewritten into
it; `BodyGuard` refuses a body over the size limit (from Content-Length, and while reading a body
sent in chunks) and a body of a media type the endpoint does not take, before any endpoint runs.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netspec.serve.inputs import BadInput


def error(status: int, message: str, **details: Any) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **details}, status_code=status)


def install(app: FastAPI, endpoints: list[str]) -> None:
    """The handlers that give every error the one format; `endpoints` ("POST /predict", ...) for a 404."""

    async def bad_input(request: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, BadInput)
        return error(e.status, e.message, **e.details)

    async def http(request: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, HTTPException)
        if e.status_code == 404:
            where = f"{request.method} {request.url.path}"
            return error(404, f"no endpoint {where}; this server has {', '.join(endpoints)}", endpoints=endpoints)
        if e.status_code == 405:
            return error(405, f"{request.url.path} does not take {request.method}", endpoints=endpoints)
        return error(e.status_code, str(e.detail))

    async def invalid(request: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, RequestValidationError)
        return validation(e.errors())

    async def internal(request: Request, e: Exception) -> JSONResponse:
        return error(500, f"internal error: {type(e).__name__}: {e}")

    app.add_exception_handler(BadInput, bad_input)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, internal)


def validation(errors: Any) -> JSONResponse:
    """A validation error: 400 for a body that is not JSON, else 422 with each problem's place."""
    problems = list(errors)
    broken = [p for p in problems if p.get("type") == "json_invalid"]
    if broken:
        why = (broken[0].get("ctx") or {}).get("error", "")
        at = broken[0].get("loc", ("body", "?"))[-1]
        return error(400, f"the body is not valid JSON: {why} (at character {at})")
    said = [f"{_place(p.get('loc', ()))}: {p.get('msg', 'invalid')}" for p in problems[:5]]
    details = [{"loc": [str(x) for x in p.get("loc", ())], "msg": p.get("msg")} for p in problems[:20]]
    return error(422, "; ".join(said), problems=details)


def _place(loc: Any) -> str:
    parts = [str(x) for x in loc if x != "body"]
    return ".".join(parts) if parts else "the body"


class BodyGuard:
    """ASGI middleware: the body's size and media type, checked before any endpoint reads it."""

    def __init__(self, app: ASGIApp, max_body: int, media: dict[str, tuple[str, ...]]) -> None:
        self.app = app
        self.max_body = max_body
        self.media = media  # path -> the media types (or "image/" prefixes) its POST takes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        refused = self._refused(scope, Headers(scope=scope))
        if refused is not None:
            return await refused(scope, receive, send)
        await self.app(scope, self._limited(receive), send)

    def _refused(self, scope: Scope, headers: Headers) -> JSONResponse | None:
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return self._too_large(int(length))
        wanted = self.media.get(scope["path"])
        given = headers.get("content-type", "").split(";")[0].strip().lower()
        if wanted is not None and not any(given.startswith(w) for w in wanted):
            said = f"Content-Type {given!r}" if given else "no Content-Type"
            return error(415, f"{scope['path']} takes {' or '.join(wanted)}, not {said}", accepted=list(wanted))
        return None

    def _too_large(self, size: int | None) -> JSONResponse:
        got = f"{size:,} bytes" if size is not None else "more"
        return error(413, f"the body is {got}; at most {self.max_body:,} bytes (--max-body)", limit=self.max_body)

    def _limited(self, receive: Receive) -> Receive:
        total = 0

        async def limited() -> Message:
            nonlocal total
            message = await receive()
            total += len(message.get("body", b""))
            if total > self.max_body:
                raise HTTPException(413, f"the body is over {self.max_body:,} bytes (--max-body)")
            return message

        return limited
