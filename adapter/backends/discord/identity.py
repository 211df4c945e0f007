"""The browser a Discord user account presents itself as.

A user token is driven the way the Discord web client drives it, so every surface that reveals
the client (the gateway IDENTIFY `properties`, the websocket handshake's User-Agent, REST
`User-Agent` and `X-Super-Properties`) must tell the same story. This module is that story.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

_CHROME_VERSION = "131.0.0.0"

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    f"(KHTML, like Gecko) Chrome/{_CHROME_VERSION} Safari/537.36"
)


class BrowserIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """A desktop Chrome on the Discord web client. The defaults describe one consistent browser;
    when overriding `user_agent`, override `browser_version` / `os` to match it."""

    user_agent: str = DEFAULT_USER_AGENT
    browser_version: str = _CHROME_VERSION
    os: str = "Mac OS X"
    os_version: str = "10.15.7"
    # Discord's web build number drifts every few days; an old one still works but stands out.
    client_build_number: int = 349_710
    system_locale: str = "en-US"

    def properties(self) -> dict[str, Any]:
        """The IDENTIFY `properties` object (also the content of `X-Super-Properties`)."""
        return {
            "os": self.os,
            "browser": "Chrome",
            "device": "",
            "system_locale": self.system_locale,
            "browser_user_agent": self.user_agent,
            "browser_version": self.browser_version,
            "os_version": self.os_version,
            "referrer": "",
            "referring_domain": "",
            "referrer_current": "",
            "referring_domain_current": "",
            "release_channel": "stable",
            "client_build_number": self.client_build_number,
            "client_event_source": None,
        }

    def super_properties_b64(self) -> str:
        return base64.b64encode(msgspec.json.encode(self.properties())).decode("ascii")

    def rest_headers(self) -> dict[str, str]:
        """Headers the web client sends with every API call (Authorization excluded)."""
        return {
            "User-Agent": self.user_agent,
            "X-Super-Properties": self.super_properties_b64(),
            "X-Discord-Locale": self.system_locale,
            "Accept-Language": self.system_locale,
        }
