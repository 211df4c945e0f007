"""Settings: TOML file + MJ_ADAPTER_* environment, errors as ConfigError, secrets never shown."""

from __future__ import annotations

import hashlib
import traceback
from pathlib import Path

import pytest

from adapter.config import (
    ConfigError,
    DiscordAccountConfig,
    ProviderAccountConfig,
    Secret,
    Settings,
    Timeouts,
    key_id,
    load_settings,
)
from adapter.domain.actions import Mode
from adapter.stores.factory import open_store

# Distinctive fake secrets: if any of these shows up in a repr or an error, something leaked.
TOKEN_A = "FAKE-discord-token-AAAA.7f3c91e2b4.qqQ"
TOKEN_B = "FAKE-discord-token-BBBB.0d8e44a1c9.zzZ"
API_KEY_1 = "sk-fake-apikey-one-5b1d9c"
API_KEY_2 = "sk-fake-apikey-two-e02f77"
PROXY_SECRET = "FAKE-mjproxy-secret-91ac"
WEBHOOK_SECRET = "FAKE-webhook-secret-3d3d"
ALL_SECRETS = (TOKEN_A, TOKEN_B, API_KEY_1, API_KEY_2, PROXY_SECRET, WEBHOOK_SECRET)

DISCORD_ENV = {
    "MJ_ADAPTER_DISCORD_TOKEN": TOKEN_A,
    "MJ_ADAPTER_DISCORD_GUILD_ID": "111",
    "MJ_ADAPTER_DISCORD_CHANNEL_ID": "222",
}


def write(tmp_path: Path, text: str, name: str = "mj.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_no_secret(text: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text, f"secret leaked: ...{secret[-6:]}"
        # nor a recognisable chunk of it
        assert secret[5:-3] not in text


def assert_error_hides_secrets(exc: BaseException) -> None:
    # the message, the repr, and the whole formatted chain (causes and contexts included)
    assert_no_secret(str(exc))
    assert_no_secret(repr(exc))
    assert_no_secret("".join(traceback.format_exception(exc)))


def config_error(tmp_path: Path | None = None, toml: str | None = None, env: dict[str, str] | None = None) -> ConfigError:
    path = write(tmp_path, toml) if (tmp_path is not None and toml is not None) else None
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env or {})
    assert_error_hides_secrets(info.value)
    return info.value


# --- defaults and environment -----------------------------------------------------------------


def test_defaults_with_an_empty_environment() -> None:
    s = load_settings(env={})
    assert s.host == "127.0.0.1" and s.port == 8080
    assert s.api_keys == () and s.accounts == ()
    assert s.demo
    assert s.model_aliases == {"dall-e-3": "midjourney", "dall-e-2": "midjourney", "gpt-image-1": "midjourney"}
    assert s.timeouts == Timeouts()


def test_reads_os_environ_when_no_env_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_ADAPTER_PORT", "9123")
    assert load_settings().port == 9123


def test_api_keys_comma_list() -> None:
    s = load_settings(env={"MJ_ADAPTER_API_KEYS": f" {API_KEY_1} ,{API_KEY_2},, "})
    assert [k.reveal() for k in s.api_keys] == [API_KEY_1, API_KEY_2]
    assert all(isinstance(k, Secret) for k in s.api_keys)


