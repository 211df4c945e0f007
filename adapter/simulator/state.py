"""The simulated Discord world: users (one per account), guilds, channels, their messages,
ephemeral messages (seen only by one user, never in history) and pending uploads."""

from __future__ import annotations

import bisect
from collections import OrderedDict

import msgspec

from adapter.domain.actions import BOT_APPLICATION_IDS, Bot, Mode
from adapter.simulator.config import SimAccount
from adapter.simulator.wire import Message, User

MAX_EPHEMERAL_PER_USER = 200
MAX_CHANNEL_MESSAGES = 10_000  # oldest messages drop out of history beyond this


class UserState:
    """An account as the world knows it: identity, plus the bot-side settings Midjourney keeps
    per user (job mode, remix)."""

    def __init__(self, account: SimAccount, number: int, remix: bool) -> None:
        self.account = account
        self.user = User(
            id=account.user_id,
            username=f"simuser{number}",
            global_name=f"Sim User {number}",
        )
        self.mode = Mode.FAST
        self.remix = remix
        # Discord-side behaviour switches (README, "Two behaviours"); the control API flips them
        self.interaction_events_fallback = account.interaction_events_fallback
        self.final_message_nonce = account.final_message_nonce
        self.revoked = False
        self.fast_seconds_left = 15 * 3600.0
        self.images_made = 0

    @property
    def id(self) -> str:
        return self.account.user_id


GUILD_TEXT = 0
DM = 1


class Channel:
    """A guild text channel (type 0), or a direct-message channel (type 1: no guild, one user
    talking to one bot, `recipient_ids` = the bot, as the user sees it)."""

    def __init__(
        self, channel_id: str, guild_id: str | None, name: str | None, *, type: int = GUILD_TEXT,
        user_id: str | None = None, recipient_ids: tuple[str, ...] = (),
    ) -> None:
        self.id = channel_id
        self.guild_id = guild_id
        self.name = name
        self.type = type
        self.user_id = user_id  # DMs: the account whose DM this is
        self.recipient_ids = recipient_ids
        self.messages: dict[str, Message] = {}
        self._order: list[int] = []  # message ids ascending, for history pages

    def add(self, message: Message) -> None:
        self.messages[message.id] = message
        bisect.insort(self._order, int(message.id))
        while len(self._order) > MAX_CHANNEL_MESSAGES:
            self.messages.pop(str(self._order.pop(0)), None)

    def remove(self, message_id: str) -> Message | None:
        message = self.messages.pop(message_id, None)
        if message is not None:
            i = bisect.bisect_left(self._order, int(message_id))
            if i < len(self._order) and self._order[i] == int(message_id):
                self._order.pop(i)
        return message

    @property
    def last_message_id(self) -> str | None:
        return str(self._order[-1]) if self._order else None

    def around(self, limit: int, around: str) -> list[Message]:
        """`?around=`: limit // 2 older messages, the message itself when it exists, limit // 2
        newer ones (so an even limit gives up to limit + 1, and limit 1 the message alone);
        newest first."""
        ids = self._order
        pivot = int(around)
        lo = bisect.bisect_left(ids, pivot)
        hi = bisect.bisect_right(ids, pivot)
        half = limit // 2
        older = ids[max(0, lo - half) : lo] if half else []
        newer = ids[hi : hi + half] if half else []
        picked = older + ids[lo:hi] + newer
        return [self.messages[str(i)] for i in reversed(picked)]

    def history(self, limit: int, before: str | None = None, after: str | None = None) -> list[Message]:
        """Newest first, like Discord's GET /channels/{id}/messages."""
        ids = self._order
        hi = bisect.bisect_left(ids, int(before)) if before else len(ids)
        lo = bisect.bisect_right(ids, int(after)) if after else 0
        if after and not before:
            # Discord pages forward from `after`: the oldest `limit` after it, still newest first.
            picked = ids[lo : lo + limit]
        else:
            picked = ids[max(lo, hi - limit) : hi]
        return [self.messages[str(i)] for i in reversed(picked)]


