//! What the native-mode tests share: `gpu-admission generate native`, and the opening of a test
//! that changes the shared cluster objects without the shared webhook.

use std::process::Command;
use std::sync::MutexGuard;

use super::{cluster, webhook};

/// `gpu-admission generate native ARGS` (the built binary), asserted to succeed: its stdout.
pub fn generate(args: &[&str]) -> String {
    let out = Command::new(webhook::bin())
        .args(["generate", "native"])
        .args(args)
        .output()
        .expect("run gpu-admission generate native");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lock on the shared cluster objects (hold it to the end), with deploy/'s RBAC and the
/// scenarios' namespaces applied and the cluster in the [`cluster::baseline`] state.
pub fn exclusive() -> MutexGuard<'static, ()> {
    let guard = cluster::lock();
    cluster::ensure_rbac();
    cluster::baseline();
    guard
}
