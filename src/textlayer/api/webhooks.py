"""Callbacks: which URLs may be called (SSRF policy), Standard Webhooks signatures, and one signed POST.

Policy (``TEXTLAYER_WEBHOOK_ALLOW``, comma-separated): host names (``hooks.example.com``), suffixes
(``*.example.com``), ``*`` (any host name) and networks (``127.0.0.1/32``, ``10.1.0.0/16``). A URL must be
``http(s)://`` without user info; an IP-literal host must lie in an allowed network; a host name must match a name
entry, and every address it resolves to must be public or lie in an allowed network. Link-local addresses (the cloud
metadata service 169.254.169.254 among them), multicast, unspecified and reserved ones are refused whatever the list
says. The check runs at upload and again before each attempt, and the request goes to the address that was checked
(no second DNS lookup that a rebinding attack could answer differently). Redirects are not followed.

Signatures follow Standard Webhooks (standardwebhooks.com): ``webhook-id`` (the same for every attempt of one
message), ``webhook-timestamp`` (unix seconds of the attempt) and ``webhook-signature`` = ``v1,`` + base64 of
HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``, keyed with the base64-decoded part of the tenant's ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from textlayer import __version__
from textlayer.errors import TextlayerError

log = logging.getLogger(__name__)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOST_NAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*")

MAX_URL_CHARS = 2048
"""Longest callback URL accepted."""

SEND_TIMEOUT_S = 10.0
"""Connect and read timeout of one delivery attempt."""

MAX_RESPONSE_BYTES = 64 * 1024
"""Of a receiver's answer, only this much is read (its status is what counts)."""

SIGNATURE_TOLERANCE_S = 300
"""A receiver should refuse a message whose timestamp is further than this from its clock (replays)."""

ALWAYS_REFUSED: tuple[IpNetwork, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "169.254.0.0/16",  # link-local: the metadata service of AWS, GCP, Azure, OpenStack...
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "fe80::/10",
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "ff00::/8",
    )
)
"""Networks no callback may reach, whatever ``TEXTLAYER_WEBHOOK_ALLOW`` says."""


class CallbackRefused(TextlayerError):
    """A callback URL that the policy does not allow; the message says why."""

    reason = "callback_not_allowed"


def _plain(address: IpAddress) -> IpAddress:
    # ::ffff:169.254.169.254 reaches the IPv4 address: judge that one.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class WebhookPolicy:
    """Where callbacks may go (see the module docstring)."""

    hosts: tuple[str, ...] = ()
    """Lower-case host names, ``*.suffix`` entries, or ``*``."""
    networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, allow: str | None) -> WebhookPolicy:
        """The policy of a ``TEXTLAYER_WEBHOOK_ALLOW`` value (None or empty: no callbacks at all).

        Raises:
            ValueError: An entry is neither a host name pattern nor a network.
        """
        hosts: list[str] = []
        networks: list[IpNetwork] = []
        for raw in (allow or "").split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if entry != "*" and _HOST_NAME.fullmatch(entry.removeprefix("*.")) is None:
                raise ValueError(f"TEXTLAYER_WEBHOOK_ALLOW: {raw.strip()!r} is neither a host name nor a network")
            hosts.append(entry)
        return cls(tuple(hosts), tuple(networks))

    @property
    def allows_any(self) -> bool:
        """False when no callback can ever be allowed (the default)."""
        return bool(self.hosts or self.networks)

    def _host_allowed(self, host: str) -> bool:
        for entry in self.hosts:
            if entry == "*" or entry == host or (entry.startswith("*.") and host.endswith(entry[1:])):
                return True
        return False

    def _address_allowed(self, address: IpAddress) -> str | None:
        """Why ``address`` may not be called, or None when it may."""
        address = _plain(address)
        if any(address in net for net in ALWAYS_REFUSED):
            return f"{address} is a link-local, metadata, multicast or reserved address"
        if any(address.version == net.version and address in net for net in self.networks):
            return None
        if not address.is_global:
            return f"{address} is a private or loopback address that TEXTLAYER_WEBHOOK_ALLOW does not list"
        return None

    def check(self, url: str) -> tuple[str, int, IpAddress]:
        """Check ``url`` now (DNS included): the host, the port and the address to connect to.

        Raises:
            CallbackRefused: The URL is malformed or not allowed; the message says why.
        """
        if len(url) > MAX_URL_CHARS or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
            raise CallbackRefused("the callback URL is too long or contains spaces or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise CallbackRefused(f"the callback URL is malformed: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CallbackRefused("a callback URL must be http:// or https:// with a host")
        if parts.username is not None or parts.password is not None:
            raise CallbackRefused("a callback URL must not carry a user name or password")
        if not self.allows_any:
            raise CallbackRefused("callbacks are not enabled on this server (TEXTLAYER_WEBHOOK_ALLOW is empty)")
        host = parts.hostname.lower()
        port = port or (443 if parts.scheme == "https" else 80)
        try:
            literal: IpAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            plain = _plain(literal)
            if any(plain in net for net in ALWAYS_REFUSED):
                raise CallbackRefused(
                    f"callbacks to {host} are not allowed: a link-local, metadata or reserved address"
                )
            if not any(plain.version == net.version and plain in net for net in self.networks):
                raise CallbackRefused(f"callbacks to the address {host} are not allowed (TEXTLAYER_WEBHOOK_ALLOW)")
            return host, port, plain
        if not self._host_allowed(host):
            raise CallbackRefused(f"callbacks to {host} are not allowed (TEXTLAYER_WEBHOOK_ALLOW)")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise CallbackRefused(f"the callback host {host} does not resolve: {exc}") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        for address in addresses:
            if (why := self._address_allowed(address)) is not None:
                raise CallbackRefused(f"callbacks to {host} are not allowed: {why}")
        return host, port, addresses[0]


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret."""
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of a message: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> bool:
    """What a receiver does: True when one of the ``v1`` signatures matches and the timestamp is recent."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        message_id, timestamp = lower["webhook-id"], int(lower["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > SIGNATURE_TOLERANCE_S:
        return False
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, sig) for sig in lower.get("webhook-signature", "").split())


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address; the Host header still names the host."""

    def __init__(self, host: str, port: int, address: IpAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = str(address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the certificate checked against the host name."""

    def __init__(self, host: str, port: int, address: IpAddress, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = str(address)

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt got."""

    status_code: int | None
    """The receiver's HTTP status; None when there was no answer."""
    error: str | None
    """Why it failed, in words; None on a 2xx."""
    duration_ms: float

    @property
    def delivered(self) -> bool:
        """True on a 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300


def post(
    policy: WebhookPolicy, url: str, body: bytes, *, secret: str, message_id: str, now: float | None = None
) -> Attempt:
    """One signed POST of ``body`` to ``url``, checked against ``policy`` first.

    Raises:
        CallbackRefused: The policy does not allow the URL (now); nothing was sent.
    """
    host, port, address = policy.check(url)
    parts = urlsplit(url)
    timestamp = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"textlayer-webhooks/{__version__}",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, address, SEND_TIMEOUT_S)
    started = time.monotonic()
    try:
        connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body, headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:500], (time.monotonic() - started) * 1000)
    finally:
        connection.close()
    duration_ms = (time.monotonic() - started) * 1000
    return Attempt(status, None if 200 <= status < 300 else f"HTTP {status}", duration_ms)
