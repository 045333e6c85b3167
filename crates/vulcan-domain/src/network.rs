//! Network egress: what a workload may reach. Off unless asked for; when asked for, only
//! the names, addresses and ports its policy lists (and never what [`never_reachable`]
//! covers, unless an operator lists it for the tenant). Names are allowed by the addresses
//! the sandbox's own resolver answered for them, so a policy is enforced on addresses.
//!
//! IPv4 only: a sandbox gets no IPv6 address, so AAAA lookups answer nothing.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether a workload has a network at all.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    /// No network but loopback (the default).
    #[default]
    None,
    /// The destinations `allow` lists (every public one if it lists none), less `deny`.
    Allow,
}

/// A workload's network policy, as it asked for it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    #[serde(default)]
    pub egress: Egress,
    /// `host[:port]`, `*.domain[:port]`, `a.b.c.d[/prefix][:port]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub allow: Vec<NetRule>,
    /// Same forms as `allow`; a destination both allow and deny match is denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub deny: Vec<NetRule>,
}

impl NetworkPolicy {
    /// No network (the default, and what a workload that says nothing gets).
    pub fn is_none(&self) -> bool {
        self.egress == Egress::None
    }

    /// Checks the fields against each other; the error says what to change.
    pub fn check(&self) -> Result<(), String> {
        if self.egress == Egress::None && !(self.allow.is_empty() && self.deny.is_empty()) {
            return Err(
                "\"network.allow\" and \"network.deny\" need \"network.egress\": \"allow\"".into(),
            );
        }
        const MAX_RULES: usize = 256;
        if self.allow.len() + self.deny.len() > MAX_RULES {
            return Err(format!(
                "\"network\" lists more than {MAX_RULES} rules; use CIDRs or wildcards"
            ));
        }
        Ok(())
    }

    /// Which rule of `deny`, if any, covers `ip:port`.
    pub fn denies(&self, ip: Ipv4Addr, port: Option<u16>) -> Option<&NetRule> {
        self.deny.iter().find(|r| r.covers_address(ip, port))
    }

    /// The ports `host` may be reached on by name: empty if the policy does not allow the
    /// name (or a deny rule names it for every port), `[None]` for every port.
    pub fn name_ports(&self, host: &str) -> Vec<Option<u16>> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let denied = self
            .deny
            .iter()
            .any(|r| r.port().is_none() && r.covers_name(&host));
        if self.egress == Egress::None || denied {
            return Vec::new();
        }
        if self.allow.is_empty() {
            return vec![None];
        }
        let ports: Vec<Option<u16>> = self
            .allow
            .iter()
            .filter(|r| r.covers_name(&host))
            .map(NetRule::port)
            .collect();
        if ports.contains(&None) {
            vec![None]
        } else {
            ports
        }
    }
}

/// One destination of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetRule {
    /// `api.example.com[:443]`.
    Name { name: String, port: Option<u16> },
    /// `*.example.org[:443]`: every name under `example.org`, not `example.org` itself.
    Suffix { suffix: String, port: Option<u16> },
    /// `203.0.113.0/24[:443]`, `198.51.100.7[:5432]`.
    Net {
        addr: Ipv4Addr,
        prefix: u8,
        port: Option<u16>,
    },
}

impl NetRule {
    pub fn port(&self) -> Option<u16> {
        match self {
            NetRule::Name { port, .. }
            | NetRule::Suffix { port, .. }
            | NetRule::Net { port, .. } => *port,
        }
    }

    /// Whether this rule names `host` (lowercase, no trailing dot).
    pub fn covers_name(&self, host: &str) -> bool {
        match self {
            NetRule::Name { name, .. } => name == host,
            NetRule::Suffix { suffix, .. } => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            NetRule::Net { .. } => false,
        }
    }

    /// Whether this rule covers `ip` on `port` (`None`: every port).
    pub fn covers_address(&self, ip: Ipv4Addr, port: Option<u16>) -> bool {
        match self {
            NetRule::Net {
                addr,
                prefix,
                port: p,
            } => in_net(ip, *addr, *prefix) && (p.is_none() || *p == port),
            _ => false,
        }
    }

