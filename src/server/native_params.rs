//! `serve --cluster --native-params`: keeps the native policies' params ConfigMap
//! (`gpu-admission/gpu-admission-native-params`, see `generate native`) equal to what the watch
//! caches compute, so the native policies follow the cluster with no webhook on the admission
//! path.
//!
//! The ConfigMap must exist (deploy/components/native-policies ships it): RBAC grants `update` on it by
//! `resourceNames`, nothing more, so it is replaced whole and unconditionally (ConfigMaps allow
//! an update without a resourceVersion). Nothing is written before the caches have synced, nor
//! when the computed data did not change; a failed write is retried on the next change or tick.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio::sync::watch;

use super::Shared;
use super::shutdown;
use crate::engine::Effective;
use crate::generate::native::params;

/// How often the data is recomputed without a cache event (a policy reload, a failed write).
const TICK: Duration = Duration::from_secs(10);

/// The ConfigMap to write for `data`.
fn config_map(data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(params::NAME.into()),
            namespace: Some(params::NAMESPACE.into()),
            labels: Some(crate::generate::yaml::label_strings()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// The params as the caches have them now, once they have synced.
fn compute(shared: &Shared) -> Option<BTreeMap<String, String>> {
    let base = shared.base_policy.load_full()?;
    let watch = shared.cluster.get()?;
    let facts = watch.facts(base.spec());
    if !facts.synced {
        return None;
    }
    Some(params::data(&Effective::from_parts(base, Some(Arc::new(facts)))))
}

/// Runs until shutdown.
pub(super) async fn run(
    client: kube::Client,
    shared: Arc<Shared>,
    mut changes: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, params::NAMESPACE);
    let mut written: Option<BTreeMap<String, String>> = None;
    let mut tick = tokio::time::interval(TICK);
    loop {
        if let Some(data) = compute(&shared)
            && written.as_ref() != Some(&data)
        {
            match api
                .replace(params::NAME, &PostParams::default(), &config_map(data.clone()))
                .await
            {
                Ok(_) => {
                    tracing::info!(target: "gpu_admission::native_params", keys = data.len(), "native params written");
                    written = Some(data);
                }
                Err(e) => {
                    tracing::warn!(target: "gpu_admission::native_params", error = %e, configmap = params::NAME, "cannot write the native params; retrying");
                }
            }
        }
        tokio::select! {
            _ = shutdown::triggered(&mut stop) => break,
            changed = changes.changed() => if changed.is_err() { break },
            _ = tick.tick() => {}
        }
    }
}
