"""ImageFetcher against real loopback HTTP servers (and a recording mock transport where the point
is that no connection may be made at all)."""

from __future__ import annotations

import base64
import gzip
import socket
import ssl

import httpx
import pytest

from adapter.media.fetch import (
    FetchedImage,
    FetchError,
    FetchPolicy,
    ImageFetcher,
    decode_data_url,
    sniff_image,
)

from .conftest import LoopbackServer, TlsFiles, make_image

LOOPBACK_OK = FetchPolicy(allow_hosts=("127.0.0.1",), timeout=5.0)


def fixed_resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "not found")
        return table[host]

    return resolve


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self, body: bytes = b"", status: int = 200) -> None:
        self.requests: list[httpx.Request] = []
        self.body = body
        self.status = status

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, content=self.body, headers={"content-type": "image/png"})


async def expect_error(fetcher: ImageFetcher, url: str, code: str) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(url)
    assert info.value.code == code, (info.value.code, info.value.message)
    return info.value


# -- the happy path and the private-address rule ---------------------------------------------------


async def test_fetch_png_from_allowed_loopback(server: LoopbackServer) -> None:
    png = make_image("PNG", (8, 6))
    url = server.route("/a.png", body=png, headers={"Content-Type": "application/octet-stream"})
    async with ImageFetcher(LOOPBACK_OK) as fetcher:
        got = await fetcher.fetch(url)
    assert isinstance(got, FetchedImage)
    assert got.data == png
    # sniffed, not taken from the (wrong) Content-Type
    assert (got.format, got.content_type, got.width, got.height) == ("png", "image/png", 8, 6)
    assert got.url == url
    assert server.requests[0].headers["host"] == f"127.0.0.1:{server.port}"


async def test_loopback_refused_by_default_without_connecting(server: LoopbackServer) -> None:
    url = server.route("/a.png", body=make_image())
    async with ImageFetcher(FetchPolicy(timeout=5.0)) as fetcher:
        err = await expect_error(fetcher, url, "forbidden_address")
        await expect_error(fetcher, f"http://localhost:{server.port}/a.png", "forbidden_address")
        # numeric spellings resolve to loopback too, and are judged by what they resolve to
        await expect_error(fetcher, f"http://127.1:{server.port}/a.png", "forbidden_address")
        await expect_error(fetcher, f"http://[::1]:{server.port}/a.png", "forbidden_address")
    assert server.requests == []
    assert "127.0.0.1" not in err.message


async def test_cidr_and_host_name_exemptions(server: LoopbackServer) -> None:
    url_path = "/a.png"
    server.route(url_path, body=make_image())
    async with ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.0/8",), timeout=5.0)) as fetcher:
        assert (await fetcher.fetch(server.url(url_path))).width == 8
    resolver = fixed_resolver({"cdn.local.test": ["127.0.0.1"]})
    policy = FetchPolicy(allow_hosts=(".local.test",), timeout=5.0)
    async with ImageFetcher(policy, resolver=resolver) as fetcher:
        got = await fetcher.fetch(f"http://cdn.local.test:{server.port}{url_path}")
    assert got.width == 8
    assert server.requests[-1].headers["host"] == f"cdn.local.test:{server.port}"


@pytest.mark.parametrize(
    "answer",
    [
        ["10.0.0.1"],
        ["169.254.169.254"],
        ["::1"],
        ["::ffff:127.0.0.1"],
        ["100.64.1.2"],
        ["0.0.0.0"],
        ["224.0.0.1"],
        ["fd00::1"],
        ["fe80::1%eth0"],
        ["64:ff9b::a00:1"],  # NAT64 of 10.0.0.1
        ["2002:7f00:1::1"],  # 6to4 of 127.0.0.1
        ["93.184.216.34", "192.168.1.1"],  # one bad answer spoils the lot
    ],
)
async def test_resolver_answers_to_private_addresses_are_refused(answer: list[str]) -> None:
    transport = RecordingTransport(make_image())
    async with httpx.AsyncClient(transport=transport) as client:
        fetcher = ImageFetcher(
            FetchPolicy(), client=client, resolver=fixed_resolver({"evil.example": answer})
        )
        await expect_error(fetcher, "http://evil.example/x.png", "forbidden_address")
    assert transport.requests == []


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data", "http://[::ffff:7f00:1]/", "http://10.1.2.3:8080/"],
)
async def test_ip_literal_urls_to_private_addresses_are_refused(url: str) -> None:
    transport = RecordingTransport(make_image())
    async with httpx.AsyncClient(transport=transport) as client:
        fetcher = ImageFetcher(FetchPolicy(), client=client, resolver=fixed_resolver({}))
        await expect_error(fetcher, url, "forbidden_address")
    assert transport.requests == []


