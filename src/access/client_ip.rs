//! Client addresses: which IP a request comes from (the TCP peer, or what a trusted proxy says
//! in `X-Forwarded-For` / `Forwarded`), and CIDR lists (`trusted_proxies`, a key's `ip_allow`).
//! IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is turned into IPv4 everywhere, so `10.0.0.0/8` matches
//! a dual-stack socket's `::ffff:10.1.2.3`. Pure functions: no IO, no state.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net};

use super::Headers;

/// An IP with IPv4-mapped IPv6 turned into IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// A CIDR or a bare IP (a host route), normalised: an IPv4-mapped IPv6 network of prefix ≥ 96
/// becomes the IPv4 network it maps.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    let net = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => IpNet::from(s.parse::<IpAddr>().ok()?),
    };
    Some(canonical_net(net.trunc()))
}

fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.network().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(n);
            }
        }
    }
    net
}

/// Whether `ip` (canonical) is in one of `nets`.
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

/// The client IP: the peer; or, only when the peer is a trusted proxy, the right-most address
/// of the forwarding chain that is not itself a trusted proxy. Entries left of it were written
/// by the client and are never believed. `X-Forwarded-For` is read when present, else
/// `Forwarded` (`for=`): a proxy that writes `Forwarded` must drop a client's
/// `X-Forwarded-For`. An entry that cannot be parsed (`unknown`, an obfuscated name, garbage)
/// stops the walk at the last address that could be checked.
pub fn client_ip(trusted: &[IpNet], peer: SocketAddr, headers: &impl Headers) -> IpAddr {
    let mut ip = canonical(peer.ip());
    if !contains(trusted, ip) {
        return ip;
    }
    for hop in forwarded_chain(headers).into_iter().rev() {
        match hop {
            Some(h) if contains(trusted, h) => ip = h,
            Some(h) => return h,
            None => return ip,
        }
    }
    ip
}

/// The forwarding chain, left (client side) to right (nearest proxy); `None` for an entry that
/// is not an address.
fn forwarded_chain(headers: &impl Headers) -> Vec<Option<IpAddr>> {
    let xff: Vec<_> = headers.x_forwarded_for().collect();
    if !xff.is_empty() {
        let mut chain = Vec::new();
        for value in xff {
            match value {
                Some(v) => chain.extend(v.split(',').map(parse_hop)),
                None => chain.push(None),
            }
        }
        return chain;
    }
    let mut chain = Vec::new();
    for value in headers.forwarded() {
        let Some(v) = value else {
            chain.push(None);
            continue;
        };
        for element in v.split(',') {
            let hop = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v)
            });
            // An element without `for=` says nothing about the client: it cannot be checked.
            chain.push(hop.and_then(parse_hop));
        }
    }
    chain
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`, optionally quoted.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Some(rest) = s.strip_prefix('[') {
        let inner = &rest[..rest.find(']')?];
        return inner.parse::<Ipv6Addr>().ok().map(|ip| canonical(IpAddr::V6(ip)));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    s.parse::<SocketAddr>().ok().map(|a| canonical(a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| parse_net(s).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_v4_v6_and_mapped() {
        let allow = nets(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::ffff:172.16.0.0/108"]);
        let check = |addr: &str, expected: bool| {
            assert_eq!(contains(&allow, canonical(ip(addr))), expected, "{addr}");
        };
        check("10.1.2.3", true);
        check("::ffff:10.1.2.3", true);
        check("11.0.0.1", false);
        check("192.168.1.7", true);
        check("::ffff:192.168.1.7", true);
        check("192.168.1.8", false);
        check("2001:db8:1::5", true);
        check("2001:db9::1", false);
        check("172.16.9.9", true); // ::ffff:172.16.0.0/108 is 172.16.0.0/12
        check("172.32.0.1", false);
        assert_eq!(parse_net("::ffff:1.2.3.4"), parse_net("1.2.3.4/32"));
        assert_eq!(parse_net("10.1.2.3/8"), parse_net("10.0.0.0/8"));
        assert_eq!(parse_net("nope"), None);
        assert_eq!(parse_net("10.0.0.0/33"), None);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_headers_only_from_trusted_peers() {
        let trusted = nets(&["10.0.0.1", "10.0.0.2", "fd00::/8"]);
        let check = |peer: &str, pairs: &[(&str, &str)], expected: &str| {
            let peer: SocketAddr = peer.parse().unwrap();
            assert_eq!(
                client_ip(&trusted, peer, &headers(pairs)),
                ip(expected),
                "{peer} {pairs:?}"
            );
        };
        // An untrusted peer's headers are ignored: no spoofing from outside.
        check("203.0.113.9:5000", &[("x-forwarded-for", "1.1.1.1")], "203.0.113.9");
        check(
            "[::ffff:203.0.113.9]:5000",
            &[("forwarded", "for=1.1.1.1")],
            "203.0.113.9",
        );
        check("203.0.113.9:5000", &[], "203.0.113.9");
        // A trusted proxy: the right-most untrusted address.
        check("10.0.0.1:1", &[("x-forwarded-for", "198.51.100.7")], "198.51.100.7");
        check(
            "[::ffff:10.0.0.1]:1",
            &[("x-forwarded-for", "::ffff:198.51.100.7")],
            "198.51.100.7",
        );
        // The client prepended a fake address; the proxy appended the real one.
        check(
            "10.0.0.1:1",
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")],
            "198.51.100.7",
        );
        // Two trusted proxies in a row.
        check(
            "10.0.0.1:1",
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")],
            "198.51.100.7",
        );
        // Several header lines form one list.
        check(
            "10.0.0.1:1",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "198.51.100.7, 10.0.0.2"),
            ],
            "198.51.100.7",
        );
        // Ports and brackets.
        check(
            "10.0.0.1:1",
            &[("x-forwarded-for", "198.51.100.7:4711")],
            "198.51.100.7",
        );
        check(
            "[fd00::1]:1",
            &[("x-forwarded-for", "[2001:db8::7]:4711")],
            "2001:db8::7",
        );
        // Garbage stops the walk at the last checkable hop.
        check(
            "10.0.0.1:1",
            &[("x-forwarded-for", "198.51.100.7, unknown")],
            "10.0.0.1",
        );
        check(
            "10.0.0.1:1",
            &[("x-forwarded-for", "6.6.6.6, garbage, 10.0.0.2")],
            "10.0.0.2",
        );
        // Only trusted hops: the left-most of them.
        check("10.0.0.1:1", &[("x-forwarded-for", "10.0.0.2")], "10.0.0.2");
        check("10.0.0.1:1", &[], "10.0.0.1");
        // Forwarded (RFC 7239) when there is no X-Forwarded-For.
        check(
            "10.0.0.1:1",
            &[("forwarded", "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https")],
            "2001:db8::7",
        );
        check(
            "10.0.0.1:1",
            &[("forwarded", "For=198.51.100.7;by=10.0.0.1")],
            "198.51.100.7",
        );
        check("10.0.0.1:1", &[("forwarded", "for=_hidden")], "10.0.0.1");
        check("10.0.0.1:1", &[("forwarded", "proto=https")], "10.0.0.1");
        // X-Forwarded-For wins when both are present.
        check(
            "10.0.0.1:1",
            &[("forwarded", "for=6.6.6.6"), ("x-forwarded-for", "198.51.100.7")],
            "198.51.100.7",
        );
    }
}
