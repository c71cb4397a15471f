"""Helpers shared by the gateway tests (no tests here).

``RawWebSocket`` is a deliberately minimal client on a plain socket with a
tiny receive buffer: it can stop reading, so the gateway sees a client that
does not keep up, and later read everything, close frame included.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct

TOKEN = "test-token-0123456789abcdef"
OTHER_TOKEN = "other-token-0123456789abcdef"


class RawWebSocket:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    @classmethod
    async def connect(cls, host: str, port: int, token: str | None = TOKEN, rcvbuf: int = 4096) -> "RawWebSocket":
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        request = (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n")
        await loop.sock_sendall(sock, request.encode())
        self = cls(sock)
        while b"\r\n\r\n" not in self.buffer:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError(f"closed during handshake: {self.buffer!r}")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))
        return self

    async def send_json(self, obj: object) -> None:
        payload = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await asyncio.get_running_loop().sock_sendall(self.sock, header + mask + masked)

    async def read_frames(self, timeout: float = 10.0) -> tuple[list[dict], tuple[int, str] | None]:
        """Read until the close frame (or EOF); the JSON text frames and (close code, reason)."""
        loop = asyncio.get_running_loop()
        frames: list[dict] = []
        deadline = loop.time() + timeout
        while True:
            frame = self._parse()
            if frame is not None:
                opcode, payload = frame
                if opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    return frames, (code, payload[2:].decode(errors="replace"))
                if opcode == 0x1:
                    frames.append(json.loads(payload))
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return frames, None
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 16), remaining)
            except (asyncio.TimeoutError, ConnectionError):
                return frames, None
            if not chunk:
                return frames, None
            self.buffer += chunk

    def _parse(self) -> tuple[int, bytes] | None:
        b = self.buffer
        if len(b) < 2:
            return None
        opcode, n, pos = b[0] & 0x0F, b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, pos = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, pos = struct.unpack("!Q", b[2:10])[0], 10
        if len(b) < pos + n:
            return None
        self.buffer = b[pos + n:]
        return opcode, b[pos: pos + n]

    def close(self) -> None:
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
