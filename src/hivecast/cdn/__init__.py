"""The CDN edge tier: RFC 9111 caching rules, storage and eviction, coalescing, the edge proxy,
purge/prefetch, edge registration and request routing (DNS and HTTP 302).

Rule modules (`cachecontrol`, `freshness`, `storability`, `vary`, `validation`, `invalidation`,
`ranges`) are sans-I/O: headers and `now` in, decisions out. The asyncio parts (`upstream`,
`edge`, `registry`, `dns_router`) are thin adapters around them.
"""
