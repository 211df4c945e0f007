"""Every setting is documented in the README's configuration reference."""

from pathlib import Path

import msgspec

from adapter.config import DiscordAccountConfig, ProviderAccountConfig, Settings, Timeouts

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    names = [f.name for f in msgspec.structs.fields(Settings) if f.name not in ("timeouts", "accounts")]
    names += [f"timeout_{f.name}" for f in msgspec.structs.fields(Timeouts)]
    missing = [n for n in names if f"`{n.upper()}`" not in README]
    assert not missing, f"document these in README.md (Configuration): {missing}"


def test_every_account_field_is_in_the_readme() -> None:
    fields = {f.name for f in msgspec.structs.fields(DiscordAccountConfig)} | {f.name for f in msgspec.structs.fields(ProviderAccountConfig)}
    missing = sorted(n for n in fields if f"`{n}`" not in README and f"{n} =" not in README)
    assert not missing, f"document these account fields in README.md: {missing}"
