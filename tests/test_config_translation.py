"""The prompt translation settings: off by default, from the environment or TOML, the key a
Secret, bad values refused without echoing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.config import ConfigError, Secret, load_settings

KEY = "sk-fake-translator-key-7c21"


def test_off_by_default() -> None:
    s = load_settings(env={})
    assert s.translate_base_url is None and s.translate_api_key == "" and s.translate_timeout_seconds == 20.0


def test_from_the_environment() -> None:
    s = load_settings(
        env={
            "MJ_ADAPTER_TRANSLATE_BASE_URL": " https://api.deepseek.com/v1 ",
            "MJ_ADAPTER_TRANSLATE_MODEL": "deepseek-chat",
            "MJ_ADAPTER_TRANSLATE_API_KEY": KEY,
            "MJ_ADAPTER_TRANSLATE_TIMEOUT_SECONDS": "7.5",
        }
    )
    assert s.translate_base_url == "https://api.deepseek.com/v1" and s.translate_model == "deepseek-chat"
    assert isinstance(s.translate_api_key, Secret) and s.translate_api_key.reveal() == KEY
    assert s.translate_timeout_seconds == 7.5
    assert KEY not in repr(s)


def test_from_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'translate_base_url = "http://127.0.0.1:11434/v1"\ntranslate_model = "qwen2.5"\ntranslate_api_key = "{KEY}"\n')
    s = load_settings(cfg, env={})
    assert s.translate_base_url == "http://127.0.0.1:11434/v1" and s.translate_model == "qwen2.5"
    assert KEY not in repr(s)


def test_an_empty_base_url_means_off() -> None:
    assert load_settings(env={"MJ_ADAPTER_TRANSLATE_BASE_URL": "  "}).translate_base_url is None


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MJ_ADAPTER_TRANSLATE_BASE_URL": f"ftp://{KEY}@llm.example.com/v1"}, "translate_base_url must be an http"),
        ({"MJ_ADAPTER_TRANSLATE_BASE_URL": "https://llm.example.com/v1", "MJ_ADAPTER_TRANSLATE_MODEL": " "}, "translate_model"),
        ({"MJ_ADAPTER_TRANSLATE_TIMEOUT_SECONDS": "0"}, "translate_timeout_seconds must be a positive number"),
        ({"MJ_ADAPTER_TRANSLATE_TIMEOUT_SECONDS": "nan"}, "translate_timeout_seconds must be a positive number"),
    ],
)
def test_bad_values_are_refused_without_echoing_them(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert says in str(err.value) and KEY not in str(err.value)
