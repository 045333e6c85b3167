//! Network egress on the microvm tier, end to end, against the fake internet
//! ([`internet`]): real QEMU microVMs, each booted with a NIC on a tap Vulcan made and
//! filtered for it, configured by the real agent. Slow under TCG: its own target (the
//! gVisor and isolate tiers are in `egress.rs`).

mod common;
#[path = "common/internet.rs"]
mod internet;

use common::Server;
use internet::{
    lines, only_the_stock_is_left, probe, settled_network, url, FakeInternet, RefusalProbe, API,
    API_NAME, OTHER, OTHER_NAME,
};
use serde_json::{json, Value};

/// One fake internet, and VMs under TCG, at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Dropped in this order: the server first, the fake internet (which removes what the
/// server's sandboxes left) last.
struct World {
    server: Server,
    net: FakeInternet,
}

impl Drop for World {
    fn drop(&mut self) {
        // VMs made ahead hold their networks: the server removes them as it stops.
        self.server.stop(std::time::Duration::from_secs(30));
    }
}

/// No VM made ahead: each one with a network is restored for its workload.
fn world() -> (std::sync::MutexGuard<'static, ()>, World) {
    world_with_pool("0")
}

fn world_with_pool(pool: &str) -> (std::sync::MutexGuard<'static, ()>, World) {
    world_with(&[("VULCAN_MICROVM_POOL", pool)])
}

/// [`world`], with more settings.
fn world_with(env: &[(&str, &str)]) -> (std::sync::MutexGuard<'static, ()>, World) {
    let lock = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = FakeInternet::start();
    let dns = net.dns.to_string();
    let mut all = vec![
        ("VULCAN_EGRESS", "open"),
        ("VULCAN_EGRESS_DNS", dns.as_str()),
        ("VULCAN_MICROVM_POOL", "0"),
    ];
    all.extend_from_slice(env);
    let server = Server::start(&all);
    (lock, World { server, net })
}

/// What the backend said in a workload's log.
fn backend_log(w: &World, done: &Value) -> String {
    let (_, log) = w.server.get(&format!(
        "/v1/workloads/{}/logs/history?stream=backend",
        done["id"].as_str().unwrap()
    ));
    log.to_string()
}

fn python(network: Value, script: &str) -> Value {
    json!({
        "runtime": "python",
        "isolation": "microvm",
        "code": script,
        "network": network,
        "resources": {"timeout_s": 120},
    })
}

fn run(w: &World, body: Value) -> Value {
    let done = w.server.run(body);
    assert_eq!(done["status"], "completed", "{done}");
    done
}