async def test_connection_is_pinned_to_the_checked_address(server: LoopbackServer) -> None:
    # "pinned.test" exists only in our fake resolver; if httpx resolved it again by itself the
    # fetch would fail. Resolution happens exactly once per hop.
    server.route("/a.png", body=make_image())
    calls: list[str] = []
    resolver = fixed_resolver({"pinned.test": ["127.0.0.1"]}, calls)
    async with ImageFetcher(LOOPBACK_OK, resolver=resolver) as fetcher:
        got = await fetcher.fetch(f"http://pinned.test:{server.port}/a.png")
    assert got.format == "png"
    assert calls == ["pinned.test"]
    assert server.requests[0].headers["host"] == f"pinned.test:{server.port}"
    assert got.url == f"http://pinned.test:{server.port}/a.png"


async def test_https_request_goes_to_ip_with_sni_and_host_header() -> None:
    transport = RecordingTransport(make_image())
    async with httpx.AsyncClient(transport=transport) as client:
        fetcher = ImageFetcher(
            FetchPolicy(), client=client, resolver=fixed_resolver({"cdn.example": ["93.184.216.34"]})
        )
        got = await fetcher.fetch("https://cdn.example/path/i.png?sig=abc")
    assert got.width == 8
    (req,) = transport.requests
    assert req.url.host == "93.184.216.34"
    assert req.url.scheme == "https"
    assert req.url.raw_path == b"/path/i.png?sig=abc"
    assert req.headers["host"] == "cdn.example"
    assert req.extensions["sni_hostname"] == "cdn.example"


async def test_ipv6_answer_is_bracketed_in_the_pinned_url() -> None:
    transport = RecordingTransport(make_image())
    async with httpx.AsyncClient(transport=transport) as client:
        fetcher = ImageFetcher(
            FetchPolicy(), client=client, resolver=fixed_resolver({"v6.example": ["2606:4700::1"]})
        )
        await fetcher.fetch("http://v6.example:8080/i.png")
    (req,) = transport.requests
    assert req.url.host == "2606:4700::1"
    assert req.url.port == 8080
    assert req.headers["host"] == "v6.example:8080"


async def test_unresolvable_host_is_unreachable() -> None:
    fetcher = ImageFetcher(FetchPolicy(), resolver=fixed_resolver({}))
    try:
        await expect_error(fetcher, "http://nowhere.example/x.png", "unreachable")
    finally:
        await fetcher.aclose()


# -- redirects -------------------------------------------------------------------------------------


async def test_redirect_followed_and_rechecked(server: LoopbackServer) -> None:
    png = make_image()
    server.route("/final.png", body=png)
    server.route("/hop", status=302, headers={"Location": "/final.png"})
    async with ImageFetcher(LOOPBACK_OK) as fetcher:
        got = await fetcher.fetch(server.url("/hop"))
    assert got.data == png
    assert got.url == server.url("/final.png")
    assert server.paths_seen() == ["/hop", "/final.png"]


async def test_redirect_from_allowed_host_to_forbidden_address_refused(server: LoopbackServer) -> None:
    server.route("/secret.png", body=make_image())
    resolver = fixed_resolver({"good.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]})
    server.route("/to-evil", status=301, headers={"Location": f"http://evil.test:{server.port}/secret.png"})
    server.route("/to-metadata", status=307, headers={"Location": "http://169.254.169.254/latest/"})
    policy = FetchPolicy(allow_hosts=("good.test",), timeout=5.0)
    async with ImageFetcher(policy, resolver=resolver) as fetcher:
        await expect_error(fetcher, f"http://good.test:{server.port}/to-evil", "forbidden_address")
        await expect_error(fetcher, f"http://good.test:{server.port}/to-metadata", "forbidden_address")
    assert server.paths_seen() == ["/to-evil", "/to-metadata"]


async def test_too_many_redirects(server: LoopbackServer) -> None:
    server.route("/loop", status=302, headers={"Location": "/loop"})
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), max_redirects=3, timeout=5.0)
    async with ImageFetcher(policy) as fetcher:
        await expect_error(fetcher, server.url("/loop"), "too_many_redirects")
    assert len(server.requests) == 4  # the first request + 3 followed redirects


