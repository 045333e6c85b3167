//! egress: what a network policy adds to a gVisor run's start (`echo hi` with no policy and
//! with one, side by side, one client back to back and four clients), to a one-shot
//! isolate's (a pooled process without; with, a process of the policy's pool, each made
//! ahead in a network of its own, or one started for a policy not seen before) and to
//! a python microVM's (restored from a snapshot without a NIC, and from one with a NIC on
//! the sandbox's tap: `microvm_n` of each, slow under TCG); what a fetch through the
//! sandbox's resolver and rules costs; and a thousand workloads with a policy at four
//! clients, and what they left on the host (nothing beyond the stock made ahead of time).
//! Against the tests' fake internet (network namespaces on this host, behind a guard).

use crate::common::Server;
use crate::internet::{FakeInternet, API, API_NAME};
use crate::measure;
use vulcan_gvisor::testing::Registry;

/// Vulcan's namespaces, host links and sandbox chains on the host now.
fn left_behind() -> usize {
    let count = |cmd: &[&str], keep: &dyn Fn(&str) -> bool| {
        let out = std::process::Command::new(cmd[0])
            .args(&cmd[1..])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| keep(l))
            .count()
    };
    count(&["ip", "netns", "list"], &|l| {
        l.starts_with("vulcan-egress-")
    }) + count(&["ip", "-o", "link", "show"], &|l| {
        l.split(':')
            .nth(1)
            .is_some_and(|n| n.trim().starts_with("vx"))
    }) + count(&["nft", "list", "table", "ip", "vulcan_egress"], &|l| {
        l.trim_start().starts_with("chain s")
    })
}

/// `what` without a policy and with one, back to back from one client after a few of each,
/// and the difference of their medians.
fn start_cost(what: &str, n: usize, without: impl Fn() + Sync, with: impl Fn() + Sync) {
    for _ in 0..3 {
        without();
        with();
    }
    let without = measure(&format!("egress: {what}, no policy"), n, 1, without);
    let with = measure(&format!("egress: {what}, with a policy"), n, 1, with);
    let (mut a, mut b) = (without.samples.clone(), with.samples.clone());
    a.sort();
    b.sort();
    let added = crate::percentile(&b, 0.5) - crate::percentile(&a, 0.5);
    without.print();
    with.print();
    println!(
        "{:<46} {added:+.2} ms at p50",
        format!("egress: start cost of a policy ({what})")
    );
}

/// gVisor runs started so far from a pod booted ahead, and in all.
fn gvisor_starts(server: &Server) -> (f64, f64) {
    let count = |path: &str| {
        crate::common::metric(
            server,
            &format!(
                "vulcan_workload_preparation_seconds_count{{backend=\"gvisor\",path=\"{path}\"}}"
            ),
        )
    };
    let pods = count("pool");
    (pods, pods + count("boot"))
}

