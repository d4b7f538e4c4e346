//! `serve --cluster`: watch caches of Nodes, the device-plugin ConfigMap, PriorityClasses and
//! Namespaces, filled by kube's reflectors (get, list and watch only).
//!
//! The admission path never calls the API server: it reads the [`ClusterFacts`] that
//! [`ClusterWatch::facts`] builds from the stores whenever something changes. A watch that breaks
//! keeps its last state and retries with kube's default backoff; how long each source has gone
//! without an event is exposed as staleness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node};
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceClaimTemplate};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::ClusterFacts;
use crate::policy::PolicySpec;

/// How many resources are watched.
pub const SOURCES: usize = 6;

/// The watched resources, in the order of [`ClusterWatch::sources`].
pub const RESOURCES: [&str; SOURCES] = [
    "nodes",
    "configmaps",
    "priorityclasses",
    "namespaces",
    "resourceclaimtemplates",
    "resourceclaims",
];

/// The first sources gate readiness. The DRA caches (`resource.k8s.io/v1`) do not: a cluster
/// that does not serve DRA, or RBAC that does not grant it, leaves DRA claims unknown (each such
/// pod warned, `DRA_COUNT_UNKNOWN`) instead of the webhook unready.
pub const GATING: usize = 4;

/// Health of one watch.
#[derive(Debug, Default)]
pub struct SourceStatus {
    /// The first list has completed.
    pub synced: AtomicBool,
    /// Unix time (ms) of the last event from the API server (0: none yet).
    pub last_event_unix_ms: AtomicU64,
    /// Watch errors so far (each one is retried with backoff).
    pub errors: AtomicU64,
    /// The last item from this watch was an error (cleared by the next event).
    pub failing: AtomicBool,
}

/// How often the API server is asked for `/version` while the watches are quiet, so that
/// staleness measures "not heard from the API server", not "nothing changed".
pub const PROBE_INTERVAL_MS: u64 = 10_000;

/// The caches and their health.
#[derive(Clone)]
pub struct ClusterWatch {
    nodes: Store<Node>,
    config_maps: Store<ConfigMap>,
    priority_classes: Store<PriorityClass>,
    namespaces: Store<Namespace>,
    claim_templates: Store<ResourceClaimTemplate>,
    claims: Store<ResourceClaim>,
    sources: Arc<[SourceStatus; SOURCES]>,
    changed: watch::Receiver<u64>,
    /// Unix time (ms) the API server last answered the liveness probe (0: never).
    last_probe_ok_unix_ms: Arc<AtomicU64>,
}

// === impl ClusterWatch ===

impl ClusterWatch {
    /// Starts the watches on the current tokio runtime. The device-plugin ConfigMap is
    /// watched by name in its namespace (from `spec.cluster.devicePluginConfig`; changing it
    /// needs a restart).
    pub fn spawn(client: Client, spec: &PolicySpec) -> Self {
        let (tx, changed) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let sources: Arc<[SourceStatus; SOURCES]> = Arc::new(Default::default());
        let cm = &spec.cluster.device_plugin_config;
        let cm_config = watcher::Config::default().fields(&format!("metadata.name={}", cm.name));
        let nodes = run(Api::all(client.clone()), watcher::Config::default(), 0, &sources, &tx);
        let config_maps = run(
            Api::namespaced(client.clone(), &cm.namespace),
            cm_config,
            1,
            &sources,
            &tx,
        );
        let priority_classes = run(Api::all(client.clone()), watcher::Config::default(), 2, &sources, &tx);
        let namespaces = run(Api::all(client.clone()), watcher::Config::default(), 3, &sources, &tx);
        let claim_templates = run(Api::all(client.clone()), watcher::Config::default(), 4, &sources, &tx);
        let claims = run(Api::all(client.clone()), watcher::Config::default(), 5, &sources, &tx);
        let last_probe_ok_unix_ms = Arc::new(AtomicU64::new(0));
        tokio::spawn(probe(client, Arc::clone(&last_probe_ok_unix_ms)));
        Self {
            last_probe_ok_unix_ms,
            nodes,
            config_maps,
            priority_classes,
            namespaces,
            claim_templates,
            claims,
            sources,
            changed,
        }
    }

