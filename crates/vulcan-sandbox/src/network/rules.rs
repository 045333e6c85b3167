//! The nftables scripts: the host's table (once), each sandbox's chain and sets, and the
//! addresses its resolver allows. Text only; [`super`] hands them to `nft -f -`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use vulcan_domain::{never_reachable, NetRule, NetworkPolicy, NEVER};

/// The table every sandbox's rules live in.
pub const TABLE: &str = "vulcan_egress";

/// What a refused packet gets: an ICMP "administratively prohibited", so the code's
/// connection fails at once instead of hanging until its own timeout; it reaches nothing.
const REJECT: &str = "reject with icmp type admin-prohibited";

/// The host's table: the never-reachable set, the map from a sandbox's interface to its
/// chain, the resolvers' addresses, the forward and input filters, the DNAT of the shared
/// resolver address to each sandbox's own, and the masquerade. Idempotent: applied at every
/// start, it brings the base chains up to date and leaves running sandboxes' entries alone.
pub fn host(
    subnet: Ipv4Addr,
    prefix: u8,
    resolver: Ipv4Addr,
    extra_never: &[(Ipv4Addr, u8)],
) -> String {
    let never: Vec<String> = NEVER
        .iter()
        .map(|(net, p, _)| (*net, *p))
        .chain(extra_never.iter().copied())
        .map(|(net, p)| format!("{net}/{p}"))
        .collect();
    let never = never.join(", ");
    format!(
        "add table ip {TABLE}
add set ip {TABLE} never {{ type ipv4_addr; flags interval; auto-merge; }}
flush set ip {TABLE} never
add element ip {TABLE} never {{ {never} }}
add map ip {TABLE} sandboxes {{ type ifname : verdict; }}
add set ip {TABLE} resolvers {{ type ifname . ipv4_addr; }}
add map ip {TABLE} resolver_of {{ type ifname : ipv4_addr; }}
add chain ip {TABLE} forward {{ type filter hook forward priority -10; policy accept; }}
flush chain ip {TABLE} forward
add rule ip {TABLE} forward iifname vmap @sandboxes
add rule ip {TABLE} forward iifname \"vx*\" counter {REJECT}
add rule ip {TABLE} forward oifname \"vx*\" ct state established,related accept
add rule ip {TABLE} forward oifname \"vx*\" counter drop
add chain ip {TABLE} input {{ type filter hook input priority -10; policy accept; }}
flush chain ip {TABLE} input
add rule ip {TABLE} input iifname \"vx*\" iifname . ip daddr @resolvers udp dport 53 accept
add rule ip {TABLE} input iifname \"vx*\" counter {REJECT}
add chain ip {TABLE} prerouting {{ type nat hook prerouting priority -100; policy accept; }}
flush chain ip {TABLE} prerouting
add rule ip {TABLE} prerouting iifname \"vx*\" ip daddr {resolver} udp dport 53 dnat to iifname map @resolver_of
add chain ip {TABLE} postrouting {{ type nat hook postrouting priority 100; policy accept; }}
flush chain ip {TABLE} postrouting
add rule ip {TABLE} postrouting ip saddr {subnet}/{prefix} oifname != \"vx*\" masquerade
"
    )
}

/// The match of a rule's port, if it has one (TCP and UDP alike).
fn port_match(port: Option<u16>) -> String {
    port.map(|p| format!(" meta l4proto {{ tcp, udp }} th dport {p}"))
        .unwrap_or_default()
}

/// The `tc` batch that shapes device `dev` to `mbps` megabits a second (a token bucket
/// filter: packets over the rate wait, up to 50 ms of them, then drop).
pub fn shape(dev: &str, mbps: u32) -> String {
    let burst = (u64::from(mbps) * 1_000_000 / 8 / 100).max(16_000);
    format!("qdisc add dev {dev} root tbf rate {mbps}mbit burst {burst} latency 50ms\n")
}