pub fn run(n: usize, microvm_n: usize, thousand: usize) {
    let net = FakeInternet::start();
    let registry = Registry::start();
    let image = registry.push("busybox:egress", "busybox");
    let python = registry.push("py:egress", "python");
    let dns = net.dns.to_string();
    let mut owned = Server::start(&[
        ("VULCAN_INSECURE_REGISTRIES", registry.host.as_str()),
        ("VULCAN_EGRESS", "open"),
        ("VULCAN_EGRESS_DNS", dns.as_str()),
    ]);
    let policy = serde_json::json!({"egress": "allow", "allow": [format!("{API_NAME}:80")]});
    let server = &owned;
    let echo = |network: &serde_json::Value| {
        let body = serde_json::json!({"runtime": "oci", "image": image, "command": ["echo", "hi"], "network": network});
        move || {
            let w = server.run(body.clone());
            assert_eq!(w["output"], "hi", "{w}");
        }
    };
    let none = serde_json::json!({"egress": "none"});
    // A networked run takes a pod booted ahead when one is ready, and boots a sandbox of
    // its own when none is: how many did, back to back and at four clients.
    let pods = |label: &str, since: (f64, f64), with_policy: usize| {
        let now = gvisor_starts(server);
        println!(
            "{:<46} {} of {with_policy}",
            format!("egress: gvisor {label}, from a pod"),
            now.0 - since.0
        );
    };
    let since = gvisor_starts(server);
    start_cost("gvisor echo", n, echo(&none), echo(&policy));
    pods("back to back", since, n + 3);
    let per_client = n.div_ceil(4);
    measure(
        "egress: gvisor echo, no policy, 4 clients",
        per_client,
        4,
        echo(&none),
    )
    .print();
    let since = gvisor_starts(server);
    measure(
        "egress: gvisor echo, policy, 4 clients",
        per_client,
        4,
        echo(&policy),
    )
    .print();
    pods("4 clients", since, 4 * per_client);

    let one = |network: &serde_json::Value| {
        let body = serde_json::json!({"runtime": "node", "isolation": "isolate", "code": "export default () => 1", "network": network});
        move || {
            let w = server.run(body.clone());
            assert_eq!(w["output"], "1", "{w}");
        }
    };
    start_cost("isolate one-shot", n, one(&none), one(&policy));
    measure(
        "egress: isolate one-shot, no policy, 4 clients",
        per_client,
        4,
        one(&none),
    )
    .print();
    measure(
        "egress: isolate one-shot, policy, 4 clients",
        per_client,
        4,
        one(&policy),
    )
    .print();
    // A policy seen for the first time: no process was made ahead for it.
    let fresh = std::sync::atomic::AtomicUsize::new(0);
    let new_policy = || {
        let i = fresh.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let network =
            serde_json::json!({"egress": "allow", "allow": [format!("{API_NAME}:{}", 1000 + i)]});
        one(&network)();
    };
    start_cost(
        "isolate one-shot, a new policy each",
        n,
        one(&none),
        new_policy,
    );

    if microvm_n > 0 {
        let vm = |network: &serde_json::Value| {
            let body = serde_json::json!({"runtime": "python", "isolation": "microvm", "code": "print(1)", "network": network, "resources": {"timeout_s": 120}});
            move || {
                let w = server.run(body.clone());
                assert_eq!(w["output"], "1", "{w}");
            }
        };
        start_cost("microvm python one-shot", microvm_n, vm(&none), vm(&policy));
    }

    let fetch = serde_json::json!({
        "runtime": "oci", "image": python, "network": policy,
        "command": ["python3", "-c", format!("import urllib.request; print(urllib.request.urlopen('http://{API_NAME}/').read().decode().strip())")],
    });
    measure(
        "egress: python fetch by name (resolve + GET)",
        n.min(30),
        1,
        || {
            let w = server.run(fetch.clone());
            assert_eq!(w["output"], format!("hello from {API}"), "{w}");
        },
    )
    .print();

    let before = left_behind();
    measure(
        &format!("egress: {thousand} workloads with a policy, 4 clients"),
        thousand.div_ceil(4),
        4,
        echo(&policy),
    )
    .print();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // What is made ahead of time stays: per kind of link used, a namespace, its link and
    // its chain; and the isolates' processes and gVisor's pods made ahead, each in such a
    // network.
    let stock = 3
        * (2 * vulcan_sandbox::network::STOCK
            + vulcan_isolate::NETWORKED_STOCK
            + vulcan_gvisor::pods::STOCK);
    println!(
        "{:<46} {} (before: {before}; the stock made ahead of time: at most {stock})",
        "egress: namespaces, links, chains left after",
        left_behind()
    );
    // Stopped as an operator stops it: it removes what it made ahead.
    owned.stop(std::time::Duration::from_secs(30));
    println!(
        "{:<46} {}",
        "egress: namespaces, links, chains after stop",
        left_behind()
    );
}
