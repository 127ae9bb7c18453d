#!/usr/bin/env bash
# Installs what building (and, with "test", testing) Switchboard needs on Debian 12, and only
# what is missing: a second run costs a few dpkg queries and a file comparison. Run as root (or
# with sudo on PATH), from the repository's root.
set -euo pipefail
mode=${1:-build}

pkgs=(build-essential cmake pkg-config libssl-dev zlib1g-dev libsimdjson-dev libtomlplusplus-dev libhiredis-dev libnats-dev liburing-dev)
# Node in every mode: the build embeds uPlot from node_modules (the /admin dashboard).
command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
if [ "$mode" = test ]; then
  pkgs+=(libgtest-dev libgmock-dev libbenchmark-dev clang-14 libclang-rt-14-dev
         python3 python3-websockets python3-jwt python3-cryptography chromium openssl
         redis-server nats-server haproxy)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ -f package-lock.json ]; then
  # The pinned node packages (package-lock.json): uplot, embedded by the build, and the test
  # suites' packages. Reinstalled only when the lock file changed since the last install.
  stamp=node_modules/.sb-lock-stamp
  if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json "$stamp"
  fi
fi
