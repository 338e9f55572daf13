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
  nginx-light libnginx-mod-rtmp
  # CDN: dig for the DNS router tests; wrk and nginx are the benchmark's load generator and peer
  dnsutils wrk
  # HLS/DASH: hls.js and dash.js play our playlists in Debian's Chromium (tests/interop/media/test_browser.py)
  # browsers: Debian's Chromium for Playwright-driven tests (WebSocket from a real browser, web UI)
  chromium)
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

# Autobahn|Testsuite (WebSocket conformance) runs on Python 2.7, found under pyenv on these machines.
if ! [[ -x "$HOME/.local/bin/wstest" ]]; then
  py27=""
  if command -v pyenv >/dev/null 2>&1 && [[ -x "$(pyenv root)/versions/2.7.18/bin/python" ]]; then
    py27="$(pyenv root)/versions/2.7.18/bin/python"
  elif [[ -x "$HOME/.pyenv/versions/2.7.18/bin/python" ]]; then
    py27="$HOME/.pyenv/versions/2.7.18/bin/python"
  elif command -v python2.7 >/dev/null 2>&1; then
    py27="$(command -v python2.7)"
  fi
  if [[ -n $py27 ]]; then
    log "installing autobahntestsuite with $py27"
    "$py27" -m pip install -q --user autobahntestsuite >/dev/null 2>&1 \
      || log "could not install autobahntestsuite; the Autobahn tests will skip"
  else
    log "no Python 2.7: skipping autobahntestsuite; the Autobahn tests will skip"
  fi
fi

# HLS/DASH players for the browser interop test, from npm into a cache outside the work tree.
players="${XDG_CACHE_HOME:-$HOME/.cache}/hivecast-peers/npm"
if ! command -v npm >/dev/null 2>&1 && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends npm >/dev/null 2>&1 \
    || log "could not install npm; the browser playback test will skip"
fi
if command -v npm >/dev/null 2>&1; then
  if [[ ! -f "$players/node_modules/hls.js/dist/hls.min.js" || ! -f "$players/node_modules/dashjs/dist/dash.all.min.js" ]]; then
    log "installing hls.js and dashjs from npm"
    mkdir -p "$players"
    npm install --silent --no-audit --no-fund --prefix "$players" hls.js@1 dashjs@4 >/dev/null 2>&1 \
      || log "could not install hls.js/dashjs; the browser playback test will skip"
  fi
fi
exit 0
