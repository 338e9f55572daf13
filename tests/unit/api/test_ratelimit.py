"""Token buckets on a virtual clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hivecast.api.ratelimit import TokenBuckets


def test_burst_then_refuse_then_refill() -> None:
    b = TokenBuckets("user", 5, 60.0)
    decisions = [b.take("k", now=100.0) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[0].remaining == 4 and decisions[4].remaining == 0
    refused = decisions[5]
    assert refused.retry_after == 12  # one token every 12 s
    assert dict(refused.headers())["retry-after"] == "12"
    assert dict(refused.headers())["ratelimit-policy"] == '"user";q=5;w=60'
    assert b.take("k", now=111.0).allowed is False
    assert b.take("k", now=112.0).allowed is True
    assert b.take("other", now=112.0).allowed is True  # keys are independent


def test_headers_of_an_allowed_request() -> None:
    d = TokenBuckets("ip", 10, 1.0).take("a", now=0.0)
    h = dict(d.headers())
    assert h["ratelimit"] == '"ip";r=9;t=1' and "retry-after" not in h


def test_key_count_is_bounded() -> None:
    b = TokenBuckets("ip", 1, 1.0, max_keys=100)
    for i in range(1000):
        b.take(str(i), now=float(i))
    assert len(b) == 100


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 1000)), max_size=200),
       st.integers(1, 50), st.floats(0.1, 100))
def test_never_more_than_limit_plus_refill(events: list[tuple[str, float]], limit: int, window: float) -> None:
    b = TokenBuckets("p", limit, window)
    allowed: dict[str, int] = {}
    now = 0.0
    for key, dt in events:
        now += dt / 100
        d = b.take(key, now)
        assert 0 <= d.remaining <= limit
        assert d.allowed or d.retry_after >= 1
        allowed[key] = allowed.get(key, 0) + d.allowed
    for count in allowed.values():
        assert count <= limit + now * limit / window + 1
