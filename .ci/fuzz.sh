#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo fuzz, libFuzzer) for FUZZ_SECONDS each (10 by default),
# starting from the committed seeds (fuzz/seeds/<target>, made from the table vectors) and the
# corpus of earlier runs (fuzz/corpus/<target>, not committed). A crash fails the run and leaves
# the input in fuzz/artifacts/<target>/.
#
# On the stable toolchain: `-s none` (no sanitizer; AddressSanitizer needs nightly's
# -Zsanitizer, and the crate has no unsafe code for it to watch). cargo-fuzz is installed if
# missing.
#
#   .ci/fuzz.sh                      # every target, 10 s each
#   FUZZ_SECONDS=600 .ci/fuzz.sh extract baggage
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-10}
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
cargo fuzz build -s none >build.log 2>&1 || { cat build.log; exit 1; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="fuzz-$target.log"
  if ! cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz $target: FAILED (input in fuzz/artifacts/$target/)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz $target: ${seconds} s, $runs executions, 0 crashes"
done
