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

/// The other nodes' addresses (the set `peers`, after the never-reachable ranges in every
/// sandbox's chain) as they are now: one transaction, so no sandbox sees it half made.
pub fn peers(addresses: &[Ipv4Addr]) -> String {
    let mut s = format!("flush set ip {TABLE} peers\n");
    if !addresses.is_empty() {
        let list: Vec<String> = addresses.iter().map(Ipv4Addr::to_string).collect();
        let _ = writeln!(s, "add element ip {TABLE} peers {{ {} }}", list.join(", "));
    }
    s
}

/// The host's table: the never-reachable set, the map from a sandbox's interface to its
/// chain, the resolvers' addresses, the forward and input filters, the DNAT of the shared
/// resolver address to each sandbox's own, and the masquerade. And an IPv6 table of the
/// same name that drops every IPv6 packet from or to a sandbox's link: a link has IPv6
/// link-local addresses at both ends however it is made, and the host's services listening
/// on `::` would answer there. Idempotent: applied at every
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
add set ip {TABLE} peers {{ type ipv4_addr; }}
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
add table ip6 {TABLE}
add chain ip6 {TABLE} input {{ type filter hook input priority -10; policy accept; }}
flush chain ip6 {TABLE} input
add rule ip6 {TABLE} input iifname \"vx*\" counter drop
add chain ip6 {TABLE} forward {{ type filter hook forward priority -10; policy accept; }}
flush chain ip6 {TABLE} forward
add rule ip6 {TABLE} forward iifname \"vx*\" counter drop
add rule ip6 {TABLE} forward oifname \"vx*\" counter drop
"
    )
}

/// The `tc` batch that shapes device `dev` to `mbps` megabits a second (a token bucket
/// filter: packets over the rate wait, up to 50 ms of them, then drop).
pub fn shape(dev: &str, mbps: u32) -> String {
    let burst = (u64::from(mbps) * 1_000_000 / 8 / 100).max(16_000);
    format!("qdisc add dev {dev} root tbf rate {mbps}mbit burst {burst} latency 50ms\n")
}

