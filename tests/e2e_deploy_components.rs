//! deploy/components (issue 14, items 3 and 4): every combination of a certificate mode
//! (cert-manager, provided-certs, self-managed-certs) with the optional components (priorityclasses,
//! network-policy, monitoring) renders with `kubectl kustomize`, carries the Argo CD sync waves,
//! and passes a server-side dry run on the e2e kube-apiserver (stub CRDs for cert-manager and the
//! Prometheus Operator). The Argo CD Application of examples/argocd is rendered as Argo CD
//! renders it, and the PrometheusRule's expressions use metrics a running server exports.

use std::collections::BTreeSet;
use std::path::PathBuf;

use gpu_admission_testkit::e2e::dry_run::{self, server_side_dry_run};
use gpu_admission_testkit::e2e::harness::{self, kubectl};
use gpu_admission_testkit::e2e::webhook::{self, Webhook, WebhookOptions, repo, s, yaml_documents};
use serde_json::{Value, json};

#[path = "deploy_components/self_managed.rs"]
mod self_managed;

const OPTIONAL: [&str; 3] = ["priorityclasses", "network-policy", "monitoring"];
const CERTS: [&str; 3] = ["cert-manager", "provided-certs", "self-managed-certs"];

/// A kustomization of deploy/base with COMPONENTS (names under deploy/components), rendered.
fn render_combination(components: &[&str]) -> (String, Vec<Value>) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("deploy-combinations")
        .join(components.join("+"));
    dry_run::render(dry_run::with_components(&dir, components))
}

/// Every subset of the optional components, with each certificate mode.
fn combinations() -> Vec<Vec<&'static str>> {
    let mut all = vec![];
    for cert in CERTS {
        for mask in 0..(1 << OPTIONAL.len()) {
            let mut c = vec![cert];
            c.extend(
                OPTIONAL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, n)| *n),
            );
            all.push(c);
        }
    }
    all
}

fn annotation<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc["metadata"]["annotations"][key].as_str()
}

/// The sync wave each kind must have (README "Argo CD").
fn wave_of(kind: &str) -> &'static str {
    match kind {
        "Namespace" => "0",
        "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" | "PriorityClass"
        | "NetworkPolicy" => "1",
        "ConfigMap" | "Secret" | "Service" | "PodDisruptionBudget" | "Issuer" | "Certificate" => "2",
        "Deployment" => "3",
        "MutatingWebhookConfiguration" => "4",
        "ValidatingWebhookConfiguration" => "5",
        "PodMonitor" | "PrometheusRule" => "6",
        other => panic!("no sync wave decided for kind {other}"),
    }
}

/// What every rendering must be: waves, SkipDryRunOnMissingResource exactly on CRD objects,
/// namespaces, and the components' objects present exactly when chosen.
fn check_rendering(name: &str, components: &[&str], docs: &[Value]) {
    let kinds: BTreeSet<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for d in docs {
        let kind = d["kind"].as_str().unwrap();
        let what = format!("{name}: {kind}/{}", d["metadata"]["name"]);
        assert_eq!(
            annotation(d, "argocd.argoproj.io/sync-wave"),
            Some(wave_of(kind)),
            "{what}"
        );
        let crd = ["cert-manager.io/", "monitoring.coreos.com/"]
            .iter()
            .any(|g| d["apiVersion"].as_str().unwrap().starts_with(g));
        let skip = annotation(d, "argocd.argoproj.io/sync-options") == Some("SkipDryRunOnMissingResource=true");
        assert_eq!(
            skip, crd,
            "{what}: SkipDryRunOnMissingResource exactly on CRD-backed objects"
        );
        let ns = d["metadata"]["namespace"].as_str();
        match kind {
            "Namespace"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "PriorityClass"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration" => assert_eq!(ns, None, "{what}"),
            "Role" | "RoleBinding" if d["metadata"]["name"] == "gpu-admission-device-plugin-config" => {
                assert_eq!(ns, Some("gpu-operator"), "{what}")
            }
            _ => assert_eq!(ns, Some("gpu-admission"), "{what}"),
        }
    }
    let has = |c: &str| components.contains(&c);
    assert_eq!(kinds.contains("PriorityClass"), has("priorityclasses"), "{name}");
    assert_eq!(kinds.contains("NetworkPolicy"), has("network-policy"), "{name}");
    assert_eq!(kinds.contains("PodMonitor"), has("monitoring"), "{name}");
    assert_eq!(kinds.contains("PrometheusRule"), has("monitoring"), "{name}");
    assert_eq!(kinds.contains("Certificate"), has("cert-manager"), "{name}");
    for kind in ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"] {
        let cfg = docs.iter().find(|d| d["kind"] == kind).expect(kind);
        let inject = annotation(cfg, "cert-manager.io/inject-ca-from");
        let hooks = cfg["webhooks"].as_array().unwrap();
        if has("cert-manager") {
            assert_eq!(inject, Some("gpu-admission/gpu-admission-serving"), "{name}: {kind}");
            assert!(hooks.iter().all(|h| h["clientConfig"]["caBundle"].is_null()), "{name}");
        } else if has("self-managed-certs") {
            // The server writes the caBundles.
            assert_eq!(inject, None, "{name}: {kind}");
            assert!(hooks.iter().all(|h| h["clientConfig"]["caBundle"].is_null()), "{name}");
        } else {
            assert_eq!(inject, None, "{name}: {kind}");
            assert!(
                hooks.iter().all(|h| h["clientConfig"]["caBundle"] == "${CA_BUNDLE}"),
                "{name}"
            );
        }
    }
}

