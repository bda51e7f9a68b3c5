"""HTTP/1.1 over a plain socket, so tests can send what no client library would (any bytes in a
header, repeated headers, a chosen source address on loopback: 127.0.0.2 is another client)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass


@dataclass
class Response:
    status: int  # 0: the server closed the connection without answering
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict | None:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def request(port: int, method: str | bytes, path: str | bytes, headers: list[tuple[bytes | str, bytes | str]] = (),
            body: bytes = b"", source: str = "127.0.0.1", host: bytes = b"127.0.0.1", length: bool = True,
            timeout: float = 30.0) -> Response:
    """One request on a fresh connection (Connection: close); `length=False` leaves Content-Length out."""
    def b(x: bytes | str) -> bytes:
        return x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass")  # lone surrogates as bytes

    lines = [b"%s %s HTTP/1.1" % (b(method), b(path)), b"Host: " + host + b":%d" % port, b"Connection: close"]
    lines += [b(k) + b": " + b(v) for k, v in headers]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    raw = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        chunks = []
        try:  # a server may answer and close before reading a large body: keep what it said
            s.sendall(raw)
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    return parse(b"".join(chunks))


def parse(data: bytes) -> Response:
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        return Response(0, {}, data)
    first, *rest = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in rest:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return Response(int(first.split()[1]), headers, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        n = int(size.split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out, data = out + data[:n], data[n + 2:]
    return out
