"""An ABR client that plays HLS or DASH without decoding (`hivecast play URL`).

- `manifest`: HLS and DASH parsed into one model (variants, segments), text in, model out.
- `estimator`: throughput estimate from finished downloads (two EWMAs, the lower wins).
- `rules`: rendition choice, BOLA with a throughput cap at start-up; pure functions.
- `fetcher`: a small HTTP/1.1 client with a token-bucket throttle (to test QoE under a given link).
- `player`: the playback loop on the media clock (buffer model, stalls, switches) and its report.
"""