    /// Whether `other` asks for nothing this rule does not allow (an operator's allow-list
    /// entry covering a tenant's request).
    pub fn contains(&self, other: &NetRule) -> bool {
        let ports = self.port().is_none() || self.port() == other.port();
        ports
            && match (self, other) {
                (NetRule::Name { name: a, .. }, NetRule::Name { name: b, .. }) => a == b,
                (NetRule::Suffix { .. }, NetRule::Name { name, .. }) => self.covers_name(name),
                (NetRule::Suffix { suffix: a, .. }, NetRule::Suffix { suffix: b, .. }) => {
                    a == b || self.covers_name(b)
                }
                (
                    NetRule::Net {
                        addr: a, prefix: p, ..
                    },
                    NetRule::Net {
                        addr: b, prefix: q, ..
                    },
                ) => p <= q && in_net(*b, *a, *p),
                _ => false,
            }
    }

    /// The never-reachable range this rule's addresses fall in, if any.
    pub fn reaches_never(&self) -> Option<&'static str> {
        match self {
            NetRule::Net { addr, prefix, .. } => NEVER
                .iter()
                .find(|(net, p, _)| {
                    // Overlapping: either contains the other.
                    in_net(*addr, *net, *p) || (*prefix <= *p && in_net(*net, *addr, *prefix))
                })
                .map(|(_, _, what)| *what),
            _ => None,
        }
    }
}

fn in_net(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    u32::from(ip) & mask(prefix) == u32::from(net) & mask(prefix)
}

/// Ranges no workload reaches unless an operator lists them for its tenant: loopback,
/// private, CGNAT, link-local (the cloud metadata address among them), multicast and the
/// rest of what is not the public internet.
pub const NEVER: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\" (0.0.0.0/8)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private (10.0.0.0/8)"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "CGNAT (100.64.0.0/10)"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback (127.0.0.0/8)"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link-local (169.254.0.0/16, cloud metadata among it)",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private (172.16.0.0/12)"),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    (
        Ipv4Addr::new(192, 168, 0, 0),
        16,
        "private (192.168.0.0/16)",
    ),
    (
        Ipv4Addr::new(198, 18, 0, 0),
        15,
        "benchmarking (198.18.0.0/15)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast (224.0.0.0/4)"),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "reserved and broadcast (240.0.0.0/4)",
    ),
];

/// The never-reachable range `ip` is in, if any.
pub fn never_reachable(ip: Ipv4Addr) -> Option<&'static str> {
    NEVER
        .iter()
        .find(|(net, p, _)| in_net(ip, *net, *p))
        .map(|(_, _, what)| *what)
}

