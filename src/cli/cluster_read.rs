//! One-shot reads of a cluster for the commands that are not the server (`doctor --cluster`,
//! `check --live`): a runtime, typed lists turned into the JSON the pure layers take, the
//! device-plugin ConfigMap.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::policy::PolicySpec;
use crate::server::ClusterSource;

/// Runs `read` against the cluster of `source` on a current-thread runtime.
pub fn with_client<T, F>(source: &ClusterSource, read: impl FnOnce(Client) -> F) -> Result<T, String>
where
    F: Future<Output = Result<T, String>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let client = crate::server::kube_client(source).await.map_err(|e| e.to_string())?;
        read(client).await
    })
}

/// Every object of a namespaced kind (in `namespace`, or everywhere).
pub async fn list<K>(client: &Client, namespace: Option<&str>) -> Result<Vec<Value>, String>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    items(api).await
}

/// Every object of a cluster-scoped kind.
pub async fn list_all<K>(client: &Client) -> Result<Vec<Value>, String>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    items(Api::<K>::all(client.clone())).await
}

async fn items<K>(api: Api<K>) -> Result<Vec<Value>, String>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("list {}: {e}", K::plural(&())))?;
    Ok(items.into_iter().map(typed).collect())
}

/// The device-plugin ConfigMap the policy names, if it exists.
pub async fn device_plugin_config(client: &Client, spec: &PolicySpec) -> Result<Option<Value>, String> {
    let cm = &spec.cluster.device_plugin_config;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &cm.namespace);
    let found = config_maps
        .get_opt(&cm.name)
        .await
        .map_err(|e| format!("get configmap {}/{}: {e}", cm.namespace, cm.name))?;
    Ok(found.map(typed))
}

/// Typed objects serialize without `apiVersion`/`kind` when listed: put them back.
fn typed<K: Resource<DynamicType = ()> + serde::Serialize>(object: K) -> Value {
    let mut value = serde_json::to_value(&object).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(K::api_version(&()).into_owned()));
        map.insert("kind".into(), Value::String(K::kind(&()).into_owned()));
    }
    value
}
