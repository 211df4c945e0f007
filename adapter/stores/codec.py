"""How records are serialized inside a store: msgpack, via msgspec.

msgpack rather than JSON because the outbox body is raw bytes and because it is the smaller and
faster of the two. Unknown fields are ignored and missing ones take their defaults, so a blob
written by an older or newer adapter still decodes after Job gains or loses a field.
"""

from __future__ import annotations

import msgspec

from adapter.domain.jobs import Job
from adapter.stores.base import OutboxItem, StoreError

_encoder = msgspec.msgpack.Encoder()
_job_decoder = msgspec.msgpack.Decoder(Job)
_outbox_decoder = msgspec.msgpack.Decoder(OutboxItem)


def encode_job(job: Job) -> bytes:
    return _encoder.encode(job)


def decode_job(blob: bytes) -> Job:
    try:
        return _job_decoder.decode(blob)
    except msgspec.DecodeError as exc:
        raise StoreError(f"stored job record is unreadable: {exc}") from exc


def encode_outbox(item: OutboxItem) -> bytes:
    return _encoder.encode(item)


def decode_outbox(blob: bytes) -> OutboxItem:
    try:
        return _outbox_decoder.decode(blob)
    except msgspec.DecodeError as exc:
        raise StoreError(f"stored outbox record is unreadable: {exc}") from exc
