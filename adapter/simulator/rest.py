"""The HTTP side of the fake Discord (a Litestar app):

- `/api/v9/...` and `/api/v10/...` (the same routes): Discord's REST API as PROTOCOL.md section 2
  describes it (token auth, 204 on interactions, Discord-shaped JSON errors, rate-limit headers
  on every answer, JSON 404 `{"message": "404: Not Found", "code": 0}` for unknown routes);
- `/_upload/<key>`: where `upload_url`s point (PUT raw bytes, no auth, like Google Storage);
- `/attachments/...`: the CDN (signed, expiring URLs);
- `/inpaint/api/submit-job`: the vary-region editor's submit (the iframe's backend);
- `/_simulator/...`: the control API (control.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import unquote

import msgspec
from litestar import Litestar, Request, Response, get, post, put
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath
from litestar.types import ASGIApp, Message as AsgiMessage, Receive, Scope, Send

from adapter.simulator.cdn import content_type_for, safe_filename
from adapter.simulator.context import SimContext
from adapter.simulator.control import control_routes
from adapter.simulator.images import image_info
from adapter.simulator.interactions import InteractionRefused, accept
from adapter.simulator.commands import BOT_USERS
from adapter.simulator.state import DM, Channel, Upload, UserState
from adapter.simulator.wire import Message, iso_timestamp

API_VERSIONS = ("9", "10")
_API_PATH = re.compile(r"/api/v(?:9|10)/")
MAX_BODY = 64 * 1024 * 1024
RATE_LIMIT = 50  # per bucket per window: advertised, not enforced (faults produce 429s)
RATE_WINDOW = 1.0
_ID_IN_PATH = re.compile(r"/\d{6,}")
_SNOWFLAKE = re.compile(r"\d{1,20}")


def api(path: str) -> list[str]:
    """The route under every API version the simulator serves."""
    return [f"/api/v{v}{path}" for v in API_VERSIONS]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers)


def _unauthorized() -> Response[bytes]:
    return json_response(401, {"message": "401: Unauthorized", "code": 0})


def _server_error(status: int) -> Response[bytes]:
    """What a Discord 5xx looks like: its API's JSON 500, Cloudflare's HTML 502, the proxy's
    plain-text 503."""
    if status == 502:
        html = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
        return Response(content=html, status_code=502, media_type="text/html")
    if status == 503:
        text = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"
        return Response(content=text, status_code=503, media_type="text/plain")
    return json_response(500, {"message": "500: Internal Server Error", "code": 0})


def _query_error(field: str, code: str, message: str) -> Response[bytes]:
    return json_response(400, {"message": "Invalid Form Body", "code": 50035, "errors": {field: {"_errors": [{"code": code, "message": message}]}}})


def _as_read(message: Message) -> Message:
    """A message as REST reads return it: Discord does not keep the nonce with the message, it
    is only in the MESSAGE_CREATE event (and the POST /messages answer)."""
    return msgspec.structs.replace(message, nonce=None) if message.nonce is not None else message


def _peek_interaction(raw: bytes) -> tuple[int, str, str | None]:
    """(type, name, nonce) of an interaction body that is not going to be validated, for the log."""
    try:
        body = json.loads(raw) if raw and raw[:1] == b"{" else {}
    except ValueError:
        body = {}
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    type_ = body.get("type") if isinstance(body.get("type"), int) else 0
    nonce = body.get("nonce") if isinstance(body.get("nonce"), str) else None
    return type_, str(data.get("name") or data.get("custom_id") or ""), nonce


class RateLimitHeaders:
    """ASGI wrapper adding Discord's X-RateLimit-* headers to every /api/v9 and /api/v10 answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _API_PATH.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        # one bucket per route whatever the API version
        route = _ID_IN_PATH.sub("/{id}", _API_PATH.sub("/", scope["path"], count=1).split("/reactions/", 1)[0])
        token = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), "")
        key = (hashlib.sha256(token.encode()).hexdigest()[:16], f"{scope['method']} {route}")
        now = time.time()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= RATE_WINDOW:
            start, count = now, 0
        count += 1
        self._windows[key] = (start, count)
        bucket = hashlib.sha1(key[1].encode()).hexdigest()[:32]

        async def send_with_headers(message: AsgiMessage) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-sim-retry-after"]
                retry = next((v.decode() for k, v in message.get("headers", []) if k == b"x-sim-retry-after"), None)
                reset_after = float(retry) if retry else max(0.0, start + RATE_WINDOW - now)
                remaining = 0 if retry else max(0, RATE_LIMIT - count)
                headers += [
                    (b"x-ratelimit-limit", str(RATE_LIMIT).encode()),
                    (b"x-ratelimit-remaining", str(remaining).encode()),
                    (b"x-ratelimit-reset", f"{now + reset_after:.3f}".encode()),
                    (b"x-ratelimit-reset-after", f"{reset_after:.3f}".encode()),
                    (b"x-ratelimit-bucket", bucket.encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_app(ctx: SimContext) -> ASGIApp:
    world = ctx.world

    def guard(request: Request[Any, Any, Any], *, auth: bool = True) -> tuple[UserState | None, Response[bytes] | None]:
        """Armed 429s first (they hit any /api/v9 or /api/v10 call), then the token."""
        fault = ctx.faults.take_rate_limit()
        if fault is not None:
            body = {"message": "You are being rate limited.", "retry_after": fault.retry_after, "global": fault.is_global}
            if fault.is_global:
                body["code"] = 0
            headers = {
                "retry-after": str(max(1, math.ceil(fault.retry_after))),
                "x-sim-retry-after": f"{fault.retry_after:.3f}",
                "x-ratelimit-scope": "global" if fault.is_global else "user",
            }
            if fault.is_global:
                headers["x-ratelimit-global"] = "true"
            return None, json_response(429, body, headers)
        if not auth:
            return None, None
        user = world.user_for_token(request.headers.get("authorization"))
        if user is None:
            return None, _unauthorized()
        return user, None

    def channel_guard(user: UserState, channel_id: str) -> Response[bytes] | None:
        if channel_id not in world.channels:
            return json_response(404, {"message": "Unknown Channel", "code": 10003})
        if not world.can_access(user.id, channel_id):
            return json_response(403, {"message": "Missing Access", "code": 50001})
        return None

    async def read_payload(request: Request[Any, Any, Any]) -> tuple[bytes, dict[str, Upload]]:
        """JSON body, or multipart with `payload_json` and `files[n]` parts."""
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return await request.body(), {}
        form = await request.form()
        files: dict[str, Upload] = {}
        raw = b"{}"
        for name, value in form.multi_items():
            if name == "payload_json":
                raw = value.encode() if isinstance(value, str) else await value.read()
            elif (m := re.fullmatch(r"files\[(\d+)\]", name)) and not isinstance(value, str):
                data = await value.read()
                files[m.group(1)] = Upload(
                    key="", user_id="", channel_id="", filename=value.filename or f"file{m.group(1)}",
                    upload_filename="", file_size=len(data), data=data, content_type=value.content_type or content_type_for(value.filename or ""),
                )
        return raw, files

    # --- Discord REST ----------------------------------------------------------------------

    @get(api("/gateway"))
    async def gateway(request: Request[Any, Any, Any]) -> Response[bytes]:
        _, refused = guard(request, auth=False)
        return refused or json_response(200, {"url": ctx.gateway.url})

    @get(api("/users/@me"))
    async def me(request: Request[Any, Any, Any]) -> Response[bytes]:
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        return json_response(200, msgspec.to_builtins(user.user) | {"verified": True, "mfa_enabled": False, "flags": 0})

    @post(api("/interactions"), status_code=200)
    async def interactions(request: Request[Any, Any, Any]) -> Response[Any]:
        user, refused = guard(request)
        if refused is not None or user is None:
            answer = refused or _unauthorized()
            with_user = world.user_for_token_any(request.headers.get("authorization", ""))
            type_, name, nonce = _peek_interaction(await request.body())
            outcome = "rate_limited" if answer.status_code == 429 else "unauthorized"
            ctx.interactions.add(with_user.id if with_user else "", type_, name, nonce, outcome, status=answer.status_code)
            return answer
        raw, files = await read_payload(request)
        for upload in files.values():
            upload.user_id = user.id
        server_error = ctx.faults.take_server_error(user.id)
        if server_error is not None and not server_error.accepted:
            # lost on Discord's side: nothing happens, the client cannot know
            type_, name, nonce = _peek_interaction(raw)
            ctx.interactions.add(user.id, type_, name, nonce, "server_error", status=server_error.status)
            return _server_error(server_error.status)
        try:
            if server_error is not None:
                inter = accept(ctx, user, raw, files=files, outcome="server_error_accepted", status=server_error.status)
            else:
                inter = accept(ctx, user, raw, files=files)
        except InteractionRefused as err:
            return json_response(err.status, err.body)
        ctx.hub.to_session(inter.session_id, "INTERACTION_CREATE", {"id": inter.id, "nonce": inter.nonce})
        ctx.bot.handle(inter)
        if server_error is not None:
            # processed, yet the answer is a 5xx: a client that retries runs it twice
            return _server_error(server_error.status)
        return Response(content=None, status_code=204)

    def command_index(user: UserState, guild_id: str) -> Response[bytes]:
        guild = world.guilds.get(guild_id)
        if guild is None:
            return json_response(404, {"message": "Unknown Guild", "code": 10004})
        if user.id not in guild.member_ids:
            return json_response(403, {"message": "Missing Access", "code": 50001})
        return json_response(200, index_of(tuple(guild.app_ids)))

    @get(api("/guilds/{guild_id:str}/application-command-index"))
    async def guild_command_index(request: Request[Any, Any, Any], guild_id: FromPath[str]) -> Response[bytes]:
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        return command_index(user, guild_id)

    def apps_in(channel: Channel) -> tuple[str, ...]:
        """The bots whose commands a channel offers: a DM's bot, or the bots of its guild."""
        return channel.recipient_ids if channel.type == DM else tuple(world.guilds[channel.guild_id or ""].app_ids)

    def index_of(app_ids: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The command index, for these applications only when given (a bot's DM)."""
        body = ctx.commands.index()
        if app_ids is None:
            return body
        return {
            **body,
            "applications": [a for a in body["applications"] if a["id"] in app_ids],
            "application_commands": [c for c in body["application_commands"] if c["application_id"] in app_ids],
        }

    @get(api("/channels/{channel_id:str}/application-command-index"))
    async def channel_command_index(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[bytes]:
        """The commands usable in a channel: a DM's are its bot's, a guild channel's the guild's."""
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        if (bad := channel_guard(user, channel_id)) is not None:
            return bad
        return json_response(200, index_of(apps_in(world.channels[channel_id])))

    @get(api("/users/@me/application-command-index"))
    async def user_command_index(request: Request[Any, Any, Any]) -> Response[bytes]:
        """The commands of the applications the user can use anywhere (Midjourney and Niji are
        user-installable)."""
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        return json_response(200, index_of())

    def channel_object(channel: Channel) -> dict[str, Any]:
        base: dict[str, Any] = {"id": channel.id, "type": channel.type, "last_message_id": channel.last_message_id, "flags": 0}
        if channel.type == DM:
            return base | {"recipients": [msgspec.to_builtins(BOT_USERS[r]) for r in channel.recipient_ids if r in BOT_USERS]}
        guild = world.guilds[channel.guild_id or ""]
        return base | {
            "guild_id": channel.guild_id,
            "name": channel.name,
            "parent_id": None,
            "position": guild.channel_ids.index(channel.id) if channel.id in guild.channel_ids else 0,
            "topic": None,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "permission_overwrites": [],
        }

    @get(api("/channels/{channel_id:str}"))
    async def get_channel(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[bytes]:
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        if (bad := channel_guard(user, channel_id)) is not None:
            return bad
        return json_response(200, channel_object(world.channels[channel_id]))

    @get(api("/users/@me/channels"))
    async def my_dms(request: Request[Any, Any, Any]) -> Response[bytes]:
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        return json_response(200, [channel_object(c) for c in world.dms_of(user.id)])

    @post(api("/users/@me/channels"), status_code=200)
    async def open_dm(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Open (or find) the DM with a bot: `{"recipients": [id]}` or `{"recipient_id": id}`."""
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        try:
            body = msgspec.json.decode(await request.body() or b"{}")
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict):
            return json_response(400, {"message": "Invalid Form Body", "code": 50035})
        recipients = body.get("recipients")
        if recipients is None and body.get("recipient_id") is not None:
            recipients = [body["recipient_id"]]
        if not isinstance(recipients, list) or len(recipients) != 1 or str(recipients[0]) not in BOT_USERS:
            # only the bots exist in this world: a DM with anyone else has no recipient
            return json_response(400, {"message": "Invalid Recipient(s)", "code": 50033})
        bot_id = str(recipients[0])
        channel = world.dm_with(user.id, bot_id) or world.add_dm(ctx.ids.next(), user.id, bot_id)
        return json_response(200, channel_object(channel))

    @get(api("/channels/{channel_id:str}/application-commands/search"))
    async def command_search(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[bytes]:
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        if (bad := channel_guard(user, channel_id)) is not None:
            return bad
        body = index_of(apps_in(world.channels[channel_id]))
        return json_response(200, {**body, "cursor": {"next": None, "previous": None, "repaired": None}})

    @post(api("/channels/{channel_id:str}/attachments"), status_code=200)
    async def attachments(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[bytes]:
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        if (bad := channel_guard(user, channel_id)) is not None:
            return bad
        try:
            body = msgspec.json.decode(await request.body())
            files = body["files"]
            assert isinstance(files, list) and files
        except Exception:
            return json_response(400, {"message": "Invalid Form Body", "code": 50035, "errors": {"files": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}}})
        out = []
        for i, f in enumerate(files):
            if not isinstance(f, dict) or not isinstance(f.get("filename"), str):
                return json_response(400, {"message": "Invalid Form Body", "code": 50035, "errors": {"files": {str(i): {"filename": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}}}}})
            key = secrets.token_urlsafe(18)
            upload_filename = f"{uuid.uuid4()}/{safe_filename(f['filename'])}"
            size = f.get("file_size")
            world.uploads[upload_filename] = Upload(
                key=key, user_id=user.id, channel_id=channel_id, filename=safe_filename(f["filename"]),
                upload_filename=upload_filename, file_size=size if isinstance(size, int) else 0,
            )
            world.upload_keys[key] = upload_filename
            out.append({"id": str(f.get("id", i)), "upload_url": f"{ctx.base_url}/_upload/{key}", "upload_filename": upload_filename})
        return json_response(200, {"attachments": out})

    @put("/_upload/{key:str}", status_code=200)
    async def upload(request: Request[Any, Any, Any], key: FromPath[str]) -> Response[bytes]:
        upload_filename = world.upload_keys.get(key)
        upload = world.uploads.get(upload_filename or "")
        if upload is None:
            return Response(content=b"No such upload", status_code=404, media_type="text/plain")
        data = await request.body()
        if upload.file_size and len(data) != upload.file_size:
            return Response(content=b"Size does not match file_size", status_code=400, media_type="text/plain")
        upload.data = data
        upload.content_type = request.headers.get("content-type") or content_type_for(upload.filename)
        return Response(content=b"", status_code=200, media_type="text/plain")

    @post(api("/channels/{channel_id:str}/messages"), status_code=200)
    async def create_message(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[bytes]:
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        if (bad := channel_guard(user, channel_id)) is not None:
            return bad
        raw, files = await read_payload(request)
        try:
            body = msgspec.json.decode(raw or b"{}")
            assert isinstance(body, dict)
        except Exception:
            return json_response(400, {"message": "Invalid Form Body", "code": 50035})
        atts = []
        for i, ref in enumerate(body.get("attachments") or []):
            if not isinstance(ref, dict):
                continue
            up = world.uploads.get(ref.get("uploaded_filename") or "") if ref.get("uploaded_filename") else files.get(str(ref.get("id", i)))
            if up is None or up.data is None or (up.user_id and up.user_id != user.id):
                return json_response(400, {"message": "Invalid Form Body", "code": 50035, "errors": {"attachments": {str(i): {"_errors": [{"code": "ATTACHMENT_NOT_FOUND", "message": "The attachment was not uploaded"}]}}}})
            name = ref.get("filename") if isinstance(ref.get("filename"), str) else up.filename
            info = image_info(up.data)
            atts.append(
                ctx.cdn.store(
                    channel_id, name, up.data,
                    width=info[1] if info else None, height=info[2] if info else None,
                    content_type=up.content_type if up.content_type.startswith("image/") else None,
                )
            )
        text = body.get("content") if isinstance(body.get("content"), str) else ""
        if not text and not atts:
            return json_response(400, {"message": "Cannot send an empty message", "code": 50006})
        message_id = ctx.ids.next()
        nonce = body.get("nonce")
        message = Message(
            id=message_id, type=0, content=text, channel_id=channel_id, guild_id=world.channels[channel_id].guild_id,
            author=user.user, attachments=atts, embeds=[], mentions=[], mention_roles=[], pinned=False,
            mention_everyone=False, tts=False, timestamp=iso_timestamp(message_id), edited_timestamp=None, flags=0,
            components=[], nonce=str(nonce) if isinstance(nonce, str | int) else None,
        )
        world.channels[channel_id].add(message)
        ctx.hub.to_channel(channel_id, "MESSAGE_CREATE", message)
        return json_response(200, message)

    @get(api("/channels/{channel_id:str}/messages"))
    async def history(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[bytes]:
        user, refused = guard(request)
        if refused or user is None:
            return refused or _unauthorized()
        if (bad := channel_guard(user, channel_id)) is not None:
            return bad
        q = request.query_params
        raw_limit = q.get("limit")
        if raw_limit is None or raw_limit == "":
            limit = 50
        elif not re.fullmatch(r"-?\d+", raw_limit):
            return _query_error("limit", "NUMBER_TYPE_COERCE", f'Value "{raw_limit}" is not int.')
        else:
            limit = int(raw_limit)
            if limit < 1:
                return _query_error("limit", "NUMBER_TYPE_MIN", "int value should be greater than or equal to 1.")
            if limit > 100:
                return _query_error("limit", "NUMBER_TYPE_MAX", "int value should be less than or equal to 100.")
        marks: dict[str, str | None] = {}
        for key in ("around", "before", "after"):
            value = q.get(key) or None
            if value is not None and not _SNOWFLAKE.fullmatch(value):
                return _query_error(key, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')
            marks[key] = value
        channel = world.channels[channel_id]
        if marks["around"] is not None:  # around wins: Discord takes one of the three
            messages = channel.around(limit, marks["around"])
        else:
            messages = channel.history(limit, before=marks["before"], after=marks["after"])
        return json_response(200, [_as_read(m) for m in messages])

    def message_guard(
        request: Request[Any, Any, Any], channel_id: str, message_id: str
    ) -> tuple[UserState | None, Any, Response[bytes] | None]:
        """(user, message) a caller may see in its channel, or the answer Discord would give."""
        user, refused = guard(request)
        if refused or user is None:
            return None, None, refused or _unauthorized()
        if (bad := channel_guard(user, channel_id)) is not None:
            return None, None, bad
        message = world.channels[channel_id].messages.get(message_id)
        if message is None:
            return None, None, json_response(404, {"message": "Unknown Message", "code": 10008})
        return user, message, None

    @get(api("/channels/{channel_id:str}/messages/{message_id:str}"))
    async def one_message(request: Request[Any, Any, Any], channel_id: FromPath[str], message_id: FromPath[str]) -> Response[bytes]:
        _, message, refused = message_guard(request, channel_id, message_id)
        return refused or json_response(200, _as_read(message))

    @put(api("/channels/{channel_id:str}/messages/{message_id:str}/reactions/{emoji:str}/@me"), status_code=200)
    async def react(request: Request[Any, Any, Any], channel_id: FromPath[str], message_id: FromPath[str], emoji: FromPath[str]) -> Response[Any]:
        user, message, refused = message_guard(request, channel_id, message_id)
        if refused is not None or user is None:
            return refused or _unauthorized()
        emoji = unquote(emoji)
        event: dict[str, Any] = {"user_id": user.id, "channel_id": channel_id, "message_id": message_id, "emoji": {"id": None, "name": emoji}}
        if message.guild_id is not None:  # DMs have no guild_id
            event["guild_id"] = message.guild_id
        ctx.hub.to_channel(channel_id, "MESSAGE_REACTION_ADD", event)
        ctx.bot.react(user, message, emoji)  # what the bot does about it (❌ cancel/delete, ✉️ DM)
        return Response(content=None, status_code=204)

    # --- CDN and the iframe backend --------------------------------------------------------

    @get("/attachments/{channel_id:str}/{attachment_id:str}/{filename:str}")
    async def cdn_file(request: Request[Any, Any, Any], channel_id: FromPath[str], attachment_id: FromPath[str], filename: FromPath[str]) -> Response[bytes]:
        path = ctx.cdn.path(channel_id, attachment_id, filename)
        query = {k: [v] for k, v in request.query_params.items()}
        file = ctx.cdn.get(path) if ctx.cdn.verify(path, query) else None
        if file is None:
            return Response(content=b"This content is no longer available.", status_code=404, media_type="text/plain")
        return Response(content=file.data, status_code=200, media_type=file.content_type, headers={"cache-control": "public, max-age=86400"})

    @post(["/inpaint/api/submit-job", "/.proxy/inpaint/api/submit-job"], status_code=200)
    async def inpaint_submit(request: Request[Any, Any, Any]) -> Response[bytes]:
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            return json_response(400, {"success": False, "message": "JSON body expected"})
        status, answer = ctx.bot.submit_inpaint(body)
        return json_response(status, answer)

    @post("/.proxy/inpaint/api/submit-job/{token:str}", status_code=200)
    async def inpaint_submit_token(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
        # the newer iframe: the token in the path, the body {mask, prompt}
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            return json_response(400, {"success": False, "message": "JSON body expected"})
        status, answer = ctx.bot.submit_inpaint(body, path_token=token)
        return json_response(status, answer)

    @get(["/inpaint/{rest:path}", "/captcha/{rest:path}"])
    async def iframe_page(rest: FromPath[str]) -> Response[bytes]:
        html = b"<!doctype html><title>Simulated Midjourney iframe</title><p>SIMULATED: this editor has no UI; POST /inpaint/api/submit-job instead.</p>"
        return Response(content=html, status_code=200, media_type="text/html")

    def not_found(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        # Discord's answer to a route it does not have (any version, any path)
        return json_response(404, {"message": "404: Not Found", "code": 0})

    def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
        return json_response(exc.status_code, {"message": f"{exc.status_code}: {exc.detail}", "code": 0})

    app = Litestar(
        route_handlers=[
            gateway, me, interactions, guild_command_index, channel_command_index, user_command_index, get_channel, my_dms,
            open_dm, command_search, attachments, upload, create_message,
            history, one_message, react, cdn_file, inpaint_submit, inpaint_submit_token, iframe_page, *control_routes(ctx),
        ],
        exception_handlers={NotFoundException: not_found, HTTPException: http_error},
        openapi_config=None,
        logging_config=None,
        request_max_body_size=MAX_BODY,
    )
    return RateLimitHeaders(app)
