"""Reading the other capabilities' services (live registry, edge registry, packager) by the
contracts in notes/contracts.md, defensively: a missing or failing service degrades the answer,
never the API."""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import asdict, is_dataclass
from typing import Any

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """Something JSON can carry (QoS figures may be dataclasses, enums, numbers)."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return None


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def live_info(registry: Any, name: str) -> dict[str, Any]:
    """{"state", "viewers", "qos", "tracks"} for one stream; offline when unknown."""
    info: Any = None
    if registry is not None:
        for attr in ("info", "stream_info", "get_info", "get"):
            fn = getattr(registry, attr, None)
            if callable(fn):
                try:
                    info = fn(name)
                except Exception:
                    log.debug("live registry %s(%r) failed", attr, name, exc_info=True)
                    continue
                break
    if info is None or inspect.isawaitable(info):
        if inspect.iscoroutine(info):
            info.close()
        return {"state": "offline", "viewers": 0, "qos": {}, "tracks": []}
    state = _get(info, "state", "offline")
    state = str(getattr(state, "value", state)).lower()
    readers = _get(info, "readers", 0)
    viewers = len(readers) if isinstance(readers, (list, tuple, set, dict)) else readers
    qos = _plain(_get(info, "qos", {})) or {}
    tracks = _plain(_get(info, "tracks", [])) or []
    return {
        "state": "live" if state == "live" else "offline",
        "viewers": int(viewers) if isinstance(viewers, (int, float)) else 0,
        "qos": qos if isinstance(qos, dict) else {},
        "tracks": tracks if isinstance(tracks, list) else [],
    }


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def normalize_edge(edge: Any) -> dict[str, Any] | None:
    edge = _plain(edge)
    if not isinstance(edge, dict) or "id" not in edge:
        return None
    raw_load = edge.get("load")
    load: dict[str, Any] = raw_load if isinstance(raw_load, dict) else {}
    num = (int, float)
    last_seen = edge.get("last_seen")
    return {
        "id": str(edge["id"]),
        "url": str(edge["url"]) if edge.get("url") is not None else None,
        "region": str(edge["region"]) if edge.get("region") is not None else None,
        "healthy": bool(edge.get("healthy", False)),
        "draining": bool(edge.get("draining", False)),
        "load": {k: (load.get(k) if isinstance(load.get(k), num) and not isinstance(load.get(k), bool) else None)
                 for k in ("connections", "bandwidth_bps", "cpu")},
        "last_seen": last_seen if isinstance(last_seen, (int, float, str)) and not isinstance(last_seen, bool)
        else None,
    }
