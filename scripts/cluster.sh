#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for the real-cluster suite
# (tests/e2e_real_cluster.rs): etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy (iptables), containerd + runc (Debian), CNI bridge + host-local. The
# kubelet's node is the CPU/system node; two API-only GPU workers modelled on the seed are
# registered beside it (labels, taint, allocatable nvidia.com/gpu: 8, Ready condition).
#
#   scripts/cluster.sh up            start it (tears down a leftover one first); prints `export` lines
#   scripts/cluster.sh down          stop everything and undo every host change; idempotent
#   scripts/cluster.sh verify-clean  fail unless no process, mount, netns, iptables rule or chain,
#                                    cgroup, link, lo address, route, sysctl change or file is left
#   scripts/cluster.sh env           print the `export` lines (KUBECONFIG, KUBECTL, GA_CLUSTER_DIR)
#
# Everything lives in $GA_CLUSTER_DIR (default /tmp/gpu-admission-cluster) and runs as root.
# Addresses: node IP 10.245.255.1/32 on lo (the kubelet refuses a loopback node IP), pods
# 10.244.0.0/24 on bridge gpu-adm0, Services 10.96.0.0/24. Every component listens on
# 10.245.255.1 only (apiserver 16443, etcd 23790/23800, kcm 10257, scheduler 10259, kubelet
# 10250/10248, kube-proxy 10249/10256), so the apiserver-only suites, which bind random
# 127.0.0.1 ports, run beside it.
#
# No packet leaves the machine:
# - iptables guards: pod traffic is never forwarded off the bridge; host traffic to a Service IP
#   that kube-proxy did not rewrite, or to the pod range off the bridge, is refused;
# - containerd runs with HTTP(S)_PROXY=http://127.0.0.1:9 (nothing listens there), so an image
#   pull can reach no registry (and resolves no name); every image is imported locally
#   (`scripts/image.sh` for gpu-admission, stubs below for the seed's workloads), and the pause
#   image is local too.
#
# Facts and workarounds come from ../shared/notes/real-node (measured on this kind of machine).
# Binaries: scripts/control-plane.sh + scripts/node-components.sh (cached), or $GA_CLUSTER_BIN.
# Debian packages (containerd, runc, CNI plugins, iptables, conntrack) are installed when missing.
set -euo pipefail
export LC_ALL=C
repo="$(cd "$(dirname "$0")/.." && pwd)"
S="${GA_CLUSTER_DIR:-/tmp/gpu-admission-cluster}"
NODE="${GA_CLUSTER_NODE:-system-node-00}"
GPU_NODES=(talos-cluster-gpu-worker-00 talos-cluster-gpu-worker-01)
IP=10.245.255.1
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/24
BRIDGE=gpu-adm0
API="https://$IP:16443"
ETCD="http://$IP:23790"
P="$S/pki" E="$S/etc" R="$S/run" L="$S/logs" B="$S/bin" BASE="$S/baseline"
SOCK="$R/containerd/containerd.sock"
CTR=(ctr --address "$SOCK" -n k8s.io)
# The sysctls the kubelet and the CNI bridge plugin rewrite; down restores them.
SYSCTLS=(vm/overcommit_memory kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes
  net/ipv4/ip_forward net/ipv4/conf/all/forwarding net/ipv6/conf/all/forwarding
  net/bridge/bridge-nf-call-iptables net/bridge/bridge-nf-call-ip6tables net/ipv4/conf/all/route_localnet)
# Paths outside $S that the kubelet, libcni, containerd's shims or we write to (hardcoded there).
OUTSIDE=(/var/lib/kubelet /var/lib/cni /var/log/containers /var/log/pods /run/containerd /usr/libexec/kubernetes
  /var/run/netns /run/netns /dev/bus/usb /etc/cni /opt/cni /var/lib/containerd)
# The seed's workloads run local stub images under their real names (imagePullPolicy permitting,
# nothing is pulled; a pod of an API-only GPU worker never starts anyway).
STUB_IMAGES=(
  docker.io/ollama/ollama:latest
  docker.io/tensorflow/tensorflow:latest
  ghcr.io/ai-dock/comfyui:latest
  quay.io/prometheus/node-exporter:v1.6.1
  quay.io/brancz/kube-rbac-proxy:v0.14.2
  localhost/gpu-admission-test/stub:1
)
PAUSE_IMAGE=localhost/gpu-admission-test/pause:1

