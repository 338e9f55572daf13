"""The response envelope and the one place errors become HTTP: every failure, ours or the
framework's, leaves as `{"success": false, "error": {"code", "message", "details"}}` with no
internals (no stack traces, no exception text, no echo of the offending input)."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger(__name__)

CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    411: "LENGTH_REQUIRED",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    416: "RANGE_NOT_SATISFIABLE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

JSON_TYPE = "application/json"


class ApiError(Exception):
    """Raised by handlers; mapped to the error envelope."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "ERROR")
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, f"{what} not found")


def forbidden(message: str = "not allowed for this account") -> ApiError:
    return ApiError(403, message)


def error_body(status: int, message: str, *, code: str | None = None,
               details: list[dict[str, str]] | None = None) -> bytes:
    return json.dumps({"success": False, "error": {
        "code": code or CODES.get(status, "ERROR"), "message": message, "details": details or []}},
        separators=(",", ":")).encode()


def error_response(status: int, message: str, *, code: str | None = None,
                   details: list[dict[str, str]] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    hdrs = {"cache-control": "no-store"}
    hdrs.update(headers or {})
    return Response(error_body(status, message, code=code, details=details), status_code=status,
                    media_type=JSON_TYPE, headers=hdrs)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where = parts[0]
        rest = parts[1:]
        return ".".join(rest) if rest else where
    return ".".join(parts)


# Validation messages are pydantic's own short sentences; the offending input is never echoed.
def _validation_details(exc: RequestValidationError) -> tuple[int, str, str, list[dict[str, str]]]:
    details: list[dict[str, str]] = []
    for err in exc.errors()[:50]:
        kind = str(err.get("type", ""))
        if kind == "json_invalid":
            return 400, "MALFORMED_JSON", "request body is not valid JSON", []
        msg = str(err.get("msg", "invalid value"))
        if kind == "extra_forbidden":
            msg = "unknown field"
        elif kind == "missing":
            msg = "field required"
        details.append({"field": _field(err.get("loc", ())), "message": msg[:200]})
    return 422, "VALIDATION_ERROR", "request is not valid", details


def install_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, code=exc.code, details=exc.details, headers=exc.headers)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        if status < 400:
            return Response(status_code=status, headers=dict(exc.headers or {}))
        try:
            phrase = HTTPStatus(status).phrase.lower()
        except ValueError:
            phrase = "error"
        # Framework messages (e.g. "Not Found", "Method Not Allowed") are safe; anything longer is replaced.
        detail = exc.detail if isinstance(exc.detail, str) and len(exc.detail) < 120 else phrase
        if status == 400 and "parsing the body" in detail:
            detail = "request body could not be read"
        return error_response(status, detail.lower() if detail[:1].isupper() else detail,
                              headers=dict(exc.headers or {}))

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        status, code, message, details = _validation_details(exc)
        return error_response(status, message, code=code, details=details)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error")

    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    async def store_busy(request: Request, exc: Exception) -> Response:
        # Connection-level failures (server gone, database missing, pool exhausted) are 503;
        # a statement the database refused (DataError, IntegrityError, ...) is our bug: 500.
        connection_level = type(exc) in (DBAPIError, OperationalError, InterfaceError) or isinstance(
            exc, (PoolTimeout, OSError)) or bool(getattr(exc, "connection_invalidated", False))
        if not connection_level:
            return await unexpected(request, exc)
        log.warning("store unavailable: %s", type(exc).__name__)
        return error_response(503, "the database is busy or unreachable; retry shortly",
                              headers={"retry-after": "1"})

    for kind in (DBAPIError, PoolTimeout, OSError):
        app.add_exception_handler(kind, store_busy)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