class Guild:
    def __init__(self, guild_id: str, name: str) -> None:
        self.id = guild_id
        self.name = name
        self.channel_ids: list[str] = []
        self.member_ids: list[str] = []
        # the bots added to the guild: whose commands its command index lists
        self.app_ids: list[str] = list(BOT_APPLICATION_IDS.values())


class Upload(msgspec.Struct, kw_only=True):
    key: str
    user_id: str
    channel_id: str
    filename: str
    upload_filename: str
    file_size: int
    data: bytes | None = None
    content_type: str = "application/octet-stream"


class World:
    def __init__(self, accounts: list[SimAccount], *, remix: bool) -> None:
        self.users: dict[str, UserState] = {}
        self._by_token: dict[str, UserState] = {}
        self.guilds: dict[str, Guild] = {}
        self.channels: dict[str, Channel] = {}
        self.ephemeral: dict[str, OrderedDict[str, Message]] = {}
        self.uploads: dict[str, Upload] = {}  # by upload_filename
        self.upload_keys: dict[str, str] = {}  # upload url key -> upload_filename
        for number, account in enumerate(accounts, start=1):
            user = UserState(account, number, remix)
            self.users[user.id] = user
            self._by_token[account.token] = user
            guild = self.guilds.get(account.guild_id)
            if guild is None:
                guild = self.guilds[account.guild_id] = Guild(account.guild_id, f"Simulated Guild {len(self.guilds) + 1}")
            if user.id not in guild.member_ids:
                guild.member_ids.append(user.id)
            if account.channel_id not in self.channels:
                self.channels[account.channel_id] = Channel(
                    account.channel_id, account.guild_id, f"midjourney-{len(self.channels) + 1}"
                )
                guild.channel_ids.append(account.channel_id)
            if account.dm_channel_id and account.dm_channel_id not in self.channels:
                self.add_dm(account.dm_channel_id, user.id, BOT_APPLICATION_IDS[Bot.MIDJOURNEY])

    # --- users

    def user_for_token(self, token: str | None) -> UserState | None:
        if not token:
            return None
        user = self._by_token.get(token)
        if user is None or user.revoked:
            return None
        return user

    def user_for_token_any(self, token: str) -> UserState | None:
        """Including revoked ones (for the fault switches)."""
        return self._by_token.get(token)

    def can_access(self, user_id: str, channel_id: str) -> bool:
        channel = self.channels.get(channel_id)
        if channel is None:
            return False
        if channel.guild_id is None:
            return channel.user_id == user_id
        return user_id in self.guilds[channel.guild_id].member_ids

    def members_of_channel(self, channel_id: str) -> list[str]:
        channel = self.channels.get(channel_id)
        if channel is None:
            return []
        if channel.guild_id is None:
            return [channel.user_id] if channel.user_id else []
        return list(self.guilds[channel.guild_id].member_ids)

    # --- direct messages

    def add_dm(self, channel_id: str, user_id: str, bot_id: str) -> Channel:
        channel = Channel(channel_id, None, None, type=DM, user_id=user_id, recipient_ids=(bot_id,))
        self.channels[channel_id] = channel
        return channel

    def dm_with(self, user_id: str, bot_id: str) -> Channel | None:
        """The user's DM channel with this bot, if it exists."""
        return next(
            (c for c in self.channels.values() if c.type == DM and c.user_id == user_id and c.recipient_ids == (bot_id,)),
            None,
        )

    def dms_of(self, user_id: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.type == DM and c.user_id == user_id]

    # --- messages

    def find_message(self, user_id: str, channel_id: str, message_id: str) -> Message | None:
        """A message this user can see: in the channel, or one of their ephemeral messages."""
        channel = self.channels.get(channel_id)
        if channel is not None and (message := channel.messages.get(message_id)) is not None:
            return message
        message = self.ephemeral.get(user_id, {}).get(message_id)
        if message is not None and message.channel_id == channel_id:
            return message
        return None

    def add_ephemeral(self, user_id: str, message: Message) -> None:
        box = self.ephemeral.setdefault(user_id, OrderedDict())
        box[message.id] = message
        while len(box) > MAX_EPHEMERAL_PER_USER:
            box.popitem(last=False)
