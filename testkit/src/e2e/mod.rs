//! End to end: a real etcd + kube-apiserver ([`harness`]), the real `gpu-admission serve`
//! registered with it ([`webhook`]), the shared set-up of the cluster scenarios ([`cluster`]),
//! requests kept flowing through it during a change ([`load`]), what the native-mode tests share
//! ([`native`]), and the [`reaper`] that kills everything they start once the test process is
//! gone.
//!
//! A missing binary or a component that does not come up fails the test (a panic with log
//! tails), never skips it.

pub mod cluster;
pub mod dry_run;
pub mod harness;
pub mod load;
pub mod native;
pub mod reaper;
pub mod versions;
pub mod webhook;
