//! A minimal JSON-RPC / HTTP client for tests (hyper-util, like the proxy itself).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// A pooled HTTP client.
#[derive(Clone)]
pub struct Http {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

/// A response: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub content_type: String,
    pub headers: http::HeaderMap,
}

impl Reply {
    /// A response header as text (`None` when absent or not ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Http {
    pub async fn post(&self, url: &str, body: impl Into<Bytes>) -> Reply {
        let req = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .expect("request");
        self.send(req).await
    }

    /// A POST whose response body is read by the caller, frame by frame.
    pub async fn post_streaming(&self, url: &str, body: impl Into<Bytes>) -> http::Response<hyper::body::Incoming> {
        let req = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .expect("request");
        self.inner.request(req).await.expect("response head")
    }

    /// A request with extra headers; a name given twice is sent twice (e.g. two
    /// `Authorization` headers).
    pub async fn request(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut req = http::Request::builder().method(method).uri(url);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Full::new(body.into())).expect("request")).await
    }

    /// A POST with extra headers.
    pub async fn post_with_headers(&self, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
        self.request(http::Method::POST, url, headers, body).await
    }

    /// A GET with extra headers.
    pub async fn get_with_headers(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(http::Method::GET, url, headers, Bytes::new()).await
    }

    /// A GET that may fail to connect: the status, or `None`.
    pub async fn get_opt(&self, url: &str) -> Option<u16> {
        let req = http::Request::get(url).body(Full::new(Bytes::new())).ok()?;
        let resp = tokio::time::timeout(Duration::from_secs(5), self.inner.request(req))
            .await
            .ok()?
            .ok()?;
        Some(resp.status().as_u16())
    }

    /// A POST that may fail to connect: the status, or `None`.
    pub async fn post_opt(&self, url: &str, body: &'static str) -> Option<u16> {
        let req = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .ok()?;
        let resp = tokio::time::timeout(Duration::from_secs(5), self.inner.request(req))
            .await
            .ok()?
            .ok()?;
        Some(resp.status().as_u16())
    }

    pub async fn get(&self, url: &str) -> Reply {
        let req = http::Request::get(url).body(Full::new(Bytes::new())).expect("request");
        self.send(req).await
    }

    /// A GET with extra headers whose transport failure is the caller's to judge (an observer
    /// sampling kengate — `Gate::watch_states` — skips a lost sample instead of failing the test).
    pub async fn try_get_with_headers(&self, url: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
        let mut req = http::Request::get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(30), self.inner.request(req))
            .await
            .map_err(|_| "request timed out".to_owned())?
            .map_err(|e| format!("request failed: {e:?}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e:?}"))?
            .to_bytes();
        Ok(Reply {
            status,
            body,
            content_type,
            headers,
        })
    }

    async fn send(&self, req: http::Request<Full<Bytes>>) -> Reply {
        let resp = tokio::time::timeout(Duration::from_secs(30), self.inner.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Reply {
            status,
            body,
            content_type,
            headers,
        }
    }

    /// One call; returns the whole response object.
    pub async fn rpc(&self, url: &str, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}).to_string();
        self.post(url, body).await.json()
    }

    /// One call; a reply that is not JSON comes back as `{"non_json": <status and body>}`
    /// instead of a panic (load loops count it as a failure).
    pub async fn rpc_lenient(&self, url: &str, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}).to_string();
        let r = self.post(url, body).await;
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|_| json!({"non_json": format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body))}))
    }

    /// One call that must succeed; returns its result.
    pub async fn result(&self, url: &str, method: &str, params: Value) -> Value {
        let r = self.rpc(url, method, params.clone()).await;
        match r.get("error") {
            Some(e) => panic!("{method}({params}) failed: {e}"),
            None => r["result"].clone(),
        }
    }
}

/// Parses a `0x` quantity from a JSON value.
pub fn quantity(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a quantity: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not a quantity: {v}"))
}
