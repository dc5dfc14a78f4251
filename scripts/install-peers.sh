#!/usr/bin/env bash
# Installs the Debian packages whose programs the real-peer tests (test/peers/) start: VNC servers, VNC
# viewers, X servers and X tools, Chromium for the browser viewer's tests (run headless, driven by
# playwright-core from npm; never a browser download), and websockify, the baseline of bench/pipe.bench.ts.
# Idempotent: prints one line and changes nothing when all are present.
# Usage: sudo scripts/install-peers.sh   (CI=true: a package that cannot be installed fails the run)
set -euo pipefail

# Package, then the program the tests run from it (checked with `command -v` as well as dpkg).
PEER_PACKAGES=(
  tigervnc-standalone-server:Xvnc
  tigervnc-tools:vncpasswd
  tigervnc-viewer:xtigervncviewer
  x11vnc:x11vnc
  xvfb:Xvfb
  vncsnapshot:vncsnapshot
  x11-utils:xdpyinfo
  x11-xserver-utils:xsetroot
  xterm:xterm
  imagemagick:import
  openssl:openssl
  chromium:chromium
  websockify:websockify
)
# Left out for now; the issues that add tests needing them move them up into PEER_PACKAGES:
# LATER_PEER_PACKAGES=(redis-server:redis-server)

ci=false
case "${CI:-}" in true | 1) ci=true ;; esac

missing=()
for entry in "${PEER_PACKAGES[@]}"; do
  pkg=${entry%%:*}
  bin=${entry#*:}
  installed=false
  if command -v dpkg-query >/dev/null 2>&1; then
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == "install ok installed" ]]; then
      installed=true
    fi
  else
    installed=true # not Debian: judge by the program alone
  fi
  if [[ $installed != true ]] || ! command -v "$bin" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-peers: all ${#PEER_PACKAGES[@]} peer packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-peers: missing ${missing[*]}" >&2
  echo "install-peers: install them as root on Debian: apt-get install --no-install-recommends ${missing[*]}" >&2
  if [[ $ci == true ]]; then exit 1; fi
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
updated=false
apt_update() {
  if [[ $updated == false ]]; then
    apt-get update -q
    updated=true
  fi
}

# A fresh image often has no package lists at all; update first when any missing package has no candidate.
for pkg in "${missing[@]}"; do
  if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [^(]'; then
    apt_update
    break
  fi
done

# --no-install-recommends: checked in a minimal bookworm (debootstrap --variant=minbase, empty package lists)
# that test/peers/rig.test.ts passes and that xterm (built-in "fixed" font), xdpyinfo, Xvfb, x11vnc and
# vncviewer run, without the recommended xfonts-base, ghostscript and ImageMagick extra coders.
apt_install() { apt-get install -y -q --no-install-recommends "${missing[@]}"; }
if ! apt_install; then
  if [[ $updated == true ]]; then exit 1; fi
  apt_update # stale lists: packages moved on the mirror since the last update
  apt_install
fi

still=()
for entry in "${PEER_PACKAGES[@]}"; do
  if ! command -v "${entry#*:}" >/dev/null 2>&1; then still+=("${entry#*:}"); fi
done
if ((${#still[@]} > 0)); then
  echo "install-peers: installed, but still not on PATH: ${still[*]}" >&2
  exit 1
fi
echo "install-peers: installed ${missing[*]}"
