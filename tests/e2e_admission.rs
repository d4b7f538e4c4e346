//! End to end: a real kube-apiserver calls the real `gpu-admission serve`, registered with the
//! webhook configurations of `deploy/overlays/local`, and every request goes through `kubectl`.
//! Each scenario asserts kubectl's exit code, stdout and stderr.
//!
//! One control plane and one webhook serve every test of this binary; the tests use distinct
//! object names, so they run in parallel.

use std::path::Path;
use std::sync::OnceLock;

use gpu_admission_testkit::e2e::harness::{self, Output, kubectl};
use gpu_admission_testkit::e2e::webhook;
use serde_json::Value;
use webhook::{Webhook, WebhookOptions, assert_not_found, assert_output, corpus, fixture, s};

const VALIDATE_PODS: &str = "pods.validate.gpu-admission.io";
const VALIDATE_WORKLOADS: &str = "workloads.validate.gpu-admission.io";
const VALIDATE_CRONJOBS: &str = "cronjobs.validate.gpu-admission.io";

/// The namespaces the scenarios and the corpus use.
const NAMESPACES: &[&str] = &[
    "ai",
    "ollama",
    "stable-diffusion",
    "open-webui",
    "monitoring",
    "student-app",
    "gpu-operator",
];

/// The webhook, registered. Before registering it, stores objects that violate the policy, as a
/// cluster has them when the webhook is installed.
fn env() -> &'static Webhook {
    static ENV: OnceLock<Webhook> = OnceLock::new();
    ENV.get_or_init(|| {
        harness::shared();
        webhook::ensure_namespaces(NAMESPACES);
        kubectl(&["create", "-f", s(&fixture("legacy-hostpath-deployment.yaml"))], None).assert_success();

        let w = Webhook::start(WebhookOptions::default());
        let configs = webhook::render_local_overlay(w.port, &w.certs.ca_pem());
        webhook::apply_webhook_configurations(&configs);
        w
    })
}

/// What kubectl prints about a GPU controller's pods (the validating webhook's warnings).
const POD_WARNINGS: [&str; 3] = [
    "Warning: PLACEMENT_MISSING: pods will get nodeSelector node-type=gpu-worker",
    "Warning: TOLERATION_MISSING: pods will get toleration nvidia.com/gpu:NoSchedule (operator Exists)",
    "Warning: PRIORITY_MISSING: pods will get priorityClassName medium-priority",
];

/// kubectl's line for a create refused by one of our webhooks.
fn denied(webhook: &str, file: &Path, message: &str) -> String {
    format!(
        "Error from server (Forbidden): error when creating \"{}\": admission webhook \"{webhook}\" denied the request: gpu-admission: 1 policy violation: {message}",
        s(file)
    )
}

/// Asserts that kubectl failed with exactly [`denied`]'s line and nothing else.
#[track_caller]
fn assert_refused(out: &Output, webhook: &str, file: &Path, message: &str) {
    assert_output(out, 1, &[], &[&denied(webhook, file, message)]);
}

/// Asserts that `namespace/name` of `kind` (`pod`, `deployment`) is not stored.
#[track_caller]
fn assert_not_stored(kind: &str, namespace: &str, name: &str) {
    let resource = match kind {
        "deployment" => "deployments.apps",
        _ => "pods",
    };
    let get = kubectl(&["get", kind, name, "-n", namespace], None);
    assert_not_found(&get, resource, name);
}

fn get_json(args: &[&str]) -> Value {
    let mut a = vec!["get", "-o", "json"];
    a.extend_from_slice(args);
    kubectl(&a, None).assert_success().json()
}

fn has_gpu_toleration(pod: &Value) -> bool {
    pod["spec"]["tolerations"].as_array().is_some_and(|ts| {
        ts.iter()
            .any(|t| t["key"] == "nvidia.com/gpu" && t["operator"] == "Exists" && t["effect"] == "NoSchedule")
    })
}