def test_scalar_env_values_are_converted() -> None:
    s = load_settings(
        env={
            "MJ_ADAPTER_PORT": "9001",
            "MJ_ADAPTER_HOST": "0.0.0.0",
            "MJ_ADAPTER_SIMULATOR_SPEED": "2.5",
            "MJ_ADAPTER_BANNED_WORDS_REPLACE": "true",
            "MJ_ADAPTER_BANNED_WORDS": "kraken, blood bath",
            "MJ_ADAPTER_FETCH_ALLOW_HOSTS": "10.0.0.0/8,cdn.internal",
            "MJ_ADAPTER_DATA_DIR": "/var/lib/mj",
            "MJ_ADAPTER_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    )
    assert s.port == 9001 and isinstance(s.port, int)
    assert s.host == "0.0.0.0"
    assert s.simulator_speed == 2.5
    assert s.banned_words_replace is True
    assert s.banned_words == ("kraken", "blood bath")
    assert s.fetch_allow_hosts == ("10.0.0.0/8", "cdn.internal")
    assert s.data_dir == Path("/var/lib/mj")
    assert isinstance(s.webhook_secret, Secret) and s.webhook_secret.reveal() == WEBHOOK_SECRET


def test_env_without_the_prefix_or_unknown_names_is_ignored() -> None:
    s = load_settings(env={"PORT": "1", "ADAPTER_PORT": "2", "MJ_ADAPTER_NOT_AN_OPTION": "x"})
    assert s.port == 8080


def test_timeouts_from_env() -> None:
    s = load_settings(env={"MJ_ADAPTER_TIMEOUT_RELAX": "7200", "MJ_ADAPTER_TIMEOUT_FAST": "120.5"})
    assert s.timeouts.relax == 7200.0
    assert s.timeouts.fast == 120.5
    assert s.timeouts.turbo == 600.0
    assert s.timeouts.for_mode(Mode.RELAX) == 7200.0
    assert s.timeouts.for_mode(Mode.FAST) == 120.5
    assert s.timeouts.for_mode(Mode.TURBO) == 600.0


def test_unknown_timeout_is_an_error() -> None:
    err = config_error(env={"MJ_ADAPTER_TIMEOUT_SLOW": "1"})
    assert "slow" in str(err)


def test_model_aliases_pairs_replace_the_defaults() -> None:
    s = load_settings(env={"MJ_ADAPTER_MODEL_ALIASES": "a=midjourney,c=niji-relax"})
    assert s.model_aliases == {"a": "midjourney", "c": "niji-relax"}


def test_model_aliases_tolerate_spaces_and_junk() -> None:
    s = load_settings(env={"MJ_ADAPTER_MODEL_ALIASES": " dall-e-3 = midjourney-relax , nonsense, ,x=niji"})
    assert s.model_aliases == {"dall-e-3": "midjourney-relax", "x": "niji"}


def test_single_discord_account_from_env() -> None:
    s = load_settings(env=DISCORD_ENV)
    assert len(s.accounts) == 1
    acct = s.accounts[0]
    assert isinstance(acct, DiscordAccountConfig)
    assert acct.token.reveal() == TOKEN_A and isinstance(acct.token, Secret)
    assert (acct.guild_id, acct.channel_id) == ("111", "222")
    assert acct.id == "discord-222"
    assert acct.modes == (Mode.FAST, Mode.RELAX)
    assert not s.demo


def test_single_discord_account_options_from_env() -> None:
    s = load_settings(
        env={
            **DISCORD_ENV,
            "MJ_ADAPTER_DISCORD_MODES": "relax, turbo",
            "MJ_ADAPTER_DISCORD_CONCURRENCY": "2",
            "MJ_ADAPTER_DISCORD_QUEUE_SIZE": "4",
            "MJ_ADAPTER_DISCORD_MIN_GAP_SECONDS": "3.5",
            "MJ_ADAPTER_DISCORD_DAILY_CAP": "250",
            "MJ_ADAPTER_DISCORD_USER_AGENT": "Mozilla/5.0 test",
            "MJ_ADAPTER_DISCORD_REST_BASE": "http://127.0.0.1:9/api/v9",
        }
    )
    acct = s.accounts[0]
    assert isinstance(acct, DiscordAccountConfig)
    assert acct.modes == (Mode.RELAX, Mode.TURBO)
    assert (acct.concurrency, acct.queue_size, acct.min_gap_seconds, acct.daily_cap) == (2, 4, 3.5, 250)
    assert acct.user_agent == "Mozilla/5.0 test"
    assert acct.rest_base == "http://127.0.0.1:9/api/v9"


def test_accounts_json_list_from_env() -> None:
    accounts = (
        '[{"token": "%s", "guild_id": "1", "channel_id": "2", "id": "main"},'
        ' {"kind": "mjproxy", "base_url": "http://127.0.0.1:9/", "secret": "%s"}]' % (TOKEN_B, PROXY_SECRET)
    )
    s = load_settings(env={"MJ_ADAPTER_ACCOUNTS": accounts})
    first, second = s.accounts
    assert isinstance(first, DiscordAccountConfig) and first.id == "main" and first.token.reveal() == TOKEN_B
    assert isinstance(second, ProviderAccountConfig)
    assert second.id == "mjproxy-1" and second.secret.reveal() == PROXY_SECRET


def test_accounts_json_and_single_env_account_combine() -> None:
    accounts = '[{"token": "%s", "guild_id": "1", "channel_id": "2"}]' % TOKEN_B
    s = load_settings(env={**DISCORD_ENV, "MJ_ADAPTER_ACCOUNTS": accounts})
    assert [a.id for a in s.accounts] == ["discord-2", "discord-222"]


# --- TOML file --------------------------------------------------------------------------------

TOML = f"""
port = 8181
api_keys = ["{API_KEY_1}"]
public_base_url = "https://mj.example.test"
model_aliases = {{ "dall-e-3" = "niji" }}

[timeouts]
fast = 100

[[accounts]]
token = "{TOKEN_A}"
guild_id = "123"
channel_id = "456"
modes = ["fast", "relax"]
daily_cap = 400

[[accounts]]
kind = "discord"
id = "second"
token = "{TOKEN_B}"
guild_id = "123"
channel_id = "789"
modes = ["relax"]
enabled = false

[[accounts]]
kind = "mjproxy"
base_url = "http://127.0.0.1:9/"
secret = "{PROXY_SECRET}"
"""


def test_toml_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, TOML), env={})
    assert s.port == 8181
    assert [k.reveal() for k in s.api_keys] == [API_KEY_1]
    assert s.public_base_url == "https://mj.example.test"
    assert s.model_aliases == {"dall-e-3": "niji"}
    assert s.timeouts.fast == 100.0 and s.timeouts.relax == 3600.0
    a, b, c = s.accounts
    # `kind` left out -> discord
    assert isinstance(a, DiscordAccountConfig) and a.id == "discord-456" and a.daily_cap == 400
    assert a.token.reveal() == TOKEN_A
    assert isinstance(b, DiscordAccountConfig) and b.id == "second" and b.modes == (Mode.RELAX,) and not b.enabled
    assert isinstance(c, ProviderAccountConfig) and c.id == "mjproxy-2" and c.base_url == "http://127.0.0.1:9/"
    assert c.secret.reveal() == PROXY_SECRET and isinstance(c.secret, Secret)
    assert not s.demo


