//! `serve --cluster --self-managed-certs SECRET`: certificates without cert-manager.
//!
//! The server keeps a CA and a serving certificate in a Secret of its namespace (keys in
//! [`plan`]), creating them when they are missing; serves that pair (swapped into the running
//! resolver, as a file reload does); writes the CA bundle into every webhook of its own
//! MutatingWebhookConfiguration and ValidatingWebhookConfiguration; and rotates the serving
//! certificate `serving_rotate_before_secs` before its notAfter, from the same CA, so the
//! caBundle the API server holds keeps verifying both the old and the new one. The CA rotates by
//! adding the next CA to the bundle first, and signing with it only `ca_overlap_secs` later; a
//! CA leaves the bundle once it has expired.
//!
//! Replicas coordinate by a deterministic rule, without a Lease: each decides from the Secret
//! and the clock alone ([`plan::decide`]), and writes with the resourceVersion it read (or
//! creates the Secret if there is none). The API server takes the first write; the others get
//! 409 Conflict (or AlreadyExists), re-read, and serve what the winner wrote. The Secret, both
//! configurations and the clock are checked on every watch event and every `--reload-poll-ms`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use super::{Shared, shutdown, tls};
use crate::certs::{CertError, DevCa};

mod issue;
pub mod plan;

/// What `--self-managed-certs` manages, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCerts {
    /// The Secret holding the CA and the serving pair.
    pub secret: String,
    /// The server's namespace (the Secret's and the Service's).
    pub namespace: String,
    /// The Service the API server calls: its DNS names are the serving certificate's SANs.
    pub service: String,
    /// More SANs (DNS names or IP addresses).
    pub extra_hosts: Vec<String>,
    pub mutating_webhook: String,
    pub validating_webhook: String,
    pub timing: plan::Timing,
}

impl SelfCerts {
    /// The serving certificate's SANs: the Service's DNS names, then the extra hosts.
    pub fn hosts(&self) -> Vec<String> {
        let (svc, ns) = (&self.service, &self.namespace);
        let mut hosts = vec![
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
            format!("{svc}.{ns}"),
            svc.clone(),
        ];
        hosts.extend(self.extra_hosts.iter().cloned());
        hosts
    }
}

/// Why a round did not complete (retried on the next event or poll).
#[derive(Debug, thiserror::Error)]
pub enum SelfCertsError {
    #[error("secret {namespace}/{name}: {source}")]
    Secret {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("{kind} {name}: {source}")]
    Configuration {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("cannot make certificates: {0}")]
    Certs(#[from] CertError),
    #[error("the serving pair in the secret: {0}")]
    Tls(#[from] tls::TlsError),
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
}

/// Runs until shutdown.
pub(super) async fn run(client: kube::Client, shared: Arc<Shared>, cfg: SelfCerts, mut stop: watch::Receiver<bool>) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &cfg.namespace);
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let (kick, mut kicked) = mpsc::channel::<()>(1);
    let watches = [
        tokio::spawn(kick_on_events(secrets.clone(), cfg.secret.clone(), kick.clone())),
        tokio::spawn(kick_on_events(
            mutating.clone(),
            cfg.mutating_webhook.clone(),
            kick.clone(),
        )),
        tokio::spawn(kick_on_events(validating.clone(), cfg.validating_webhook.clone(), kick)),
    ];
    let poll = shared.config.reload_poll;
    let mut round = Round {
        shared: &shared,
        cfg: &cfg,
        secrets,
        mutating,
        validating,
        served: None,
    };
    loop {
        let wait = match round.once().await {
            Ok(wait) => wait.min(poll),
            Err(error) => {
                if !shared.certs.is_loaded() {
                    shared.set_cert_error(Some(error.to_string()));
                }
                tracing::warn!(target: "gpu_admission::self_certs", %error, "self-managed certificates: retrying");
                poll
            }
        };
        tokio::select! {
            _ = shutdown::triggered(&mut stop) => break,
            Some(()) = kicked.recv() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    for w in watches {
        w.abort();
    }
}

/// Sends a kick for every event of object `name` (a watch by field selector, which a
/// `resourceNames` rule allows).
async fn kick_on_events<K>(api: Api<K>, name: String, kick: mpsc::Sender<()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(_) => {
                let _ = kick.try_send(()); // full: a round is already due
            }
            Err(error) => {
                tracing::warn!(target: "gpu_admission::self_certs", object = %name, %error, "watch failed; retrying (polling meanwhile)");
            }
        }
    }
}

struct Round<'a> {
    shared: &'a Shared,
    cfg: &'a SelfCerts,
    secrets: Api<Secret>,
    mutating: Api<MutatingWebhookConfiguration>,
    validating: Api<ValidatingWebhookConfiguration>,
    /// The `tls.crt` being served.
    served: Option<String>,
}

