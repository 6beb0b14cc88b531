"""Outbound HTTP to user-given URLs (webhooks), guarded against reaching inside the network.

At send time, every time: https only, no credentials in the URL, an allowed port; the host is resolved once and
refused unless every address is globally routable (no loopback, private, link-local incl. 169.254.169.254, CGNAT,
multicast, reserved, IPv6 ULA/link-local, nor the IPv4-mapped or 6to4 forms of those); then the connection goes to
the address that was checked, so a second DNS answer cannot swap it (rebinding), while TLS (SNI, certificate
check) and `Host` keep the name. Redirects are never followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str, int], list[str]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedUrl(ValueError):
    """The URL may not be called: the reason is safe to show the user."""


@dataclass(frozen=True)
class UrlPolicy:
    allowed_ports: frozenset[int] = frozenset({443})
    # Only the local stack sets this (`make run`): plain-http receivers on loopback, for demos and tests.
    allow_loopback_http: bool = False


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: str | None = None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class _Unresolved(OSError):
    """The name did not resolve now (maybe later): a failed attempt, not a refusal."""


def check_syntax(url: str, policy: UrlPolicy) -> None:
    """What can be checked without DNS (used at submit time too, so users hear early), including an address
    written literally in the URL."""
    scheme, host, _, _ = _split(url, policy)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return
    reason = (
        None if policy.allow_loopback_http and scheme == "http" and literal.is_loopback else blocked_reason(literal)
    )
    if reason:
        raise BlockedUrl(f"a blocked address: {reason}")


def _split(url: str, policy: UrlPolicy) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedUrl(f"not a valid URL: {exc}") from exc
    host = parts.hostname
    if not host:
        raise BlockedUrl("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise BlockedUrl("credentials in the URL are not allowed")
    loopback_http = policy.allow_loopback_http and parts.scheme == "http" and _is_loopback_name(host)
    if parts.scheme != "https" and not loopback_http:
        raise BlockedUrl("only https:// URLs are called")
    port = port or (443 if parts.scheme == "https" else 80)
    if port not in policy.allowed_ports and not loopback_http:
        raise BlockedUrl(f"port {port} is not allowed")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port, path


def _is_loopback_name(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def blocked_reason(address: IpAddress) -> str | None:
    """Why an address may not be called, or None for a globally routable one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"{inner} (embedded in {address})" if inner else None
    for name in ("is_loopback", "is_link_local", "is_private", "is_multicast", "is_reserved", "is_unspecified"):
        if getattr(address, name):
            return f"{address} is {name.removeprefix('is_').replace('_', '-')}"
    if not address.is_global:
        return f"{address} is not globally routable"  # e.g. CGNAT 100.64.0.0/10
    return None


def resolve_target(url: str, policy: UrlPolicy, resolver: Resolver = system_resolver) -> Target:
    scheme, host, port, path = _split(url, policy)
    try:
        addresses = resolver(host, port)
    except OSError as exc:
        raise _Unresolved(f"{host} does not resolve") from exc
    if not addresses:
        raise _Unresolved(f"{host} does not resolve")
    loopback_http = policy.allow_loopback_http and scheme == "http"
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = None if loopback_http and address.is_loopback else blocked_reason(address)
        if reason:
            raise BlockedUrl(f"{host} resolves to a blocked address: {reason}")
    return Target(scheme, host, port, path, addresses[0])


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to the checked address; certificate and SNI are for the host name."""

    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._ssl_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    policy: UrlPolicy,
    timeout: float = 10.0,
    resolver: Resolver = system_resolver,
) -> SendResult:
    """One POST, checked at send time; a refusal or network failure is a result with `error`, never an exception
    (BlockedUrl aside, which callers must treat as final)."""
    started = time.monotonic()
    try:
        target = resolve_target(url, policy, resolver)
    except _Unresolved:
        return SendResult(None, "dns_failure", int((time.monotonic() - started) * 1000))
    connection: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(target, timeout, ssl.create_default_context())
        if target.scheme == "https"
        else _PinnedHTTPConnection(target, timeout)
    )
    try:
        connection.request("POST", target.path, body=body, headers={**headers, "Host": _host_header(target)})
        response = connection.getresponse()
        response.read(64 * 1024)  # the receiver's answer is not kept; read a little so the connection ends cleanly
        elapsed = int((time.monotonic() - started) * 1000)
        return SendResult(response.status, None, elapsed, response.getheader("Retry-After"))
    except (OSError, http.client.HTTPException) as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        kind = "timeout" if isinstance(exc, TimeoutError | socket.timeout) else type(exc).__name__
        return SendResult(None, kind, elapsed)
    finally:
        connection.close()


def _host_header(target: Target) -> str:
    default = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == default else f"{host}:{target.port}"
