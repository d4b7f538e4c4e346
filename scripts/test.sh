#!/usr/bin/env bash
# The project's test command (README): lint + all tests, including the e2e
# tests that run against a real etcd + kube-apiserver.
#
# The control-plane binaries come from scripts/control-plane.sh (built once from
# the Go module proxy and cached); pre-set KUBE_APISERVER_BIN, ETCD_BIN and
# KUBECTL_BIN to use other binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${KUBE_APISERVER_BIN:-}" || -z "${ETCD_BIN:-}" || -z "${KUBECTL_BIN:-}" ]]; then
  echo "==> locating/building control-plane binaries (scripts/control-plane.sh)" >&2
  bin_dir="$(scripts/control-plane.sh | tail -n 1)"
  [[ -n "$bin_dir" && -d "$bin_dir" ]] || { echo "scripts/control-plane.sh gave no bin dir" >&2; exit 1; }
  export KUBE_APISERVER_BIN="${KUBE_APISERVER_BIN:-$bin_dir/kube-apiserver}"
  export ETCD_BIN="${ETCD_BIN:-$bin_dir/etcd}"
  export KUBECTL_BIN="${KUBECTL_BIN:-$bin_dir/kubectl}"
fi
echo "==> KUBE_APISERVER_BIN=$KUBE_APISERVER_BIN ETCD_BIN=$ETCD_BIN KUBECTL_BIN=$KUBECTL_BIN" >&2

echo "==> cargo fmt --all -- --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets -- -D warnings
echo "==> cargo test --all-targets" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --all-targets 2>&1 | tee "$log"
# cargo prints a result line per test binary, the last ones for targets with no tests (examples):
# close with the totals, so the run is read by what it ran.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f; if (p == 0) exit 1 }' "$log"
