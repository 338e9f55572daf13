"""Independent, repeatable random streams derived from one seed and a label per purpose, so that adding
draws to one part of a simulation does not shift the numbers another part sees."""

from __future__ import annotations

import hashlib
import random


def derive_rng(seed: int, *labels: object) -> random.Random:
    material = repr((seed, *labels)).encode()
    return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))
