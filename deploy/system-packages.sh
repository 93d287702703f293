#!/usr/bin/env bash
# Debian packages Paraaf uses: DejaVu fonts (signature stamps, PARAAF_STAMP_FONT);
# SoftHSM2 (a PKCS#11 token: PARAAF_PKCS11_MODULE is tested against it);
# and for the test suite poppler's pdfsig (independent signature validator),
# NSS's certutil (its trust store), Chromium (browser tests) and Node.js with npm
# (AsyncAPI's own parser checks docs/asyncapi.yaml: deploy/asyncapi/), and docker-compose 1.29, whose
# `docker-compose config` checks docker-compose.yml without a Docker engine (tests/unit/test_deploy.py).
set -euo pipefail
missing=()
command -v pdfsig >/dev/null || missing+=(poppler-utils)
command -v certutil >/dev/null || missing+=(libnss3-tools)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
command -v softhsm2-util >/dev/null || missing+=(softhsm2)
command -v npm >/dev/null || missing+=(nodejs npm)
command -v docker-compose >/dev/null || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ]; then
  echo "Missing Debian packages: ${missing[*]}. Run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "Installing ${missing[*]}..."
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
