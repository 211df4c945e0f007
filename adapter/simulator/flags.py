"""Which `--flags` the simulated bot accepts, and what it says about the ones it refuses
("Invalid parameter"). Values mirror Midjourney's documented ranges closely enough for tests
of the error paths; unknown flags are refused as Midjourney refuses them."""

from __future__ import annotations

from collections.abc import Callable

from adapter.simulator.images import parse_ar

Check = Callable[[str], str | None]  # value -> problem (None when fine)

VERSIONS = {"1", "2", "3", "4", "5", "5.0", "5.1", "5.2", "6", "6.0", "6.1", "7", "7.0"}
NIJI_VERSIONS = {"", "4", "5", "6"}


def _number(lo: float, hi: float, *, integer: bool = False) -> Check:
    def check(value: str) -> str | None:
        try:
            n = int(value) if integer else float(value)
        except ValueError:
            return f"must be {'a whole number' if integer else 'a number'} between {lo:g} and {hi:g}"
        if not lo <= n <= hi:
            return f"must be between {lo:g} and {hi:g}"
        return None

    return check


def _one_of(choices: set[str]) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(sorted(c for c in choices if c))}"

    return check


def _ar(value: str) -> str | None:
    try:
        parse_ar(value)
    except ValueError as exc:
        return str(exc)
    return None


def _any(value: str) -> str | None:
    return None


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "needs a value"


def _bare(value: str) -> str | None:
    return None


FLAGS: dict[str, Check] = {
    "ar": _ar,
    "aspect": _ar,
    "v": _one_of(VERSIONS),
    "version": _one_of(VERSIONS),
    "niji": _one_of(NIJI_VERSIONS),
    "q": _number(0.25, 4),
    "quality": _number(0.25, 4),
    "s": _number(0, 1000, integer=True),
    "stylize": _number(0, 1000, integer=True),
    "c": _number(0, 100, integer=True),
    "chaos": _number(0, 100, integer=True),
    "seed": _number(0, 4294967295, integer=True),
    "sameseed": _number(0, 4294967295, integer=True),
    "no": _non_empty,
    "stop": _number(10, 100, integer=True),
    "style": _non_empty,
    "w": _number(0, 3000, integer=True),
    "weird": _number(0, 3000, integer=True),
    "iw": _number(0, 3),
    "sref": _non_empty,
    "cref": _non_empty,
    "sw": _number(0, 1000, integer=True),
    "cw": _number(0, 100, integer=True),
    "p": _any,
    "personalize": _any,
    "r": _number(1, 40, integer=True),
    "repeat": _number(1, 40, integer=True),
    "tile": _bare,
    "raw": _bare,
    "fast": _bare,
    "relax": _bare,
    "turbo": _bare,
    "stealth": _bare,
    "public": _bare,
    "hd": _bare,
    "test": _bare,
    "testp": _bare,
    "video": _bare,
    "draft": _bare,  # v7 draft mode
    "motion": _one_of({"low", "high"}),  # video: Animate's motion
    "loop": _bare,
    "bs": _one_of({"1", "2", "4"}),  # video: batch size (videos per grid)
    "end": _non_empty,  # video: the end frame's image link
}

ZOOM_CHECK = _number(1, 2)


def flag_problem(name: str, value: str, *, zoom_allowed: bool = False) -> str | None:
    """A sentence for the "Invalid parameter" embed, or None when the flag is fine."""
    if name == "zoom":
        if not zoom_allowed:
            return "Unrecognized parameter(s): `--zoom` (only Custom Zoom accepts it)"
        problem = ZOOM_CHECK(value)
        return f"Invalid value provided for `--zoom`: `{value}` ({problem})" if problem else None
    check = FLAGS.get(name)
    if check is None:
        return f"Unrecognized parameter(s): `--{name}`"
    problem = check(value)
    return f"Invalid value provided for `--{name}`: `{value}` ({problem})" if problem else None
