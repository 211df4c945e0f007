"""The MCP server (official `mcp` SDK): the tools, their descriptions for a model, and how they
run. Two runners behind the same tools:

- `LocalRunner` (the /mcp endpoint of `mj-adapter serve`): the tools over the engine (tools.py),
  the owner from the request's `Authorization: Bearer` key through the same KeyRing as /v1.
- `RemoteRunner` (`mj-adapter mcp`, stdio for desktop agents): every call is forwarded to a
  running adapter's /mcp endpoint with the configured key, its progress notifications relayed.
  The tools therefore behave exactly as over HTTP, and the stdio process holds no state.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal, Protocol

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent
from pydantic import Field

from adapter.api.common.auth import KeyRing, bearer
from adapter.api.mcp.tools import McpTools, ToolFailure, ToolOutput

INSTRUCTIONS = (
    "Midjourney image generation. `imagine` makes a 2x2 grid of four images from a prompt; "
    "`act` presses a button of a finished job (U1-U4 upscale one image of a grid, V1-V4 vary it, "
    "reroll; on an upscaled single image: vary subtle / vary strong, upscale subtle / creative, "
    "zoom out 2x / 1.5x, pan left/right/up/down). `describe` turns an image into four prompts, "
    "`blend` mixes 2-5 images, `shorten` suggests shorter prompts, `job_status` looks a job up. "
    "A job takes about a minute in fast mode (turbo is quicker, relax can take ten minutes or "
    "more); the tools wait for it and report progress."
)

_WAIT = (
    " Waits for the Midjourney job and reports progress while it runs: about a minute in fast "
    "mode, less in turbo, often 10+ minutes in relax. Returns the job_id, the image URL(s) and the "
    "actions available next, plus a preview of the image."
)

IMAGINE_DOC = (
    "Generate images with Midjourney from a text prompt. The result is a 2x2 grid of four "
    "candidate images (job_id, grid URL and the four image URLs). Next, call `act` with the "
    "job_id and 'U1'-'U4' to upscale one image, 'V1'-'V4' for variations of one, or 'reroll' "
    "for a new grid." + _WAIT
)
ACT_DOC = (
    "Press a button of a finished Midjourney job, named like a user would: on a grid 'U1'-'U4' "
    "(upscale image N into a single image, e.g. 'U2' for the second, images numbered left to right, top to "
    "bottom), 'V1'-'V4' (four variations of image N), 'reroll'; "
    "on an upscaled single image 'vary subtle', 'vary strong', 'upscale subtle', 'upscale "
    "creative', 'zoom out 2x', 'zoom out 1.5x', 'custom zoom 1.3', 'pan left' / 'pan right' / "
    "'pan up' / 'pan down'. The job's `job_status` lists the actions it offers. A remix prompt "
    "may follow a colon ('V2: a red car') or go in `prompt`. Creates a new job." + _WAIT
)
DESCRIBE_DOC = (
    "Ask Midjourney what an image shows: returns four prompts that would make similar images "
    "(use one with `imagine`). Takes an http(s) or data: image URL, e.g. an image URL returned "
    "by another tool. Usually takes well under a minute."
)
BLEND_DOC = "Blend 2 to 5 images (http(s) or data: URLs) into a 2x2 grid of new images; follow up with `act` like an imagine grid." + _WAIT
SHORTEN_DOC = "Analyse a Midjourney prompt: returns up to five shorter prompts that keep its most influential words. Usually takes well under a minute."
STATUS_DOC = (
    "Look a job up without waiting: status (NOT_START, SUBMITTED, IN_PROGRESS, SUCCESS, FAILURE, "
    "CANCEL), progress, prompt, image URLs, describe/shorten results and, once it succeeded, the "
    "actions `act` can press on it."
)

ModeArg = Annotated[
    Literal["fast", "relax", "turbo"] | None,
    Field(description="Midjourney speed: fast (default, ~1 min), turbo (faster, costs more), relax (free with some plans, slow)."),
]
ShowImage = Annotated[bool, Field(description="Also return a small preview of the resulting image as image content.")]


class Runner(Protocol):
    async def call(self, name: str, args: dict[str, Any], ctx: Context) -> CallToolResult: ...


def build_server(runner: Runner) -> MCPServer:
    mcp = MCPServer(name="mj-adapter", instructions=INSTRUCTIONS)

    @mcp.tool(description=IMAGINE_DOC)
    async def imagine(
        prompt: Annotated[str, Field(description="What to picture. Midjourney flags (--ar 16:9, --stylize 200, --niji 6...) may be appended.")],
        ctx: Context,
        aspect_ratio: Annotated[str | None, Field(description="Width:height, e.g. 16:9, 2:3, 1:1 (becomes --ar).")] = None,
        mode: ModeArg = None,
        image_urls: Annotated[list[str] | None, Field(description="Up to 5 image prompt URLs (http(s) or data:) to steer the result.")] = None,
        include_image: ShowImage = True,
    ) -> CallToolResult:
        args = {"prompt": prompt, "aspect_ratio": aspect_ratio, "mode": mode, "image_urls": image_urls, "include_image": include_image}
        return await runner.call("imagine", args, ctx)

    @mcp.tool(description=ACT_DOC)
    async def act(
        job_id: Annotated[str, Field(description="The job to act on (a finished, successful one).")],
        action: Annotated[str, Field(description="The button: U2, V3, reroll, vary strong, zoom out 2x, pan left, ...")],
        ctx: Context,
        prompt: Annotated[str | None, Field(description="Optional remix prompt for variations, vary, pan and custom zoom.")] = None,
        include_image: ShowImage = True,
    ) -> CallToolResult:
        return await runner.call("act", {"job_id": job_id, "action": action, "prompt": prompt, "include_image": include_image}, ctx)

    @mcp.tool(description=DESCRIBE_DOC)
    async def describe(image_url: Annotated[str, Field(description="The image to describe (http(s) or data: URL).")], ctx: Context) -> CallToolResult:
        return await runner.call("describe", {"image_url": image_url}, ctx)

    @mcp.tool(description=BLEND_DOC)
    async def blend(
        image_urls: Annotated[list[str], Field(description="2 to 5 image URLs (http(s) or data:).")],
        ctx: Context,
        dimensions: Annotated[Literal["portrait", "square", "landscape"], Field(description="Shape of the result.")] = "square",
        mode: ModeArg = None,
        include_image: ShowImage = True,
    ) -> CallToolResult:
        return await runner.call("blend", {"image_urls": image_urls, "dimensions": dimensions, "mode": mode, "include_image": include_image}, ctx)

    @mcp.tool(description=SHORTEN_DOC)
    async def shorten(prompt: Annotated[str, Field(description="The prompt to analyse.")], ctx: Context) -> CallToolResult:
        return await runner.call("shorten", {"prompt": prompt}, ctx)

    @mcp.tool(description=STATUS_DOC)
    async def job_status(job_id: Annotated[str, Field(description="A job id returned by another tool.")], ctx: Context) -> CallToolResult:
        return await runner.call("job_status", {"job_id": job_id}, ctx)

    return mcp


def to_result(out: ToolOutput) -> CallToolResult:
    content: list[ContentBlock] = [TextContent(type="text", text=out.text)]
    content += [ImageContent(type="image", data=base64.b64encode(i.data).decode("ascii"), mime_type=i.mime_type) for i in out.images]
    return CallToolResult(content=content)


class LocalRunner:
    """The tools over this process's engine. `tools` and `base` are set by the app's lifespan."""

    def __init__(self, keys: KeyRing, public_base: str | None) -> None:
        self.keys = keys
        self.public_base = public_base
        self.tools: McpTools | None = None

    def owner(self, headers: Mapping[str, str] | None) -> str | None:
        return self.keys.owner(bearer((headers or {}).get("authorization")))

    def _base(self, ctx: Context) -> str:
        if self.public_base:
            return self.public_base
        request = ctx.request_context.request
        url = getattr(request, "url", None)
        if url is not None:
            return f"{url.scheme}://{url.netloc}"
        return "http://127.0.0.1"

    async def call(self, name: str, args: dict[str, Any], ctx: Context) -> CallToolResult:
        owner = self.owner(ctx.headers)
        if owner is None:
            raise ToolError("Invalid API key: send Authorization: Bearer <key>.")
        if self.tools is None:
            raise ToolError("The server is starting or stopping; try again.")
        base = self._base(ctx)

        async def progress(percent: int, message: str) -> None:
            await ctx.report_progress(percent, 100, message)

        t = self.tools
        calls: dict[str, Callable[[], Awaitable[ToolOutput]]] = {
            "imagine": lambda: t.imagine(
                owner, base, args["prompt"], aspect_ratio=args["aspect_ratio"], mode=args["mode"],
                image_urls=args["image_urls"] or (), include_image=args["include_image"], progress=progress,
            ),
            "act": lambda: t.act(owner, base, args["job_id"], args["action"], prompt=args["prompt"], include_image=args["include_image"], progress=progress),
            "describe": lambda: t.describe(owner, base, args["image_url"], progress=progress),
            "blend": lambda: t.blend(
                owner, base, args["image_urls"], dimensions=args["dimensions"], mode=args["mode"], include_image=args["include_image"], progress=progress
            ),
            "shorten": lambda: t.shorten(owner, base, args["prompt"], progress=progress),
            "job_status": lambda: t.job_status(owner, base, args["job_id"]),
        }  # fmt: skip
        try:
            return to_result(await calls[name]())
        except ToolFailure as exc:
            raise ToolError(exc.message) from None


class RemoteRunner:
    """Forwards each call to a running adapter's /mcp endpoint (Streamable HTTP), relaying its
    progress notifications to this server's client."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self.url = url
        self.headers = dict(headers)

    async def call(self, name: str, args: dict[str, Any], ctx: Context) -> CallToolResult:
        import httpx2
        from mcp.client.session import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async def relay(progress: float, total: float | None, message: str | None) -> None:
            await ctx.report_progress(progress, total, message)

        clean = {k: v for k, v in args.items() if v is not None}
        try:
            async with (
                httpx2.AsyncClient(headers=self.headers, timeout=httpx2.Timeout(30.0, read=None)) as http,
                streamable_http_client(self.url, http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await session.call_tool(name, clean, progress_callback=relay)
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - the model reads why the adapter could not be reached
            raise ToolError(f"The mj-adapter server at {self.url} could not be used: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    # anyio wraps transport failures in exception groups
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
