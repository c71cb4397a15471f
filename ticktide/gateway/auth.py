"""Bearer tokens for the gateway.

Tokens come from a file (one per line, ``#`` comments) and/or the environment
variable ``TICKTIDE_GATEWAY_TOKENS`` (comma-separated). A presented token is
compared in constant time against every configured token (SHA-256 digests with
``hmac.compare_digest``, no early exit), so neither the match position nor the
length leaks through timing. Logs and limits never see a token, only its
``token_id`` (a short fingerprint that cannot be turned back into the token).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

ENV_VAR = "TICKTIDE_GATEWAY_TOKENS"
MIN_TOKEN_LENGTH = 16


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def token_id(token: str) -> str:
    """A fingerprint safe to log: ``tok-`` and 8 hex digits of a keyed hash."""
    return "tok-" + hashlib.sha256(b"ticktide-gateway:" + token.encode("utf-8", "surrogatepass")).hexdigest()[:8]


class TokenStore:
    def __init__(self, tokens: list[str]) -> None:
        tokens = [t.strip() for t in tokens if t.strip()]
        short = [token_id(t) for t in tokens if len(t) < MIN_TOKEN_LENGTH]
        if short:
            raise ValueError(f"tokens must be at least {MIN_TOKEN_LENGTH} characters: {', '.join(short)} "
                             "are shorter (ids shown, not tokens)")
        self._entries = [(_digest(t), token_id(t)) for t in dict.fromkeys(tokens)]

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def load(cls, path: str | None = None, env: dict[str, str] | None = None) -> "TokenStore":
        env = os.environ if env is None else env
        tokens: list[str] = []
        if path:
            for line in Path(path).read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    tokens.append(line)
        tokens.extend(env.get(ENV_VAR, "").split(","))
        return cls(tokens)

    def check(self, presented: str | None) -> str | None:
        """The ``token_id`` of a valid token, else None; constant time in the token's content."""
        if not presented:
            return None
        given = _digest(presented)
        found: str | None = None
        for digest, tid in self._entries:
            if hmac.compare_digest(given, digest):
                found = tid
        return found


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
