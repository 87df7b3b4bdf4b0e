//! TLS to nodes: which certificates a node must present (the system's trust roots, or the
//! node's own CA file), the client certificate kengate shows it (mTLS), and the WebSocket
//! connect that uses them. One rustls `ClientConfig` per node setting, built at start.
//!
//! Roots: the operating system's store (`rustls-native-certs`: on Debian `/etc/ssl/certs`),
//! not a bundled list, so a node behind a private CA that the operator added to the system
//! store works, and a CA the operator removed is distrusted without a kengate release.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use thiserror::Error;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::config::NodeTlsConfig;

/// A WebSocket connection to a node (`ws://` or `wss://`).
pub type WsStream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a TLS setting cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The system store has no certificate rustls accepts.
    #[error("no usable trust roots in the system store ({0})")]
    Roots(String),
    /// rustls refused the combination (e.g. a key that does not match the certificate).
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every TLS config uses (ring: no C toolchain beyond cc, no cmake).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_err = |reason: String| TlsError::File {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        path: path.display().to_string(),
        reason: format!("no usable PEM private key: {e}"),
    })
}

/// The system store, read once per process (a few hundred certificates).
fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map_or("none found".to_owned(), |e| e.to_string());
                return Err(why);
            }
            Ok(Arc::new(store))
        })
        .clone()
        .map_err(TlsError::Roots)
}

/// The client config for a node: its CA file (only that CA is trusted for it) or, when
/// `system` is set, the system roots (else none: a node without TLS never needs them); its
/// client certificate if configured. No ALPN here: the HTTP client offers h2 and http/1.1,
/// the WebSocket connect none.
pub fn client_config(tls: &NodeTlsConfig, system: bool) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = match &tls.ca {
        Some(ca) => {
            let mut store = RootCertStore::empty();
            for cert in read_certs(ca)? {
                store.add(cert).map_err(|e| TlsError::File {
                    path: ca.display().to_string(),
                    reason: format!("not a CA certificate: {e}"),
                })?;
            }
            Arc::new(store)
        }
        None if system => system_roots()?,
        None => Arc::new(RootCertStore::empty()),
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => builder.with_client_auth_cert(read_certs(cert)?, read_key(key)?)?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Opens a WebSocket to `url` (TLS for `wss://` with `tls`), within `timeout`.
pub async fn connect_ws(url: &str, tls: &Arc<ClientConfig>, timeout: Duration) -> Result<WsStream, String> {
    let connector = url.starts_with("wss://").then(|| Connector::Rustls(tls.clone()));
    let connect = tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector);
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(format!("no connection in {timeout:?}")),
        Ok(Err(e)) => Err(error_chain(&e)),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// An error and its sources on one line ("client error (Connect): invalid peer certificate:
/// UnknownIssuer"): hyper's and tungstenite's top-level messages alone do not say why.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