async def test_exactly_max_redirects_is_fine(server: LoopbackServer) -> None:
    server.route("/r1", status=302, headers={"Location": "/r2"})
    server.route("/r2", status=303, headers={"Location": server.url("/img")})
    server.route("/img", body=make_image())
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), max_redirects=2, timeout=5.0)
    async with ImageFetcher(policy) as fetcher:
        assert (await fetcher.fetch(server.url("/r1"))).format == "png"


async def test_redirect_to_other_scheme_refused(server: LoopbackServer) -> None:
    server.route("/to-file", status=302, headers={"Location": "file:///etc/passwd"})
    server.route("/to-data", status=302, headers={"Location": "data:image/png;base64,AAAA"})
    async with ImageFetcher(LOOPBACK_OK) as fetcher:
        await expect_error(fetcher, server.url("/to-file"), "invalid_url")
        await expect_error(fetcher, server.url("/to-data"), "invalid_url")


async def test_redirect_without_location_is_http_error(server: LoopbackServer) -> None:
    server.route("/bad", status=302)
    async with ImageFetcher(LOOPBACK_OK) as fetcher:
        await expect_error(fetcher, server.url("/bad"), "http_error")


# -- size, time, content ---------------------------------------------------------------------------


async def test_too_large_by_content_length(server: LoopbackServer) -> None:
    # the server claims 10 MB but we must give up before reading any of it
    server.route("/big", body=b"x" * 10, content_length=10_000_000, stall_after_headers=True)
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), max_bytes=1000, timeout=5.0)
    async with ImageFetcher(policy) as fetcher:
        err = await expect_error(fetcher, server.url("/big"), "too_large")
    assert "1000" in err.message


async def test_too_large_while_streaming(server: LoopbackServer) -> None:
    server.route("/stream", body=b"\x89PNG" + b"x" * 300_000, chunked=True)
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), max_bytes=100_000, timeout=5.0)
    async with ImageFetcher(policy) as fetcher:
        await expect_error(fetcher, server.url("/stream"), "too_large")


async def test_gzip_bomb_capped_on_decoded_size(server: LoopbackServer) -> None:
    bomb = gzip.compress(b"\0" * 2_000_000)
    assert len(bomb) < 10_000
    server.route("/bomb", body=bomb, headers={"Content-Encoding": "gzip"})
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), max_bytes=100_000, timeout=5.0)
    async with ImageFetcher(policy) as fetcher:
        await expect_error(fetcher, server.url("/bomb"), "too_large")


async def test_timeout_when_server_stalls_before_answering(server: LoopbackServer) -> None:
    server.route("/stall", stall_before_headers=True)
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), timeout=0.3)
    async with ImageFetcher(policy) as fetcher:
        await expect_error(fetcher, server.url("/stall"), "timeout")


async def test_timeout_when_body_stalls(server: LoopbackServer) -> None:
    server.route("/slow", body=b"x" * 100, stall_after_headers=True)
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), timeout=0.3)
    async with ImageFetcher(policy) as fetcher:
        await expect_error(fetcher, server.url("/slow"), "timeout")


async def test_non_image_is_refused_even_if_labelled_image(server: LoopbackServer) -> None:
    server.route("/page", body=b"<html>hello</html>", headers={"Content-Type": "image/png"})
    async with ImageFetcher(LOOPBACK_OK) as fetcher:
        await expect_error(fetcher, server.url("/page"), "not_image")


async def test_non_image_allowed_when_not_required(server: LoopbackServer) -> None:
    server.route("/doc", body=b"hello", headers={"Content-Type": "text/plain; charset=utf-8"})
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), require_image=False, timeout=5.0)
    async with ImageFetcher(policy) as fetcher:
        got = await fetcher.fetch(server.url("/doc"))
    assert (got.data, got.content_type, got.format, got.width) == (b"hello", "text/plain", "", 0)


