//! End to end: `gpu-admission serve --cluster` on a real kube-apiserver (issue 5).
//!
//! The real binary runs with `--cluster --kubeconfig`, authenticated as the ServiceAccount that
//! `deploy/base/rbac.yaml` binds (a token from the TokenRequest API, not `system:masters`), and is
//! registered with the webhook configurations of `deploy/overlays/local`. Every scenario changes a
//! cluster object with kubectl and asserts, through kubectl, that the decision follows within a
//! bounded wait, without a restart:
//! - the time-slicing ConfigMap's `replicas` and the nodes' allocatable,
//! - a node's device-plugin profile label,
//! - a PriorityClass deleted and recreated with another value (bare Pods get the new value, and
//!   the Priority admission plugin accepts them),
//! - a namespace label switching Coral on,
//! - a resource no node offers (warned),
//! - `check --cluster-state` on `kubectl get -o yaml` dumps decides as the server does.
//!
//! Besides: `/readyz` waits for the first sync of every cache (a ServiceAccount bound late, so the
//! lists are refused first); `cluster.unsyncedAction: deny` denies GPU workloads until then; the
//! deploy/ ClusterRole is read-only on exactly the cached resources. A private control plane is
//! stopped under a running webhook: it keeps answering from its cache, counts watch errors, and
//! its staleness metric grows.
//!
//! The scenarios on the shared control plane change the same objects (nodes, the ConfigMap,
//! PriorityClasses), so they start with [`scenario`]: its lock, from its baseline. Waits are
//! bounded polls (eventual consistency), never sleeps that assert a duration.

use gpu_admission_testkit::e2e::cluster::*;
use gpu_admission_testkit::e2e::harness::{self, ControlPlane, kubectl};
use gpu_admission_testkit::e2e::webhook::{self, Webhook, WebhookOptions};
use gpu_admission_testkit::{Container, Pod, assert_contains, unique_name};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

// === scenarios ===

