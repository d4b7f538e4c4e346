#!/usr/bin/env bash
# The project's test command (README): lint + all tests, including the e2e suites against a real
# etcd + kube-apiserver, and the real-cluster suite (tests/e2e_real_cluster.rs) against a real
# single-node cluster running gpu-admission from its own image.
#
# 1. Binaries, built once and cached: kube-apiserver, etcd, kubectl (scripts/control-plane.sh);
#    kubelet, kube-controller-manager, kube-scheduler, kube-proxy (scripts/node-components.sh);
#    the image, from the Dockerfile's final stage (scripts/image.sh: static binary, FROM scratch);
#    actionlint, from the Go module proxy, and shellcheck (scripts/actionlint.sh), for the release
#    workflow's lint (tests/release.rs).
#    Pre-set KUBE_APISERVER_BIN, ETCD_BIN and KUBECTL_BIN to use other apiserver-only binaries.
# 2. cargo fmt --check, clippy -D warnings.
# 3. The cluster (scripts/cluster.sh up; Debian packages installed when missing), torn down by a
#    trap whatever happens, then `cargo test --workspace --all-targets` with GA_CLUSTER_DIR set.
# 4. scripts/cluster.sh down and verify-clean (no process, mount, netns, iptables rule, cgroup,
#    lo address, route, sysctl change or file left).
# 5. The apiserver-only suites again on each of $GPU_ADMISSION_EXTRA_K8S_VERSIONS (default
#    v1.37.2, the newest release; empty to skip), with binaries built and cached the same way.
#    tests/native_parity.rs (native mode, step 3) always gets v1.37.2: GPU_ADMISSION_K8S_137_DIR.
# 6. A check that no kube-apiserver, etcd, kubelet, containerd, shim or `gpu-admission serve`
#    started by this run is still alive.
#    4 and 6 count as tests in the closing `tests: N passed, N failed` line, which comes last.
#
# The real-cluster suite needs root (containerd, kubelet, iptables, mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
t_start=$SECONDS
# `flock -o`: the lock is not inherited by what cargo starts (a test's leftover process must not
# hold it). Every process this run starts carries this marker in its environment: the final check finds
# what is still alive by it.
export GPU_ADMISSION_TEST_RUN="test-sh-$$-$(date +%s)"
cargo_() { if command -v flock >/dev/null 2>&1; then flock -o /tmp/cargo.lock cargo "$@"; else cargo "$@"; fi; }
phase() { echo "==> [$((SECONDS - t_start))s] $*" >&2; }

phase "control-plane and node binaries (scripts/control-plane.sh, scripts/node-components.sh)"
node_bin="$(scripts/node-components.sh | tail -n 1)"
[[ -n "$node_bin" && -d "$node_bin" ]] || { echo "scripts/node-components.sh gave no bin dir" >&2; exit 1; }
export KUBE_APISERVER_BIN="${KUBE_APISERVER_BIN:-$node_bin/kube-apiserver}"
export ETCD_BIN="${ETCD_BIN:-$node_bin/etcd}"
export KUBECTL_BIN="${KUBECTL_BIN:-$node_bin/kubectl}"
echo "==> KUBE_APISERVER_BIN=$KUBE_APISERVER_BIN ETCD_BIN=$ETCD_BIN KUBECTL_BIN=$KUBECTL_BIN" >&2

# The apiserver-only suites also run on these Kubernetes versions (the default build above is the
# oldest supported, 1.34; the newest release is added here). Empty: only the default.
extra_versions="${GPU_ADMISSION_EXTRA_K8S_VERSIONS-v1.37.2}"
declare -A extra_bin=()
for v in $extra_versions; do
  phase "control-plane binaries for Kubernetes $v (scripts/control-plane.sh)"
  extra_bin[$v]="$(K8S_VERSION="$v" scripts/control-plane.sh | tail -n 1)"
  [[ -x "${extra_bin[$v]}/kube-apiserver" ]] || { echo "no kube-apiserver $v" >&2; exit 1; }
done

phase "actionlint and shellcheck (scripts/actionlint.sh)"
ACTIONLINT_BIN="$(scripts/actionlint.sh | tail -n 1)"
export ACTIONLINT_BIN

# tests/native_parity.rs starts kube-apiserver 1.37 itself (MutatingAdmissionPolicy is GA there,
# not in 1.34): it fails without these binaries.
k137="${extra_bin[v1.37.2]:-}"
if [[ -z "$k137" ]]; then
  phase "control-plane binaries for Kubernetes v1.37.2 (scripts/control-plane.sh, native parity)"
  k137="$(K8S_VERSION=v1.37.2 scripts/control-plane.sh | tail -n 1)"
fi
[[ -x "$k137/kube-apiserver" ]] || { echo "no kube-apiserver v1.37.2 for tests/native_parity.rs" >&2; exit 1; }
export GPU_ADMISSION_K8S_137_DIR="$k137"

phase "the image (scripts/image.sh: the Dockerfile's final stage, without docker)"
image="$(scripts/image.sh | tail -n 1)"
[[ -f "$image" ]] || { echo "scripts/image.sh gave no image" >&2; exit 1; }

phase "cargo fmt --all -- --check"
cargo_ fmt --all -- --check
phase "cargo clippy --workspace --all-targets -- -D warnings"
cargo_ clippy --workspace --all-targets -- -D warnings
phase "building the tests (cargo test --workspace --all-targets --no-run)"
cargo_ test --workspace --all-targets --no-run