impl Round<'_> {
    /// One round: the Secret up to date, its pair served, its bundle injected. Returns how long
    /// until the next deadline (zero: a write lost a race, read again now).
    async fn once(&mut self) -> Result<Duration, SelfCertsError> {
        let now = super::unix_now();
        let secret_error = |source| SelfCertsError::Secret {
            namespace: self.cfg.namespace.clone(),
            name: self.cfg.secret.clone(),
            source,
        };
        let current = self.secrets.get_opt(&self.cfg.secret).await.map_err(secret_error)?;
        let data = current.as_ref().map(secret_data).unwrap_or_default();
        let stored = plan::Stored::from_data(|k| data.get(k).cloned());
        let action = plan::decide(&stored, now, &self.cfg.timing);
        // Parsed again only when something was written.
        let (data, stored) = if action == plan::Action::Keep {
            (data, stored)
        } else {
            let new_data = issue::apply(action, &data, &stored, now, self.cfg)?;
            let written = match current {
                Some(mut secret) => {
                    secret.data = Some(to_bytes(&new_data));
                    secret.string_data = None;
                    self.secrets
                        .replace(&self.cfg.secret, &PostParams::default(), &secret)
                        .await
                }
                None => {
                    self.secrets
                        .create(&PostParams::default(), &self.new_secret(&new_data))
                        .await
                }
            };
            match written {
                Ok(_) => {
                    tracing::info!(target: "gpu_admission::self_certs", ?action, secret = %self.cfg.secret, "self-managed certificates written");
                    let stored = plan::Stored::from_data(|k| new_data.get(k).cloned());
                    (new_data, stored)
                }
                Err(e) if is_conflict(&e) => {
                    tracing::info!(target: "gpu_admission::self_certs", ?action, "another replica wrote the secret first; reading it again");
                    return Ok(Duration::ZERO);
                }
                Err(e) => return Err(secret_error(e)),
            }
        };
        let serial = stored.serving.as_ref().map_or("", |c| c.serial.as_str());
        self.serve(&data, serial)?;
        let bundle = data.get(plan::BUNDLE).cloned().unwrap_or_default();
        let again = self.inject(bundle.as_bytes()).await?;
        let next = plan::next_change(&stored, &self.cfg.timing).unwrap_or(now);
        // At least a second: only a lost race reads again at once.
        let until = u64::try_from(next.saturating_sub(super::unix_now()))
            .unwrap_or(0)
            .max(1);
        Ok(if again {
            Duration::ZERO
        } else {
            Duration::from_secs(until)
        })
    }

    fn new_secret(&self, data: &BTreeMap<String, String>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.cfg.secret.clone()),
                namespace: Some(self.cfg.namespace.clone()),
                labels: Some([("app.kubernetes.io/name".to_string(), "gpu-admission".to_string())].into()),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(to_bytes(data)),
            ..Secret::default()
        }
    }

    /// Swaps the Secret's serving pair in when it is not the one being served (`serial`: its
    /// certificate's, as parsed already).
    fn serve(&mut self, data: &BTreeMap<String, String>, serial: &str) -> Result<(), SelfCertsError> {
        let (Some(cert), Some(key)) = (data.get(plan::TLS_CERT), data.get(plan::TLS_KEY)) else {
            return Ok(());
        };
        if self.served.as_ref() == Some(cert) {
            return Ok(());
        }
        let pair = match tls::usable_pair(cert.as_bytes(), key.as_bytes(), super::unix_now()) {
            Ok(pair) => pair,
            Err(e) => {
                self.shared.metrics.reload("certificate", false);
                return Err(e.into());
            }
        };
        let not_after = self.shared.take_pair(pair);
        tracing::info!(target: "gpu_admission::self_certs", %serial, not_after = not_after.unwrap_or_default(), secret = %self.cfg.secret, "serving the self-managed certificate");
        self.served = Some(cert.clone());
        Ok(())
    }

    /// Writes `bundle` into every webhook of both configurations where it differs. Returns
    /// whether a write lost a race (read again at once). A configuration not there yet is
    /// skipped: its creation is a watch event.
    async fn inject(&self, bundle: &[u8]) -> Result<bool, SelfCertsError> {
        if bundle.is_empty() {
            return Ok(false);
        }
        let m = inject_into(
            &self.mutating,
            "mutatingwebhookconfiguration",
            &self.cfg.mutating_webhook,
            bundle,
            |c| c.webhooks.iter_mut().flatten().map(|w| &mut w.client_config).collect(),
        )
        .await?;
        let v = inject_into(
            &self.validating,
            "validatingwebhookconfiguration",
            &self.cfg.validating_webhook,
            bundle,
            |c| c.webhooks.iter_mut().flatten().map(|w| &mut w.client_config).collect(),
        )
        .await?;
        Ok(m || v)
    }
}

/// One configuration's caBundles set to `bundle` (an update with the resourceVersion read).
/// `Ok(true)`: it changed under us; read again. `kind` names it in the error.
async fn inject_into<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
    bundle: &[u8],
    client_configs: fn(&mut K) -> Vec<&mut WebhookClientConfig>,
) -> Result<bool, SelfCertsError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let error = |source| SelfCertsError::Configuration {
        kind,
        name: name.to_string(),
        source,
    };
    let Some(mut config) = api.get_opt(name).await.map_err(error)? else {
        return Ok(false);
    };
    let mut changed = 0usize;
    for client in client_configs(&mut config) {
        if client.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(bundle) {
            client.ca_bundle = Some(ByteString(bundle.to_vec()));
            changed += 1;
        }
    }
    if changed == 0 {
        return Ok(false);
    }
    match api.replace(name, &PostParams::default(), &config).await {
        Ok(_) => {
            tracing::info!(target: "gpu_admission::self_certs", configuration = name, webhooks = changed, "caBundle injected");
            Ok(false)
        }
        Err(e) if is_conflict(&e) => Ok(true),
        Err(e) => Err(error(e)),
    }
}

/// The Secret's data as text (entries that are not UTF-8 are left out: they are not ours).
fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        if let Ok(text) = String::from_utf8(v.0.clone()) {
            out.insert(k.clone(), text);
        }
    }
    out
}

fn to_bytes(data: &BTreeMap<String, String>) -> BTreeMap<String, ByteString> {
    data.iter()
        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

/// A new CA, named after the time it was made (milliseconds), valid `ca_valid_secs`.
fn new_ca(now: i64, timing: &plan::Timing) -> Result<DevCa, CertError> {
    let name = format!("gpu-admission self-managed CA {}", crate::cluster::watch::now_unix_ms());
    DevCa::generate_named(&name, now - 3600, now.saturating_add(timing.ca_valid_secs))
}
