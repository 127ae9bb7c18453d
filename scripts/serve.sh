#!/usr/bin/env bash
# Quick start, command 1: install what is missing (Debian packages, and the pinned npm packages
# the build embeds: uPlot for /admin), build the release binary, run the server on its embedded
# defaults (port 8080, demo page at http://localhost:8080/). Extra arguments go to
# `switchboard serve` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
# Its own build directory, without tests: serving needs no test framework.
cmake -S . -B build/serve -DCMAKE_BUILD_TYPE=Release -DSB_TESTS=OFF -DSB_BENCH=OFF >/dev/null
cmake --build build/serve -j"$(nproc)" --target switchboard
exec build/serve/switchboard serve "$@"
