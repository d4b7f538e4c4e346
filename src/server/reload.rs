//! Reloading the serving certificate and the policy without a restart.
//!
//! The directories holding the files are watched (inotify through `notify`): Secret and ConfigMap
//! volumes change by swapping a `..data` symlink, which is an event in the directory, not on the
//! file. The files are also polled as a fallback (a watch can be lost, e.g. when the directory
//! itself is replaced). Either way, a target is reloaded only when the bytes of its files changed
//! since the last attempt; a new certificate pair is taken only if it parses and the key matches
//! the certificate, a new policy only if it validates. Otherwise the old one stays, and the error
//! is logged and counted (`gpu_admission_reloads_total{result="failure"}`) once per new content.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, watch};

use super::Shared;
use super::tls;

/// How long to wait after a file event for the burst of writes to settle.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// What a reloadable target last saw: the bytes of its files, or the error reading them.
type Seen = Option<Vec<Result<Vec<u8>, String>>>;

// === Reloader ===

/// Checks the certificate and policy files and swaps in what changed.
pub struct Reloader {
    shared: Arc<Shared>,
    cert_seen: Seen,
    policy_seen: Seen,
}

// === impl Reloader ===

impl Reloader {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            cert_seen: None,
            policy_seen: None,
        }
    }

    /// Checks every target once (the initial load, then on each event or poll).
    pub fn check_all(&mut self) {
        self.check_cert();
        self.check_policy();
    }

    fn check_cert(&mut self) {
        let cfg = &self.shared.config;
        let files = read_all(&[cfg.tls_cert.as_path(), cfg.tls_key.as_path()]);
        if self.cert_seen.as_ref() == Some(&files) {
            return;
        }
        let result = match (&files[0], &files[1]) {
            (Ok(cert), Ok(key)) => tls::pair_from_pem(cert, key).map_err(|e| e.to_string()),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        self.cert_seen = Some(files);
        let metrics = &self.shared.metrics;
        match result {
            Ok(pair) => {
                let first = !self.shared.certs.is_loaded();
                self.shared.certs.set(pair.key);
                if let Some(na) = pair.not_after {
                    metrics.cert_not_after.set(na);
                }
                metrics.reload("certificate", true);
                tracing::info!(
                    target: "gpu_admission::reload",
                    cert = %cfg.tls_cert.display(), not_after = pair.not_after.unwrap_or_default(),
                    "{}", if first { "serving certificate loaded" } else { "serving certificate reloaded" }
                );
            }
            Err(error) => {
                metrics.reload("certificate", false);
                tracing::error!(
                    target: "gpu_admission::reload",
                    cert = %cfg.tls_cert.display(), key = %cfg.tls_key.display(), %error,
                    kept_previous = self.shared.certs.is_loaded(),
                    "serving certificate not (re)loaded"
                );
            }
        }
    }

    fn check_policy(&mut self) {
        let cfg = &self.shared.config;
        let paths: Vec<&Path> = cfg
            .policy
            .iter()
            .chain(cfg.time_slicing.iter())
            .map(PathBuf::as_path)
            .collect();
        let files = read_all(&paths);
        if self.policy_seen.as_ref() == Some(&files) {
            return;
        }
        self.policy_seen = Some(files);
        let first = self.shared.policy.load().is_none();
        if !first && paths.is_empty() {
            return; // the embedded default never changes
        }
        let metrics = &self.shared.metrics;
        match crate::policy::Policy::load_files(cfg.policy.as_deref(), cfg.time_slicing.as_deref()) {
            Ok(policy) => {
                let origin = policy.origin().to_string();
                self.shared.set_base_policy(Arc::new(policy));
                metrics.reload("policy", true);
                tracing::info!(
                    target: "gpu_admission::reload", %origin,
                    "{}", if first { "policy loaded" } else { "policy reloaded" }
                );
            }
            Err(error) => {
                metrics.reload("policy", false);
                tracing::error!(
                    target: "gpu_admission::reload", %error, kept_previous = !first,
                    "policy not (re)loaded"
                );
            }
        }
    }

    /// Every directory to watch: each file's directory, and the directory its symlinks resolve to.
    fn watch_dirs(&self) -> BTreeSet<PathBuf> {
        let cfg = &self.shared.config;
        let files = [
            Some(&cfg.tls_cert),
            Some(&cfg.tls_key),
            cfg.policy.as_ref(),
            cfg.time_slicing.as_ref(),
        ];
        let mut dirs = BTreeSet::new();
        for f in files.into_iter().flatten() {
            let parent = |p: &Path| p.parent().filter(|d| !d.as_os_str().is_empty()).map(Path::to_path_buf);
            dirs.extend(parent(f).or_else(|| Some(PathBuf::from("."))));
            if let Ok(real) = std::fs::canonicalize(f) {
                dirs.extend(parent(&real));
            }
        }
        dirs
    }

    /// Runs until `shutdown` flips: checks on directory events (debounced) and every `poll`.
    pub async fn run(mut self, poll: Duration, watch_files: bool, mut shutdown: watch::Receiver<bool>) {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let _watcher = if watch_files { self.start_watcher(tx) } else { None };
        let mut ticker = tokio::time::interval(poll.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is immediate; the initial load already ran
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(()) = rx.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while rx.try_recv().is_ok() {}
                    self.check_all();
                }
                _ = ticker.tick() => self.check_all(),
            }
        }
    }

    fn start_watcher(&self, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        let handler = move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.try_send(()); // full: a check is already pending
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(error) => {
                tracing::warn!(target: "gpu_admission::reload", %error, "cannot watch files; polling only");
                return None;
            }
        };
        for dir in self.watch_dirs() {
            if let Err(error) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                tracing::warn!(target: "gpu_admission::reload", dir = %dir.display(), %error, "cannot watch; polling it");
            }
        }
        Some(watcher)
    }
}

fn read_all(paths: &[&Path]) -> Vec<Result<Vec<u8>, String>> {
    paths
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}