#[test]
fn a_microvm_reaches_its_allowed_name_and_the_host_refuses_the_rest() {
    let (_lock, w) = world();
    let refusals = RefusalProbe::new(&w.net, &w.server.base);
    let done = run(
        &w,
        python(
            json!({"egress": "allow", "allow": [format!("{API_NAME}:80")]}),
            &refusals.script(),
        ),
    );
    refusals.check(&w.net, &done);
    assert!(done["net_tx_bytes"].as_u64().unwrap() > 0, "{done}");
    assert!(done["net_rx_bytes"].as_u64().unwrap() > 0, "{done}");
    assert!(
        common::metrics(&w.server)
            .contains("vulcan_workload_network_bytes_total{backend=\"microvm\",direction=\"rx\"}"),
        "the microvm's bytes are counted"
    );

    // Only the name is allowed: its address by number, not looked up, is not; and the
    // workload (an unprivileged user in its VM) cannot re-address or re-route its NIC.
    let api_before = w.net.packets_to(API);
    let widen = format!(
        "import fcntl, socket, struct\n\
         s = socket.socket()\n\
         for name, req in [('addr', 0x8916), ('route', 0x890B)]:\n    \
             try:\n        \
                 fcntl.ioctl(s, req, struct.pack('16s16s', b'eth0', b'\\x02\\x00' + bytes([0, 0, 10, 77, 0, 99]) + bytes(8)))\n        \
                 print(name, 'changed')\n    \
             except OSError as e:\n        \
                 print(name, 'refused', e.errno)\n{}",
        probe(&[url(API)], &[])
    );
    let hostile = run(
        &w,
        python(json!({"egress": "allow", "allow": [API_NAME]}), &widen),
    );
    let out = lines(&hostile);
    assert_eq!(out[..2], ["addr refused 1", "route refused 1"], "{hostile}");
    assert!(out[2].starts_with("refused"), "{hostile}");
    assert_eq!(w.net.packets_to(API), api_before, "{hostile}");

    // The first VM with a NIC made a snapshot with one; the later ones were restored from
    // it, each attached to its own tap.
    let (_, backends) = w.server.get("/v1/backends");
    let microvm = backends
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "microvm")
        .unwrap()
        .to_string();
    assert!(
        microvm.contains("-nic-"),
        "a snapshot with a NIC: {microvm}"
    );
    let log = backend_log(&w, &hostile);
    assert!(
        log.contains("restored from snapshot") && log.contains("with a network"),
        "{log}"
    );

    // A workload without a network has no NIC at all.
    let none = run(
        &w,
        python(
            json!({"egress": "none"}),
            "import os\nprint(sorted(os.listdir('/sys/class/net')))",
        ),
    );
    assert_eq!(none["output"], "['lo']", "{none}");

    // Each VM's tap, namespace, chain and slot record are gone once it has ended: what is
    // left is the stock made ahead of time, unchanged by another VM with a network.
    let before = settled_network();
    run(
        &w,
        python(json!({"egress": "allow", "allow": [API_NAME]}), "print(1)"),
    );
    only_the_stock_is_left(&before);
}

#[test]
fn a_microvm_flood_is_held_to_its_cap_each_way() {
    let (_lock, w) = world();
    // 256 KiB each way: about 2.1 s at 1 Mbit/s.
    let script = format!(
        r#"
import time, urllib.request
t = time.time()
n = len(urllib.request.urlopen("http://{API}/big/262144", timeout=60).read())
down = time.time() - t
t = time.time()
got = urllib.request.urlopen(urllib.request.Request("http://{API}/", data=b"y" * 262144), timeout=60).read().decode().strip()
up = time.time() - t
print(n, got, round(down, 2), round(up, 2))
"#
    );
    let timed = |resources: Value| {
        let mut body = python(
            json!({"egress": "allow", "allow": ["203.0.113.0/24:80"]}),
            &script,
        );
        body["resources"] = resources;
        let done = run(&w, body);
        let out = done["output"].as_str().unwrap().to_owned();
        let f: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(f[..3], ["262144", "got", "262144"], "{out}");
        let (down, up): (f64, f64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        (down, up, done)
    };
    let (down, up, done) = timed(json!({"timeout_s": 120, "net_mbps": 1}));
    assert!(
        down >= 1.5 && up >= 1.5,
        "a 1 Mbit/s cap let 2 Mbit through in {down} s down, {up} s up: {done}"
    );
    assert!(done["net_tx_bytes"].as_u64().unwrap() >= 262_144, "{done}");
    assert!(done["net_rx_bytes"].as_u64().unwrap() >= 262_144, "{done}");
    let (free_down, free_up, _) = timed(json!({"timeout_s": 120}));
    assert!(
        free_down * 2.0 < down && free_up * 2.0 < up,
        "uncapped {free_down} s down, {free_up} s up; capped {down} s, {up} s"
    );
}

#[test]
fn a_python_function_with_a_network_fetches_in_a_fresh_vm_each_invocation() {
    let (_lock, w) = world();
    let code = format!(
        "import urllib.request\ncount = 0\n\ndef handler(input):\n    global count\n    count += 1\n    \
         page = urllib.request.urlopen('http://{API_NAME}/', timeout=10).read().decode().strip()\n    \
         return {{'page': page, 'count': count}}\n"
    );
    let body = json!({"runtime": "python", "isolation": "microvm", "code": code, "reuse": true,
                      "network": {"egress": "allow", "allow": [format!("{API_NAME}:80")]},
                      "resources": {"timeout_s": 120}});
    let (status, deployed) = w.server.put("/v1/functions/fetch", &body);
    assert_eq!(status, 201, "{deployed}");
    for _ in 0..2 {
        let (status, done) = w.server.post("/v1/functions/fetch/invoke", &json!({}));
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["status"], "completed", "{done}");
        let answer: Value = serde_json::from_str(done["output"].as_str().unwrap()).unwrap();
        // A fresh VM each time: no warm instance holds the network open.
        assert_eq!(
            answer,
            json!({"page": format!("hello from {API}"), "count": 1}),
            "{done}"
        );
        assert!(done["net_rx_bytes"].as_u64().unwrap() > 0, "{done}");
    }
}

