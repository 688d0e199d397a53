"""The service's one error shape, `{"detail": "<for people>", "code": "<stable>", "errors": [<field errors>]}`,
its codes (CODES: the handlers, the OpenAPI responses and the README's table come from it) and the handlers.
Clients branch on `code`, never on `detail`; `errors` is filled for invalid_parameters only."""
from __future__ import annotations

import logging
from collections.abc import Iterable

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger("digitgen")

# code -> (HTTP status, when it happens)
CODES: dict[str, tuple[int, str]] = {
    "malformed_body": (400, "the request body cannot be parsed (JSON or multipart)"),
    "invalid_image": (400, "the uploaded file is not a decodable image"),
    "unauthorized": (401, "missing or wrong API key (only when DIGITGEN_API_KEY is set)"),
    "not_found": (404, "no such path"),
    "model_not_found": (404, "no loaded model has this name (GET /models lists them)"),
    "method_not_allowed": (405, "the path exists, the method does not"),
    "request_timeout": (408, "the request's headers did not arrive within DIGITGEN_HEADER_TIMEOUT_S; the connection "
                            "is closed"),
    "payload_too_large": (413, "the body or the decoded image is over DIGITGEN_MAX_UPLOAD_BYTES / _MAX_IMAGE_PIXELS"),
    "unsupported_media_type": (415, "the body's Content-Type is not one this endpoint reads"),
    "headers_too_large": (431, "the request's headers are over DIGITGEN_HEADER_MAX_BYTES; the connection is closed"),
    "invalid_parameters": (422, "a parameter or body field is missing, malformed or out of range (see `errors`)"),
    "limit_exceeded": (422, "a count is over a configured limit (the DIGITGEN_ setting is named)"),
    "output_too_large": (422, "the PNG would be over DIGITGEN_MAX_IMAGE_PIXELS: lower n or scale, or use npy"),
    "wrong_model_kind": (422, "the model cannot do this (e.g. /encode with a GAN)"),
    "invalid_latent": (422, "a latent vector has the wrong length or a value that is not finite or too large"),
    "digit_not_found": (422, "rejection sampling found too few samples of the requested class (digit=/label=)"),
    "no_classifier": (422, "digit=/label=, verified=true or labelling a model without classes needs the classifier "
                           "of the model's dataset, which is not loaded"),
    "no_classes": (422, "digits=/labels= needs a class-conditional model (vae-exemplar, gan); this one has no classes"),
    "internal_error": (500, "a bug: logged on the server, nothing in the body"),
    "not_ready": (503, "models are still loading, or the service is shutting down"),
    "too_many_connections": (503, "over DIGITGEN_MAX_CONNECTIONS connections are open to this worker; the new one "
                                  "is closed"),
}
_DEFAULT_CODE = {404: "not_found", 405: "method_not_allowed", 400: "malformed_body", 401: "unauthorized",
                 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_parameters",
                 503: "not_ready"}


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: e.g. [\"query\", \"n\"] or [\"body\", \"latents\", 0]")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error response of the service."""
    detail: str = Field(description="what went wrong, for people", examples=["n is 5000; the limit is 4096"])
    code: str = Field(description="stable machine-readable code (README: Errors)", examples=["limit_exceeded"])
    errors: list[FieldError] = Field(default_factory=list, description="per-field problems (invalid_parameters)")


class ApiError(HTTPException):
    """An application error with its stable code; the status comes from the code's entry in CODES."""

    def __init__(self, code: str, detail: str, headers: dict[str, str] | None = None,
                 errors: list[dict] | None = None):
        super().__init__(CODES[code][0], detail, headers=headers)
        self.code = code
        self.errors = errors or []


def error_body(code: str, detail: str, errors: Iterable[dict] = ()) -> dict:
    return {"detail": detail, "code": code, "errors": list(errors)}


def error_response(code: str, detail: str, headers: dict[str, str] | None = None,
                   errors: Iterable[dict] = ()) -> JSONResponse:
    return JSONResponse(error_body(code, detail, errors), status_code=CODES[code][0], headers=headers)


INTERNAL_ERROR = error_body("internal_error", "internal server error")  # no traceback, no message


def field_errors(raw: Iterable[dict]) -> list[dict]:
    """pydantic's errors, locations and messages only: the input is never echoed back."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in raw]


def validation_summary(errors: list[dict]) -> str:
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"] if part not in ("query", "body")) or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"invalid {where}: {first['msg']}{more}"


def allowed_methods(request: Request) -> str:
    """Every method the request's path answers to. Starlette's own 405 names only the first route
    that matched the path (GET /interpolate, not also POST); HEAD works wherever GET does."""
    methods = {method for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
               if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                      for route in request.app.router.routes)}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    if isinstance(exc, ApiError):
        return error_response(exc.code, exc.detail, headers, exc.errors)
    code = _DEFAULT_CODE.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "malformed_body")
    detail = exc.detail if isinstance(exc.detail, str) else CODES[code][1]
    return JSONResponse(error_body(code, detail), status_code=exc.status_code, headers=headers)


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = field_errors(exc.errors())
    return error_response("invalid_parameters", validation_summary(errors), errors=errors)


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(INTERNAL_ERROR, status_code=500)


def install_handlers(app) -> None:
    # Starlette's HTTPException: also the router's own 404 and 405, not only FastAPI's subclass
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)


def responses(*codes: str) -> dict[int, dict]:
    """OpenAPI `responses` for the errors an operation can answer, grouped by status."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(CODES[code][0], []).append(code)
    return {status: {"model": ErrorBody, "description": "; ".join(f"`{c}`: {CODES[c][1]}" for c in names)}
            for status, names in sorted(by_status.items())}
