#!/bin/sh
# Build the static libraries `make static` links against, with musl-gcc, into
# MUSL_PREFIX/include and MUSL_PREFIX/lib: libcjson.a (<cjson/cJSON.h>), libmicrohttpd.a
# and libsodium.a.
#
# Why: Debian's .a files are built for glibc and cannot be linked with musl, and
# musl-gcc does not see /usr/include. So each library is rebuilt from Debian's own
# source package (`apt-get source`, Debian patches applied); nothing is downloaded
# from anywhere else. Needs musl-tools and dpkg-dev (`make deps`); autoconf, automake
# and libtool (Debian's libsodium source has no generated configure; Debian's build
# runs autoreconf too); and deb-src lines in the apt sources. As root, missing
# packages and deb-src lines are added here; otherwise it says what to run.
#
# Idempotent: a library whose .a and header are installed is skipped. libsodium.a is
# installed last because the Makefile checks for it alone. Sources are unpacked and
# built in a temporary directory beside MUSL_PREFIX (outside git), removed on success
# and kept, with its logs, on failure.
#
# ARCH=aarch64 (on an x86 host) cross-builds the same three libraries for aarch64 into
# MUSL_PREFIX (default ~/.cache/qwen3-pipe/musl-aarch64), and musl itself first: Debian
# has no aarch64 musl for an amd64 host short of multiarch (dpkg --add-architecture
# arm64, a second package index, musl-dev:arm64 beside the cross gcc), which CI
# containers do not always allow; musl's own configure cross-builds it from Debian's
# source package with Debian's aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu) in about a
# minute and writes the musl-gcc wrapper and specs that the Makefile then uses as CC.

set -eu

prog=musl-deps
HOSTARCH=$(uname -m)
ARCH=${ARCH:-$HOSTARCH}
JOBS=$(nproc 2>/dev/null || echo 2)

say() { echo "$prog: $*" >&2; }
die() { echo "$prog: error: $*" >&2; exit 1; }

# cross: the target triplet prefix of Debian's cross gcc, empty for a native build.
if [ "$ARCH" = "$HOSTARCH" ]; then
	cross=
	MUSL_PREFIX=${MUSL_PREFIX:-$HOME/.cache/qwen3-pipe/musl}
	musl_cc=musl-gcc
	tools="musl-gcc:musl-tools"
else
	case $ARCH in
	aarch64) cross=aarch64-linux-gnu ;;
	*) die "ARCH=$ARCH: cross builds are for aarch64 (from an x86-64 host)" ;;
	esac
	MUSL_PREFIX=${MUSL_PREFIX:-$HOME/.cache/qwen3-pipe/musl-$ARCH}
	musl_cc=$MUSL_PREFIX/bin/musl-gcc
	tools="$cross-gcc:gcc-$cross"
fi

have_lib() { [ -f "$MUSL_PREFIX/lib/$1" ] && [ -f "$MUSL_PREFIX/include/$2" ]; }

if have_lib libcjson.a cjson/cJSON.h && have_lib libmicrohttpd.a microhttpd.h &&
   have_lib libsodium.a sodium.h; then
	say "all libraries present in $MUSL_PREFIX"
	exit 0
fi

root=false
[ "$(id -u)" -eq 0 ] && root=true

# Debian packages the build needs, as command:package.
missing=
for cp in $tools dpkg-source:dpkg-dev make:make autoreconf:autoconf \
	aclocal:automake libtoolize:libtool; do
	command -v "${cp%%:*}" >/dev/null || missing="$missing ${cp#*:}"
done
if [ -n "$missing" ]; then
	$root || die "missing packages; as root run: apt-get install$missing"
	say "installing$missing"
	# shellcheck disable=SC2086
	out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$missing 2>&1) || { echo "$out" | tail -n 20 >&2; die "apt-get install$missing failed"; }
fi

# True when apt knows source packages, i.e. deb-src is enabled and its index fetched.
have_src() { apt-cache showsrc libsodium 2>/dev/null | grep -q '^Package:'; }

# Add deb-src next to every deb entry: deb822 files get "Types: deb deb-src", one-line
# lists get a deb-src copy of each deb line in a file of our own.
enable_deb_src() {
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		if ! grep -q '^Types:.*\bdeb\b' "$f" || grep -q '^Types:.*deb-src' "$f"; then
			continue
		fi
		say "enabling deb-src in $f"
		sed -i 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb deb-src/' "$f"
	done
	lists=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
	if [ -n "$lists" ]; then
		out=/etc/apt/sources.list.d/qwen3-pipe-deb-src.list
		# shellcheck disable=SC2086
		sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' $lists | sort -u > "$out.tmp"
		if [ -s "$out.tmp" ]; then
			say "writing $out"
			mv "$out.tmp" "$out"
		else
			rm -f "$out.tmp"
		fi
	fi
	say "apt-get update"
	apt-get update -qq || die "apt-get update failed"
}

if ! have_src; then
	$root || die "apt has no source packages (deb-src). As root, run:
  sed -i 's/^Types: deb\$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources && apt-get update
or run this script as root: sudo MUSL_PREFIX=$MUSL_PREFIX sh $0"
	enable_deb_src
	have_src || die "still no source packages after enabling deb-src; check /etc/apt/sources.list*"
fi

