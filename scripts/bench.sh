#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md in one command: micro (in process) and load (HTTPS, against
# the floor server), with gpu-admission's ratios to the floor. Benchmarks, not tests: nothing here
# fails on a slow figure; targets are printed as met or MISSED. The load driver, the floor server
# and the review loop are the bins of the tools/ workspace member (gpu-admission-tools).
#
#   scripts/bench.sh            # summary micro table, check binary, load (about 4 minutes)
#   scripts/bench.sh --quick    # shorter load runs, one round (about 1 minute)
#   scripts/bench.sh --divan    # also divan's detailed distributions (cargo bench --bench review/check)
#   scripts/bench.sh --callgrind  # also instructions per review vs the floor (valgrind; noise-free)
#
# Extra arguments after `--` go to `benchkit load` (e.g. `-- --quiet-variant --rounds 3`).
# The end-to-end benchmark through kube-apiserver is separate: scripts/bench-e2e.sh.
# Everything listens on 127.0.0.1; results are also written to target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
divan=0
callgrind=0
load_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --divan) divan=1 ;;
    --callgrind) callgrind=1 ;;
    --) shift; load_args=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: scripts/bench.sh [--quick] [--divan] [--callgrind] [-- benchkit load args]" >&2; exit 2 ;;
  esac
  shift
done

section() { printf '\n==== %s ====\n' "$*"; }

section "machine"
echo "nproc: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews absolute figures; compare ratios)"
echo "rustc: $(rustc --version); commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

section "build (release)"
cargo build --release -p gpu-admission -p gpu-admission-tools --bin gpu-admission --bin floor --bin benchkit --bin review_loop 2>&1 | grep -v '^\s*Compiling' || true
mkdir -p target/bench

section "micro: one review, and check over 10,000 objects (cargo bench --bench summary)"
cargo bench --bench summary 2>/dev/null | tee target/bench/summary.txt

section "check: the real binary over a 10,000-object file"
target/release/benchkit check-bin --runs "$([[ $quick == 1 ]] && echo 3 || echo 5)" | tee target/bench/check-bin.txt

section "load: HTTPS keep-alive, gpu-admission vs the floor server"
defaults=()
given=" ${load_args[*]} "
if [[ $given != *" --duration "* ]]; then defaults+=(--duration "$([[ $quick == 1 ]] && echo 3 || echo 8)"); fi
if [[ $given != *" --rounds "* ]]; then defaults+=(--rounds "$([[ $quick == 1 ]] && echo 1 || echo 2)"); fi
target/release/benchkit load "${defaults[@]}" --json target/bench/load.json "${load_args[@]}" | tee target/bench/load.txt

if [[ $callgrind == 1 ]]; then
  section "callgrind: instructions per review (tools/src/bin/review_loop.rs; independent of machine load)"
  instr() { # fixture endpoint -> instructions per iteration (difference of two run lengths)
    local n1=1100 n0=100
    [[ $1 == pod-30 || $1 == big-update ]] && n1=120 n0=20
    local a b
    a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/review_loop "$1" "$2" $n1 2>&1 | awk '/Collected/ {print $NF}')
    b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/review_loop "$1" "$2" $n0 2>&1 | awk '/Collected/ {print $NF}')
    echo $(( (a - b) / (n1 - n0) ))
  }
  printf '%-28s %14s %14s %8s\n' review "instructions" "floor" "/floor"
  for c in plain-pod@validate gpu-pod@mutate gpu-pod@validate gpu-pod-unpatched@mutate gpu-deployment@validate pod-30@validate big-update@validate; do
    f=${c%@*}; e=${c#*@}
    r=$(instr "$f" "$e"); fl=$(instr "$f" floor)
    printf '%-28s %14d %14d %8s\n' "$c" "$r" "$fl" "$(awk -v a="$r" -v b="$fl" 'BEGIN {printf "%.2f", a/b}')"
  done | tee target/bench/callgrind.txt
fi

if [[ $divan == 1 ]]; then
  section "divan: detailed distributions"
  cargo bench --bench review --bench check
fi
echo
echo "results: target/bench/{summary.txt,check-bin.txt,load.txt,load.json,callgrind.txt}"
