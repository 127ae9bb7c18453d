#!/usr/bin/env bash
# Quick start, command 2: install what is missing, build, and run every test tier:
#   1. release build: unit, fuzz-corpus replay, conformance, interop (python3-websockets,
#      node ws, our client vs ws), browser (headless Chromium) — all over real sockets;
#   2. ASan+UBSan build: every tier again (the server under test is the sanitized binary);
#   3. clang libFuzzer build: each fuzz target for SB_FUZZ_SECONDS (default 30) seconds.
# SB_TEST_FAST=1 runs only stage 1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc)

echo "== stage 1: release build, all tiers"
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs"
ctest --test-dir build/release --output-on-failure -j"$jobs" --timeout 900

if [ "${SB_TEST_FAST:-0}" = 1 ]; then
  exit 0
fi

echo "== stage 2: ASan+UBSan build, all tiers"
cmake --preset dev >/dev/null
cmake --build --preset dev -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir build/dev --output-on-failure -j"$jobs" --timeout 900

echo "== stage 3: libFuzzer, ${SB_FUZZ_SECONDS:-30}s per target"
cmake --preset fuzz >/dev/null
fuzz_targets=$(cd fuzz && ls ./*_fuzz.cpp | sed 's|^\./||; s|\.cpp$||')
# shellcheck disable=SC2086  # one word per target
cmake --build --preset fuzz -j"$jobs" --target $fuzz_targets
mkdir -p build/fuzz/artifacts
for bin in build/fuzz/fuzz/*_fuzz; do
  name=$(basename "$bin" _fuzz)
  work=$(mktemp -d)
  cp -r "fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  echo "-- fuzzing $name"
  "$bin" -max_total_time="${SB_FUZZ_SECONDS:-30}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build/fuzz/artifacts/ -print_final_stats=1 "$work" 2>&1 | tail -n 12
  rm -rf "$work"
done
echo "fuzzing finished with no crash"
