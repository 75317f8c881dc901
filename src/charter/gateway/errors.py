"""OpenAI-style error bodies for every failure, so clients see 4xx they understand, never a bare
500 or an HTML page."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from charter.core.errors import VerificationError

log = logging.getLogger("charter.gateway")


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _json(status: int, body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def validation_message(errors: list[dict]) -> tuple[str, str | None]:
    e = errors[0]
    loc = [str(x) for x in e.get("loc", ()) if x not in ("body",)]
    param = ".".join(loc) or None
    return (f"{param}: {e.get('msg')}" if param else str(e.get("msg"))), param


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError):
        return _json(exc.status, error_body(exc.message, exc.type, exc.param, exc.code), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        msg, param = validation_message(exc.errors())
        return _json(400, error_body(msg, "invalid_request_error", param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return _json(exc.status_code, error_body(str(exc.detail), "invalid_request_error", None, code))

    @app.exception_handler(VerificationError)
    async def _tampered(request: Request, exc: VerificationError):
        # The audit log no longer extends its last signed checkpoint: refuse to sign or prove over
        # it, say so without the details (an administrator reads them from `charter audit verify`).
        log.error("audit log failed verification on %s: %s", request.url.path, exc)
        return _json(
            409,
            error_body(
                "the audit log failed verification; an administrator must run `charter audit verify`",
                "invalid_request_error",
                None,
                "audit_log_unverified",
            ),
        )

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError):
        # A value the database cannot hold (PostgreSQL text refuses NUL characters; numbers out of
        # a column's range): the request's fault, so a 400 naming no driver internals.
        log.info(
            "database refused a value on %s: %s", request.url.path, str(exc.orig).splitlines()[0] if exc.orig else exc
        )
        return _json(
            400,
            error_body(
                "a value in the request cannot be stored (for example a NUL character)",
                "invalid_request_error",
                None,
                "invalid_value",
            ),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return _json(500, error_body("internal error (logged)", "server_error"))