/// Sandbox `slot`'s chain and sets, and its entries in the map and the resolvers.
pub fn sandbox(slot: u32, host: Ipv4Addr, policy: &NetworkPolicy) -> String {
    let chain = format!("s{slot}");
    let mut s = String::new();
    let _ = writeln!(s, "add chain ip {TABLE} {chain}");
    let _ = writeln!(
        s,
        "add set ip {TABLE} r{slot} {{ type ipv4_addr . inet_service; flags timeout; }}"
    );
    let _ = writeln!(
        s,
        "add set ip {TABLE} n{slot} {{ type ipv4_addr; flags timeout; }}"
    );
    let rule = |s: &mut String, text: String| {
        let _ = writeln!(s, "add rule ip {TABLE} {chain} {text}");
    };
    for deny in &policy.deny {
        if let NetRule::Net { addr, prefix, port } = deny {
            rule(
                &mut s,
                format!("ip daddr {addr}/{prefix}{} {REJECT}", port_match(*port)),
            );
        }
    }
    // A never-reachable range the policy lists was allowed by an admin (admission checks
    // that); it goes before the set that drops the rest of them.
    let nets = policy.allow.iter().filter_map(|r| match r {
        NetRule::Net { addr, prefix, port } => Some((r, *addr, *prefix, *port)),
        _ => None,
    });
    for (_, addr, prefix, port) in nets.clone().filter(|(r, ..)| r.reaches_never().is_some()) {
        rule(
            &mut s,
            format!("ip daddr {addr}/{prefix}{} accept", port_match(port)),
        );
    }
    rule(&mut s, format!("ip daddr @never counter {REJECT}"));
    for (_, addr, prefix, port) in nets.filter(|(r, ..)| r.reaches_never().is_none()) {
        rule(
            &mut s,
            format!("ip daddr {addr}/{prefix}{} accept", port_match(port)),
        );
    }
    rule(
        &mut s,
        format!("meta l4proto {{ tcp, udp }} ip daddr . th dport @r{slot} accept"),
    );
    rule(&mut s, format!("ip daddr @n{slot} accept"));
    if policy.allow.is_empty() {
        // `egress: allow` with no list: every public address.
        rule(&mut s, "accept".into());
    }
    rule(&mut s, format!("counter {REJECT}"));
    let _ = writeln!(
        s,
        "add element ip {TABLE} sandboxes {{ \"vx{slot}\" : jump {chain} }}"
    );

    let _ = writeln!(
        s,
        "add element ip {TABLE} resolvers {{ \"vx{slot}\" . {host} }}"
    );
    let _ = writeln!(
        s,
        "add element ip {TABLE} resolver_of {{ \"vx{slot}\" : {host} }}"
    );
    s
}

