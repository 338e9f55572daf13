# Sourced by serve.sh and test.sh: make .venv with hivecast installed (extras in $HIVECAST_EXTRAS).
set -euo pipefail
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; raise SystemExit(sys.version_info < (3, 11))'; then
      PY="$candidate"; break
    fi
  done
fi
if [[ -z "$PY" ]]; then
  echo "hivecast needs Python 3.11 or newer (apt-get install python3)" >&2; exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  if ! "$PY" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      echo "installing python3-venv (Debian ships venv separately)" >&2
      DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PY" -m venv .venv
    else
      echo "cannot create a virtual environment: run 'sudo apt-get install python3-venv' first" >&2; exit 1
    fi
  fi
fi
stamp=".venv/.hivecast-installed"
want="$(cat pyproject.toml | sha1sum | cut -c1-16)-${HIVECAST_EXTRAS:-none}"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  spec="."
  [[ -n "${HIVECAST_EXTRAS:-}" ]] && spec=".[${HIVECAST_EXTRAS}]"
  .venv/bin/python -m pip install -q -e "$spec"
  echo "$want" > "$stamp"
fi
