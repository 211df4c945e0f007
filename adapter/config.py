"""Settings: an optional TOML file, overridden by `MJ_ADAPTER_*` environment variables.

Every option is documented in README.md ("Configuration"). Secrets (Discord tokens, API keys,
webhook secrets) are kept as `Secret` so that no repr, log line or error ever shows them.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from adapter.domain.actions import Mode
from adapter.stores.factory import is_shared_store

ENV_PREFIX = "MJ_ADAPTER_"


class Secret(str):
    """A str that never shows its value in repr/str formatting of containers or logs."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    @property
    def fingerprint(self) -> str:
        """A short stable id for the secret (safe to log and store)."""
        return hashlib.sha256(self.encode()).hexdigest()[:12]

    def reveal(self) -> str:
        return str.__str__(self)


def _dec_hook(tp: type, obj: Any) -> Any:
    if tp is Secret:
        if not isinstance(obj, str):
            # a ValueError (not ValidationError) lets msgspec add the field path to the message
            raise ValueError("expected a string")
        return Secret(obj)
    if tp is Path:
        return Path(obj)
    raise NotImplementedError


class DiscordAccountConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="discord"):
    """One Discord user account that has the Midjourney bot in a private channel (a guild
    channel, or with no guild_id its direct-message channel with the bot)."""

    id: str = ""  # defaults to "discord-<channel id>"
    token: Secret
    guild_id: str = ""  # empty: channel_id is the account's DM channel with the Midjourney bot
    channel_id: str
    dm_channel_id: str = ""  # the DM channel with the bot (where seeds arrive); found if empty
    modes: tuple[Mode, ...] = (Mode.FAST, Mode.RELAX)
    concurrency: int = 3
    queue_size: int = 10
    min_gap_seconds: float = 1.5  # minimum time between two interactions of this account
    gap_jitter_seconds: float = 1.0  # plus up to this much random extra
    daily_cap: int | None = None  # interactions per UTC day; None = unlimited
    user_agent: str | None = None
    rest_base: str = "https://discord.com/api/v9"
    inpaint_submit_url: str = "https://936929561302675456.discordsays.com/inpaint/api/submit-job"
    compress: bool = True  # zlib-stream on the gateway
    # after a 5xx or no answer to an interaction: how long an unbroken gateway must stay silent
    # about it before it counts as not taken (and may be sent again)
    ack_grace_seconds: float = 10.0
    enabled: bool = True


class ProviderAccountConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="mjproxy"):
    """An upstream midjourney-proxy-compatible API used as a backend."""

    id: str = ""
    base_url: str
    secret: Secret = Secret("")
    modes: tuple[Mode, ...] = (Mode.FAST, Mode.RELAX)
    concurrency: int = 5
    queue_size: int = 20
    poll_interval_seconds: float = 3.0  # longest gap between two polls of a running task
    poll_initial_seconds: float = 0.5  # first gap; grows towards poll_interval_seconds
    mode_prefix: bool = True  # ask for the mode with /mj-fast|-relax|-turbo/ (else a prompt flag)
    request_timeout_seconds: float = 30.0
    enabled: bool = True


AccountConfig = DiscordAccountConfig | ProviderAccountConfig


