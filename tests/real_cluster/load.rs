//! A bounded load of admission requests through the API server while the webhook's life goes
//! on: server dry-run creates and real creates of GPU pods, each classified by its answer.
//!
//! - `dry-run ok`: a 1-slice pod, dry-run; it must come back mutated (node selector added), or
//!   the mutating webhook was skipped (failed open) and that counts as a failure;
//! - `dry-run over limit`: a 5-slice container, dry-run; it must be denied by the validating
//!   webhook for SLICES_CONTAINER_EXCEEDED (a policy denial), anything else is a failure;
//! - `create`: a real 1-slice pod with a scheduling gate (so it is never bound and is deleted at
//!   once), created, checked mutated, deleted.
//!
//! Every request runs one after another per worker, with a pause between them: about 20-30
//! admission requests per second in all, bounded by MAX_REQUESTS.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const MAX_REQUESTS: u64 = 20_000;
const PAUSE: Duration = Duration::from_millis(60);

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub sent: u64,
    pub mutated: u64,
    pub denied_for_policy: u64,
    pub failed: u64,
    pub failures: Vec<String>,
}

impl Stats {
    pub fn line(&self) -> String {
        format!(
            "{} requests: {} admitted and mutated, {} denied for policy (expected), {} failed",
            self.sent, self.mutated, self.denied_for_policy, self.failed
        )
    }
}

#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    mutated: AtomicU64,
    denied: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Shared {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut f = self.failures.lock().unwrap();
        if f.len() < 50 {
            f.push(what);
        }
    }
    fn stats(&self) -> Stats {
        Stats {
            sent: self.sent.load(Ordering::SeqCst),
            mutated: self.mutated.load(Ordering::SeqCst),
            denied_for_policy: self.denied.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            failures: self.failures.lock().unwrap().clone(),
        }
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Starts the load against the API server of KUBECONFIG, in namespace NS (which must exist).
    pub fn start(kubeconfig: &Path, ns: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let (kubeconfig, ns) = (kubeconfig.to_path_buf(), ns.to_string());
        let (st, sh) = (stop.clone(), shared.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let client = match client(&kubeconfig).await {
                    Ok(c) => c,
                    Err(e) => {
                        ready_tx.send(Err(e)).ok();
                        return;
                    }
                };
                ready_tx.send(Ok(())).ok();
                let pods: Api<Pod> = Api::namespaced(client, &ns);
                let workers = vec![
                    tokio::spawn(dry_run_ok(pods.clone(), st.clone(), sh.clone())),
                    tokio::spawn(dry_run_over_limit(pods.clone(), st.clone(), sh.clone())),
                    tokio::spawn(create_delete(pods.clone(), st.clone(), sh.clone())),
                ];
                for w in workers {
                    w.await.ok();
                }
            });
        });
        ready_rx
            .recv()
            .expect("load thread")
            .unwrap_or_else(|e| panic!("load: no client: {e}"));
        Load {
            stop,
            shared,
            thread: Some(thread),
        }
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    pub fn stop(mut self) -> Stats {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
        self.shared.stats()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

async fn client(kubeconfig: &Path) -> Result<Client, String> {
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Client::try_from(config).map_err(|e| e.to_string())
}

fn pod(name: &str, slices: u32, unschedulable: bool) -> Pod {
    let mut spec = json!({
        "containers": [{
            "name": "c", "image": "localhost/gpu-admission-test/stub:1", "imagePullPolicy": "Never",
            "resources": {"limits": {"nvidia.com/gpu": slices.to_string()}}
        }],
        "terminationGracePeriodSeconds": 0
    });
    if unschedulable {
        // Held back from the scheduler: never bound, so deleted at once (a bound pod would wait
        // for a kubelet that API-only workers do not have). A selector that no node matches
        // would do too, but the webhook refuses a GPU pod that no GPU node can take.
        spec["schedulingGates"] = json!([{"name": "gpu-admission.io/load"}]);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"gpu-admission.io/load": "true"}},
        "spec": spec
    }))
    .expect("pod")
}

fn mutated(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .and_then(|n| n.get("node-type"))
        .map(|v| v == "gpu-worker")
        .unwrap_or(false)
}

fn budget(sh: &Shared, stop: &AtomicBool) -> Option<u64> {
    if stop.load(Ordering::SeqCst) {
        return None;
    }
    let n = sh.sent.fetch_add(1, Ordering::SeqCst);
    if n >= MAX_REQUESTS {
        sh.sent.fetch_sub(1, Ordering::SeqCst);
        return None;
    }
    Some(n)
}

async fn dry_run_ok(pods: Api<Pod>, stop: Arc<AtomicBool>, sh: Arc<Shared>) {
    let pp = PostParams {
        dry_run: true,
        field_manager: None,
    };
    while let Some(n) = budget(&sh, &stop) {
        match pods.create(&pp, &pod(&format!("load-dry-{n}"), 1, false)).await {
            Ok(p) if mutated(&p) => {
                sh.mutated.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => sh.fail(format!(
                "#{n} dry-run: admitted without the node selector (mutating webhook skipped)"
            )),
            Err(e) => sh.fail(format!("#{n} dry-run: {e}")),
        }
        tokio::time::sleep(PAUSE).await;
    }
}

async fn dry_run_over_limit(pods: Api<Pod>, stop: Arc<AtomicBool>, sh: Arc<Shared>) {
    let pp = PostParams {
        dry_run: true,
        field_manager: None,
    };
    while let Some(n) = budget(&sh, &stop) {
        match pods.create(&pp, &pod(&format!("load-over-{n}"), 5, false)).await {
            Err(kube::Error::Api(s))
                if s.code == 403
                    && s.message
                        .contains("admission webhook \"pods.validate.gpu-admission.io\" denied the request")
                    && s.message.contains("SLICES_CONTAINER_EXCEEDED") =>
            {
                sh.denied.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => sh.fail(format!("#{n} over-limit dry-run: admitted")),
            Err(e) => sh.fail(format!("#{n} over-limit dry-run: {e}")),
        }
        tokio::time::sleep(PAUSE).await;
    }
}

async fn create_delete(pods: Api<Pod>, stop: Arc<AtomicBool>, sh: Arc<Shared>) {
    let pp = PostParams::default();
    while let Some(n) = budget(&sh, &stop) {
        let name = format!("load-create-{n}");
        match pods.create(&pp, &pod(&name, 1, true)).await {
            Ok(p) if mutated(&p) => {
                sh.mutated.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => sh.fail(format!(
                "#{n} create: stored without the node selector (mutating webhook skipped)"
            )),
            Err(e) => sh.fail(format!("#{n} create: {e}")),
        }
        // Not an admission request (DELETE is not sent to the webhooks); never scheduled, so gone at once.
        pods.delete(&name, &DeleteParams::default()).await.ok();
        tokio::time::sleep(PAUSE).await;
    }
}