T0=$(date +%s%N)
log() { local ms=$((($(date +%s%N) - T0) / 1000000)); printf '[cluster %d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
kc() { "$B/kubectl" --kubeconfig="$E/admin.kubeconfig" "$@"; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (containerd, kubelet, iptables, mounts)"; }

# ---------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------
ensure_packages() {
  local want=(containerd runc containernetworking-plugins iptables conntrack) missing=() p
  for p in "${want[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing Debian packages: ${missing[*]}"
  # apt talks to the Debian mirror configured on this machine, like any package install.
  apt-get update -q >"$L/apt.log" 2>&1 || { tail -20 "$L/apt.log" >&2; die "apt-get update failed"; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$L/apt.log" 2>&1 ||
    { tail -20 "$L/apt.log" >&2; die "apt-get install failed"; }
  # The package may start its own containerd where an init system exists; ours has its own socket.
}

find_binaries() {
  mkdir -p "$B"
  local dir="${GA_CLUSTER_BIN:-}"
  if [[ -z "$dir" ]]; then dir="$("$repo/scripts/node-components.sh" | tail -n 1)"; fi
  local b
  for b in etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy; do
    [[ -x "$dir/$b" ]] || die "missing $dir/$b"
    ln -sfn "$dir/$b" "$B/$b"
  done
}

check_free() {
  local port
  for port in 16443 23790 23800 10257 10259 10250 10248 10249 10256; do
    if ss -Htln "( sport = :$port )" 2>/dev/null | grep -qE "(^|[[:space:]])(\*|0\.0\.0\.0|\[::\]|$IP):$port"; then
      die "port $port is taken on $IP or a wildcard address: $(ss -Htlnp "( sport = :$port )")"
    fi
  done
  ip -o link show "$BRIDGE" >/dev/null 2>&1 && die "link $BRIDGE exists: a cluster is running or was not torn down (scripts/cluster.sh down)"
  ip -o addr show dev lo | grep -q " $IP/" && die "$IP is already on lo: a cluster is running or was not torn down"
  return 0
}

snapshot() { # DIR: what verify-clean compares against
  local d=$1
  mkdir -p "$d"
  sysctl_dump > "$d/sysctl"
  sleep 0.2; sysctl_dump > "$d/sysctl.2"
  # keys that change on their own (counters, random) are not compared
  diff <(cat "$d/sysctl") <(cat "$d/sysctl.2") | sed -n 's/^[<>] \([^ ]*\) = .*/\1/p' | sort -u > "$d/sysctl.volatile" || true
  rm -f "$d/sysctl.2"
  ipt_dump iptables > "$d/iptables"; ipt_dump ip6tables > "$d/ip6tables"
  find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d 2>/dev/null | sort > "$d/cgroups"
  ip -o addr show dev lo | awk '{print $4}' | sort > "$d/lo"
  ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort > "$d/links"
  { ip route show; ip -6 route show; } | sort > "$d/routes"
  ip netns list 2>/dev/null | awk '{print $1}' | sort > "$d/netns"
  local p; for p in "${OUTSIDE[@]}"; do [[ -e $p || -L $p ]] && echo "$p"; done > "$d/paths"
  mounts_dump > "$d/mounts"
  for p in "${SYSCTLS[@]}"; do [[ -f /proc/sys/$p ]] && echo "$p $(cat /proc/sys/$p)"; done > "$d/sysctl.restore"
}

sysctl_changes() { # keys present before and now whose value changed (volatile ones excepted)
  awk '{ i = index($0, " = "); k = substr($0, 1, i - 1); v = substr($0, i + 3) }
       FILENAME == ARGV[1] { vol[$0] = 1; next }
       FILENAME == ARGV[2] { base[k] = (k in base) ? base[k] "," v : v; next }
       { cur[k] = (k in cur) ? cur[k] "," v : v }
       END { for (k in base) if ((k in cur) && !(k in vol) && base[k] != cur[k]) print k ": " base[k] " -> " cur[k] }' \
    "$BASE/sysctl.volatile" "$BASE/sysctl" <(sysctl_dump) | sort
}

mounts_dump() { # mount point and propagation (shared:N, master:N or private)
  awk '{ p = "private"; for (i = 7; $i != "-"; i++) p = (p == "private" ? "" : p " ") $i; print $5 " " p }' /proc/self/mountinfo | sort
}

sysctl_dump() {
  sysctl -a 2>/dev/null | grep -vE '^(fs\.(dentry-state|inode-nr|inode-state|file-nr|quota\.)|kernel\.(random\.|ns_last_pid|pty\.nr|sched_domain)|net\.netfilter\.nf_conntrack_count|dev\.cdrom|vm\.stat|fs\.binfmt_misc)' | sort
}

# iptables rules and non-builtin chains, without counters; tables that are empty count as absent.
ipt_dump() {
  local ipt=$1
  command -v "$ipt-save" >/dev/null 2>&1 || return 0
  "$ipt-save" 2>/dev/null | awk '
    /^\*/ { t = $1; next }
    /^COMMIT/ || /^#/ { next }
    /^:/ { split($0, f, " "); if (f[2] == "ACCEPT" || f[2] == "-") { if (f[1] ~ /^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING)$/ && f[2] == "ACCEPT") next }
           print t " " f[1] " " f[2]; next }
    { print t " " $0 }' | sort
}

write_pki() {
  mkdir -p "$P"
  (
    cd "$P"
    ca() { # name cn
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null
      openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 7 -out "$1.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    }
    cert() { # name subject eku [sans] [ca]
      local n=$1 subj=$2 eku=$3 san=${4:-} c=${5:-ca}
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$n.key" 2>/dev/null
      openssl req -new -key "$n.key" -subj "$subj" -out "$n.csr"
      { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"; echo "extendedKeyUsage=$eku"
        [[ -n "$san" ]] && echo "subjectAltName=$san"; } > "$n.ext"
      openssl x509 -req -in "$n.csr" -CA "$c.crt" -CAkey "$c.key" -CAcreateserial -days 7 -extfile "$n.ext" -out "$n.crt" 2>/dev/null
      rm -f "$n.csr" "$n.ext"
    }
    ca ca gpu-admission-test-cluster-ca
    ca front-proxy-ca gpu-admission-test-front-proxy-ca
    cert apiserver "/CN=kube-apiserver" serverAuth \
      "IP:$IP,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    cert admin "/O=system:masters/CN=kubernetes-admin" clientAuth
    cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
    cert controller-manager "/CN=system:kube-controller-manager" clientAuth
    cert scheduler "/CN=system:kube-scheduler" clientAuth
    cert kube-proxy "/CN=system:kube-proxy" clientAuth
    cert kubelet-client "/O=system:nodes/CN=system:node:$NODE" clientAuth
    cert kubelet-serving "/CN=$NODE" serverAuth "IP:$IP,DNS:$NODE"
    cert front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub
  )
  local n
  for n in admin:admin controller-manager:controller-manager scheduler:scheduler kubelet:kubelet-client kube-proxy:kube-proxy; do
    cat > "$E/${n%%:*}.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: gpu-admission-test
  cluster: {server: "$API", certificate-authority: $P/ca.crt}
users:
- name: ${n%%:*}
  user: {client-certificate: $P/${n#*:}.crt, client-key: $P/${n#*:}.key}
contexts:
- name: gpu-admission-test
  context: {cluster: gpu-admission-test, user: ${n%%:*}}
current-context: gpu-admission-test
KC
  done
}

write_config() {
  mkdir -p "$E/cni" "$E/certs.d"
  cat > "$E/containerd.toml" <<EOF
version = 2
root = "$R/containerd/root"
state = "$R/containerd/state"
oom_score = 0
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    disable_tcp_service = true
    stream_server_address = "$IP"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = true
    # no CAP_SYS_RESOURCE here: the pause container's oom_score_adj -998 is EPERM otherwise
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          BinaryName = "/usr/sbin/runc"
          Root = "$R/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$E/cni"
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$E/certs.d"
EOF
  cat > "$E/cni/10-gpu-admission-test.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "gpu-admission-test", "plugins": [{
  "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "10.244.0.1"}]],
           "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$R/cni-ipam"}}]}
EOF
  cat > "$E/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
address: $IP
port: 10250
readOnlyPort: 0
healthzBindAddress: $IP
healthzPort: 10248
tlsCertFile: $P/kubelet-serving.crt
tlsPrivateKeyFile: $P/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization:
  mode: Webhook
podLogsDir: $R/pod-logs
volumePluginDir: $R/kubelet-plugins
resolvConf: ""
clusterDomain: cluster.local
# local images only: never garbage-collect them, never evict for disk
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%", imagefs.inodesFree: "1%"}
maxPods: 40
serializeImagePulls: false
# Secret and ConfigMap volumes follow their objects within about 10 s
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusReportFrequency: 1m
EOF
  cat > "$E/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $E/kube-proxy.kubeconfig}
hostnameOverride: $NODE
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $IP
healthzBindAddress: $IP:10256
metricsBindAddress: $IP:10249
# leave host sysctls alone: no conntrack tuning, no route_localnet
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
nodePortAddresses: ["$IP/32"]
EOF
}

build_stub_images() {
  mkdir -p "$S/images/stub/rootfs" "$S/images/tars"
  cat > "$S/images/stub/stub.c" <<'EOF'
/* The seed's workloads here: sleep until SIGTERM/SIGINT, reap children (also the pod sandbox). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void die(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction a = {0};
  a.sa_handler = die; sigaction(SIGINT, &a, 0); sigaction(SIGTERM, &a, 0);
  a.sa_handler = reap; a.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &a, 0);
  for (;;) pause();
}
EOF
  gcc -static -Os -s -o "$S/images/stub/rootfs/stub" "$S/images/stub/stub.c"
  mkdir -p "$S/images/stub/rootfs/etc"
  printf 'root:x:0:0::/:/stub\nnobody:x:65534:65534::/:/stub\n' > "$S/images/stub/rootfs/etc/passwd"
  local ref i=0 cfg='{"Entrypoint":["/stub"],"Env":["PATH=/"],"WorkingDir":"/"}'
  for ref in "$PAUSE_IMAGE" "${STUB_IMAGES[@]}"; do
    i=$((i + 1))
    "$repo/scripts/mkimage.sh" "$S/images/tars/stub-$i.tar" "$ref" "$cfg" "$S/images/stub/rootfs"
  done
}

start() { # name cmd...: setsid, pid file, log; env from the caller
  local n=$1; shift
  setsid "$@" > "$L/$n.log" 2>&1 < /dev/null &
  echo $! > "$R/pids/$n"
}

waitfor() { # description timeout_s cmd...
  local d=$1 t=$2 i; shift 2
  for ((i = 0; i < t * 5; i++)); do
    if "$@" >/dev/null 2>&1; then log "$d"; return 0; fi
    sleep 0.2
  done
  die "timeout ($t s) waiting for: $d (logs in $L)"
}

guards_on() {
  # Pods talk to each other and to this host's addresses; nothing of theirs is forwarded elsewhere.
  iptables -I FORWARD 1 -s "$POD_CIDR" ! -o "$BRIDGE" -j REJECT -m comment --comment gpu-admission-test-guard
  iptables -I FORWARD 1 -i "$BRIDGE" ! -o "$BRIDGE" -j REJECT -m comment --comment gpu-admission-test-guard
  ip6tables -I FORWARD 1 -i "$BRIDGE" ! -o "$BRIDGE" -j REJECT -m comment --comment gpu-admission-test-guard
  # This host's traffic to a Service IP that kube-proxy did not DNAT (filter OUTPUT sees the
  # rewritten address) is refused.
  iptables -I OUTPUT 1 -d "$SVC_CIDR" -j REJECT -m comment --comment gpu-admission-test-guard
  # Last look before any packet leaves (mangle POSTROUTING sees the final address and output
  # device; filter OUTPUT's -o is the device routed to before kube-proxy's DNAT): nothing to or
  # from the pod range goes anywhere but the bridge, nothing to the Service range goes anywhere.
  iptables -t mangle -I POSTROUTING 1 -d "$SVC_CIDR" -j DROP -m comment --comment gpu-admission-test-guard
  iptables -t mangle -I POSTROUTING 1 -d "$POD_CIDR" ! -o "$BRIDGE" -j DROP -m comment --comment gpu-admission-test-guard
  iptables -t mangle -I POSTROUTING 1 -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP -m comment --comment gpu-admission-test-guard
}

seed_objects() {
  # The seed's namespaces, its time-slicing ConfigMap (the GPU Operator's, replicas: 4) and
  # PriorityClasses, then the GPU workers.
  kc apply -f "$repo/tests/real_cluster/manifests/seed-cluster.yaml" >/dev/null
  kc apply -f "$repo/tests/real_cluster/manifests/time-slicing-config.yaml" >/dev/null
  local n
  for n in "${GPU_NODES[@]}"; do
    sed "s/__NODE__/$n/g" "$repo/tests/real_cluster/manifests/gpu-worker.yaml" | kc apply -f - >/dev/null
    local now; now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    kc patch node "$n" --subresource=status --type=merge -p "$(cat <<EOF
{"status": {
  "capacity":    {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "1Ti", "nvidia.com/gpu": "8"},
  "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "1Ti", "nvidia.com/gpu": "8"},
  "conditions": [
    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "API-only GPU worker (no kubelet): the scheduler places pods here, nothing runs them",
     "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"},
    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"},
    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"},
    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"}],
  "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "osImage": "Talos (API-only node)", "kernelVersion": "", "kubeletVersion": "v0.0.0-api-only",
               "kubeProxyVersion": "", "containerRuntimeVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}
}}
EOF
)" >/dev/null
  done
  log "seed: namespaces ai, monitoring, gpu-operator; time-slicing-config; PriorityClasses; GPU workers ${GPU_NODES[*]}"
}

cmd_up() {
  need_root
  mkdir -p "$S"
  if [[ -d "$R" ]]; then
    # Another run's cluster that is still up is not ours to stop: refuse (exit 3), and leave it.
    local f live=""
    for f in "$R"/pids/*; do [[ -f $f ]] && alive "$(cat "$f")" && live+=" $(basename "$f")"; done
    if [[ -n "$live" ]]; then
      log "ERROR: a cluster is running in $S (alive:$live); stop it with scripts/cluster.sh down first"
      exit 3
    fi
    log "a previous cluster was left in $S (no component alive): tearing it down first"
    cmd_down
  fi
  mkdir -p "$L" "$R/pids" "$E"
  ensure_packages
  find_binaries
  check_free
  rm -rf "$BASE"
  snapshot "$BASE"
  log "baseline of the host state taken ($BASE)"
  write_pki
  write_config
  build_stub_images
  log "pki, configuration and stub images ready"

  [[ -d /dev/bus/usb ]] || { mkdir -p /dev/bus/usb; touch "$R/created-dev-bus-usb"; }
  # hostPath volumes with mountPropagation: HostToContainer (node-exporter's / and /sys) need the
  # host's mount to be shared or a slave, as on a systemd host; here they are private.
  local m
  for m in / /sys; do
    if ! findmnt -no PROPAGATION "$m" | grep -qE 'shared|slave'; then
      mount --make-shared "$m" && echo "$m" >> "$R/made-shared"
    fi
  done
  guards_on
  ip addr add "$IP/32" dev lo
  # containerd: no registry is reachable (see the header)
  HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 no_proxy= \
    start containerd containerd --config "$E/containerd.toml"
  waitfor "containerd up" 30 ctr --address "$SOCK" version
  local t
  for t in "$S"/images/tars/*.tar "${GA_CLUSTER_IMAGES[@]}"; do
    [[ -n "$t" ]] || continue
    "${CTR[@]}" images import "$t" >/dev/null || die "ctr images import $t failed"
  done
  [[ -n "${GA_CLUSTER_IMAGE:-}" ]] && { "${CTR[@]}" images import "$GA_CLUSTER_IMAGE" >/dev/null || die "ctr images import $GA_CLUSTER_IMAGE failed"; }
  log "images imported: $("${CTR[@]}" images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

  start etcd "$B/etcd" --name=default --data-dir="$R/etcd" \
    --listen-client-urls="$ETCD" --advertise-client-urls="$ETCD" \
    --listen-peer-urls="http://$IP:23800" --initial-advertise-peer-urls="http://$IP:23800" \
    --initial-cluster="default=http://$IP:23800" --unsafe-no-fsync=true --log-level=warn
  start kube-apiserver "$B/kube-apiserver" \
    --etcd-servers="$ETCD" \
    --bind-address="$IP" --advertise-address="$IP" --secure-port=16443 --cert-dir="$R/apiserver-certs" \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
    --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$P/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
    --service-cluster-ip-range="$SVC_CIDR" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --disable-admission-plugins=TaintNodesByCondition \
    --allow-privileged=true \
    --requestheader-client-ca-file="$P/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$P/front-proxy-client.crt" --proxy-client-key-file="$P/front-proxy-client.key"
  waitfor "kube-apiserver ready" 120 kc get --raw=/readyz
  # node-lifecycle-controller off: the API-only GPU workers send no heartbeats and must stay
  # schedulable (it would taint them unreachable). TaintNodesByCondition (apiserver) is off for
  # the same reason: nothing would lift its not-ready taint.
  start kube-controller-manager "$B/kube-controller-manager" \
    --kubeconfig="$E/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$E/controller-manager.kubeconfig" --authorization-kubeconfig="$E/controller-manager.kubeconfig" \
    --bind-address="$IP" --secure-port=10257 --cert-dir="$R/kcm-certs" --leader-elect=false \
    --controllers='*,-node-lifecycle-controller' \
    --use-service-account-credentials=true --service-account-private-key-file="$P/sa.key" \
    --root-ca-file="$P/ca.crt" --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
    --allocate-node-cidrs=false --flex-volume-plugin-dir="$R/kcm-flexvolume"
  start kube-scheduler "$B/kube-scheduler" \
    --kubeconfig="$E/scheduler.kubeconfig" \
    --authentication-kubeconfig="$E/scheduler.kubeconfig" --authorization-kubeconfig="$E/scheduler.kubeconfig" \
    --bind-address="$IP" --secure-port=10259 --leader-elect=false
  start kubelet "$B/kubelet" --config="$E/kubelet.yaml" --kubeconfig="$E/kubelet.kubeconfig" \
    --hostname-override="$NODE" --node-ip="$IP" --root-dir="$R/kubelet" --cert-dir="$R/kubelet-pki"
  start kube-proxy "$B/kube-proxy" --config="$E/kube-proxy.yaml"
  waitfor "node $NODE Ready" 120 kc wait --for=condition=Ready "node/$NODE" --timeout=1s
  waitfor "serviceaccount default/default" 120 kc get sa default -n default
  seed_objects
  local ns
  for ns in ai monitoring gpu-operator; do waitfor "serviceaccount $ns/default" 60 kc get sa default -n "$ns"; done
  log "cluster up"
  cmd_env
}

cmd_env() {
  echo "export GA_CLUSTER_DIR=$S"
  echo "export KUBECONFIG=$E/admin.kubeconfig"
  echo "export KUBECTL=$B/kubectl"
}

# ---------------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------------
alive() { # PID running (a zombie waiting for init to reap it counts as gone)
  [[ -r /proc/$1/stat ]] || return 1
  local st; st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)"
  [[ -n "$st" && "$st" != Z ]]
}

stop_pids() { # NAME...: SIGTERM all at once, wait up to 10 s, then SIGKILL
  local n f p i pids=()
  for n in "$@"; do
    f="$R/pids/$n"
    [[ -f $f ]] || continue
    p="$(cat "$f")"
    alive "$p" && { kill -TERM "$p" 2>/dev/null; pids+=("$p"); }
  done
  for ((i = 0; i < 100; i++)); do
    local any=0
    for p in "${pids[@]}"; do alive "$p" && any=1; done
    [[ $any -eq 0 ]] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  for n in "$@"; do rm -f "$R/pids/$n"; done
  [[ -n "${GA_CLUSTER_TRACE:-}" ]] && log "stopped $*"
  return 0
}

our_shims() { # containerd shims started for our socket (reparented to init when containerd stops)
  local p
  for p in $(pgrep -f 'containerd-shim' 2>/dev/null); do
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- "-address $SOCK" && echo "$p"
  done
  return 0
}

pod_processes() { # every process in a kubepods cgroup (containers, sandboxes)
  local f p
  for f in /proc/[0-9]*/cgroup; do
    p="${f#/proc/}"; p="${p%/cgroup}"
    grep -q 'kubepods' "$f" 2>/dev/null && echo "$p"
  done
  return 0
}

cmd_down() {
  need_root
  [[ -d "$S" ]] || { log "nothing to tear down ($S absent)"; return 0; }
  # best effort from here on: every step runs, whatever failed before it
  set +e +o pipefail
  local n
  stop_pids kube-proxy kubelet kube-scheduler kube-controller-manager
  log "node components stopped"
  if [[ -S "$SOCK" ]] && ctr --address "$SOCK" version >/dev/null 2>&1; then
    local t
    for t in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    sleep 0.5
    for t in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for t in $("${CTR[@]}" containers ls -q 2>/dev/null); do "${CTR[@]}" containers delete "$t" >/dev/null 2>&1 || true; done
  fi
  log "pod containers removed"
  stop_pids kube-apiserver etcd
  stop_pids containerd
  log "kube-apiserver, etcd, containerd stopped"
  local p
  for p in $(our_shims) $(pod_processes); do kill -KILL "$p" 2>/dev/null || true; done
  for ((n = 0; n < 50; n++)); do [[ -z "$(our_shims)$(pod_processes)" ]] && break; sleep 0.1; done
  # unmount everything under our dirs, deepest first (secret tmpfs, overlay rootfs, shm, netns,
  # the kubelet's root-dir bind mount), and the pods' network namespaces
  local m
  for m in $(awk -v r="$S/" 'index($5, r) == 1 {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null || true; done
  for m in $(awk '$5 ~ "^/(var/)?run/netns/cni-" {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null || true; done
  if [[ -f "$R/made-shared" ]]; then
    while read -r m; do mount --make-private "$m"; done < "$R/made-shared"
  fi
  for n in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do
    grep -qx "$n" "$BASE/netns" 2>/dev/null || ip netns delete "$n" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  ip addr del "$IP/32" dev lo 2>/dev/null || true
  # guards, then every KUBE-* chain (kubelet's and kube-proxy's) with the jumps into it
  local ipt t rule ch
  for ipt in iptables ip6tables; do
    for t in filter nat mangle; do
      while "$ipt" -t "$t" -S 2>/dev/null | grep -q 'gpu-admission-test-guard'; do
        rule="$("$ipt" -t "$t" -S 2>/dev/null | grep 'gpu-admission-test-guard' | head -n 1 | sed 's/^-A/-D/')"
        eval "$ipt -t $t $rule" 2>/dev/null || break
      done
      "$ipt" -t "$t" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' | sed 's/^-A/-D/' |
        while read -r rule; do eval "$ipt -t $t $rule" 2>/dev/null || true; done
      for ch in $("$ipt" -t "$t" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^KUBE-/ {print $2}'); do "$ipt" -t "$t" -F "$ch" 2>/dev/null || true; done
      for ch in $("$ipt" -t "$t" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^KUBE-/ {print $2}'); do "$ipt" -t "$t" -X "$ch" 2>/dev/null || true; done
    done
  done
  # conntrack entries of the cluster's addresses (they would expire; do not leave them)
  if command -v conntrack >/dev/null 2>&1; then
    conntrack -D -d 10.96.0.0/24 >/dev/null 2>&1 || true
    conntrack -D -s 10.244.0.0/24 >/dev/null 2>&1 || true
    conntrack -D -d 10.244.0.0/24 >/dev/null 2>&1 || true
    conntrack -D -s "$IP" >/dev/null 2>&1 || true
  fi
  # cgroups the kubelet made (kubepods in every hierarchy), deepest first
  local c
  for c in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $c ]] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  if [[ -f "$BASE/cgroups" ]]; then
    comm -13 "$BASE/cgroups" <(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d 2>/dev/null | sort) | sort -r |
      while read -r c; do rmdir "$c" 2>/dev/null || true; done
  fi
  # sysctls
  if [[ -f "$BASE/sysctl.restore" ]]; then
    local k v
    while read -r k v; do [[ "$(cat "/proc/sys/$k" 2>/dev/null)" == "$v" ]] || echo "$v" > "/proc/sys/$k" 2>/dev/null || true; done < "$BASE/sysctl.restore"
  fi
  # what the kubelet, libcni and the shims write to hardcoded paths
  local l
  for l in /var/log/containers/*.log; do [[ -L $l && "$(readlink "$l")" == "$S"/* ]] && rm -f "$l"; done
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  for l in /var/lib/cni/results/gpu-admission-test-*; do [[ -e $l ]] || continue
    local id=${l#/var/lib/cni/results/gpu-admission-test-}; id=${id%-eth0}
    rm -f "$l" "/var/lib/cni/results/cni-loopback-$id-lo"
  done
  [[ -f "$R/created-dev-bus-usb" ]] && { rmdir /dev/bus/usb 2>/dev/null || true; rmdir /dev/bus 2>/dev/null || true; }
  for p in "${OUTSIDE[@]}"; do
    # remove only empty directories that were not there before
    grep -qx "$p" "$BASE/paths" 2>/dev/null && continue
    [[ -d $p ]] && find "$p" -depth -type d -empty -delete 2>/dev/null || true
  done
  rm -rf "$R" "$P" "$E" "$B" "$S/images" "$S/webhook-pki"
  log "down (logs kept in $L until verify-clean passes)"
}

# ---------------------------------------------------------------------------------------------
# verify-clean
# ---------------------------------------------------------------------------------------------
cmd_verify_clean() {
  set +e +o pipefail
  local bad=0 out
  problem() { printf '[cluster] LEFT BEHIND: %s\n' "$*" >&2; bad=1; }
  # processes: our components, shims of our socket, anything in a kubepods cgroup, anything naming $S
  local p cmd
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    cmd="$( { tr '\0' ' ' < "/proc/$p/cmdline"; } 2>/dev/null)" || continue
    [[ -z "$cmd" ]] && continue
    if [[ "$cmd" == *"$S/"* && "$cmd" != *"cluster.sh"* ]]; then problem "process $p: $cmd"; fi
  done
  out="$(pod_processes)"; [[ -n "$out" ]] && problem "processes in kubepods cgroups: $out"
  # mounts
  out="$(awk -v r="$S/" 'index($5, r) == 1 || $5 ~ "^/(var/)?run/netns/cni-" || $5 ~ "^/run/containerd/" || $5 ~ "^/var/lib/kubelet" {print $5}' /proc/self/mountinfo)"
  [[ -n "$out" ]] && problem "mounts: $out"
  # network
  ip -o link show "$BRIDGE" >/dev/null 2>&1 && problem "link $BRIDGE"
  ip -o link show | grep -q 'veth' && problem "veth links: $(ip -o link show | grep veth | awk -F': ' '{print $2}' | tr '\n' ' ')"
  ip -o addr show dev lo | grep -q " $IP/" && problem "address $IP on lo"
  out="$(ip netns list 2>/dev/null | awk '/^cni-/{print $1}')"; [[ -n "$out" ]] && problem "netns: $out"
  local ipt
  for ipt in iptables ip6tables; do
    out="$("$ipt-save" 2>/dev/null | grep -E 'KUBE-|gpu-admission-test-guard|10\.244\.0\.|10\.96\.0\.|10\.245\.255\.1|'"$BRIDGE" || true)"
    [[ -n "$out" ]] && problem "$ipt: $(echo "$out" | head -5 | tr '\n' ';')"
  done
  # cgroups
  out="$(find /sys/fs/cgroup -maxdepth 3 -type d -name 'kubepods*' 2>/dev/null)"; [[ -n "$out" ]] && problem "cgroups: $out"
  # files
  [[ -S /var/lib/kubelet/device-plugins/kubelet.sock ]] && problem "/var/lib/kubelet/device-plugins/kubelet.sock"
  ls /var/lib/cni/results/gpu-admission-test-* >/dev/null 2>&1 && problem "libcni results in /var/lib/cni/results"
  for p in /var/log/containers/*.log; do [[ -L $p && "$(readlink "$p")" == "$S"/* ]] && problem "log symlink $p"; done
  for p in "$R" "$P" "$E" "$B"; do [[ -e $p ]] && problem "$p"; done
  # against the baseline taken by `up`, when there is one
  if [[ -d "$BASE" ]]; then
    out="$(sysctl_changes)"
    [[ -n "$out" ]] && problem "sysctls changed: $(echo "$out" | tr '\n' ';')"
    out="$(diff "$BASE/iptables" <(ipt_dump iptables) || true)"; [[ -n "$out" ]] && problem "iptables differs from before: $(echo "$out" | head -8 | tr '\n' ';')"
    out="$(diff "$BASE/ip6tables" <(ipt_dump ip6tables) || true)"; [[ -n "$out" ]] && problem "ip6tables differs from before: $(echo "$out" | head -8 | tr '\n' ';')"
    out="$(comm -13 "$BASE/cgroups" <(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d 2>/dev/null | sort))"; [[ -n "$out" ]] && problem "new cgroups: $(echo "$out" | tr '\n' ' ')"
    out="$(diff "$BASE/lo" <(ip -o addr show dev lo | awk '{print $4}' | sort) || true)"; [[ -n "$out" ]] && problem "lo addresses differ: $out"
    out="$(comm -13 "$BASE/links" <(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort))"; [[ -n "$out" ]] && problem "new links: $out"
    out="$(diff "$BASE/routes" <({ ip route show; ip -6 route show; } | sort) || true)"; [[ -n "$out" ]] && problem "routes differ: $(echo "$out" | tr '\n' ';')"
    out="$(comm -13 "$BASE/netns" <(ip netns list 2>/dev/null | awk '{print $1}' | sort))"; [[ -n "$out" ]] && problem "new netns: $out"
    out="$(comm -13 "$BASE/paths" <(for p in "${OUTSIDE[@]}"; do [[ -e $p || -L $p ]] && echo "$p"; done; true))"; [[ -n "$out" ]] && problem "paths created outside $S: $out"
    out="$(diff "$BASE/mounts" <(mounts_dump) || true)"; [[ -n "$out" ]] && problem "mounts or their propagation differ: $(echo "$out" | tr '\n' ';')"
  else
    log "no baseline in $BASE (up was not run here): absolute checks only"
  fi
  if [[ $bad -ne 0 ]]; then
    log "verify-clean FAILED (state and logs kept in $S)"
    return 1
  fi
  rm -rf "$S"
  log "verify-clean: nothing left behind"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  verify-clean) cmd_verify_clean ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|verify-clean|env" >&2; exit 2 ;;
esac
