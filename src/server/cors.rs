//! CORS for the JSON-RPC, WebSocket and REST paths: which browser origins may call, the
//! preflight answer, and the headers on every answer to an allowed origin (refusals
//! included, so a page can read a 401 or a 429). No origin listed: no CORS headers at all,
//! and a browser's cross-origin WebSocket (which browsers do not check) is refused.

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::config::CorsConfig;

/// Request headers a page may send.
const ALLOW_HEADERS: &str = "content-type, authorization, x-chain-id";
/// Methods a page may use.
const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// Response headers a page may read beyond the safelisted ones.
const EXPOSE_HEADERS: &str = "retry-after, www-authenticate";

/// The CORS policy, ready to answer.
#[derive(Debug, Clone)]
pub struct Cors {
    any: bool,
    origins: Vec<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

/// What a request's `Origin` is to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No `Origin` header: not a cross-origin browser call; nothing to add.
    NoOrigin,
    /// Allowed: answer with this `Access-Control-Allow-Origin`.
    Allowed(HeaderValue),
    /// A browser page from an origin not allowed.
    Refused,
}

impl Cors {
    /// The policy of `[cors]` (validated).
    pub fn new(cfg: &CorsConfig) -> Self {
        Self {
            any: cfg.allowed_origins.iter().any(|o| o == "*"),
            origins: cfg
                .allowed_origins
                .iter()
                .filter(|o| *o != "*")
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
            credentials: cfg.allow_credentials,
            max_age: HeaderValue::from(cfg.max_age_secs),
        }
    }

    /// Whether any origin is allowed (else nothing here runs on the request path).
    pub(super) fn enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// Whether answers depend on the origin (listed origins, not `*`): then every answer on a
    /// browser path says `Vary: origin`, also to requests without one.
    pub(super) fn varies(&self) -> bool {
        !self.any && !self.origins.is_empty()
    }

    /// Judges the request's `Origin`. One naming the host the request is sent to is not
    /// cross-origin (Python's `websocket-client`, for one, sends `Origin: http://{host}` with
    /// every WebSocket handshake): treated as no `Origin`.
    pub(super) fn verdict(&self, headers: &HeaderMap) -> Verdict {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Verdict::NoOrigin;
        };
        if same_origin(origin, headers.get(header::HOST)) {
            return Verdict::NoOrigin;
        }
        if self.any {
            return Verdict::Allowed(HeaderValue::from_static("*"));
        }
        // Origins compare case-sensitively after the browser serialised them (lower-case
        // scheme and host); `null` (sandboxed pages, file://) is never allowed.
        match self.origins.iter().find(|o| *o == origin) {
            Some(o) => Verdict::Allowed(o.clone()),
            None => Verdict::Refused,
        }
    }

    /// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`).
    pub(super) fn preflight<B: Default>(&self, verdict: &Verdict) -> Response<B> {
        let mut r = Response::new(B::default());
        let Verdict::Allowed(origin) = verdict else {
            // Without the headers the browser refuses the call that would follow.
            *r.status_mut() = StatusCode::FORBIDDEN;
            return r;
        };
        *r.status_mut() = StatusCode::NO_CONTENT;
        self.decorate(&mut r, origin);
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        r
    }

    /// The headers on an answer to an allowed origin.
    pub(super) fn decorate<B>(&self, r: &mut Response<B>, origin: &HeaderValue) {
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        if !self.any {
            // The answer depends on the origin: caches must key on it.
            h.append(header::VARY, HeaderValue::from_static("origin"));
        }
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

/// Whether `origin` (`scheme://host[:port]`) names `host` (the `Host` header).
fn same_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(HeaderValue::to_str)) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors::new(&CorsConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_credentials: credentials,
            max_age_secs: 60,
        })
    }

    fn with_origin(o: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        h
    }

    #[test]
    fn listed_origins_only_and_echoed() {
        let c = cors(&["https://app.example"], true);
        assert!(c.enabled());
        assert_eq!(c.verdict(&HeaderMap::new()), Verdict::NoOrigin);
        let v = c.verdict(&with_origin("https://app.example"));
        assert_eq!(v, Verdict::Allowed(HeaderValue::from_static("https://app.example")));
        assert_eq!(c.verdict(&with_origin("https://evil.example")), Verdict::Refused);
        assert_eq!(c.verdict(&with_origin("null")), Verdict::Refused);
        let r: Response<()> = c.preflight(&v);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::VARY], "origin");
        assert!(h[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .contains("x-chain-id"));
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "60");
        let refused: Response<()> = c.preflight(&Verdict::Refused);
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }

    #[test]
    fn an_origin_naming_the_host_itself_is_not_cross_origin() {
        let mut h = with_origin("http://127.0.0.1:8545");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8545"));
        // CORS off or on, listed or not: a client of the host itself.
        assert_eq!(cors(&[], false).verdict(&h), Verdict::NoOrigin);
        assert_eq!(cors(&["https://app.example"], false).verdict(&h), Verdict::NoOrigin);
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9999"));
        assert_eq!(cors(&[], false).verdict(&h), Verdict::Refused);
    }

    #[test]
    fn star_allows_any_without_credentials_or_vary() {
        let c = cors(&["*"], false);
        let v = c.verdict(&with_origin("http://localhost:3000"));
        assert_eq!(v, Verdict::Allowed(HeaderValue::from_static("*")));
        let r: Response<()> = c.preflight(&v);
        assert!(r.headers().get(header::VARY).is_none());
        assert!(r.headers().get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }

    #[test]
    fn none_listed_is_off() {
        assert!(!cors(&[], false).enabled());
    }
}
