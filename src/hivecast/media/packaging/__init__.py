"""HLS and DASH packaging: the segment model, playlist and manifest writers, fMP4 fragments, VOD and live.

Layout (each module is named for what it is):
- `model`: renditions, segments and parts, the one model both writers read.
- `hls`, `dash`: pure writers, model in, text out (RFC 8216 + LL-HLS; ISO/IEC 23009-1).
- `bmff`: the ISO BMFF boxes we read and stamp (init segments, moof/tfdt/trun), bounded and fuzzed.
- `fragments`: PyAV muxes packets into one moof+mdat; we stamp its decode time and sequence number.
- `segmenter`: where to cut (keyframes at a target duration), pure.
- `ladder`: bitrate ladder rungs ("720p" -> size and bitrates).
- `vod`: package a file (in a worker process), atomic output; `service`: the node's packager.
- `live`: package live streams from the registry as they arrive.
"""