/// CRDs established and discovered, the namespaces present (a dry run stores nothing); once
/// per test binary (the tests run in parallel).
fn prepare_dry_runs(namespace_doc: &Value) {
    static ONCE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return;
    }
    for stub in ["cert-manager-crds-stub.yaml", "prometheus-operator-crds-stub.yaml"] {
        let path = repo().join("tests/fixtures").join(stub);
        kubectl(&["apply", "-f", s(&path)], None).assert_success();
    }
    let crds = [
        "crd/certificates.cert-manager.io",
        "crd/issuers.cert-manager.io",
        "crd/podmonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
    ];
    let mut args = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    args.extend(crds);
    kubectl(&args, None).assert_success();
    kubectl(&["apply", "--server-side", "-f", "-"], Some(&namespace_doc.to_string())).assert_success();
    webhook::ensure_namespaces(&["gpu-operator"]);
    *done = true;
}

/// `kubectl apply --server-side --dry-run=server` of TEXT: every object accepted.
fn dry_run(name: &str, text: &str, docs: &[Value]) {
    // Any valid base64 will do for a dry run: the caBundle is bytes to the API server.
    let text = text.replace("${CA_BUNDLE}", &webhook::ca_bundle("dry run"));
    let out = server_side_dry_run("the CRDs' kinds", &text);
    out.assert_success();
    let applied = out
        .stdout
        .lines()
        .filter(|l| l.ends_with("serverside-applied (server dry run)"))
        .count();
    assert_eq!(applied, docs.len(), "{name}: {out:?}");
}

#[test]
fn every_component_combination_renders_and_passes_a_server_side_dry_run() {
    harness::shared();
    let all = combinations();
    assert_eq!(all.len(), 24);
    let (_, first) = render_combination(&all[0]);
    prepare_dry_runs(first.iter().find(|d| d["kind"] == "Namespace").unwrap());
    for components in &all {
        let name = components.join("+");
        let (text, docs) = render_combination(components);
        check_rendering(&name, components, &docs);
        self_managed::check_certificate_source(&name, components, &docs);
        dry_run(&name, &text, &docs);
    }
    // deploy/ itself: the base, cert-manager, the PriorityClasses.
    let (_, root) = dry_run::render(&repo().join("deploy"));
    check_rendering("deploy/", &["cert-manager", "priorityclasses"], &root);
    // The real-cluster overlay: provided certificates, no PriorityClasses (the cluster's own).
    let (_, real) = dry_run::render(&repo().join("deploy/overlays/real-cluster"));
    check_rendering("deploy/overlays/real-cluster", &["provided-certs"], &real);
}