    /// Whether every gating watch has completed its first list.
    pub fn synced(&self) -> bool {
        self.sources[..GATING].iter().all(|s| s.synced.load(Ordering::Acquire))
    }

    /// The gating resources whose first list has not completed yet.
    pub fn unsynced(&self) -> Vec<&'static str> {
        RESOURCES[..GATING]
            .iter()
            .copied()
            .zip(self.sources.iter())
            .filter(|(_, s)| !s.synced.load(Ordering::Acquire))
            .map(|(r, _)| r)
            .collect()
    }

    pub fn sources(&self) -> &[SourceStatus; SOURCES] {
        &self.sources
    }

    /// Seconds since each source's last event (since start when it has had none).
    ///
    /// A watch that is not failing is as fresh as the API server's last answer to the liveness
    /// probe (a quiet cluster sends no events); a failing one, as its last event.
    pub fn staleness_seconds(&self, started_unix_ms: u64) -> [f64; SOURCES] {
        let now = now_unix_ms();
        let probe = self.last_probe_ok_unix_ms.load(Ordering::Acquire);
        std::array::from_fn(|i| {
            let source = &self.sources[i];
            let mut last = source.last_event_unix_ms.load(Ordering::Acquire);
            if last != 0 && !source.failing.load(Ordering::Acquire) {
                last = last.max(probe);
            }
            let since = if last == 0 { started_unix_ms } else { last };
            now.saturating_sub(since) as f64 / 1000.0
        })
    }

    /// A receiver that changes whenever any cache changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.clone()
    }

    /// The facts as the caches hold them now, read through `spec`.
    pub fn facts(&self, spec: &PolicySpec) -> ClusterFacts {
        let mut objects = Vec::new();
        collect(&self.nodes, &mut objects);
        collect(&self.config_maps, &mut objects);
        collect(&self.priority_classes, &mut objects);
        collect(&self.namespaces, &mut objects);
        collect(&self.claim_templates, &mut objects);
        collect(&self.claims, &mut objects);
        let mut facts = ClusterFacts::from_objects(spec, &objects);
        facts.synced = self.synced();
        facts
    }
}

fn collect<K: Resource<DynamicType = ()> + Clone + Serialize>(store: &Store<K>, out: &mut Vec<serde_json::Value>) {
    out.extend(
        store
            .state()
            .iter()
            .filter_map(|o| serde_json::to_value(o.as_ref()).ok()),
    );
}

/// Runs one reflector in the background; returns its store.
fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    index: usize,
    sources: &Arc<[SourceStatus; SOURCES]>,
    tx: &Arc<watch::Sender<u64>>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    tokio::spawn(drive(stream, index, Arc::clone(sources), Arc::clone(tx)));
    reader
}

async fn drive<K>(
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    index: usize,
    sources: Arc<[SourceStatus; SOURCES]>,
    tx: Arc<watch::Sender<u64>>,
) {
    let status = &sources[index];
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                status.last_event_unix_ms.store(now_unix_ms(), Ordering::Release);
                status.failing.store(false, Ordering::Release);
                if matches!(event, watcher::Event::InitDone) {
                    status.synced.store(true, Ordering::Release);
                }
                // Only complete states are published: skip the middle of a (re)list.
                if !matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            Err(e) => {
                status.errors.fetch_add(1, Ordering::Relaxed);
                status.failing.store(true, Ordering::Release);
                tracing::warn!(resource = RESOURCES[index], error = %e, "cluster watch failed; keeping the last state and retrying");
            }
        }
    }
}

/// Asks `/version` (readable by every authenticated user) every [`PROBE_INTERVAL_MS`]; records
/// when the API server last answered. Off the admission path, like the watches.
async fn probe(client: Client, last_ok: Arc<AtomicU64>) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(PROBE_INTERVAL_MS));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if client.apiserver_version().await.is_ok() {
            last_ok.store(now_unix_ms(), Ordering::Release);
        }
    }
}

pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
