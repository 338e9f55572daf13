"""BitTorrent for on-demand videos: bencode, metainfo, magnet links, tracker, peer engine, seeder, client.

Protocol cores (bencode, metainfo, magnet, wire, picker, choker, tracker cores) do no I/O; the
asyncio adapters (`session`, `peer`, `tracker.server`, `service`) wrap them over `hivecast.net`.
"""
