"""Who is an admin: ADMIN_KEYS only; with none configured nobody, except keyless loopback mode."""

from __future__ import annotations

from adapter.api.common.auth import KeyRing
from adapter.config import Secret

CUSTOMER = "sk-customer-1"
ADMIN = "sk-admin-1"


def test_keyless_the_anonymous_caller_is_the_operator() -> None:
    ring = KeyRing(())
    assert ring.open
    owner = ring.owner(None)
    assert owner == "" and ring.is_admin(owner)
    assert ring.is_admin(ring.owner("anything"))


def test_without_admin_keys_no_key_is_an_admin() -> None:
    ring = KeyRing((Secret(CUSTOMER), Secret("sk-customer-2")))
    assert not ring.open
    owner = ring.owner(CUSTOMER)
    assert owner is not None and not ring.is_admin(owner)
    assert not ring.is_admin(ring.owner("sk-customer-2"))


def test_only_admin_keys_are_admins() -> None:
    ring = KeyRing((Secret(CUSTOMER),), (Secret(ADMIN),))
    assert ring.is_admin(ring.owner(ADMIN))
    assert not ring.is_admin(ring.owner(CUSTOMER))


def test_unknown_or_missing_keys_are_nobody() -> None:
    ring = KeyRing((Secret(CUSTOMER),), (Secret(ADMIN),))
    assert ring.owner("sk-nope") is None and ring.owner(None) is None and ring.owner("") is None
    assert not ring.is_admin(None)
    # an owner id is not a key: presenting the admin's owner id does not make one an admin
    assert ring.owner(ring.owner(ADMIN)) is None


def test_admin_keys_alone_close_the_server() -> None:
    ring = KeyRing((), (Secret(ADMIN),))
    assert not ring.open
    assert ring.owner(None) is None
    assert ring.is_admin(ring.owner(ADMIN))
