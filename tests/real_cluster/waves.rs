//! Installing a rendered kustomization as Argo CD syncs it: by `argocd.argoproj.io/sync-wave`,
//! lowest first, each wave applied with server-side apply and waited on until healthy (a
//! Deployment: rolled out and available; a Namespace: Active; anything else: stored) before the
//! next one. Meanwhile a probe sends GPU pods (server dry run) through the API server without a
//! pause, and counts how each was answered: a refusal at any point is what the waves must
//! prevent. The test of the installation the suite made this way is at the end.

use super::cluster::{Cluster, gpu_pod_json};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct WaveSync {
    /// Per wave, in order: "wave N: kinds/names (seconds to healthy)".
    pub waves: Vec<String>,
    /// Probes answered: admitted before the webhook was live (not mutated), mutated, refused.
    pub admitted_unmutated: u64,
    pub mutated: u64,
    pub refused: Vec<String>,
    /// Probes admitted without the mutation after the first mutated one (the mutating webhook
    /// failing open).
    pub unmutated_after_live: u64,
}

/// The documents of a rendered multi-document YAML, grouped by sync wave (no annotation: 0).
pub fn by_wave(rendered: &str) -> Result<BTreeMap<i64, Vec<Value>>, String> {
    let mut waves: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for doc in serde_yaml_ng::Deserializer::from_str(rendered) {
        let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| format!("rendered YAML: {e}"))?;
        if v.is_null() {
            continue;
        }
        let wave = match v["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"].as_str() {
            Some(w) => w.parse().map_err(|e| format!("sync-wave {w:?}: {e}"))?,
            None => 0,
        };
        waves.entry(wave).or_default().push(v);
    }
    Ok(waves)
}

fn name_of(d: &Value) -> String {
    format!(
        "{}/{}",
        d["kind"].as_str().unwrap_or(""),
        d["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// Waits until DOC is healthy as Argo CD judges it.
fn healthy(c: &Cluster, d: &Value) -> Result<(), String> {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let ns = d["metadata"]["namespace"].as_str();
    let kind = d["kind"].as_str().unwrap_or_default();
    match kind {
        "Deployment" => {
            let out = c.kubectl(&[
                "rollout",
                "status",
                "-n",
                ns.unwrap_or("default"),
                &format!("deployment/{name}"),
                "--timeout=180s",
            ]);
            if !out.success() {
                return Err(format!(
                    "deployment/{name} did not roll out: {}{}",
                    out.stdout, out.stderr
                ));
            }
            let d = c.get(&["deployment", "-n", ns.unwrap_or("default"), name]);
            let (want, available) = (&d["spec"]["replicas"], &d["status"]["availableReplicas"]);
            if want != available {
                return Err(format!("deployment/{name}: {available} of {want} available"));
            }
            Ok(())
        }
        "Namespace" => {
            let out = c.kubectl(&[
                "wait",
                "--for=jsonpath={.status.phase}=Active",
                &format!("namespace/{name}"),
                "--timeout=60s",
            ]);
            if out.success() {
                Ok(())
            } else {
                Err(format!("namespace/{name}: {}", out.stderr))
            }
        }
        _ => {
            let mut args = vec!["get", kind, name];
            if let Some(ns) = ns {
                args.extend(["-n", ns]);
            }
            let out = c.kubectl(&args);
            if out.success() {
                Ok(())
            } else {
                Err(format!("{kind}/{name} not stored: {}", out.stderr))
            }
        }
    }
}

/// Applies RENDERED wave by wave with a readiness wait between waves, running BEFORE_WAVE(n)
/// first for each wave (the certificate step of a mode whose Secret is made outside): it returns
/// text substitutions for this and the later waves (`${CA_BUNDLE}` and the CA it made). The probe
/// runs all along; the sync ends once a probe comes back mutated through the webhook (bounded).
pub fn sync(
    c: &Cluster,
    rendered: &str,
    mut before_wave: impl FnMut(i64) -> Result<Vec<(String, String)>, String>,
) -> Result<WaveSync, String> {
    let waves = by_wave(rendered)?;
    let stop = AtomicBool::new(false);
    let report = Mutex::new(WaveSync::default());
    let live = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| probe(c, &stop, &live, &report));
        let result = (|| {
            let mut substitutions = vec![];
            for (wave, docs) in &waves {
                substitutions.extend(before_wave(*wave)?);
                let t = Instant::now();
                let mut list = json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string();
                for (from, to) in &substitutions {
                    list = list.replace(from.as_str(), to);
                }
                let out = c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &list);
                if !out.success() {
                    return Err(format!("wave {wave}: apply failed:\n{}{}", out.stdout, out.stderr));
                }
                for d in docs {
                    healthy(c, d)?;
                }
                // A mutating configuration is healthy once the API server calls it: the validating
                // one (next wave) must not see a GPU pod before the mutation (Argo CD waits 2 s
                // between waves, ARGOCD_SYNC_WAVE_DELAY; here the probe says when).
                if docs.iter().any(|d| d["kind"] == "MutatingWebhookConfiguration") {
                    wait_live(&live, &report)?;
                }
                let names: Vec<String> = docs.iter().map(name_of).collect();
                report.lock().unwrap().waves.push(format!(
                    "wave {wave}: {} (healthy {:.1} s after its apply)",
                    names.join(", "),
                    t.elapsed().as_secs_f64()
                ));
            }
            wait_live(&live, &report)
        })();
        stop.store(true, Ordering::SeqCst);
        result
    })?;
    Ok(report.into_inner().unwrap())
}

