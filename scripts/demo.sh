#!/bin/sh
# `make demo`: runs the blob store example and shows where its leaked
# blobs were opened, with go tool pprof when Go is installed and with
# cpprof's own decoder otherwise.
set -eu
build=${1:-build}
out=${CPPROF_DEMO_DIR:-$build/demo}
mkdir -p "$out"
profile="$out/blobstore.Open.pb.gz"

echo "== running examples/blobstore (1000 blobs opened, 200 closed)"
"$build/examples/blobstore/blobstore" "$profile"

echo
if command -v go >/dev/null 2>&1; then
    echo "== go tool pprof -top $profile"
    HOME=${HOME:-/tmp} go tool pprof -top "$profile"
else
    echo "== cpprof top $profile (go not installed)"
    "$build/tools/cpprof/cpprof" top "$profile"
fi
