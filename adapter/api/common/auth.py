"""API keys -> the owner id stored on jobs. One mapping for every front door."""

from __future__ import annotations

import hmac

from adapter.config import Secret, key_id


class KeyRing:
    def __init__(self, keys: tuple[Secret, ...], admin_keys: tuple[Secret, ...] = ()) -> None:
        # admin keys are API keys too
        self._keys = {k.reveal(): key_id(k.reveal()) for k in (*keys, *admin_keys)}
        self._admins = {key_id(k.reveal()) for k in admin_keys}

    @property
    def open(self) -> bool:
        """No keys configured: every caller is the same anonymous owner."""
        return not self._keys

    def owner(self, presented: str | None) -> str | None:
        """The owner id for a presented key, None if it is not one of ours."""
        if self.open:
            return ""
        if not presented:
            return None
        for key, owner in self._keys.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                return owner
        return None

    def is_admin(self, owner: str | None) -> bool:
        """Operators' keys may see and control accounts and read /metrics. With keys configured
        that takes a key from ADMIN_KEYS: with none configured nobody is an admin, because a
        customer key must never be able to pause the accounts. Keyless (loopback only) the one
        anonymous caller is the local operator, so the CLI keeps working without any setup."""
        if owner is None:
            return False
        if self.open:
            return True
        return owner in self._admins


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def bearer_or_bare(value: str | None) -> str | None:
    """`Bearer <key>`, or a bare `<key>` alone in the header, as midjourney-proxy's and
    yokonsan's clients send it."""
    if not value:
        return None
    return bearer(value) or (value.strip() if " " not in value.strip() else None)