/// Slot `slot`'s chain, its sets and its entries in the map and the resolvers: made with
/// the slot, before a policy is known. Every rule reads a set, so the chain is the same for
/// every policy and, with its sets empty, refuses everything; a policy is only elements
/// ([`policy_elements`]), the resolver's answers too ([`allow_resolved`]).
///
/// The order: deny rules (`dn`: networks, `dp`: networks on a port), then what an admin let
/// past the never-reachable ranges (`an`, `ap`), then those ranges, then allowed networks
/// (`wn`, `wp`; `egress: allow` with no list is `0.0.0.0/0` there), then the addresses the
/// resolver answered (`r`: on a port, `n`: on every port, each for its TTL).
pub fn slot(slot: u32, host: Ipv4Addr) -> String {
    let chain = format!("s{slot}");
    let mut s = String::new();
    let _ = writeln!(s, "add chain ip {TABLE} {chain}");
    for (set, kind) in [
        ("r", "type ipv4_addr . inet_service; flags timeout;"),
        ("n", "type ipv4_addr; flags timeout;"),
        ("dn", NETS),
        ("dp", NETS_ON_PORTS),
        ("an", NETS),
        ("ap", NETS_ON_PORTS),
        ("wn", NETS),
        ("wp", NETS_ON_PORTS),
    ] {
        let _ = writeln!(s, "add set ip {TABLE} {set}{slot} {{ {kind} }}");
    }
    let on_port = "meta l4proto { tcp, udp } ip daddr . th dport";
    for rule in [
        format!("ip daddr @dn{slot} {REJECT}"),
        format!("{on_port} @dp{slot} {REJECT}"),
        format!("ip daddr @an{slot} accept"),
        format!("{on_port} @ap{slot} accept"),
        format!("ip daddr @never counter {REJECT}"),
        format!("ip daddr @peers counter {REJECT}"),
        format!("ip daddr @wn{slot} accept"),
        format!("{on_port} @wp{slot} accept"),
        format!("{on_port} @r{slot} accept"),
        format!("ip daddr @n{slot} accept"),
        format!("counter {REJECT}"),
    ] {
        let _ = writeln!(s, "add rule ip {TABLE} {chain} {rule}");
    }
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

/// A set of networks (overlapping ones merged).
const NETS: &str = "type ipv4_addr; flags interval; auto-merge;";
/// A set of networks on a port (one inside another on the same port is refused: see
/// [`policy_elements`]).
const NETS_ON_PORTS: &str = "type ipv4_addr . inet_service; flags interval;";

/// The elements that give slot `slot` its policy's networks; `None` when it names none
/// (names only: the resolver adds what it answers), so nothing needs to run.
pub fn policy_elements(slot: u32, policy: &NetworkPolicy) -> Option<String> {
    // `egress: allow` with no list: every public address.
    let everything = NetRule::Net {
        addr: Ipv4Addr::UNSPECIFIED,
        prefix: 0,
        port: None,
    };
    let open = policy.allow.is_empty() && policy.egress == vulcan_domain::Egress::Allow;
    let nets = |rules: &[NetRule]| -> Vec<NetRule> {
        rules
            .iter()
            .filter(|r| matches!(r, NetRule::Net { .. }))
            .cloned()
            .collect()
    };
    // A never-reachable range the policy lists was allowed by an admin (admission checks
    // that): it goes before the rule that refuses the rest of them.
    let (admitted, allowed): (Vec<NetRule>, Vec<NetRule>) = nets(&policy.allow)
        .into_iter()
        .partition(|r| r.reaches_never().is_some());
    let allowed: Vec<NetRule> = allowed
        .into_iter()
        .chain(open.then_some(everything))
        .collect();
    let mut s = String::new();
    for (set, rules) in [("d", nets(&policy.deny)), ("a", admitted), ("w", allowed)] {
        for (port, suffix) in [(false, "n"), (true, "p")] {
            let elements: Vec<String> = outermost(&rules)
                .into_iter()
                .filter_map(|r| match *r {
                    NetRule::Net {
                        addr,
                        prefix,
                        port: p,
                    } if p.is_some() == port => Some(match p {
                        Some(p) => format!("{addr}/{prefix} . {p}"),
                        None => format!("{addr}/{prefix}"),
                    }),
                    _ => None,
                })
                .collect();
            if !elements.is_empty() {
                let _ = writeln!(
                    s,
                    "add element ip {TABLE} {set}{suffix}{slot} {{ {} }}",
                    elements.join(", ")
                );
            }
        }
    }
    (!s.is_empty()).then_some(s)
}

/// `rules` without those another one contains (on the same port, or on every port): an
/// interval set on ports refuses one inside another. Of equal ones, the first stays.
fn outermost(rules: &[NetRule]) -> Vec<&NetRule> {
    rules
        .iter()
        .enumerate()
        .filter(|&(i, rule)| {
            !rules
                .iter()
                .enumerate()
                .any(|(j, other)| j != i && other.contains(rule) && (other != rule || j < i))
        })
        .map(|(_, rule)| rule)
        .collect()
}

/// Removes what [`slot`] added. Each command is its own script line; `nft -f` stops at
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
delete set ip {TABLE} dn{slot}
delete set ip {TABLE} dp{slot}
delete set ip {TABLE} an{slot}
delete set ip {TABLE} ap{slot}
delete set ip {TABLE} wn{slot}
delete set ip {TABLE} wp{slot}
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
        assert!(t.contains("add rule ip6 vulcan_egress input iifname \"vx*\" counter drop"));
    }

    #[test]
    fn a_slot_chain_denies_first_then_never_then_allows_then_refuses() {
        let s = slot(7, Ipv4Addr::new(10, 213, 0, 29));
        let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle} in {s}"));
        assert!(at("@dn7 reject") < at("@an7 accept"));
        assert!(at("@ap7 accept") < at("ip daddr @never"));
        assert!(at("ip daddr @never") < at("ip daddr @peers"));
        assert!(at("ip daddr @peers") < at("@wn7 accept"));
        assert!(at("@wp7 accept") < at("@r7 accept"));
        assert!(at("@n7 accept") < at("s7 counter reject with icmp type admin-prohibited"));
        assert!(
            !s.contains("s7 accept"),
            "nothing is accepted without a set: {s}"
        );
        assert!(s.contains("\"vx7\" . 10.213.0.29"));
        // What is made is what is removed.
        let removed = remove_sandbox(7, Ipv4Addr::new(10, 213, 0, 29));
        for set in ["r7", "n7", "dn7", "dp7", "an7", "ap7", "wn7", "wp7"] {
            assert!(s.contains(&format!("set ip {TABLE} {set} ")), "{set}");
            assert!(
                removed.contains(&format!("delete set ip {TABLE} {set}\n")),
                "{set}"
            );
        }
    }

    #[test]
    fn a_policy_is_elements_of_the_slot_sets() {
        let p = policy(
            &["api.example.com:443", "203.0.113.0/24:80", "198.51.100.7"],
            &["203.0.113.9", "203.0.113.0/28:80"],
        );
        let s = policy_elements(3, &p).expect("networks to add");
        assert!(s.contains("dn3 { 203.0.113.9/32 }"), "{s}");
        assert!(s.contains("dp3 { 203.0.113.0/28 . 80 }"), "{s}");
        assert!(s.contains("wp3 { 203.0.113.0/24 . 80 }"), "{s}");
        assert!(s.contains("wn3 { 198.51.100.7/32 }"), "{s}");
        assert!(!s.contains("an3") && !s.contains("api.example.com"), "{s}");
        // Names only: nothing to add.
        assert_eq!(
            policy_elements(3, &policy(&["api.example.com:443"], &[])),
            None
        );
    }

    #[test]
    fn an_admin_listed_private_range_goes_before_the_never_rule() {
        let s = policy_elements(4, &policy(&["10.1.2.0/24:5432"], &[])).unwrap();
        assert_eq!(
            s,
            "add element ip vulcan_egress ap4 { 10.1.2.0/24 . 5432 }\n"
        );
    }

    #[test]
    fn an_open_policy_is_every_address_after_the_never_rule() {
        let s = policy_elements(1, &policy(&[], &[])).unwrap();
        assert_eq!(s, "add element ip vulcan_egress wn1 { 0.0.0.0/0 }\n");
    }

    #[test]
    fn networks_inside_others_on_their_port_are_left_out() {
        let rules: Vec<NetRule> = [
            "203.0.113.0/24:80",
            "203.0.113.7:80",
            "203.0.113.7:443",
            "198.51.100.0/24",
            "198.51.100.9:22",
            "198.51.100.0/24",
        ]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
        assert_eq!(outermost(&rules), vec![&rules[0], &rules[2], &rules[3]]);
    }

    /// The scripts as nftables reads them: the host's table, a slot, a policy's elements
    /// and a resolver's answer, checked by `nft -c` (nothing is applied). Needs `nft` and
    /// root, as egress does; elsewhere it says so and checks nothing.
    #[test]
    fn nftables_accepts_the_scripts() {
        let host_addr = Ipv4Addr::new(10, 213, 0, 29);
        let p = policy(
            &[
                "api.example.com:443",
                "203.0.113.0/24:80",
                "198.51.100.7",
                "10.1.0.0/16",
            ],
            &["203.0.113.9", "203.0.113.0/28:80"],
        );
        let elements = allowed_elements(
            &p,
            &[("203.0.113.10".parse().unwrap(), 30)],
            &[Some(443), None],
            Duration::from_secs(5),
        );
        let script = [
            host(
                Ipv4Addr::new(10, 213, 0, 0),
                16,
                Ipv4Addr::new(10, 213, 255, 254),
                &[],
            ),
            slot(7, host_addr),
            peers(&[
                "198.51.100.77".parse().unwrap(),
                "192.0.2.9".parse().unwrap(),
            ]),
            peers(&[]),
            policy_elements(7, &p).unwrap(),
            allow_resolved(7, &elements),
        ]
        .concat();
        match super::super::run("nft", &["-c", "-f", "-"], Some(&script)) {
            Ok(()) => {}
            Err(e) if e.starts_with("cannot run nft") => {
                eprintln!("nft is not installed: the scripts are not checked ({e})");
            }
            Err(e) if e.contains("Operation not permitted") => {
                eprintln!("not root: the scripts are not checked");
            }
            Err(e) => panic!("{e}\n{script}"),
        }
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
