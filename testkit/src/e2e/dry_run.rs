//! `kubectl apply --server-side --dry-run=server` of rendered manifests on the shared control
//! plane, retried while the API server has not discovered a CRD's kind yet (it serves a kind a
//! moment after the CRD is established).

use super::harness::{Output, kubectl};
use super::webhook::WAIT;
use crate::Wait;

/// The dry run of `text`, once no kind in it is unknown to the API server any more (or the
/// last answer after [`WAIT`]). `what` names the kinds waited for.
pub fn server_side_dry_run(what: &str, text: &str) -> Output {
    Wait::new(format!("the API server discovers {what}"), WAIT).until(|| {
        let out = kubectl(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--field-manager=gpu-admission-e2e",
                "-f",
                "-",
            ],
            Some(text),
        );
        if out.stderr.contains("no matches for kind") {
            Err(format!("{out:?}"))
        } else {
            Ok(out)
        }
    })
}
