"""Strict request decoding and the OpenAPI description generated from the same Structs."""

from __future__ import annotations

import json

import msgspec
import pytest

from adapter.api.common.bodies import BodyError, body_operation, convert_fields, decode_json, json_schema
from adapter.api.mjproxy.protocol import ImagineRequest
from adapter.api.openai.protocol_chat import ChatCompletionRequest
from adapter.api.openai.protocol_images import ImageEditRequest, ImageGenerationRequest


def error(body: bytes, model: type = ImageGenerationRequest, **kw: bool) -> BodyError:
    with pytest.raises(BodyError) as info:
        decode_json(body, model, **kw)
    return info.value


@pytest.mark.parametrize(
    ("body", "param", "code", "words"),
    [
        (b'{"prompt":"x","stream":"yes"}', "stream", "invalid_type", "expected `bool | null`, got `str`"),
        (b'{"prompt":"x","background":"plaid"}', "background", "invalid_value", "invalid enum value 'plaid'"),
        (b'{"prompt":"x","size":"\xd9\xa1\xd9\xa0x\xd9\xa1\xd9\xa0"}', "size", "invalid_value", "ascii digits"),
        (b'{"prompt":"a\\u0000b"}', "prompt", "invalid_value", "control characters"),
        (b'{"prompt":"a\\u009bb"}', "prompt", "invalid_value", "control characters"),
        (b'{"prompt":""}', "prompt", "invalid_value", "length >= 1"),
        (b'{"n":2}', "prompt", "missing_required_parameter", "missing required field `prompt`"),
        (b'{"prompt":"x","n":true}', "n", "invalid_type", "`n`"),
        (b'{"prompt":"x","n":11}', "n", "invalid_value", "<= 10"),
        (b"[]", None, "invalid_type", "expected `object`"),
        (b"{", None, None, "not valid JSON"),
        (b"", None, None, "empty"),
        (b'{"prompt":"x","extra":' + b"[" * 50_000 + b"]" * 50_000 + b"}", None, None, "nested too deeply"),
    ],
)
def test_refusals_name_the_field_and_kind(body: bytes, param: str | None, code: str | None, words: str) -> None:
    err = error(body)
    assert (err.param, err.code) == (param, code), err.message
    assert words.lower() in err.message.lower()


def test_tabs_and_newlines_are_text_not_control() -> None:
    req = decode_json(b'{"prompt":"line one\\n\\tline two\\r\\n"}', ImageGenerationRequest)
    assert req.prompt.startswith("line one")


def test_nested_paths_point_at_the_top_level_field() -> None:
    err = error(b'{"messages":[{"role":"user","content":[{"type":"text","text":5}]}]}', ChatCompletionRequest)
    assert err.param == "messages" and "messages[0].content" in err.message


def test_lax_mode_for_midjourney_proxy_clients_still_bounds() -> None:
    assert decode_json(b"", ImagineRequest, strict=False, empty_ok=True).prompt == ""
    err = error(msgspec.json.encode({"prompt": "x", "state": "s" * 5000}), ImagineRequest, strict=False)
    assert err.param == "state"


def test_form_fields_convert_from_text() -> None:
    req = convert_fields({"prompt": "a fox", "n": "2", "stream": "true", "output_compression": "50"}, ImageEditRequest)
    assert (req.n, req.stream, req.output_compression) == (2, True, 50)
    with pytest.raises(BodyError) as info:
        convert_fields({"prompt": "a fox", "stream": "yes"}, ImageEditRequest)
    assert info.value.param == "stream"


def test_schema_is_inlined_and_carries_the_constraints() -> None:
    schema = json_schema(ChatCompletionRequest)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    assert schema["required"] == ["messages"]
    assert schema["properties"]["messages"]["maxItems"] == 1000
    generation = json_schema(ImageGenerationRequest)
    assert generation["properties"]["prompt"]["maxLength"] == 6000
    assert set(generation["properties"]["background"]["anyOf"][0]["enum"]) == {"auto", "transparent", "opaque"}


def test_body_operation_documents_the_body() -> None:
    op_class = body_operation(ImageGenerationRequest)
    op = op_class(operation_id="x")
    assert op.request_body is not None and op.request_body.required
    schema = op.request_body.content["application/json"].schema
    assert schema["title"] == "ImageGenerationRequest"  # type: ignore[index]
