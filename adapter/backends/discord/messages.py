"""Midjourney bot messages, classified: one raw Discord message object (the `d` of a
MESSAGE_CREATE / MESSAGE_UPDATE) in, one typed `MjMessage` out.

`classify` never raises. The gateway feeds it whatever Discord sends, including partial updates
and shapes nobody has seen yet; a message it cannot read is kind "other", never an exception
that would take the connection down.

Kinds:
- waiting / progress / done: the lifecycle of a job message (PROTOCOL.md section 3).
- queued: the "Job queued" embed (over the running limit; the job starts later, not an error).
- error: an error embed or "Failed..." content, with an ErrorCategory.
- describe / shorten: the results of /describe and /shorten (`prompts`).
- info: the "Your info" embed (`info`).
- other: not about a job (other authors, "Done!", settings, anything unknown).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any, Literal

import msgspec

from adapter.backends.discord import message_text as text
from adapter.domain.actions import BOT_APPLICATION_IDS, Action, Bot, Mode, PanDirection
from adapter.domain.buttons import Button
from adapter.domain.errors import ErrorCategory

log = logging.getLogger(__name__)

MessageKind = Literal["waiting", "progress", "done", "queued", "error", "describe", "shorten", "info", "other"]

DEFAULT_BOT_IDS: frozenset[str] = frozenset(BOT_APPLICATION_IDS.values())
_BOT_BY_ID: dict[str, Bot] = {v: k for k, v in BOT_APPLICATION_IDS.items()}

EPHEMERAL = 64
LOADING = 128  # a deferred interaction answer ("Midjourney Bot is thinking..."): edited later

# Which actions can produce a result with a given variant. Several labels are shared (a grid's
# V1 and an upscale's "Vary (Strong)" both say "Variations (Strong)"; a reroll looks like an
# imagine), so correlation gets a set, not one answer.
VARIANT_ACTIONS: dict[str, frozenset[Action]] = {
    "imagine": frozenset({Action.IMAGINE, Action.REROLL}),
    "blend": frozenset({Action.BLEND, Action.IMAGINE}),
    "upscale": frozenset({Action.UPSCALE}),
    "variation": frozenset({Action.VARIATION}),
    "variation_strong": frozenset({Action.VARIATION, Action.VARY_STRONG}),
    "variation_subtle": frozenset({Action.VARIATION, Action.VARY_SUBTLE}),
    "variation_region": frozenset({Action.VARY_REGION}),
    "remix": frozenset({Action.VARIATION, Action.REROLL}),
    "remix_strong": frozenset({Action.VARIATION, Action.VARY_STRONG, Action.REROLL}),
    "remix_subtle": frozenset({Action.VARIATION, Action.VARY_SUBTLE, Action.REROLL}),
    "pan": frozenset({Action.PAN}),
    "zoom_out": frozenset({Action.ZOOM, Action.CUSTOM_ZOOM}),
    "upscale_subtle": frozenset({Action.UPSCALE_SUBTLE}),
    "upscale_creative": frozenset({Action.UPSCALE_CREATIVE}),
    "upscaling": frozenset({Action.UPSCALE, Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE}),
    "describe": frozenset({Action.DESCRIBE}),
    "shorten": frozenset({Action.SHORTEN}),
}


class MjError(msgspec.Struct, frozen=True):
    title: str
    description: str
    category: ErrorCategory


class MjMessage(msgspec.Struct, frozen=True, kw_only=True):
    kind: MessageKind
    # --- envelope
    message_id: str = ""
    channel_id: str = ""
    author_id: str | None = None
    bot: Bot | None = None  # which bot wrote it (None for other authors)
    nonce: str | None = None
    flags: int = 0
    interaction_id: str | None = None  # interaction_metadata.id, else interaction.id
    interaction_name: str | None = None  # "imagine", "describe", ... when Discord says
    reference_message_id: str | None = None  # the source message of a follow-up
    content: str = ""
    # --- the job line
    user_id: str | None = None  # the <@uid> the bot mentions
    prompt: str | None = None  # exactly as echoed between `**` and `** - `
    progress: int = 0  # 0 waiting, NN from "(NN%)", 100 done
    paused: bool = False
    mode: Mode | None = None
    stealth: bool = False
    variant: str | None = None  # see message_text.label_meaning; "blend", "describe", "shorten"
    index: int | None = None  # "Image #2" -> 2
    pan: PanDirection | None = None
    # --- the image and buttons
    job_hash: str | None = None
    image_url: str | None = None
    width: int | None = None
    height: int | None = None
    buttons: tuple[Button, ...] = ()
    # --- kind-specific
    prompts: tuple[str, ...] = ()  # describe prompts / shorten options, numbers removed
    error: MjError | None = None
    info: dict[str, str] = {}
    embed_title: str | None = None
    embed_footer: str | None = None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def finished(self) -> bool:
        """A job's last word: a result or a failure."""
        return self.kind in ("done", "error", "describe", "shorten")

    @property
    def candidate_actions(self) -> frozenset[Action]:
        """The actions whose result this message can be (empty when the variant is unknown)."""
        return VARIANT_ACTIONS.get(self.variant or "", frozenset())