def test_toml_path_as_str_and_from_config_env(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 8282\n")
    assert load_settings(str(path), env={}).port == 8282
    assert load_settings(env={"MJ_ADAPTER_CONFIG": str(path)}).port == 8282


def test_env_overrides_toml(tmp_path: Path) -> None:
    path = write(tmp_path, TOML)
    s = load_settings(
        path,
        env={
            "MJ_ADAPTER_PORT": "9999",
            "MJ_ADAPTER_API_KEYS": API_KEY_2,
            "MJ_ADAPTER_TIMEOUT_RELAX": "60",
            "MJ_ADAPTER_MODEL_ALIASES": "gpt-image-1=midjourney-turbo",
        },
    )
    assert s.port == 9999
    assert [k.reveal() for k in s.api_keys] == [API_KEY_2]
    # timeouts merge key by key: the file's fast stays, the env's relax wins
    assert (s.timeouts.fast, s.timeouts.relax) == (100.0, 60.0)
    # aliases are one value: the environment's list replaces the file's
    assert s.model_aliases == {"gpt-image-1": "midjourney-turbo"}
    # untouched options keep the file's values
    assert s.public_base_url == "https://mj.example.test"
    assert len(s.accounts) == 3


def test_env_accounts_replace_the_files_accounts(tmp_path: Path) -> None:
    path = write(tmp_path, TOML)
    s = load_settings(path, env=DISCORD_ENV)
    assert [a.id for a in s.accounts] == ["discord-222"]


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["abc", "80.5x", "-1", "65536", "100000"])
def test_bad_port_env(port: str) -> None:
    err = config_error(env={"MJ_ADAPTER_PORT": port})
    assert "port" in str(err)


def test_bad_port_toml(tmp_path: Path) -> None:
    assert "port" in str(config_error(tmp_path, "port = 70000\n"))
    assert "port" in str(config_error(tmp_path, 'port = "http"\n'))


def test_port_bounds_are_accepted() -> None:
    assert load_settings(env={"MJ_ADAPTER_PORT": "0"}).port == 0
    assert load_settings(env={"MJ_ADAPTER_PORT": "65535"}).port == 65535


def test_env_account_without_channel() -> None:
    env = {k: v for k, v in DISCORD_ENV.items() if k != "MJ_ADAPTER_DISCORD_CHANNEL_ID"}
    err = config_error(env=env)
    assert "channel_id is required" in str(err)


def test_an_account_without_guild_lives_in_its_dm_channel(tmp_path: Path) -> None:
    """No guild_id: channel_id is the account's DM channel with the Midjourney bot."""
    env = {k: v for k, v in DISCORD_ENV.items() if k != "MJ_ADAPTER_DISCORD_GUILD_ID"}
    (acct,) = load_settings(env=env).accounts
    assert isinstance(acct, DiscordAccountConfig) and acct.guild_id == "" and acct.channel_id
    path = tmp_path / "dm.toml"
    path.write_text(f'[[accounts]]\ntoken = "{TOKEN_A}"\nchannel_id = "1"\ndm_channel_id = "9"\n', encoding="utf-8")
    (acct,) = load_settings(path, env={}).accounts
    assert isinstance(acct, DiscordAccountConfig) and (acct.guild_id, acct.channel_id, acct.dm_channel_id) == ("", "1", "9")


