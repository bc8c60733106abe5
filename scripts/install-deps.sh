#!/bin/sh
# Installs the Debian packages cpprof needs to build and test, and nothing
# else.  Idempotent: apt-get runs only when a package is missing.
set -eu

PACKAGES="build-essential cmake pkg-config zlib1g-dev libunwind-dev libdw-dev
libelf-dev libmicrohttpd-dev libcmocka-dev golang-go curl libjemalloc2
libtcmalloc-minimal4"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
# Node runs the independent trace parser in the tests; any node >= 18 will
# do, so Debian's is installed only when none is on PATH.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# The trace tests' parser, pinned by tests/trace/node/package-lock.json.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$here/tests/trace/node/node_modules/@tracerbench/trace-model" ]; then
    echo "install-deps: npm ci in tests/trace/node"
    npm ci --no-audit --no-fund --prefix "$here/tests/trace/node" >/dev/null
fi