/// `kubectl apply --dry-run=server` of a GPU Deployment from the corpus: accepted, with our
/// warnings; the webhook saw `dryRun: true`; nothing is stored.
#[test]
fn dry_run_gpu_deployment_warns_and_stores_nothing() {
    let w = env();
    let file = corpus("34-vllm-docs-mistral-7b-gpu-deployment.yaml");
    let dry_runs_before = w.metric(
        "gpu_admission_requests_total",
        &[("endpoint", "validate"), ("kind", "Deployment"), ("dry_run", "true")],
    );

    let out = kubectl(&["apply", "--dry-run=server", "-f", s(&file)], None);
    assert_output(
        &out,
        0,
        &["deployment.apps/mistral-7b created (server dry run)"],
        &POD_WARNINGS,
    );

    // The webhook was asked, with dryRun: true (its review log line and its counter).
    // (Only dry runs of it are made in this binary: every review of it must say so.)
    let reviews = w.reviews_of("default", "mistral-7b");
    assert!(!reviews.is_empty(), "the webhook never reviewed default/mistral-7b");
    for r in &reviews {
        assert_eq!(r["endpoint"], "validate", "{r}");
        assert_eq!(r["kind"], "Deployment", "{r}");
        assert_eq!(r["operation"], "CREATE", "{r}");
        assert_eq!(r["decision"], "allowed", "{r}");
        assert_eq!(r["dry_run"], true, "{r}");
    }
    let dry_runs_after = w.metric(
        "gpu_admission_requests_total",
        &[("endpoint", "validate"), ("kind", "Deployment"), ("dry_run", "true")],
    );
    assert!(
        dry_runs_after > dry_runs_before,
        "dry_run=\"true\" counter did not grow"
    );

    // Nothing was stored.
    assert_not_stored("deployment", "default", "mistral-7b");
}

/// The corpus' other GPU Deployment, in its own namespace (`ollama`), the same way.
#[test]
fn dry_run_ollama_deployment_warns() {
    env();
    let file = corpus("02-homeiac-ollama-gpu-deployment.yaml");
    let out = kubectl(&["apply", "--dry-run=server", "-f", s(&file)], None);
    assert_output(
        &out,
        0,
        &["deployment.apps/ollama-gpu created (server dry run)"],
        &POD_WARNINGS,
    );
    assert_not_stored("deployment", "ollama", "ollama-gpu");
}

/// A Deployment asking for more GPU slices than time-slicing gives is refused.
#[test]
fn deployment_over_slice_limit_is_refused() {
    env();
    let file = fixture("slices-deployment.yaml");
    let out = kubectl(&["apply", "-f", s(&file)], None);
    let refusal = denied(
        VALIDATE_WORKLOADS,
        &file,
        "[SLICES_CONTAINER_EXCEEDED] spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]: container `trainer` asks for 5 nvidia.com/gpu; at most 4 per container (time-slicing gives 4 slices per GPU): ask for 4 or fewer",
    );
    // A refused controller still gets the warnings about its pods.
    let stderr: Vec<&str> = POD_WARNINGS.into_iter().chain([refusal.as_str()]).collect();
    assert_output(&out, 1, &[], &stderr);
    assert_not_stored("deployment", "default", "too-many-slices");
}

/// A Pod mounting the host's `/` is refused (corpus 13).
#[test]
fn hostpath_root_pod_is_refused() {
    env();
    let file = corpus("13-badpods-hostpath-root-pod.yaml");
    let out = kubectl(&["apply", "-f", s(&file)], None);
    assert_refused(
        &out,
        VALIDATE_PODS,
        &file,
        "[HOSTPATH_NOT_ALLOWED] spec.volumes[0].hostPath.path: hostPath `/` is not allowed; only /dev/bus/usb may be mounted from the host: use a PersistentVolumeClaim, ConfigMap or emptyDir",
    );
    assert_not_stored("pod", "default", "hostpath-exec-pod");
}

/// A CronJob's template (spec.jobTemplate.spec.template) is matched and checked too.
#[test]
fn hostpath_root_cronjob_is_refused() {
    env();
    let file = fixture("hostpath-cronjob.yaml");
    let out = kubectl(&["apply", "--dry-run=server", "-f", s(&file)], None);
    assert_refused(
        &out,
        VALIDATE_CRONJOBS,
        &file,
        "[HOSTPATH_NOT_ALLOWED] spec.jobTemplate.spec.template.spec.volumes[0].hostPath.path: hostPath `/` is not allowed; only /dev/bus/usb may be mounted from the host: use a PersistentVolumeClaim, ConfigMap or emptyDir",
    );
}

/// A GPU Pod pinned to another `node-type` is refused (the mutating webhook leaves a present key
/// alone; validation names the conflict).
#[test]
fn conflicting_node_type_is_refused() {
    env();
    let file = fixture("node-type-conflict-pod.yaml");
    let out = kubectl(&["create", "-f", s(&file)], None);
    assert_refused(
        &out,
        VALIDATE_PODS,
        &file,
        "[PLACEMENT_CONFLICT] spec.nodeSelector.node-type: GPU workloads must run on `node-type=gpu-worker` nodes, found `node-type=cpu-worker`: set it to `gpu-worker` or remove it",
    );
    assert_not_stored("pod", "default", "node-type-conflict");
}

