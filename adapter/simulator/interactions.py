"""Discord's side of `POST /interactions`: check the payload the way Discord does before any
bot sees it (session, application, channel, command id + version, the button on the message,
the modal being answered, the uploaded attachments), log the attempt, and hand an accepted
`Interaction` to the bot.

Refusals carry Discord's status and JSON error (`InteractionRefused.status / .body`).
"""

from __future__ import annotations

import random
import re
import time
from typing import Any, Literal

import msgspec

from adapter.domain.actions import BOT_APPLICATION_IDS
from adapter.simulator.commands import Command
from adapter.simulator.context import SimContext
from adapter.simulator.state import Upload, UserState
from adapter.simulator.wire import Message

ModalKind = Literal["custom_zoom", "remix_variation", "remix_reroll", "remix_pan", "remix_animate", "iframe_inpaint", "iframe_captcha"]


class InteractionRecord(msgspec.Struct, frozen=True):
    """One POST /interactions, accepted or refused. `name` is the command name, the button's
    custom_id or the modal's custom_id."""

    at: float  # time.monotonic()
    user_id: str
    type: int
    name: str
    nonce: str | None
    outcome: str  # accepted | unauthorized | rate_limited | captcha | invalid_session | invalid_version | ...
    interaction_id: str | None = None
    status: int | None = None  # the HTTP status answered (204, 400, 429, 500, ...)


class InteractionLog:
    MAX_RECORDS = 10_000  # oldest records drop off beyond this

    def __init__(self) -> None:
        self.records: list[InteractionRecord] = []

    def add(
        self, user_id: str, type_: int, name: str, nonce: str | None, outcome: str, interaction_id: str | None = None,
        status: int | None = None,
    ) -> None:
        self.records.append(InteractionRecord(time.monotonic(), user_id, type_, name, nonce, outcome, interaction_id, status))
        if len(self.records) > self.MAX_RECORDS:
            del self.records[: len(self.records) - self.MAX_RECORDS]


# Discord takes any well-formed session_id (public clients send fixed or random ones, even their
# token); only a missing or garbled one is a form error.
_SESSION_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


class InteractionPayload(msgspec.Struct):
    type: int
    application_id: str
    channel_id: str
    session_id: Any = None
    guild_id: str | None = None
    nonce: str | None = None
    message_id: str | None = None
    message_flags: int | None = None
    data: dict[str, Any] = {}


class OpenModal(msgspec.Struct, kw_only=True):
    """A modal (or iframe) the bot opened, waiting for its answer."""

    interaction_id: str  # the button press that opened it; modal submits cite it as data.id
    user_id: str
    channel_id: str
    custom_id: str
    kind: ModalKind
    job_hash: str | None = None
    index: int = 1
    pan: str | None = None
    strong: bool = True
    source_message_id: str | None = None
    nonce: str | None = None
    session_id: str | None = None
    button_custom_id: str | None = None
    token: str | None = None  # iframes: the token after MJ::iframe::


class Interaction:
    """An accepted interaction, as the bot receives it."""

    def __init__(self, *, id: str, payload: InteractionPayload, user: UserState, rng: random.Random) -> None:
        self.id = id
        self.type = payload.type
        self.nonce = payload.nonce
        self.claimed_session_id: str = payload.session_id or ""
        # where its INTERACTION_* events go (SessionHub.interaction_route), set by accept()
        self.session_id = ""
        self.channel_id = payload.channel_id
        self.guild_id = payload.guild_id
        self.application_id = payload.application_id
        self.message_flags = payload.message_flags or 0
        self.data = payload.data
        self.user = user
        self.rng = rng
        self.name = ""
        self.command: Command | None = None
        self.options: dict[str, Any] = {}
        self.attachments: dict[str, Upload] = {}  # attachment id -> upload
        self.message: Message | None = None  # the message whose button was pressed
        self.custom_id = ""
        self.modal: OpenModal | None = None
        self.modal_values: dict[str, str] = {}


class InteractionRefused(Exception):
    def __init__(self, status: int, body: dict[str, Any], outcome: str) -> None:
        super().__init__(outcome)
        self.status = status
        self.body = body
        self.outcome = outcome


def form_error(path: list[str], code: str, message: str, outcome: str = "invalid_form_body") -> InteractionRefused:
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        errors = {key: errors}
    return InteractionRefused(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors}, outcome)


def _name_of(payload: InteractionPayload) -> str:
    data = payload.data
    if payload.type == 2:
        return str(data.get("name", ""))
    return str(data.get("custom_id", ""))


