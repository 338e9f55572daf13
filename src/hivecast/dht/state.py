"""The routing table on disk: our node id and the contacts worth pinging at the next start.
Written atomically (temporary file, fsync, rename) so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hivecast.dht.ids import ID_BYTES, NodeInfo

MAX_SAVED = 256


def save_state(path: Path, node_id: bytes, nodes: list[NodeInfo]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"id": node_id.hex(),
            "nodes": [[n.id.hex(), n.addr[0], n.addr[1]] for n in nodes[:MAX_SAVED]]}
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(body, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_state(path: Path) -> tuple[bytes | None, list[NodeInfo]]:
    """Our saved id and contacts; (None, []) when the file is missing or unreadable."""
    try:
        body = json.loads(path.read_text())
        node_id = bytes.fromhex(body["id"])
        if len(node_id) != ID_BYTES:
            return None, []
        nodes = []
        for item in body.get("nodes", [])[:MAX_SAVED]:
            nid = bytes.fromhex(item[0])
            port = int(item[2])
            if len(nid) == ID_BYTES and 0 < port < 65536:
                nodes.append(NodeInfo.make(nid, (str(item[1]), port)))
        return node_id, nodes
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None, []
