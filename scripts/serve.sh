#!/usr/bin/env bash
# Quick start: set up .venv and run an all-in-one node with the demo live channel.
# Extra arguments go to `hivecast serve` (for example --http-port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
exec .venv/bin/hivecast serve --demo "$@"
