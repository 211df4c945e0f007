"""Safe by default, replayed against real server processes: a keyless server refuses other sites'
pages and foreign Host names; admin endpoints need an admin key; /readyz tells strangers only
whether it is ready; hosted images are not cached past retention."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ADMIN, ADMIN_KEY, KEY_A, ServerProcess  # noqa: E402

EVIL = "https://evil.example"
CUSTOMER = {"Authorization": f"Bearer {KEY_A}"}
UI = "http://ui.example:3000"


def _server(tmp: Path, env: dict[str, str]) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp, env=env).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _server(tmp_path_factory.mktemp("keyless"), {"MJ_ADAPTER_API_KEYS": "", "MJ_ADAPTER_ADMIN_KEYS": "", "MJ_ADAPTER_RETENTION_DAYS": "2"})


@pytest.fixture(scope="module")
def no_admins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """API keys, but no MJ_ADAPTER_ADMIN_KEYS: a single-tenant install as it used to be."""
    yield from _server(tmp_path_factory.mktemp("no-admins"), {"MJ_ADAPTER_ADMIN_KEYS": ""})


@pytest.fixture(scope="module")
def with_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _server(tmp_path_factory.mktemp("admin"), {"MJ_ADAPTER_CORS_ORIGINS": UI})


def jobs_in_store(server: ServerProcess, headers: dict[str, str] | None = None) -> int:
    """Every job the store holds (the `mj_jobs` gauge counts the store by status)."""
    text = httpx.get(server.base + "/metrics", headers=headers or {}, timeout=10).text
    return sum(int(float(m)) for m in re.findall(r"^mj_jobs\{[^}]*\} (\S+)$", text, flags=re.M))


def acao(r: httpx.Response) -> str | None:
    return r.headers.get("access-control-allow-origin")


def cors_headers(r: httpx.Response) -> list[str]:
    return [k for k in r.headers if k.lower().startswith("access-control-")]


# --- keyless: only this machine ---------------------------------------------------------------


def test_keyless_drive_by_from_another_site_is_refused_and_starts_nothing(keyless: ServerProcess) -> None:
    before = jobs_in_store(keyless)
    # the probe's request: a "simple" CORS request, so no preflight would have stopped it
    r = httpx.post(
        keyless.v1 + "/images/generations",
        content=b'{"model": "midjourney", "prompt": "spend their hours"}',
        headers={"Origin": EVIL, "Content-Type": "text/plain"},
        timeout=30,
    )
    assert r.status_code == 403
    assert r.json() == {
        "error": {"message": r.json()["error"]["message"], "type": "permission_error", "param": None, "code": "cross_origin_refused"}
    }
    message = r.json()["error"]["message"]
    assert "no API keys" in message and "this machine" in message and "MJ_ADAPTER_API_KEYS" in message
    assert cors_headers(r) == []

    mj = httpx.post(keyless.base + "/mj/submit/imagine", content=b'{"prompt": "spend their hours"}', headers={"Origin": EVIL, "Content-Type": "text/plain"}, timeout=30)
    assert mj.status_code == 403
    body = mj.json()
    assert body["code"] == 4 and body["result"] is None and body["properties"] == {} and "MJ_ADAPTER_API_KEYS" in body["description"]
    assert cors_headers(mj) == []
    relax = httpx.post(keyless.base + "/mj-relax/mj/submit/imagine", json={"prompt": "spend their hours"}, headers={"Origin": EVIL}, timeout=30)
    assert relax.status_code == 403 and relax.json()["code"] == 4

    # a cross-site request without Origin (Sec-Fetch-Site tells) and a rebinding page's Host
    assert httpx.post(keyless.v1 + "/images/generations", json={"prompt": "x"}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=30).status_code == 403
    rebound = httpx.post(keyless.v1 + "/images/generations", json={"prompt": "x"}, headers={"Host": "evil.example:8080"}, timeout=30)
    assert rebound.status_code == 403 and "DNS rebinding" in rebound.json()["error"]["message"]
    assert httpx.get(keyless.base + "/mj/task/list", headers={"Host": "evil.example"}, timeout=10).json()["code"] == 4

    # the preflight a foreign page would send first gets no CORS either
    pre = httpx.options(keyless.v1 + "/images/generations", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}, timeout=10)
    assert acao(pre) is None and cors_headers(pre) == [] and pre.status_code == 403

    assert jobs_in_store(keyless) == before


def test_keyless_pages_on_this_machine_work_with_cors(keyless: ServerProcess) -> None:
    origin = "http://localhost:5173"
    pre = httpx.options(keyless.v1 + "/images/generations", headers={"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}, timeout=10)
    assert pre.status_code == 204 and acao(pre) == origin and "POST" in pre.headers["access-control-allow-methods"]
    before = jobs_in_store(keyless)
    r = httpx.post(keyless.v1 + "/images/generations", json={"prompt": "a local ui", "n": 1}, headers={"Origin": origin}, timeout=60)
    assert r.status_code == 200, r.text
    assert acao(r) == origin
    assert jobs_in_store(keyless) == before + 1
    # our image files: embeddable anywhere, and with retention (2 days) never cached past it
    url = r.json()["data"][0]["url"]
    img = httpx.get(url, headers={"Origin": EVIL, "Host": "evil.example", "Sec-Fetch-Site": "cross-site"}, timeout=10)
    assert img.status_code == 200 and img.headers["content-type"].startswith("image/")
    cache = img.headers["cache-control"]
    m = re.fullmatch(r"public, max-age=(\d+)", cache)
    assert m and 2 * 86400 - 600 < int(m.group(1)) <= 2 * 86400, cache
    assert httpx.get(keyless.base + "/healthz", headers={"Host": "evil.example"}, timeout=10).status_code == 200
    assert httpx.get(f"http://localhost:{keyless.port}/v1/models", headers={"Origin": f"http://[::1]:{keyless.port}"}, timeout=10).status_code == 200


def test_keyless_the_local_caller_is_the_operator(keyless: ServerProcess) -> None:
    assert httpx.get(keyless.v1 + "/accounts", timeout=10).status_code == 200
    assert httpx.get(keyless.base + "/metrics", timeout=10).status_code == 200
    ready = httpx.get(keyless.base + "/readyz", timeout=10).json()
    assert ready["ready"] is True and {a["id"] for a in ready["accounts"]} == {"demo-1", "demo-2"} and ready["simulator_url"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_ADAPTER_") and k != "OPENAI_API_KEY"}
    cli = subprocess.run([sys.executable, "-m", "adapter", "accounts", "--base-url", keyless.v1], env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "demo-1" in cli.stdout, cli.stderr


# --- keys without ADMIN_KEYS: no key is an admin -------------------------------------------------


def test_customer_keys_cannot_touch_the_accounts(no_admins: ServerProcess) -> None:
    listed = httpx.get(no_admins.v1 + "/accounts", headers=CUSTOMER, timeout=10)
    assert listed.status_code == 403
    err = listed.json()["error"]
    assert err["type"] == "permission_error" and err["code"] == "admin_key_required" and "MJ_ADAPTER_ADMIN_KEYS" in err["message"]
    paused = httpx.post(no_admins.v1 + "/accounts/demo-1/pause", json={"reason": "mine now"}, headers=CUSTOMER, timeout=10)
    assert paused.status_code == 403 and paused.json()["error"]["code"] == "admin_key_required"
    assert httpx.post(no_admins.v1 + "/accounts/demo-1/resume", headers=CUSTOMER, timeout=10).status_code == 403
    assert httpx.post(no_admins.v1 + "/accounts/demo-2/pause", headers=CUSTOMER, timeout=10).status_code == 403
    assert httpx.get(no_admins.v1 + "/accounts", timeout=10).status_code == 401
    # nobody here may list the accounts, so the proof that both still run is that work still flows:
    # had the two pauses taken, this would be 503 no_account_available
    done = httpx.post(no_admins.v1 + "/images/generations", json={"prompt": "still running", "n": 1}, headers=CUSTOMER, timeout=60)
    assert done.status_code == 200, done.text
    assert httpx.get(no_admins.base + "/readyz", headers=CUSTOMER, timeout=10).json() == {"ready": True}


def test_with_keys_metrics_and_readyz_details_need_an_admin(no_admins: ServerProcess) -> None:
    anonymous = httpx.get(no_admins.base + "/metrics", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
    customer = httpx.get(no_admins.base + "/metrics", headers=CUSTOMER, timeout=10)
    assert customer.status_code == 403 and customer.json()["error"]["code"] == "admin_key_required"
    ready = httpx.get(no_admins.base + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json() == {"ready": True}


def test_with_keys_cors_defaults_to_any_origin_and_images_cache_for_good(no_admins: ServerProcess) -> None:
    # with keys the browser rules do not apply: a page still needs a key, which it has not
    r = httpx.post(no_admins.v1 + "/images/generations", json={"prompt": "x"}, headers={"Origin": EVIL, "Host": "evil.example"}, timeout=10)
    assert r.status_code == 401 and acao(r) == "*"
    done = httpx.post(no_admins.v1 + "/images/generations", json={"prompt": "kept for good", "n": 1}, headers=CUSTOMER, timeout=60)
    assert done.status_code == 200, done.text
    img = httpx.get(done.json()["data"][0]["url"], timeout=10)
    assert img.status_code == 200 and img.headers["cache-control"] == "public, max-age=31536000, immutable"


# --- an admin key ------------------------------------------------------------------------------


def test_admin_key_sees_and_controls_the_accounts(with_admin: ServerProcess) -> None:
    r = httpx.post(with_admin.v1 + "/accounts/demo-1/pause", headers=ADMIN, timeout=10)  # empty body: the default reason
    assert r.status_code == 200
    states = {a["id"]: a for a in r.json()}
    assert states["demo-1"]["state"] == "paused" and states["demo-1"]["reason"] == "paused by an operator"
    # a customer key is refused and leaves the account as it is
    assert httpx.post(with_admin.v1 + "/accounts/demo-1/resume", headers=CUSTOMER, timeout=10).status_code == 403
    listed = {a["id"]: a for a in httpx.get(with_admin.v1 + "/accounts", headers=ADMIN, timeout=10).json()}
    assert listed["demo-1"]["state"] == "paused" and listed["demo-2"]["state"] == "ready"
    resumed = httpx.post(with_admin.v1 + "/accounts/demo-1/resume", headers=ADMIN, timeout=10)
    assert resumed.status_code == 200 and {a["id"]: a["state"] for a in resumed.json()}["demo-1"] == "ready"


def test_customer_pause_leaves_the_account_running(with_admin: ServerProcess) -> None:
    assert httpx.post(with_admin.v1 + "/accounts/demo-2/pause", json={"reason": "x"}, headers=CUSTOMER, timeout=10).status_code == 403
    listed = {a["id"]: a["state"] for a in httpx.get(with_admin.v1 + "/accounts", headers=ADMIN, timeout=10).json()}
    assert listed == {"demo-1": "ready", "demo-2": "ready"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"reason": 5}', "reason"),
        (b'{"reason": null}', "reason"),
        (b'{"reason": "' + b"x" * 201 + b'"}', "reason"),
        (b'{"reason": "line\\nbreak"}', "reason"),
        (b'{"reason": "esc\\u001b[31m"}', "reason"),
        (b'{"reason": "\\u202etxt.exe"}', "reason"),
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'"captcha"', None),
    ],
)
def test_malformed_pause_bodies_are_400(with_admin: ServerProcess, body: bytes, param: str | None) -> None:
    r = httpx.post(with_admin.v1 + "/accounts/demo-1/pause", content=body, headers={**ADMIN, "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param
    assert {a["id"]: a["state"] for a in httpx.get(with_admin.v1 + "/accounts", headers=ADMIN, timeout=10).json()}["demo-1"] == "ready"


def test_admin_metrics_and_full_readyz(with_admin: ServerProcess) -> None:
    m = httpx.get(with_admin.base + "/metrics", headers=ADMIN, timeout=10)
    assert m.status_code == 200 and "mj_account_up" in m.text
    assert httpx.get(with_admin.base + "/metrics", headers=CUSTOMER, timeout=10).status_code == 403
    full = httpx.get(with_admin.base + "/readyz", headers=ADMIN, timeout=10).json()
    assert full["ready"] is True and full["demo"] is True and len(full["accounts"]) == 2 and full["simulator_url"].startswith("http://127.0.0.1:")
    assert httpx.get(with_admin.base + "/readyz", headers={"Authorization": "Bearer sk-nope"}, timeout=10).json() == {"ready": True}


def test_cors_origins_setting(with_admin: ServerProcess) -> None:
    ours = httpx.get(with_admin.v1 + "/models", headers={**CUSTOMER, "Origin": UI}, timeout=10)
    assert ours.status_code == 200 and acao(ours) == UI
    theirs = httpx.get(with_admin.v1 + "/models", headers={**CUSTOMER, "Origin": EVIL}, timeout=10)
    assert acao(theirs) is None
    pre = httpx.options(with_admin.v1 + "/images/generations", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}, timeout=10)
    assert acao(pre) is None


def test_cli_takes_the_admin_key(with_admin: ServerProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_ADAPTER_") and k != "OPENAI_API_KEY"}
    ok = subprocess.run(
        [sys.executable, "-m", "adapter", "accounts", "pause", "demo-2", "--reason", "cli", "--base-url", with_admin.v1, "--admin-key", ADMIN_KEY],
        env=env, capture_output=True, text=True, timeout=60,
    )
    try:
        assert ok.returncode == 0, ok.stderr
        assert "paused" in next(line for line in ok.stdout.splitlines() if line.startswith("demo-2"))
    finally:
        httpx.post(with_admin.v1 + "/accounts/demo-2/resume", headers=ADMIN, timeout=10)


@pytest.mark.parametrize(
    ("path", "body", "shape"),
    [
        ("/v1/api/trigger/imagine", {"prompt": "a cat"}, {"code", "message"}),
        ("/midjourney/imagine", {"prompt": "a cat", "async": True}, {"success", "error", "trace_id"}),
    ],
)
def test_keyless_refusals_in_the_newer_doors_own_format(keyless: ServerProcess, path: str, body: dict[str, object], shape: set[str]) -> None:
    r = httpx.post(keyless.base + path, json=body, headers={"Origin": "https://evil.example", "Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 403, r.text
    assert set(r.json()) >= shape and "access-control-allow-origin" not in r.headers, r.text
