"""Short-lived JWT access tokens (HS256). The REST API issues them; every other surface verifies them."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

ALGORITHM = "HS256"
ISSUER = "hivecast"


class InvalidToken(Exception):
    """The token is malformed, expired, or not signed by this cluster."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str  # user id
    role: str  # admin | streamer | viewer
    expires_at: int
    token_id: str
    name: str | None = None


def issue_access_token(*, secret: str, subject: str, role: str, ttl: float = 900.0,
                       name: str | None = None, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "iss": ISSUER, "sub": subject, "role": role, "iat": issued, "exp": issued + int(ttl),
        "jti": uuid.uuid4().hex, "typ": "access",
    }
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, *, secret: str, leeway: float = 5.0) -> AccessClaims:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER, leeway=leeway,
                            options={"require": ["exp", "sub", "iat"]})
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    if claims.get("typ") != "access" or not isinstance(claims.get("role"), str):
        raise InvalidToken("not an access token")
    return AccessClaims(subject=str(claims["sub"]), role=claims["role"], expires_at=int(claims["exp"]),
                        token_id=str(claims.get("jti", "")), name=claims.get("name"))


def load_or_create_secret(data_dir: Path, configured: str | None = None) -> str:
    """The signing secret: the configured one, else one generated once and kept in the data dir."""
    if configured:
        return configured
    path = data_dir / "jwt-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return value
