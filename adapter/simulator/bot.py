"""The simulated Midjourney bot: what it answers to each accepted interaction.

Slash commands (imagine, describe, blend, shorten, info, fast/relax/turbo, settings, show,
prefer), buttons on its own messages (U/V/reroll, vary, zoom, pan, upscale, v7 animate and
enhance, video upscale and extend, describe and shorten picks, settings toggles and reset, ❤️),
the modals it opens (custom zoom, remix, animate), the vary-region iframe's submit, and emoji
reactions on its messages (❌ cancels or deletes, ✉️ sends the job to the user's DMs).
Jobs run in `jobs.JobRunner`; texts come from `content`; buttons from `components`.

Slow commands (/info, /settings, /shorten, /prefer) answer the way Discord's deferred
interaction responses look: a placeholder MESSAGE_CREATE (with the nonce, empty, flags LOADING)
first, then a MESSAGE_UPDATE of the same message (no nonce) with the content.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import colorsys
import hashlib
import logging
import math
import random
import re
import time
from collections import OrderedDict
from typing import Any

import msgspec

from adapter.domain import buttons as ids
from adapter.domain.actions import Action, Mode, PanDirection
from adapter.domain.buttons import parse_custom_id
from adapter.domain.prompt import parse_prompt, strip_flags
from adapter.simulator import components, content, images
from adapter.simulator.commands import APP_NAMES
from adapter.simulator.context import SimContext
from adapter.simulator.flags import flag_problem
from adapter.simulator.interactions import Interaction, OpenModal
from adapter.simulator.jobs import JobRunner, JobState, SimJob
from adapter.simulator.messages import LOADING, Messenger, Origin, command_origin, component_origin
from adapter.simulator.state import Upload, UserState
from adapter.simulator.wire import Embed, Message, ModalRow, TextInput

log = logging.getLogger(__name__)

MAX_REMEMBERED = 1000  # open modals, iframes, describe/shorten results kept per simulator
BOT_THINK_SECONDS = 0.4  # realistic seconds between an interaction and the bot's answer
_URL_IN_PROMPT = re.compile(r"https?://[^\s>]+")
_JOB_ID_RE = re.compile(rf"^MJ::JOB::(?P<verb>[a-z0-9_]+)::(?P<n>\d+)::(?P<h>{ids.UUID_RE})(?:::SOLO)?$")
_HASH_IN_NAME = re.compile(ids.UUID_RE)
CANCEL_EMOJI = {"\u274c", "\u2716\ufe0f", "\u2716"}  # ❌ ✖️ ✖
ENVELOPE_EMOJI = {"\u2709\ufe0f", "\u2709"}  # ✉️
WEBSITE_LINK_CHOICES = ("random", "never", "always")
VIDEO_SCALE = 0.61  # an Animate grid's long side, relative to an image grid's (624 px for 1024)


class Prefs:
    """What Midjourney remembers per user beyond mode and remix: /prefer suffix and options, and
    which of the bot's two behaviours this account sees (SimAccount.info_layout/settings_ids)."""

    def __init__(self, user: UserState) -> None:
        self.suffix = ""
        self.options: dict[str, str] = {}
        self.info_layout = user.account.info_layout
        self.settings_ids = user.account.settings_ids
        self.website_link = user.account.website_link


class Described(msgspec.Struct):
    prompts: list[str]
    image_url: str | None
    width: int | None
    height: int | None


def _ratio_text(width: int | None, height: int | None) -> str:
    if not width or not height:
        return "1:1"
    g = math.gcd(width, height)
    w, h = width // g, height // g
    if max(w, h) > 21:  # not a tidy ratio: round to the nearest of Midjourney's usual ones
        candidates = [(1, 1), (2, 3), (3, 2), (3, 4), (4, 3), (9, 16), (16, 9), (4, 5), (5, 4), (1, 2), (2, 1)]
        w, h = min(candidates, key=lambda c: abs(c[0] / c[1] - width / height))
    return f"{w}:{h}"


def _near(colour: images.RGB, rng: random.Random, count: int = 4) -> list[images.RGB]:
    """Colours close to `colour` (variations look like their source), still distinct."""
    r, g, b = (c / 255 for c in colour)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    out: list[images.RGB] = []
    for i in range(count):
        hh = (h + (i - 1.5) * 0.05 + rng.uniform(-0.01, 0.01)) % 1.0
        rr, gg, bb = colorsys.hsv_to_rgb(hh, min(1.0, max(0.3, s)), min(1.0, max(0.5, v)))
        out.append((round(rr * 255), round(gg * 255), round(bb * 255)))
    return out


