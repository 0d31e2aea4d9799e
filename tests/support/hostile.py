"""Hostile HTTP clients for the callback tests and benchmark: what httpx will not send.

:func:`raw_request` sends a request of any size (httpx refuses URLs over 64 KB; a
hostile client does not).
:func:`chunked_upload` streams a huge chunked body over a raw socket and stops as soon
as the server answers or hangs up, reporting how much it got to send: a server that
cuts the upload off answers after about its limit; one that reads everything answers
only at the end.
"""

from __future__ import annotations

import select
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Upload:
    """How a chunked upload ended: the server's status (None: no answer) and bytes sent."""

    status: int | None
    sent: int


def _status(head: bytes) -> int | None:
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


@dataclass(frozen=True)
class Reply:
    """Status and body of a raw request's answer."""

    status: int | None
    body: bytes


def raw_request(base_url: str, method: str, target: str, body: bytes = b"", *, timeout: float = 30.0) -> Reply:
    """One HTTP/1.1 request to ``base_url`` (``http://host:port``) on its own connection."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port or 80)), timeout=timeout) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1") + body)
        answer = bytearray()
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, content = bytes(answer).partition(b"\r\n\r\n")
    return Reply(_status(head), content)


def chunked_upload(host: str, port: int, target: str, *, total: int, chunk: int = 64 * 1024,
                   timeout: float = 30.0) -> Upload:
    """POST ``total`` bytes to ``target`` (path and query) with chunked transfer encoding."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # little hidden in our own buffer
        sock.sendall(f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode("ascii"))
        piece = f"{chunk:x}\r\n".encode("ascii") + b"<" * chunk + b"\r\n"
        sent = 0
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(piece)
            except OSError:  # the server hung up mid-upload
                break
            sent += chunk
        else:
            sock.sendall(b"0\r\n\r\n")
        try:
            return Upload(_status(sock.recv(4096)), sent)
        except OSError:
            return Upload(None, sent)


def declared_upload(host: str, port: int, target: str, *, declared: int, timeout: float = 10.0) -> int | None:
    """Send only the headers of a POST declaring ``declared`` bytes; the status of the answer."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
                     f"Content-Length: {declared}\r\n\r\n".encode("ascii"))
        return _status(sock.recv(4096))
