#!/usr/bin/env bash
# `npm run test:asan`: builds the addon with ASan+UBSan into build-asan/ (never build/Release,
# so it cannot shadow the normal build), checks that the sanitizer setup really reports
# (a throwaway addon with a heap overflow and a signed overflow must be caught), then runs the
# conformance and differential tests on the native codec and the transport tests (native/transport)
# under the sanitizers.
#
#   CXX               clang++ (default) or g++; the matching ASan runtime is preloaded
#   SANITIZE_TESTS    test files to run (default: test/codec/vectors.test.ts test/codec/differential.test.ts
#                     test/protocol/transport.test.ts, test/protocol/one-step.test.ts, test/protocol/listener.test.ts and the FastCGI, SCGI and uwsgi server suites, which
#                     run the native transport under the real protocol servers, and the request
#                     watchdog tests)
#   --build-only      build and self-check, run no tests
#
# Node itself is not instrumented, so the ASan runtime is LD_PRELOADed into it; leak detection is
# off (node leaks at exit by design). Reports go to build-asan/reports/; any report fails the run,
# whatever the test runner's exit status.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/build-asan"
cxx="${CXX:-clang++}"
tests="${SANITIZE_TESTS:-test/codec/vectors.test.ts test/codec/differential.test.ts test/protocol/transport.test.ts test/protocol/one-step.test.ts test/protocol/listener.test.ts test/protocol/fastcgi.test.ts test/protocol/scgi.test.ts test/protocol/uwsgi.test.ts test/server/watchdog.test.ts}"
build_only=0
[ "${1:-}" = "--build-only" ] && build_only=1

die() { echo "test:asan: $*" >&2; exit 1; }
command -v "$cxx" >/dev/null || die "$cxx not found"
[ "$(uname -s)" = Linux ] || die "only Linux is supported (LD_PRELOAD of the ASan runtime)"

# The N-API headers ship with node (include/node next to bin/); node-gyp's cache as a fallback.
node_inc="$(node -p 'require("path").resolve(process.execPath, "../../include/node")')"
if [ ! -f "$node_inc/node_api.h" ]; then
  node_inc="$(ls -d "${XDG_CACHE_HOME:-$HOME/.cache}"/node-gyp/"$(node -p 'process.versions.node')"/include/node 2>/dev/null)"
  [ -f "$node_inc/node_api.h" ] || die "node_api.h not found (run 'npx node-gyp install' once)"
fi

# The runtime to preload must be the one of the compiler that built the addon.
if "$cxx" --version | grep -qi clang; then
  runtime="$("$cxx" -print-file-name="libclang_rt.asan-$(uname -m).so")"
  san_flags=(-fsanitize=address,undefined -shared-libasan)
else
  runtime="$("$cxx" -print-file-name=libasan.so)"
  san_flags=(-fsanitize=address,undefined)
fi
[ -f "$runtime" ] || die "ASan runtime not found: $runtime (Debian: apt-get install clang llvm)"

cflags=(-std=c++17 -fPIC -shared -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  "${san_flags[@]}" -fno-exceptions -fno-rtti -Wall -Wextra -Werror
  -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS -I"$root/native" -I"$node_inc")
mkdir -p "$out"
rm -rf "$out/reports" && mkdir -p "$out/reports"

export LD_PRELOAD="$runtime${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$out/reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$out/reports/ubsan"

# Prints and counts the sanitizer reports written so far.
reports() {
  local n=0
  for f in "$out"/reports/*; do
    [ -s "$f" ] || continue
    n=$((n + 1))
    echo "test:asan: sanitizer report $f" >&2
    head -n 60 "$f" >&2
  done
  return $n
}

echo "test:asan: building build-asan/tsgi.node with $("$cxx" --version | head -n 1)"
LD_PRELOAD= "$cxx" "${cflags[@]}" "$root"/native/binding/*.cc "$root"/native/core/*.cc "$root"/native/transport/*.cc \
  -o "$out/tsgi.node" || die "build failed"

# Self-check: a throwaway addon that reads past a heap block, and one with a signed overflow,
# must each be stopped with a report, or the preload setup is broken.
cat >"$out/selfcheck.cc" <<'EOF'
#include <node_api.h>
#include <climits>
#include <cstdlib>
static napi_value Oob(napi_env env, napi_callback_info) {
  volatile char* p = static_cast<char*>(std::malloc(8));
  volatile char c = p[8];  // one past the end
  std::free(const_cast<char*>(p));
  napi_value r;
  napi_create_int32(env, c, &r);
  return r;
}
static napi_value Overflow(napi_env env, napi_callback_info) {
  volatile int x = INT_MAX;
  int y = x + 1;  // signed overflow
  napi_value r;
  napi_create_int32(env, y, &r);
  return r;
}
NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "oob", NAPI_AUTO_LENGTH, Oob, nullptr, &f);
  napi_set_named_property(env, exports, "oob", f);
  napi_create_function(env, "overflow", NAPI_AUTO_LENGTH, Overflow, nullptr, &f);
  napi_set_named_property(env, exports, "overflow", f);
  return exports;
}
EOF
LD_PRELOAD= "$cxx" "${cflags[@]}" -Wno-error -w "$out/selfcheck.cc" -o "$out/selfcheck.node" \
  || die "building the self-check addon failed"
for fn in oob overflow; do
  if (node -e "require(process.argv[1]).$fn()" "$out/selfcheck.node"; exit $?) >/dev/null 2>&1; then
    die "self-check: '$fn' was not stopped by the sanitizers; the setup does not work"
  fi
  reports 2>/dev/null && die "self-check: '$fn' crashed without a sanitizer report"
  rm -f "$out"/reports/*
done
echo "test:asan: self-check ok (heap overflow and signed overflow are reported and fatal)"
# The real addon loads under the preload.
node -e "require(process.argv[1])" "$out/tsgi.node" || { reports; die "build-asan/tsgi.node does not load"; }

[ "$build_only" = 1 ] && exit 0

cd "$root"
missing=()
for t in $tests; do [ -f "$t" ] || missing+=("$t"); done
[ "${#missing[@]}" -eq 0 ] || die "missing test files: ${missing[*]}"

echo "test:asan: running $tests with TSGI_CODEC=native TSGI_NATIVE_PATH=build-asan/tsgi.node"
# shellcheck disable=SC2086
TSGI_CODEC=native TSGI_NATIVE_PATH="$out/tsgi.node" npx vitest run $tests
rc=$?
reports
n=$?
if [ "$n" -gt 0 ]; then
  die "$n sanitizer report(s)"
fi
[ "$rc" -eq 0 ] || die "tests failed (exit $rc)"
echo "test:asan: passed, no sanitizer reports"
