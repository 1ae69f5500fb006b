#!/bin/sh
# Install Debian's chromium for the headless-browser test of `hubfit scan --html` (tests/test_scan_html.py),
# unless a chromium is already on PATH. Needs root (apt-get); a no-op when chromium is present.
set -eu
for browser in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$browser" >/dev/null 2>&1; then
        exit 0  # tests/test_scan_html.py uses the first of these it finds
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no chromium and no apt-get; tests/test_scan_html.py will be skipped" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian names the package chromium; Ubuntu runners ship chromium-browser as a snap wrapper, so prefer
# chromium and fall back.
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || $SUDO apt-get install -y -qq --no-install-recommends chromium-browser >/dev/null
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
