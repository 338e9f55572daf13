"""Mainline DHT (Kademlia, BEP 5): sans-I/O cores (messages, routing table, lookups, tokens, peer
store, query handler) and a thin asyncio adapter (`server.py`)."""
