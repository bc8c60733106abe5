#!/bin/sh
# Installs cpprof into a temporary prefix and builds a program against it
# twice, the two ways a user would: pkg-config and CMake's find_package.
# Both programs must run and write a profile go tool pprof can read.
set -eu
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -1 | xargs dirname)
test -f "$prefix/include/cpprof.h"
test -f "$prefix/include/cpprof/cpu.h"
test -x "$prefix/bin/cpprof"

# 1. pkg-config
export PKG_CONFIG_PATH=$libdir/pkgconfig
cc -o "$tmp/blob_pc" "$src/examples/blobstore/main.c" "$src/examples/blobstore/blobstore.c" \
    $(pkg-config --cflags --libs cpprof) -lpthread
LD_LIBRARY_PATH=$libdir "$tmp/blob_pc" "$tmp/pc.pb.gz" | grep -q "open blobs: 800"

# 2. find_package(cpprof)
mkdir -p "$tmp/proj"
cat > "$tmp/proj/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(user C)
find_package(cpprof REQUIRED)
add_executable(blob $src/examples/blobstore/main.c $src/examples/blobstore/blobstore.c)
target_link_libraries(blob PRIVATE cpprof::cpprof)
CMAKE
cmake -S "$tmp/proj" -B "$tmp/proj/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/proj/build" >/dev/null
LD_LIBRARY_PATH=$libdir "$tmp/proj/build/blob" "$tmp/cm.pb.gz" | grep -q "open blobs: 800"

# 3. the installed CLI finds the installed library by itself
"$prefix/bin/cpprof" run -cpuprofile "$tmp/true.pb.gz" -- /bin/true
test -s "$tmp/true.pb.gz"

# Every profile written above parses with the reference client.
for f in pc cm true; do
    HOME=$tmp go tool pprof -top "$tmp/$f.pb.gz" >"$tmp/$f.top" 2>&1 ||
        { cat "$tmp/$f.top"; exit 1; }
done
grep -q "run_task" "$tmp/pc.top"
grep -q "run_task" "$tmp/cm.top"
echo "install test: 3 passed, 0 failed"
