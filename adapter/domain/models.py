"""The model names we offer and what each means: which bot, which speed."""

from __future__ import annotations

import msgspec

from adapter.domain.actions import Bot, Mode


class ModelSpec(msgspec.Struct, frozen=True):
    id: str
    bot: Bot
    mode: Mode


BASE_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("midjourney", Bot.MIDJOURNEY, Mode.FAST),
    ModelSpec("midjourney-relax", Bot.MIDJOURNEY, Mode.RELAX),
    ModelSpec("midjourney-turbo", Bot.MIDJOURNEY, Mode.TURBO),
    ModelSpec("niji", Bot.NIJI, Mode.FAST),
    ModelSpec("niji-relax", Bot.NIJI, Mode.RELAX),
    ModelSpec("niji-turbo", Bot.NIJI, Mode.TURBO),
)

DEFAULT_MODEL = "midjourney"


class ModelCatalog:
    def __init__(self, aliases: dict[str, str] | None = None) -> None:
        self._base = {m.id: m for m in BASE_MODELS}
        self.aliases = {k: v for k, v in (aliases or {}).items() if v in self._base}

    def resolve(self, name: str | None) -> ModelSpec | None:
        name = (name or DEFAULT_MODEL).strip()
        if name in self._base:
            return self._base[name]
        target = self.aliases.get(name)
        return self._base[target] if target else None

    def names(self) -> list[str]:
        return [*self._base, *self.aliases]