async def test_truncated_png_is_not_an_image(server: LoopbackServer) -> None:
    png = make_image("PNG", (64, 64))
    server.route("/cut.png", body=png[: len(png) // 2])
    async with ImageFetcher(LOOPBACK_OK) as fetcher:
        await expect_error(fetcher, server.url("/cut.png"), "not_image")


async def test_http_error_status(server: LoopbackServer) -> None:
    async with ImageFetcher(LOOPBACK_OK) as fetcher:
        err = await expect_error(fetcher, server.url("/missing"), "http_error")
    assert "404" in err.message


async def test_closed_port_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with ImageFetcher(LOOPBACK_OK) as fetcher:
        await expect_error(fetcher, f"http://127.0.0.1:{port}/x.png", "unreachable")


async def test_webp_and_jpeg_are_sniffed(server: LoopbackServer) -> None:
    server.route("/w", body=make_image("WEBP", (10, 4)))
    server.route("/j", body=make_image("JPEG", (3, 5)))
    async with ImageFetcher(LOOPBACK_OK) as fetcher:
        w = await fetcher.fetch(server.url("/w"))
        j = await fetcher.fetch(server.url("/j"))
    assert (w.format, w.content_type, w.width, w.height) == ("webp", "image/webp", 10, 4)
    assert (j.format, j.content_type, j.width, j.height) == ("jpeg", "image/jpeg", 3, 5)


# -- URL validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_",
        "http:///nohost",
        "http://user:pass@example.com/a.png",
        "not a url",
        "",
        "http://example.com/" + "a" * 20000,
    ],
)
async def test_invalid_urls(url: str) -> None:
    transport = RecordingTransport(make_image())
    async with httpx.AsyncClient(transport=transport) as client:
        fetcher = ImageFetcher(
            FetchPolicy(), client=client, resolver=fixed_resolver({"example.com": ["93.184.216.34"]})
        )
        await expect_error(fetcher, url, "invalid_url")
    assert transport.requests == []


async def test_https_only_policy_refuses_http() -> None:
    fetcher = ImageFetcher(FetchPolicy(allowed_schemes=("https",)), resolver=fixed_resolver({}))
    try:
        err = await expect_error(fetcher, "http://example.com/a.png", "invalid_url")
        assert "https" in err.message
    finally:
        await fetcher.aclose()


# -- data URLs -------------------------------------------------------------------------------------


async def test_data_url_ok() -> None:
    png = make_image("PNG", (5, 7))
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    async with ImageFetcher(FetchPolicy()) as fetcher:
        got = await fetcher.fetch(url)
    assert got.data == png
    assert (got.format, got.width, got.height, got.url) == ("png", 5, 7, "data:image/png")


async def test_data_url_with_wrapped_lines_and_missing_padding() -> None:
    png = make_image("PNG", (5, 7))
    b64 = base64.b64encode(png).decode().rstrip("=")
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    data, mime = decode_data_url("DATA:image/PNG;base64," + wrapped, 10_000)
    assert data == png and mime == "image/png"


async def test_data_url_bad_base64() -> None:
    async with ImageFetcher(FetchPolicy()) as fetcher:
        await expect_error(fetcher, "data:image/png;base64,!!!not*base64@@", "invalid_url")
        await expect_error(fetcher, "data:image/png;base64", "invalid_url")  # no comma
        await expect_error(fetcher, "data:image/png;base64,", "invalid_url")  # empty


async def test_data_url_not_an_image() -> None:
    url = "data:image/png;base64," + base64.b64encode(b"just some text").decode()
    async with ImageFetcher(FetchPolicy()) as fetcher:
        await expect_error(fetcher, url, "not_image")


async def test_data_url_too_large() -> None:
    url = "data:image/png;base64," + base64.b64encode(b"\0" * 5000).decode()
    async with ImageFetcher(FetchPolicy(max_bytes=1000)) as fetcher:
        await expect_error(fetcher, url, "too_large")
    with pytest.raises(FetchError) as info:
        decode_data_url("data:image/png," + "%00" * 2000, 1000)
    assert info.value.code == "too_large"


async def test_data_urls_can_be_disabled() -> None:
    url = "data:image/png;base64," + base64.b64encode(make_image()).decode()
    async with ImageFetcher(FetchPolicy(allow_data_urls=False)) as fetcher:
        await expect_error(fetcher, url, "invalid_url")


def test_sniff_image_pixel_bomb_guard() -> None:
    data = make_image("PNG", (40, 40))
    assert sniff_image(data) == ("png", "image/png", 40, 40)
    with pytest.raises(FetchError) as info:
        sniff_image(data, max_pixels=100)
    assert info.value.code == "too_large"


def test_sniff_image_refuses_formats_outside_the_allow_list() -> None:
    with pytest.raises(FetchError) as info:
        sniff_image(make_image("BMP", (4, 4)))
    assert info.value.code == "not_image"


def test_fetch_error_shape() -> None:
    err = FetchError("timeout", "took too long")
    assert (err.code, err.message, str(err)) == ("timeout", "took too long", "took too long")
    with pytest.raises(AssertionError):
        FetchError("bogus", "x")


