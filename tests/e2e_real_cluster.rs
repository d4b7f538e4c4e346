//! gpu-admission in a real cluster (scripts/cluster.sh): its own image running as pods behind
//! its Service, installed from deploy/overlays/real-cluster, and the pods it mutates created by
//! controllers and placed by the scheduler. Everything is asserted on objects read back from the
//! API server, on events and on metrics.
//!
//! The cluster: one real kubelet node (system-node-00: the webhook, the Coral pod,
//! node-exporter) and two API-only GPU workers modelled on the seed (labels, taint,
//! `nvidia.com/gpu: 8`), where the scheduler binds GPU pods that nothing then runs.
//! README "The real-cluster suite" says what is real and what is faked.

#[path = "real_cluster/mod.rs"]
mod real_cluster;

use real_cluster::cluster::{
    GPU_WORKERS, IMAGE, SECRET_WAVE, SYSTEM_NODE, WEBHOOK_DEPLOYMENT, WEBHOOK_NS, gpu_pod_json, http_get, is_ready,
    metric_sum, serial, served_serial, shared, wait_for, webhook_metric_lines,
};
use real_cluster::load::Load;
use real_cluster::report;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn manifest(name: &str) -> String {
    format!("{}/tests/real_cluster/manifests/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A file of ../shared/corpus (the real-world manifests next to the repository).
fn corpus(name: &str) -> String {
    format!("{}/../shared/corpus/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs F when dropped (also when the test panics): cleanup of what a scenario made.
struct Cleanup<F: FnMut()>(F);
impl<F: FnMut()> Drop for Cleanup<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

fn has_gpu_toleration(pod: &Value) -> bool {
    pod["spec"]["tolerations"]
        .as_array()
        .map(|t| {
            t.iter().any(|t| {
                t["key"] == "nvidia.com/gpu"
                    && t["effect"] == "NoSchedule"
                    && (t["operator"] == "Exists" || t["operator"].is_null())
            })
        })
        .unwrap_or(false)
}

fn condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// The webhook replicas' metrics, summed: NAME with FILTERS.
fn webhook_metric(name: &str, filters: &[&str]) -> f64 {
    let c = shared();
    c.ready_webhook_ips()
        .iter()
        .map(|ip| {
            let (code, body) = http_get(&format!("{ip}:8080"), "/metrics").expect("webhook /metrics");
            assert_eq!(code, 200, "/metrics of {ip}");
            metric_sum(&body, name, filters)
        })
        .sum()
}

/// The API server's admission metrics for gpu-admission's webhooks that must not move while
/// the webhook is up: calls that failed (refused or let through) and mutations failed open.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ApiMetrics {
    rejected_call_errors: f64,
    rejected_for_policy: f64,
    fail_open: f64,
}

fn api_metrics() -> ApiMetrics {
    let text = shared().apiserver_metrics();
    let gpu = "gpu-admission.io\"";
    ApiMetrics {
        rejected_call_errors: metric_sum(
            &text,
            "apiserver_admission_webhook_rejection_count",
            &[gpu, "error_type=\"calling_webhook_error\""],
        ) + metric_sum(
            &text,
            "apiserver_admission_webhook_rejection_count",
            &[gpu, "error_type=\"apiserver_internal_error\""],
        ),
        rejected_for_policy: metric_sum(
            &text,
            "apiserver_admission_webhook_rejection_count",
            &[gpu, "error_type=\"no_error\""],
        ),
        fail_open: metric_sum(&text, "apiserver_admission_webhook_fail_open_count", &[gpu]),
    }
}

// =============================================================================================
// Installation: deploy/ applied as a user applies it, the image, in-cluster config, /readyz
// =============================================================================================

#[test]
fn install_from_deploy_overlay_runs_the_image_and_readyz_gates_the_endpoints() {
    let c = shared();
    let _g = serial();
    let mut lines = vec![];

    // The overlay: the base minus cert-manager, the caBundle given at apply time.
    assert!(
        !c.install.rendered.contains("cert-manager.io/v1"),
        "cert-manager objects rendered"
    );
    assert!(!c.install.rendered.contains("inject-ca-from"));
    for kind in ["mutatingwebhookconfiguration", "validatingwebhookconfiguration"] {
        let cfg = c.get(&[kind, "gpu-admission"]);
        let hooks = cfg["webhooks"].as_array().expect("webhooks");
        assert!(!hooks.is_empty());
        for h in hooks {
            assert_eq!(
                h["clientConfig"]["caBundle"],
                c.install.ca_bundle.as_str(),
                "{kind} {}",
                h["name"]
            );
            assert_eq!(h["clientConfig"]["service"]["name"], "gpu-admission");
            assert_eq!(h["clientConfig"]["service"]["namespace"], "gpu-admission");
        }
    }
    let secret = c.get(&["secret", "-n", WEBHOOK_NS, "gpu-admission-tls"]);
    assert_eq!(secret["type"], "kubernetes.io/tls");

    // The Deployment as the base has it: `serve --cluster`, the image by its deploy/ name.
    let deploy = c.get(&["deployment", "-n", WEBHOOK_NS, WEBHOOK_DEPLOYMENT]);
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], IMAGE);
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args.first(), Some(&"serve"));
    assert!(args.contains(&"--cluster"), "{args:?}");
    assert_eq!(deploy["status"]["availableReplicas"], 2, "{}", deploy["status"]);

    let pods = c.webhook_pods();
    assert_eq!(pods.len(), 2, "webhook pods");
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        assert_eq!(p["spec"]["nodeName"], SYSTEM_NODE, "{name} runs on the kubelet's node");
        assert!(is_ready(p), "{name} ready");
        let st = &p["status"]["containerStatuses"][0];
        assert_eq!(st["image"], IMAGE, "{name}");
        assert_eq!(st["restartCount"], 0, "{name}");
        // The local image, never pulled.
        let events = c.events_for(WEBHOOK_NS, "Pod", name);
        let reasons: Vec<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
        assert!(!reasons.contains(&"Pulling"), "{name} pulled an image: {reasons:?}");
        assert!(
            events.iter().any(|e| e["reason"] == "Pulled"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("already present on machine")),
            "{name}: {events:?}"
        );
        // No shell in the image.
        let exec = c.kubectl(&["exec", "-n", WEBHOOK_NS, name, "--", "sh", "-c", "true"]);
        assert!(!exec.success(), "the image has a shell: {exec:?}");
        assert!(
            exec.stderr.contains("no such file or directory") || exec.stderr.contains("executable file not found"),
            "{exec:?}"
        );
        // In-cluster config through the `kubernetes` Service: every watch cache listed.
        let ip = p["status"]["podIP"].as_str().unwrap();
        let (code, body) = http_get(&format!("{ip}:8080"), "/metrics").expect("metrics");
        assert_eq!(code, 200);
        for r in ["nodes", "configmaps", "priorityclasses", "namespaces"] {
            assert_eq!(
                metric_sum(
                    &body,
                    "gpu_admission_cluster_cache_synced",
                    &[&format!("resource=\"{r}\"")]
                ),
                1.0,
                "{name}: cache {r} not synced:\n{body}"
            );
        }
    }
    // The process in the pod runs as the image's nonroot user.
    let ps = std::process::Command::new("sh")
        .arg("-c")
        .arg("for p in $(pgrep -f '^/usr/local/bin/gpu-admission serve'); do awk '/^Uid:/{print $2}' /proc/$p/status; done")
        .output()
        .expect("pgrep");
    let uids: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        uids.len() >= 2 && uids.iter().all(|u| u == "65532"),
        "gpu-admission processes' uids: {uids:?}"
    );
    lines.push(format!(
        "installed: deploy/overlays/real-cluster by sync wave (`kubectl apply --server-side` per wave, the certificate step before wave {SECRET_WAVE}); first mutated dry-run through the Service {:.1} s after the first wave began",
        c.install.seconds_to_ready
    ));
    if let Some(s) = c.install.cluster_up_seconds {
        lines.push(format!("cluster started by the test itself in {s:.1} s"));
    }

    // /readyz gates the endpoints: a replica that cannot list its caches (RBAC binding gone)
    // stays unready and out of the Service while the two others answer; it joins once the
    // binding is back.
    let binding = c.get(&["clusterrolebinding", "gpu-admission"]);
    let mut restore = binding.clone();
    for f in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
        "generation",
    ] {
        restore["metadata"].as_object_mut().unwrap().remove(f);
    }
    let restore_text = restore.to_string();
    let _restore_binding = Cleanup(|| {
        if !shared()
            .kubectl(&["get", "clusterrolebinding", "gpu-admission"])
            .success()
        {
            shared().kubectl_stdin(&["create", "-f", "-"], &restore_text);
        }
        shared().kubectl(&["scale", "-n", WEBHOOK_NS, "deployment/gpu-admission", "--replicas=2"]);
    });
    c.kubectl(&["delete", "clusterrolebinding", "gpu-admission"]).ok();
    let before: Vec<String> = pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    c.kubectl(&["scale", "-n", WEBHOOK_NS, "deployment/gpu-admission", "--replicas=3"])
        .ok();
    let third = wait_for("a third webhook pod running", Duration::from_secs(60), || {
        c.webhook_pods().into_iter().find(|p| {
            !before.contains(&p["metadata"]["name"].as_str().unwrap().to_string())
                && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
                && p["status"]["podIP"].is_string()
        })
    });
    let third_name = third["metadata"]["name"].as_str().unwrap().to_string();
    let third_ip = third["status"]["podIP"].as_str().unwrap().to_string();
    let (code, body) = wait_for("the third pod's /readyz to answer", Duration::from_secs(30), || {
        http_get(&format!("{third_ip}:8080"), "/readyz").ok()
    });
    assert_eq!(code, 503, "/readyz of a replica without RBAC: {body}");
    assert!(body.contains("not synced"), "{body}");
    std::thread::sleep(Duration::from_secs(3));
    let p = c.get(&["pod", "-n", WEBHOOK_NS, &third_name]);
    assert!(!is_ready(&p), "an unsynced replica became Ready");
    let slices = c.get(&[
        "endpointslices",
        "-n",
        WEBHOOK_NS,
        "-l",
        "kubernetes.io/service-name=gpu-admission",
    ]);
    let endpoints: Vec<(String, bool)> = slices["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap_or("").to_string(),
                e["conditions"]["ready"] == true,
            )
        })
        .collect();
    assert!(
        endpoints.iter().any(|(ip, ready)| ip == &third_ip && !ready),
        "the unready replica must be listed not ready: {endpoints:?}"
    );
    assert_eq!(endpoints.iter().filter(|(_, r)| *r).count(), 2, "{endpoints:?}");
    // The two ready ones answer meanwhile.
    let probe = c.kubectl_stdin(
        &["create", "--dry-run=server", "-o", "json", "-f", "-"],
        &gpu_pod_json("p", "default", 1),
    );
    assert_eq!(probe.ok().json()["spec"]["nodeSelector"]["node-type"], "gpu-worker");
    c.kubectl_stdin(&["create", "-f", "-"], &restore.to_string()).ok();
    let t = Instant::now();
    wait_for(
        "the third replica to sync and become Ready",
        Duration::from_secs(120),
        || {
            let p = c.get(&["pod", "-n", WEBHOOK_NS, &third_name]);
            is_ready(&p).then_some(())
        },
    );
    let joined = t.elapsed().as_secs_f64();
    wait_for("its endpoint to turn ready", Duration::from_secs(30), || {
        let s = c.get(&[
            "endpointslices",
            "-n",
            WEBHOOK_NS,
            "-l",
            "kubernetes.io/service-name=gpu-admission",
        ]);
        s["items"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .any(|e| e["addresses"][0] == third_ip.as_str() && e["conditions"]["ready"] == true)
            .then_some(())
    });
    assert_eq!(http_get(&format!("{third_ip}:8080"), "/readyz").unwrap().0, 200);
    c.kubectl(&["scale", "-n", WEBHOOK_NS, "deployment/gpu-admission", "--replicas=2"])
        .ok();
    c.rollout(WEBHOOK_NS, "deployment/gpu-admission", 120);
    wait_for("two webhook pods", Duration::from_secs(60), || {
        (c.webhook_pods().len() == 2).then_some(())
    });
    lines.push(format!(
        "/readyz: a replica without its RBAC binding answered 503 `{}`, was listed not ready in the EndpointSlice while 2 replicas served; it became Ready {joined:.1} s after the binding came back",
        body.trim()
    ));

    // No drift: the installation is what the overlay renders.
    let diff = c.kubectl_stdin(&["diff", "--server-side", "-f", "-"], &c.install.rendered);
    assert!(
        diff.code == 0 && diff.stdout.is_empty(),
        "drift from deploy/overlays/real-cluster:\n{}{}",
        diff.stdout,
        diff.stderr
    );
    lines.push("`kubectl diff --server-side` of the rendered overlay: empty".into());
    report::section("install (deploy/overlays/real-cluster, the image)", &lines);
}