def test_toml_account_with_empty_channel(tmp_path: Path) -> None:
    err = config_error(tmp_path, f'[[accounts]]\ntoken = "{TOKEN_A}"\nguild_id = "1"\nchannel_id = ""\n')
    assert "account 0" in str(err) and "channel_id" in str(err)


def test_duplicate_default_account_ids(tmp_path: Path) -> None:
    toml = f"""
[[accounts]]
token = "{TOKEN_A}"
guild_id = "1"
channel_id = "5"
[[accounts]]
token = "{TOKEN_B}"
guild_id = "2"
channel_id = "5"
"""
    err = config_error(tmp_path, toml)
    assert "'discord-5' is used twice" in str(err)


def test_duplicate_explicit_account_ids(tmp_path: Path) -> None:
    toml = f"""
[[accounts]]
id = "same"
token = "{TOKEN_A}"
guild_id = "1"
channel_id = "5"
[[accounts]]
id = "same"
kind = "mjproxy"
base_url = "http://127.0.0.1:9/"
secret = "{PROXY_SECRET}"
"""
    assert "'same' is used twice" in str(config_error(tmp_path, toml))


def test_unknown_top_level_field(tmp_path: Path) -> None:
    err = config_error(tmp_path, f'api_keys = ["{API_KEY_1}"]\nprot = 1\n')
    assert "prot" in str(err)


def test_unknown_account_field(tmp_path: Path) -> None:
    err = config_error(tmp_path, f'[[accounts]]\ntoken = "{TOKEN_A}"\nguild_id = "1"\nchannel_id = "2"\ntokn = "{TOKEN_B}"\n')
    assert "tokn" in str(err) and "accounts[0]" in str(err)


def test_unknown_account_kind(tmp_path: Path) -> None:
    err = config_error(tmp_path, f'[[accounts]]\nkind = "telegram"\ntoken = "{TOKEN_A}"\n')
    assert "kind" in str(err)


def test_token_of_the_wrong_type_names_the_field(tmp_path: Path) -> None:
    err = config_error(tmp_path, '[[accounts]]\ntoken = 12345\nguild_id = "1"\nchannel_id = "2"\n')
    assert "accounts[0].token" in str(err)


def test_bad_concurrency(tmp_path: Path) -> None:
    err = config_error(tmp_path, f'[[accounts]]\ntoken = "{TOKEN_A}"\nguild_id = "1"\nchannel_id = "2"\nconcurrency = 0\n')
    assert "concurrency" in str(err)


def test_bad_mode(tmp_path: Path) -> None:
    err = config_error(tmp_path, f'[[accounts]]\ntoken = "{TOKEN_A}"\nguild_id = "1"\nchannel_id = "2"\nmodes = ["slow"]\n')
    assert "modes" in str(err)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="config file not found") as info:
        load_settings(missing, env={})
    assert str(missing) in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        f'token = "{TOKEN_A}\n',  # unterminated string
        f"token = {TOKEN_A}\n",  # bare word
        f'[[accounts]]\ntoken = "{TOKEN_A}" guild_id = "1"\n',
        f'api_keys = ["{API_KEY_1}",\n',
    ],
    ids=["unterminated-string", "bare-word", "two-statements-on-a-line", "unclosed-array"],
)
def test_bad_toml(tmp_path: Path, text: str) -> None:
    err = config_error(tmp_path, text)
    assert "not valid TOML" in str(err)


@pytest.mark.parametrize(
    "value",
    [
        '[{"token": "%s", "guild_id": "1"' % TOKEN_A,  # truncated
        "[{'token': '%s'}]" % TOKEN_A,  # single quotes
        "not json %s" % TOKEN_A,
    ],
    ids=["truncated", "single-quotes", "not-json"],
)
def test_bad_accounts_json_is_a_config_error(value: str) -> None:
    err = config_error(env={"MJ_ADAPTER_ACCOUNTS": value})
    assert "MJ_ADAPTER_ACCOUNTS" in str(err)


def test_accounts_json_that_is_not_a_list() -> None:
    config_error(env={"MJ_ADAPTER_ACCOUNTS": '{"token": "%s"}' % TOKEN_A})


# --- secrets never shown ----------------------------------------------------------------------


