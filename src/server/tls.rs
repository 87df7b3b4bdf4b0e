//! TLS on the public listener: the certificate from `tls.cert` / `tls.key`, re-read when
//! either file changes (a renewal needs no restart; a bad new pair is logged and the old one
//! kept), TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::cluster::{read_certs, read_key, TlsError};
use crate::config::TlsConfig;

/// How often the files are looked at (a stat each; cheap).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The listener's TLS: the acceptor and the certificate it serves.
pub struct ServerTls {
    acceptor: TlsAcceptor,
    cert: Arc<Reloading>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.cert.cert)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the pair; an unusable one refuses the start.
    pub fn load(cfg: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        let (Some(cert), Some(key)) = (cfg.cert.clone(), cfg.key.clone()) else {
            return Err(TlsError::File {
                path: "tls".into(),
                reason: "cert and key are both required".into(),
            });
        };
        let stamp = stamp(&cert, &key);
        let current = load_pair(&cert, &key)?;
        let reloading = Arc::new(Reloading {
            current: ArcSwap::from_pointee(current),
            cert,
            key,
            stamp: Mutex::new(stamp),
        });
        let mut config = ServerConfig::builder_with_provider(crate::cluster::tls_provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(reloading.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert: reloading,
        }))
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Re-reads the pair every second while it changes on disk; connections already open keep
    /// the certificate they were made with.
    pub fn spawn_reload(self: &Arc<Self>) -> JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CHECK_EVERY).await;
                let t = tls.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || t.cert.reload_if_changed()).await {
                    tracing::warn!(error = %e, "certificate reload task failed");
                }
            }
        })
    }

    /// Checks the files now (what the reload task does each second); `Ok(true)` if the
    /// certificate was replaced.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        self.cert.reload_if_changed()
    }
}

/// The certificate in use, swapped whole when the files change.
#[derive(Debug)]
struct Reloading {
    current: ArcSwap<CertifiedKey>,
    cert: PathBuf,
    key: PathBuf,
    /// What the files looked like when last read (a std Mutex: only the reload task takes it).
    stamp: Mutex<Stamp>,
}

/// A digest of both files' contents: any new pair changes it, whether written in place,
/// renamed over, swapped by symlink (Kubernetes secrets) or copied with its old timestamp
/// (`cp -p`, `rsync -t`). Reading two small files a second costs nothing.
type Stamp = Option<[u8; 32]>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(std::fs::read(cert).ok()?);
    h.update(std::fs::read(key).ok()?);
    Some(h.finalize().into())
}

impl Reloading {
    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamp(&self.cert, &self.key);
        let Ok(mut last) = self.stamp.lock() else {
            return Ok(false);
        };
        if now.is_none() || now == *last {
            return Ok(false);
        }
        // Remembered before reading: a pair caught half-written is tried again at the next
        // change, and a bad pair is reported once, not every second.
        *last = now;
        match load_pair(&self.cert, &self.key) {
            Ok(k) => {
                self.current.store(Arc::new(k));
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate not reloaded; keeping the one in use");
                Err(e)
            }
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let provider = crate::cluster::tls_provider();
    CertifiedKey::from_der(read_certs(cert)?, read_key(key)?, &provider).map_err(|e| TlsError::File {
        path: key.display().to_string(),
        reason: format!("does not go with {}: {e}", cert.display()),
    })
}