// =============================================================================================
// Placement through controllers, and no drift
// =============================================================================================

#[test]
fn seed_ollama_and_comfyui_are_mutated_placed_by_the_scheduler_and_do_not_drift() {
    let c = shared();
    let _g = serial();
    let files = [manifest("ollama.yaml"), manifest("comfyui.yaml")];
    let _cleanup = Cleanup(|| {
        let c = shared();
        c.kubectl(&[
            "delete",
            "-f",
            &manifest("ollama.yaml"),
            "-f",
            &manifest("comfyui.yaml"),
            "--ignore-not-found",
            "--wait=false",
        ]);
        c.force_delete_pods("ai", "app in (ollama,comfyui)");
        c.kubectl(&[
            "delete",
            "-f",
            &manifest("ollama-storage.yaml"),
            "--ignore-not-found",
            "--wait=false",
        ]);
    });
    c.kubectl(&["apply", "-f", &manifest("ollama-storage.yaml")]).ok();
    let t0 = Instant::now();
    // As Argo CD applies with ServerSideApply=true.
    let apply = c.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=argocd-controller",
        "-f",
        &files[0],
        "-f",
        &files[1],
    ]);
    apply.ok();
    // The workloads webhook warns what the pods will get (templates are not patched).
    assert!(apply.stderr.contains("TOLERATION_MISSING"), "{}", apply.stderr);
    assert!(apply.stderr.contains("PRIORITY_MISSING"), "{}", apply.stderr);
    assert!(
        apply.stderr.contains("PLACEMENT_MISSING"),
        "comfyui has no node selector: {}",
        apply.stderr
    );

    let high = c.get(&["priorityclass", "high-priority"]);
    let high_value = high["value"].as_i64().expect("value");
    assert_eq!(high_value, 1_000_000, "the seed's high-priority");
    let gpu_nodes = c.get(&["nodes", "-l", "node-type=gpu-worker"]);
    let gpu_nodes: Vec<String> = gpu_nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(gpu_nodes.len(), GPU_WORKERS.len());

    let mut lines = vec![];
    for (app, slices) in [("ollama", 1), ("comfyui", 2)] {
        let pod = wait_for(
            &format!("the {app} pod bound to a node"),
            Duration::from_secs(60),
            || {
                let list = c.get(&["pods", "-n", "ai", "-l", &format!("app={app}")]);
                list["items"]
                    .as_array()
                    .and_then(|i| i.first().cloned())
                    .filter(|p| p["spec"]["nodeName"].is_string())
            },
        );
        let name = pod["metadata"]["name"].as_str().unwrap();
        let spec = &pod["spec"];
        assert_eq!(
            pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet",
            "{name} made by its ReplicaSet"
        );
        assert_eq!(spec["nodeSelector"], json!({"node-type": "gpu-worker"}), "{name}");
        assert!(has_gpu_toleration(&pod), "{name}: {}", spec["tolerations"]);
        assert_eq!(spec["priorityClassName"], "high-priority", "{name}: ai's default class");
        assert_eq!(spec["priority"].as_i64(), Some(high_value), "{name}: the class's value");
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority", "{name}");
        assert_eq!(
            spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
            slices.to_string()
        );
        let node = spec["nodeName"].as_str().unwrap();
        assert!(
            gpu_nodes.iter().any(|n| n == node),
            "{name} bound to {node}, not a GPU worker"
        );
        assert_eq!(
            condition(&pod, "PodScheduled").map(|c| c["status"].clone()),
            Some(json!("True"))
        );
        let events = c.events_for("ai", "Pod", name);
        assert!(
            events.iter().any(|e| e["reason"] == "Scheduled"
                && e["source"]["component"] == "default-scheduler"
                && e["message"].as_str().unwrap_or("").contains(node)
                || e["reportingComponent"] == "default-scheduler" && e["reason"] == "Scheduled"),
            "{name}: no Scheduled event from the scheduler: {events:?}"
        );
        lines.push(format!(
            "{app}: pod {name} stored with nodeSelector node-type=gpu-worker, toleration nvidia.com/gpu:NoSchedule, high-priority/{high_value}; bound by default-scheduler to {node} ({:.1} s after the apply)",
            t0.elapsed().as_secs_f64()
        ));
    }
    // The stored templates are Git's: not patched.
    for app in ["ollama", "comfyui"] {
        let d = c.get(&["deployment", "-n", "ai", app]);
        let tpl = &d["spec"]["template"]["spec"];
        assert!(tpl["tolerations"].is_null(), "{app}: template patched: {tpl}");
        assert!(tpl["priorityClassName"].is_null(), "{app}: template patched: {tpl}");
    }
    let diff = c.kubectl(&[
        "diff",
        "--server-side",
        "--field-manager=argocd-controller",
        "-f",
        &files[0],
        "-f",
        &files[1],
    ]);
    assert!(
        diff.code == 0 && diff.stdout.is_empty(),
        "drift after the rollout (code {}):\n{}{}",
        diff.code,
        diff.stdout,
        diff.stderr
    );
    lines.push("`kubectl diff --server-side` of both manifests after the rollout: empty (exit 0)".into());
    report::section("placement of the seed's Ollama and ComfyUI (server-side apply)", &lines);
}

