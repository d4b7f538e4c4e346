//! Part of the e2e benchmark (tools/src/bin/e2e_bench/main.rs).

#[allow(unused_imports)]
use super::*;

// === server-side figures (kube-apiserver's and gpu-admission's /metrics) ===

/// Counters and histogram sums read before and after a run.
#[derive(Clone, Default)]
pub(crate) struct Counters {
    /// `apiserver_request_duration_seconds` for POST pods: (sum, count).
    pub(crate) request: (f64, f64),
    /// `apiserver_admission_controller_admission_duration_seconds` per plugin: (sum, count).
    pub(crate) plugins: Vec<(f64, f64)>,
    /// `apiserver_admission_webhook_admission_duration_seconds` per webhook: (sum, count).
    pub(crate) webhooks: Vec<(f64, f64)>,
    /// gpu-admission's own `gpu_admission_request_duration_seconds` per endpoint: (sum, count).
    pub(crate) served: Vec<(f64, f64)>,
}

pub(crate) const PLUGINS: [&str; 3] = [
    "ValidatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
];
pub(crate) const WEBHOOKS: [&str; 2] = [MUTATE_PODS, VALIDATE_PODS];
pub(crate) const ENDPOINTS: [&str; 2] = ["mutate", "validate"];

pub(crate) fn sum_count(text: &str, name: &str, labels: &[(&str, &str)]) -> (f64, f64) {
    (
        metric_sum(text, &format!("{name}_sum"), labels),
        metric_sum(text, &format!("{name}_count"), labels),
    )
}

pub(crate) async fn counters(target: &Target, w: &Webhook) -> Result<Counters, String> {
    let api = target.metrics().await?;
    let ours = w.metrics();
    if let Some(dir) = std::env::var_os("E2E_BENCH_METRICS_DIR") {
        // Debugging aid: the last scrape of each.
        let dir = PathBuf::from(dir);
        let _ = std::fs::write(dir.join("kube-apiserver.metrics"), &api);
        let _ = std::fs::write(dir.join("gpu-admission.metrics"), &ours);
    }
    Ok(Counters {
        request: sum_count(
            &api,
            "apiserver_request_duration_seconds",
            &[("verb", "POST"), ("resource", "pods")],
        ),
        plugins: PLUGINS
            .iter()
            .map(|p| {
                sum_count(
                    &api,
                    "apiserver_admission_controller_admission_duration_seconds",
                    &[("name", p), ("operation", "CREATE")],
                )
            })
            .collect(),
        webhooks: WEBHOOKS
            .iter()
            .map(|n| {
                sum_count(
                    &api,
                    "apiserver_admission_webhook_admission_duration_seconds",
                    &[("name", n)],
                )
            })
            .collect(),
        served: ENDPOINTS
            .iter()
            .map(|e| sum_count(&ours, "gpu_admission_request_duration_seconds", &[("endpoint", e)]))
            .collect(),
    })
}

/// Mean in ms of the (sum, count) difference; `None` without samples.
pub(crate) fn mean_ms(after: (f64, f64), before: (f64, f64)) -> Option<f64> {
    let n = after.1 - before.1;
    (n > 0.0).then(|| (after.0 - before.0) / n * 1e3)
}
