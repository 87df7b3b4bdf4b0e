//! How a node URL is shown (in `/status`, logs, errors and tx records): credentials a hosted
//! node provider puts in it — userinfo, query values, a fragment and, when the node's config
//! says so, the path — replaced by `***`. Metrics never carry URLs: they use node names.

/// `raw` with its secrets hidden; `hide_path` hides a non-empty path as well.
pub fn shown(raw: &str, hide_path: bool) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return "***".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut out = format!("{scheme}://");
    if let Some((_, host)) = authority.rsplit_once('@') {
        out.push_str("***@");
        out.push_str(host);
    } else {
        out.push_str(authority);
    }
    let (tail, fragment) = match tail.split_once('#') {
        Some((t, _)) => (t, true),
        None => (tail, false),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    if hide_path && !path.is_empty() && path != "/" {
        out.push_str("/***");
    } else {
        out.push_str(path);
    }
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) => format!("{k}=***"),
                None if kv.is_empty() => String::new(),
                None => "***".to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if fragment {
        out.push_str("#***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn credentials_never_show() {
        let cases = [
            ("http://127.0.0.1:8551/", false, "http://127.0.0.1:8551/"),
            ("http://127.0.0.1:8551", false, "http://127.0.0.1:8551"),
            (
                "https://user:pa%40ss@node.example:443/rpc",
                false,
                "https://***@node.example:443/rpc",
            ),
            (
                "https://node.example/v1?apikey=s3cret&net=1",
                false,
                "https://node.example/v1?apikey=***&net=***",
            ),
            ("https://node.example/?s3cret", false, "https://node.example/?***"),
            ("https://node.example/v2/s3cret", true, "https://node.example/***"),
            ("https://node.example/", true, "https://node.example/"),
            (
                "wss://a:b@node.example/ws/s3cret?k=v#frag",
                true,
                "wss://***@node.example/***?k=***#***",
            ),
            ("not a url s3cret", false, "***"),
        ];
        for (raw, hide, want) in cases {
            assert_eq!(shown(raw, hide), want, "{raw}");
            assert!(!shown(raw, hide).contains("s3cret"));
        }
    }
}