// =============================================================================================
// Denial through controllers
// =============================================================================================

fn time_slicing(replicas: u32) -> String {
    json!({"data": {"any": format!(
        "version: v1\nflags:\n  migStrategy: none\nsharing:\n  timeSlicing:\n    renameByDefault: false\n    failRequestsGreaterThanOne: false\n    resources:\n      - name: nvidia.com/gpu\n        replicas: {replicas}"
    )}})
    .to_string()
}

#[test]
fn over_the_limit_is_refused_at_dry_run_and_as_failedcreate_events_of_the_job_controller() {
    let c = shared();
    let _g = serial();
    let ns = "denial-test";
    let _cleanup = Cleanup(|| {
        let c = shared();
        c.kubectl(&[
            "patch",
            "configmap",
            "-n",
            "gpu-operator",
            "time-slicing-config",
            "--type=merge",
            "-p",
            &time_slicing(4),
        ]);
        c.delete_namespace("denial-test");
    });
    c.kubectl(&["create", "namespace", ns]).ok();
    wait_for("the default ServiceAccount", Duration::from_secs(30), || {
        c.kubectl(&["get", "sa", "default", "-n", ns]).success().then_some(())
    });
    let mut lines = vec![];

    // More slices per pod than a node has (4 + 4 + 1 = 9 > 8): refused before anything is stored.
    let container = |n: &str, s: u32| {
        json!({"name": n, "image": "localhost/gpu-admission-test/stub:1",
               "resources": {"limits": {"nvidia.com/gpu": s.to_string()}}})
    };
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nine-slices", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nine"}},
                 "template": {"metadata": {"labels": {"app": "nine"}},
                              "spec": {"containers": [container("a", 4), container("b", 4), container("c", 1)]}}}
    });
    let dry = c.kubectl_stdin(
        &["apply", "--server-side", "--dry-run=server", "-f", "-"],
        &deployment.to_string(),
    );
    assert!(!dry.success(), "a 9-slice pod template was accepted: {dry:?}");
    assert!(
        dry.stderr
            .contains("admission webhook \"workloads.validate.gpu-admission.io\" denied the request"),
        "{}",
        dry.stderr
    );
    assert!(dry.stderr.contains("SLICES_POD_EXCEEDED"), "{}", dry.stderr);
    assert!(
        !c.kubectl(&["get", "deployment", "-n", ns, "nine-slices"]).success(),
        "stored anyway"
    );
    lines.push(format!(
        "dry-run=server of a 9-slice Deployment: refused, `{}`",
        dry.stderr.trim()
    ));

    // A Job within the limit when applied (4 slices, suspended), over it when its controller
    // creates the pod: the limit is now only on the pod path.
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "four-slices", "namespace": ns},
        "spec": {"suspend": true, "backoffLimit": 0,
                 "template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                       "containers": [container("train", 4)]}}}
    });
    c.kubectl_stdin(&["create", "-f", "-"], &job.to_string()).ok();
    c.kubectl(&[
        "patch",
        "configmap",
        "-n",
        "gpu-operator",
        "time-slicing-config",
        "--type=merge",
        "-p",
        &time_slicing(2),
    ])
    .ok();
    let t = Instant::now();
    wait_for(
        "the webhook to take replicas: 2 from the time-slicing ConfigMap",
        Duration::from_secs(60),
        || {
            let out = c.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &gpu_pod_json("p3", ns, 3));
            (!out.success() && out.stderr.contains("SLICES_CONTAINER_EXCEEDED")).then_some(())
        },
    );
    lines.push(format!(
        "time-slicing-config replicas 4 -> 2 decided by the webhook's watch cache within {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    // Unsuspending leaves the template alone: not sent to the workloads webhook.
    c.kubectl(&[
        "patch",
        "job",
        "-n",
        ns,
        "four-slices",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ])
    .ok();
    let event = wait_for(
        "a FailedCreate event of the Job controller",
        Duration::from_secs(60),
        || {
            c.events_for(ns, "Job", "four-slices")
                .into_iter()
                .find(|e| e["reason"] == "FailedCreate")
        },
    );
    let msg = event["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(event["type"], "Warning");
    assert!(
        msg.contains("admission webhook \"pods.validate.gpu-admission.io\" denied the request"),
        "{msg}"
    );
    assert!(msg.contains("SLICES_CONTAINER_EXCEEDED"), "{msg}");
    assert!(msg.contains("at most 2"), "{msg}");
    let pods = c.get(&["pods", "-n", ns, "-l", "job-name=four-slices"]);
    assert_eq!(pods["items"].as_array().unwrap().len(), 0, "a pod was created: {pods}");
    lines.push(format!("Job controller: FailedCreate `{msg}`"));

    // Back to 4 slices: the controller's next try creates the pod, mutated and placed.
    c.kubectl(&[
        "patch",
        "configmap",
        "-n",
        "gpu-operator",
        "time-slicing-config",
        "--type=merge",
        "-p",
        &time_slicing(4),
    ])
    .ok();
    wait_for("the webhook back at replicas: 4", Duration::from_secs(60), || {
        c.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &gpu_pod_json("p3", ns, 3))
            .success()
            .then_some(())
    });
    let t = Instant::now();
    let pod = wait_for("the Job's pod, once allowed", Duration::from_secs(120), || {
        // A change to the Job makes its controller sync at once instead of after its backoff.
        c.kubectl(&[
            "label",
            "job",
            "-n",
            ns,
            "four-slices",
            &format!("retry={}", t.elapsed().as_secs()),
            "--overwrite",
        ]);
        let pods = c.get(&["pods", "-n", ns, "-l", "job-name=four-slices"]);
        pods["items"]
            .as_array()
            .and_then(|i| i.first().cloned())
            .filter(|p| p["spec"]["nodeName"].is_string())
    });
    assert!(GPU_WORKERS.contains(&pod["spec"]["nodeName"].as_str().unwrap()));
    assert!(has_gpu_toleration(&pod));
    lines.push(format!(
        "after replicas: 4 came back, the Job's pod was created and bound to {}",
        pod["spec"]["nodeName"].as_str().unwrap()
    ));
    report::section("denial through controllers", &lines);
}

// =============================================================================================
// The scheduler's limit
// =============================================================================================

#[test]
fn five_two_slice_replicas_on_one_eight_slice_worker_leave_the_fifth_pending() {
    let c = shared();
    let _g = serial();
    let ns = "scheduler-limit";
    let worker = GPU_WORKERS[1];
    let _cleanup = Cleanup(|| shared().delete_namespace("scheduler-limit"));
    let busy: Vec<String> = c
        .pods_on(worker)
        .iter()
        .map(|p| format!("{}/{}", p["metadata"]["namespace"], p["metadata"]["name"]))
        .collect();
    assert!(busy.is_empty(), "{worker} must start empty: {busy:?}");
    c.kubectl(&["create", "namespace", ns]).ok();
    wait_for("the default ServiceAccount", Duration::from_secs(30), || {
        c.kubectl(&["get", "sa", "default", "-n", ns]).success().then_some(())
    });
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "two-slices", "namespace": ns},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "two-slices"}},
                 "template": {"metadata": {"labels": {"app": "two-slices"}},
                              "spec": {"nodeSelector": {"kubernetes.io/hostname": worker},
                                       "terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": "c", "image": "localhost/gpu-admission-test/stub:1",
                                                       "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}}
    });
    c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &deployment.to_string())
        .ok();
    let (bound, pending) = wait_for("four bound, the fifth unschedulable", Duration::from_secs(90), || {
        let pods = c.get(&["pods", "-n", ns, "-l", "app=two-slices"]);
        let pods = pods["items"].as_array().cloned().unwrap_or_default();
        if pods.len() != 5 {
            return None;
        }
        let bound: Vec<Value> = pods
            .iter()
            .filter(|p| p["spec"]["nodeName"].is_string())
            .cloned()
            .collect();
        let pending: Vec<Value> = pods
            .iter()
            .filter(|p| {
                condition(p, "PodScheduled").is_some_and(|c| c["status"] == "False" && c["reason"] == "Unschedulable")
            })
            .cloned()
            .collect();
        (bound.len() == 4 && pending.len() == 1).then_some((bound, pending))
    });
    for p in &bound {
        assert_eq!(p["spec"]["nodeName"], worker);
        assert!(has_gpu_toleration(p));
        assert_eq!(p["spec"]["nodeSelector"]["node-type"], "gpu-worker");
    }
    let fifth = &pending[0];
    let name = fifth["metadata"]["name"].as_str().unwrap();
    let cond = condition(fifth, "PodScheduled").unwrap();
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(msg.contains("Insufficient nvidia.com/gpu"), "{msg}");
    // Admitted and mutated like the others: the webhook does not deny what the scheduler queues.
    assert!(has_gpu_toleration(fifth));
    assert_eq!(fifth["spec"]["priorityClassName"], "medium-priority");
    let event = wait_for("a FailedScheduling event", Duration::from_secs(30), || {
        c.events_for(ns, "Pod", name)
            .into_iter()
            .find(|e| e["reason"] == "FailedScheduling")
    });
    assert!(
        event["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Insufficient nvidia.com/gpu"),
        "{event}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let again = c.get(&["pod", "-n", ns, name]);
    assert!(again["spec"]["nodeName"].is_null(), "the fifth was bound after all");
    report::section(
        "the scheduler's limit",
        &[
            format!("5 replicas of 2 slices pinned to {worker} (8 slices): 4 bound there, {name} Pending: `{msg}`"),
            format!(
                "FailedScheduling event: `{}`",
                event["message"].as_str().unwrap_or_default()
            ),
        ],
    );
}

