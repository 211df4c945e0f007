"""The gateway: HELLO, IDENTIFY/READY, heartbeats, RESUME replay, close codes, zlib-stream."""

from __future__ import annotations

import asyncio
import zlib

import httpx

from adapter.simulator import Simulator

from .conftest import Client, close_client, connect_client, fast_config
from .harness import ZLIB_SUFFIX, Gateway


async def test_hello_identify_ready_heartbeat(sim: Simulator) -> None:
    gw = await Gateway.open(sim.gateway_url)
    hello = await gw.op(10)
    assert hello["d"]["heartbeat_interval"] == 41250
    account = sim.accounts[0]
    await gw.send(2, {"token": account.token, "properties": {}})
    ready = await gw.wait(lambda f: f.get("t") == "READY")
    assert ready["op"] == 0 and ready["s"] == 1
    d = ready["d"]
    assert d["user"]["id"] == account.user_id
    assert d["v"] == 9 and d["session_id"]
    assert d["resume_gateway_url"] == sim.gateway_url
    assert [g["id"] for g in d["guilds"]] == [account.guild_id]
    assert account.channel_id in [c["id"] for c in d["guilds"][0]["channels"]]
    await gw.send(1, 1)
    ack = await gw.op(11)
    assert ack["d"] is None
    await gw.close()


async def test_sequence_numbers_increase(client: Client) -> None:
    await client.imagine("sequence check")
    seqs = [f["s"] for f in client.gw.dispatches()]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_bad_token_closes_4004(sim: Simulator) -> None:
    gw = await Gateway.open(sim.gateway_url)
    await gw.op(10)
    await gw.send(2, {"token": "not-a-token", "properties": {}})
    assert await gw.wait_closed() == 4004
    assert gw.close_reason == "Authentication failed."


async def test_unknown_opcode_and_unauthenticated_ops(sim: Simulator) -> None:
    gw = await Gateway.open(sim.gateway_url)
    await gw.op(10)
    await gw.send(99, None)
    assert await gw.wait_closed() == 4001
    gw2 = await Gateway.open(sim.gateway_url)
    await gw2.op(10)
    await gw2.send(3, {"status": "online"})  # presence before IDENTIFY
    assert await gw2.wait_closed() == 4003


async def test_decode_error_and_double_identify(sim: Simulator) -> None:
    gw = await Gateway.open(sim.gateway_url)
    await gw.op(10)
    await gw.ws.send("{not json")
    assert await gw.wait_closed() == 4002
    gw2 = await Gateway.open(sim.gateway_url)
    await gw2.identify(sim.accounts[0].token)
    await gw2.send(2, {"token": sim.accounts[0].token, "properties": {}})
    assert await gw2.wait_closed() == 4005


async def test_bad_api_version_closes_4012(sim: Simulator) -> None:
    gw = await Gateway.open(sim.gateway_url, query="v=3&encoding=json")
    assert await gw.wait_closed() == 4012


async def test_missed_heartbeats_close_the_socket() -> None:
    sim = Simulator(fast_config(heartbeat_interval_ms=100))
    await sim.start()
    try:
        gw = await Gateway.open(sim.gateway_url)
        await gw.identify(sim.accounts[0].token)
        assert await gw.wait_closed(timeout=5) == 4009
    finally:
        await sim.stop()


async def test_resume_replays_what_was_missed(sim: Simulator, client: Client) -> None:
    seq = client.gw.last_seq
    assert sim.faults.drop_gateway(client.user_id) == 1
    assert await client.gw.wait_closed() == 1006
    # While disconnected: an interaction (on the same, still live session) and its job run.
    r, nonce = await client.rest.imagine(client.session_id, "while you were away")
    assert r.status_code == 204, r.text
    await sim.wait_idle(5)

    gw = await Gateway.open(client.ready["resume_gateway_url"])
    await gw.op(10)
    await gw.send(6, {"token": client.account.token, "session_id": client.session_id, "seq": seq})
    await gw.event("RESUMED")
    replayed = gw.dispatches()
    types = [f["t"] for f in replayed]
    assert types[-1] == "RESUMED"
    assert replayed[0]["s"] == seq + 1
    assert [f["s"] for f in replayed] == list(range(seq + 1, seq + 1 + len(replayed)))
    assert "INTERACTION_SUCCESS" in types and "MESSAGE_DELETE" in types
    assert any(f["t"] == "MESSAGE_CREATE" and f["d"].get("nonce") == nonce for f in replayed)
    assert "READY" not in types  # connection events of the old socket are not replayed
    # and new events keep flowing on the resumed socket
    await client.rest.imagine(client.session_id, "after resume")
    await gw.event("INTERACTION_SUCCESS")
    await gw.close()