fn wait_live(live: &AtomicBool, report: &Mutex<WaveSync>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !live.load(Ordering::SeqCst) {
        if Instant::now() > deadline {
            return Err(format!(
                "no probe came back mutated within 60 s: {:?}",
                report.lock().unwrap()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// GPU pods at `--dry-run=server`, one after another, until STOP; the first mutated answer sets
/// LIVE.
fn probe(c: &Cluster, stop: &AtomicBool, live: &AtomicBool, report: &Mutex<WaveSync>) {
    let pod = gpu_pod_json("sync-probe", "default", 1);
    while !stop.load(Ordering::SeqCst) {
        let out = c.kubectl_stdin(&["create", "--dry-run=server", "-o", "json", "-f", "-"], &pod);
        let mut r = report.lock().unwrap();
        if !out.success() {
            r.refused.push(out.stderr.trim().to_string());
        } else if serde_json::from_str::<Value>(&out.stdout)
            .ok()
            .map(|p| p["spec"]["nodeSelector"]["node-type"] == "gpu-worker")
            == Some(true)
        {
            r.mutated += 1;
            live.store(true, Ordering::SeqCst);
        } else if live.load(Ordering::SeqCst) {
            r.unmutated_after_live += 1;
        } else {
            r.admitted_unmutated += 1;
        }
    }
}

// =============================================================================================
// The test (tests/e2e_real_cluster.rs includes this module): the suite's own installation
// =============================================================================================

/// The installation (done once, by `shared()`) went as Argo CD syncs deploy/: the waves in order,
/// each healthy before the next (the Deployment available before any webhook configuration, the
/// mutating configuration called before the validating one exists), and the GPU pods sent
/// through the API server all along were admitted, before the webhook (untouched) or through it
/// (mutated): none refused.
#[test]
fn install_by_sync_waves_refuses_no_request() {
    let c = super::cluster::shared();
    let sync = &c.install.sync;
    let mut lines = sync.waves.clone();
    lines.push(format!(
        "probe during the sync: {} GPU pods admitted before the webhook was live, {} mutated through it, {} refused{}; {} admitted unmutated once it was live",
        sync.admitted_unmutated,
        sync.mutated,
        sync.refused.len(),
        sync.refused.first().map(|e| format!(" (first: `{e}`)")).unwrap_or_default(),
        sync.unmutated_after_live,
    ));
    super::report::section("install by Argo CD sync waves", &lines);
    let order: Vec<&str> = sync.waves.iter().map(|w| w.split(':').next().unwrap()).collect();
    assert_eq!(
        order,
        ["wave 0", "wave 1", "wave 2", "wave 3", "wave 4", "wave 5"],
        "{lines:#?}"
    );
    let wave = |n: usize| sync.waves[n].as_str();
    assert!(wave(0).contains("Namespace/gpu-admission"), "{lines:#?}");
    assert!(
        wave(1).contains("ClusterRole/gpu-admission") && wave(1).contains("Role/gpu-admission-device-plugin-config")
    );
    assert!(wave(3).contains("Deployment/gpu-admission"), "{lines:#?}");
    assert!(
        wave(4).contains("MutatingWebhookConfiguration/gpu-admission"),
        "{lines:#?}"
    );
    assert!(
        wave(5).contains("ValidatingWebhookConfiguration/gpu-admission"),
        "{lines:#?}"
    );
    assert!(
        sync.admitted_unmutated + sync.mutated >= 20,
        "too few probes to mean anything: {lines:#?}"
    );
    assert!(sync.mutated > 0);
    assert_eq!(sync.refused, Vec::<String>::new(), "GPU pods refused during the sync");
    assert_eq!(
        sync.unmutated_after_live, 0,
        "the mutating webhook failed open during the sync"
    );
}
