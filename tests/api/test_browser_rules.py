"""The keyless server's browser rules (adapter/api/common/browser.py), as a pure function."""

from __future__ import annotations

import pytest

from adapter.api.common.browser import is_loopback_host_header, is_loopback_origin, is_mj_path, judge

LOOPBACK_ORIGINS = [
    "http://127.0.0.1:3000",
    "http://127.0.0.1",
    "https://127.0.0.1:8443",
    "http://127.255.3.4:80",
    "http://localhost",
    "http://localhost:5173",
    "https://localhost",
    "HTTP://LOCALHOST:3000",
    "http://LocalHost",
    "http://[::1]:8080",
    "http://[::1]",
    "http://[0:0:0:0:0:0:0:1]:3000",
    "http://[::ffff:127.0.0.1]:3000",
]

FOREIGN_ORIGINS = [
    "null",
    "",
    "https://evil.example",
    "http://127.0.0.1.evil.example",
    "http://localhost.evil.example",
    "http://evil-localhost",
    "http://127.0.0.1@evil.example",
    "http://localhost@evil.example",
    "http://evil.example#@localhost",
    "http://127.1",  # browsers normalise this; a raw one is not theirs
    "http://2130706433",
    "http://0x7f.0.0.1",
    "http://0177.0.0.1",
    "http://0.0.0.0:8080",
    "http://128.0.0.1",
    "http://10.0.0.1",
    "http://[::2]",
    "http://[::ffff:10.0.0.1]",
    "http://::1",
    "file://",
    "ftp://localhost",
    "ws://localhost:3000",
    "chrome-extension://abcdefghijklmnop",
    "http://localhost:3000/",
    "http://localhost:3000/path",
    "http://localhost:99999",
    "http://localhost:0",
    "http://localhost:",
    "localhost",
    "//localhost",
    "http://localhost evil",
    "http://localhost\n",
    "https://localhost.",
]


@pytest.mark.parametrize("origin", LOOPBACK_ORIGINS)
def test_loopback_origins(origin: str) -> None:
    assert is_loopback_origin(origin)
    assert judge("POST", "/v1/images/generations", {"host": "127.0.0.1:8080", "origin": origin}, keyless=True).allowed


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_foreign_origins_are_refused(origin: str) -> None:
    assert not is_loopback_origin(origin)
    verdict = judge("POST", "/v1/images/generations", {"host": "127.0.0.1:8080", "origin": origin}, keyless=True)
    assert not verdict.allowed
    assert verdict.reason and "no API keys" in verdict.reason and "MJ_ADAPTER_API_KEYS" in verdict.reason


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:8080", "127.9.9.9:1", "localhost", "LOCALHOST:8080", "[::1]", "[::1]:8080"]
)
def test_loopback_host_headers(host: str) -> None:
    assert is_loopback_host_header(host)
    assert judge("GET", "/v1/models", {"host": host}, keyless=True).allowed


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil.example:8080", "::1", "[::1", "0.0.0.0:8080", "192.168.1.5:8080", "127.1:8080", "", "localhost:99999", "user@localhost", " localhost"],
)
def test_other_hosts_are_refused_dns_rebinding(host: str) -> None:
    assert not is_loopback_host_header(host)
    verdict = judge("GET", "/v1/models", {"host": host}, keyless=True)
    assert not verdict.allowed and verdict.reason and "DNS rebinding" in verdict.reason


def test_a_request_without_host_is_refused() -> None:
    assert not judge("GET", "/v1/models", {}, keyless=True).allowed


def test_host_is_checked_even_with_a_loopback_origin() -> None:
    # a rebinding page at http://evil.example:8080 sends Host evil.example; its Origin is foreign too,
    # but the Host alone must be enough
    assert not judge("POST", "/v1/images/generations", {"host": "evil.example:8080", "origin": "http://localhost:8080"}, keyless=True).allowed


@pytest.mark.parametrize("site", ["cross-site", "Cross-Site", " cross-site "])
def test_cross_site_fetch_without_origin_is_refused(site: str) -> None:
    verdict = judge("GET", "/v1/jobs/abc", {"host": "127.0.0.1:8080", "sec-fetch-site": site}, keyless=True)
    assert not verdict.allowed and verdict.reason and "cross-site" in verdict.reason


@pytest.mark.parametrize("site", ["same-origin", "same-site", "none"])
def test_other_fetch_sites_without_origin_pass(site: str) -> None:
    assert judge("GET", "/v1/jobs/abc", {"host": "127.0.0.1:8080", "sec-fetch-site": site}, keyless=True).allowed


def test_a_loopback_origin_wins_over_sec_fetch_site() -> None:
    # localhost:3000 -> 127.0.0.1:8080 is cross-site for the browser, but it is a page on this machine
    headers = {"host": "127.0.0.1:8080", "origin": "http://localhost:3000", "sec-fetch-site": "cross-site"}
    assert judge("POST", "/v1/chat/completions", headers, keyless=True).allowed


def test_plain_clients_pass() -> None:
    assert judge("POST", "/v1/images/generations", {"host": "127.0.0.1:8080"}, keyless=True).allowed


@pytest.mark.parametrize("method", ["GET", "HEAD", "get"])
@pytest.mark.parametrize("path", ["/images/abc/0.png", "/healthz"])
def test_image_files_and_liveness_are_exempt(method: str, path: str) -> None:
    headers = {"host": "evil.example", "origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    assert judge(method, path, headers, keyless=True).allowed


@pytest.mark.parametrize(("method", "path"), [("POST", "/images/abc/0.png"), ("DELETE", "/images/abc/0.png"), ("GET", "/images"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/healthz/x")])
def test_exemption_is_narrow(method: str, path: str) -> None:
    assert not judge(method, path, {"host": "127.0.0.1", "origin": "https://evil.example"}, keyless=True).allowed


def test_with_keys_nothing_is_refused_here() -> None:
    headers = {"host": "evil.example", "origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    assert judge("POST", "/v1/images/generations", headers, keyless=False).allowed


@pytest.mark.parametrize(
    ("path", "mj"),
    [
        ("/mj", True),
        ("/mj/submit/imagine", True),
        ("/mj-fast/mj/submit/imagine", True),
        ("/mj-relax/mj/task/list", True),
        ("/mj-turbo/mj/x", True),
        ("/mjx", False),
        ("/mj-fast/submit", False),
        ("/v1/images/generations", False),
        ("/readyz", False),
    ],
)
def test_mj_paths(path: str, mj: bool) -> None:
    assert is_mj_path(path) is mj