class MidjourneyBot:
    def __init__(self, ctx: SimContext, messenger: Messenger, runner: JobRunner) -> None:
        self.ctx = ctx
        self.messenger = messenger
        self.runner = runner
        self.modals: OrderedDict[str, OpenModal] = OrderedDict()  # by the opening interaction id
        self.iframes: OrderedDict[str, OpenModal] = OrderedDict()  # by iframe token
        self.describes: OrderedDict[str, Described] = OrderedDict()  # by message id
        self.shortens: OrderedDict[str, list[str]] = OrderedDict()  # by message id
        self.prefs: dict[str, Prefs] = {}  # by user id
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = time.time()

    # --- entry points ----------------------------------------------------------------------

    def handle(self, inter: Interaction) -> None:
        self._spawn(self._respond(inter))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def user_prefs(self, user: UserState) -> Prefs:
        prefs = self.prefs.get(user.id)
        if prefs is None:
            prefs = self.prefs[user.id] = Prefs(user)
        return prefs

    def set_prefs(
        self, user: UserState, *, info_layout: str | None = None, settings_ids: str | None = None, website_link: str | None = None,
    ) -> None:
        """`POST /_simulator/settings`: switch this account between the bot's two behaviours."""
        prefs = self.user_prefs(user)
        if info_layout is not None:
            if info_layout not in ("classic", "aligned"):
                raise ValueError("info_layout must be 'classic' or 'aligned'")
            prefs.info_layout = info_layout
        if settings_ids is not None:
            if settings_ids not in ("plain", "stateful"):
                raise ValueError("settings_ids must be 'plain' or 'stateful'")
            prefs.settings_ids = settings_ids
        if website_link is not None:
            if website_link not in WEBSITE_LINK_CHOICES:
                raise ValueError("website_link must be 'random', 'never' or 'always'")
            prefs.website_link = website_link

    def _web_link_ratio(self, user: UserState) -> float:
        """The account's `website_link` as a ratio (the job still draws its random number)."""
        choice = self.user_prefs(user).website_link
        return {"never": 0.0, "always": 1.0}.get(choice, self.ctx.config.website_link_ratio)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.runner.notify()

    def busy(self) -> bool:
        """Still answering an interaction (a job may not exist yet)."""
        return bool(self._tasks)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _respond(self, inter: Interaction) -> None:
        await self.ctx.clock.sleep(BOT_THINK_SECONDS)
        try:
            if inter.data.get("_captcha"):
                self._open_iframe(inter, kind="iframe_captcha", title="Action required to continue", source=None)
            elif inter.type == 2:
                await self._command(inter)
            elif inter.type == 3:
                await self._component(inter)
            else:
                await self._modal_submit(inter)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("simulated bot failed on interaction %s", inter.name)
            self._failure(inter)

    # --- small answers ---------------------------------------------------------------------

    def _ack(self, inter: Interaction) -> None:
        self.ctx.hub.to_session(inter.session_id, "INTERACTION_SUCCESS", {"id": inter.id, "nonce": inter.nonce})

    def _failure(self, inter: Interaction) -> None:
        self.ctx.hub.to_session(inter.session_id, "INTERACTION_FAILURE", {"id": inter.id, "nonce": inter.nonce, "reason_code": 1})

    def _guild_id(self, channel_id: str) -> str | None:  # None in a DM
        return self.ctx.world.channels[channel_id].guild_id

    def _command_origin(self, inter: Interaction, name: str | None = None) -> Origin:
        """`name`: what the message's interaction says, "prefer remix" for a subcommand."""
        return command_origin(
            interaction_id=inter.id,
            name=name or inter.name,
            user=inter.user.user,
            guild_id=self._guild_id(inter.channel_id),
            nonce=inter.nonce,
            session_id=inter.session_id,
        )

    def _button_origin(self, inter: Interaction, source: Message) -> Origin:
        return component_origin(
            interaction_id=inter.id,
            user=inter.user.user,
            guild_id=self._guild_id(inter.channel_id),
            nonce=inter.nonce,
            session_id=inter.session_id,
            source=source,
        )

    def _reply(self, inter: Interaction, origin: Origin, *, ephemeral: bool, content_text: str = "", embeds: list[Embed] | None = None, **kw: Any) -> Message:
        message = self.messenger.build(
            app_id=inter.application_id,
            channel_id=inter.channel_id,
            content=content_text,
            origin=origin,
            first_response=True,
            embeds=embeds,
            **kw,
        )
        return self.messenger.post(message, ephemeral_for=inter.user.id if ephemeral else None)

    def _defer(self, inter: Interaction, origin: Origin, *, ephemeral: bool) -> Message:
        """A deferred answer, as Discord shows "Midjourney Bot is thinking...": an empty message
        with the nonce and flags LOADING (| EPHEMERAL). `_complete` fills it in later."""
        return self._reply(inter, origin, ephemeral=ephemeral, flags=LOADING)

    def _complete(self, message: Message, **changes: Any) -> None:
        """The deferred answer's content: MESSAGE_UPDATE of the same message, LOADING cleared."""
        self.messenger.edit(message, flags=message.flags & ~LOADING, **changes)

    # --- prompt checks ---------------------------------------------------------------------

    def prompt_error(self, prompt: str, command: str, *, zoom: bool = False) -> Embed | None:
        """Banned words, bad flags, dead links: the embed Midjourney would answer with."""
        for word in self.ctx.config.banned_words:
            if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", prompt, re.IGNORECASE):
                return content.banned_embed(word, command)
        parsed = parse_prompt(prompt)
        if not parsed.text.strip():
            return content.error_embed("Invalid prompt", "Your prompt is empty: describe what you want to see.", footer=command)
        for name, value in parsed.flags.items():
            if problem := flag_problem(name, value, zoom_allowed=zoom):
                return content.invalid_parameter_embed(problem, command)
        if zoom and "zoom" not in parsed.flags:
            return content.invalid_parameter_embed("Custom Zoom needs `--zoom` with a value between 1 and 2", command)
        for url in _URL_IN_PROMPT.findall(prompt):
            if self.ctx.cdn.is_ours(url) and self.ctx.cdn.get_url(url) is None:
                return content.invalid_link_embed(url, command)
        return None

    # --- jobs ------------------------------------------------------------------------------

    def _job(
        self,
        inter: Interaction,
        origin: Origin,
        *,
        action: Action,
        prompt: str,
        ratio: tuple[float, float],
        colours: list[images.RGB],
        shape: str = "grid",
        label: str | None = None,
        caption: str = "",
        index: int = 1,
        pan: PanDirection | None = None,
        remix: bool = False,
        parent: SimJob | None = None,
        command: str = "",
        size: tuple[int, int] | None = None,
        model: str | None = None,
        kind: str | None = None,
        video: bool = False,
    ) -> SimJob:
        """`prompt` is already in echoed form."""
        mode = content.prompt_mode(prompt) or inter.user.mode
        if size is None:
            long_side = self.ctx.config.grid_long_side if shape == "grid" else self.ctx.config.grid_long_side // 2
            size = images.size_for(ratio, long_side)
        job = SimJob(
            rng=random.Random(inter.rng.getrandbits(64)),
            action=action,
            user=inter.user,
            app_id=inter.application_id,
            channel_id=inter.channel_id,
            prompt=prompt,
            mode=mode,
            origin=origin,
            shape="grid" if shape == "grid" else "single",
            size=size,
            colours=colours,
            label=content.label_for(action, index=index, pan=pan, remix=remix) if label is None else label,
            running_label=content.label_for(action, index=index, pan=pan, remix=remix, running=True),
            caption=caption,
            number=index if action is Action.UPSCALE else None,
            show_mode=action is not Action.UPSCALE,
            parent=parent.hash if parent else None,
            command=command or f"/imagine {prompt}",
            web_link_ratio=self._web_link_ratio(inter.user),
            kind=kind,
            video=video,
        )
        flags = parse_prompt(prompt).flags
        if model is None:
            model = components.upscale_model(flags.get("v") or flags.get("version"))
        if video:
            job.rows = components.video_grid_rows(job.hash) if shape == "grid" else []
        elif shape == "grid":
            job.rows = components.grid_rows(job.hash)
        elif action is Action.UPSCALE:
            job.rows = components.upscaled_rows(job.hash, index, model, draft=model == "v7" and "draft" in flags)
        else:
            job.rows = components.upscaled_again_rows(job.hash, model)
        return job

    def _submit(self, inter: Interaction, origin: Origin, job: SimJob) -> None:
        outcome, position = self.runner.submit(job)
        if outcome == "queued":
            self._reply(inter, origin, ephemeral=True, embeds=[content.queued_embed(position, job.command)])
        elif outcome == "full":
            self._reply(inter, origin, ephemeral=True, embeds=[content.queue_full_embed(job.command)])

    def _imagine_job(self, inter: Interaction, origin: Origin, prompt_raw: str, *, parent: SimJob | None = None) -> SimJob | None:
        """Check, then queue an imagine; on a refusal answer with the error embed."""
        command = f"/imagine {prompt_raw}"
        if err := self.prompt_error(prompt_raw, command):
            self._reply(inter, origin, ephemeral=True, embeds=[err])
            return None
        parsed = parse_prompt(prompt_raw)
        if "video" in parsed.flags:
            return self._prompt_video_job(inter, origin, prompt_raw, command, parent=parent)
        ratio = images.parse_ar(parsed.flags.get("ar") or parsed.flags.get("aspect"))
        job = self._job(
            inter,
            origin,
            action=Action.IMAGINE,
            prompt=content.echo_prompt(prompt_raw, self.ctx.config.seed),
            ratio=ratio,
            colours=images.palette(inter.rng),
            command=command,
            parent=parent,
        )
        self._submit(inter, origin, job)
        return job

    def _prompt_video_job(self, inter: Interaction, origin: Origin, prompt_raw: str, command: str, *, parent: SimJob | None) -> SimJob | None:
        """`/imagine <image link> [text] --video [--motion low|high] [--end <link>] [--bs 1|2|4]
        [--loop] [--raw]`: a video grid from a start image, like Animate's (README)."""
        parsed = parse_prompt(prompt_raw)
        if not parsed.image_urls:
            self._reply(inter, origin, ephemeral=True,
                        embeds=[content.invalid_parameter_embed("`--video` needs a starting image link first", command)])
            return None
        start = self.ctx.cdn.get_url(parsed.image_urls[0]) if self.ctx.cdn.is_ours(parsed.image_urls[0]) else None
        info = images.image_info(start.data) if start is not None else None
        ratio = (float(info[1]), float(info[2])) if info else images.parse_ar(parsed.flags.get("ar") or parsed.flags.get("aspect"))
        size = images.size_for(ratio, round(self.ctx.config.grid_long_side * VIDEO_SCALE))
        text = parsed.text.split(" ", len(parsed.image_urls))[-1] if len(parsed.text.split()) > len(parsed.image_urls) else ""
        prompt = content.prompt_video_prompt(parsed.image_urls, text, parsed.flags, _ratio_text(*size))
        return self._video_grid_job(inter, origin, prompt=content.echo_prompt(prompt, self.ctx.config.seed), size=size,
                                    colours=images.palette(inter.rng), caption=f"Video ({(parsed.flags.get('motion') or 'low').capitalize()} motion)",
                                    parent=parent, kind="PROMPT_VIDEO", command=command)

    def _video_grid_job(self, inter: Any, origin: Origin, *, prompt: str, size: tuple[int, int], colours: list[images.RGB], caption: str,
                        parent: SimJob | None, kind: str, command: str = "", submit: bool = True) -> SimJob:
        """A grid of videos (Animate, Extend, a prompt video): `--bs` videos (4 unless given),
        one U button each."""
        job = self._job(inter, origin, action=Action.IMAGINE, prompt=prompt, ratio=(float(size[0]), float(size[1])), colours=colours,
                        label="", caption=caption, parent=parent, size=size, kind=kind, video=True, command=command)
        job.rows = components.video_grid_rows(job.hash, int(parse_prompt(prompt).flags.get("bs") or 4))
        if submit:
            self._submit(inter, origin, job)
        return job

    # --- slash commands --------------------------------------------------------------------

    async def _command(self, inter: Interaction) -> None:
        handlers = {
            "imagine": self._cmd_imagine,
            "describe": self._cmd_describe,
            "blend": self._cmd_blend,
            "shorten": self._cmd_shorten,
            "info": self._cmd_info,
            "fast": self._cmd_mode,
            "relax": self._cmd_mode,
            "turbo": self._cmd_mode,
            "settings": self._cmd_settings,
            "show": self._cmd_show,
            "prefer": self._cmd_prefer,
        }
        await handlers[inter.name](inter)

    def _with_prefs(self, user: UserState, prompt: str) -> str:
        """The prompt as /prefer made it: custom options (`--name`) replaced by what they stand
        for, and the suffix added at the end."""
        prefs = self.user_prefs(user)
        for name, value in prefs.options.items():
            prompt = re.sub(rf"(?<!\S)--{re.escape(name)}(?!\S)", lambda _m, v=value: v, prompt)
        if prefs.suffix:
            prompt = f"{prompt} {prefs.suffix}"
        return prompt

    async def _cmd_imagine(self, inter: Interaction) -> None:
        self._ack(inter)
        self._imagine_job(inter, self._command_origin(inter), self._with_prefs(inter.user, str(inter.options["prompt"])))

    async def _cmd_describe(self, inter: Interaction) -> None:
        self._ack(inter)
        origin = self._command_origin(inter)
        command = "/describe"
        url: str | None = None
        width = height = None
        if "image" in inter.options:
            upload = inter.attachments[inter.options["image"]]
            info = images.image_info(upload.data or b"")
            if info is None:
                self._reply(inter, origin, ephemeral=True, embeds=[content.invalid_parameter_embed("The attachment is not an image Midjourney can read.", command)])
                return
            _, width, height = info
            url = self.ctx.cdn.store(inter.channel_id, upload.filename, upload.data or b"", width=width, height=height).url
        elif link := inter.options.get("link"):
            if not re.match(r"^https?://\S+$", link) or (self.ctx.cdn.is_ours(link) and self.ctx.cdn.get_url(link) is None):
                self._reply(inter, origin, ephemeral=True, embeds=[content.invalid_link_embed(link, command)])
                return
            url = link
            if (file := self.ctx.cdn.get_url(link)) is not None and (info := images.image_info(file.data)) is not None:
                _, width, height = info
        else:
            self._reply(inter, origin, ephemeral=True, embeds=[content.invalid_parameter_embed("Describe needs an image or a link.", command)])
            return
        message = self._reply(inter, origin, ephemeral=False, embeds=[content.describe_waiting_embed(url, width, height)])
        await self._finish_describe(inter, message, url, width, height)

    async def _finish_describe(self, inter: Interaction, message: Message, url: str | None, width: int | None, height: int | None) -> None:
        await self.ctx.clock.sleep(inter.rng.uniform(3.0, 6.0))
        prompts = content.describe_prompts(inter.rng, _ratio_text(width, height))
        self.messenger.edit(message, embeds=[content.describe_embed(prompts, url, width, height)], components=components.describe_rows())
        self._remember(self.describes, message.id, Described(prompts=prompts, image_url=url, width=width, height=height))

    async def _cmd_blend(self, inter: Interaction) -> None:
        self._ack(inter)
        origin = self._command_origin(inter)
        uploads: list[Upload] = [inter.attachments[inter.options[f"image{i}"]] for i in range(1, 6) if f"image{i}" in inter.options]
        dims = str(inter.options.get("dimensions") or "--ar 1:1")
        command = "/blend"
        if len(uploads) < 2:
            self._reply(inter, origin, ephemeral=True, embeds=[content.invalid_parameter_embed("Blend needs 2 to 5 images.", command)])
            return
        infos = [images.image_info(u.data or b"") for u in uploads]
        if any(i is None for i in infos):
            self._reply(inter, origin, ephemeral=True, embeds=[content.invalid_parameter_embed("One of the attachments is not an image.", command)])
            return
        digests = [hashlib.sha256(u.data or b"").hexdigest() for u in uploads]
        if len(set(digests)) < len(digests):
            self._reply(inter, origin, ephemeral=True, embeds=[content.error_embed("Duplicate images detected", "Please blend different images.", footer=command)])
            return
        links = []
        for upload, digest, info in zip(uploads, digests, infos, strict=True):
            assert info is not None
            self.ctx.cdn.store(inter.channel_id, upload.filename, upload.data or b"", width=info[1], height=info[2])
            # keyed by content, not by the (time-stamped) CDN URL, so a seed replays the same text
            links.append(f"<{content.short_link(digest, self.ctx.config.seed)}>")
        prompt = " ".join(links) + " " + dims
        colours = [c for u in uploads if (c := images.dominant_colour(u.data or b"")) is not None]
        colours = (colours + images.palette(inter.rng))[:4]
        job = self._job(inter, origin, action=Action.BLEND, prompt=prompt, ratio=images.parse_ar(dims.split()[-1]), colours=colours, command=f"/blend {dims}")
        self._submit(inter, origin, job)

    async def _cmd_shorten(self, inter: Interaction) -> None:
        self._ack(inter)
        origin = self._command_origin(inter)
        prompt = str(inter.options["prompt"])
        command = f"/shorten {prompt}"
        if err := self.prompt_error(prompt, command):
            self._reply(inter, origin, ephemeral=True, embeds=[err])
            return
        message = self._defer(inter, origin, ephemeral=False)
        await self.ctx.clock.sleep(inter.rng.uniform(2.0, 4.0))
        embed, options = content.shorten_embed(content.echo_prompt(prompt, self.ctx.config.seed))
        self._remember(self.shortens, message.id, options)
        self._complete(message, embeds=[embed], components=components.shorten_rows())

    def renews_at(self, user_id: str) -> int:
        """The account's next renewal (unix seconds): midnight UTC, 2-29 days after the simulator
        started, the same for the same user id."""
        days = 2 + int.from_bytes(hashlib.sha256(user_id.encode()).digest()[:2], "big") % 28
        return (int(self._started) // 86400 + days) * 86400

    async def _cmd_info(self, inter: Interaction) -> None:
        self._ack(inter)
        message = self._defer(inter, self._command_origin(inter), ephemeral=True)
        await self.ctx.clock.sleep(inter.rng.uniform(0.5, 1.5))
        queued_fast, queued_relax, running = self.runner.counts(inter.user.id)
        embed = content.info_embed(
            user_id=inter.user.id,
            mode=inter.user.mode,
            fast_seconds_left=inter.user.fast_seconds_left,
            images=inter.user.images_made,
            relaxed_images=self.runner.relaxed_images.get(inter.user.id, 0),
            queued_fast=queued_fast,
            queued_relax=queued_relax,
            running=running,
            renews_at=self.renews_at(inter.user.id),
            layout=self.user_prefs(inter.user).info_layout,
        )
        self._complete(message, embeds=[embed])

    async def _cmd_mode(self, inter: Interaction) -> None:
        self._ack(inter)
        inter.user.mode = Mode(inter.name)
        self._reply(inter, self._command_origin(inter), ephemeral=True, content_text="Done!")

    def _settings_rows(self, user: UserState) -> list[Any]:
        return components.settings_rows(remix=user.remix, mode=user.mode.value, style=self.user_prefs(user).settings_ids)

    async def _cmd_settings(self, inter: Interaction) -> None:
        self._ack(inter)
        message = self._defer(inter, self._command_origin(inter), ephemeral=True)
        await self.ctx.clock.sleep(inter.rng.uniform(0.5, 1.5))
        self._complete(message, content=content.settings_text(self.user_prefs(inter.user).suffix), components=self._settings_rows(inter.user))

    async def _cmd_prefer(self, inter: Interaction) -> None:
        """/prefer remix | suffix [new_value] | option set <option> [value] | option list. The
        subcommand arrives as an option of type 1 (inside a group of type 2) with its own
        options; the answer's interaction is named after the whole path ("prefer remix")."""
        path: list[str] = []
        args: Any = inter.options
        while isinstance(args, dict) and len(args) == 1 and isinstance(next(iter(args.values())), dict):
            name, args = next(iter(args.items()))
            path.append(name)
        args = args if isinstance(args, dict) else {}
        self._ack(inter)
        message = self._defer(inter, self._command_origin(inter, " ".join(["prefer", *path])), ephemeral=True)
        await self.ctx.clock.sleep(inter.rng.uniform(0.5, 1.5))
        prefs = self.user_prefs(inter.user)
        if path == ["remix"]:
            inter.user.remix = not inter.user.remix
            text = content.remix_toggled_text(inter.user.remix)
        elif path == ["suffix"]:
            prefs.suffix = str(args.get("new_value") or "").strip()
            text = content.suffix_text(prefs.suffix)
        elif path == ["option", "set"]:
            name = str(args.get("option") or "").strip().lstrip("-")
            value = str(args.get("value") or "").strip()
            if value:
                prefs.options[name] = value
            else:
                prefs.options.pop(name, None)
            text = content.option_set_text(name, value)
        elif path == ["option", "list"]:
            text = content.option_list_text(prefs.options)
        else:
            text = "Unknown preference."
        self._complete(message, content=text)

    async def _cmd_show(self, inter: Interaction) -> None:
        self._ack(inter)
        origin = self._command_origin(inter)
        job = self.runner.jobs.get(str(inter.options["job_id"]).strip().lower())
        if job is None or job.state is not JobState.DONE or job.user.id != inter.user.id or job.result_message is None or not job.result_path:
            self._reply(inter, origin, ephemeral=True, embeds=[content.error_embed("Job not found", "No finished job of yours has this id.", footer="/show")])
            return
        old = job.result_message.attachments[0]
        url = self.ctx.cdn.signed_url(job.result_path)
        attachment = msgspec.structs.replace(old, url=url, proxy_url=url)
        self._reply(
            inter,
            origin,
            ephemeral=False,
            content_text=job.result_message.content,
            attachments=[attachment],
            components=job.result_message.components,
        )

    # --- buttons ---------------------------------------------------------------------------

    async def _component(self, inter: Interaction) -> None:
        cid = inter.custom_id
        source = inter.message
        assert source is not None
        if cid.startswith(components.SETTINGS_PREFIX):
            self._settings_toggle(inter, source)
            return
        if cid.startswith(components.BOOKMARK_PREFIX):
            self._ack(inter)
            origin = self._button_origin(inter, source)
            self._reply(inter, origin, ephemeral=False, content_text=content.rated_text(source.guild_id, source.channel_id, source.id))
            return
        if cid.startswith(components.PICREADER_PREFIX) or cid == components.PICREAD_RETRY:
            await self._describe_pick(inter, source)
            return
        if cid.startswith(components.SHORTEN_PREFIX):
            options = self.shortens.get(source.id)
            n = cid.rsplit("::", 1)[-1]
            if options is None or not n.isdigit() or not 1 <= int(n) <= len(options):
                self._failure(inter)
                return
            self._ack(inter)
            self._imagine_job(inter, self._button_origin(inter, source), options[int(n) - 1])
            return

        if (m := _JOB_ID_RE.match(cid)) and m["verb"] in (
            *components.ANIMATE_VERBS, *components.EXTEND_VERBS, components.VIDEO_UPSCALE_VERB, components.ENHANCE_VERB, "reroll"
        ):
            vsrc = self.runner.jobs.get(m["h"])
            if m["verb"] != "reroll" or (vsrc is not None and vsrc.video):
                if vsrc is None or vsrc.state is not JobState.DONE:
                    self._failure(inter)
                    return
                self._video_or_enhance(inter, source, vsrc, m["verb"], int(m["n"]))
                return

        parsed = parse_custom_id(cid)
        src = self.runner.jobs.get(parsed.job_hash) if parsed else None
        if parsed is None or src is None or src.state is not JobState.DONE:
            self._failure(inter)  # the bot does not know this job (any more)
            return
        origin = self._button_origin(inter, source)
        action = parsed.action
        remix = inter.user.remix
        h = src.hash
        ratio = (float(src.size[0]), float(src.size[1]))

        if action is Action.UPSCALE:
            self._ack(inter)
            n = parsed.index
            quad = (src.size[0] // 2, src.size[1] // 2)
            model = components.upscale_model(parse_prompt(src.prompt).flags.get("v"))
            job = self._job(inter, origin, action=action, prompt=src.prompt, ratio=ratio, colours=[src.colours[(n - 1) % len(src.colours)]],
                            shape="single", index=n, caption=f"Image #{n}", parent=src, size=quad, model=model)
            self._submit(inter, origin, job)
        elif action is Action.VARIATION:
            if remix:
                self._open_modal(inter, src, kind="remix_variation", custom_id=f"{ids.REMIX_MODAL_PREFIX}{h}::{parsed.index}::1",
                                 title="Remix Prompt", field=ids.REMIX_FIELD, value=src.prompt, index=parsed.index, strong=True)
                return
            self._ack(inter)
            colours = _near(src.colours[(parsed.index - 1) % len(src.colours)], inter.rng)
            job = self._job(inter, origin, action=action, prompt=src.prompt, ratio=ratio, colours=colours, index=parsed.index,
                            caption=f"Variations of #{parsed.index}", parent=src)
            self._submit(inter, origin, job)
        elif action is Action.REROLL:
            if remix:
                self._open_modal(inter, src, kind="remix_reroll", custom_id=f"{ids.IMAGINE_MODAL_PREFIX}{source.id}",
                                 title="Imagine This!", field=ids.IMAGINE_MODAL_FIELD, value=src.prompt)
                return
            self._ack(inter)
            job = self._job(inter, origin, action=action, prompt=src.prompt, ratio=ratio, colours=images.palette(inter.rng), caption="Reroll", parent=src)
            self._submit(inter, origin, job)
        elif action in (Action.VARY_SUBTLE, Action.VARY_STRONG):
            strong = action is Action.VARY_STRONG
            if remix:
                self._open_modal(inter, src, kind="remix_variation", custom_id=f"{ids.REMIX_MODAL_PREFIX}{h}::1::{1 if strong else 0}",
                                 title="Remix Prompt", field=ids.REMIX_FIELD, value=src.prompt, strong=strong)
                return
            self._ack(inter)
            job = self._job(inter, origin, action=action, prompt=src.prompt, ratio=ratio, colours=_near(src.colours[0], inter.rng),
                            caption="Vary (Strong)" if strong else "Vary (Subtle)", parent=src)
            self._submit(inter, origin, job)
        elif action is Action.VARY_REGION:
            self._open_iframe(inter, kind="iframe_inpaint", title="Vary Region", source=src)
        elif action is Action.ZOOM:
            self._ack(inter)
            factor = parsed.zoom or 2.0
            job = self._job(inter, origin, action=action, prompt=src.prompt, ratio=ratio, colours=_near(src.colours[0], inter.rng),
                            caption=f"Zoom Out {factor:g}x", parent=src)
            self._submit(inter, origin, job)
        elif action is Action.CUSTOM_ZOOM:
            prefill = f"{strip_flags(src.prompt, 'zoom')} --zoom 2"
            self._open_modal(inter, src, kind="custom_zoom", custom_id=f"{ids.CUSTOM_ZOOM_MODAL_PREFIX}{h}",
                             title="Zoom Out", field=ids.CUSTOM_ZOOM_FIELD, value=prefill)
        elif action is Action.PAN:
            direction = parsed.pan or PanDirection.LEFT
            if remix:
                self._open_modal(inter, src, kind="remix_pan", custom_id=f"{ids.PAN_MODAL_PREFIX}{direction.value}::{h}::{parsed.index}",
                                 title="Pan", field=ids.PAN_MODAL_FIELD, value=src.prompt, pan=direction.value)
                return
            self._ack(inter)
            self._submit(inter, origin, self._pan_job(inter, origin, src, direction, src.prompt, remix=False))
        elif action in (Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE):
            self._ack(inter)
            size = (src.size[0] * 2, src.size[1] * 2)
            caption = "Upscaled (Subtle)" if action is Action.UPSCALE_SUBTLE else "Upscaled (Creative)"
            job = self._job(inter, origin, action=action, prompt=src.prompt, ratio=ratio, colours=[src.colours[0]], shape="single",
                            caption=caption, parent=src, size=size)
            self._submit(inter, origin, job)
        else:
            self._failure(inter)

    def _pan_job(self, inter: Interaction, origin: Origin, src: SimJob, direction: PanDirection, prompt: str, *, remix: bool) -> SimJob:
        w, h = float(src.size[0]), float(src.size[1])
        ratio = (w * 1.5, h) if direction in (PanDirection.LEFT, PanDirection.RIGHT) else (w, h * 1.5)
        return self._job(inter, origin, action=Action.PAN, prompt=prompt, ratio=ratio, colours=_near(src.colours[0], inter.rng),
                         pan=direction, caption=f"Pan {direction.value}", parent=src, remix=remix)

    async def _describe_pick(self, inter: Interaction, source: Message) -> None:
        described = self.describes.get(source.id)
        if described is None:
            self._failure(inter)
            return
        self._ack(inter)
        origin = self._button_origin(inter, source)
        cid = inter.custom_id
        if cid == components.PICREAD_RETRY:
            message = self._reply(inter, origin, ephemeral=False, embeds=[content.describe_waiting_embed(described.image_url, described.width, described.height)])
            await self._finish_describe(inter, message, described.image_url, described.width, described.height)
            return
        tail = cid[len(components.PICREADER_PREFIX):]
        picks = described.prompts if tail == "all" else ([described.prompts[int(tail) - 1]] if tail.isdigit() and 1 <= int(tail) <= 4 else [])
        for prompt in picks:
            self._imagine_job(inter, origin, prompt)

    def _settings_toggle(self, inter: Interaction, source: Message) -> None:
        key, wanted = components.parse_settings_custom_id(inter.custom_id)
        user = inter.user
        if key == "RemixMode":
            user.remix = not user.remix if wanted is None else wanted
        elif key in ("FastMode", "RelaxMode", "TurboMode"):
            mode = Mode(key[: -len("Mode")].lower())
            if wanted is False:  # `...::off` on the active speed: back to fast (fast itself: relax)
                mode = Mode.RELAX if mode is Mode.FAST else Mode.FAST
            user.mode = mode
        elif key == "ResetSettings":
            user.remix = False
            user.mode = Mode.FAST
        else:
            self._failure(inter)
            return
        self._ack(inter)
        self.messenger.edit(source, components=self._settings_rows(user))

    # --- v7 video (Animate, its video upscales and extends) and draft Enhance ---------------

    def _video_or_enhance(self, inter: Interaction, source: Message, src: SimJob, verb: str, n: int) -> None:
        origin = self._button_origin(inter, source)
        ratio = (float(src.size[0]), float(src.size[1]))
        if verb == components.ENHANCE_VERB:
            self._ack(inter)
            prompt = strip_flags(src.prompt, "draft")
            job = self._job(inter, origin, action=Action.REROLL, prompt=prompt, ratio=ratio, colours=_near(src.colours[0], inter.rng),
                            label="", caption="Enhance", parent=src, kind="ENHANCE")
            self._submit(inter, origin, job)
        elif verb in components.ANIMATE_VERBS or verb in components.EXTEND_VERBS:
            motion = "high" if verb.startswith("animate_high") else "low"
            extend = verb in components.EXTEND_VERBS
            if inter.user.remix:
                prefill = src.prompt if extend else content.animate_prompt(src.prompt, motion, _ratio_text(*src.size))
                self._open_modal(inter, src, kind="remix_animate",
                                 custom_id=f"{ids.ANIMATE_MODAL_PREFIX}{src.hash}::{n}::{motion}::{1 if extend else 0}",
                                 title="Animate", field=ids.ANIMATE_MODAL_FIELD, value=prefill, index=n, pan=motion, strong=extend)
                return
            self._ack(inter)
            self._submit(inter, origin, self._animate_job(inter, origin, src, motion, n, extend=extend))
        elif verb == components.VIDEO_UPSCALE_VERB:
            self._ack(inter)
            quad = (src.size[0] // 2, src.size[1] // 2)
            job = self._job(inter, origin, action=Action.UPSCALE, prompt=src.prompt, ratio=ratio, colours=[src.colours[(n - 1) % len(src.colours)]],
                            shape="single", index=n, caption=f"Video #{n}", parent=src, size=quad, kind="VIDEO_UPSCALE", video=True)
            job.rows = components.video_single_rows(src.hash, n)
            self._submit(inter, origin, job)
        else:  # reroll of an Animate result: a new video grid
            self._ack(inter)
            job = self._job(inter, origin, action=Action.REROLL, prompt=src.prompt, ratio=ratio, colours=images.palette(inter.rng),
                            label="", caption="Reroll", parent=src, size=src.size, kind="ANIMATE", video=True)
            self._submit(inter, origin, job)

    def _animate_job(self, inter: Any, origin: Origin, src: SimJob, motion: str, n: int, *, extend: bool, prompt: str | None = None) -> SimJob:
        """Animate (a single image -> a 2x2 grid of short videos) or Extend (one of those videos
        -> a new grid of longer ones). The prompt becomes `<text> --motion <m> --video 1
        --aspect W:H`."""
        if extend:
            base = src.colours[(n - 1) % len(src.colours)]
            size = src.size
            text = prompt or re.sub(r"--motion \w+", f"--motion {motion}", content.strip_leading_links(src.prompt))
        else:
            base = src.colours[0]
            size = images.size_for((float(src.size[0]), float(src.size[1])), round(self.ctx.config.grid_long_side * VIDEO_SCALE))
            text = prompt or content.animate_prompt(src.prompt, motion, _ratio_text(*src.size))
        caption = f"{'Extend' if extend else 'Animate'} ({motion.capitalize()} motion)"
        return self._video_grid_job(inter, origin, prompt=text, size=size, colours=_near(base, inter.rng), caption=caption, parent=src,
                                    kind="ANIMATE_EXTEND" if extend else "ANIMATE", submit=False)

    # --- modals and iframes ----------------------------------------------------------------

    @staticmethod
    def _remember(box: OrderedDict[str, Any], key: str, value: Any) -> None:
        box[key] = value
        while len(box) > MAX_REMEMBERED:
            box.popitem(last=False)

    def _open_modal(
        self, inter: Interaction, src: SimJob, *, kind: Any, custom_id: str, title: str, field: str, value: str,
        index: int = 1, strong: bool = True, pan: str | None = None,
    ) -> None:
        assert inter.message is not None
        modal = OpenModal(
            interaction_id=inter.id, user_id=inter.user.id, channel_id=inter.channel_id, custom_id=custom_id, kind=kind,
            job_hash=src.hash, index=index, pan=pan, strong=strong, source_message_id=inter.message.id,
            nonce=inter.nonce, session_id=inter.session_id, button_custom_id=inter.custom_id,
        )
        self._remember(self.modals, inter.id, modal)
        field_input = TextInput(type=4, custom_id=field, style=2, label="Prompt", value=value, min_length=1, max_length=4000)
        self.ctx.hub.to_session(
            inter.session_id,
            "INTERACTION_MODAL_CREATE",
            {
                "id": inter.id,
                "nonce": inter.nonce,
                "channel_id": inter.channel_id,
                "custom_id": custom_id,
                "title": title,
                "components": [ModalRow(type=1, components=[field_input])],
                "application": {"id": inter.application_id, "name": APP_NAMES[inter.application_id]},
            },
        )
        # The button press itself succeeded: public clients (erictik/midjourney-api,
        # trueai-org/midjourney-proxy) wait for this INTERACTION_SUCCESS, and take its id as the
        # modal submit's data.id.
        self._ack(inter)

    def _open_iframe(self, inter: Interaction, *, kind: Any, title: str, source: SimJob | None) -> None:
        token = f"{inter.rng.getrandbits(128):032x}"
        custom_id = f"{ids.IFRAME_PREFIX}{token}"
        modal = OpenModal(
            interaction_id=inter.id, user_id=inter.user.id, channel_id=inter.channel_id, custom_id=custom_id, kind=kind,
            job_hash=source.hash if source else None, source_message_id=inter.message.id if inter.message else None,
            nonce=inter.nonce, session_id=inter.session_id, button_custom_id=inter.custom_id or None, token=token,
        )
        self._remember(self.iframes, token, modal)
        guild_id = self._guild_id(inter.channel_id)
        path = "/captcha" if kind == "iframe_captcha" else "/inpaint"
        self.ctx.hub.to_session(
            inter.session_id,
            "INTERACTION_IFRAME_MODAL_CREATE",
            {
                "id": inter.id,
                "nonce": inter.nonce,
                "channel_id": inter.channel_id,
                "custom_id": custom_id,
                "title": title,
                "iframe_path": f"{path}/{token}?custom_id={token}&channel_id={inter.channel_id}&guild_id={guild_id or ''}",
                "modal_size": 2,
                "application": {"id": inter.application_id, "name": APP_NAMES[inter.application_id]},
            },
        )
        self._ack(inter)  # as for modals: trueai-org/midjourney-proxy waits for it before the submit-job

    async def _modal_submit(self, inter: Interaction) -> None:
        modal = inter.modal
        assert modal is not None
        src = self.runner.jobs.get(modal.job_hash or "")
        source = self.ctx.world.find_message(inter.user.id, inter.channel_id, modal.source_message_id or "")
        if src is None or source is None or src.state is not JobState.DONE:
            self._failure(inter)
            return
        field = ids.modal_prompt_field(modal.custom_id)
        values = inter.modal_values
        prompt_raw = values.get(field or "", next(iter(values.values()), "")).strip()
        self._ack(inter)
        origin = component_origin(
            interaction_id=modal.interaction_id, user=inter.user.user, guild_id=self._guild_id(inter.channel_id),
            nonce=inter.nonce, session_id=inter.session_id, source=source, modal_submit_id=inter.id,
        )
        command = prompt_raw
        if err := self.prompt_error(prompt_raw, command, zoom=modal.kind == "custom_zoom"):
            self._reply(inter, origin, ephemeral=True, embeds=[err])
            return
        prompt = content.echo_prompt(prompt_raw, self.ctx.config.seed)
        flags = parse_prompt(prompt_raw).flags
        src_ratio = (float(src.size[0]), float(src.size[1]))
        if modal.kind == "custom_zoom":
            ratio = images.parse_ar(flags["ar"]) if "ar" in flags else src_ratio
            job = self._job(inter, origin, action=Action.CUSTOM_ZOOM, prompt=prompt, ratio=ratio, colours=_near(src.colours[0], inter.rng),
                            caption=f"Zoom Out {flags.get('zoom', '')}x", parent=src, command=command)
        elif modal.kind == "remix_variation":
            on_grid = src.shape == "grid"
            action = Action.VARIATION if on_grid else (Action.VARY_STRONG if modal.strong else Action.VARY_SUBTLE)
            base = src.colours[(modal.index - 1) % len(src.colours)] if on_grid else src.colours[0]
            job = self._job(inter, origin, action=action, prompt=prompt, ratio=src_ratio, colours=_near(base, inter.rng),
                            index=modal.index, remix=True, caption="Remix", parent=src, command=command)
        elif modal.kind == "remix_reroll":
            job = self._job(inter, origin, action=Action.REROLL, prompt=prompt, ratio=images.parse_ar(flags["ar"]) if "ar" in flags else src_ratio,
                            colours=images.palette(inter.rng), caption="Remix", parent=src, command=command)
        elif modal.kind == "remix_pan":
            job = self._pan_job(inter, origin, src, PanDirection(modal.pan or "left"), prompt, remix=True)
        elif modal.kind == "remix_animate":  # pan = the motion, strong = extend
            job = self._animate_job(inter, origin, src, modal.pan or "high", modal.index, extend=modal.strong, prompt=prompt)
        else:
            self._failure(inter)
            return
        self._submit(inter, origin, job)

    # --- reactions -------------------------------------------------------------------------

    def react(self, user: UserState, message: Message, emoji: str) -> None:
        """`PUT /channels/{C}/messages/{M}/reactions/{emoji}/@me` on one of the bot's messages:
        ❌ on a running job's progress message cancels the job; ❌ on a finished result of this
        user deletes the result message; ✉️ on a result sends the job (prompt, Job ID, seed and
        image) to the user's DM channel with the bot. Anything else is only a reaction."""
        if message.author.id not in APP_NAMES:
            return
        if emoji in CANCEL_EMOJI:
            if self.runner.cancel_by_message(user.id, message.id):
                return
            job = self.runner.find_by_result(message.id)
            if job is not None and job.user.id == user.id:
                self.messenger.delete(message)
        elif emoji in ENVELOPE_EMOJI:
            job = self._job_of_message(message)
            if job is not None:
                self._spawn(self._send_to_dm(user, message.author.id, job))

    def _job_of_message(self, message: Message) -> SimJob | None:
        """The finished job a result message shows (also a /show repost of it): by message id,
        then by the job hash in the attachment's file name."""
        if (job := self.runner.find_by_result(message.id)) is not None:
            return job
        for attachment in message.attachments:
            if (m := _HASH_IN_NAME.search(attachment.filename)) and (job := self.runner.jobs.get(m.group(0))) is not None:
                return job if job.state is JobState.DONE else None
        return None

    async def _send_to_dm(self, user: UserState, bot_id: str, job: SimJob) -> None:
        await self.ctx.clock.sleep(BOT_THINK_SECONDS)
        world = self.ctx.world
        channel = world.dm_with(user.id, bot_id) or world.add_dm(self.ctx.ids.next(), user.id, bot_id)
        attachments = []
        if job.result_path and (file := self.ctx.cdn.get(job.result_path)) is not None and job.result_attachment is not None:
            old = job.result_attachment
            attachments.append(self.ctx.cdn.store(channel.id, old.filename, file.data, width=old.width, height=old.height, content_type=file.content_type))
        message = self.messenger.build(
            app_id=bot_id, channel_id=channel.id, content=content.seed_dm_text(job.prompt, job.hash, job.seed), attachments=attachments,
        )
        self.messenger.post(message)

    def submit_inpaint(self, body: Any, path_token: str | None = None) -> tuple[int, dict[str, Any]]:
        """`POST <inpaint_submit_url>`: the vary-region editor's answer. Returns (status, JSON).
        The newer iframe names its token in the path (`.../submit-job/<token>`) instead of the
        body's `customId` (README, "Bot replies confirmed in public clients")."""
        if not isinstance(body, dict):
            return 400, {"success": False, "message": "JSON object expected"}
        token = path_token or str(body.get("customId") or "")
        if token.startswith(ids.IFRAME_PREFIX):
            token = token[len(ids.IFRAME_PREFIX):]
        modal = self.iframes.get(token)
        if modal is None or modal.kind != "iframe_inpaint":
            return 404, {"success": False, "message": "Unknown or expired customId"}
        mask = body.get("mask")
        if not isinstance(mask, str) or not mask:
            return 400, {"success": False, "message": "mask is required"}
        if mask.startswith("data:"):
            mask = mask.split(",", 1)[-1]
        try:
            data = base64.b64decode(mask, validate=True)
        except (binascii.Error, ValueError):
            return 400, {"success": False, "message": "mask is not base64"}
        info = images.image_info(data)
        if info is None or info[0] not in ("PNG", "WEBP"):
            return 400, {"success": False, "message": "mask must be a PNG or WebP image"}
        src = self.runner.jobs.get(modal.job_hash or "")
        user = self.ctx.world.users.get(modal.user_id)
        source = self.ctx.world.find_message(modal.user_id, modal.channel_id, modal.source_message_id or "")
        if src is None or user is None or source is None:
            return 404, {"success": False, "message": "The source image is gone"}
        del self.iframes[token]
        prompt_raw = str(body.get("prompt") or "").strip() or src.prompt
        origin = component_origin(
            interaction_id=modal.interaction_id, user=user.user, guild_id=self._guild_id(modal.channel_id),
            nonce=modal.nonce, session_id=modal.session_id or "", source=source,
        )
        # A stand-in interaction: the job belongs to the button press that opened the editor.
        inter = _StandIn(modal, user, self.ctx, src.app_id)
        if err := self.prompt_error(prompt_raw, prompt_raw):
            self._reply(inter, origin, ephemeral=True, embeds=[err])  # type: ignore[arg-type]
            return 200, {"success": True}
        prompt = content.echo_prompt(prompt_raw, self.ctx.config.seed)
        job = self._job(inter, origin, action=Action.VARY_REGION, prompt=prompt, ratio=(float(src.size[0]), float(src.size[1])),  # type: ignore[arg-type]
                        colours=_near(src.colours[0], inter.rng), caption="Vary (Region)", parent=src, command=prompt_raw)
        self._submit(inter, origin, job)  # type: ignore[arg-type]
        return 200, {"success": True}


class _StandIn:
    """Just enough of an Interaction for `_job` / `_reply` / `_submit` (iframe submits have no
    Discord interaction of their own)."""

    def __init__(self, modal: OpenModal, user: Any, ctx: SimContext, application_id: str) -> None:
        self.id = modal.interaction_id
        self.user = user
        self.channel_id = modal.channel_id
        self.application_id = application_id
        self.session_id = modal.session_id or ""
        self.nonce = modal.nonce
        self.rng = ctx.child_rng()