def classify(message: Mapping[str, Any], *, bot_ids: Collection[str] = DEFAULT_BOT_IDS) -> MjMessage:
    """Turn one raw Discord message object into an MjMessage. Never raises."""
    try:
        return _classify(message, bot_ids)
    except Exception:
        # A shape the readers below did not foresee. Dropping one message is recoverable (the
        # watchdog, history reconciliation); a dead gateway reader is not.
        log.debug("unclassifiable message", exc_info=True)
        return MjMessage(kind="other", message_id=_id(_map(message).get("id")) or "")


# --- raw-shape readers: each returns a safe value for any input ---------------------------------


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _maps(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list | tuple) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _id(value: object) -> str | None:
    # Snowflakes are strings on the wire; accept ints (simulators, hand-written tests) too.
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _buttons(components: object) -> tuple[Button, ...]:
    out: list[Button] = []
    for row in _maps(components):
        for comp in _maps(row.get("components")):
            if _int(comp.get("type")) != 2:
                continue
            style = _int(comp.get("style"))
            out.append(
                Button(
                    custom_id=_str(comp.get("custom_id")),
                    label=_str(comp.get("label")) or "",
                    emoji=_str(_map(comp.get("emoji")).get("name")),
                    style=2 if style is None else style,
                    url=_str(comp.get("url")),
                )
            )
    return tuple(out)


def _hash_from_buttons(buttons: tuple[Button, ...]) -> str | None:
    for button in buttons:
        if button.custom_id and (h := text.first_uuid(button.custom_id)):
            return h
    return None


class _Embed(msgspec.Struct, frozen=True):
    title: str = ""
    description: str = ""
    footer: str | None = None
    colour: int | None = None
    image_url: str | None = None
    image_width: int | None = None
    image_height: int | None = None


def _embed(raw: Mapping[str, Any]) -> _Embed:
    image = _map(raw.get("image"))
    return _Embed(
        title=_str(raw.get("title")) or "",
        description=_str(raw.get("description")) or "",
        footer=_str(_map(raw.get("footer")).get("text")),
        colour=_int(raw.get("color")),
        image_url=_str(image.get("url")),
        image_width=_int(image.get("width")),
        image_height=_int(image.get("height")),
    )


# --- the classifier ------------------------------------------------------------------------------


