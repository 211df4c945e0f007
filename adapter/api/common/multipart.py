"""multipart/form-data bodies, streamed under limits.

Litestar's `request.form()` spools file parts but keeps every text field whole in memory, and a
handler then reads each file whole before it can look at its size: a few large uploads at once
cost hundreds of MB. Here the body is pushed through `multipart.PushMultipartParser` chunk by
chunk as it arrives; a file part goes to a `SpooledTemporaryFile` (memory up to a small
threshold, then disk), a text field to a buffer, and every limit is checked as bytes come in, so
an oversized request is refused after at most one network chunk past its limit, never read to
the end. Errors are `MultipartError`s with a message safe to show and the field at fault, for
each front door to turn into its own error format.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncGenerator, AsyncIterable
from types import TracebackType
from typing import IO, Any, Literal

import msgspec
from litestar import Request
from litestar.exceptions import InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from multipart import MultipartError as _ParserError
from multipart import MultipartSegment, ParserLimitReached, PushMultipartParser, parse_options_header

__all__ = ["FilePart", "MultipartError", "MultipartForm", "MultipartLimits", "TextField", "parse_multipart", "read_multipart"]

ErrorCode = Literal["invalid_multipart", "upload_too_large"]

# Spooled writes are batched to this size, and once a part lives on disk each batch is written
# from a worker thread (the event loop never waits on the disk).
_WRITE_BATCH = 256 * 1024
# RFC 2046 allows 70 characters; some clients are generous, none needs more than this.
_MAX_BOUNDARY = 200


class MultipartLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_file_bytes: int  # one file part's body
    max_field_bytes: int  # one text field, as UTF-8 bytes (never fewer than its characters)
    max_total_bytes: int  # the whole body as sent, boundaries and part headers included
    max_parts: int = 32
    max_header_bytes: int = 4096  # one header line of a part
    max_headers: int = 8  # header lines per part (form-data uses 1-3)
    spool_bytes: int = 512 * 1024  # a file part beyond this moves from memory to a temp file


class MultipartError(Exception):
    """A body that cannot be read as the form it should be. `message` is safe to show the
    caller; `field` names the part at fault when known."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"MultipartError({self.code!r}, {self.message!r}, field={self.field!r})"


class TextField(msgspec.Struct, frozen=True):
    name: str
    value: str


class FilePart:
    """A file part, spooled. Read it with `read()`; `MultipartForm.close()` frees it."""

    __slots__ = ("_file", "_on_disk", "content_type", "filename", "name", "size")

    def __init__(self, name: str, filename: str, content_type: str | None, file: IO[bytes], size: int, on_disk: bool) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.size = size
        self._file = file
        self._on_disk = on_disk

    def __repr__(self) -> str:
        return f"FilePart({self.name!r}, {self.filename!r}, {self.content_type!r}, {self.size} bytes)"

    async def read(self) -> bytes:
        """The whole body (at most the limit it was read under)."""
        if self._on_disk:
            return await asyncio.to_thread(self._read_all)
        return self._read_all()

    def _read_all(self) -> bytes:
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        self._file.close()


Part = TextField | FilePart


