#!/bin/sh
# t/qemu/asan.sh: the kernel tests (kern_test, quant_test kernels) built for aarch64 with
# ASan and UBSan and run under qemu-aarch64, on -cpu max (neon-dot) and cortex-a53 (neon).
# musl has no sanitizer runtime, so this build is glibc's: Debian's cross gcc with its
# arm64 sanitizer libraries, qemu given the cross sysroot (-L), and the aarch64 cJSON and
# libsodium archives of `make static ARCH=aarch64` (their headers only, not musl's).
# Not part of the suite: it compiles all of lib/ again (a few minutes under qemu).
set -eu
cd "$(dirname "$0")/../.."
M=${MUSL_PREFIX:-$HOME/.cache/qwen3-pipe/musl-aarch64}
[ -f "$M/lib/libsodium.a" ] && [ -f build/static-aarch64/gen/ucd_tables.h ] ||
	{ echo "asan.sh: run make static ARCH=aarch64 first" >&2; exit 1; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/inc" "$d/o"
for h in cjson sodium sodium.h microhttpd.h; do ln -s "$M/include/$h" "$d/inc/$h"; done
F="-std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined
   -fno-omit-frame-pointer -fno-tree-loop-vectorize -Ilib -Ibuild/static-aarch64/gen -I$d/inc
   -DDEFAULT_MODEL=\"none\" -DMHD_DLOPEN"
for f in lib/*.c; do
	# shellcheck disable=SC2086
	aarch64-linux-gnu-gcc $F -c -o "$d/o/$(basename "$f" .c).o" "$f"
done
for t in kern_test quant_test; do
	# shellcheck disable=SC2086
	aarch64-linux-gnu-gcc $F -o "$d/$t" "t/$t.c" "$d"/o/*.o "$M/lib/libcjson.a" "$M/lib/libsodium.a" -lpthread -lm -ldl
done
# LeakSanitizer cannot run under qemu-user; ASan's and UBSan's checks all do.
st=0
for cpu in max cortex-a53; do
	for t in kern_test "quant_test kernels"; do
		# shellcheck disable=SC2086
		ASAN_OPTIONS=detect_leaks=0 qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu $cpu "$d"/$t > "$d/out" 2>&1 || st=1
		echo "-cpu $cpu $t: $(head -n 1 "$d/out"); $(tail -n 1 "$d/out")"
	done
done
exit $st
