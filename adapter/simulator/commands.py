"""The application commands the simulated guilds know (Midjourney's and Niji's), as served by
`GET /guilds/{G}/application-command-index`. Midjourney's ids and versions are the real ones
(PROTOCOL.md section 2; the versions as published by public clients and a captured command index,
README "Bot replies confirmed in public clients"); Niji's are snowflakes picked from the seed.
All can be bumped at run time so a client holding a stale version gets Discord's 50035 and must
refresh."""

from __future__ import annotations

import random
from typing import Any

import msgspec

from adapter.domain.actions import BOT_APPLICATION_IDS, Bot
from adapter.simulator.wire import User

MIDJOURNEY_COMMAND_IDS: dict[str, str] = {
    "imagine": "938956540159881230",
    "describe": "1092492867185950852",
    "blend": "1062880104792997970",
    "shorten": "1121575372539039774",
    "settings": "1000850743479255081",
    "info": "972289487818334209",
    "fast": "972289487818334212",
    "relax": "972289487818334213",
    "turbo": "1124132684143271996",
    "show": "1169435442328911902",
    "prefer": "984273800587776053",
}

# The versions Midjourney's commands carry since May 2024 (snowflakes of 2024-05-09): clients
# that hard-code them (Mutiny-SDK `mutiny/discord/constants.py`, novicezk/trueai midjourney-proxy
# parameter files) send exactly these, and a captured command index lists them all.
MIDJOURNEY_COMMAND_VERSIONS: dict[str, str] = {
    "imagine": "1237876415471554623",
    "blend": "1237876415471554624",
    "describe": "1237876415471554625",
    "shorten": "1237876415471554626",
    "show": "1237876415471554630",
    "info": "1237876415735660565",
    "fast": "1237876415735660572",
    "relax": "1237876415735660573",
    "turbo": "1237876415790055474",
    "settings": "1237876415790055475",
    "prefer": "1237876415790055476",
}

BOT_USERS: dict[str, User] = {
    BOT_APPLICATION_IDS[Bot.MIDJOURNEY]: User(
        id=BOT_APPLICATION_IDS[Bot.MIDJOURNEY], username="Midjourney Bot", global_name=None, discriminator="9282", bot=True, public_flags=589824
    ),
    BOT_APPLICATION_IDS[Bot.NIJI]: User(
        id=BOT_APPLICATION_IDS[Bot.NIJI], username="niji・journey Bot", global_name=None, discriminator="5227", bot=True, public_flags=589824
    ),
}

APP_NAMES = {BOT_APPLICATION_IDS[Bot.MIDJOURNEY]: "Midjourney Bot", BOT_APPLICATION_IDS[Bot.NIJI]: "niji・journey Bot"}


class Choice(msgspec.Struct):
    name: str
    value: str


