from __future__ import annotations

import ipaddress

import pytest

from adapter.media.addresses import HostAllowList, is_public_ip, parse_ip


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1", "10.2.3.4", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1",
        "100.127.255.254", "0.0.0.0", "255.255.255.255", "224.0.0.251", "239.1.1.1", "240.0.0.1",
        "192.0.0.1", "198.18.0.1", "192.0.2.1", "::", "::1", "fe80::1", "fc00::1", "fd12::1",
        "ff02::1", "fec0::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:a00:1::", "2001:db8::1",
        "::127.0.0.1",
    ],
)
def test_non_public_addresses(text: str) -> None:
    assert not is_public_ip(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    "text", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses(text: str) -> None:
    assert is_public_ip(ipaddress.ip_address(text))


def test_parse_ip() -> None:
    assert parse_ip("[::1]") == ipaddress.ip_address("::1")
    assert parse_ip("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert parse_ip("example.com") is None
    assert parse_ip("127.1") is None  # not a literal: left to the resolver, which judges the result


def test_allow_list() -> None:
    allow = HostAllowList(["127.0.0.1", "10.0.0.0/8", "cdn.internal", ".svc.local", "*.corp.test", " ", "::1"])
    assert allow
    assert allow.allows_ip(ipaddress.ip_address("127.0.0.1"))
    assert not allow.allows_ip(ipaddress.ip_address("127.0.0.2"))
    assert allow.allows_ip(ipaddress.ip_address("10.9.8.7"))
    assert allow.allows_ip(ipaddress.ip_address("::ffff:10.1.1.1"))  # mapped form of an allowed v4
    assert allow.allows_ip(ipaddress.ip_address("::1"))
    assert not allow.allows_ip(ipaddress.ip_address("192.168.0.1"))
    assert allow.allows_host("CDN.internal.")
    assert allow.allows_host("a.b.svc.local")
    assert allow.allows_host("x.corp.test")
    assert not allow.allows_host("svc.local.evil.com")
    assert not allow.allows_host("notcdn.internal")
    assert not HostAllowList([])
