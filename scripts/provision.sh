#!/usr/bin/env bash
# Installs the real peers the suite talks to (../shared/INTEROP.md). Each step may fail on a
# machine that cannot have that peer; the tests that need it then skip and say why.
set -uo pipefail
cd "$(dirname "$0")/.."
log() { echo "provision: $*" >&2; }

debs=(ffmpeg tshark
  # RTSP: gst-rtsp-server is the third-party RTSP source in tests/interop and the peer of bench/rtsp_fanout.py
  python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav
  # RTMP: nginx-rtmp is a push-relay target in tests/interop and the peer of bench/rtmp_fanout.py
  nginx-light libnginx-mod-rtmp)
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in "${debs[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
    (apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null) \
      || log "could not install ${missing[*]}; tests needing them will skip"
  fi
else
  log "not root: skipping Debian packages (${debs[*]}); tests needing them skip unless already installed"
fi
exit 0