#[test]
fn a_vm_made_ahead_with_a_nic_gets_the_policy_of_the_workload_that_takes_it() {
    let (_lock, w) = world_with_pool("python=1,node=0,go=0");
    let fetch = probe(
        &[
            format!("http://{API_NAME}/"),
            format!("http://{OTHER_NAME}/"),
        ],
        &[],
    );
    let allow = |name: &str| json!({"egress": "allow", "allow": [format!("{name}:80")]});
    // The first networked python workload has its VM restored; one is made ahead behind it.
    let first = run(&w, python(allow(API_NAME), &fetch));
    assert!(
        !backend_log(&w, &first).contains("a VM made ahead"),
        "{first}"
    );
    let ahead = |policy: Value| {
        common::eventually(
            std::time::Duration::from_secs(300),
            "a VM made ahead",
            || {
                let done = run(&w, python(policy.clone(), &fetch));
                backend_log(&w, &done)
                    .contains("a VM made ahead with a network")
                    .then_some(done)
            },
        )
    };
    let other_before = w.net.packets_to(OTHER);
    let api_policy = ahead(allow(API_NAME));
    let got = lines(&api_policy);
    assert_eq!(got[0], format!("hello from {API}"), "{api_policy}");
    assert!(got[1].starts_with("refused"), "{api_policy}");
    assert_eq!(w.net.packets_to(OTHER), other_before, "{api_policy}");
    assert_eq!(w.net.queries_for(OTHER_NAME), 0, "{api_policy}");
    // The next one made ahead takes another policy: the first's does not stay with the pool.
    let api_before = w.net.packets_to(API);
    let other_policy = ahead(allow(OTHER_NAME));
    let got = lines(&other_policy);
    assert!(got[0].starts_with("refused"), "{other_policy}");
    assert_eq!(got[1], format!("hello from {OTHER}"), "{other_policy}");
    assert_eq!(w.net.packets_to(API), api_before, "{other_policy}");
}

#[test]
fn a_vm_from_an_image_reaches_its_allowed_name_and_nothing_else() {
    let registry = vulcan_gvisor::testing::Registry::start();
    // busybox and python3 only: no /etc/resolv.conf of its own (the agent writes one).
    let image = registry.push("py:1", "python");
    let (_lock, w) = world_with(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]);
    let (api_before, other_before) = (w.net.packets_to(API), w.net.packets_to(OTHER));
    let mut body = python(
        json!({"egress": "allow", "allow": [API_NAME]}),
        &probe(&[format!("http://{API_NAME}/"), url(OTHER)], &[]),
    );
    body["image"] = json!(image);
    let done = run(&w, body);
    let out = lines(&done);
    assert!(!out[0].starts_with("refused"), "the allowed name: {done}");
    assert!(out[1].starts_with("refused"), "anything else: {done}");
    assert!(w.net.packets_to(API) > api_before, "{done}");
    assert_eq!(w.net.packets_to(OTHER), other_before, "{done}");
    let log = backend_log(&w, &done);
    assert!(
        log.contains("converting image") && log.contains("with a network"),
        "{log}"
    );
}
