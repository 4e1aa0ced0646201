#!/bin/sh
# Build llama.cpp's llama-bench, llama-simple and llama-quantize for the side-by-side
# benchmark (bench/llama.sh), from the llama.cpp that PyPI's llama-cpp-python sdist
# vendors (vendor/llama.cpp), pinned below. Nothing of llama.cpp enters the repo: the
# sdist, its source and the build live in the cache directory.
#   sh bench/llama_build.sh [jobs=2]     -> prints the directory holding the binaries
# Idempotent: does nothing when the binaries are already built. Native build (the ISA of
# this machine), static, Release, no curl.
set -eu
VERSION=0.3.36                          # llama-cpp-python; see bench/README.md
JOBS=${1:-2}
CACHE=${QWEN3_PIPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qwen3-pipe}/llama.cpp
PIP=${PIP:-/work/venv/bin/pip}
[ -x "$PIP" ] || PIP="python3 -m pip"
src=$CACHE/llama_cpp_python-$VERSION
build=$CACHE/build-$VERSION
bins="llama-bench llama-simple llama-quantize"

done_already=1
for b in $bins; do [ -x "$build/bin/$b" ] || done_already=0; done
if [ "$done_already" = 1 ]; then echo "$build/bin"; exit 0; fi

mkdir -p "$CACHE"
if [ ! -d "$src/vendor/llama.cpp" ]; then
    # the sdist only (build backends may come as wheels: pip prepares metadata)
    $PIP download --quiet --no-deps --no-binary llama-cpp-python --dest "$CACHE" "llama-cpp-python==$VERSION" >&2
    tar -xzf "$CACHE/llama_cpp_python-$VERSION.tar.gz" -C "$CACHE"
fi
start=$(date +%s)
cmake -S "$src/vendor/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >&2
# shellcheck disable=SC2086
cmake --build "$build" --config Release -j "$JOBS" --target $bins >&2
echo "llama_build: built in $(( $(date +%s) - start )) s" >&2
echo "$build/bin"