class Timeouts(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Per-mode job timeouts in seconds; relax jobs legitimately take 10+ minutes."""

    fast: float = 900.0
    turbo: float = 600.0
    relax: float = 3600.0

    def for_mode(self, mode: Mode) -> float:
        return {Mode.FAST: self.fast, Mode.TURBO: self.turbo, Mode.RELAX: self.relax}[mode]


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    api_keys: tuple[Secret, ...] = ()
    # may list/pause/resume accounts and read /metrics; empty: nobody may (keyless loopback mode:
    # the local operator may)
    admin_keys: tuple[Secret, ...] = ()
    # origins browsers may call from when API keys are configured; "*" is safe-ish there because
    # every call needs a key anyway. Keyless mode ignores it: loopback origins only.
    cors_origins: tuple[str, ...] = ("*",)
    data_dir: Path = Path("data")
    public_base_url: str | None = None  # default: derived from each request's Host
    # where result images live: empty, <data_dir>/images; s3://bucket/prefix?endpoint_url=&region=
    # an S3-compatible bucket (credentials from the AWS_* environment variables only)
    image_store_url: str | None = None
    # image URLs are <this>/images/<key> (a CDN, or the bucket itself) instead of our own route
    image_public_base_url: str | None = None
    store_url: str | None = None  # default: sqlite in data_dir
    log_level: str = "INFO"
    accounts: tuple[AccountConfig, ...] = ()
    # demo mode (no accounts configured): the built-in simulator
    simulator_speed: float = 20.0
    simulator_seed: int = 0
    simulator_accounts: int = 2
    banned_words: tuple[str, ...] = ()  # added to the built-in list
    banned_words_replace: bool = False  # true: banned_words replaces the built-in list
    model_aliases: dict[str, str] = msgspec.field(
        default_factory=lambda: {"dall-e-3": "midjourney", "dall-e-2": "midjourney", "gpt-image-1": "midjourney"}
    )
    timeouts: Timeouts = msgspec.field(default_factory=Timeouts)
    idempotency_window_seconds: float = 600.0
    fetch_allow_hosts: tuple[str, ...] = ()  # hosts/CIDRs exempt from the private-address rule
    # private hosts/CIDRs that user-supplied image URLs may reach (they get public addresses only)
    user_url_allow_hosts: tuple[str, ...] = ()
    fetch_max_bytes: int = 20 * 1024 * 1024
    chat_preview_images: bool = True  # show the progress preview as markdown in chat streams
    stream_keepalive_seconds: float = 15.0
    webhook_url: str | None = None
    webhook_secret: Secret = Secret("")
    webhook_retry_seconds: float = 86400.0
    webhook_allow_hosts: tuple[str, ...] = ()  # private hosts/CIDRs webhooks may be sent to
    webhook_backoff_seconds: float = 1.0  # first retry delay; doubles per attempt (with jitter)
    webhook_backoff_max_seconds: float = 600.0
    webhook_timeout_seconds: float = 10.0
    # yokonsan/midjourney-api front door: where its callback messages go (that project's CALLBACK_URL)
    yokonsan_callback_url: str | None = None
    retention_days: float | None = None  # delete finished jobs, their images and old outbox items; None: keep all
    retention_interval_seconds: float = 3600.0
    # prompt translation, off without a base URL: prompts in a non-Latin script go through this
    # OpenAI-compatible chat completions endpoint (`{base}/chat/completions`) into English
    translate_base_url: str | None = None
    translate_model: str = "gpt-4o-mini"
    translate_api_key: Secret = Secret("")
    translate_timeout_seconds: float = 20.0
    # several replicas (a redis:// store and configured accounts): this process's name in logs,
    # leases and /v1/accounts (default: host-pid), and how long a dead replica's accounts wait
    # before another takes them over
    replica_id: str | None = None
    lease_ttl_seconds: float = 5.0

    @property
    def demo(self) -> bool:
        return not any(a.enabled for a in self.accounts)

    @property
    def clustered(self) -> bool:
        """Replicas coordinate: jobs in Redis (shared by every replica) and real accounts (a
        demo's simulator lives inside each process, so there is nothing to share)."""
        return is_shared_store(self.resolved_store_url()) and not self.demo

    def image_base_url(self) -> str | None:
        """The configured base of the image URLs we hand out (`<base>/images/<key>`), or None to
        take it from each request. The API and the webhooks both ask here, so the URLs agree."""
        base = self.image_public_base_url or self.public_base_url
        return base.rstrip("/") if base else None

    def resolved_store_url(self) -> str:
        # the path is absolute, so its own leading "/" is the third slash of "sqlite:///<path>"
        return self.store_url or f"sqlite://{(self.data_dir / 'jobs.db').resolve()}"


def default_replica_id() -> str:
    """host + pid: unique among the live processes of a cluster (a restart is a new replica)."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "_", socket.gethostname() or "host")[:48]
    return f"{host}-{os.getpid()}"


class ConfigError(ValueError):
    pass


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


# env var suffix -> (settings field, parser)
_LIST_FIELDS = {
    "API_KEYS",
    "ADMIN_KEYS",
    "CORS_ORIGINS",
    "BANNED_WORDS",
    "FETCH_ALLOW_HOSTS",
    "USER_URL_ALLOW_HOSTS",
    "WEBHOOK_ALLOW_HOSTS",
}


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :]
        field = name.lower()
        if name in _LIST_FIELDS:
            out[field] = _split_list(value)
        elif name == "MODEL_ALIASES":
            # "dall-e-3=midjourney,gpt-image-1=midjourney-relax"
            # (spaces around `=` are allowed: "a = b" must not become the alias "a " -> " b")
            out[field] = {k.strip(): v.strip() for k, v in (p.split("=", 1) for p in _split_list(value) if "=" in p)}
        elif name == "ACCOUNTS":
            try:
                out[field] = msgspec.json.decode(value)
            except msgspec.DecodeError as exc:
                # msgspec's message gives a byte offset, never the content (which holds tokens)
                raise ConfigError(f"{key} is not valid JSON: {exc}") from None
        elif name.startswith("TIMEOUT_"):
            out.setdefault("timeouts", {})[name[len("TIMEOUT_") :].lower()] = value
        elif field in fields:
            out[field] = value
    # A single Discord account straight from the environment (the common case).
    token = env.get(ENV_PREFIX + "DISCORD_TOKEN")
    if token:
        acct: dict[str, Any] = {
            "kind": "discord",
            "token": token,
            "guild_id": env.get(ENV_PREFIX + "DISCORD_GUILD_ID", ""),
            "channel_id": env.get(ENV_PREFIX + "DISCORD_CHANNEL_ID", ""),
            "dm_channel_id": env.get(ENV_PREFIX + "DISCORD_DM_CHANNEL_ID", ""),
        }
        if modes := env.get(ENV_PREFIX + "DISCORD_MODES"):
            acct["modes"] = _split_list(modes)
        for opt in ("CONCURRENCY", "QUEUE_SIZE", "MIN_GAP_SECONDS", "DAILY_CAP", "USER_AGENT", "REST_BASE"):
            if (v := env.get(ENV_PREFIX + "DISCORD_" + opt)) is not None:
                acct[opt.lower()] = v
        out["accounts"] = [*out.get("accounts", []), acct]
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict) and k != "model_aliases":
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def load_settings(config_file: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    raw = _merge(raw, _env_overrides(env))
    # `kind` may be left out of an account table: Discord is the common case
    raw["accounts"] = [{"kind": "discord", **a} if isinstance(a, dict) else a for a in raw.get("accounts", [])]
    try:
        settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        # msgspec names the path ($.accounts[0].guild_id) and never echoes the value
        raise ConfigError(f"invalid configuration: {exc}") from None
    return _finish(settings)


def _finish(settings: Settings) -> Settings:
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"port must be between 0 and 65535, got {settings.port}")
    for name in ("retention_days", "retention_interval_seconds", "translate_timeout_seconds", "lease_ttl_seconds"):
        value = getattr(settings, name)
        if value is not None and not (0 < value < math.inf):  # also refuses NaN
            raise ConfigError(f"{name} must be a positive number, got {value}")
    translate_base = (settings.translate_base_url or "").strip() or None
    if translate_base is not None:
        if not translate_base.lower().startswith(("http://", "https://")):
            # the value may hold credentials: never echo it
            raise ConfigError("translate_base_url must be an http:// or https:// URL (such as https://api.openai.com/v1)")
        if not settings.translate_model.strip():
            raise ConfigError("translate_model must name a model when translate_base_url is set")
    settings = msgspec.structs.replace(settings, translate_base_url=translate_base)
    if settings.replica_id is not None and not re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", settings.replica_id):
        raise ConfigError("replica_id must be 1-64 letters, digits, '.', '_', ':' or '-'")
    if not 0.5 <= settings.lease_ttl_seconds <= 300:
        raise ConfigError(f"lease_ttl_seconds must be between 0.5 and 300, got {settings.lease_ttl_seconds}")
    settings = _check_image_store(settings)
    accounts: list[AccountConfig] = []
    seen: set[str] = set()
    for i, acct in enumerate(settings.accounts):
        if isinstance(acct, DiscordAccountConfig):
            if not acct.channel_id:
                raise ConfigError(
                    f"account {i}: channel_id is required for a Discord account (with guild_id for a guild channel, "
                    "without it for the account's DM channel with the Midjourney bot)"
                )
            default_id = f"discord-{acct.channel_id}"
        else:
            default_id = f"mjproxy-{i}"
        acct_id = acct.id or default_id
        if acct_id in seen:
            raise ConfigError(f"account id {acct_id!r} is used twice")
        seen.add(acct_id)
        if acct.concurrency < 1 or acct.queue_size < 0:
            raise ConfigError(f"account {acct_id}: concurrency must be >= 1 and queue_size >= 0")
        accounts.append(msgspec.structs.replace(acct, id=acct_id))
    return msgspec.structs.replace(settings, accounts=tuple(accounts))


def _check_image_store(settings: Settings) -> Settings:
    store_url = (settings.image_store_url or "").strip() or None
    if store_url is not None:
        from adapter.media.s3_store import parse_s3_url  # only here: config stays light otherwise

        try:
            parse_s3_url(store_url)
        except ValueError as exc:  # its messages never echo the URL: it may hold a secret
            raise ConfigError(str(exc)) from None
    public = (settings.image_public_base_url or "").strip().rstrip("/") or None
    if public is not None and not public.lower().startswith(("http://", "https://")):
        raise ConfigError("image_public_base_url must be an http:// or https:// URL (image URLs become <it>/images/<key>)")
    return msgspec.structs.replace(settings, image_store_url=store_url, image_public_base_url=public)


def key_id(api_key: str) -> str:
    """The owner id stored on jobs for an API key: stable, not reversible."""
    return "key_" + hashlib.sha256(api_key.encode()).hexdigest()[:16]
