"""Model names: base names, aliases, default."""

from __future__ import annotations

import pytest

from adapter.domain.actions import Bot, Mode
from adapter.domain.models import BASE_MODELS, DEFAULT_MODEL, ModelCatalog, ModelSpec


@pytest.mark.parametrize(
    ("name", "bot", "mode"),
    [
        ("midjourney", Bot.MIDJOURNEY, Mode.FAST),
        ("midjourney-relax", Bot.MIDJOURNEY, Mode.RELAX),
        ("midjourney-turbo", Bot.MIDJOURNEY, Mode.TURBO),
        ("niji", Bot.NIJI, Mode.FAST),
        ("niji-relax", Bot.NIJI, Mode.RELAX),
        ("niji-turbo", Bot.NIJI, Mode.TURBO),
    ],
)
def test_base_names(name: str, bot: Bot, mode: Mode) -> None:
    assert ModelCatalog().resolve(name) == ModelSpec(name, bot, mode)


def test_none_and_empty_resolve_to_the_default() -> None:
    c = ModelCatalog()
    assert DEFAULT_MODEL == "midjourney"
    assert c.resolve(None) == c.resolve("midjourney")
    assert c.resolve("") == c.resolve("midjourney")


def test_surrounding_spaces_are_ignored() -> None:
    spec = ModelCatalog().resolve("  niji-relax ")
    assert spec is not None and spec.id == "niji-relax"


@pytest.mark.parametrize("name", ["dall-e-3", "Midjourney", "midjourney-fast", "gpt-4o", "niji-", "midjourney "[:-1] + "x"])
def test_unknown_names_resolve_to_none(name: str) -> None:
    assert ModelCatalog().resolve(name) is None


def test_aliases_resolve_to_their_target_spec() -> None:
    c = ModelCatalog({"dall-e-3": "midjourney", "slow": "niji-relax"})
    assert c.resolve("dall-e-3") == c.resolve("midjourney")
    spec = c.resolve("slow")
    assert spec is not None and (spec.id, spec.bot, spec.mode) == ("niji-relax", Bot.NIJI, Mode.RELAX)


def test_alias_to_a_missing_target_is_dropped() -> None:
    c = ModelCatalog({"good": "niji", "bad": "midjourney-v99", "chain": "good"})
    assert c.resolve("bad") is None
    assert c.resolve("chain") is None  # aliases point at base names only
    assert c.aliases == {"good": "niji"}
    assert "bad" not in c.names() and "chain" not in c.names()


def test_names_lists_base_models_then_aliases() -> None:
    c = ModelCatalog({"dall-e-3": "midjourney", "gpt-image-1": "niji"})
    assert c.names() == [m.id for m in BASE_MODELS] + ["dall-e-3", "gpt-image-1"]
    assert ModelCatalog().names() == [m.id for m in BASE_MODELS]


def test_every_listed_name_resolves() -> None:
    c = ModelCatalog({"dall-e-3": "midjourney-relax"})
    for name in c.names():
        assert c.resolve(name) is not None, name
