//! egress: what a network policy adds to a gVisor run's start (`echo hi` with no policy and
//! with one, side by side, one client back to back and four clients; a networked run takes a
//! pod booted ahead when one is ready), to a one-shot
//! isolate's (a pooled process without; with, a process of the policy's pool, each made
//! ahead in a network of its own, or one started for a policy not seen before) and to
//! a python microVM's (the warm pool's VM, and one made ahead with a NIC; restored from a
//! snapshot when none is ready: `microvm_n` of each, slow under TCG); what a fetch through the
//! sandbox's resolver and rules costs; and a thousand workloads with a policy at four
//! clients, and what they left on the host (nothing beyond the stock made ahead of time).
//! Against the tests' fake internet (network namespaces on this host, behind a guard).

use std::collections::BTreeMap;

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

/// How `backend`'s runs so far were prepared (`pool`, `boot`, `restore`, `warm`): counts
/// from `/metrics`.
fn preparations(server: &Server, backend: &str) -> BTreeMap<String, f64> {
    let prefix =
        format!("vulcan_workload_preparation_seconds_count{{backend=\"{backend}\",path=\"");
    crate::common::metrics(server)
        .lines()
        .filter_map(|l| {
            let (path, count) = l.strip_prefix(&prefix)?.split_once("\"} ")?;
            Some((path.to_owned(), count.trim().parse().ok()?))
        })
        .collect()
}

/// What was prepared how between `before` and `after`, e.g. `pool 24, boot 9`.
fn prepared_since(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    after
        .iter()
        .map(|(path, n)| (path, n - before.get(path).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .map(|(path, n)| format!("{path} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `what` without a policy and with one, back to back from one client after a few of each,
/// and the difference of their medians; with how each side's runs were prepared
/// (`backend`'s counts: a pool made ahead, a boot or a restore).
fn start_cost(
    server: &Server,
    backend: &str,
    what: &str,
    n: usize,
    without: impl Fn() + Sync,
    with: impl Fn() + Sync,
) {
    for _ in 0..3 {
        without();
        with();
    }
    let t0 = preparations(server, backend);
    let without = measure(&format!("egress: {what}, no policy"), n, 1, without);
    let t1 = preparations(server, backend);
    let with = measure(&format!("egress: {what}, with a policy"), n, 1, with);
    let t2 = preparations(server, backend);
    let (mut a, mut b) = (without.samples.clone(), with.samples.clone());
    a.sort();
    b.sort();
    let added = crate::percentile(&b, 0.5) - crate::percentile(&a, 0.5);
    without.print();
    println!("{:<46} {}", "  prepared", prepared_since(&t0, &t1));
    with.print();
    println!("{:<46} {}", "  prepared", prepared_since(&t1, &t2));
    println!(
        "{:<46} {added:+.2} ms at p50",
        format!("egress: start cost of a policy ({what})")
    );
}

/// Waits (up to two minutes) until the microVM warm pool is full: the server's start-up
/// work (snapshots made, VMs restored) is not what a start costs.
fn settle(server: &Server) {
    let full = || {
        let (_, backends) = server.get("/v1/backends");
        let microvm = backends
            .as_array()?
            .iter()
            .find(|b| b["name"] == "microvm")?;
        let pool = microvm["details"]["warm_pool"].as_object()?;
        Some(pool.values().all(|p| p["idle"] == p["size"]))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while full() == Some(false) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
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
        // The default warm pools, as a server runs them (the tests' servers keep none).
        ("VULCAN_MICROVM_POOL", "python=1,node=1,go=1"),
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
    settle(server);
    // A networked run takes a pod booted ahead when one is ready, and boots a sandbox of
    // its own when none is: how many did, back to back and at four clients.
    start_cost(
        server,
        "gvisor",
        "gvisor echo",
        n,
        echo(&none),
        echo(&policy),
    );
    let per_client = n.div_ceil(4);
    for (label, network) in [("no policy", &none), ("policy", &policy)] {
        let before = preparations(server, "gvisor");
        measure(
            &format!("egress: gvisor echo, {label}, 4 clients"),
            per_client,
            4,
            echo(network),
        )
        .print();
        let after = preparations(server, "gvisor");
        println!("{:<46} {}", "  prepared", prepared_since(&before, &after));
    }

    let one = |network: &serde_json::Value| {
        let body = serde_json::json!({"runtime": "node", "isolation": "isolate", "code": "export default () => 1", "network": network});
        move || {
            let w = server.run(body.clone());
            assert_eq!(w["output"], "1", "{w}");
        }
    };
    // A one-shot isolate takes milliseconds and the target is 2 ms: five times the samples,
    // so that the medians are steadier than the difference asked of them.
    start_cost(
        server,
        "isolate",
        "isolate one-shot",
        5 * n,
        one(&none),
        one(&policy),
    );
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
        server,
        "isolate",
        "isolate one-shot, a new policy each",
        n,
        one(&none),
        new_policy,
    );

    if microvm_n > 0 {
        // Under TCG a run's end-to-end time varies by a few hundred ms (the guest's python
        // is emulated), so each side's time to the code's start (`prepare_ms`, from its claim
        // to the hand-over of the job to a VM that is ready) is shown too.
        let prepared: [std::sync::Mutex<Vec<f64>>; 2] = Default::default();
        let vm = |network: &serde_json::Value, side: usize| {
            let body = serde_json::json!({"runtime": "python", "isolation": "microvm", "code": "print(1)", "network": network, "resources": {"timeout_s": 120}});
            let prepared = &prepared;
            move || {
                let w = server.run(body.clone());
                assert_eq!(w["output"], "1", "{w}");
                let ms = w["prepare_ms"].as_f64().unwrap_or(0.0);
                prepared[side].lock().unwrap().push(ms);
            }
        };
        start_cost(
            server,
            "microvm",
            "microvm python one-shot",
            microvm_n,
            vm(&none, 0),
            vm(&policy, 1),
        );
        let p50 = |side: usize| {
            // The first three of each side warmed up.
            let mut ms: Vec<std::time::Duration> = prepared[side].lock().unwrap()[3..]
                .iter()
                .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
                .collect();
            ms.sort();
            crate::percentile(&ms, 0.5)
        };
        let (without, with) = (p50(0), p50(1));
        println!(
            "{:<46} {without:.0} ms without, {with:.0} ms with a policy: {:+.0} ms at p50",
            "egress: microvm time to the code's start",
            with - without
        );
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
