//! The real [`Sender`]: one POST over hyper (https through rustls), redirects not followed,
//! and the SSRF guard — a webhook URL whose host is, or resolves to, a loopback, private,
//! link-local, shared, multicast or metadata address is refused unless
//! `webhooks.allow_private`. The check is in the resolver the connector uses, so the address
//! checked is the address connected to (no second lookup to rebind).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;

use super::deliver::{Answer, Sender};

/// Why an address may not be called, if it may not.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata lives here)")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("shared (carrier-grade NAT)")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
                Some("multicast or reserved")
            } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
                Some("IETF protocol assignments")
            } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
                Some("benchmarking")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("unique local (private)")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (s[0] & 0xff00) == 0xff00 {
                Some("multicast")
            } else if s[0] == 0x64 && s[1] == 0xff9b {
                // NAT64: the IPv4 address inside decides.
                let v4 = std::net::Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                forbidden(IpAddr::V4(v4))
            } else {
                None
            }
        }
    }
}

/// Checks a webhook URL as the API receives it: `http` or `https`, a host, no credentials;
/// a literal address or `localhost` must be allowed now (names are checked at each delivery).
pub fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("must be an http:// or https:// URL".into()),
    }
    let Some(authority) = uri.authority() else {
        return Err("has no host".into());
    };
    if authority.as_str().contains('@') {
        return Err("must not carry credentials".into());
    }
    if url.len() > 2048 {
        return Err("is longer than 2048 characters".into());
    }
    if allow_private {
        return Ok(());
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return Err("points at this machine (loopback); set webhooks.allow_private = true to allow it".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if let Some(why) = forbidden(ip) {
            return Err(format!(
                "points at a {why} address; set webhooks.allow_private = true to allow it"
            ));
        }
    }
    Ok(())
}

/// Resolves like the system, keeping only the addresses a webhook may reach.
#[derive(Clone)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| allow || forbidden(a.ip()).is_none())
                .collect();
            if ok.is_empty() {
                let why = all.first().and_then(|a| forbidden(a.ip())).unwrap_or("no");
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{host} resolves to a {why} address (webhooks.allow_private is off)"),
                ));
            }
            Ok(ok.into_iter())
        })
    }
}

/// POSTs over hyper with the guarded resolver.
pub struct HttpSender {
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    timeout: Duration,
    allow_private: bool,
}

impl HttpSender {
    /// A sender verifying `https` receivers with `tls`, giving each POST `timeout`.
    pub fn new(tls: Arc<ClientConfig>, timeout: Duration, allow_private: bool) -> Self {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(5))));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .build(https);
        Self {
            client,
            timeout,
            allow_private,
        }
    }
}

impl Sender for HttpSender {
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, String>> + Send + 'a>> {
        Box::pin(async move {
            // A literal address never reaches the resolver: checked here, at every delivery.
            check_url(url, self.allow_private)?;
            let mut req = hyper::Request::post(url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
            let resp = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
                Err(_) => return Err(format!("timeout after {:?}", self.timeout)),
                Ok(Err(e)) => return Err(chain(&e)),
                Ok(Ok(r)) => r,
            };
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            Ok(Answer {
                status: resp.status().as_u16(),
                retry_after,
            })
        })
    }
}

/// An error and its sources on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(forbidden(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "172.32.0.1", "100.128.0.1"] {
            assert!(forbidden(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_are_refused_at_delivery() {
        use std::str::FromStr;
        use tower_service::Service;
        let name = |n: &str| Name::from_str(n).unwrap();
        let mut guard = GuardedResolver { allow_private: false };
        let e = guard.call(name("localhost")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("loopback"), "{e}");
        let mut open = GuardedResolver { allow_private: true };
        assert!(open
            .call(name("localhost"))
            .await
            .unwrap()
            .all(|a| a.ip().is_loopback()));
        // And the sender refuses a literal address before any connection.
        let tls = Arc::new(
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        );
        let sender = HttpSender::new(tls, Duration::from_secs(1), false);
        let e = sender
            .post("http://10.0.0.1/x", Vec::new(), "{}".into())
            .await
            .unwrap_err();
        assert!(e.contains("private"), "{e}");
        let e = sender
            .post("http://localhost:9/x", Vec::new(), "{}".into())
            .await
            .unwrap_err();
        assert!(e.contains("loopback"), "{e}");
    }

    #[test]
    fn urls_are_checked_before_they_are_stored() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://localhost/",
            "http://169.254.169.254/latest/meta-data",
            "not a url",
            "/relative",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:8080/", true).is_ok());
        assert!(check_url("ftp://example.com/", true).is_err());
    }
}
