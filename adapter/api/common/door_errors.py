"""What every front door with its own error format needs: one exception-handler table built from
the door's mapping, and the error part of its OpenAPI responses.

A door says how an engine refusal, a body that does not decode, a framework HTTP error and an
unexpected failure read in its format; the handlers, the JSON rendering and the logging of
unexpected errors are the same everywhere, so they live here once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec

from adapter.api.common.bodies import BodyError
from adapter.engine.errors import EngineError

log = logging.getLogger(__name__)


class DoorError(Protocol):
    status: int
    headers: dict[str, str]

    def body(self) -> Any: ...


E = TypeVar("E", bound=DoorError)


@dataclass(frozen=True)
class ErrorMapping(Generic[E]):
    error_type: type[Exception]
    from_engine: Callable[[EngineError], E]
    from_body: Callable[[BodyError], E]
    from_http: Callable[[HTTPException], E]
    internal: Callable[[], E]
    name: str  # the door, as logged with an unexpected error ("the /mj API")


def respond(exc: DoorError) -> Response[Any]:
    return Response(content=msgspec.json.encode(exc.body()), status_code=exc.status, media_type="application/json", headers=exc.headers)


def exception_handlers(m: ErrorMapping[Any]) -> dict[type[Exception] | int, Any]:
    def unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        log.exception("unhandled error in %s", m.name, exc_info=exc)
        return respond(m.internal())

    return {
        m.error_type: lambda _, exc: respond(exc),
        EngineError: lambda _, exc: respond(m.from_engine(exc)),
        BodyError: lambda _, exc: respond(m.from_body(exc)),
        HTTPException: lambda _, exc: respond(m.from_http(exc)),
        Exception: unexpected,
    }


def door_responses(error: Any, statuses: Mapping[int, str], success: Any, description: str) -> dict[int, ResponseSpec]:
    """A door's documented answers: `success` under 200, `error` under each of its statuses."""
    out = {status: ResponseSpec(data_container=error, description=text, generate_examples=False) for status, text in statuses.items()}
    out[200] = ResponseSpec(data_container=success, description=description, generate_examples=False)
    return out