impl fmt::Display for NetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetRule::Name { name, .. } => write!(f, "{name}")?,
            NetRule::Suffix { suffix, .. } => write!(f, "*.{suffix}")?,
            NetRule::Net { addr, prefix, .. } if *prefix == 32 => write!(f, "{addr}")?,
            NetRule::Net { addr, prefix, .. } => write!(f, "{addr}/{prefix}")?,
        }
        match self.port() {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl FromStr for NetRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            Err(format!(
                "{s:?} is not a network rule ({why}): use host[:port], *.domain[:port] or a.b.c.d[/prefix][:port]"
            ))
        };
        let (target, port) = match s.rsplit_once(':') {
            Some((t, p)) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return bad("the port must be 1-65535"),
                Ok(port) => (t, Some(port)),
            },
            None => (s, None),
        };
        if target.is_empty() {
            return bad("no host");
        }
        if target.starts_with(|c: char| c.is_ascii_digit()) && !target.contains(char::is_alphabetic)
        {
            let (addr, prefix) = match target.split_once('/') {
                Some((a, p)) => match p.parse::<u8>() {
                    Ok(p) if p <= 32 => (a, p),
                    _ => return bad("the prefix must be 0-32"),
                },
                None => (target, 32),
            };
            let Ok(addr) = addr.parse::<Ipv4Addr>() else {
                return bad("not an IPv4 address");
            };
            if u32::from(addr) & !mask(prefix) != 0 {
                return bad("the address has bits set past its prefix");
            }
            return Ok(NetRule::Net { addr, prefix, port });
        }
        let lower = target.to_ascii_lowercase();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, lower),
        };
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.len() > 253 || !name.split('.').all(valid_label) {
            return bad("not a DNS name");
        }
        if !name.contains('.') && wild {
            return bad("a wildcard needs a domain with a dot, e.g. *.example.org");
        }
        Ok(if wild {
            NetRule::Suffix { suffix: name, port }
        } else {
            NetRule::Name { name, port }
        })
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl Serialize for NetRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NetRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> NetRule {
        s.parse().unwrap()
    }

    #[test]
    fn rules_parse_and_print_back() {
        for s in [
            "api.example.com:443",
            "*.example.org",
            "203.0.113.0/24",
            "198.51.100.7:5432",
            "example.com",
        ] {
            assert_eq!(rule(s).to_string(), s);
        }
        assert_eq!(rule("API.Example.COM").to_string(), "api.example.com");
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (s, why) in [
            ("x.com:0", "port"),
            ("x.com:http", "port"),
            ("1.2.3.4/33", "prefix"),
            ("1.2.3.4/24", "bits set"),
            ("300.1.1.1", "IPv4"),
            ("*.com", "wildcard"),
            ("a_b.com", "DNS name"),
            (":80", "no host"),
        ] {
            let err = s.parse::<NetRule>().unwrap_err();
            assert!(err.contains(why), "{s}: {err}");
        }
    }

    #[test]
    fn wildcards_cover_names_below_not_the_domain() {
        let r = rule("*.example.org");
        assert!(r.covers_name("a.example.org"));
        assert!(r.covers_name("b.a.example.org"));
        assert!(!r.covers_name("example.org"));
        assert!(!r.covers_name("badexample.org"));
    }

    #[test]
    fn operator_rules_contain_narrower_requests() {
        assert!(rule("*.example.org").contains(&rule("api.example.org:443")));
        assert!(rule("203.0.113.0/24").contains(&rule("203.0.113.7:80")));
        assert!(!rule("203.0.113.0/24:443").contains(&rule("203.0.113.7:80")));
        assert!(!rule("203.0.113.0/25").contains(&rule("203.0.113.0/24")));
        assert!(!rule("api.example.org").contains(&rule("*.example.org")));
    }

    #[test]
    fn private_and_link_local_ranges_are_never_reachable() {
        assert!(never_reachable("169.254.169.254".parse().unwrap()).is_some());
        assert!(never_reachable("127.0.0.1".parse().unwrap()).is_some());
        assert!(never_reachable("10.1.2.3".parse().unwrap()).is_some());
        assert!(never_reachable("203.0.113.7".parse().unwrap()).is_none());
        assert!(rule("0.0.0.0/0").reaches_never().is_some());
        assert!(rule("10.0.0.0/16").reaches_never().is_some());
        assert!(rule("203.0.113.0/24").reaches_never().is_none());
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = NetworkPolicy {
            egress: Egress::Allow,
            allow: vec![rule("*.example.org")],
            deny: vec![rule("secret.example.org"), rule("203.0.113.9")],
        };
        assert!(p.name_ports("secret.example.org").is_empty());
        assert_eq!(p.name_ports("api.example.org."), [None]);
        assert!(p.name_ports("example.org").is_empty());
        let open = NetworkPolicy {
            egress: Egress::Allow,
            ..NetworkPolicy::default()
        };
        assert_eq!(open.name_ports("anything.example"), [None]);
        assert!(NetworkPolicy::default().name_ports("x.example").is_empty());
        assert!(p.denies("203.0.113.9".parse().unwrap(), Some(80)).is_some());
        assert!(p.check().is_ok());
        let wrong = NetworkPolicy {
            allow: vec![rule("x.com")],
            ..NetworkPolicy::default()
        };
        assert!(wrong.check().unwrap_err().contains("egress"));
    }
}
