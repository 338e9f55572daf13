#!/usr/bin/env bash
# Installs the real peers the suite talks to (../shared/INTEROP.md). Each step may fail on a
# machine that cannot have that peer; the tests that need it then skip and say why.
set -uo pipefail
cd "$(dirname "$0")/.."
log() { echo "provision: $*" >&2; }

debs=(ffmpeg tshark wrk)
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