/// A bare GPU Pod created in `ai` is stored with everything the mutating webhook adds, and the
/// Priority admission plugin accepted the patched priority.
#[test]
fn bare_gpu_pod_in_ai_is_stored_mutated() {
    let w = env();
    let file = fixture("gpu-pod.yaml");
    let out = kubectl(&["create", "-n", "ai", "-f", s(&file)], None);
    assert_output(&out, 0, &["pod/gpu-pod created"], &[]);

    let pod = get_json(&["pod", "gpu-pod", "-n", "ai"]);
    let spec = &pod["spec"];
    assert_eq!(spec["nodeSelector"]["node-type"], "gpu-worker", "{spec}");
    assert!(has_gpu_toleration(&pod), "no GPU toleration: {spec}");
    assert_eq!(spec["priorityClassName"], "high-priority", "{spec}");
    assert_eq!(spec["priority"], 1_000_000, "{spec}");
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority", "{spec}");

    let reviews = w.reviews_of("ai", "gpu-pod");
    let decisions: Vec<_> = reviews
        .iter()
        .map(|r| (r["endpoint"].as_str().unwrap_or("").to_string(), r["decision"].clone()))
        .collect();
    assert!(
        decisions.iter().any(|(e, d)| e == "mutate" && d == "mutated")
            && decisions.iter().any(|(e, d)| e == "validate" && d == "allowed"),
        "mutate → mutated, then validate → allowed expected: {reviews:?}"
    );
}

/// Outside `ai` the default class is medium-priority.
#[test]
fn gpu_pod_elsewhere_gets_medium_priority() {
    env();
    let file = fixture("gpu-pod.yaml");
    let out = kubectl(&["create", "-n", "open-webui", "-f", s(&file)], None);
    assert_output(&out, 0, &["pod/gpu-pod created"], &[]);
    let pod = get_json(&["pod", "gpu-pod", "-n", "open-webui"]);
    assert_eq!(pod["spec"]["nodeSelector"]["node-type"], "gpu-worker", "{pod}");
    assert!(has_gpu_toleration(&pod), "{pod}");
    assert_eq!(pod["spec"]["priorityClassName"], "medium-priority", "{pod}");
    assert_eq!(pod["spec"]["priority"], 100_000, "{pod}");
}

/// A GPU asked for only by an init container, as the renamed shared resource, is a GPU workload:
/// matchConditions send it and it is mutated (and warned that no node offers the name).
#[test]
fn shared_gpu_in_init_container_is_mutated() {
    env();
    let file = fixture("shared-gpu-init-pod.yaml");
    let out = kubectl(&["create", "-n", "ai", "-f", s(&file)], None);
    assert_output(
        &out,
        0,
        &["pod/shared-gpu-init created"],
        &[
            // Warnings are clamped to 120 characters (the API server's advice).
            "Warning: GPU_RESOURCE_NOT_OFFERED: no GPU node offers `nvidia.com/gpu.shared` (only nvidia.com/gpu): the pod would stay Pending",
        ],
    );
    let pod = get_json(&["pod", "shared-gpu-init", "-n", "ai"]);
    assert_eq!(pod["spec"]["nodeSelector"]["node-type"], "gpu-worker", "{pod}");
    assert!(has_gpu_toleration(&pod), "{pod}");
    assert_eq!(pod["spec"]["priority"], 1_000_000, "{pod}");
}

/// The Coral USB bus is admitted in `ai` and refused in `default`.
#[test]
fn coral_pod_admitted_in_ai_refused_in_default() {
    let w = env();
    let file = fixture("coral-pod.yaml");
    let out = kubectl(&["create", "-n", "ai", "-f", s(&file)], None);
    assert_output(&out, 0, &["pod/coral created"], &[]);
    let pod = get_json(&["pod", "coral", "-n", "ai"]);
    assert_eq!(pod["spec"]["volumes"][0]["hostPath"]["path"], "/dev/bus/usb", "{pod}");
    // Not a GPU workload: validated (hostPath), never mutated.
    let endpoints: Vec<_> = w
        .reviews_of("ai", "coral")
        .iter()
        .map(|r| r["endpoint"].clone())
        .collect();
    assert_eq!(endpoints, ["validate"], "{endpoints:?}");
    assert!(pod["spec"]["nodeSelector"].is_null(), "{pod}");

    let out = kubectl(&["create", "-n", "default", "-f", s(&file)], None);
    assert_refused(
        &out,
        VALIDATE_PODS,
        &file,
        "[HOSTPATH_NAMESPACE_NOT_ALLOWED] spec.volumes[0].hostPath.path: hostPath `/dev/bus/usb` is allowed only in namespaces [ai] or labelled gpu-admission/coral=enabled (Coral enabled), not in `default`: run this pod in one of them",
    );
    assert_not_stored("pod", "default", "coral");
}