mkdir -p "$MUSL_PREFIX/include" "$MUSL_PREFIX/lib"
work=$(mktemp -d "${MUSL_PREFIX%/}-build.XXXXXX")
# shellcheck disable=SC2154 # st is assigned inside the trap
trap 'st=$?; if [ $st -eq 0 ]; then rm -rf "$work"; else say "build left in $work"; fi' EXIT
log=$work/build.log

# run STEP CMD...: run CMD with output to the log; on failure show the log's tail.
run() {
	step=$1; shift
	if ! "$@" >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "$step failed (full log: $log)"
	fi
}

# fetch SRCPKG: unpack Debian's source package into $work, print its directory.
fetch() {
	pkg=$1
	(cd "$work" && apt-get source -qq --download-only "$pkg" >>"$log" 2>&1) ||
		{ tail -n 20 "$log" >&2; die "apt-get source $pkg failed (full log: $log)"; }
	dsc=$(find "$work" -maxdepth 1 -name "${pkg}_*.dsc" | head -n 1)
	dir=$work/$pkg
	rm -rf "$dir"
	dpkg-source --no-check -x "$dsc" "$dir" >>"$log" 2>&1 ||
		{ tail -n 20 "$log" >&2; die "unpacking $dsc failed (full log: $log)"; }
	echo "$dir"
}

start=$(date +%s)

# musl for a cross target: libc.a, crt files, headers, and bin/musl-gcc (a wrapper
# around the cross gcc with musl's specs) into MUSL_PREFIX.
if [ -n "$cross" ] && { ! [ -x "$musl_cc" ] || ! [ -f "$MUSL_PREFIX/lib/libc.a" ]; }; then
	say "musl ($ARCH): fetching source"
	d=$(fetch musl)
	say "musl ($ARCH): configuring and building (-j$JOBS)"
	(cd "$d" && run "musl configure" ./configure --prefix="$MUSL_PREFIX" \
		--target="$cross" CROSS_COMPILE="$cross-" CC="$cross-gcc" \
		--disable-shared --enable-wrapper=gcc &&
		run "musl make" make -j"$JOBS" && run "musl install" make install)
	[ -x "$musl_cc" ] || die "musl install left no $musl_cc"
fi

# --host makes autoconf cross-compile (and not try to run what it builds).
# The cross binutils archive the objects (the host's may not know their ELF machine).
host=
if [ -n "$cross" ]; then
	host="--host=$ARCH-linux-musl"
	export AR="$cross-ar" RANLIB="$cross-ranlib"
fi

export CC="$musl_cc" CFLAGS="-O2 -fPIC" CPPFLAGS="-I$MUSL_PREFIX/include" LDFLAGS="-L$MUSL_PREFIX/lib"

# cJSON: one C file; compiled directly rather than through its CMake build.
if ! have_lib libcjson.a cjson/cJSON.h; then
	say "cjson: fetching source"
	d=$(fetch cjson)
	say "cjson: building"
	run "cjson build" $CC -O2 -fPIC -std=c89 -c -o "$d/cJSON.o" "$d/cJSON.c"
	run "cjson archive" "${AR:-ar}" rcs "$d/libcjson.a" "$d/cJSON.o"
	mkdir -p "$MUSL_PREFIX/include/cjson"
	cp "$d/cJSON.h" "$MUSL_PREFIX/include/cjson/cJSON.h"
	cp "$d/libcjson.a" "$MUSL_PREFIX/lib/libcjson.a"
fi

# libmicrohttpd: plain HTTP only (no gnutls), no curl-based tests, no docs or examples.
if ! have_lib libmicrohttpd.a microhttpd.h; then
	say "libmicrohttpd: fetching source"
	d=$(fetch libmicrohttpd)
	say "libmicrohttpd: configuring"
	# shellcheck disable=SC2086 # $host is empty or one word
	(cd "$d" && run "libmicrohttpd configure" ./configure --prefix="$MUSL_PREFIX" $host \
		--disable-shared --enable-static --disable-https --without-gnutls \
		--disable-curl --disable-doc --disable-examples --disable-tools \
		--disable-nls --disable-dependency-tracking)
	say "libmicrohttpd: building (-j$JOBS)"
	(cd "$d/src/microhttpd" && run "libmicrohttpd make" make -j"$JOBS" &&
		run "libmicrohttpd install" make install)
	(cd "$d/src/include" && run "libmicrohttpd header install" make install)
fi

# libsodium: tests are only built by `make check`, so `make` builds the library alone.
if ! have_lib libsodium.a sodium.h; then
	say "libsodium: fetching source"
	d=$(fetch libsodium)
	say "libsodium: autoreconf and configure"
	(cd "$d" && run "libsodium autoreconf" autoreconf -fi &&
		run "libsodium configure" ./configure --prefix="$MUSL_PREFIX" $host \
		--disable-shared --enable-static --disable-pie --disable-dependency-tracking)
	say "libsodium: building (-j$JOBS)"
	(cd "$d" && run "libsodium make" make -j"$JOBS" -C src &&
		run "libsodium install" make -C src install)
fi

rm -f "$MUSL_PREFIX"/lib/*.la
if ! { have_lib libcjson.a cjson/cJSON.h && have_lib libmicrohttpd.a microhttpd.h &&
	have_lib libsodium.a sodium.h; }; then
	die "a library is missing from $MUSL_PREFIX after the build"
fi
say "done in $(($(date +%s) - start))s: $MUSL_PREFIX/lib/libcjson.a libmicrohttpd.a libsodium.a"