def _classify(message: object, bot_ids: Collection[str]) -> MjMessage:
    if not isinstance(message, Mapping):
        return MjMessage(kind="other")
    author_id = _id(_map(message.get("author")).get("id"))
    envelope: dict[str, Any] = {
        "message_id": _id(message.get("id")) or "",
        "channel_id": _id(message.get("channel_id")) or "",
        "author_id": author_id,
        "nonce": _id(message.get("nonce")),
        "flags": _int(message.get("flags")) or 0,
        "content": _str(message.get("content")) or "",
    }
    if author_id is None or author_id not in bot_ids:
        return MjMessage(kind="other", **envelope)

    metadata = _map(message.get("interaction_metadata"))
    interaction = _map(message.get("interaction"))
    interaction_name = _str(interaction.get("name")) or _str(metadata.get("name"))
    reference = _id(_map(message.get("message_reference")).get("message_id"))
    envelope.update(
        bot=_BOT_BY_ID.get(author_id),
        interaction_id=_id(metadata.get("id")) or _id(interaction.get("id")),
        interaction_name=interaction_name,
        reference_message_id=reference or _id(_map(message.get("referenced_message")).get("id")),
    )
    content: str = envelope["content"]

    # The job line, the image and the buttons are read for every kind: an error arriving as an
    # update of a progress message still names its prompt, which correlation needs.
    fields: dict[str, Any] = {}
    line = text.parse_job_line(content)
    if line is not None:
        meaning = text.label_meaning(line.label)
        variant = meaning.variant
        if variant == "imagine" and (interaction_name == "blend" or text.is_blend_prompt(line.prompt)):
            variant = "blend"
        fields.update(
            prompt=line.prompt,
            user_id=line.user_id,
            paused=line.paused,
            mode=line.mode,
            stealth=line.stealth,
            variant=variant,
            index=meaning.index,
            pan=meaning.pan,
        )
    else:
        fields["user_id"] = text.first_mention(content)

    attachment = next(iter(_maps(message.get("attachments"))), {})
    image_url = _str(attachment.get("url")) or _str(attachment.get("proxy_url"))
    buttons = _buttons(message.get("components"))
    job_hash = (
        (text.job_hash_from_url(image_url) if image_url else None)
        or _hash_from_buttons(buttons)
        or (line.link_hash if line else None)
    )
    fields.update(
        image_url=image_url,
        width=_int(attachment.get("width")),
        height=_int(attachment.get("height")),
        buttons=buttons,
        job_hash=job_hash,
    )

    embeds = [_embed(e) for e in _maps(message.get("embeds"))]
    first = embeds[0] if embeds else None
    if first is not None:
        fields.update(embed_title=first.title or None, embed_footer=first.footer)

    def make(kind: MessageKind, **extra: Any) -> MjMessage:
        return MjMessage(kind=kind, **{**envelope, **fields, **extra})

    # 1. Embeds whose title says what they are. Titles beat colours: colours are shared.
    for embed in embeds:
        if category := text.error_category_for_title(embed.title):
            return make("error", error=MjError(embed.title, embed.description, category))
    for embed in embeds:
        if text.is_queued_title(embed.title):
            return make("queued", embed_title=embed.title, embed_footer=embed.footer)
        if text.is_info_title(embed.title):
            return make(
                "info",
                info=text.info_lines(embed.description),
                embed_title=embed.title,
                embed_footer=embed.footer,
            )

    # 2. Describe / shorten results: numbered prompts in the first embed.
    if first is not None:
        is_shorten = interaction_name == "shorten" or text.looks_like_shorten(
            first.description, first.footer or ""
        )
        options = text.numbered_items(first.description, one_line=is_shorten)
        if options:
            if is_shorten:
                return make("shorten", prompts=options, variant="shorten", progress=100)
            return make(
                "describe",
                prompts=options,
                variant="describe",
                progress=100,
                image_url=first.image_url or image_url,
                width=first.image_width,
                height=first.image_height,
            )

    # 3. Error colours with a title we do not know: a failure nobody has catalogued yet.
    for embed in embeds:
        if embed.colour in text.ERROR_COLOURS:
            return make("error", error=MjError(embed.title, embed.description, ErrorCategory.RETRYABLE))

    # 4. "Failed to process your command" and friends.
    if text.is_failure_content(content):
        head, _, tail = content.strip().partition("\n")
        return make("error", error=MjError(head.strip(), tail.strip(), ErrorCategory.RETRYABLE))

    # 5. The job lifecycle.
    if line is not None:
        if line.waiting:
            return make("waiting", progress=0)
        if line.percent is not None or line.paused:
            return make("progress", progress=line.percent or 0)
        if buttons or (_is_final_image(image_url) and fields["variant"] != "upscaling"):
            return make("done", progress=100)
        # A job line with no status we know and nothing final attached (e.g. "(Stopped)"):
        # still running as far as we can tell; the watchdog decides when it is over.
        return make("progress", progress=0)
    if image_url and buttons and job_hash:
        # A final result whose content was left out (partial update): the image and its
        # buttons are what makes a result.
        return make("done", progress=100)

    # 6. The first answer to a slow command (/describe, /shorten, /info, /settings...): a
    # placeholder that Midjourney edits into the result later. It carries the nonce, the edit
    # does not, so its message id is what ties the edit to the job.
    if interaction_name in ("describe", "shorten") and not buttons:
        return make("waiting", variant=interaction_name, progress=0)
    if envelope["flags"] & LOADING or (
        interaction_name and not content.strip() and not embeds and not buttons and not image_url
    ):
        return make("waiting", variant=interaction_name, progress=0)

    return make("other")


def _is_final_image(image_url: str | None) -> bool:
    """Without buttons, an attachment counts as a result unless it is named like a progress
    preview (`grid_0.webp`)."""
    return bool(image_url) and not text.is_preview_filename(image_url or "")
