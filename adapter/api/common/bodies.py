"""Request bodies: strict decoding into msgspec Structs, and their OpenAPI description.

Every front door decodes its body into a request Struct here, so types and limits live in one
place (the Struct and its `Meta` constraints) and the OpenAPI document is generated from the same
Structs. A body that does not fit raises `BodyError` with a readable message and the top-level
field it is about; each front door turns that into its own error format.

Litestar's own `data` decoding is lax (it converts `"true"` to a boolean and reports errors in
its own shape), so handlers read the bytes and call `decode_json` instead; `body_operation` tells
the OpenAPI generator what those handlers take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec
from litestar.openapi.spec import OpenAPIResponse, Operation, RequestBody
from litestar.openapi.spec.media_type import OpenAPIMediaType

T = TypeVar("T")

# C0 controls other than tab, line feed and carriage return, DEL and the C1 controls: nothing a
# person types, and nothing that should travel on to Midjourney.
NO_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
# for text shown on one line of a table, a log or a terminal: no line breaks, and no bidi
# overrides or isolates, which can make it read as something else
ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$"
SIZE_PATTERN = r"^(auto|[0-9]{1,5}[xX][0-9]{1,5})$"

_EXPLAIN = {
    NO_CONTROL: "must not contain control characters (NUL, escape, ...)",
    ONE_LINE: "must be one line without control characters (line breaks, escapes, bidi overrides)",
    SIZE_PATTERN: "must be 'auto' or WIDTHxHEIGHT in ASCII digits (e.g. 1024x1024)",
}

MAX_PROMPT_CHARS = 6000
# a data URL of a 20 MB image, with room for its header
MAX_DATA_URL_CHARS = 28 * 1024 * 1024
_DATA_URL_HEADER = 1024
_BODY_SLACK = 1024 * 1024  # the other fields of a request, part headers and boundaries


def data_url_chars(max_bytes: int) -> int:
    """The length of a data URL of an image of `max_bytes` (base64 is 4/3 of the bytes)."""
    return 4 * -(-max_bytes // 3) + _DATA_URL_HEADER


def json_body_limit(max_image_bytes: int) -> int:
    """The largest JSON body read: one image at the per-image cap as a data URL, plus the rest of
    the request. A JSON body is held whole, then as decoded strings, then as image bytes (about
    three times its size in all), so this bound is what keeps one request in the tens of MB;
    several large images go as URLs or, on edits, as multipart files."""
    return data_url_chars(max_image_bytes) + _BODY_SLACK

Prompt = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=MAX_PROMPT_CHARS, pattern=NO_CONTROL, description="The Midjourney prompt (flags such as --ar allowed)."),
]
# a prompt that may be left empty (a follow-up keeps its parent's)
PromptText = Annotated[str, msgspec.Meta(max_length=MAX_PROMPT_CHARS, pattern=NO_CONTROL)]
Name = Annotated[str, msgspec.Meta(max_length=256, pattern=NO_CONTROL)]
CustomId = Annotated[str, msgspec.Meta(max_length=512, pattern=NO_CONTROL, description="A button's custom_id, as the job lists it.")]
Text = Annotated[str, msgspec.Meta(max_length=64 * 1024, pattern=NO_CONTROL)]
ImageRef = Annotated[
    str,
    msgspec.Meta(max_length=MAX_DATA_URL_CHARS, description="An image: an http(s) URL or a data URL (data:image/png;base64,...)."),
]

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_REGEX = re.compile(r"Expected `str` matching regex '(?P<pattern>.*)'$")
_TOP = re.compile(r"^\.?(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")


class BodyError(Exception):
    """A body that is not the request it should be. `param` is the top-level field at fault;
    `code` is OpenAI's word for the kind of fault (invalid_type, invalid_value,
    missing_required_parameter), None when the body is not even JSON."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def _explain(exc: msgspec.ValidationError) -> BodyError:
    text = str(exc)
    path = ""
    if m := _AT.search(text):
        path = m["path"]
        text = text[: m.start()]
    top = _TOP.match(path)
    param = top["name"] if top else None
    if param is None and (missing := _MISSING.match(text)) and not path:
        param = missing["name"]
    where = path.lstrip(".") or param
    if r := _REGEX.match(text):
        pattern = r["pattern"].encode().decode("unicode_escape")
        reason = _EXPLAIN.get(pattern, "has a form this API does not accept")
        return BodyError(f"`{where}` {reason}.", param, "invalid_value")
    if _MISSING.match(text):
        return BodyError(f"Invalid request: {text[0].lower()}{text[1:]}.", param, "missing_required_parameter")
    code = "invalid_type" if text.startswith("Expected `") and ", got `" in text else "invalid_value"
    if where:
        return BodyError(f"Invalid `{where}`: {text[0].lower()}{text[1:]}.", param, code)
    return BodyError(f"Invalid request: {text[0].lower()}{text[1:]}.", param, code)