log="$(mktemp)"
cluster_dir="${GA_CLUSTER_DIR:-/tmp/gpu-admission-cluster}"
export GA_CLUSTER_DIR="$cluster_dir"
down_done=0 cluster_ours=0
teardown() {
  [[ $down_done -eq 1 || $cluster_ours -eq 0 ]] && return 0
  down_done=1
  scripts/cluster.sh down || true
}
trap 'teardown; rm -f "$log"' EXIT
trap 'exit 130' INT TERM

phase "real cluster up (scripts/cluster.sh up)"
extra_pass=0 extra_fail=0
up_rc=0
GA_CLUSTER_IMAGE="$image" scripts/cluster.sh up >/dev/null || up_rc=$?
# Exit 3: another run's cluster is up in $cluster_dir; it is not ours to tear down.
[[ $up_rc -eq 3 ]] || cluster_ours=1
if [[ $up_rc -ne 0 ]]; then
  echo "==> scripts/cluster.sh up FAILED ($up_rc): the real-cluster suite will fail (it is never skipped)" >&2
  [[ $up_rc -eq 3 ]] || tail -n 20 "$cluster_dir"/logs/kube-apiserver.log "$cluster_dir"/logs/kubelet.log 2>/dev/null >&2 || true
  # Nothing of ours answers there: the suite must not use another run's cluster.
  export GA_CLUSTER_DIR="$cluster_dir.unavailable"
fi

report="${CARGO_TARGET_DIR:-$repo/target}/tmp/real-cluster-report.md"
rm -f "$report"
phase "cargo test --workspace --all-targets --no-fail-fast"
set +e
cargo_ test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log"
test_rc=${PIPESTATUS[0]}
set -e

phase "real cluster down, verify-clean"
teardown
if [[ $cluster_ours -eq 0 ]]; then
  echo "test real-cluster teardown left nothing behind ... FAILED (the cluster was not ours to check)"
  extra_fail=$((extra_fail + 1))
elif scripts/cluster.sh verify-clean; then
  echo "test real-cluster teardown left nothing behind ... ok"
  extra_pass=$((extra_pass + 1))
else
  echo "test real-cluster teardown left nothing behind ... FAILED"
  extra_fail=$((extra_fail + 1))
fi

# The apiserver-only suites again, on each extra Kubernetes version (the real-cluster suite runs
# on the default version only: the node needs containerd 2 from 1.36 on).
apiserver_only=()
for t in tests/e2e_*.rs; do
  n="$(basename "$t" .rs)"
  [[ "$n" == e2e_real_cluster ]] || apiserver_only+=(--test "$n")
done
for v in $extra_versions; do
  phase "apiserver-only suites on Kubernetes $v"
  # From 1.37 on, kube-apiserver refuses the harness's loopback --advertise-address while its
  # endpoint reconciler runs ("may not be in the loopback range"); the harness needs none of it.
  wrap="$(mktemp -d)"
  printf '#!/bin/sh\nexec %s "$@" --endpoint-reconciler-type=none\n' "${extra_bin[$v]}/kube-apiserver" > "$wrap/kube-apiserver"
  chmod +x "$wrap/kube-apiserver"
  set +e
  KUBE_APISERVER_BIN="$wrap/kube-apiserver" ETCD_BIN="${extra_bin[$v]}/etcd" KUBECTL_BIN="${extra_bin[$v]}/kubectl" \
    cargo_ test -p gpu-admission --no-fail-fast "${apiserver_only[@]}" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  set -e
  rm -rf "$wrap"
  [[ $rc -eq 0 ]] || test_rc=$rc
done

# Nothing this run started may still run: components of either suite, shims, webhooks.
leftovers() {
  local p cmd
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    cmd="$( { tr '\0' ' ' < "/proc/$p/cmdline"; } 2>/dev/null)" || continue
    [[ -z "$cmd" ]] && continue
    case "$cmd" in
      *kube-apiserver*|*etcd*|*kubelet*|*kube-controller-manager*|*kube-scheduler*|*kube-proxy*|*containerd*|*"gpu-admission serve"*|*"gpu-admission"*serve*) ;;
      *) continue ;;
    esac
    if { tr '\0' '\n' < "/proc/$p/environ"; } 2>/dev/null | grep -qx "GPU_ADMISSION_TEST_RUN=$GPU_ADMISSION_TEST_RUN" ||
      [[ "$cmd" == *"$cluster_dir/"* ]] || grep -q kubepods "/proc/$p/cgroup" 2>/dev/null; then
      echo "$p: $cmd"
    fi
  done
}
left=""
for _ in $(seq 1 30); do # the apiserver-only suites' reapers may still be finishing
  left="$(leftovers)"
  [[ -z "$left" ]] && break
  sleep 0.5
done
if [[ -z "$left" ]]; then
  echo "test no process of this run is still alive ... ok"
  extra_pass=$((extra_pass + 1))
else
  echo "test no process of this run is still alive ... FAILED"
  echo "$left" | head -n 20
  extra_fail=$((extra_fail + 1))
fi

if [[ -f "$report" ]]; then
  echo "==> real-cluster report ($report)"
  cat "$report"
fi
phase "done"
# cargo prints a result line per test binary, the last ones for targets with no tests (examples):
# close with the totals, so the run is read by what it ran.
set +e
awk -v xp="$extra_pass" -v xf="$extra_fail" '
     /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { p += xp; f += xf; printf "tests: %d passed, %d failed\n", p, f; if (p == 0 || f > 0) exit 1 }' "$log"
awk_rc=$?
exit $((test_rc != 0 || awk_rc != 0))