def accept(
    ctx: SimContext,
    user: UserState,
    raw: bytes,
    *,
    files: dict[str, Upload] | None = None,
    outcome: str = "accepted",
    status: int = 204,
) -> Interaction:
    """Validate one interaction body; raises InteractionRefused (already logged). An accepted
    one is logged with `outcome` and `status` (a fault may answer it with a 5xx)."""
    try:
        payload = msgspec.json.decode(raw, type=InteractionPayload)
    except msgspec.DecodeError as exc:
        ctx.interactions.add(user.id, 0, "", None, "invalid_form_body", status=400)
        raise form_error([], "BASE_TYPE_INVALID", f"Invalid interaction payload: {exc}") from None

    def refuse(err: InteractionRefused) -> InteractionRefused:
        ctx.interactions.add(user.id, payload.type, _name_of(payload), payload.nonce, err.outcome, status=err.status)
        return err

    sid = payload.session_id
    if sid is None or sid == "":
        raise refuse(form_error(["session_id"], "BASE_TYPE_REQUIRED", "This field is required", outcome="invalid_session"))
    if not isinstance(sid, str):
        raise refuse(form_error(["session_id"], "BASE_TYPE_STRING", "Must be a string.", outcome="invalid_session"))
    if not _SESSION_ID.fullmatch(sid):
        raise refuse(form_error(["session_id"], "STRING_TYPE_REGEX", "String value did not match validation regex.", outcome="invalid_session"))
    if payload.application_id not in BOT_APPLICATION_IDS.values():
        raise refuse(InteractionRefused(404, {"message": "Unknown Application", "code": 10002}, "unknown_application"))
    channel = ctx.world.channels.get(payload.channel_id)
    if channel is None or not ctx.world.can_access(user.id, payload.channel_id):
        raise refuse(InteractionRefused(404, {"message": "Unknown Channel", "code": 10003}, "unknown_channel"))
    if payload.guild_id is not None and payload.guild_id != channel.guild_id:  # a DM has none
        raise refuse(form_error(["guild_id"], "GUILD_MISMATCH", "guild_id does not own this channel"))
    if payload.type not in (2, 3, 5):
        raise refuse(form_error(["type"], "BASE_TYPE_CHOICES", "Value must be one of {2, 3, 5}."))

    kaptcha = ctx.faults.take_captcha(user.id)
    if kaptcha == "discord":
        raise refuse(
            InteractionRefused(
                400,
                {
                    "captcha_key": ["captcha-required"],
                    "captcha_sitekey": "a9b5fb07-92ff-493f-86fe-352a2803b3df",
                    "captcha_service": "hcaptcha",
                    "captcha_rqdata": "simulated",
                    "captcha_rqtoken": "simulated",
                },
                "captcha",
            )
        )

    inter = Interaction(id=ctx.ids.next(), payload=payload, user=user, rng=random.Random(0))
    inter.session_id = ctx.hub.interaction_route(sid, user.id, fallback=user.interaction_events_fallback)
    try:
        if payload.type == 2:
            _check_command(ctx, inter, files or {})
        elif payload.type == 3:
            _check_component(ctx, inter, payload)
        else:
            _check_modal_submit(ctx, inter)
    except InteractionRefused as err:
        raise refuse(err) from None
    if kaptcha == "midjourney":
        inter.name = inter.name or _name_of(payload)
        inter.data = {**inter.data, "_captcha": True}
    # drawn only for accepted interactions, in arrival order: a seed replays the same world
    inter.rng = ctx.child_rng()
    ctx.interactions.add(user.id, payload.type, inter.name, payload.nonce, outcome, inter.id, status)
    return inter


def _check_command(ctx: SimContext, inter: Interaction, files: dict[str, Upload]) -> None:
    data = inter.data
    command_id = str(data.get("id", ""))
    command = ctx.commands.get(inter.application_id, command_id)
    if command is None:
        raise InteractionRefused(404, {"message": "Unknown application command", "code": 10063}, "unknown_command")
    if str(data.get("version", "")) != command.version:
        raise form_error(
            ["data"],
            "INTERACTION_APPLICATION_COMMAND_INVALID_VERSION",
            "This command is outdated, please try again in a few minutes",
            outcome="invalid_version",
        )
    if "name" in data and data["name"] != command.name:
        raise form_error(["data", "name"], "INTERACTION_APPLICATION_COMMAND_INVALID", "The command name does not match its id")
    inter.command = command
    inter.name = command.name

    # attachments: uploaded files (by uploaded_filename) or multipart parts (files[n])
    raw_attachments = data.get("attachments") or []
    if not isinstance(raw_attachments, list):
        raise form_error(["data", "attachments"], "BASE_TYPE_LIST", "Must be a list")
    for i, att in enumerate(raw_attachments):
        if not isinstance(att, dict) or "id" not in att:
            raise form_error(["data", "attachments", str(i)], "BASE_TYPE_REQUIRED", "This field is required")
        att_id = str(att["id"])
        uploaded = att.get("uploaded_filename")
        upload = ctx.world.uploads.get(uploaded) if isinstance(uploaded, str) else files.get(att_id)
        if upload is None or upload.data is None or upload.user_id != inter.user.id:
            raise form_error(
                ["data", "attachments", str(i), "uploaded_filename"],
                "ATTACHMENT_NOT_FOUND",
                "The attachment was not uploaded",
            )
        inter.attachments[att_id] = upload

    inter.options = _check_options(inter, command.options, data.get("options"), ["data", "options"])


