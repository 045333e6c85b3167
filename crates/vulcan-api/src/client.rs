//! Who the client is, by address: the peer of the connection, or behind a reverse proxy
//! the operator trusts (`VULCAN_TRUSTED_PROXIES`), the address that proxy says it
//! forwarded for (`X-Forwarded-For`). Failed logins are counted per client, so that one
//! client's bad keys behind a shared proxy do not count against the others.
//!
//! With authentication off (allowed on a loopback address only), anything that can send a
//! request to the loopback address is trusted — and a web page can, through a DNS name
//! of its own that resolves to 127.0.0.1 (DNS rebinding) or a cross-site form. So then
//! [`check_local`] serves only requests that name a loopback host, come from no other
//! web origin, and carry JSON (which a cross-site page cannot send without asking first).

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address range: an address and how many of its leading bits are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.bits.into())
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.bits.into())
            }
            _ => false,
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: usize) -> bool {
    let whole = bits / 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("{s:?} is not an IP address or a range like 10.0.0.0/8 or fd00::/8");
        let (addr, bits) = match s.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (s, None),
        };
        let addr = canonical(IpAddr::from_str(addr.trim()).map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, bits })
    }
}

/// Whether `host` (a `Host` header: name or address, maybe with a port) is loopback.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || IpAddr::from_str(name).is_ok_and(|ip| canonical(ip).is_loopback())
}

/// With authentication off: a request must name a loopback host, come from no other web
/// origin, and send its body as JSON (routes under `/fn/`, functions' HTTP triggers, take
/// any body, and so does a sandbox's file upload: a `PUT`, which no page can send to
/// another site without a preflight this server never approves). The error says what was
/// refused and why.
pub fn check_local(headers: &HeaderMap, has_body: bool, route: &str) -> Result<(), String> {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !loopback_host(host) {
        return Err(format!(
            "with VULCAN_AUTH=off only requests to a loopback host (localhost, 127.0.0.1, [::1]) are served, and this one is for {host:?}: a web page could reach this server through a DNS name of its own"
        ));
    }
    if let Some(origin) = headers.get("origin").and_then(|o| o.to_str().ok()) {
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Err(format!(
                "with VULCAN_AUTH=off requests from another web origin ({origin}) are refused: a web page must not drive this server"
            ));
        }
    }
    let json = headers
        .get("content-type")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| {
            let c = c.trim().to_ascii_lowercase();
            c == "application/json" || c.ends_with("+json")
        });
    let any_body = route.starts_with("/fn/") || route == "/v1/sandboxes/{id}/files";
    if has_body && !json && !any_body {
        return Err(
            "with VULCAN_AUTH=off a request body must be sent as Content-Type: application/json (a web page cannot send that to another site without asking)".into(),
        );
    }
    Ok(())
}

/// The proxies whose `X-Forwarded-For` is believed; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// From `VULCAN_TRUSTED_PROXIES`: comma-separated addresses and ranges.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
            .map_err(|e| format!("VULCAN_TRUSTED_PROXIES: {e}"))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the
    /// last address in `X-Forwarded-For` that is not itself a trusted proxy (each proxy
    /// appends the address it heard from, so what comes before the last untrusted one
    /// could be made up by the client).
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| IpAddr::from_str(a.trim()).ok().map(canonical))
            .collect();
        Some(
            forwarded
                .iter()
                .rev()
                .find(|ip| !self.trusts(**ip))
                .or(forwarded.first())
                .copied()
                .unwrap_or(peer),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_hold_their_addresses_and_no_others() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4 written as IPv6");
        let odd: Cidr = "192.168.0.128/25".parse().unwrap();
        assert!(odd.contains(ip("192.168.0.200")));
        assert!(!odd.contains(ip("192.168.0.100")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        for bad in ["", "10.0.0.0/33", "example.com", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn without_auth_only_local_json_requests_from_no_other_origin_are_served() {
        for host in [
            "localhost:8080",
            "127.0.0.1:8080",
            "127.0.0.9",
            "[::1]:80",
            "LOCALHOST",
        ] {
            assert!(
                check_local(&headers(&[("host", host)]), false, "/v1/x").is_ok(),
                "{host}"
            );
        }
        for host in [
            "evil.example:8080",
            "10.0.0.1",
            "",
            "127.0.0.1.evil.example",
        ] {
            let refused = check_local(&headers(&[("host", host)]), false, "/v1/x").unwrap_err();
            assert!(refused.contains("loopback host"), "{host}: {refused}");
        }
        let cross = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ]);
        assert!(check_local(&cross, false, "/v1/x")
            .unwrap_err()
            .contains("another web origin"));
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(check_local(&same, false, "/v1/x").is_ok());
        let form = headers(&[
            ("host", "127.0.0.1:8080"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        assert!(check_local(&form, true, "/v1/workloads")
            .unwrap_err()
            .contains("application/json"));
        assert!(
            check_local(&form, true, "/fn/default/f").is_ok(),
            "triggers take any body"
        );
        let json = headers(&[
            ("host", "127.0.0.1:8080"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        assert!(check_local(&json, true, "/v1/workloads").is_ok());
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.0.0.2".parse().unwrap(),
        );
        // Behind two trusted hops, the client is the last untrusted address.
        assert_eq!(
            proxies.client(Some(ip("127.0.0.1")), &h),
            Some(ip("203.0.113.9"))
        );
        // A peer that is not a proxy is the client, whatever it claims.
        assert_eq!(
            proxies.client(Some(ip("198.51.100.1")), &h),
            Some(ip("198.51.100.1"))
        );
        // No proxies trusted: the header is ignored.
        assert_eq!(
            TrustedProxies::default().client(Some(ip("127.0.0.1")), &h),
            Some(ip("127.0.0.1"))
        );
        // A trusted peer without the header is the client.
        assert_eq!(
            proxies.client(Some(ip("127.0.0.1")), &HeaderMap::new()),
            Some(ip("127.0.0.1"))
        );
    }
}