def decode_json(body: bytes, model: type[T], *, strict: bool = True, empty_ok: bool = False) -> T:
    """The body as `model`. `strict=False` converts numbers and booleans sent as strings (the
    midjourney-proxy clients' habit); `empty_ok` reads an empty body as `{}`."""
    if not body.strip():
        if not empty_ok:
            raise BodyError("The request body is empty: send a JSON object.")
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=model, strict=strict)
    except msgspec.ValidationError as exc:
        raise _explain(exc) from None
    except msgspec.DecodeError:
        raise BodyError("The request body is not valid JSON.") from None
    except RecursionError:
        # msgspec stops at the interpreter's recursion limit; this turns it into the caller's error
        raise BodyError("The request body is nested too deeply.") from None


def convert_fields(fields: dict[str, Any], model: type[T]) -> T:
    """Form fields (all strings) as `model`: numbers and booleans are converted from text."""
    try:
        return msgspec.convert(fields, model, strict=False)
    except msgspec.ValidationError as exc:
        raise _explain(exc) from None


# --- OpenAPI ------------------------------------------------------------------------------------


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """msgspec's schema with every `$ref` replaced by what it names (request Structs are never
    recursive), so it can stand inside an operation without entries in `components`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def json_schema(model: type[Any]) -> dict[str, Any]:
    schema = msgspec.json.schema(model)
    defs = schema.pop("$defs", {})
    return _inline(schema, defs)  # type: ignore[no-any-return]


class FileField(msgspec.Struct, frozen=True):
    """A multipart file field, for the OpenAPI document."""

    name: str
    many: bool = False
    required: bool = False
    description: str = ""


def body_operation(
    model: type[Any] | None,
    media_type: str = "application/json",
    *,
    files: tuple[FileField, ...] = (),
    also_answers: tuple[str, ...] = (),
) -> type[Operation]:
    """An `operation_class` for a route handler whose body is `model` (None: no body); `files`
    adds the file fields of a multipart form; `also_answers` lists the success answer's other
    media types (an SSE stream, other image types), which Litestar's ResponseSpec cannot hold."""
    body: RequestBody | None = None
    if model is not None:
        schema = json_schema(model)
        for f in files:
            binary: dict[str, Any] = {"type": "string", "format": "binary"}
            prop = {"type": "array", "items": binary} if f.many else binary
            schema.setdefault("properties", {})[f.name] = {**prop, "description": f.description} if f.description else prop
            if f.required:
                schema.setdefault("required", []).append(f.name)
        body = RequestBody(required=True, content={media_type: OpenAPIMediaType(schema=schema)})  # type: ignore[arg-type]
    answers = {kind: OpenAPIMediaType(schema={"type": "string", "format": "binary"} if not kind.startswith("text/") else {"type": "string"}) for kind in also_answers}  # type: ignore[arg-type]

    @dataclass
    class _Documented(Operation):
        def __post_init__(self) -> None:
            if body is not None:
                self.request_body = body
            ok = (self.responses or {}).get("200")
            if answers and isinstance(ok, OpenAPIResponse):
                ok.content = {**(ok.content or {}), **answers}

    _Documented.__name__ = f"{model.__name__ if model else 'Plain'}Operation"
    return _Documented
