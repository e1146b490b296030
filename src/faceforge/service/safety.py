"""What a request may bring in: sniffed file types, size limits, and URL fetching without SSRF.

Nothing here trusts a client's file name or content type: files are typed by their first bytes,
and their names never become paths on the server.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from faceforge.errors import FaceforgeError

IMAGE_TYPES = ("jpeg", "png", "gif", "bmp", "webp", "tiff", "pnm")
VIDEO_TYPES = ("mp4", "avi", "mkv", "mpeg")


def resolve(host: str, port: int | None, *args: Any, **kwargs: Any) -> list[tuple]:
    """Host name resolution used by :func:`fetch_url`: :func:`socket.getaddrinfo`, looked up at
    each call (tests replace either this function or ``socket.getaddrinfo`` to stay off the network)."""
    return socket.getaddrinfo(host, port, *args, **kwargs)


class RequestError(FaceforgeError):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def sniff(data: bytes) -> str | None:
    """The type of a file from its first bytes: one of :data:`IMAGE_TYPES` / :data:`VIDEO_TYPES`, or None."""
    h = data[:16]
    if h.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if h.startswith(b"BM"):
        return "bmp"
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return "webp"
    if h[:4] == b"RIFF" and h[8:12] == b"AVI ":
        return "avi"
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if len(h) >= 3 and h[0:1] == b"P" and h[1:2] in b"123456" and h[2:3] in b" \t\r\n":
        return "pnm"
    if h[4:8] == b"ftyp":
        return "mp4"
    if h.startswith(b"\x1a\x45\xdf\xa3"):
        return "mkv"
    if h[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg"
    return None


def check_type(data: bytes, allowed: tuple[str, ...], name: str) -> str:
    """The sniffed type of ``data``, or :class:`RequestError` (415) naming what is accepted."""
    if not data:
        raise RequestError(f"{name}: the file is empty.", 400)
    kind = sniff(data)
    if kind not in allowed:
        what = "image" if allowed is IMAGE_TYPES else "video" if allowed is VIDEO_TYPES else "file"
        raise RequestError(f"{name}: not a supported {what} (its content is {kind or 'unrecognised'}); "
                           f"send one of: {', '.join(allowed)}.", 415)
    return kind


def limit_error(name: str, limit: int) -> RequestError:
    return RequestError(f"{name}: larger than the {limit / 1e6:.0f} MB limit; send a smaller file "
                        f"(the server's --max-upload-mb sets the limit).", 413)


#: NAT64 prefixes (RFC 6052 well-known, RFC 8215 local use): the last 32 bits are an IPv4 address.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_addresses(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible
    (``::a.b.c.d``), 6to4 (``2002:AABB:CCDD::/48``), NAT64 (``64:ff9b::a.b.c.d``) and Teredo
    (``2001::/32``: its server and its client address)."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return []
    out: list[ipaddress.IPv4Address] = []
    if addr.ipv4_mapped is not None:
        out.append(addr.ipv4_mapped)
    if addr.sixtofour is not None:
        out.append(addr.sixtofour)
    if addr.teredo is not None:
        out.extend(addr.teredo)
    low = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if any(addr in net for net in _NAT64) or (int(addr) >> 32 == 0 and int(addr) > 0xFFFF):
        out.append(low)  # NAT64, or the deprecated IPv4-compatible ::a.b.c.d
    return out


def address_allowed(ip: str, allow_private: bool) -> bool:
    """Whether the service may connect to ``ip``: public addresses only, unless ``allow_private``.

    An IPv6 address that leads to an IPv4 one (:func:`embedded_addresses`) is judged by both,
    so ``::ffff:127.0.0.1``, ``2002:7f00:1::1`` or ``64:ff9b::a00:1`` count as private.
    IPv4-mapped and NAT64 addresses are judged by their IPv4 address alone. Multicast and
    unspecified addresses are always refused; anything unparsable is refused.
    """
    try:
        addr = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return False
    inner = embedded_addresses(addr)
    translated = isinstance(addr, ipaddress.IPv6Address) and (
        addr.ipv4_mapped is not None or any(addr in net for net in _NAT64))
    if addr.is_multicast or addr.is_unspecified:
        return False
    # IPv4-mapped and NAT64 addresses are their IPv4 address (public NAT64 serves IPv6-only networks)
    for a in (inner if translated else [addr, *inner]):
        if a.is_multicast or a.is_unspecified:
            return False
        if not allow_private and not (a.is_global and not (a.is_reserved or a.is_link_local
                                                               or a.is_loopback or a.is_private)):
            return False
    return True


@dataclass
class Fetched:
    url: str
    data: bytes


@dataclass
class _Target:
    """One hop of a fetch: the URL as given, its host name and the addresses it was checked at."""

    url: str
    scheme: str
    host: str
    port: int
    netloc: str
    target: str  # path and query
    ips: list[str]


def _check_url(url: str, allow_private: bool) -> _Target:
    """Parse ``url``, resolve its host once and check every address (see :func:`fetch_url`)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as e:  # a port out of range or not a number, a broken [IPv6] host
        raise RequestError(f"URL {url!r} is malformed ({e}); send an http(s) URL such as "
                           f"https://example.org/photo.jpg.", 400) from e
    if parts.scheme not in ("http", "https") or not host:
        raise RequestError(f"URL {url!r}: only http:// and https:// URLs with a host are accepted.")
    if parts.username is not None or parts.password is not None:
        raise RequestError(f"URL {url!r}: user names and passwords in URLs are not accepted; "
                           f"make the image public or upload it.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as e:
        raise RequestError(f"URL {url!r}: cannot resolve host {host!r} ({e}).", 422) from e
    ips: list[str] = []
    for info in infos:  # IPv4/IPv6 socket addresses start with the address string
        ip = str(info[4][0])
        if ip not in ips:
            ips.append(ip)
    bad = [ip for ip in ips if not address_allowed(ip, allow_private)]
    if bad or not ips:
        raise RequestError(f"URL {url!r}: refused, {host} is a private, loopback or reserved "
                           f"address ({', '.join(bad) or 'no address'}). Upload the file instead, or start the "
                           f"server with --allow-private-urls if it should fetch from your own network.", 400)
    netloc = parts.netloc.rpartition("@")[2]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(url, parts.scheme, host, port, netloc, target, ips)


def _ip_url(t: _Target, ip: str) -> str:
    """``t``'s URL with the vetted address ``ip`` in place of the host name."""
    lit = f"[{ip.split('%')[0]}]" if ":" in ip else ip
    return f"{t.scheme}://{lit}:{t.port}{t.target}"


def fetch_url(url: str, *, max_bytes: int, allow_private: bool = False, timeout: float = 10.0,
              max_redirects: int = 3) -> Fetched:
    """GET ``url`` for the service, refusing anything that could reach inside the network.

    Only http(s); the host name is resolved once and every address it resolves to must be
    public (unless ``allow_private``, see :func:`address_allowed`); the connection then goes
    to one of those vetted addresses itself, with the host name in the ``Host`` header and as
    the TLS server name (the certificate is verified against it), so a second DNS answer
    cannot change the target (DNS rebinding). Redirects are followed by hand and each hop is
    checked the same way; the address actually connected to is checked once more; the body is
    capped at ``max_bytes``.

    Raises:
        RequestError: malformed or refused (400), unreachable or answering with an error (422: the URL
            given cannot be used; no 5xx for another server's failure) or too large (413).
    """
    import httpx

    for _ in range(max_redirects + 1):
        t = _check_url(url, allow_private)
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            err: Exception | None = None
            for ip in t.ips:
                try:
                    req = client.build_request("GET", _ip_url(t, ip), extensions={"sni_hostname": t.host},
                                               headers={"Host": t.netloc, "User-Agent": "faceforge"})
                    r = client.send(req, stream=True)
                except httpx.ConnectError as e:  # try the next vetted address
                    err = e
                    continue
                except httpx.HTTPError as e:
                    raise RequestError(f"URL {url!r}: could not fetch it ({type(e).__name__}: {e}).", 422) from e
                try:
                    nxt = _read(r, t, allow_private, max_bytes)
                except httpx.HTTPError as e:
                    raise RequestError(f"URL {url!r}: could not fetch it ({type(e).__name__}: {e}).", 422) from e
                finally:
                    r.close()
                if isinstance(nxt, Fetched):
                    return nxt
                url = nxt
                break
            else:
                raise RequestError(f"URL {url!r}: could not connect to {t.host} ({err}).", 422)
    raise RequestError(f"URL {url!r}: more than {max_redirects} redirects.", 422)


def _read(r: Any, t: _Target, allow_private: bool, max_bytes: int) -> Fetched | str:
    """The body of response ``r`` to hop ``t`` (capped), or the URL it redirects to."""
    stream = r.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer and not address_allowed(str(peer[0]), allow_private):
        raise RequestError(f"URL {t.url!r}: refused, it connected to {peer[0]}, a private address.")
    if r.is_redirect:
        return urljoin(t.url, r.headers.get("location", ""))
    if r.status_code >= 400:
        raise RequestError(f"URL {t.url!r}: the server answered HTTP {r.status_code}.", 422)
    try:
        n = int(r.headers.get("content-length") or 0)
    except ValueError:
        n = 0
    if n > max_bytes:
        raise limit_error(f"URL {t.url!r}", max_bytes)
    buf = bytearray()
    for chunk in r.iter_bytes():
        buf += chunk
        if len(buf) > max_bytes:
            raise limit_error(f"URL {t.url!r}", max_bytes)
    return Fetched(t.url, bytes(buf))


def is_loopback_host(host: str) -> bool:
    """Whether binding to ``host`` keeps the service on this machine."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
