//! Prometheus metrics, one registry per server instance (tests run several servers in a process).
//!
//! `prometheus-client` (the Prometheus project's Rust client) rather than a hand-written registry:
//! it gets the text exposition right (escaping, histogram `_bucket`/`_sum`/`_count`, `# EOF`)
//! and its `Family` types keep label sets typed. It pulls only small crates.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::admission::ReviewSummary;

/// The content type `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: &'static str,
    pub kind: String,
    pub operation: &'static str,
    pub decision: &'static str,
    pub dry_run: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabels {
    pub endpoint: &'static str,
    pub rule: &'static str,
    pub code: &'static str,
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub target: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub cause: &'static str,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub violations: Family<ViolationLabels, Counter>,
    pub duration: Family<EndpointLabels, Histogram>,
    pub cert_not_after: Gauge,
    pub reloads: Family<ReloadLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    /// `serve --cluster`: seconds since each watch's last event (change or completed list).
    pub cluster_staleness: Family<ResourceLabels, Gauge<f64, AtomicU64>>,
    /// `serve --cluster`: 1 once a watch's first list completed.
    pub cluster_synced: Family<ResourceLabels, Gauge>,
    /// `serve --cluster`: watch errors (each retried with backoff).
    pub cluster_watch_errors: Family<ResourceLabels, Counter>,
}

// === impl Metrics ===

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gpu_admission");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Admission reviews answered, by endpoint, kind (covered kinds, else `other`), operation, \
             decision (allowed, mutated, denied, skipped) and dry run",
            requests.clone(),
        );
        let violations = Family::<ViolationLabels, Counter>::default();
        registry.register(
            "violations",
            "Policy violations reported, by endpoint, rule, code and action (deny, warn)",
            violations.clone(),
        );
        let duration = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~1.6 s
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register_with_unit(
            "request_duration",
            "Time from the request's headers to the response, for admission reviews",
            Unit::Seconds,
            duration.clone(),
        );
        let cert_not_after = Gauge::default();
        registry.register_with_unit(
            "certificate_not_after",
            "notAfter of the serving certificate in use, as a Unix time",
            Unit::Seconds,
            cert_not_after.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "reloads",
            "Reloads of the certificate and the policy, by target (certificate, policy) and result \
             (success, failure)",
            reloads.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "request_errors",
            "Requests answered with an error (4xx/5xx) or dropped, by cause",
            errors.clone(),
        );
        let cluster_staleness = Family::<ResourceLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "cluster_cache_staleness",
            "serve --cluster: time since each watch cache (nodes, configmaps, priorityclasses, \
             namespaces) last heard from the API server: its last event, or, while the watch is not \
             failing, the last answer to a /version probe sent every 10 s",
            Unit::Seconds,
            cluster_staleness.clone(),
        );
        let cluster_synced = Family::<ResourceLabels, Gauge>::default();
        registry.register(
            "cluster_cache_synced",
            "serve --cluster: 1 once a watch cache has completed its first list",
            cluster_synced.clone(),
        );
        let cluster_watch_errors = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "cluster_watch_errors",
            "serve --cluster: watch errors by resource; the cache keeps its last state and retries",
            cluster_watch_errors.clone(),
        );
        Self {
            cluster_staleness,
            cluster_synced,
            cluster_watch_errors,
            registry,
            requests,
            violations,
            duration,
            cert_not_after,
            reloads,
            errors,
        }
    }

    /// Counts one answered review.
    pub fn observe_review(&self, s: &ReviewSummary, seconds: f64) {
        let endpoint = s.endpoint.as_str();
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                kind: s.kind_label().to_string(),
                operation: s.operation,
                decision: s.decision.as_str(),
                dry_run: if s.dry_run { "true" } else { "false" },
            })
            .inc();
        for v in &s.violations {
            let action = match v.action {
                crate::engine::Action::Deny => "deny",
                crate::engine::Action::Warn => "warn",
                crate::engine::Action::Off => "off",
            };
            self.violations
                .get_or_create(&ViolationLabels {
                    endpoint,
                    rule: v.rule,
                    code: v.code,
                    action,
                })
                .inc();
        }
        self.duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }

    /// Counts one request error.
    pub fn error(&self, cause: &'static str) {
        self.errors.get_or_create(&ErrorLabels { cause }).inc();
    }

    /// Counts one reload attempt.
    pub fn reload(&self, target: &'static str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ReloadLabels { target, result }).inc();
    }

    /// The current value of a reload counter (for readiness and tests).
    pub fn reload_count(&self, target: &'static str, ok: bool) -> u64 {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ReloadLabels { target, result }).get()
    }

    /// Copies the watch caches' health into the gauges (at scrape time).
    pub fn observe_cluster(&self, watch: &crate::cluster::watch::ClusterWatch, started_unix_ms: u64) {
        use std::sync::atomic::Ordering;
        let staleness = watch.staleness_seconds(started_unix_ms);
        for (i, resource) in crate::cluster::watch::RESOURCES.into_iter().enumerate() {
            let labels = ResourceLabels { resource };
            let source = &watch.sources()[i];
            self.cluster_staleness.get_or_create(&labels).set(staleness[i]);
            self.cluster_synced
                .get_or_create(&labels)
                .set(i64::from(source.synced.load(Ordering::Acquire)));
            let counter = self.cluster_watch_errors.get_or_create(&labels);
            let seen = source.errors.load(Ordering::Relaxed);
            counter.inc_by(seen.saturating_sub(counter.get()));
        }
    }

    /// The OpenMetrics text exposition (Prometheus reads it).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
            out.push_str("# EOF\n");
        }
        out
    }
}
