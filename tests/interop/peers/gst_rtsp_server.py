"""GStreamer's RTSP server relaying an MPEG-TS (H.264 + AAC) fed over UDP: the third-party RTSP source.

Run with the system Python (Debian's python3-gst-1.0, gir1.2-gst-rtsp-server-1.0):
    /usr/bin/python3 gst_rtsp_server.py RTSP_PORT /path TS_UDP_PORT
Prints "ready" once listening. One shared media, so every reader gets the same relayed packets and
the server never encodes (as ../shared/INTEROP.md describes for the benchmark peer).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, path, ts_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( udpsrc port={ts_port} address=127.0.0.1 buffer-size=8388608 caps=video/mpegts,systemstream=true "
        "! tsdemux name=d d. ! queue ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 "
        "config-interval=-1 d. ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97 )")
    factory.set_shared(True)
    held = []

    def configured(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        # Seen with gst-rtsp-server 1.22: readers joining while the shared media is prepared again
        # can hang it for good; one extra prepare() held for the server's life avoids that.
        held.append(media)
        if "--hold" in sys.argv:
            GLib.idle_add(lambda: (media.prepare(None), False)[1])

    factory.connect("media-configure", configured)
    server.get_mount_points().add_factory(path, factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
