#!/usr/bin/env bash
# Builds the libFuzzer harnesses of native/fuzz (over native/core only, no Node) and runs each
# for a bounded time. `npm run fuzz`.
#
#   FUZZ_SECONDS   run time per fuzzer (default 30)
#   FUZZ_TARGETS   which fuzzers (default: fastcgi scgi uwsgi encode)
#   FUZZ_JOBS      fuzzers run side by side (default: the number of cores, at most 4)
#   CXX            a clang++ with libFuzzer (default clang++)
#
# Everything goes to .fuzz/ (git-ignored): bin/, corpus/<name>/ (seeds are rewritten each run,
# the grown corpus is kept), artifacts/<name>/ and logs/<name>.log. Exits non-zero when a fuzzer
# fails, after printing each crash file's path and hex.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/.fuzz"
seconds="${FUZZ_SECONDS:-30}"
targets="${FUZZ_TARGETS:-fastcgi scgi uwsgi encode}"
cxx="${CXX:-clang++}"
cores="$(nproc 2>/dev/null || echo 2)"
jobs="${FUZZ_JOBS:-$((cores < 4 ? cores : 4))}"

die() { echo "fuzz: $*" >&2; exit 1; }
command -v "$cxx" >/dev/null || die "$cxx not found (Debian: apt-get install clang llvm)"

mkdir -p "$out/bin" "$out/obj" "$out/logs"
# Coverage feedback comes from native/core only: the harnesses' own loops and the standard
# library are left uninstrumented (2-3x more executions per second).
printf '%s\n' 'src:*/native/fuzz/*' 'src:/usr/*' >"$out/coverage-ignore.txt"
flags=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 -std=c++17
  -fsanitize-coverage-ignorelist="$out/coverage-ignore.txt" -Wall -Wextra -I"$root/native")

# The core is compiled once (without the fuzzer main, with coverage), then linked per harness.
echo "fuzz: building with $("$cxx" --version | head -n 1)"
core_objs=()
for src in "$root"/native/core/*.cc; do
  obj="$out/obj/$(basename "$src" .cc).o"
  core_objs+=("$obj")
  "$cxx" "${flags[@]/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,}" -c "$src" -o "$obj" &
done
wait_all() {
  local rc=0
  for pid in "$@"; do wait "$pid" || rc=1; done
  return $rc
}
wait_all $(jobs -p) || die "building native/core failed"
pids=()
for t in $targets; do
  [ -f "$here/${t}_fuzz.cc" ] || die "no harness native/fuzz/${t}_fuzz.cc"
  "$cxx" "${flags[@]}" "$here/${t}_fuzz.cc" "${core_objs[@]}" -o "$out/bin/${t}_fuzz" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$jobs" ]; then wait_all "${pids[@]}" || die "building a harness failed"; pids=(); fi
done
wait_all "${pids[@]}" || die "building a harness failed"

node "$here/seeds.mjs" "$out/corpus" || die "writing the seed corpora failed"

# Dictionaries: the literals the parsers look for.
mkdir -p "$out/dict"
printf '%s\n' '"CONTENT_LENGTH"' '"SCGI"' '"\x00SCGI\x001\x00"' '":"' '","' '"1"' >"$out/dict/scgi.dict"
printf '%s\n' '"CONTENT_LENGTH"' '"\x0e\x00CONTENT_LENGTH"' >"$out/dict/uwsgi.dict"
printf '%s\n' '"\x01\x01\x00\x01\x00\x08\x00\x00"' '"\x01\x04\x00\x01"' '"\x01\x05\x00\x01\x00\x00\x00\x00"' \
  '"\x80\x00\x00\x00"' >"$out/dict/fastcgi.dict"

run_one() {
  local t="$1"
  local art="$out/artifacts/$t/"
  rm -rf "$art" && mkdir -p "$art" "$out/corpus/$t"
  local extra=()
  [ -f "$out/dict/$t.dict" ] && extra+=(-dict="$out/dict/$t.dict")
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    "$out/bin/${t}_fuzz" -max_total_time="$seconds" -max_len=8192 -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art" "${extra[@]}" "$out/corpus/$t" >"$out/logs/$t.log" 2>&1
}

echo "fuzz: running $targets for ${seconds}s each, $jobs at a time"
declare -A rcs=()
set -- $targets
while [ $# -gt 0 ]; do
  batch=()
  for ((i = 0; i < jobs && $# > 0; i++)); do
    run_one "$1" &
    batch+=("$1:$!")
    shift
  done
  for entry in "${batch[@]}"; do
    wait "${entry#*:}"
    rcs[${entry%%:*}]=$?
  done
done

failed=0
for t in $targets; do
  log="$out/logs/$t.log"
  stats="$(grep -E '^#[0-9]+' "$log" | tail -n 1)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  printf 'fuzz: %-8s rc=%s execs=%s | %s\n' "$t" "${rcs[$t]}" "${execs:-?}" "$stats"
  crashes=("$out/artifacts/$t"/*)
  if [ "${rcs[$t]}" -ne 0 ] || [ -e "${crashes[0]}" ]; then
    failed=1
    echo "fuzz: $t FAILED, log: $log" >&2
    grep -E 'ERROR|SUMMARY|runtime error|^ *#[0-9]+ .* in ' "$log" | head -n 25 >&2
    for f in "${crashes[@]}"; do
      [ -e "$f" ] || continue
      echo "fuzz: crash input $f" >&2
      echo "fuzz:   hex $(od -An -v -tx1 "$f" | tr -d ' \n' | head -c 4096)" >&2
      echo "fuzz:   reproduce: $out/bin/${t}_fuzz $f" >&2
    done
  fi
done
exit "$failed"
