"""What a request may bring in: sniffed file types, size limits, and URL fetching without SSRF.

Nothing here trusts a client's file name or content type: files are typed by their first bytes,
and their names never become paths on the server.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from faceforge.errors import FaceforgeError

IMAGE_TYPES = ("jpeg", "png", "gif", "bmp", "webp", "tiff", "pnm")
VIDEO_TYPES = ("mp4", "avi", "mkv", "mpeg")


#: Host name resolution used by :func:`fetch_url` (tests replace it to stay off the network).
resolve = socket.getaddrinfo


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


def address_allowed(ip: str, allow_private: bool) -> bool:
    """Whether the service may connect to ``ip``: public addresses only, unless ``allow_private``."""
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if allow_private:
        return not addr.is_multicast and not addr.is_unspecified
    return addr.is_global and not (addr.is_multicast or addr.is_reserved or addr.is_link_local)


@dataclass
class Fetched:
    url: str
    data: bytes


def fetch_url(url: str, *, max_bytes: int, allow_private: bool = False, timeout: float = 10.0,
              max_redirects: int = 3) -> Fetched:
    """GET ``url`` for the service, refusing anything that could reach inside the network.

    Only http(s); every address the host name resolves to must be public (unless
    ``allow_private``); redirects are followed by hand and each hop is checked again; the
    address actually connected to is checked once more before the body is read (DNS rebinding);
    the body is capped at ``max_bytes``.

    Raises:
        RequestError: refused (400), unreachable (502) or too large (413).
    """
    import httpx

    for _ in range(max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RequestError(f"URL {url!r}: only http:// and https:// URLs with a host are accepted.")
        try:
            infos = resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                       type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise RequestError(f"URL {url!r}: cannot resolve host {parts.hostname!r} ({e}).", 502) from e
        ips = {str(i[4][0]) for i in infos}  # IPv4/IPv6 socket addresses start with the address string
        bad = sorted(ip for ip in ips if not address_allowed(ip, allow_private))
        if bad:
            raise RequestError(f"URL {url!r}: refused, {parts.hostname} is a private, loopback or reserved "
                               f"address ({', '.join(bad)}). Upload the file instead, or start the server "
                               f"with --allow-private-urls if it should fetch from your own network.", 400)
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
                with client.stream("GET", url, headers={"User-Agent": "faceforge"}) as r:
                    stream = r.extensions.get("network_stream")
                    peer = stream.get_extra_info("server_addr") if stream is not None else None
                    if peer and not address_allowed(str(peer[0]), allow_private):
                        raise RequestError(f"URL {url!r}: refused, it connected to {peer[0]}, a private address.")
                    if r.is_redirect:
                        url = urljoin(url, r.headers.get("location", ""))
                        continue
                    if r.status_code >= 400:
                        raise RequestError(f"URL {url!r}: the server answered HTTP {r.status_code}.", 502)
                    n = int(r.headers.get("content-length") or 0)
                    if n > max_bytes:
                        raise limit_error(f"URL {url!r}", max_bytes)
                    buf = bytearray()
                    for chunk in r.iter_bytes():
                        buf += chunk
                        if len(buf) > max_bytes:
                            raise limit_error(f"URL {url!r}", max_bytes)
                    return Fetched(url, bytes(buf))
        except httpx.HTTPError as e:
            raise RequestError(f"URL {url!r}: could not fetch it ({type(e).__name__}: {e}).", 502) from e
    raise RequestError(f"URL {url!r}: more than {max_redirects} redirects.", 502)


def is_loopback_host(host: str) -> bool:
    """Whether binding to ``host`` keeps the service on this machine."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
