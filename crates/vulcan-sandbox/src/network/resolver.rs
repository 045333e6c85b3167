//! A sandbox's own resolver: it answers only the names the sandbox's policy allows, and
//! opens the answered addresses in the sandbox's sets before the answer goes back.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use vulcan_domain::NetworkPolicy;

use super::{dns, rules, run};

/// The smallest time an answered address stays allowed, so that a zero TTL still lets the
/// sandbox connect.
const MIN_ALLOW: Duration = Duration::from_secs(5);

/// A sandbox's resolver: forwards queries for names its policy allows to `upstream` and
/// allows the addresses of the answer (for their TTL) before passing it on; refuses every
/// other name. Only A queries are forwarded (the sandbox has no IPv6).
pub(super) async fn resolve(
    socket: UdpSocket,
    policy: Arc<NetworkPolicy>,
    upstream: SocketAddr,
    slot: u32,
) {
    let mut buf = vec![0u8; 1500];
    // What the sandbox's sets already hold, and until when: a flood of lookups of an allowed
    // name costs one `nft` run, not one each.
    let mut allowed: std::collections::HashMap<(Ipv4Addr, Option<u16>), std::time::Instant> =
        std::collections::HashMap::new();
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // Not expected of a bound UDP socket; do not spin if it keeps failing.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let query = &buf[..n];
        let Some(q) = dns::question(query) else {
            continue;
        };
        let ports = policy.name_ports(&q.name);
        let reply = if ports.is_empty() {
            dns::empty_answer(query, &q, 5)
        } else if q.qtype != dns::TYPE_A {
            dns::empty_answer(query, &q, 0)
        } else {
            match ask(query, upstream).await {
                Some(answer) => {
                    let records = dns::a_records(&answer, &q);
                    let now = std::time::Instant::now();
                    allowed.retain(|_, until| *until > now);
                    let mut elements =
                        rules::allowed_elements(&policy, &records, &ports, MIN_ALLOW);
                    // Refreshed once half its time is gone.
                    elements.retain(|e| !allowed.contains_key(&(e.ip, e.port)));
                    // An open policy's chain lets every public address through already.
                    if !elements.is_empty() && !policy.allow.is_empty() {
                        for e in &elements {
                            allowed.insert((e.ip, e.port), now + e.ttl / 2);
                        }
                        let script = rules::allow_resolved(slot, &elements);
                        let added = tokio::task::spawn_blocking(move || {
                            run("nft", &["-f", "-"], Some(&script))
                        })
                        .await;
                        if let Ok(Err(e)) = added {
                            tracing::warn!(slot, error = %e, "could not allow a resolved address");
                        }
                    }
                    answer
                }
                // SERVFAIL: the upstream did not answer.
                None => dns::empty_answer(query, &q, 2),
            }
        };
        let _ = socket.send_to(&reply, from).await;
    }
}

/// Sends `query` to `upstream` and waits up to 3 s for its answer.
async fn ask(query: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let socket = UdpSocket::bind(bind).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}