def _check_options(inter: Interaction, specs: list[Any], options: Any, path: list[str]) -> dict[str, Any]:
    """The given options against their specs, as {name: value}; a subcommand (type 1) or a
    subcommand group (type 2) carries its own options and becomes {name: {its options}}. Where
    the specs are subcommands, exactly one must be chosen."""
    known = {o.name: o for o in specs}
    options = options or []
    if not isinstance(options, list):
        raise form_error(path, "BASE_TYPE_LIST", "Must be a list")
    out: dict[str, Any] = {}
    for i, opt in enumerate(options):
        if not isinstance(opt, dict) or opt.get("name") not in known:
            raise form_error([*path, str(i)], "APPLICATION_COMMAND_OPTION_UNKNOWN", "Unknown option")
        spec = known[opt["name"]]
        if opt.get("type") != spec.type:
            raise form_error([*path, str(i), "type"], "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Option type mismatch")
        value = opt.get("value")
        if spec.type in (1, 2):
            value = _check_options(inter, spec.options or [], opt.get("options"), [*path, str(i), "options"])
        elif spec.type == 11:
            if str(value) not in inter.attachments:
                raise form_error([*path, str(i), "value"], "ATTACHMENT_NOT_FOUND", "Unknown attachment")
            value = str(value)
        elif not isinstance(value, str):
            raise form_error([*path, str(i), "value"], "BASE_TYPE_STRING", "Must be a string")
        elif spec.choices and value not in {c.value for c in spec.choices}:
            raise form_error([*path, str(i), "value"], "BASE_TYPE_CHOICES", "Value must be one of the choices")
        out[spec.name] = value
    if any(spec.type in (1, 2) for spec in specs) and len(out) != 1:
        raise form_error(path, "APPLICATION_COMMAND_OPTIONS_REQUIRED_MISSING", "Choose exactly one subcommand")
    for spec in specs:
        if spec.required and spec.name not in out:
            raise form_error(path, "APPLICATION_COMMAND_OPTIONS_REQUIRED_MISSING", f"Required option {spec.name} is missing")
    return out


def _check_component(ctx: SimContext, inter: Interaction, payload: InteractionPayload) -> None:
    custom_id = payload.data.get("custom_id")
    inter.name = str(custom_id or "")
    if not payload.message_id:
        raise form_error(["message_id"], "BASE_TYPE_REQUIRED", "This field is required")
    message = ctx.world.find_message(inter.user.id, inter.channel_id, payload.message_id)
    if message is None:
        raise InteractionRefused(404, {"message": "Unknown Message", "code": 10008}, "unknown_message")
    if message.author.id != inter.application_id:
        raise form_error(["application_id"], "INTERACTION_APPLICATION_MISMATCH", "The message was not sent by this application")
    if payload.data.get("component_type", 2) != 2 or not isinstance(custom_id, str) or custom_id not in message.custom_ids():
        raise form_error(["data", "custom_id"], "COMPONENT_VALIDATION_FAILED", "Component validation failed", outcome="unknown_component")
    inter.message = message
    inter.custom_id = custom_id


def _check_modal_submit(ctx: SimContext, inter: Interaction) -> None:
    data = inter.data
    modal_id = str(data.get("id", ""))
    custom_id = str(data.get("custom_id", ""))
    inter.name = custom_id
    modal = ctx.bot.modals.get(modal_id)
    if modal is None or modal.user_id != inter.user.id or modal.kind.startswith("iframe"):
        raise InteractionRefused(404, {"message": "Unknown interaction", "code": 10062}, "unknown_modal")
    if modal.custom_id != custom_id:
        raise form_error(["data", "custom_id"], "MODAL_CUSTOM_ID_MISMATCH", "custom_id does not match the open modal")
    values: dict[str, str] = {}
    rows = data.get("components")
    for row in rows if isinstance(rows, list) else []:
        comps = row.get("components") if isinstance(row, dict) else None
        for comp in comps if isinstance(comps, list) else []:
            if isinstance(comp, dict) and isinstance(comp.get("custom_id"), str) and isinstance(comp.get("value"), str):
                values[comp["custom_id"]] = comp["value"]
    inter.modal = ctx.bot.modals.pop(modal_id)
    inter.modal_values = values
    inter.custom_id = custom_id