def _full_settings(tmp_path: Path) -> Settings:
    return load_settings(
        write(tmp_path, TOML),
        env={"MJ_ADAPTER_API_KEYS": f"{API_KEY_1},{API_KEY_2}", "MJ_ADAPTER_WEBHOOK_SECRET": WEBHOOK_SECRET},
    )


def test_settings_repr_and_str_hide_every_secret(tmp_path: Path) -> None:
    s = _full_settings(tmp_path)
    # the secrets really are loaded...
    assert {k.reveal() for k in s.api_keys} == {API_KEY_1, API_KEY_2}
    assert s.webhook_secret.reveal() == WEBHOOK_SECRET
    # ...and no rendering of the settings shows them
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr(s.accounts), repr(s.api_keys), repr(list(s.api_keys))):
        assert_no_secret(text)
    for acct in s.accounts:
        assert_no_secret(repr(acct))
        assert_no_secret(str(acct))
    assert "Secret('***')" in repr(s)


def test_secret_repr_and_fingerprint() -> None:
    secret = Secret(TOKEN_A)
    assert repr(secret) == "Secret('***')"
    assert repr(Secret("")) == "Secret('')"
    assert TOKEN_A not in repr([secret, {"k": secret}, (secret,)])
    fp = secret.fingerprint
    assert len(fp) == 12 and all(c in "0123456789abcdef" for c in fp)
    assert fp == Secret(TOKEN_A).fingerprint  # stable
    assert fp != Secret(TOKEN_B).fingerprint
    assert fp not in TOKEN_A and TOKEN_A[:6] not in fp
    assert fp == hashlib.sha256(TOKEN_A.encode()).hexdigest()[:12]


def test_secret_reveal_is_a_plain_str_and_compares_as_str() -> None:
    secret = Secret(API_KEY_1)
    revealed = secret.reveal()
    assert type(revealed) is str and revealed == API_KEY_1
    assert secret == API_KEY_1  # usable wherever the code compares strings


def test_key_id_is_stable_and_not_the_key() -> None:
    kid = key_id(API_KEY_1)
    assert kid == key_id(API_KEY_1)
    assert kid.startswith("key_") and len(kid) == 4 + 16
    assert API_KEY_1 not in kid
    assert key_id(API_KEY_2) != kid
    # jobs are stored under this id: it must not change between releases
    assert key_id("sk-test") == "key_" + hashlib.sha256(b"sk-test").hexdigest()[:16]
    assert key_id("sk-test") == "key_f3abf2a6cc4f0098"


# --- derived values ---------------------------------------------------------------------------


def test_demo_means_no_enabled_account(tmp_path: Path) -> None:
    assert load_settings(env={}).demo
    disabled = load_settings(write(tmp_path, f'[[accounts]]\ntoken = "{TOKEN_A}"\nguild_id = "1"\nchannel_id = "2"\nenabled = false\n'), env={})
    assert len(disabled.accounts) == 1 and disabled.demo
    assert not load_settings(env=DISCORD_ENV).demo
    proxy = load_settings(env={"MJ_ADAPTER_ACCOUNTS": '[{"kind": "mjproxy", "base_url": "http://127.0.0.1:9/"}]'})
    assert not proxy.demo


def test_resolved_store_url_explicit() -> None:
    s = load_settings(env={"MJ_ADAPTER_STORE_URL": "redis://127.0.0.1:6379/0?prefix=mj"})
    assert s.resolved_store_url() == "redis://127.0.0.1:6379/0?prefix=mj"


def test_resolved_store_url_default_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    s = load_settings(env={"MJ_ADAPTER_DATA_DIR": str(tmp_path / "d")})
    url = s.resolved_store_url()
    expected_path = (tmp_path / "d" / "jobs.db").resolve()
    # sqlite:///<absolute path>, as README and the store factory spell it
    assert url == f"sqlite://{expected_path}"
    assert url.startswith("sqlite:///") and not url.startswith("sqlite:////")


def test_resolved_store_url_relative_data_dir_becomes_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    url = load_settings(env={"MJ_ADAPTER_DATA_DIR": "rel"}).resolved_store_url()
    assert url == f"sqlite://{(tmp_path / 'rel' / 'jobs.db').resolve()}"


def test_resolved_store_url_opens_at_the_data_dir(tmp_path: Path) -> None:
    s = load_settings(env={"MJ_ADAPTER_DATA_DIR": str(tmp_path)})
    store = open_store(s.resolved_store_url())
    # the factory reads back the very path we meant (not "//...")
    assert getattr(store, "path") == str((tmp_path / "jobs.db").resolve())