// =============================================================================================
// Coral
// =============================================================================================

#[test]
fn seed_coral_pod_runs_in_ai_and_is_refused_in_default() {
    let c = shared();
    let _g = serial();
    let _cleanup = Cleanup(|| {
        shared().kubectl(&[
            "delete",
            "pod",
            "-n",
            "ai",
            "tpu-pod",
            "--ignore-not-found",
            "--grace-period=1",
            "--wait=true",
        ]);
    });
    c.kubectl(&["apply", "-n", "ai", "-f", &manifest("coral-pod.yaml")])
        .ok();
    let pod = wait_for("the Coral pod Ready in ai", Duration::from_secs(90), || {
        let p = c.get(&["pod", "-n", "ai", "tpu-pod"]);
        is_ready(&p).then_some(p)
    });
    assert_eq!(pod["spec"]["nodeName"], SYSTEM_NODE);
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["spec"]["volumes"][0]["hostPath"]["path"], "/dev/bus/usb");
    assert!(
        pod["spec"]["nodeSelector"].is_null(),
        "no GPU, not placed: {}",
        pod["spec"]
    );
    let reasons: Vec<String> = c
        .events_for("ai", "Pod", "tpu-pod")
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect();
    assert!(reasons.iter().any(|r| r == "Started"), "{reasons:?}");
    assert!(!reasons.iter().any(|r| r == "Pulling"), "{reasons:?}");

    let refused = c.kubectl(&["apply", "-n", "default", "-f", &manifest("coral-pod.yaml")]);
    assert!(!refused.success(), "Coral pod accepted in default");
    assert!(
        refused
            .stderr
            .contains("admission webhook \"pods.validate.gpu-admission.io\" denied the request"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("HOSTPATH_NAMESPACE_NOT_ALLOWED"),
        "{}",
        refused.stderr
    );
    assert!(!c.kubectl(&["get", "pod", "-n", "default", "tpu-pod"]).success());
    report::section(
        "Coral",
        &[
            format!("tpu-pod in ai: Running on {SYSTEM_NODE} with hostPath /dev/bus/usb"),
            format!("tpu-pod in default: `{}`", refused.stderr.trim()),
        ],
    );
}