# -- TLS: the connection goes to the checked IP, the certificate is checked against the name ------


async def test_https_pinned_connection_verifies_certificate_for_the_name(
    tls_server: LoopbackServer, tls_files: TlsFiles
) -> None:
    png = make_image("PNG", (6, 6))
    tls_server.route("/a.png", body=png)
    verify = ssl.create_default_context(cafile=str(tls_files.cert))
    resolver = fixed_resolver({"img.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), timeout=5.0)
    async with httpx.AsyncClient(verify=verify, trust_env=False) as client:
        fetcher = ImageFetcher(policy, client=client, resolver=resolver)
        got = await fetcher.fetch(f"https://img.test:{tls_server.port}/a.png")
        assert got.data == png
        assert tls_server.requests[-1].headers["host"] == f"img.test:{tls_server.port}"
        # same IP, a name the certificate does not cover: the TLS check must fail
        await expect_error(fetcher, f"https://other.test:{tls_server.port}/a.png", "unreachable")
    assert tls_server.paths_seen() == ["/a.png"]


async def test_an_mp4_is_accepted_only_where_videos_are_expected() -> None:
    """Midjourney's video results are MP4s: the result ingester asks for them (video_ok); user
    URLs (image prompts, masks, describe) still take images only."""
    import base64 as _b64

    from adapter.media.fetch import FetchError, FetchPolicy, ImageFetcher

    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64
    url = "data:video/mp4;base64," + _b64.b64encode(mp4).decode()
    async with ImageFetcher(FetchPolicy(allow_data_urls=True)) as fetcher:
        with pytest.raises(FetchError):
            await fetcher.fetch(url)
        got = await fetcher.fetch(url, video_ok=True)
    assert got.content_type == "video/mp4" and got.data == mp4 and (got.width, got.height) == (0, 0)


# -- user URLs: one answer for every failure ---------------------------------------------------------


async def test_user_url_policy_answers_every_failure_alike(server: LoopbackServer) -> None:
    """The probe's loopback spellings, a redirect to loopback, closed and open ports, HTTP errors and
    non-images: one code and one text, so the answers map nothing."""
    server.route("/page", body=b"<html>not an image</html>", headers={"Content-Type": "text/html"})
    server.route("/gone", status=404)
    server.route("/hop", status=302, headers={"Location": f"http://127.0.0.1:{server.port}/page"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    refused = [
        f"http://127.0.0.1:{server.port}/page",
        f"http://localhost:{server.port}/page",
        f"http://2130706433:{server.port}/page",
        f"http://0x7f000001:{server.port}/page",
        f"http://127.1:{server.port}/page",
        f"http://[::ffff:127.0.0.1]:{server.port}/page",
        f"http://[0:0:0:0:0:ffff:7f00:1]:{server.port}/page",
        f"http://127.0.0.1:{closed}/a.png",
    ]
    public_redirect = fixed_resolver({"public.example": ["93.184.216.34"]})
    async with ImageFetcher(FetchPolicy(timeout=5.0, uniform_errors=True)) as fetcher:
        messages = {(await expect_error(fetcher, url, "unusable_url")).message for url in refused}
    assert server.requests == []
    # the operator listed loopback for user URLs: still one answer for an open port that serves a
    # page, a 404, a redirect and a closed port
    allowed = FetchPolicy(timeout=5.0, uniform_errors=True, allow_hosts=("127.0.0.1",))
    async with ImageFetcher(allowed, resolver=public_redirect) as fetcher:
        for url in (server.url("/page"), server.url("/gone"), server.url("/hop"), f"http://127.0.0.1:{closed}/a.png"):
            messages.add((await expect_error(fetcher, url, "unusable_url")).message)
        ok = await fetcher.fetch(server.route("/a.png", body=make_image()))
    assert ok.width == 8
    assert len(messages) == 1, messages
    (text,) = messages
    assert "127.0.0.1" not in text and "connect" not in text and "HTTP" not in text


async def test_user_url_policy_keeps_clear_errors_for_what_needs_no_network() -> None:
    async with ImageFetcher(FetchPolicy(uniform_errors=True)) as fetcher:
        await expect_error(fetcher, "ftp://example.com/a.png", "invalid_url")
        await expect_error(fetcher, "data:image/png;base64,@@@", "invalid_url")
        err = await expect_error(fetcher, "data:image/png;base64," + base64.b64encode(b"not an image").decode(), "not_image")
    assert "PNG" in err.message
