"""GStreamer's rtspsrc as a second third-party player: play an RTSP URL, decode H.264 + AAC, report counts.

    /usr/bin/python3 gst_rtsp_play.py URL udp|tcp SECONDS
Prints one JSON line: decoded video and audio buffer counts and any error messages.
"""

import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main() -> None:
    url, protocol, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"rtspsrc location={url} protocols={protocol} name=src "
        "src. ! rtph264depay ! h264parse ! avdec_h264 ! fakesink name=v sync=false "
        "src. ! rtpmp4gdepay ! aacparse ! avdec_aac ! fakesink name=a sync=false")
    counts = {"video": 0, "audio": 0}
    for name, key in (("v", "video"), ("a", "audio")):
        sink = pipeline.get_by_name(name)
        sink.set_property("signal-handoffs", True)
        sink.connect("handoff", lambda *_args, key=key: counts.__setitem__(key, counts[key] + 1))
    loop = GLib.MainLoop()
    errors = []

    def on_message(_bus: object, msg: Gst.Message) -> None:
        if msg.type == Gst.MessageType.ERROR:
            errors.append(msg.parse_error()[0].message)
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    print(json.dumps({**counts, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
