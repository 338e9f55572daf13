"""Access tokens shared by the REST API and the WebSocket layer (same JWT everywhere)."""

from hivecast.auth.tokens import (
    AccessClaims,
    InvalidToken,
    decode_access_token,
    issue_access_token,
    load_or_create_secret,
)

__all__ = ["AccessClaims", "InvalidToken", "decode_access_token", "issue_access_token", "load_or_create_secret"]
