"""The cross-node credential messages: what they change, and that anything else is ignored."""

from __future__ import annotations

import json
import time

from hypothesis import given
from hypothesis import strategies as st

from hivecast.api.context import ApiContext
from hivecast.api.revocations import RevocationFeed, apply
from hivecast.config import Settings


def _ctx() -> ApiContext:
    return ApiContext.build(Settings.model_validate({}), "s" * 40, None, None)


def test_forget_and_revoke() -> None:
    ctx = _ctx()
    ctx.cache_principal("key:x", object(), time.monotonic())
    assert apply(ctx, {"kind": "forget"})
    assert ctx.auth_cache == {}
    assert apply(ctx, {"kind": "revoke", "jti": "abc", "expires": time.time() + 60})
    assert "abc" in ctx.revoked_access
    # Expired revocations are dropped when new ones come in.
    assert apply(ctx, {"kind": "revoke", "jti": "old", "expires": time.time() - 1})
    assert apply(ctx, {"kind": "revoke", "jti": "new", "expires": time.time() + 60})
    assert "old" not in ctx.revoked_access and "new" in ctx.revoked_access


def test_malformed_messages_change_nothing() -> None:
    ctx = _ctx()
    for message in ({}, {"kind": "revoke"}, {"kind": "revoke", "jti": 5, "expires": 1.0},
                    {"kind": "revoke", "jti": "x" * 500, "expires": 1.0}, {"kind": "revoke", "jti": "a", "expires": "1"},
                    {"kind": "drop tables"}):
        assert not apply(ctx, message)
    assert ctx.revoked_access == {}


@given(st.one_of(st.binary(max_size=5000), st.text(max_size=5000),
                 st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.integers(), st.text(max_size=200),
                                                                 st.floats(allow_nan=True)), max_size=5)
                 .map(lambda d: json.dumps(d).encode())))
def test_receive_never_raises(raw: bytes | str) -> None:
    ctx = _ctx()
    feed = RevocationFeed(client=None, ctx=ctx)
    feed._receive(raw)
    for jti in ctx.revoked_access:
        assert isinstance(jti, str) and len(jti) <= 128