/// Pods in the namespaces the webhook configurations exclude are stored untouched, and the
/// webhook is never called for them (namespaceSelector).
#[test]
fn pods_in_exempt_namespaces_are_untouched() {
    let w = env();
    for ns in ["kube-system", "gpu-operator"] {
        let out = kubectl(&["create", "-n", ns, "-f", s(&fixture("gpu-pod.yaml"))], None);
        assert_output(&out, 0, &["pod/gpu-pod created"], &[]);
        let pod = get_json(&["pod", "gpu-pod", "-n", ns]);
        assert!(pod["spec"]["nodeSelector"].is_null(), "{ns}: {pod}");
        assert!(!has_gpu_toleration(&pod), "{ns}: {pod}");
        assert!(pod["spec"]["priorityClassName"].is_null(), "{ns}: {pod}");
        assert_eq!(pod["spec"]["priority"], 0, "{ns}: {pod}");
        assert!(
            w.reviews_of(ns, "gpu-pod").is_empty(),
            "the webhook was called for {ns}"
        );
    }
    // Even the host's root may be mounted there (the device plugin, CSI drivers, ...).
    let file = corpus("13-badpods-hostpath-root-pod.yaml");
    let out = kubectl(&["create", "-n", "kube-system", "-f", s(&file)], None);
    assert_output(&out, 0, &["pod/hostpath-exec-pod created"], &[]);
}

/// `monitoring` is exempt from the hostPath and visibility rules by the policy, the only rules
/// node-exporter's `/`, `/proc` and `/sys` mounts and its wildcard toleration could trigger: the
/// generated matchConditions (`generate webhooks`) never send it to the Fail webhook, and it is
/// allowed (corpus 24).
#[test]
fn node_exporter_in_monitoring_is_allowed_without_the_webhook() {
    let w = env();
    let file = corpus("24-kube-prometheus-node-exporter-daemonset.yaml");
    let out = kubectl(&["apply", "--dry-run=server", "-f", s(&file)], None);
    assert_output(&out, 0, &["daemonset.apps/node-exporter created (server dry run)"], &[]);
    assert!(
        w.reviews_of("monitoring", "node-exporter").is_empty(),
        "matchConditions should have kept monitoring/node-exporter from the webhook"
    );
}

/// matchConditions: an object that neither asks for a GPU nor mounts a hostPath never reaches
/// the webhook (corpus 36).
#[test]
fn plain_workload_is_not_sent_to_the_webhook() {
    let w = env();
    let file = corpus("36-nginx-deployment.yaml");
    let out = kubectl(&["apply", "--dry-run=server", "-f", s(&file)], None);
    assert_output(
        &out,
        0,
        &["deployment.apps/nginx-deployment created (server dry run)"],
        &[],
    );
    assert!(
        w.reviews_of("default", "nginx-deployment").is_empty(),
        "matchConditions should have kept nginx-deployment from the webhook"
    );
}

/// A Deployment stored before the webhook existed (hostPath `/`) can still be labelled and
/// scaled through the main resource: UPDATEs that leave the pod template alone are not sent.
/// Changing the template is validated like a new Deployment.
#[test]
fn legacy_workload_updates_outside_the_template_pass() {
    let w = env();
    let out = kubectl(&["label", "deployment", "legacy-hostpath", "team=platform"], None);
    assert_output(&out, 0, &["deployment.apps/legacy-hostpath labeled"], &[]);
    let out = kubectl(
        &[
            "patch",
            "deployment",
            "legacy-hostpath",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ],
        None,
    );
    assert_output(&out, 0, &["deployment.apps/legacy-hostpath patched"], &[]);
    assert!(w.reviews_of("default", "legacy-hostpath").is_empty());

    let out = kubectl(
        &["set", "image", "deployment/legacy-hostpath", "agent=busybox:1.37"],
        None,
    );
    assert_output(
        &out,
        1,
        &[],
        &[
            "error: failed to patch image update to pod template: admission webhook \"workloads.validate.gpu-admission.io\" denied the request: gpu-admission: 1 policy violation: [HOSTPATH_NOT_ALLOWED] spec.template.spec.volumes[0].hostPath.path: hostPath `/` is not allowed; only /dev/bus/usb may be mounted from the host: use a PersistentVolumeClaim, ConfigMap or emptyDir",
        ],
    );
    let reviews = w.reviews_of("default", "legacy-hostpath");
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["operation"], "UPDATE", "{reviews:?}");
}