class MultipartForm:
    """The parts in the order they were sent. Close it (or use `async with`) to free the temp
    files."""

    def __init__(self, parts: list[Part] | None = None) -> None:
        self.parts: list[Part] = parts if parts is not None else []

    def close(self) -> None:
        for part in self.parts:
            if isinstance(part, FilePart):
                part.close()

    async def __aenter__(self) -> MultipartForm:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.4g} MiB ({n} bytes)"
    return f"{n} bytes"


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a `multipart/form-data; boundary=...` Content-Type, or MultipartError."""
    mime, options = parse_options_header(content_type or "")
    if mime != "multipart/form-data":
        shown = mime if mime and len(mime) <= 100 else "something else"
        raise MultipartError("invalid_multipart", f"The request body must be multipart/form-data, not {shown}.")
    boundary = options.get("boundary", "")
    if not boundary:
        raise MultipartError("invalid_multipart", "The multipart/form-data Content-Type has no boundary.")
    if len(boundary) > _MAX_BOUNDARY or not boundary.isascii():
        raise MultipartError("invalid_multipart", "The multipart boundary is not valid.")
    return boundary.encode("ascii")


class _TextSink:
    def __init__(self, name: str, limits: MultipartLimits) -> None:
        self.name = name
        self.limit = limits.max_field_bytes
        self.buf = bytearray()

    async def feed(self, chunk: bytes) -> None:
        if len(self.buf) + len(chunk) > self.limit:
            raise MultipartError("upload_too_large", f"The field {self.name} is longer than {_size(self.limit)}.", self.name)
        self.buf += chunk

    async def finish(self) -> Part:
        try:
            value = self.buf.decode("utf-8")
        except UnicodeDecodeError:
            raise MultipartError("invalid_multipart", f"The field {self.name} is not valid UTF-8 text.", self.name) from None
        return TextField(self.name, value)

    def abandon(self) -> None:
        self.buf = bytearray()


class _FileSink:
    def __init__(self, segment: MultipartSegment, name: str, limits: MultipartLimits) -> None:
        self.name = name
        self.filename = segment.filename or ""
        self.content_type = segment.content_type
        self.limit = limits.max_file_bytes
        self.spool = limits.spool_bytes
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=limits.spool_bytes)  # noqa: SIM115 - closed by the form
        self.size = 0
        self.written = 0
        self.pending = bytearray()

    async def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise MultipartError("upload_too_large", f"The file in {self.name} is larger than {_size(self.limit)}.", self.name)
        self.pending += chunk
        if len(self.pending) >= _WRITE_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if not self.pending:
            return
        data = bytes(self.pending)
        self.pending.clear()
        # SpooledTemporaryFile moves to disk once it holds more than its threshold: from then
        # on (and for the write that moves it) the write is disk I/O
        if self.written + len(data) > self.spool:
            await asyncio.to_thread(self.file.write, data)
        else:
            self.file.write(data)
        self.written += len(data)

    async def finish(self) -> Part:
        await self._flush()
        return FilePart(self.name, self.filename, self.content_type, self.file, self.size, on_disk=self.size > self.spool)

    def abandon(self) -> None:
        self.file.close()


def _open_part(segment: MultipartSegment, limits: MultipartLimits) -> _TextSink | _FileSink:
    if segment.disposition != "form-data" or not segment.name:
        raise MultipartError("invalid_multipart", "Every part of the form needs Content-Disposition: form-data with a name.")
    # like browsers and Litestar: a part with a filename (even an empty one) is a file
    if segment.filename is not None:
        return _FileSink(segment, segment.name, limits)
    return _TextSink(segment.name, limits)


async def parse_multipart(
    chunks: AsyncIterable[bytes],
    content_type: str | None,
    limits: MultipartLimits,
    *,
    content_length: int | None = None,
) -> MultipartForm:
    """Read a multipart/form-data body from `chunks` under `limits`. On any error every temp
    file is closed and nothing more is read; the caller closes the returned form."""
    boundary = boundary_of(content_type)
    if content_length is not None and content_length > limits.max_total_bytes:
        # refused on the declared length: not one byte of the body is read
        raise MultipartError("upload_too_large", f"The request body is larger than {_size(limits.max_total_bytes)}.")
    parser = PushMultipartParser(
        boundary,
        max_header_size=limits.max_header_bytes,
        max_header_count=limits.max_headers,
    )
    form = MultipartForm()
    sink: _TextSink | _FileSink | None = None
    total = 0
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            total += len(chunk)
            if total > limits.max_total_bytes:
                raise MultipartError(
                    "upload_too_large",
                    f"The request body is larger than {_size(limits.max_total_bytes)}.",
                    sink.name if sink is not None else None,
                )
            for event in parser.parse(chunk):
                if isinstance(event, MultipartSegment):
                    if len(form.parts) >= limits.max_parts:
                        raise MultipartError("upload_too_large", f"The form has more than {limits.max_parts} parts.", event.name or None)
                    sink = _open_part(event, limits)
                elif event is None:
                    assert sink is not None
                    done, sink = sink, None
                    form.parts.append(await done.finish())
                else:
                    assert sink is not None
                    await sink.feed(event)
        parser.close(check_complete=True)
    except ParserLimitReached:
        _discard(form, sink)
        raise MultipartError(
            "invalid_multipart", f"A part's headers are too long (at most {limits.max_headers} lines of {limits.max_header_bytes} bytes).", _name(sink)
        ) from None
    except _ParserError as exc:
        _discard(form, sink)
        raise MultipartError("invalid_multipart", f"The multipart body is malformed: {_reason(exc)}.", _name(sink)) from None
    except BaseException:
        _discard(form, sink)
        raise
    return form


async def read_multipart(request: Request[Any, Any, Any], limits: MultipartLimits) -> MultipartForm:
    """`parse_multipart` over a Litestar request's body stream."""
    async with contextlib.aclosing(_guarded(request.stream())) as chunks:
        return await parse_multipart(chunks, request.headers.get("content-type"), limits, content_length=request.content_length)


async def _guarded(stream: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """Litestar's own body errors as MultipartErrors (its app-wide body cap, a client that goes
    away mid-body); closing this closes the body stream, and the server drops what is unread."""
    try:
        async for chunk in stream:
            yield chunk
    except RequestEntityTooLarge:
        raise MultipartError("upload_too_large", "The request body is too large.") from None
    except InternalServerException:
        raise MultipartError("invalid_multipart", "The request body ended early (the client went away).") from None
    finally:
        await stream.aclose()


def _discard(form: MultipartForm, sink: _TextSink | _FileSink | None) -> None:
    if sink is not None:
        sink.abandon()
    form.close()


def _name(sink: _TextSink | _FileSink | None) -> str | None:
    return sink.name if sink is not None else None


def _reason(exc: _ParserError) -> str:
    # the parser's messages are fixed sentences ("Unexpected end of multipart stream"), never
    # echoes of the body, so they are safe to pass on
    text = str(exc).strip().rstrip(".") or "not a multipart body"
    return text[0].lower() + text[1:]