// =============================================================================================
// System namespaces, and the webhook never blocking its own pods
// =============================================================================================

#[test]
fn node_exporter_runs_in_monitoring_exempt_namespaces_are_untouched_and_the_webhook_never_blocks_itself() {
    let c = shared();
    let _g = serial();
    let _cleanup = Cleanup(|| {
        let c = shared();
        c.kubectl(&[
            "delete",
            "-f",
            &corpus("24-kube-prometheus-node-exporter-daemonset.yaml"),
            "--ignore-not-found",
            "--wait=false",
        ]);
        c.force_delete_pods("monitoring", "app.kubernetes.io/name=node-exporter");
        c.kubectl(&[
            "delete",
            "sa",
            "-n",
            "monitoring",
            "node-exporter",
            "--ignore-not-found",
        ]);
        for ns in ["kube-system", "gpu-operator", "default"] {
            c.kubectl(&[
                "delete",
                "pod",
                "-n",
                ns,
                "exempt-gpu",
                "outage-gpu",
                "--ignore-not-found",
                "--grace-period=0",
                "--force",
            ]);
        }
        c.kubectl(&["scale", "-n", WEBHOOK_NS, "deployment/gpu-admission", "--replicas=2"]);
        c.kubectl(&[
            "rollout",
            "status",
            "-n",
            WEBHOOK_NS,
            "deployment/gpu-admission",
            "--timeout=120s",
        ]);
    });
    let mut lines = vec![];
    // node-exporter (the corpus DaemonSet, verbatim): hostPath / and /sys, allowed in monitoring.
    let node_exporter = corpus("24-kube-prometheus-node-exporter-daemonset.yaml");
    assert!(
        std::path::Path::new(&node_exporter).exists(),
        "{node_exporter} is missing"
    );
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "node-exporter", "namespace": "monitoring"}})
        .to_string(),
    )
    .ok();
    let apply = c.kubectl(&[
        "apply",
        "-f",
        &corpus("24-kube-prometheus-node-exporter-daemonset.yaml"),
    ]);
    apply.ok();
    let pod = wait_for(
        "node-exporter Ready on the kubelet's node",
        Duration::from_secs(90),
        || {
            let list = c.get(&["pods", "-n", "monitoring", "-l", "app.kubernetes.io/name=node-exporter"]);
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["spec"]["nodeName"] == SYSTEM_NODE && is_ready(p))
                .cloned()
        },
    );
    let all = c.get(&["pods", "-n", "monitoring", "-l", "app.kubernetes.io/name=node-exporter"]);
    let all = all["items"].as_array().unwrap();
    assert_eq!(
        all.len(),
        1 + GPU_WORKERS.len(),
        "one per node (it tolerates every taint)"
    );
    assert_eq!(pod["status"]["containerStatuses"].as_array().unwrap().len(), 2);
    let spec = &pod["spec"];
    assert!(spec["nodeSelector"].get("node-type").is_none(), "{spec}");
    assert_eq!(spec["priorityClassName"], "system-cluster-critical");
    assert_eq!(spec["volumes"][1]["hostPath"]["path"], "/");
    lines.push(format!(
        "node-exporter DaemonSet (corpus, verbatim) in monitoring: {} pods, the one on {SYSTEM_NODE} Running and Ready with hostPath / and /sys",
        all.len()
    ));

    // Exempt namespaces: GPU pods stored exactly as sent, never sent to the webhook.
    let before = webhook_metric("gpu_admission_requests_total", &[]);
    for ns in ["kube-system", "gpu-operator"] {
        c.kubectl_stdin(&["create", "-f", "-"], &gpu_pod_json("exempt-gpu", ns, 1))
            .ok();
        let p = c.get(&["pod", "-n", ns, "exempt-gpu"]);
        assert!(p["spec"]["nodeSelector"].is_null(), "{ns}: {}", p["spec"]);
        assert!(!has_gpu_toleration(&p), "{ns}: {}", p["spec"]);
        assert!(p["spec"]["priorityClassName"].is_null(), "{ns}: {}", p["spec"]);
    }
    let after = webhook_metric("gpu_admission_requests_total", &[]);
    assert_eq!(before, after, "the webhook was called for an exempt namespace");
    lines.push(format!(
        "GPU pods in kube-system and gpu-operator: stored untouched; the replicas' gpu_admission_requests_total stayed at {after}"
    ));

    // Webhook down: GPU pods elsewhere are refused (validating fails closed); kube-system and
    // the webhook's own pods are not.
    c.kubectl(&["scale", "-n", WEBHOOK_NS, "deployment/gpu-admission", "--replicas=0"])
        .ok();
    wait_for("no webhook pods", Duration::from_secs(90), || {
        c.webhook_pods().is_empty().then_some(())
    });
    let refused = c.kubectl_stdin(&["create", "-f", "-"], &gpu_pod_json("outage-gpu", "default", 1));
    assert!(!refused.success(), "a GPU pod was admitted with no webhook running");
    assert!(
        refused
            .stderr
            .contains("failed calling webhook \"pods.validate.gpu-admission.io\""),
        "{}",
        refused.stderr
    );
    let ks = c.kubectl_stdin(&["create", "-f", "-"], &gpu_pod_json("outage-gpu", "kube-system", 1));
    ks.ok();
    let t = Instant::now();
    c.kubectl(&["scale", "-n", WEBHOOK_NS, "deployment/gpu-admission", "--replicas=2"])
        .ok();
    c.rollout(WEBHOOK_NS, "deployment/gpu-admission", 120);
    wait_for(
        "the webhook answering through its Service again",
        Duration::from_secs(60),
        || {
            let out = c.kubectl_stdin(
                &["create", "--dry-run=server", "-o", "json", "-f", "-"],
                &gpu_pod_json("p", "default", 1),
            );
            (out.success() && out.json()["spec"]["nodeSelector"]["node-type"] == "gpu-worker").then_some(())
        },
    );
    lines.push(format!(
        "webhook scaled to 0: a GPU pod in default refused (`{}`), one in kube-system admitted; its own 2 pods created and serving again {:.1} s after scaling back",
        refused.stderr.trim(),
        t.elapsed().as_secs_f64()
    ));
    report::section("system namespaces", &lines);
}

