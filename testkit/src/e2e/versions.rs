//! Control planes of another Kubernetes version than the suite's default (1.34): the binaries
//! `scripts/test.sh` builds and exports, and the flags that version needs with the harness.

use std::path::PathBuf;

use super::harness::{Binaries, ControlPlane};

/// The directory of kube-apiserver, etcd and kubectl v1.37 (exported by `scripts/test.sh`; by
/// hand: `K8S_VERSION=v1.37.2 scripts/control-plane.sh | tail -n1`).
pub const K8S_137_DIR: &str = "GPU_ADMISSION_K8S_137_DIR";

/// The 1.37 binaries, or why there are none (a test that needs them fails with this).
pub fn binaries_k8s_137() -> Result<Binaries, String> {
    let dir = std::env::var_os(K8S_137_DIR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
                "{K8S_137_DIR} is not set: scripts/test.sh exports it; by hand, set it to the output of `K8S_VERSION=v1.37.2 scripts/control-plane.sh | tail -n1`"
            )
        })?;
    let bins = Binaries {
        kube_apiserver: dir.join("kube-apiserver"),
        etcd: dir.join("etcd"),
        kubectl: dir.join("kubectl"),
    };
    for p in [&bins.kube_apiserver, &bins.etcd, &bins.kubectl] {
        if !p.is_file() {
            return Err(format!("{K8S_137_DIR}: {} does not exist", p.display()));
        }
    }
    Ok(bins)
}

/// etcd + kube-apiserver 1.37. From 1.37 on, kube-apiserver refuses the harness's loopback
/// `--advertise-address` while its endpoint reconciler runs ("may not be in the loopback
/// range"); the harness needs no `kubernetes` Endpoints, so the reconciler is off.
pub fn start_k8s_137() -> Result<ControlPlane, String> {
    ControlPlane::start_with(binaries_k8s_137()?, &["--endpoint-reconciler-type=none"])
}
