//! The server's side of workloads' networks: the host's rules at start, this node's
//! addresses for the others, and the others' kept out of every sandbox's reach.

use std::sync::Arc;
use std::time::Duration;

use vulcan_engine::EgressMode;
use vulcan_sandbox::network::{Egress, EgressConfig};

use crate::config::ServeArgs;

/// The host's side of workloads' networks, when `VULCAN_EGRESS` is not `off`.
pub(super) async fn egress(args: &ServeArgs) -> Result<Option<Arc<Egress>>, String> {
    if args.egress == EgressMode::Off {
        return Ok(None);
    }
    let bad_subnet = || {
        format!(
            "VULCAN_EGRESS_SUBNET={:?} is not an IPv4 network such as 10.213.0.0/16",
            args.egress_subnet
        )
    };
    let (net, prefix) = args.egress_subnet.split_once('/').ok_or_else(bad_subnet)?;
    let subnet: std::net::Ipv4Addr = net.parse().map_err(|_| bad_subnet())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad_subnet())?;
    let upstream = match args.egress_dns {
        Some(addr) => addr,
        None => system_resolver().ok_or(
            "no nameserver in /etc/resolv.conf for the sandboxes' resolvers to ask: set VULCAN_EGRESS_DNS",
        )?,
    };
    // The cluster's database is never a workload's destination.
    let never = args
        .database_url
        .as_deref()
        .map(database_addresses)
        .unwrap_or_default()
        .into_iter()
        .map(|ip| (ip, 32))
        .collect();
    let config = EgressConfig {
        subnet,
        prefix,
        upstream,
        never,
    };
    let egress = Egress::start(config)
        .await
        .map_err(|e| format!("VULCAN_EGRESS={:?}: {e}", args.egress))?;
    tracing::info!(subnet = %args.egress_subnet, %upstream, "egress on: workloads with a network policy get one");
    Ok(Some(egress))
}

/// This host's IPv4 addresses, as the kernel's local routing table lists them: not
/// loopback, and not in the subnet of the sandboxes' links.
pub(super) fn host_addresses(
    sandboxes: Option<(std::net::Ipv4Addr, u8)>,
) -> Vec<std::net::Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let mut found = local_addresses(&table);
    let links = sandboxes.map(|(addr, prefix)| vulcan_domain::NetRule::Net {
        addr,
        prefix,
        port: None,
    });
    found.retain(|ip| {
        !ip.is_loopback() && !links.as_ref().is_some_and(|l| l.covers_address(*ip, None))
    });
    found
}

/// The addresses `/proc/net/fib_trie` marks `/32 host LOCAL` (each under the `|-- a.b.c.d`
/// line before it), once each.
fn local_addresses(fib_trie: &str) -> Vec<std::net::Ipv4Addr> {
    let mut last = None;
    let mut found = Vec::new();
    for line in fib_trie.lines() {
        let line = line.trim_start_matches([' ', '|', '+']).trim();
        if let Some(addr) = line.strip_prefix("-- ") {
            last = addr.parse::<std::net::Ipv4Addr>().ok();
        } else if line == "/32 host LOCAL" {
            if let Some(ip) = last.filter(|ip| !found.contains(ip)) {
                found.push(ip);
            }
        }
    }
    found.sort();
    found
}

/// Keeps the cluster's other nodes' addresses (from their heartbeats) out of every
/// sandbox's reach, looked at every few seconds. A node that left cleanly is dropped; one
/// lost may come back, and stays.
pub(super) async fn keep_peers_unreachable(
    egress: Arc<Egress>,
    nodes: Arc<dyn vulcan_domain::NodeStore>,
    me: String,
) {
    let mut every = tokio::time::interval(Duration::from_secs(2));
    loop {
        every.tick().await;
        let Ok(all) = nodes.nodes().await else {
            continue;
        };
        let peers: Vec<std::net::Ipv4Addr> = all
            .into_iter()
            .filter(|n| n.id != me && n.left_at.is_none())
            .flat_map(|n| n.addresses)
            .collect();
        let egress = egress.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || egress.set_peers(peers)).await {
            tracing::warn!(error = %e, "the other nodes' addresses");
        }
    }
}

/// The IPv4 addresses of a PostgreSQL URL's host (`postgres://user@host:port/db`).
fn database_addresses(url: &str) -> Vec<std::net::Ipv4Addr> {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    (host, 5432)
        .to_socket_addrs()
        .map(|addrs| {
            addrs
                .filter_map(|a| match a.ip() {
                    std::net::IpAddr::V4(ip) => Some(ip),
                    std::net::IpAddr::V6(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first nameserver of /etc/resolv.conf.
fn system_resolver() -> Option<std::net::SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 53))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_the_host_local_entries_of_the_routing_table() {
        let table = "Main:
  +-- 0.0.0.0/0 3 0 4
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.213.74.88/30 2 0 1
        |-- 10.213.74.88
           /30 link UNICAST
        |-- 10.213.74.89
           /32 host LOCAL
        |-- 10.213.74.91
           /32 link BROADCAST
     |-- 192.0.2.2
        /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 4
     |-- 192.0.2.2
        /32 host LOCAL
";
        let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
        assert_eq!(
            local_addresses(table),
            [ip("10.213.74.89"), ip("127.0.0.1"), ip("192.0.2.2")]
        );
    }
}
