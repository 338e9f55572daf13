"""Chord (Stoica et al., 2001) for the edge ring: identifier ring, successor list and predecessor,
finger tables, stabilization, iterative O(log N) lookups. Sans-I/O core (`node.py`) plus an asyncio
adapter (`server.py`) and the edge placement hook (`placement.py`: which edge owns an object key)."""
