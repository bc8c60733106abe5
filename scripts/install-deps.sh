#!/bin/sh
# Installs the Debian packages cpprof needs to build and test, and nothing
# else.  Idempotent: apt-get runs only when a package is missing.
set -eu

PACKAGES="build-essential cmake pkg-config zlib1g-dev libunwind-dev libdw-dev
libelf-dev libmicrohttpd-dev libcmocka-dev golang-go curl"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
