//! Reloading the serving certificate and the policy without a restart.
//!
//! The directories holding the files are watched (inotify through `notify`): Secret and ConfigMap
//! volumes change by swapping a `..data` symlink, which is an event in the directory, not on the
//! file. The files are also polled as a fallback (a watch can be lost, e.g. when the directory
//! itself is replaced). Either way, a target is reloaded only when the bytes of its files changed
//! since the last attempt; a new certificate pair is taken only if it parses, the key matches the
//! certificate and the leaf is within its validity window; a new client CA only if it parses; a
//! new policy only if it validates. Otherwise the old one stays, and the error is logged and
//! counted (`gpu_admission_reloads_total{result="failure"}`) once per new content. A pair refused
//! as not valid yet is tried again once its notBefore has passed.

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

/// Checks the certificate, client CA and policy files and swaps in what changed.
pub struct Reloader {
    shared: Arc<Shared>,
    cert_seen: Seen,
    /// The notBefore of a pair refused as not valid yet: the same bytes are tried again then.
    cert_retry_at: Option<i64>,
    client_ca_seen: Seen,
    policy_seen: Seen,
}

// === impl Reloader ===

impl Reloader {
    /// `client_ca_pem`: the client CA as read at start-up (already in use).
    pub fn new(shared: Arc<Shared>, client_ca_pem: Option<Vec<u8>>) -> Self {
        Self {
            shared,
            cert_seen: None,
            cert_retry_at: None,
            client_ca_seen: client_ca_pem.map(|pem| vec![Ok(pem)]),
            policy_seen: None,
        }
    }

    /// Checks every target once (the initial load, then on each event or poll).
    pub fn check_all(&mut self) {
        // --self-managed-certs: the pair comes from the Secret (self_certs), not from files.
        if self.shared.config.self_managed_certs.is_none() {
            self.check_cert();
        }
        self.check_client_ca();
        self.check_policy();
    }

    fn check_cert(&mut self) {
        let cfg = &self.shared.config;
        let files = read_all(&[cfg.tls_cert.as_path(), cfg.tls_key.as_path()]);
        let now = super::unix_now();
        let retry = self.cert_retry_at.is_some_and(|t| now >= t);
        if self.cert_seen.as_ref() == Some(&files) && !retry {
            return;
        }
        self.cert_retry_at = None;
        let result = match (&files[0], &files[1]) {
            (Ok(cert), Ok(key)) => tls::usable_pair(cert, key, now),
            (Err(e), _) | (_, Err(e)) => Err(tls::TlsError::Read(e.clone())),
        };
        if let Err(tls::TlsError::NotYetValid { not_before, .. }) = &result {
            self.cert_retry_at = Some(*not_before);
        }
        self.cert_seen = Some(files);
        let metrics = &self.shared.metrics;
        match result {
            Ok(pair) => {
                let first = !self.shared.certs.is_loaded();
                let not_after = self.shared.take_pair(pair);
                tracing::info!(
                    target: "gpu_admission::reload",
                    cert = %cfg.tls_cert.display(), not_after = not_after.unwrap_or_default(),
                    "{}", if first { "serving certificate loaded" } else { "serving certificate reloaded" }
                );
            }
            Err(error) => {
                metrics.reload("certificate", false);
                self.shared.set_cert_error(Some(error.to_string()));
                tracing::error!(
                    target: "gpu_admission::reload",
                    cert = %cfg.tls_cert.display(), key = %cfg.tls_key.display(), %error,
                    kept_previous = self.shared.certs.is_loaded(),
                    "serving certificate not (re)loaded"
                );
            }
        }
    }

    /// `--client-ca`: a changed CA file that parses becomes the verifier of new handshakes.
    fn check_client_ca(&mut self) {
        let Some(path) = self.shared.config.client_ca.clone() else {
            return;
        };
        let files = read_all(&[path.as_path()]);
        if self.client_ca_seen.as_ref() == Some(&files) {
            return;
        }
        let result = match &files[0] {
            Ok(pem) => tls::client_verifier(&path, pem)
                .and_then(|verifier| tls::server_config(self.shared.certs.clone(), Some(verifier))),
            Err(e) => Err(tls::TlsError::Read(e.clone())),
        };
        self.client_ca_seen = Some(files);
        match result {
            Ok(config) => {
                self.shared.tls.store(Arc::new(config));
                self.shared.metrics.reload("client_ca", true);
                tracing::info!(target: "gpu_admission::reload", client_ca = %path.display(), "client CA reloaded");
            }
            Err(error) => {
                self.shared.metrics.reload("client_ca", false);
                tracing::error!(
                    target: "gpu_admission::reload", client_ca = %path.display(), %error, kept_previous = true,
                    "client CA not reloaded"
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
        let from_files = cfg.self_managed_certs.is_none();
        let files = [
            Some(&cfg.tls_cert).filter(|_| from_files),
            Some(&cfg.tls_key).filter(|_| from_files),
            cfg.client_ca.as_ref(),
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

// === impl Shared: the serving pair ===

impl Shared {
    /// Serves `pair` (new handshakes get it), clears the refusal `/readyz` names, sets the
    /// notAfter gauge and counts the load. Returns the pair's notAfter (from files here, from
    /// the Secret in `self_certs`).
    pub(super) fn take_pair(&self, pair: tls::LoadedPair) -> Option<i64> {
        let not_after = pair.not_after;
        self.certs.set(pair);
        self.set_cert_error(None);
        if let Some(na) = not_after {
            self.metrics.cert_not_after.set(na);
        }
        self.metrics.reload("certificate", true);
        not_after
    }

    /// Why the last serving pair was refused (`None`: one was taken since).
    pub(super) fn set_cert_error(&self, error: Option<String>) {
        *self.cert_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// The refusal [`Shared::set_cert_error`] recorded last.
    pub(super) fn cert_error(&self) -> Option<String> {
        self.cert_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn read_all(paths: &[&Path]) -> Vec<Result<Vec<u8>, String>> {
    paths
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}