// =============================================================================================
// The webhook's own life under load
// =============================================================================================

/// One step of the life test: its report line, and what the API server counted meanwhile.
struct Step {
    line: String,
    call_errors: f64,
    fail_open: f64,
    load_failed: u64,
}

fn step(name: &str, secs: f64, before: (ApiMetrics, u64, u64), after: (ApiMetrics, u64, u64)) -> Step {
    let (b, bs, bf) = before;
    let (a, as_, af) = after;
    let call_errors = a.rejected_call_errors - b.rejected_call_errors;
    let fail_open = a.fail_open - b.fail_open;
    Step {
        line: format!(
            "{name}: {secs:.1} s; load {} requests, {} failed; API server: apiserver_admission_webhook_rejection_count calling_webhook_error +{call_errors}, no_error (policy denials) +{}; apiserver_admission_webhook_fail_open_count +{fail_open}",
            as_ - bs,
            af - bf,
            a.rejected_for_policy - b.rejected_for_policy,
        ),
        call_errors,
        fail_open,
        load_failed: af - bf,
    }
}

#[test]
fn webhook_rolling_update_replica_loss_certificate_and_policy_changes_under_load_fail_no_request() {
    let c = shared();
    let _g = serial();
    let ns = "load-test";
    let policy_cm = c.get(&["deployment", "-n", WEBHOOK_NS, WEBHOOK_DEPLOYMENT])["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "policy")
        .and_then(|v| v["configMap"]["name"].as_str())
        .expect("policy volume")
        .to_string();
    let original_policy = c.get(&["configmap", "-n", WEBHOOK_NS, &policy_cm])["data"]["policy.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    let (cm, orig) = (policy_cm.clone(), original_policy.clone());
    let _cleanup = Cleanup(move || {
        let c = shared();
        let patch = json!({"data": {"policy.yaml": orig}}).to_string();
        c.kubectl(&[
            "patch",
            "configmap",
            "-n",
            WEBHOOK_NS,
            &cm,
            "--type=merge",
            "-p",
            &patch,
        ]);
        c.delete_namespace("load-test");
    });
    c.kubectl(&["create", "namespace", ns]).ok();
    wait_for("the default ServiceAccount", Duration::from_secs(30), || {
        c.kubectl(&["get", "sa", "default", "-n", ns]).success().then_some(())
    });

    let load = Load::start(&c.kubeconfig, ns);
    wait_for("the load under way", Duration::from_secs(30), || {
        (load.stats().sent >= 30).then_some(())
    });
    let mut steps: Vec<Step> = vec![];
    let snap = |load: &Load| {
        let s = load.stats();
        (api_metrics(), s.sent, s.failed)
    };

    // 1. A rolling update (a changed pod template).
    let before = snap(&load);
    let t = Instant::now();
    let old_hash: Vec<String> = c
        .webhook_pods()
        .iter()
        .map(|p| {
            p["metadata"]["labels"]["pod-template-hash"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"gpu-admission.io/rolled": format!("{}", std::process::id())}}}}});
    c.kubectl(&[
        "patch",
        "deployment",
        "-n",
        WEBHOOK_NS,
        WEBHOOK_DEPLOYMENT,
        "--type=merge",
        "-p",
        &patch.to_string(),
    ])
    .ok();
    c.rollout(WEBHOOK_NS, "deployment/gpu-admission", 180);
    wait_for("only new replicas left", Duration::from_secs(90), || {
        let pods = c.webhook_pods();
        (pods.len() == 2
            && pods.iter().all(|p| {
                !old_hash.contains(
                    &p["metadata"]["labels"]["pod-template-hash"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            }))
        .then_some(())
    });
    steps.push(step(
        "rolling update of gpu-admission (template annotation)",
        t.elapsed().as_secs_f64(),
        before,
        snap(&load),
    ));

    // 2. One replica deleted.
    let before = snap(&load);
    let t = Instant::now();
    let victim = c.webhook_pods()[0]["metadata"]["name"].as_str().unwrap().to_string();
    c.kubectl(&["delete", "pod", "-n", WEBHOOK_NS, &victim, "--wait=false"])
        .ok();
    wait_for(
        "the deleted replica replaced and gone",
        Duration::from_secs(120),
        || {
            let pods = c.webhook_pods();
            (pods.len() == 2
                && pods
                    .iter()
                    .all(|p| p["metadata"]["name"] != victim.as_str() && is_ready(p)))
            .then_some(())
        },
    );
    steps.push(step(
        &format!("replica {victim} deleted"),
        t.elapsed().as_secs_f64(),
        before,
        snap(&load),
    ));

    // 3. The serving certificate Secret replaced: the kubelet swaps ..data, the server reloads.
    let before = snap(&load);
    let t = Instant::now();
    let svc = format!("{}:443", c.service_ip());
    let old_serial = served_serial(&svc).expect("serial before");
    let reloads_before = webhook_metric(
        "gpu_admission_reloads_total",
        &["target=\"certificate\"", "result=\"success\""],
    );
    let renew = c.script("webhook-certs.sh", &["renew"]);
    renew.ok();
    let new_serial = renew.stdout.lines().last().unwrap().trim().to_string();
    assert_ne!(old_serial, new_serial);
    for ip in c.ready_webhook_ips() {
        wait_for(
            &format!("{ip} serving serial {new_serial}"),
            Duration::from_secs(120),
            || (served_serial(&format!("{ip}:8443")).ok()? == new_serial).then_some(()),
        );
    }
    let mut through_service = 0;
    wait_for(
        "20 handshakes in a row through the Service with the new serial",
        Duration::from_secs(60),
        || {
            through_service = if served_serial(&svc).ok()? == new_serial {
                through_service + 1
            } else {
                0
            };
            (through_service >= 20).then_some(())
        },
    );
    let reloads_after = webhook_metric(
        "gpu_admission_reloads_total",
        &["target=\"certificate\"", "result=\"success\""],
    );
    assert!(
        reloads_after >= reloads_before + 2.0,
        "certificate reloads {reloads_before} -> {reloads_after}"
    );
    steps.push(step(
        &format!(
            "serving Secret replaced: serial {old_serial} -> {new_serial}, served by both pods and through the Service"
        ),
        t.elapsed().as_secs_f64(),
        before,
        snap(&load),
    ));

    // 4. The policy ConfigMap changed in place: the new decision without a restart.
    let before = snap(&load);
    let t = Instant::now();
    let pods_before: Vec<(String, i64)> = c
        .webhook_pods()
        .iter()
        .map(|p| {
            (
                p["metadata"]["uid"].as_str().unwrap().to_string(),
                p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap(),
            )
        })
        .collect();
    let changed = original_policy.replace(
        "namespaceDefaults: {ai: high-priority}",
        "namespaceDefaults: {ai: medium-priority}",
    );
    assert_ne!(
        changed, original_policy,
        "the policy no longer has `namespaceDefaults: {{ai: high-priority}}`"
    );
    let class_in_ai = || {
        let out = c.kubectl_stdin(
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            &gpu_pod_json("p", "ai", 1),
        );
        out.success().then(|| {
            out.json()["spec"]["priorityClassName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
    };
    assert_eq!(class_in_ai().as_deref(), Some("high-priority"));
    let policy_reloads = webhook_metric(
        "gpu_admission_reloads_total",
        &["target=\"policy\"", "result=\"success\""],
    );
    c.kubectl(&[
        "patch",
        "configmap",
        "-n",
        WEBHOOK_NS,
        &policy_cm,
        "--type=merge",
        "-p",
        &json!({"data": {"policy.yaml": changed}}).to_string(),
    ])
    .ok();
    wait_for(
        "every replica deciding with the changed policy",
        Duration::from_secs(120),
        || {
            (webhook_metric(
                "gpu_admission_reloads_total",
                &["target=\"policy\"", "result=\"success\""],
            ) >= policy_reloads + 2.0)
                .then_some(())
        },
    );
    for _ in 0..10 {
        assert_eq!(
            class_in_ai().as_deref(),
            Some("medium-priority"),
            "a replica still decides with the old policy"
        );
    }
    let took = t.elapsed().as_secs_f64();
    let pods_after: Vec<(String, i64)> = c
        .webhook_pods()
        .iter()
        .map(|p| {
            (
                p["metadata"]["uid"].as_str().unwrap().to_string(),
                p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(pods_before, pods_after, "the webhook pods were restarted or replaced");
    c.kubectl(&[
        "patch",
        "configmap",
        "-n",
        WEBHOOK_NS,
        &policy_cm,
        "--type=merge",
        "-p",
        &json!({"data": {"policy.yaml": original_policy}}).to_string(),
    ])
    .ok();
    wait_for(
        "the original policy back on every replica",
        Duration::from_secs(120),
        || {
            (webhook_metric(
                "gpu_admission_reloads_total",
                &["target=\"policy\"", "result=\"success\""],
            ) >= policy_reloads + 4.0)
                .then_some(())
        },
    );
    assert_eq!(class_in_ai().as_deref(), Some("high-priority"));
    steps.push(step(
        &format!("policy ConfigMap changed in place (ai -> medium-priority, taken by both replicas in {took:.1} s, no restart) and back"),
        t.elapsed().as_secs_f64(),
        before,
        snap(&load),
    ));

    let stats = load.stop();
    let metrics_text = c.apiserver_metrics();
    let mut lines: Vec<String> = steps.iter().map(|s| s.line.clone()).collect();
    lines.push(format!("load in all: {}", stats.line()));
    for l in webhook_metric_lines(&metrics_text) {
        lines.push(format!("`{l}`"));
    }
    report::section("the webhook's own life under load", &lines);
    assert!(stats.sent >= 200, "too little load to mean anything: {}", stats.line());
    assert!(stats.denied_for_policy > 0 && stats.mutated > 0, "{}", stats.line());
    assert_eq!(
        stats.failed,
        0,
        "failed admission requests (calls that failed, or answers the load did not expect): {}\nfirst ones:\n{:#?}",
        stats.line(),
        &stats.failures[..stats.failures.len().min(5)]
    );
    for s in &steps {
        assert_eq!(s.load_failed, 0, "{}", s.line);
        assert_eq!(s.call_errors, 0.0, "webhook calls failed: {}", s.line);
        assert_eq!(s.fail_open, 0.0, "mutations failed open: {}", s.line);
    }
}