/// examples/argocd/application.yaml rendered as Argo CD renders it (its `kustomize.components`
/// added to the source path's kustomization), checked and dry-run like the combinations, and
/// its ignoreDifferences covering every caBundle the injector writes.
#[test]
fn argocd_application_renders_the_base_with_its_components() {
    harness::shared();
    let app = &yaml_documents(&std::fs::read_to_string(repo().join("examples/argocd/application.yaml")).unwrap())[0];
    let source = &app["spec"]["source"];
    assert_eq!(
        source["repoURL"].as_str(),
        Some(format!("{}.git", env!("CARGO_PKG_REPOSITORY")).as_str())
    );
    assert_eq!(source["targetRevision"], format!("v{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(source["path"], "deploy/base");
    let components: Vec<&str> = source["kustomize"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        !components.iter().any(|c| c.ends_with("priorityclasses")),
        "the seed owns them"
    );
    // Argo CD: `kustomize edit add component` in a copy of the repository, then build.
    let copy = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("argocd-render");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    let cp = std::process::Command::new("cp")
        .args(["-r", s(&repo().join("deploy")), s(&copy)])
        .status()
        .unwrap();
    assert!(cp.success());
    let base = copy.join("deploy/base");
    let mut k = std::fs::read_to_string(base.join("kustomization.yaml")).unwrap();
    assert!(!k.contains("\ncomponents:"), "deploy/base lists components of its own");
    k.push_str("components:\n");
    components.iter().for_each(|c| k.push_str(&format!("  - {c}\n")));
    std::fs::write(base.join("kustomization.yaml"), k).unwrap();
    let (text, docs) = dry_run::render(&base);
    let names: Vec<&str> = components
        .iter()
        .map(|c| c.trim_start_matches("../components/"))
        .collect();
    check_rendering("examples/argocd", &names, &docs);
    prepare_dry_runs(docs.iter().find(|d| d["kind"] == "Namespace").unwrap());
    dry_run("examples/argocd", &text, &docs);

    let sync: Vec<&str> = app["spec"]["syncPolicy"]["syncOptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert!(sync.contains(&"RespectIgnoreDifferences=true"), "{sync:?}");
    assert!(sync.contains(&"ServerSideApply=true"), "{sync:?}");
    for kind in ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"] {
        let ignored = app["spec"]["ignoreDifferences"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["kind"] == kind && i["name"] == "gpu-admission")
            .unwrap_or_else(|| panic!("no ignoreDifferences for {kind}"));
        assert_eq!(ignored["group"], "admissionregistration.k8s.io");
        assert_eq!(
            ignored["jqPathExpressions"],
            json!([".webhooks[]?.clientConfig.caBundle"])
        );
        let cfg = docs.iter().find(|d| d["kind"] == kind).unwrap();
        assert!(annotation(cfg, "cert-manager.io/inject-ca-from").is_some(), "{kind}");
    }
}

/// Every metric the PrometheusRule reads is one `serve --cluster` exports: a real server, one
/// review and one bad request later (counters and histograms appear once touched).
#[test]
fn prometheus_rules_read_metrics_the_server_exports() {
    let rule = yaml_documents(
        &std::fs::read_to_string(repo().join("deploy/components/monitoring/prometheusrule.yaml")).unwrap(),
    )
    .remove(0);
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let alerts: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(
        alerts,
        [
            "GpuAdmissionCertificateExpiresSoon",
            "GpuAdmissionErrorRate",
            "GpuAdmissionClusterCacheStale",
            "GpuAdmissionLatencyP99High"
        ]
    );
    let used: BTreeSet<String> = rules
        .iter()
        .flat_map(|r| {
            let expr = r["expr"].as_str().unwrap().to_string();
            let mut names = vec![];
            let mut rest = expr.as_str();
            while let Some(i) = rest.find("gpu_admission_") {
                let end = rest[i..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(rest.len(), |e| i + e);
                names.push(rest[i..end].to_string());
                rest = &rest[end..];
            }
            names
        })
        .collect();
    assert_eq!(used.len(), 5, "{used:?}");

    let w = Webhook::start(WebhookOptions::default().cluster(harness::kubeconfig_path()));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}});
    w.review("/validate", &pod);
    let (status, _) = webhook::https_post(w.port, &w.certs.ca_pem(), "/validate", b"not a review").unwrap();
    assert_eq!(status, 400);
    let text = w.metrics();
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    for name in &used {
        assert!(exported.contains(name.as_str()), "{name} is not exported:\n{text}");
    }
    for r in ["nodes", "configmaps", "priorityclasses", "namespaces"] {
        assert!(text.contains(&format!(
            "gpu_admission_cluster_cache_staleness_seconds{{resource=\"{r}\"}}"
        )));
    }
}