/// Removes what [`sandbox`] added. Each command is its own script line; `nft -f` stops at
/// the first failure, so the map entries (which reference the chain) go first.
pub fn remove_sandbox(slot: u32, host: Ipv4Addr) -> String {
    format!(
        "delete element ip {TABLE} sandboxes {{ \"vx{slot}\" }}
delete element ip {TABLE} resolvers {{ \"vx{slot}\" . {host} }}
delete element ip {TABLE} resolver_of {{ \"vx{slot}\" }}
flush chain ip {TABLE} s{slot}
delete chain ip {TABLE} s{slot}

delete set ip {TABLE} r{slot}
delete set ip {TABLE} n{slot}
"
    )
}

/// An address the resolver answered, to allow on `port` (every port: `None`) for `ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub ip: Ipv4Addr,
    pub port: Option<u16>,
    pub ttl: Duration,
}

/// The addresses of an answer to allow: each on the ports of the rules that named it,
/// never one in a never-reachable range and never what a deny rule covers.
pub fn allowed_elements(
    policy: &NetworkPolicy,
    records: &[(Ipv4Addr, u32)],
    ports: &[Option<u16>],
    min: Duration,
) -> Vec<Resolved> {
    let mut out = Vec::new();
    for (ip, ttl) in records {
        if never_reachable(*ip).is_some() {
            continue;
        }
        let ttl = Duration::from_secs(u64::from(*ttl)).max(min);
        for port in ports.iter().copied() {
            if policy.denies(*ip, port).is_none() {
                out.push(Resolved { ip: *ip, port, ttl });
            }
        }
    }
    out
}

/// Adds `elements` to sandbox `slot`'s sets, each with a fresh timeout: an element already
/// there is made sure of, removed and added again in the same transaction (adding one that
/// exists would keep its old timeout).
pub fn allow_resolved(slot: u32, elements: &[Resolved]) -> String {
    let mut s = String::new();
    for e in elements {
        let secs = e.ttl.as_secs();
        let (set, key) = match e.port {
            Some(port) => (format!("r{slot}"), format!("{} . {port}", e.ip)),
            None => (format!("n{slot}"), e.ip.to_string()),
        };
        let _ = writeln!(
            s,
            "add element ip {TABLE} {set} {{ {key} timeout {secs}s }}"
        );
        let _ = writeln!(s, "delete element ip {TABLE} {set} {{ {key} }}");
        let _ = writeln!(
            s,
            "add element ip {TABLE} {set} {{ {key} timeout {secs}s }}"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use vulcan_domain::Egress;

    fn policy(allow: &[&str], deny: &[&str]) -> NetworkPolicy {
        NetworkPolicy {
            egress: Egress::Allow,
            allow: allow.iter().map(|r| r.parse().unwrap()).collect(),
            deny: deny.iter().map(|r| r.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn the_host_table_drops_link_local_as_a_whole() {
        let t = host(
            Ipv4Addr::new(10, 213, 0, 0),
            16,
            Ipv4Addr::new(10, 213, 255, 254),
            &[],
        );
        assert!(t.contains("169.254.0.0/16"));
        assert!(t.contains("ip saddr 10.213.0.0/16 oifname != \"vx*\" masquerade"));
        assert!(t.contains("ip daddr 10.213.255.254 udp dport 53 dnat to iifname map @resolver_of"));
    }

    #[test]
    fn a_sandbox_chain_denies_first_then_never_then_allows_then_drops() {
        let p = policy(
            &["api.example.com:443", "203.0.113.0/24:80"],
            &["203.0.113.9"],
        );
        let s = sandbox(7, Ipv4Addr::new(10, 213, 0, 29), &p);
        let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle} in {s}"));
        assert!(at("ip daddr 203.0.113.9/32 reject") < at("@never"));
        assert!(
            at("@never")
                < at("ip daddr 203.0.113.0/24 meta l4proto { tcp, udp } th dport 80 accept")
        );
        assert!(
            at("@r7 accept") < at("counter reject with icmp type admin-prohibited\nadd element")
        );
        assert!(!s.contains("s7 accept"), "a listed policy is not open: {s}");
        assert!(s.contains("\"vx7\" . 10.213.0.29"));
    }

    #[test]
    fn an_open_policy_accepts_what_is_not_never_reachable() {
        let s = sandbox(1, Ipv4Addr::new(10, 213, 0, 5), &policy(&[], &[]));
        assert!(s.find("@never").unwrap() < s.find("s1 accept").unwrap());
    }

    #[test]
    fn a_cap_is_a_token_bucket_of_its_rate() {
        assert_eq!(
            shape("vx2", 8),
            "qdisc add dev vx2 root tbf rate 8mbit burst 16000 latency 50ms\n"
        );
        assert!(shape("eth0", 1000).contains("burst 1250000"));
    }

    #[test]
    fn resolved_addresses_skip_private_and_denied_ones() {
        let p = policy(&["*.example.com:443"], &["203.0.113.9"]);
        let records = [
            ("203.0.113.10".parse().unwrap(), 0),
            ("203.0.113.9".parse().unwrap(), 60),
            ("169.254.169.254".parse().unwrap(), 60),
            ("127.0.0.1".parse().unwrap(), 60),
        ];
        let got = allowed_elements(&p, &records, &[Some(443)], Duration::from_secs(5));
        assert_eq!(
            got,
            vec![Resolved {
                ip: "203.0.113.10".parse().unwrap(),
                port: Some(443),
                ttl: Duration::from_secs(5)
            }]
        );
        assert!(allow_resolved(3, &got)
            .contains("add element ip vulcan_egress r3 { 203.0.113.10 . 443 timeout 5s }"));
    }
}
