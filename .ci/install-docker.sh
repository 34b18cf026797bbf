#!/bin/sh
# Installs what the Docker runner tests need on a fresh Debian machine: a Docker
# engine (dockerd, started privately by tests/fixtures/docker.py) and a static
# busybox the fixture turns into a tiny image without any registry.
# Idempotent: installs only what is missing.
set -eu

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
[ -x /bin/busybox ] || missing="$missing busybox-static"

if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update
    # shellcheck disable=SC2086  # word splitting of the package list is wanted
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
fi