/// What the API server answers for a corpus file: accepted with this many warning lines, or
/// refused by (webhook, code).
type Expect = Result<usize, (&'static str, &'static str)>;

/// Every corpus file through the API server with `--dry-run=server` holds the decision the
/// corpus README lists: allowed or mutated → accepted (controllers with warnings), denied →
/// refused by the validating webhook with the rule's code.
#[test]
fn corpus_decisions_hold_through_the_api_server() {
    env();
    // (file, Ok(number of warning lines) | Err(webhook, code))
    let table: &[(&str, Expect)] = &[
        ("02-homeiac-ollama-gpu-deployment.yaml", Ok(3)),
        ("03-stable-diffusion-webui-deployment.yaml", Ok(3)),
        ("04-ollama-model-update-job.yaml", Ok(0)),
        ("06-ollama-gpu-server-no-namespace.yaml", Ok(3)),
        ("07-time-slicing-configmap-replicas4.yaml", Ok(0)),
        ("08-gpu-operator-time-slicing-verification-deployment.yaml", Ok(2)),
        ("09-gpu-operator-tf-jupyter-notebook-pod.yaml", Ok(0)),
        ("11-nvidia-device-plugin-static-daemonset.yaml", Ok(0)),
        ("12-nvidia-readme-cuda-vectoradd-pod.yaml", Ok(0)),
        (
            "13-badpods-hostpath-root-pod.yaml",
            Err((VALIDATE_PODS, "HOSTPATH_NOT_ALLOWED")),
        ),
        (
            "14-badpods-everything-allowed-deployment.yaml",
            Err((VALIDATE_WORKLOADS, "HOSTPATH_NOT_ALLOWED")),
        ),
        ("17-ollama-examples-gpu.yaml", Ok(2)),
        ("18-ollama-examples-cpu.yaml", Ok(0)),
        ("21-open-webui-deployment.yaml", Ok(0)),
        ("24-kube-prometheus-node-exporter-daemonset.yaml", Ok(0)),
        (
            "26-docker-sock-runtime-pod.yaml",
            Err((VALIDATE_PODS, "HOSTPATH_NOT_ALLOWED")),
        ),
        ("30-hami-gpumem-gpucores-pod.yaml", Ok(2)),
        ("34-vllm-docs-mistral-7b-gpu-deployment.yaml", Ok(3)),
        ("36-nginx-deployment.yaml", Ok(0)),
        ("37-postgres-statefulset.yaml", Ok(0)),
    ];
    let mut failures = Vec::new();
    for (file, want) in table {
        let path = corpus(file);
        // Pods: -o json shows what would be stored; the server-side dry run still mutates.
        let out = kubectl(&["apply", "--dry-run=server", "-o", "json", "-f", s(&path)], None);
        let warnings = out.stderr.lines().filter(|l| l.starts_with("Warning: ")).count();
        let ok = match want {
            Ok(n) => out.code == 0 && warnings == *n && out.stderr.lines().count() == *n,
            Err((hook, code)) => out.code == 1
                && out.stdout.is_empty()
                && out.stderr.lines().count() == 1
                && out.stderr.contains(&format!(
                    ": admission webhook \"{hook}\" denied the request: gpu-admission: 1 policy violation: [{code}] "
                )),
        };
        if !ok {
            failures.push(format!("{file}: want {want:?}, got {out:?}"));
            continue;
        }
        // Every GPU pod that was accepted is stored placed, tolerating and prioritised.
        if out.code == 0 {
            let doc = out.json();
            let objs = if doc["kind"] == "List" {
                doc["items"].as_array().cloned().unwrap_or_default()
            } else {
                vec![doc]
            };
            for o in objs.iter().filter(|o| o["kind"] == "Pod") {
                let gpu = o["spec"]["containers"].to_string().contains("nvidia.com/gpu");
                if gpu
                    && (o["spec"]["nodeSelector"]["node-type"] != "gpu-worker"
                        || !has_gpu_toleration(o)
                        || o["spec"]["priority"] != 100_000)
                {
                    failures.push(format!("{file}: GPU pod not mutated: {}", o["spec"]));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "corpus decisions differ:\n{}",
        failures.join("\n\n")
    );
}
