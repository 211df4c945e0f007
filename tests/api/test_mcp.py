"""The MCP front door, end to end: the official `mcp` client SDK against a real server process
(demo mode, simulator at 400x), over Streamable HTTP (/mcp) and over stdio (`mj-adapter mcp`)."""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, ImageContent, TextContent

from tests.api.server_process import KEY_A, KEY_B, ServerProcess

TOOLS = {"imagine", "act", "describe", "blend", "shorten", "job_status"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("mcp")).start()
    yield s
    s.stop()


@asynccontextmanager
async def http_session(server: ServerProcess, key: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        streamable_http_client(server.base + "/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def job_id_of(result: CallToolResult) -> str:
    m = re.search(r"^job_id: (\S+)$", text_of(result), re.M)
    assert m, text_of(result)
    return m[1]


def v1_job(server: ServerProcess, job_id: str, key: str) -> httpx.Response:
    return httpx.get(f"{server.v1}/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10)


async def test_lists_the_tools_with_descriptions(server: ServerProcess) -> None:
    async with http_session(server, KEY_A) as session:
        tools = (await session.list_tools()).tools
    by_name = {t.name: t for t in tools}
    assert set(by_name) == TOOLS
    assert "minute" in (by_name["imagine"].description or "")
    assert "U2" in (by_name["act"].description or "") and "pan left" in (by_name["act"].description or "")
    assert set(by_name["imagine"].input_schema["properties"]) >= {"prompt", "aspect_ratio", "mode", "image_urls"}


async def test_imagine_upscale_describe_and_status(server: ServerProcess) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with http_session(server, KEY_A) as session:
        grid = await session.call_tool("imagine", {"prompt": "a lighthouse at dawn", "aspect_ratio": "16:9"}, progress_callback=on_progress)
        assert not grid.is_error, text_of(grid)
        assert seen, "no progress notifications"
        assert seen[-1] == (100, 100)
        assert all(total == 100 for _, total in seen)
        text = text_of(grid)
        assert "--ar 16:9" in text and "2x2 grid" in text and "U2" in text
        assert len(re.findall(r"^  \d\. http://127\.0\.0\.1:\d+/images/\S+$", text, re.M)) == 4
        images = [c for c in grid.content if isinstance(c, ImageContent)]
        assert len(images) == 1 and images[0].mime_type == "image/webp"
        assert base64.b64decode(images[0].data)[8:12] == b"WEBP"
        grid_id = job_id_of(grid)

        single = await session.call_tool("act", {"job_id": grid_id, "action": "U2"})
        assert not single.is_error, text_of(single)
        single_text = text_of(single)
        assert "single image" in single_text and "Vary (Strong)" in single_text
        single_id = job_id_of(single)
        assert single_id != grid_id

        # U2 again on the upscale: not a button of a single image, explained to the model
        refused = await session.call_tool("act", {"job_id": single_id, "action": "U2"})
        assert refused.is_error and "single image" in text_of(refused)

        url = re.search(r"^image_url: (\S+)$", single_text, re.M)
        assert url
        described = await session.call_tool("describe", {"image_url": url[1]})
        assert not described.is_error, text_of(described)
        assert len(re.findall(r"^  \d\. .+", text_of(described), re.M)) >= 2

        status = await session.call_tool("job_status", {"job_id": single_id})
        assert not status.is_error
        assert "status: SUCCESS" in text_of(status) and "action: upscale" in text_of(status).lower()

    # the same job through /v1, for the same key only
    r = v1_job(server, single_id, KEY_A)
    assert r.status_code == 200 and r.json()["parent_id"] == grid_id and r.json()["index"] == 2
    assert v1_job(server, single_id, KEY_B).status_code == 404


async def test_a_wrong_key_is_refused(server: ServerProcess) -> None:
    r = httpx.post(
        server.base + "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": "Bearer sk-wrong", "Accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert r.status_code == 401
    r = httpx.post(server.base + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10)
    assert r.status_code == 401
    with pytest.raises(BaseException):  # noqa: B017,PT011 - the SDK raises its own (grouped) error
        async with http_session(server, "sk-wrong") as session:
            await session.list_tools()


async def test_another_key_cannot_see_or_act_on_a_job(server: ServerProcess) -> None:
    async with http_session(server, KEY_A) as a:
        grid = await a.call_tool("imagine", {"prompt": "a red bicycle", "mode": "turbo", "include_image": False})
        assert not grid.is_error, text_of(grid)
        assert not any(isinstance(c, ImageContent) for c in grid.content)
        grid_id = job_id_of(grid)
    async with http_session(server, KEY_B) as b:
        acted = await b.call_tool("act", {"job_id": grid_id, "action": "U1"})
        assert acted.is_error and "No job" in text_of(acted)
        looked = await b.call_tool("job_status", {"job_id": grid_id})
        assert looked.is_error
    assert v1_job(server, grid_id, KEY_A).json()["mode"] == "turbo"


async def test_bad_arguments_are_tool_errors(server: ServerProcess) -> None:
    async with http_session(server, KEY_A) as session:
        bad = await session.call_tool("imagine", {"prompt": "a cat", "aspect_ratio": "wide"})
        assert bad.is_error and "aspect_ratio" in text_of(bad)
        few = await session.call_tool("blend", {"image_urls": ["https://example.com/a.png"]})
        assert few.is_error and "2 to 5" in text_of(few)


async def test_stdio_forwards_to_the_running_server(server: ServerProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_ADAPTER_")}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "adapter", "mcp", "--base-url", server.v1, "--api-key", KEY_A], env=env, cwd=str(REPO)
    )
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        assert {t.name for t in (await session.list_tools()).tools} == TOOLS
        grid = await session.call_tool("imagine", {"prompt": "a paper boat"}, progress_callback=on_progress)
        assert not grid.is_error, text_of(grid)
        assert seen and seen[-1] == 100
        assert any(isinstance(c, ImageContent) for c in grid.content)
        grid_id = job_id_of(grid)
    assert v1_job(server, grid_id, KEY_A).json()["status"] == "SUCCESS"
    assert v1_job(server, grid_id, KEY_B).status_code == 404


async def test_stdio_reports_an_unreachable_server(tmp_path: Path) -> None:
    from tests.api.server_process import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_ADAPTER_")}
    base = f"http://127.0.0.1:{free_port()}/v1"
    params = StdioServerParameters(command=sys.executable, args=["-m", "adapter", "mcp", "--base-url", base, "--api-key", KEY_A], env=env, cwd=str(REPO))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool("job_status", {"job_id": "nope"})
    assert result.is_error and "could not be used" in text_of(result)


async def test_keyless_loopback_server_needs_no_key(tmp_path: Path) -> None:
    s = ServerProcess(tmp_path, env={"MJ_ADAPTER_API_KEYS": "", "MJ_ADAPTER_ADMIN_KEYS": ""}).start()
    try:
        async with (
            streamable_http_client(s.base + "/mcp") as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            shortened = await session.call_tool("shorten", {"prompt": "a very very detailed portrait of an old sailor, dramatic light"})
        assert not shortened.is_error, text_of(shortened)
        assert "action: shorten" in text_of(shortened).lower() and "results:" in text_of(shortened)
        # a page of another origin is still refused, as on /v1
        r = httpx.post(s.base + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers={"Origin": "https://evil.example"}, timeout=10)
        assert r.status_code == 403
    finally:
        s.stop()