async def test_refuse_next_resume_gives_invalid_session(sim: Simulator, client: Client) -> None:
    sim.faults.refuse_next_resume()
    sim.faults.drop_gateway(client.user_id)
    await client.gw.wait_closed()
    gw = await Gateway.open(sim.gateway_url)
    await gw.op(10)
    await gw.send(6, {"token": client.account.token, "session_id": client.session_id, "seq": client.gw.last_seq})
    invalid = await gw.op(9)
    assert invalid["d"] is False
    # a fresh IDENTIFY works on the same socket
    await gw.send(2, {"token": client.account.token, "properties": {}})
    ready = await gw.event("READY")
    assert ready["session_id"] != client.session_id
    # an interaction naming the dead session is still taken (Discord takes any well-formed
    # session_id), but its INTERACTION_* events go nowhere; the bot's messages still arrive
    r, nonce = await client.rest.imagine(client.session_id, "stale session")
    assert r.status_code == 204
    await gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert not [f for f in gw.dispatches() if f["t"].startswith("INTERACTION_")]
    await gw.close()


async def test_resume_of_unknown_session_or_future_seq_is_refused(sim: Simulator, client: Client) -> None:
    gw = await Gateway.open(sim.gateway_url)
    await gw.op(10)
    await gw.send(6, {"token": client.account.token, "session_id": "nope", "seq": 1})
    assert (await gw.op(9))["d"] is False
    await gw.send(6, {"token": client.account.token, "session_id": client.session_id, "seq": 10_000})
    assert (await gw.op(9))["d"] is False
    await gw.close()


async def test_reconnect_and_invalid_session_on_demand(sim: Simulator, client: Client) -> None:
    assert sim.faults.reconnect(client.user_id) == 1
    assert (await client.gw.op(7))["d"] is None
    assert sim.faults.invalid_session(client.user_id, resumable=True) == 1
    assert (await client.gw.op(9))["d"] is True


async def test_zlib_stream_framing(sim: Simulator) -> None:
    client = await connect_client(sim, compress=True)
    try:
        await client.imagine("compressed please")
        assert client.gw.raw_frames and all(isinstance(f, bytes) for f in client.gw.raw_frames)
        assert all(bytes(f).endswith(ZLIB_SUFFIX) for f in client.gw.raw_frames)
        # one stream for the whole connection: only the first frame carries the zlib header,
        # so a later frame cannot be read on its own
        assert client.gw.raw_frames[0][:1] == b"\x78"
        fresh = zlib.decompressobj()
        try:
            fresh.decompress(client.gw.raw_frames[1])
            readable_alone = True
        except zlib.error:
            readable_alone = False
        assert readable_alone is False
        assert client.gw.dispatches("MESSAGE_DELETE")
    finally:
        await close_client(client)


async def test_compression_can_be_unsupported() -> None:
    sim = Simulator(fast_config(compress_supported=False))
    await sim.start()
    try:
        gw = await Gateway.open(sim.gateway_url, compress=True)
        await gw.identify(sim.accounts[0].token)
        assert all(isinstance(f, str) for f in gw.raw_frames)
        await gw.close()
    finally:
        await sim.stop()


async def test_revoked_token_closes_4004_and_rest_401(sim: Simulator, client: Client) -> None:
    assert sim.faults.revoke_token(client.account.token) is True
    assert await client.gw.wait_closed() == 4004
    r = await client.rest.http.get("/gateway")
    assert r.status_code == 200  # GET /gateway needs no token
    r = await client.rest.http.get("/users/@me")
    assert r.status_code == 401 and r.json() == {"message": "401: Unauthorized", "code": 0}
    gw = await Gateway.open(sim.gateway_url)
    await gw.op(10)
    await gw.send(2, {"token": client.account.token, "properties": {}})
    assert await gw.wait_closed() == 4004
    sim.faults.reset()
    async with httpx.AsyncClient(headers={"Authorization": client.account.token}) as http:
        assert (await http.get(f"{sim.rest_base}/users/@me")).status_code == 200


async def test_interaction_events_go_only_to_the_calling_session(sim: Simulator, client: Client) -> None:
    other = await connect_client(sim, 0)  # same user, second session
    try:
        r, nonce = await client.rest.imagine(client.session_id, "who hears it")
        assert r.status_code == 204
        await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == nonce)
        await other.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)  # channel events: everyone
        await sim.wait_idle(5)
        await asyncio.sleep(0.05)
        assert not other.gw.dispatches("INTERACTION_CREATE")
        assert not other.gw.dispatches("INTERACTION_SUCCESS")
    finally:
        await close_client(other)


async def test_other_accounts_do_not_see_my_channel(sim: Simulator, client: Client) -> None:
    stranger = await connect_client(sim, 1)
    try:
        await client.imagine("private")
        await asyncio.sleep(0.05)
        assert not stranger.gw.dispatches("MESSAGE_CREATE")
    finally:
        await close_client(stranger)