class Option(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: int  # 1 subcommand, 2 subcommand group, 3 string, 11 attachment
    name: str
    description: str
    required: bool = False
    choices: list[Choice] | None = None
    options: list[Option] | None = None  # a subcommand's (or group's) own options


class Command(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    type: int  # 1 chat input
    application_id: str
    version: str
    name: str
    description: str
    options: list[Option] = []
    dm_permission: bool = True
    integration_types: list[int] = msgspec.field(default_factory=lambda: [0, 1])
    contexts: list[int] = msgspec.field(default_factory=lambda: [0, 1, 2])


def _s(name: str, description: str, required: bool = False) -> Option:
    return Option(type=3, name=name, description=description, required=required)


def _a(name: str, description: str, required: bool = False) -> Option:
    return Option(type=11, name=name, description=description, required=required)


_DIMENSIONS = Option(
    type=3,
    name="dimensions",
    description="The dimensions of the image. If not specified, the image will be square.",
    choices=[Choice("Portrait", "--ar 2:3"), Choice("Square", "--ar 1:1"), Choice("Landscape", "--ar 3:2")],
)

def _sub(name: str, description: str, *options: Option, group: bool = False) -> Option:
    return Option(type=2 if group else 1, name=name, description=description, options=list(options))


COMMAND_SPECS: dict[str, tuple[str, list[Option]]] = {
    "imagine": ("Create images with Midjourney", [_s("prompt", "The prompt to imagine", required=True)]),
    "describe": ("Writes a prompt based on your image.", [_a("image", "The image to describe"), _s("link", "…")]),
    "blend": (
        "Blend images together seamlessly!",
        [_a("image1", "First image to add to the blend", True), _a("image2", "Second image to add to the blend", True), _DIMENSIONS]
        + [_a(f"image{i}", f"Image {i} to add to the blend") for i in (3, 4, 5)],
    ),
    "shorten": ("Analyzes and shortens a prompt.", [_s("prompt", "The prompt to shorten", required=True)]),
    "settings": ("View and adjust your personal settings.", []),
    "info": ("View information about your profile.", []),
    "fast": ("Switch to fast mode", []),
    "relax": ("Switch to relax mode", []),
    "turbo": ("Switch to turbo mode", []),
    "show": ("Shows the job view based on job id.", [_s("job_id", "The job ID of the job you want to show.", required=True)]),
}

# Commands added after the first ones: Niji's ids and versions come from a generator of their own,
# so adding them changed no id or version above (Midjourney's are the real ones, found later in a
# captured command index; the generator still draws for them, so Niji's did not move).
LATER_COMMAND_SPECS: dict[str, tuple[str, list[Option]]] = {
    "prefer": (
        "Set your preferences.",
        [
            _sub("remix", "Toggle remix mode."),
            _sub("suffix", "Suffix to automatically add to the end of every prompt.", _s("new_value", "The suffix (leave empty to clear it).")),
            _sub(
                "option", "Create or manage a custom option.",
                _sub("set", "Create or update a custom option.", _s("option", "The option's name.", required=True), _s("value", "What the option stands for (empty deletes it).")),
                _sub("list", "View your current custom options."),
                group=True,
            ),
        ],
    ),
}


class CommandRegistry:
    def __init__(self, seed: int) -> None:
        # Its own generator: bumping versions must not shift the bot's job hashes.
        self._rng = random.Random(f"mj-sim-commands:{seed}")
        self.commands: dict[tuple[str, str], Command] = {}  # (application id, command id)
        for app_id in BOT_APPLICATION_IDS.values():
            for name, (description, options) in COMMAND_SPECS.items():
                if app_id == BOT_APPLICATION_IDS[Bot.MIDJOURNEY]:
                    cid = MIDJOURNEY_COMMAND_IDS[name]
                else:
                    cid = str(1_100_000_000_000_000_000 + self._rng.randrange(10**17))
                version = self._new_version()  # drawn for Midjourney too: the seed's later values stay put
                if app_id == BOT_APPLICATION_IDS[Bot.MIDJOURNEY]:
                    version = MIDJOURNEY_COMMAND_VERSIONS[name]
                self.commands[(app_id, cid)] = Command(
                    id=cid, type=1, application_id=app_id, version=version, name=name,
                    description=description, options=options,
                )
        later = random.Random(f"mj-sim-commands-later:{seed}")
        for app_id in BOT_APPLICATION_IDS.values():
            for name, (description, options) in LATER_COMMAND_SPECS.items():
                cid = str(1_100_000_000_000_000_000 + later.randrange(10**17))
                version = str(1_250_000_000_000_000_000 + later.randrange(10**17))
                if app_id == BOT_APPLICATION_IDS[Bot.MIDJOURNEY]:
                    cid, version = MIDJOURNEY_COMMAND_IDS[name], MIDJOURNEY_COMMAND_VERSIONS[name]
                self.commands[(app_id, cid)] = Command(
                    id=cid, type=1, application_id=app_id, version=version, name=name, description=description, options=options,
                )

    def _new_version(self) -> str:
        return str(1_250_000_000_000_000_000 + self._rng.randrange(10**17))

    def get(self, application_id: str, command_id: str) -> Command | None:
        return self.commands.get((application_id, command_id))

    def by_name(self, application_id: str, name: str) -> Command | None:
        return next((c for c in self.commands.values() if c.application_id == application_id and c.name == name), None)

    def bump(self, name: str | None = None) -> dict[str, str]:
        """New versions for the named command (every command when None); old versions stop
        working at once. Returns {"<application id>:<name>": new version}."""
        changed: dict[str, str] = {}
        for key, command in self.commands.items():
            if name is None or command.name == name:
                version = str(max(int(command.version) + 1, int(self._new_version())))
                self.commands[key] = msgspec.structs.replace(command, version=version)
                changed[f"{command.application_id}:{command.name}"] = version
        return changed

    def index(self) -> dict[str, Any]:
        applications = [
            {
                "id": app_id,
                "name": APP_NAMES[app_id],
                "description": "",
                "icon": None,
                "flags": 0,
                "bot_id": app_id,
                "bot": msgspec.to_builtins(BOT_USERS[app_id]),
            }
            for app_id in BOT_APPLICATION_IDS.values()
        ]
        return {
            "applications": applications,
            "application_commands": [msgspec.to_builtins(c) for c in self.commands.values()],
            "version": str(max(int(c.version) for c in self.commands.values())),
        }
