"""A minimal gRPC unary call over HTTP/2 on a unix socket — just what the kubelet's List needs.

Why not grpcio: importing it costs the agent ~10 MB of resident memory and background polling threads,
a quarter of its 40 MB budget on every GPU node, for one small request per round. The protocol subset a
unary call needs is small (RFC 9113 framing, RFC 7541 literal headers, the gRPC length-prefixed message).
The tests run this client against grpcio's real server (tests/fixtures/podresources.py).

Deliberate limits: one call per connection; response headers are not HPACK-decoded (no Huffman/dynamic
table), so a failed call is recognised by the absence of a response message (gRPC sends a failure as
trailers only) and reported without the server's status text.
"""

from __future__ import annotations

import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
END_STREAM, ACK, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x8, 0x20
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x2, 0x4
WINDOW = 32 * 1024 * 1024  # more than the kubelet's 16 MiB response cap: no window updates needed mid-call
STREAM = 1
MAX_BODY = 16 * 1024 * 1024 + 5  # the kubelet's pod-resources message cap plus the gRPC prefix


class UnaryCallError(RuntimeError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream) + payload


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: str, value: str) -> bytes:
    """'Literal Header Field without Indexing — New Name', raw (non-Huffman) strings."""
    n, v = name.encode(), value.encode()
    return b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v


def request_frames(path: str, message: bytes, timeout_s: float) -> bytes:
    headers = b"".join(
        _literal(k, v)
        for k, v in (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", f"{max(1, int(timeout_s * 1000))}m"),
        )
    )
    settings = struct.pack(">HI", SETTINGS_ENABLE_PUSH, 0) + struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, WINDOW)
    body = b"\x00" + struct.pack(">I", len(message)) + message  # not compressed, 4-byte length
    return (
        PREFACE
        + _frame(SETTINGS, 0, 0, settings)
        + _frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", WINDOW - 65535))
        + _frame(HEADERS, 0x4, STREAM, headers)  # END_HEADERS
        + _frame(DATA, END_STREAM, STREAM, body)
    )


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UnaryCallError("TIMEOUT", "no complete response in time")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(n - len(buf))
        except TimeoutError as exc:
            raise UnaryCallError("TIMEOUT", "no complete response in time") from exc
        if not chunk:
            raise UnaryCallError("CONNECTION_CLOSED", "the server closed the connection mid-call")
        buf += chunk
    return bytes(buf)


def _strip_padding(flags: int, payload: bytes, kind: int) -> bytes:
    start, end = 0, len(payload)
    if flags & PADDED:
        start, end = 1, len(payload) - payload[0]
    if kind == HEADERS and flags & PRIORITY_FLAG:
        start += 5
    return payload[start:end]


def unary_call(socket_path: str, path: str, message: bytes, timeout_s: float = 5.0) -> bytes:
    """Send one request message to `path` ("/package.Service/Method"); return the response message bytes."""
    deadline = time.monotonic() + timeout_s
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout_s)
        try:
            sock.connect(socket_path)
        except OSError as exc:
            raise UnaryCallError("CONNECT_FAILED", f"{socket_path}: {exc.strerror or exc}") from exc
        try:
            return _exchange(sock, request_frames(path, message, timeout_s), deadline)
        except (TimeoutError, ConnectionError) as exc:
            raise UnaryCallError("TIMEOUT" if isinstance(exc, TimeoutError) else "CONNECTION_CLOSED", str(exc)) from exc
    finally:
        sock.close()


def _exchange(sock: socket.socket, request: bytes, deadline: float) -> bytes:
    sock.sendall(request)
    body = bytearray()
    # Bound the body to what the kubelet may send (16 MiB) so a broken peer cannot grow it without end.
    while True:
        header = _recv_exact(sock, 9, deadline)
        length = int.from_bytes(header[:3], "big")
        kind, flags = header[3], header[4]
        stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        payload = _recv_exact(sock, length, deadline) if length else b""
        if kind == SETTINGS and not flags & ACK:
            sock.sendall(_frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            sock.sendall(_frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            last_stream, code = struct.unpack(">II", payload[:8])
            if last_stream & 0x7FFFFFFF < STREAM or code != 0:
                raise UnaryCallError("GOAWAY", f"error code {code}")
        elif kind == RST_STREAM and stream == STREAM:
            raise UnaryCallError("RST_STREAM", f"error code {int.from_bytes(payload[:4], 'big')}")
        elif kind == DATA and stream == STREAM:
            body += _strip_padding(flags, payload, kind)
            if len(body) > MAX_BODY:
                raise UnaryCallError("PROTOCOL", f"response larger than {MAX_BODY} bytes")
        if stream == STREAM and kind in (DATA, HEADERS) and flags & END_STREAM:
            break
    return _message(bytes(body))


def _message(body: bytes) -> bytes:
    if len(body) < 5:
        # gRPC reports a failed call as trailers only, with no message.
        raise UnaryCallError("CALL_FAILED", "the server answered without a response message")
    if body[0] != 0:
        raise UnaryCallError("PROTOCOL", "compressed response message (none was offered)")
    size = int.from_bytes(body[1:5], "big")
    if len(body) < 5 + size:
        raise UnaryCallError("PROTOCOL", f"truncated response message ({len(body) - 5} of {size} bytes)")
    return body[5 : 5 + size]
