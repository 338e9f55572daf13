"""Edge selection and the registry, as pure logic with a virtual clock."""

from __future__ import annotations

import asyncio
from typing import Any

from hivecast.cdn.registry import EdgeRegistry
from hivecast.cdn.selection import RegionMap, choose, load_score


def edge(i: str, region: str = "eu", **kw: Any) -> dict[str, Any]:
    return {"id": i, "url": f"http://127.0.0.1:{1000 + len(i)}", "region": region, "healthy": True,
            "draining": False, "load": {}, **kw}


def test_region_map_most_specific_network_wins() -> None:
    m = RegionMap.from_config({"10.0.0.0/8": "eu", "10.1.0.0/16": "us", "2001:db8::/32": "ap"})
    assert m.region_of("10.2.3.4") == "eu" and m.region_of("10.1.3.4") == "us"
    assert m.region_of("2001:db8::1") == "ap" and m.region_of("192.0.2.1") is None
    assert m.region_of("not an ip") is None


def test_choose_filters_health_drain_and_region() -> None:
    edges = [edge("a"), edge("b", draining=True), edge("c", healthy=False), edge("d", region="us")]
    assert [e["id"] for e in choose(edges, region="eu", key="x", count=5)] == ["a"]
    assert [e["id"] for e in choose(edges, region="us", key="x", count=5)] == ["d"]
    # no edge in the client's region: any healthy one
    assert {e["id"] for e in choose(edges, region="ap", key="x", count=5)} == {"a", "d"}
    assert choose([edge("c", healthy=False)], region="eu", key="x") == []


def test_rendezvous_hashing_is_stable_and_moves_few_keys() -> None:
    edges = [edge(f"e{i}") for i in range(5)]
    keys = [f"/seg{i}.ts" for i in range(500)]
    before = {k: choose(edges, region="eu", key=k)[0]["id"] for k in keys}
    assert before == {k: choose(edges, region="eu", key=k)[0]["id"] for k in keys}
    assert len(set(before.values())) == 5
    after = {k: choose(edges[:4], region="eu", key=k)[0]["id"] for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(before[k] == "e4" for k in moved)  # only the removed edge's keys move


def test_heavily_loaded_edge_is_skipped_while_a_light_one_exists() -> None:
    light = edge("light", load={"cpu": 0.1})
    heavy = edge("heavy", load={"cpu": 3.5, "connections": 5000})
    assert load_score(heavy) > load_score(light)
    assert all(choose([light, heavy], region="eu", key=f"k{i}")[0]["id"] == "light" for i in range(50))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_registry_register_heartbeat_drain_and_expiry() -> None:
    clock = Clock()
    reg = EdgeRegistry(health_interval=1.0, heartbeat_interval=1.0, clock=clock, wall=clock)
    reg.register("e1", "http://127.0.0.1:1", "eu")
    assert reg.heartbeat("e1", {"connections": 3, "bandwidth_bps": 1e6, "cpu": 0.5, "junk": 1})
    listed = reg.list_edges()[0]
    assert listed["load"] == {"connections": 3.0, "bandwidth_bps": 1e6, "cpu": 0.5} and listed["healthy"]
    assert reg.set_draining("e1", True) and reg.list_edges()[0]["draining"]
    assert not reg.set_draining("nope", True) and not reg.heartbeat("nope", {})
    clock.now += 3.5  # three heartbeats missed
    reg.expire()
    assert not reg.list_edges()[0]["healthy"]


async def test_event_log_long_poll() -> None:
    reg = EdgeRegistry()
    waiter = asyncio.ensure_future(reg.wait_events(0, 5.0))
    await asyncio.sleep(0)
    reg.publish_event({"topic": "cdn.purge", "data": {"kind": "url", "values": ["/a"]}})
    events = await waiter
    assert [e["seq"] for e in events] == [1]
    assert await reg.wait_events(1, 0.01) == []
    assert [e["seq"] for e in reg.events_after(99)] == [1]  # a seq from before an origin restart
