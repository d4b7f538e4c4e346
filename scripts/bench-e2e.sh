#!/usr/bin/env bash
# End-to-end benchmark through a real kube-apiserver (BENCHMARKS.md, "End to end through kube-apiserver"; issue 6, part 3):
# server dry-run creates of a GPU pod from many concurrent clients with (1) no policy,
# (2) the rules as a CEL ValidatingAdmissionPolicy, (3) gpu-admission's webhooks, and
# (4, diagnostic; E2E_BENCH_FLOOR=0 leaves it out) the floor server (tools/src/bin/floor.rs) behind
# the same webhook configurations.
#
#   scripts/bench-e2e.sh                      # defaults: --loads 16,64,16@100 --rounds 5
#   scripts/bench-e2e.sh --rounds 3 --requests 1000 --loads 16
#   scripts/bench-e2e.sh --http1              # HTTP/1.1 clients instead of HTTP/2
#   scripts/bench-e2e.sh --rounds 1 --loads 16 --pprof DIR   # + kube-apiserver CPU profiles
#
# Arguments go to tools/src/bin/e2e_bench/ (`--help`). It builds the release binary and the tools,
# locates etcd, kube-apiserver and kubectl (KUBE_APISERVER_BIN / ETCD_BIN / KUBECTL_BIN, else
# scripts/control-plane.sh, which builds them once into ~/.cache/gpu-admission), starts a private
# control plane on 127.0.0.1 and prints the report (Markdown), also written to
# target/bench-e2e/report-<time>.md. Everything it starts is stopped when it ends.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf '[bench-e2e] %s\n' "$*" >&2; }

if [[ -n "${CARGO_TARGET_DIR:-}" && "$(realpath -m "$CARGO_TARGET_DIR")" != "$(realpath -m target)" ]]; then
  # e2e_bench runs the gpu-admission next to it (testkit/src/e2e/webhook.rs: bin()).
  log "CARGO_TARGET_DIR is set; building into ./target instead"
  unset CARGO_TARGET_DIR
fi

if [[ -z "${KUBE_APISERVER_BIN:-}" || -z "${ETCD_BIN:-}" || -z "${KUBECTL_BIN:-}" ]]; then
  bin_dir="$(scripts/control-plane.sh | tail -1)"
  export KUBE_APISERVER_BIN="${KUBE_APISERVER_BIN:-$bin_dir/kube-apiserver}"
  export ETCD_BIN="${ETCD_BIN:-$bin_dir/etcd}"
  export KUBECTL_BIN="${KUBECTL_BIN:-$bin_dir/kubectl}"
fi
log "kube-apiserver: $KUBE_APISERVER_BIN"

log "building (release): gpu-admission, and e2e_bench and floor (tools/)"
cargo build --release --quiet -p gpu-admission -p gpu-admission-tools --bin gpu-admission --bin e2e_bench --bin floor
# Set-up 4 (diagnostic): the floor server behind the same webhook configurations.
floor=(--floor-bin target/release/floor)
[[ "${E2E_BENCH_FLOOR:-1}" == 0 ]] && floor=()

out_dir=target/bench-e2e
mkdir -p "$out_dir"
report="$out_dir/report-$(date -u +%Y%m%dT%H%M%SZ).md"
log "rustc: $(rustc --version)"
target/release/e2e_bench --report "$report" "${floor[@]}" "$@"
log "report written to $report"
