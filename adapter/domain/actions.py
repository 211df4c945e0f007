"""What a job does, what it runs on, and how fast."""

from __future__ import annotations

import enum


class Action(str, enum.Enum):
    IMAGINE = "IMAGINE"
    UPSCALE = "UPSCALE"  # U1-U4: one image out of a grid
    VARIATION = "VARIATION"  # V1-V4
    REROLL = "REROLL"
    VARY_SUBTLE = "VARY_SUBTLE"
    VARY_STRONG = "VARY_STRONG"
    VARY_REGION = "VARY_REGION"
    ZOOM = "ZOOM"
    CUSTOM_ZOOM = "CUSTOM_ZOOM"
    PAN = "PAN"
    UPSCALE_SUBTLE = "UPSCALE_SUBTLE"
    UPSCALE_CREATIVE = "UPSCALE_CREATIVE"
    DESCRIBE = "DESCRIBE"
    BLEND = "BLEND"
    SHORTEN = "SHORTEN"
    ANIMATE = "ANIMATE"  # "Animate (High motion)" / "(Low motion)" on v7 images: a video
    # Any other button Midjourney offers (draft mode's "Enhance", new ones we have not seen):
    # pressed as it is, its result taken as it comes.
    CUSTOM = "CUSTOM"


class Mode(str, enum.Enum):
    FAST = "fast"
    RELAX = "relax"
    TURBO = "turbo"


class Bot(str, enum.Enum):
    MIDJOURNEY = "midjourney"
    NIJI = "niji"


# Application ids of the two bots (PROTOCOL.md section 2).
BOT_APPLICATION_IDS: dict[Bot, str] = {
    Bot.MIDJOURNEY: "936929561302675456",
    Bot.NIJI: "1022952195194359889",
}


class PanDirection(str, enum.Enum):
    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"
