//! TLS for tests: a CA made by the test (rcgen) and the leaf certificates it signs, PEM files
//! written whole, a TLS client trusting that CA, and two TLS fronts: an HTTP one for fake nodes
//! (h2 or http/1.1 by ALPN, optionally demanding a client certificate) and a TLS-terminating
//! TCP relay for a real node's HTTP or WebSocket port (http/1.1 only, a byte copy after the
//! handshake).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::client::Http;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A CA and what it signs.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

/// A certificate and its key, as DER and as PEM.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for localhost and 127.0.0.1, or a client one.
    pub fn leaf(&self, cn: &str) -> Leaf {
        let mut p = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            der: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A fresh temporary directory.
pub fn dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "kengate-tls-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `dir/name`: beside it first, then renamed over it, so a reader never sees half a file.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
    p
}

/// A server config with `leaf`, offering `alpn`, demanding a client certificate from
/// `client_ca` when given.
fn server_config(leaf: &Leaf, client_ca: Option<&Ca>, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.cert.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(vec![leaf.der.clone()], leaf.key.clone_key())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS front for a fake node: terminates TLS (optionally demanding a client certificate
/// from `client_ca`) and serves the fake's answers over HTTP/1.1 or, when the client asks by
/// ALPN, HTTP/2. Counts connections per protocol.
pub struct Front {
    pub addr: SocketAddr,
    pub h2: Arc<AtomicU64>,
    pub h1: Arc<AtomicU64>,
}

pub async fn front(leaf: &Leaf, client_ca: Option<&Ca>, backend: SocketAddr) -> Front {
    let acceptor = TlsAcceptor::from(server_config(leaf, client_ca, &[b"h2", b"http/1.1"]));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (h1, h2) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (c1, c2) = (h1.clone(), h2.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            let (c1, c2) = (c1.clone(), c2.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| async move {
                    // Relayed to the fake over HTTP/1.1.
                    let body = req.into_body().collect().await?.to_bytes();
                    let reply = Http::default().post(&format!("http://{backend}/"), body).await;
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(reply.text()))))
                });
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    c2.fetch_add(1, Ordering::Relaxed);
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                } else {
                    c1.fetch_add(1, Ordering::Relaxed);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                }
            });
        }
    });
    Front { addr, h2, h1 }
}

/// A TLS-terminating TCP relay in front of `backend` (a real node's HTTP or WebSocket port):
/// after the handshake (ALPN http/1.1 only) it copies bytes both ways, so HTTP and WebSocket
/// upgrades pass unchanged. Counts handshakes that completed and that failed (with the last
/// failure's reason). Stops accepting when dropped; open connections carry on.
pub struct Relay {
    pub addr: SocketAddr,
    pub handshakes: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    pub last_failure: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(leaf: &Leaf, backend: SocketAddr) -> Relay {
        let acceptor = TlsAcceptor::from(server_config(leaf, None, &[b"http/1.1"]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let last_failure = Arc::new(Mutex::new(None));
        let (ok, bad, why) = (handshakes.clone(), failed.clone(), last_failure.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                let (ok, bad, why) = (ok.clone(), bad.clone(), why.clone());
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            bad.fetch_add(1, Ordering::Relaxed);
                            *why.lock().unwrap() = Some(e.to_string());
                            return;
                        }
                    };
                    ok.fetch_add(1, Ordering::Relaxed);
                    let Ok(mut up) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Relay {
            addr,
            handshakes,
            failed,
            last_failure,
            task,
        }
    }

    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().unwrap().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS client config trusting only `ca`, offering `alpn`.
pub fn client_config(ca: &Ca, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` as `localhost`, trusting `ca`, offering `alpn`.
pub async fn connect(addr: SocketAddr, ca: &Ca, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(client_config(ca, alpn))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The certificate a TLS connection's server presented (its leaf).
pub fn peer_leaf(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().expect("a server certificate")[0].clone()
}

/// `klay_blockNumber`, as a body.
pub const BLOCK_NUMBER: &str = r#"{"jsonrpc":"2.0","id":1,"method":"klay_blockNumber","params":[]}"#;

/// `klay_blockNumber` as a request for a hyper client connection to kengate's TLS listener.
pub fn rpc_request() -> hyper::Request<http_body_util::Full<bytes::Bytes>> {
    hyper::Request::post("https://localhost/")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            BLOCK_NUMBER.as_bytes(),
        )))
        .unwrap()
}