/// `/readyz` answers 503 until every watch cache has listed once: here the ServiceAccount is not
/// bound yet (403 on every list, counted as watch errors); bound to deploy/'s ClusterRole, all
/// but the ConfigMap cache sync (that one is the device-plugin Role's); bound to that Role too,
/// the caches sync, `/readyz` answers 200 and the synced gauges say 1. Also shows that deploy/'s
/// RBAC (get, list, watch; the ConfigMap by name) is enough.
#[test]
fn readyz_waits_for_the_first_sync_of_every_cache() {
    let cp = harness::shared();
    ensure_rbac();
    let sa = "gpu-admission-late";
    cp.kubectl(&["delete", "clusterrolebinding", sa, "--ignore-not-found"], None)
        .assert_success();
    let mut w = Webhook::start(service_account_options(sa, &policy_file()).without_waiting());

    // Unbound: every list is refused; /readyz says why, the errors are counted.
    let body = eventually("/readyz 503 naming the caches", WAIT, &w, || {
        match w.admin_get("/readyz") {
            Ok((503, body))
                if body.contains("cluster caches not synced: nodes, configmaps, priorityclasses, namespaces") =>
            {
                Ok(body)
            }
            other => Err(format!("{other:?}")),
        }
    });
    eventually("watch errors counted while forbidden", WAIT, &w, || {
        let errors = w.cluster_metric("gpu_admission_cluster_watch_errors_total", "nodes");
        seen(errors > 0.0, (), errors)
    });
    w.assert_running();
    assert_eq!(
        w.cluster_metric("gpu_admission_cluster_cache_synced", "nodes"),
        0.0,
        "synced while forbidden? /readyz said: {body}"
    );
    assert_eq!(w.admin_get("/readyz").expect("readyz").0, 503);

    // Never synced, `unsyncedAction: fallback`: the policy file's numbers (4 per container).
    let five = verdict_of(&w.review("/validate", &slices_pod("team-a", 5)));
    assert_eq!(five.codes, code_set(&["SLICES_CONTAINER_EXCEEDED"]), "{five:?}");
    assert!(!verdict_of(&w.review("/validate", &slices_pod("team-a", 4))).denied);

    // Bound to deploy/base's ClusterRole alone: every cache but the ConfigMap's syncs (that
    // one is read through the device-plugin Role only).
    cp.kubectl(
        &[
            "create",
            "clusterrolebinding",
            sa,
            "--clusterrole=gpu-admission",
            &format!("--serviceaccount={SA_NAMESPACE}:{sa}"),
        ],
        None,
    )
    .assert_success();
    eventually(
        "/readyz naming only the ConfigMap cache",
        WAIT_BACKOFF,
        &w,
        || match w.admin_get("/readyz") {
            Ok((503, body)) if body.contains("cluster caches not synced: configmaps\n") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    // And to the Role as deploy/ binds it: the caches sync (after the watch's retry backoff).
    bind_like_deploy(sa);
    w.wait_ready();
    for resource in ["nodes", "configmaps", "priorityclasses", "namespaces"] {
        assert_eq!(
            w.cluster_metric("gpu_admission_cluster_cache_synced", resource),
            1.0,
            "{resource} not synced although /readyz is 200:\n{}",
            w.metrics()
        );
    }
    unbind_like_deploy(sa);
}

/// deploy/base's RBAC gives the webhook's ServiceAccount get, list and watch on the resources
/// it caches, and nothing else (it never writes, and reads no Secrets): of ConfigMaps, only the
/// device plugin's, by name in its namespace, which the watch lists with a name field selector.
#[test]
fn rbac_is_read_only_on_the_cached_resources() {
    let cp = harness::shared();
    ensure_rbac();
    let who = format!("--as=system:serviceaccount:{SA_NAMESPACE}:gpu-admission");
    let can_in = |verb: &str, resource: &str, ns: &str| {
        let scope = match ns {
            "*" => "--all-namespaces".to_string(),
            ns => format!("--namespace={ns}"),
        };
        let out = cp.kubectl(&["auth", "can-i", verb, resource, &scope, &who], None);
        match out.stdout.trim() {
            "yes" => true,
            "no" => false,
            _ => panic!("kubectl auth can-i {verb} {resource} {scope}: {out:?}"),
        }
    };
    let can = |verb: &str, resource: &str| can_in(verb, resource, "*");
    let config = "configmaps/time-slicing-config";
    for verb in ["get", "list", "watch"] {
        assert!(can_in(verb, config, "gpu-operator"), "cannot {verb} {config}");
        assert!(
            !can_in(verb, "configmaps", "gpu-operator"),
            "may {verb} every ConfigMap in gpu-operator"
        );
        assert!(
            !can_in(verb, "configmaps/other", "gpu-operator"),
            "may {verb} another ConfigMap"
        );
        assert!(!can_in(verb, config, "default"), "may {verb} {config} in default");
        assert!(!can(verb, "configmaps"), "may {verb} ConfigMaps cluster-wide");
    }
    for verb in ["create", "update", "patch", "delete"] {
        assert!(!can_in(verb, config, "gpu-operator"), "may {verb} {config}");
    }
    // What the watch sends (src/cluster/watch.rs): a list by name field selector passes the
    // resourceNames rule; a plain list does not.
    let list = |extra: &[&str]| {
        let mut args = vec!["get", "configmaps", "-n", "gpu-operator", "-o", "name", &who];
        args.extend_from_slice(extra);
        cp.kubectl(&args, None)
    };
    list(&["--field-selector=metadata.name=time-slicing-config"]).assert_success();
    list(&[]).assert_fails_saying(&["Forbidden", "cannot list resource \"configmaps\""]);
    for resource in ["nodes", "namespaces", "priorityclasses.scheduling.k8s.io"] {
        for verb in ["get", "list", "watch"] {
            assert!(can(verb, resource), "cannot {verb} {resource}");
        }
        for verb in ["create", "update", "patch", "delete"] {
            assert!(!can(verb, resource), "may {verb} {resource}");
        }
    }
    for resource in ["secrets", "pods", "deployments.apps"] {
        assert!(!can("get", resource), "may get {resource}");
    }
}

/// `cluster.unsyncedAction: deny`: while the caches have never synced (here: the ServiceAccount
/// is never bound), GPU workloads are denied with `CLUSTER_STATE_UNAVAILABLE`; other pods are
/// decided as usual.
#[test]
fn never_synced_caches_deny_gpu_workloads_when_told_to() {
    let options = service_account_options("gpu-admission-unbound", &policy_file_with("deny"));
    let w = Webhook::start(options.without_waiting());
    // Serving (certificate and policy loaded), only the caches missing.
    eventually("the caches are the only thing missing", WAIT, &w, || {
        match w.admin_get("/readyz") {
            Ok((503, body))
                if body == "not ready: cluster caches not synced: nodes, configmaps, priorityclasses, namespaces\n" =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    });
    let response = w.review("/validate", &slices_pod("team-a", 1));
    assert_eq!(
        verdict_of(&response),
        Verdict {
            denied: true,
            codes: code_set(&["CLUSTER_STATE_UNAVAILABLE"])
        },
        "{response}"
    );
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("have not been read yet, and cluster.unsyncedAction is deny"),
        "{response}"
    );
    let coral = w.review("/validate", &coral_pod("ai"));
    assert_eq!(coral["allowed"], true, "Coral in `ai` (not a GPU workload): {coral}");
    assert_eq!(w.admin_get("/readyz").expect("readyz").0, 503);
}

/// The ConfigMap goes from `replicas: 4` to `replicas: 2` (and the nodes' allocatable from 8 to
/// 4, as the device plugin re-advertises): a pod asking for 3 slices goes from admitted to denied,
/// with the reason naming the config, and back; the webhook process is the same throughout.
#[test]
fn slice_limit_follows_the_config_map_without_restart() {
    let (_lock, w, cp) = scenario();
    let pid = w.pid();
    let three = slices_pod("team-a", 3);

    let out = until_admitted(w, "3 slices with replicas 4", &three);
    assert!(out.stdout.contains("created (server dry run)"), "{out:?}");

    set_replicas(cp, 2);
    let stderr = until_denied(w, "3 slices with replicas 2", &three, "SLICES_CONTAINER_EXCEEDED");
    assert_contains(
        &stderr,
        "spec.containers[0].resources.limits[nvidia.com/gpu]: container `cuda` asks for 3 nvidia.com/gpu; at most 2 per container (node gpu-node-1 uses device-plugin config `any`: 2 slices per GPU): ask for 2 or fewer",
    );
    until_admitted(w, "2 slices with replicas 2", &slices_pod("team-a", 2));

    // And back up.
    set_replicas(cp, 4);
    until_admitted(w, "3 slices with replicas 4 again", &three);
    assert_eq!(w.pid(), pid, "the webhook restarted");
    assert_eq!(
        w.cluster_metric("gpu_admission_cluster_cache_synced", "configmaps"),
        1.0
    );
}

/// A second profile (`strict`: failRequestsGreaterThanOne) in the ConfigMap, chosen per node with
/// the `nvidia.com/device-plugin.config` label: once every GPU node uses it, a container may ask
/// for 1 slice only, and the message names the profile.
#[test]
fn node_profile_label_sets_the_per_container_limit() {
    let (_lock, w, cp) = scenario();
    apply(cp, &config_map_with_strict(4));
    let two = slices_pod("team-a", 2);
    until_admitted(w, "2 slices with the default profile", &two);

    for node in GPU_NODES {
        kubectl(
            &["label", "node", node, &format!("{PROFILE_LABEL}=strict"), "--overwrite"],
            None,
        )
        .assert_success();
    }
    let stderr = until_denied(w, "2 slices on strict nodes", &two, "SLICES_CONTAINER_EXCEEDED");
    assert_contains(
        &stderr,
        "at most 1 per container (node gpu-node-1 uses device-plugin config `strict` with failRequestsGreaterThanOne)",
    );
    until_admitted(w, "1 slice on strict nodes", &slices_pod("team-a", 1));

    // One node back on the default profile: the most any GPU node allows applies again.
    kubectl(&["label", "node", GPU_NODES[1], &format!("{PROFILE_LABEL}-")], None).assert_success();
    until_admitted(w, "2 slices with one node on `any`", &two);
}

/// `medium-priority` deleted and recreated with another value and preemption policy: a bare GPU
/// pod in a namespace defaulting to it is stored with the new values (the Priority admission
/// plugin accepts them). While the class is missing, the pod is denied clearly.
#[test]
fn new_priority_class_value_is_used_for_bare_pods() {
    let (_lock, w, cp) = scenario();
    let gpu = || container("cuda", &[("nvidia.com/gpu", "1")]);
    let classless = || pod(&unique_name("bare"), "team-a", bare(vec![gpu()]));

    // The class is gone: the webhook says so (instead of the Priority plugin, later).
    cp.kubectl(&["delete", "priorityclass", "medium-priority"], None)
        .assert_success();
    let stderr = until_denied(w, "class missing", &classless(), "PRIORITY_CLASS_NOT_FOUND");
    assert_contains(&stderr, "PriorityClass `medium-priority` does not exist in the cluster");
    // A template naming it is refused now, not when its ReplicaSet creates pods.
    let d = deployment(&unique_name("d"), "team-a", complete(vec![gpu()], "medium-priority"));
    until_denied(w, "Deployment naming a missing class", &d, "PRIORITY_CLASS_NOT_FOUND");

    recreate_priority_class(cp, "medium-priority", 250_000, "Never");
    // Sync point, without the API server: the mutating webhook patches the new value.
    eventually("the webhook patches priority 250000", WAIT, w, || {
        let patch = patch_of(&w.review("/mutate", &classless()));
        let value = patch
            .as_array()
            .into_iter()
            .flatten()
            .find(|op| op["path"] == "/spec/priority");
        match value {
            Some(op) if op["value"] == 250_000 => Ok(()),
            _ => Err(format!("{patch}")),
        }
    });

    let bare = classless();
    let name = bare["metadata"]["name"].as_str().expect("name").to_string();
    let out = kubectl(&["create", "-f", "-"], Some(&bare.to_string()));
    assert!(
        out.success(),
        "the API server refused the bare pod (Priority plugin?): {out:?}\n{}",
        w.log_tail(20)
    );
    let stored = get_pod("team-a", &name);
    let spec = &stored["spec"];
    assert_eq!(spec["priorityClassName"], "medium-priority", "{spec}");
    assert_eq!(spec["priority"], 250_000, "{spec}");
    assert_eq!(spec["preemptionPolicy"], "Never", "{spec}");
    assert_eq!(spec["nodeSelector"]["node-type"], "gpu-worker", "{spec}");
    kubectl(&["delete", "pod", &name, "-n", "team-a", "--wait=false"], None).assert_success();

    recreate_priority_class(cp, "medium-priority", 100_000, "PreemptLowerPriority");
}

/// Labelling a namespace `gpu-admission/coral=enabled` lets its pods mount `/dev/bus/usb`;
/// removing the label takes it away again.
#[test]
fn namespace_label_switches_coral_on() {
    let (_lock, w, _) = scenario();
    let coral = coral_pod("vision");
    let stderr = until_denied(
        w,
        "Coral outside a Coral namespace",
        &coral,
        "HOSTPATH_NAMESPACE_NOT_ALLOWED",
    );
    assert_contains(&stderr, "or labelled gpu-admission/coral=enabled");

    kubectl(&["label", "namespace", "vision", "gpu-admission/coral=enabled"], None).assert_success();
    let out = until_admitted(w, "Coral in a labelled namespace", &coral);
    assert!(out.stdout.contains("created (server dry run)"), "{out:?}");

    kubectl(&["label", "namespace", "vision", "gpu-admission/coral-"], None).assert_success();
    until_denied(w, "Coral after unlabelling", &coral, "HOSTPATH_NAMESPACE_NOT_ALLOWED");
}

/// A resource no GPU node offers (MIG on RTX 3090s) is warned (the policy's default), and the
/// warning goes once a node offers it.
#[test]
fn resource_no_node_offers_is_warned() {
    let (_lock, w, cp) = scenario();
    let mig = complete(
        vec![container("cuda", &[("nvidia.com/mig-3g.20gb", "1")])],
        "medium-priority",
    );
    let mig = pod(&unique_name("mig"), "team-a", mig);
    let out = eventually("warning for nvidia.com/mig-3g.20gb", WAIT, w, || {
        let out = dry_run(&mig);
        let warned = out.success() && out.stderr.contains("Warning: GPU_RESOURCE_NOT_OFFERED");
        seen(warned, out.clone(), &out)
    });
    assert!(
        out.stderr.contains(
            "Warning: GPU_RESOURCE_NOT_OFFERED: no GPU node offers `nvidia.com/mig-3g.20gb` (only nvidia.com/gpu): the pod would stay Pending"
        ),
        "{out:?}"
    );

    set_allocatable(
        cp,
        GPU_NODES[1],
        &[("nvidia.com/gpu", "8"), ("nvidia.com/mig-3g.20gb", "2")],
    );
    eventually("no warning once a node offers it", WAIT, w, || {
        let out = dry_run(&mig);
        seen(
            out.success() && !out.stderr.contains("GPU_RESOURCE_NOT_OFFERED"),
            (),
            &out,
        )
    });
}

/// `check --cluster-state DIR` on `kubectl get -o yaml` dumps and the running `serve --cluster`
/// decide alike: for each manifest, the same denial or not, the same violation codes, the same
/// fixes (a pod's `/mutate` patch equals `check`'s patch; a template's "pods will get" warnings
/// equal `check`'s). The state differs from the policy file's numbers, so both read the cluster.
#[test]
fn check_cluster_state_decides_as_the_server() {
    let (_lock, w, cp) = scenario();

    // A state the policy file does not describe: 3 slices per GPU on `any`; gpu-node-2 on
    // `strict`; 6 and 8 slices allocatable; medium-priority at 150000; Coral in `coral-lab`.
    apply(cp, &config_map_with_strict(3));
    set_allocatable(cp, GPU_NODES[0], &[("nvidia.com/gpu", "6")]);
    kubectl(
        &["label", "node", GPU_NODES[1], &format!("{PROFILE_LABEL}=strict")],
        None,
    )
    .assert_success();
    recreate_priority_class(cp, "medium-priority", 150_000, "PreemptLowerPriority");
    kubectl(
        &["label", "namespace", "coral-lab", "gpu-admission/coral=enabled"],
        None,
    )
    .assert_success();

    let gpu = |n: &str| container("cuda", &[("nvidia.com/gpu", n)]);
    let medium = |containers: Vec<Value>| complete(containers, "medium-priority");
    let root = Pod::new().restart_never().container(Container::new("c", "busybox"));
    let manifests = vec![
        pod("p-3", "team-a", medium(vec![gpu("3")])),
        // 4 per container: the file allows it, the cluster (3 per GPU) does not.
        pod("p-4", "team-a", medium(vec![gpu("4")])),
        // 3 x 3 = 9 > 8 allocatable on the largest node.
        pod("p-9", "team-a", medium(vec![gpu("3"), gpu("3"), gpu("3")])),
        pod("bare-team-a", "team-a", bare(vec![gpu("1")])),
        pod("bare-ai", "ai", bare(vec![gpu("1")])),
        pod(
            "p-mig",
            "team-a",
            medium(vec![container("cuda", &[("nvidia.com/mig-3g.20gb", "1")])]),
        ),
        pod("p-low", "team-a", complete(vec![gpu("1")], "low-priority")),
        coral_pod("coral-lab"),
        coral_pod("team-a"),
        pod("p-root", "team-a", root.host_path_volume("root", "/")),
        deployment("d-2", "team-a", medium(vec![gpu("2")])),
        deployment("d-5", "team-a", medium(vec![gpu("5")])),
        deployment("d-incomplete", "ai", bare(vec![gpu("1")])),
    ];
    let dir = cp.dir().join(unique_name("parity"));
    fs::create_dir_all(dir.join("state")).expect("mkdir state");
    let docs: Vec<String> = manifests.iter().map(|m| format!("---\n{m}\n")).collect();
    fs::write(dir.join("manifests.yaml"), docs.concat()).expect("write manifests");

    // The server first: once it answers as the cluster now is (eventually), dump and compare.
    let offline = |state: &Path| -> Vec<Value> {
        let out = Command::new(webhook::bin())
            .args(["check", "--output", "json", "--policy"])
            .arg(policy_file())
            .arg("--cluster-state")
            .arg(state)
            .arg(dir.join("manifests.yaml"))
            .output()
            .expect("run check");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "check failed ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("check JSON: {e}: {stdout}"));
        doc["results"].as_array().expect("check JSON has `results`").clone()
    };
    let state = dir.join("state");
    let dump = |args: &[&str], file: &str| {
        let out = kubectl(args, None);
        out.assert_success();
        fs::write(state.join(file), &out.stdout).expect("write dump");
    };
    dump(
        &["get", "nodes,priorityclasses,namespaces", "-o", "yaml"],
        "cluster.yaml",
    );
    dump(
        &[
            "get",
            "configmap",
            "-n",
            "gpu-operator",
            "time-slicing-config",
            "-o",
            "yaml",
        ],
        "device-plugin.yaml",
    );
    let reports = offline(&state);
    assert_eq!(reports.len(), manifests.len(), "{reports:#?}");

    let server_view = |m: &Value| -> (Verdict, Value) {
        let is_pod = m["kind"] == "Pod";
        if is_pod {
            let patch = patch_of(&w.review("/mutate", m));
            let mut patched = m.clone();
            json_patch::patch(
                &mut patched,
                &serde_json::from_value::<json_patch::Patch>(patch.clone()).unwrap(),
            )
            .expect("mutate patch applies");
            (verdict_of(&w.review("/validate", &patched)), patch)
        } else {
            (verdict_of(&w.review("/validate", m)), json!([]))
        }
    };
    // `check` reports a Pod's fixes as its patch (the server's `/mutate` patch), and a
    // template's as warnings (the server's "pods will get" warnings).
    let offline_view = |r: &Value, is_pod: bool| -> (Verdict, Value) {
        let mut codes: BTreeSet<String> = r["violations"]
            .as_array()
            .expect("violations")
            .iter()
            .map(|v| v["code"].as_str().expect("code").to_string())
            .collect();
        let denied = r["decision"] == "denied";
        if is_pod {
            let patch = if denied { json!([]) } else { r["patch"].clone() };
            (Verdict { denied, codes }, patch)
        } else {
            let warnings = r["warnings"].as_array().expect("warnings").iter();
            codes.extend(warnings.filter_map(|w| warning_code(w.as_str()?)));
            (Verdict { denied, codes }, json!([]))
        }
    };

    let compare = || -> Result<(), String> {
        let mut diffs = Vec::new();
        for (m, r) in manifests.iter().zip(&reports) {
            let is_pod = m["kind"] == "Pod";
            let (server, mut server_patch) = server_view(m);
            if server.denied {
                server_patch = json!([]);
            }
            let (offline, offline_patch) = offline_view(r, is_pod);
            if (&server, &server_patch) != (&offline, &offline_patch) {
                diffs.push(format!(
                    "{} {}/{}:\n  server:  {server:?} {server_patch}\n  offline: {offline:?} {offline_patch}",
                    m["kind"], m["metadata"]["namespace"], m["metadata"]["name"]
                ));
            }
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("\n"))
        }
    };
    eventually("check --cluster-state and serve --cluster agree", WAIT, w, compare);

    // Not a trivial agreement: the cluster's numbers were used, not the policy file's.
    let by_name = |name: &str| {
        reports
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no report for {name}: {reports:#?}"))
    };
    let codes = |name: &str| offline_view(by_name(name), true).0;
    assert_eq!(codes("p-3").codes, code_set(&[]));
    assert_eq!(codes("p-4").codes, code_set(&["SLICES_CONTAINER_EXCEEDED"]));
    assert_eq!(codes("p-9").codes, code_set(&["SLICES_POD_EXCEEDED"]));
    assert_eq!(codes("p-mig").codes, code_set(&["GPU_RESOURCE_NOT_OFFERED"]));
    assert_eq!(codes("p-low").codes, code_set(&["PRIORITY_CLASS_NOT_ALLOWED"]));
    assert_eq!(codes("p-root").codes, code_set(&["HOSTPATH_NOT_ALLOWED"]));
    assert_eq!(codes("d-5").codes, code_set(&["SLICES_CONTAINER_EXCEEDED"]));
    let coral: Vec<&Value> = reports
        .iter()
        .filter(|r| r["name"].as_str().unwrap_or("").starts_with("coral-"))
        .collect();
    assert_eq!(coral.len(), 2);
    assert_eq!(
        coral[0]["decision"], "allowed",
        "Coral in the labelled namespace: {:#}",
        coral[0]
    );
    assert_eq!(coral[1]["decision"], "denied", "Coral in team-a: {:#}", coral[1]);
    let bare_patch = by_name("bare-team-a")["patch"].to_string();
    assert!(
        bare_patch.contains("150000"),
        "medium-priority's cluster value: {bare_patch}"
    );
    assert!(
        by_name("p-4")["violations"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("device-plugin config `any`: 3 slices per GPU"),
        "{:#}",
        by_name("p-4")
    );
    assert_eq!(by_name("d-incomplete")["decision"], "mutated");

    kubectl(&["label", "namespace", "coral-lab", "gpu-admission/coral-"], None).assert_success();
}

// === the API server goes away ===

/// A private control plane, a webhook with cluster facts that differ from the policy file
/// (`replicas: 2`), then the API server and etcd are stopped: the webhook keeps deciding from its
/// cache (the same denial and the same admission as before), stays ready, counts watch errors,
/// and its staleness grows.
#[test]
fn api_server_gone_keeps_answering_from_the_cache() {
    let cp = ControlPlane::start();
    for ns in ["gpu-operator", "team-a"] {
        apply(
            &cp,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    for node in GPU_NODES {
        set_node(&cp, node, &[("node-type", "gpu-worker")], &[("nvidia.com/gpu", "4")]);
    }
    apply(&cp, &config_map(&[("any", device_plugin_config(2, false))]));
    apply(
        &cp,
        &json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "medium-priority"}, "value": 100_000}),
    );
    // The webhook's files outlive the control plane's directory.
    let files = tempfile::tempdir().expect("tempdir");
    let kubeconfig = files.path().join("kubeconfig");
    fs::copy(cp.kubeconfig_path(), &kubeconfig).expect("copy kubeconfig");
    let ca = files.path().join("apiserver-ca.crt");
    fs::copy(cp.ca_cert_path(), &ca).expect("copy CA");
    let text = fs::read_to_string(&kubeconfig).expect("read kubeconfig");
    let admin = |f: &str| cp.dir().join(f);
    let mut text = text.replace(&cp.ca_cert_path().display().to_string(), &ca.display().to_string());
    for f in ["admin.crt", "admin.key"] {
        let copy = files.path().join(f);
        fs::copy(admin(f), &copy).expect("copy admin cert");
        text = text.replace(&admin(f).display().to_string(), &copy.display().to_string());
    }
    fs::write(&kubeconfig, text).expect("write kubeconfig");
    let policy = files.path().join("policy.yaml");
    fs::copy(webhook::repo().join("policies/default.yaml"), &policy).expect("copy policy");

    let options = WebhookOptions::default().policy(&policy).cluster(&kubeconfig);
    let mut w = Webhook::start(options.under(files.path()));
    let three = slices_pod("team-a", 3);
    let two = slices_pod("team-a", 2);
    let before = eventually("3 slices denied with replicas 2", WAIT, &w, || {
        let v = verdict_of(&w.review("/validate", &three));
        seen(v.denied, v.clone(), &v)
    });
    assert_eq!(before.codes, code_set(&["SLICES_CONTAINER_EXCEEDED"]));
    assert!(!verdict_of(&w.review("/validate", &two)).denied);

    drop(cp);

    let errors = eventually("watch errors after the API server is gone", WAIT_BACKOFF, &w, || {
        let e = w.cluster_metric("gpu_admission_cluster_watch_errors_total", "nodes");
        seen(e > 0.0, e, e)
    });
    assert!(errors > 0.0);
    assert_eq!(
        verdict_of(&w.review("/validate", &three)),
        before,
        "decision changed without the API server"
    );
    assert!(!verdict_of(&w.review("/validate", &two)).denied);
    let response = w.review("/validate", &three);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("at most 2 per container"),
        "{response}"
    );
    assert_eq!(w.admin_get("/readyz").expect("readyz").0, 200, "ready from the cache");

    let first = w.cluster_metric("gpu_admission_cluster_cache_staleness_seconds", "nodes");
    let second = eventually("staleness grows", WAIT, &w, || {
        let s = w.cluster_metric("gpu_admission_cluster_cache_staleness_seconds", "nodes");
        seen(s > first, s, (s, first))
    });
    assert!(second > first);
    w.assert_running();
}
