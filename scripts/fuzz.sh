#!/usr/bin/env bash
# Coverage-guided fuzzing with honggfuzz-rs on the stable toolchain (issue 15, item 6).
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]     default: all targets, 60 s each
#
# Targets (fuzz/src/targets.rs): review (AdmissionReview decode + evaluate + encode), check
# (check's YAML input), policy (the policy file). Each run starts from fuzz/corpus/TARGET and
# writes what it adds to fuzz/hfuzz_workspace/TARGET/; crashers found are copied into
# fuzz/corpus/TARGET/ (kept as regression tests: tests/fuzz_corpus.rs) and the script exits 1.
# Prints each target's executions. Needs `cargo install honggfuzz` and Debian's binutils-dev and
# libunwind-dev (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(review check policy)
want="${1:-all}"
seconds="${2:-60}"
[[ "$want" == all ]] || targets=("$want")

if ! dpkg -s binutils-dev libunwind-dev >/dev/null 2>&1; then
  apt-get install -y binutils-dev libunwind-dev >/dev/null
fi
command -v cargo-hfuzz >/dev/null || cargo install honggfuzz --version '^0.5' --locked

# Build under the machine's cargo lock; the runs themselves do not hold it.
(cd fuzz && flock -o /tmp/cargo.lock cargo hfuzz build >/dev/null)
found=0
for t in "${targets[@]}"; do
  work="fuzz/hfuzz_workspace/$t"
  mkdir -p "$work"
  # Crash files of earlier runs (copied into the corpus by them) are not this run's to count.
  find "$work" -maxdepth 1 -name '*.fuzz' -delete
  log="$work/run.log"
  (cd fuzz && HFUZZ_RUN_ARGS="--run_time $seconds --input corpus/$t --output hfuzz_workspace/$t/corpus -n 1 -v" \
      cargo hfuzz run "$t") >"$log" 2>&1 || true
  execs=$(grep -oiE 'iterations *: *[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || echo '?')
  crashes=$(find "$work" -maxdepth 1 -name '*.fuzz' | wc -l)
  echo "$t: $execs executions in ${seconds}s, $crashes crash(es)"
  if (( crashes > 0 )); then
    found=1
    find "$work" -maxdepth 1 -name '*.fuzz' -exec cp {} "fuzz/corpus/$t/" \;
  fi
done
exit "$found"
