#!/usr/bin/env bash
# Build (once) the node components of the real-cluster suite (scripts/cluster.sh):
#   kubelet, kube-controller-manager, kube-scheduler, kube-proxy
# at the same Kubernetes version as scripts/control-plane.sh, from the same wrapper module
# (k8s.io/kubernetes with every staging module replaced by its published v0.<minor>.<patch>),
# with the same `go build` flags and version stamps.
#
# Output: the control plane's bin dir,
#   ${GPU_ADMISSION_CACHE:-$HOME/.cache/gpu-admission}/control-plane/k8s-<ver>-etcd-<ver>/bin/
# next to kube-apiserver, etcd and kubectl. Binaries are only built when missing. The bin dir is
# printed as the LAST line of stdout (like control-plane.sh); progress goes to stderr.
#
# Overridable env: K8S_VERSION, ETCD_VERSION, GPU_ADMISSION_CACHE, GO (as control-plane.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[node-components] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

K8S_VERSION="${K8S_VERSION:-v1.34.12}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
export K8S_VERSION ETCD_VERSION

# The control plane first: it generates the wrapper module (and waits on its lock if another
# build of it is running).
dir="$(scripts/control-plane.sh | tail -n 1)"
[[ -n "$dir" && -d "$dir" ]] || die "scripts/control-plane.sh gave no bin dir"

binaries=(kubelet kube-controller-manager kube-scheduler kube-proxy)
missing() {
  local b out=()
  for b in "${binaries[@]}"; do [[ -x "${dir}/${b}" ]] || out+=("$b"); done
  echo "${out[*]}"
}

if [[ -z "$(missing)" ]]; then
  echo "$dir"
  exit 0
fi

if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else die "go toolchain not found (set GO=/path/to/go or put go on PATH)"; fi
fi

tag_dir="$(dirname "$dir")"
mod_dir="${tag_dir}/src/kubernetes"
[[ -f "${mod_dir}/go.mod" ]] || die "no wrapper module at ${mod_dir} (control-plane.sh should have made it)"

exec 9>"${tag_dir}/.node-lock"
log "waiting for build lock ${tag_dir}/.node-lock"
flock 9
todo="$(missing)"
if [[ -z "$todo" ]]; then
  echo "$dir"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off
major="${K8S_VERSION#v}"; major="${major%%.*}"
minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X ${p}.gitVersion=${K8S_VERSION} -X ${p}.gitMajor=${major} -X ${p}.gitMinor=${minor}"
  ld+=" -X ${p}.gitTreeState=clean -X ${p}.buildDate=1970-01-01T00:00:00Z"
done
pkgs=()
for b in $todo; do pkgs+=("k8s.io/kubernetes/cmd/${b}"); done

tmp="$(mktemp -d "${dir}/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log "go build ${pkgs[*]} (about 2-3 min after the control plane's build, 8-9 min fully cold)"
t0=$SECONDS
(cd "$mod_dir" && "$GO" build -trimpath -ldflags="$ld" -o "${tmp}/" "${pkgs[@]}") ||
  die "go build of ${pkgs[*]} failed"
for b in $todo; do mv -f "${tmp}/${b}" "${dir}/${b}"; done
log "built ${todo} in $((SECONDS - t0))s"
[[ -z "$(missing)" ]] || die "binaries missing in $dir after build: $(missing)"
for b in "${binaries[@]}"; do log "  $(du -h "${dir}/${b}" | cut -f1)	${dir}/${b}"; done
echo "$dir"
