//! Network egress, end to end, against a fake internet made of network namespaces on this
//! host ([`internet`]): real runsc sandboxes, each in a namespace Vulcan made for it, held to
//! its policy by the nftables rules Vulcan installs, resolving names through its own
//! resolver. No test packet leaves the machine.

mod common;
#[path = "common/internet.rs"]
mod internet;

use std::sync::Mutex;
use std::time::Duration;

use common::Server;
use internet::{
    lines, only_the_stock_is_left, probe, settled_network, url, FakeInternet, RefusalProbe, API,
    API_NAME, LINK_HOST, LINK_LOCAL, OTHER, OTHER_NAME, PRIVATE,
};
use serde_json::{json, Value};
use vulcan_gvisor::testing::Registry;

/// One fake internet at a time (its names and routes are the host's).
static NET: Mutex<()> = Mutex::new(());

/// Dropped in this order: the server first, the fake internet (which removes what the
/// server's sandboxes left) last.
struct World {
    server: Server,
    image: String,
    _registry: Registry,
    net: FakeInternet,
}

impl Drop for World {
    fn drop(&mut self) {
        // The sandboxes booted ahead hold their networks: the server removes them as it stops.
        self.server.stop(Duration::from_secs(30));
    }
}

fn world(mode: &str) -> (std::sync::MutexGuard<'static, ()>, World) {
    world_with(mode, &[])
}

fn world_with(mode: &str, extra: &[(&str, &str)]) -> (std::sync::MutexGuard<'static, ()>, World) {
    let lock = NET.lock().unwrap_or_else(|p| p.into_inner());
    let net = FakeInternet::start();
    let registry = Registry::start();
    let image = registry.push("py:1", "python");
    let dns = net.dns.to_string();
    let mut env = vec![
        ("VULCAN_INSECURE_REGISTRIES", registry.host.as_str()),
        ("VULCAN_EGRESS", mode),
        ("VULCAN_EGRESS_DNS", dns.as_str()),
    ];
    env.extend_from_slice(extra);
    let server = Server::start(&env);
    (
        lock,
        World {
            net,
            _registry: registry,
            image,
            server,
        },
    )
}

fn body(w: &World, network: Value, script: &str) -> Value {
    json!({
        "runtime": "oci",
        "image": w.image,
        "isolation": "gvisor",
        "command": ["python3", "-c", script],
        "network": network,
        "resources": {"timeout_s": 60},
    })
}

fn run(w: &World, network: Value, script: &str) -> Value {
    let done = w.server.run(body(w, network, script));
    assert_eq!(done["status"], "completed", "{done}");
    done
}

#[test]
fn an_allowed_name_is_reachable_and_nothing_else_is() {
    let (_lock, w) = world("open");
    let refusals = RefusalProbe::new(&w.net, &w.server.base);
    let done = run(
        &w,
        json!({"egress": "allow", "allow": [format!("{API_NAME}:80")]}),
        &refusals.script(),
    );
    refusals.check(&w.net, &done);
    assert!(w.net.queries_for(API_NAME) >= 1);
    assert!(done["net_tx_bytes"].as_u64().unwrap() > 0, "{done}");
    assert!(done["net_rx_bytes"].as_u64().unwrap() > 0, "{done}");
    let metrics = common::metrics(&w.server);
    assert!(
        metrics
            .contains("vulcan_workload_network_bytes_total{backend=\"gvisor\",direction=\"tx\"}"),
        "{metrics}"
    );
    // Link-local is refused as a whole, not just the address the test used.
    let never = std::process::Command::new("nft")
        .args(["list", "set", "ip", "vulcan_egress", "never"])
        .output()
        .unwrap();
    let never = String::from_utf8_lossy(&never.stdout);
    assert!(never.contains("169.254.0.0/16"), "{never}");
}

#[test]
fn without_a_policy_nothing_is_reachable_and_an_address_needs_its_name_resolved_first() {
    let (_lock, w) = world("open");
    let before = w.net.packets_to(API);
    let none = run(
        &w,
        json!({"egress": "none"}),
        &probe(&[url(API)], &[API_NAME]),
    );
    assert_eq!(lines(&none), ["refused URLError", "unresolved"], "{none}");
    // Only the name is allowed: its address by number, before the name was looked up, is not.
    let by_number = run(
        &w,
        json!({"egress": "allow", "allow": [API_NAME]}),
        &probe(&[url(API)], &[]),
    );
    assert!(lines(&by_number)[0].starts_with("refused"), "{by_number}");
    assert_eq!(w.net.packets_to(API), before, "packets reached the server");
}

/// A Python program that sends UDP datagrams to each of `hosts` (IPv6 link-local
/// addresses, on its own link) on `port`, and prints what became of each try.
fn ipv6_link_probe(hosts: &[String], port: u16) -> String {
    format!(
        r#"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for host in {hosts:?}:
    for _ in range(3):
        try:
            s.sendto(b"x", (host + "%eth0", {port}))
            print("sent")
        except Exception as e:
            print("refused", type(e).__name__)
"#
    )
}

/// The IPv6 link-local addresses of the host's ends of sandbox links now (those made
/// ahead of time among them: the next sandbox's is one of these).
fn host_link_locals() -> Vec<String> {
    // A new link's address is tentative for a second or so (duplicate address detection),
    // and what is sent to it meanwhile is dropped: wait until every one is usable.
    common::eventually(
        Duration::from_secs(10),
        "the sandbox links' IPv6 addresses past detection",
        || {
            let out = std::process::Command::new("ip")
                .args(["-o", "-6", "addr", "show", "scope", "link"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let ours: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .is_some_and(|n| n.starts_with("vx"))
                })
                .collect();
            if ours.iter().any(|l| l.contains("tentative")) {
                return None;
            }
            Some(
                ours.iter()
                    .filter_map(|l| {
                        let addr = l.split_whitespace().nth(3)?;
                        Some(addr.split('/').next().unwrap_or_default().to_owned())
                    })
                    .collect(),
            )
        },
    )
}

#[test]
fn the_host_is_not_reached_over_ipv6_link_local() {
    let (_lock, w) = world("open");
    // A service of the host listening on every IPv6 address, as many do.
    let listener = std::net::UdpSocket::bind("[::]:0").unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = |listener: &std::net::UdpSocket| {
        let mut n = 0;
        let mut buf = [0u8; 16];
        while listener.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    };
    let open = json!({"egress": "allow"});
    // The first network makes the stock; the next sandbox takes one of it.
    run(&w, open.clone(), &probe(&[], &[]));
    settled_network();
    let hosts = host_link_locals();
    assert!(!hosts.is_empty(), "no link-local address on a sandbox link");
    let done = run(&w, open.clone(), &ipv6_link_probe(&hosts, port));
    assert_eq!(received(&listener), 0, "the host got a datagram: {done}");
    // The probe can tell: without Vulcan's IPv6 table, the same datagrams arrive.
    let status = std::process::Command::new("nft")
        .args(["delete", "table", "ip6", "vulcan_egress"])
        .status()
        .unwrap();
    assert!(status.success());
    settled_network();
    let hosts = host_link_locals();
    let done = run(&w, open, &ipv6_link_probe(&hosts, port));
    assert!(received(&listener) > 0, "the probe reached nothing: {done}");
}

#[test]
fn networks_by_address_and_open_egress_stay_public_and_code_cannot_widen_them() {
    let (_lock, w) = world("open");
    let by_net = run(
        &w,
        json!({"egress": "allow", "allow": ["198.51.100.0/24:80"]}),
        &probe(&[url(OTHER), url(API)], &[]),
    );
    assert_eq!(lines(&by_net)[0], format!("hello from {OTHER}"), "{by_net}");
    assert!(lines(&by_net)[1].starts_with("refused"), "{by_net}");

    let open = run(
        &w,
        json!({"egress": "allow"}),
        &probe(
            &[url(API), url(OTHER), url(PRIVATE), url(LINK_LOCAL)],
            &[API_NAME],
        ),
    );
    let out = lines(&open);
    assert_eq!(out[0], format!("hello from {API}"), "{open}");
    assert_eq!(out[1], format!("hello from {OTHER}"), "{open}");
    assert!(
        out[2].starts_with("refused") && out[3].starts_with("refused"),
        "{open}"
    );
    assert_eq!(out[4], format!("resolved {API}"), "{open}");

    // Root in the sandbox changes its own interface and routes: nothing more is reachable.
    let widen = format!(
        "import subprocess\n\
         for cmd in ['ip addr add 10.77.0.99/24 dev eth0', 'ip route add 10.77.0.0/24 dev eth0', 'ip route add 169.254.77.0/24 dev eth0']:\n    \
             subprocess.run(cmd.split())\n{}",
        probe(&[url(PRIVATE), url(LINK_LOCAL)], &[])
    );
    let before = [PRIVATE, LINK_LOCAL].map(|ip| w.net.packets_to(ip));
    let hostile = run(&w, json!({"egress": "allow"}), &widen);
    let tried = lines(&hostile);
    assert!(tried.iter().all(|l| l.starts_with("refused")), "{hostile}");
    assert_eq!([PRIVATE, LINK_LOCAL].map(|ip| w.net.packets_to(ip)), before);
}

#[test]
fn another_nodes_addresses_are_never_reachable() {
    let (_lock, w) = world("open");
    let open = json!({"egress": "allow"});
    let page = run(&w, open.clone(), &probe(&[url(OTHER)], &[]));
    assert_eq!(page["output"], format!("hello from {OTHER}"), "{page}");
    // A node joins the cluster from the other public server's address (as its heartbeat
    // says): from then on no sandbox on this node reaches that address.
    let now = time::OffsetDateTime::now_utc();
    let at = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let record = json!({
        "id": "peer", "hostname": "peer", "version": "0", "cpus": 2, "memory_total_mb": 1024,
        "memory_used_mb": 1, "active_workloads": 0, "backends": [], "started_at": at,
        "heartbeat_at": at, "instances": {}, "addresses": [OTHER.to_string()],
    });
    let db = rusqlite::Connection::open(w.server.data_dir.join("vulcan.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "INSERT INTO nodes (id, record, heartbeat_at) VALUES ('peer', ?1, ?2)",
        rusqlite::params![
            record.to_string(),
            (now.unix_timestamp_nanos() / 1_000_000) as i64
        ],
    )
    .unwrap();
    common::eventually(
        Duration::from_secs(20),
        "the peer's address in the rules",
        || {
            let set = std::process::Command::new("nft")
                .args(["list", "set", "ip", "vulcan_egress", "peers"])
                .output()
                .ok()?;
            String::from_utf8_lossy(&set.stdout)
                .contains(&OTHER.to_string())
                .then_some(())
        },
    );
    let before = w.net.packets_to(OTHER);
    let refused = run(&w, open, &probe(&[url(OTHER), url(API)], &[]));
    let got = lines(&refused);
    assert!(got[0].starts_with("refused"), "{refused}");
    assert_eq!(got[1], format!("hello from {API}"), "{refused}");
    assert_eq!(w.net.packets_to(OTHER), before, "a packet reached the peer");
}

#[test]
fn many_workloads_with_a_network_leave_no_namespace_link_or_rule_behind() {
    let (_lock, w) = world("open");
    let policy = json!({"egress": "allow", "allow": [format!("{API_NAME}:80")]});
    // The first network starts the stock made ahead of time.
    run(&w, policy.clone(), &probe(&[], &[]));
    let before = settled_network();
    let ids: Vec<String> = (0..24)
        .map(|_| {
            w.server.submit(body(
                &w,
                policy.clone(),
                &probe(&[format!("http://{API_NAME}/")], &[]),
            ))
        })
        .collect();
    for id in &ids {
        let done = w.server.wait_terminal(id, Duration::from_secs(300));
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["output"], format!("hello from {API}"), "{done}");
    }
    // A network is removed off its run's path, its slot record last; the stock is made
    // up again.
    only_the_stock_is_left(&before);
}

#[test]
fn the_server_bounds_what_a_tenant_may_ask_for() {
    let (_lock, w) = world_with("allow-listed", &[("VULCAN_AUTH", "on")]);
    let admin = std::fs::read_to_string(w.server.data_dir.join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let call = |key: &str, method: &str, path: &str, body: &Value| {
        common::answer_of(
            ureq::request(method, &w.server.url(path))
                .set("X-API-Key", key)
                .send_json(body.clone()),
        )
    };
    let (status, made) = call(
        &admin,
        "POST",
        "/v1/keys",
        &json!({"name": "t", "role": "developer", "tenant": "t1"}),
    );
    assert_eq!(status, 201, "{made}");
    let tenant = made["key"].as_str().unwrap().to_owned();
    let (status, image) = call(&admin, "POST", "/v1/images", &json!({"reference": w.image}));
    assert!(status < 300, "{image}");
    let quota = json!({"max_concurrent": 4, "per_minute": 100, "max_cpus": 4, "max_mem_mb": 4096, "egress_allow": ["*.fake.test:80"]});
    let (status, set) = call(&admin, "PUT", "/v1/tenants/t1/quota", &quota);
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["egress_allow"], json!(["*.fake.test:80"]));

    let ask = |network: Value| {
        call(
            &tenant,
            "POST",
            "/v1/workloads",
            &body(&w, network, &probe(&[format!("http://{API_NAME}/")], &[])),
        )
    };
    let (status, done) = ask(json!({"egress": "allow", "allow": [format!("{API_NAME}:80")]}));
    assert_eq!(
        (status, done["output"].as_str()),
        (200, Some(&*format!("hello from {API}"))),
        "{done}"
    );
    for (network, says) in [
        (
            json!({"egress": "allow", "allow": ["api.example.com:443"]}),
            "\"api.example.com:443\" is not in this tenant's egress allow-list",
        ),
        (json!({"egress": "allow"}), "\"network.allow\" is empty"),
        (
            json!({"egress": "allow", "allow": [format!("{API_NAME}:443")]}),
            "not in this tenant's egress allow-list",
        ),
    ] {
        let (status, refused) = ask(network.clone());
        assert_eq!(status, 403, "{network}: {refused}");
        assert!(
            refused["error"].as_str().unwrap().contains(says),
            "{network}: {refused}"
        );
    }
    // A private range is refused even where the tenant's list would otherwise allow it.
    let (status, refused) = call(
        &admin,
        "PUT",
        "/v1/tenants/t1/quota",
        &json!({"max_concurrent": 4, "per_minute": 100, "max_cpus": 4, "max_mem_mb": 4096, "egress_allow": ["0.0.0.0/0"]}),
    );
    assert_eq!(status, 200, "{refused}");
    // ... and the private server is then reached: its rule goes before the one that
    // refuses the never-reachable ranges.
    let (status, done) = call(
        &tenant,
        "POST",
        "/v1/workloads",
        &body(
            &w,
            json!({"egress": "allow", "allow": [format!("{PRIVATE}:80")]}),
            &probe(&[url(PRIVATE)], &[]),
        ),
    );
    assert_eq!(
        (status, done["output"].as_str()),
        (200, Some(&*format!("hello from {PRIVATE}"))),
        "an admin listing 0.0.0.0/0 lists private ranges too: {done}"
    );
    let (status, bad) = ask(json!({"egress": "allow", "allow": ["api.fake.test:0"]}));
    assert_eq!(status, 400, "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("port"), "{bad}");
    let (status, bad) = ask(json!({"allow": ["api.fake.test"]}));
    assert_eq!(status, 400, "{bad}");
}

#[test]
fn with_egress_off_a_policy_is_refused_and_a_function_version_keeps_its_policy() {
    let server = Server::start(&[]);
    let network = json!({"egress": "allow", "allow": ["api.example.com:443"]});
    let (status, refused) = server.post(
        "/v1/workloads",
        &json!({"runtime": "oci", "image": "127.0.0.1:1/none:1", "network": network}),
    );
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("VULCAN_EGRESS=off"),
        "{refused}"
    );
    let (status, refused) = server.put(
        "/v1/functions/f",
        &json!({"runtime": "node", "code": "export default () => 1", "network": network}),
    );
    assert_eq!(status, 403, "{refused}");
    // Without a network, nothing about a version changes.
    let plain = json!({"runtime": "node", "code": "export default () => 1"});
    let (status, first) = server.put("/v1/functions/f", &plain);
    assert_eq!(status, 201, "{first}");
    let (_, same) = server.put(
        "/v1/functions/f",
        &json!({"runtime": "node", "code": "export default () => 1", "network": {"egress": "none"}}),
    );
    assert_eq!(same["version"], first["version"], "{same}");
    assert_eq!(same["digest"], first["digest"], "{same}");
}

/// A node module that fetches each URL (3 s each) and returns one line per URL: the page, or
/// `refused <error>`.
fn fetches(urls: &[String]) -> String {
    format!(
        r#"export default async () => {{
  const out = [];
  for (const url of {urls:?}) {{
    try {{
      const r = await fetch(url, {{ signal: AbortSignal.timeout(3000) }});
      out.push((await r.text()).trim());
    }} catch (e) {{
      out.push("refused " + e.name);
    }}
  }}
  return out;
}};"#
    )
}

fn node(w: &World, network: Value, urls: &[String]) -> Vec<String> {
    let done = w.server.run(json!({
        "runtime": "node", "isolation": "isolate", "code": fetches(urls), "network": network,
    }));
    assert_eq!(done["status"], "completed", "{done}");
    let out: Vec<String> = serde_json::from_str(done["output"].as_str().unwrap()).unwrap();
    out
}

#[test]
fn an_isolate_reaches_what_its_policy_allows_and_the_kernel_refuses_the_rest() {
    let (_lock, w) = world("open");
    let before = [OTHER, PRIVATE, LINK_LOCAL].map(|ip| w.net.packets_to(ip));
    // A wildcard: Deno's own permission allows every host, the rules alone hold it.
    let wide = json!({"egress": "allow", "allow": ["*.fake.test:80"], "deny": [OTHER_NAME]});
    let urls = [
        format!("http://{API_NAME}/"),
        format!("http://{OTHER_NAME}/"),
        url(OTHER),
        url(PRIVATE),
        url(LINK_LOCAL),
        format!("http://{LINK_HOST}:80/"),
    ];
    let prepared = |path: &str| {
        common::metric(
            &w.server,
            &format!(
                "vulcan_workload_preparation_seconds_count{{backend=\"isolate\",path=\"{path}\"}}"
            ),
        )
    };
    // The first workload with a policy starts its process; later ones with the same policy
    // take a pooled process made ahead in a network of its own (then the one that served
    // the tenant before), each job in a fresh Worker held to the policy the same way.
    let booted = prepared("boot");
    let out = node(&w, wide.clone(), &urls);
    assert_eq!(prepared("boot"), booted + 1.0);
    // The next run of `policy` that a pooled process serves.
    let pooled = |policy: &Value, urls: &[String]| {
        common::eventually(
            Duration::from_secs(20),
            "a networked process made ahead",
            || {
                let before = prepared("pool");
                let out = node(&w, policy.clone(), urls);
                (prepared("pool") == before + 1.0).then_some(out)
            },
        )
    };
    let mut runs = vec![out];
    for _ in 0..2 {
        runs.push(pooled(&wide, &urls));
    }
    for out in runs {
        assert_eq!(out[0], format!("hello from {API}"), "{out:?}");
        for line in &out[1..] {
            assert!(line.starts_with("refused"), "{out:?}");
        }
    }
    // Bytes are counted per workload, not per process: one that sends nothing after one
    // that fetched, in the same pooled process, counts none of the fetch. (The counts are
    // the interface's, headers included: the last packets of the closing connection of the
    // Worker before, or a neighbour lookup, may land in its window — a packet or two.)
    let counted = |code: String| {
        let done = w.server.run(json!({
            "runtime": "node", "isolation": "isolate", "code": code, "network": wide,
        }));
        assert_eq!(done["status"], "completed", "{done}");
        done["net_rx_bytes"].as_u64().unwrap()
    };
    let fetched = counted(fetches(&[format!("http://{API_NAME}/")]));
    let quiet = counted("export default () => 1".into());
    assert!(fetched > 0);
    assert!(
        quiet < 200 && quiet < fetched,
        "a workload that sends nothing counted {quiet} bytes (the fetch before it {fetched})"
    );
    // A policy Deno can say exactly: the pooled process's Workers get that permission.
    let exact = json!({"egress": "allow", "allow": [format!("{API_NAME}:80")]});
    let two = [format!("http://{API_NAME}/"), url(OTHER)];
    node(&w, exact.clone(), &two);
    let out = pooled(&exact, &two);
    assert_eq!(out[0], format!("hello from {API}"), "{out:?}");
    assert!(out[1].starts_with("refused"), "{out:?}");
    assert_eq!(
        w.net.queries_for(OTHER_NAME),
        0,
        "a denied name reached the upstream"
    );
    assert_eq!(
        [OTHER, PRIVATE, LINK_LOCAL].map(|ip| w.net.packets_to(ip)),
        before
    );

    // Without a policy an isolate has no network at all.
    let none = node(
        &w,
        json!({"egress": "none"}),
        &[format!("http://{API_NAME}/"), url(API)],
    );
    assert!(none.iter().all(|l| l.starts_with("refused")), "{none:?}");
    // A wasm module has no sockets: a policy on one is a mistake, said so.
    let (status, refused) = w.server.post(
        "/v1/workloads",
        &json!({"runtime": "wasm", "code": "AGFzbQEAAAA=", "network": {"egress": "allow"}}),
    );
    assert_eq!(status, 400, "{refused}");
}

#[test]
fn a_cap_holds_a_flood_each_way_to_its_rate() {
    let (_lock, w) = world("open");
    // 256 KiB each way: about 2.1 s at 1 Mbit/s, a few milliseconds without a cap.
    let script = format!(
        r#"
import time, urllib.request
t = time.time()
n = len(urllib.request.urlopen("http://{API}/big/262144", timeout=30).read())
down = time.time() - t
t = time.time()
got = urllib.request.urlopen(urllib.request.Request("http://{API}/", data=b"y" * 262144), timeout=30).read().decode().strip()
up = time.time() - t
print(n, got, round(down, 2), round(up, 2))
"#
    );
    let timed = |resources: Value| {
        let mut b = body(
            &w,
            json!({"egress": "allow", "allow": ["203.0.113.0/24:80"]}),
            &script,
        );
        b["resources"] = resources;
        let done = w.server.run(b);
        assert_eq!(done["status"], "completed", "{done}");
        let out = done["output"].as_str().unwrap().to_owned();
        let f: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(f[..3], ["262144", "got", "262144"], "{out}");
        let (down, up): (f64, f64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        (down, up, done)
    };
    let (down, up, done) = timed(json!({"timeout_s": 60, "net_mbps": 1}));
    assert!(
        down >= 1.5 && up >= 1.5,
        "a 1 Mbit/s cap let 2 Mbit through in {down} s down, {up} s up: {done}"
    );
    assert!(done["net_tx_bytes"].as_u64().unwrap() >= 262_144, "{done}");
    assert!(done["net_rx_bytes"].as_u64().unwrap() >= 262_144, "{done}");
    let (down, up, _) = timed(json!({"timeout_s": 60}));
    assert!(down < 1.2 && up < 1.2, "uncapped: {down} s down, {up} s up");
    // A cap without a network is a mistake, said so.
    let mut capped = body(&w, json!({"egress": "none"}), "print(1)");
    capped["resources"] = json!({"net_mbps": 5});
    let (status, refused) = w.server.post("/v1/workloads", &capped);
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("net_mbps"),
        "{refused}"
    );
}

/// The gVisor sandbox a networked workload ran in, when it was one booted ahead (its log
/// says which).
fn pod_of(w: &World, done: &Value) -> Option<String> {
    let id = done["id"].as_str().unwrap();
    let (_, logs) = w.server.get(&format!("/v1/workloads/{id}/logs/history"));
    logs["lines"].as_array()?.iter().find_map(|l| {
        let line = l["line"].as_str()?;
        let rest = line.strip_prefix("runs in sandbox ")?;
        Some(rest.split(',').next()?.to_owned())
    })
}

#[test]
fn a_gvisor_sandbox_booted_ahead_serves_one_workload_with_its_bounds_and_goes() {
    let (_lock, w) = world("open");
    let policy = json!({"egress": "allow", "allow": [format!("{API_NAME}:80")]});
    let fetch = probe(&[format!("http://{API_NAME}/"), url(OTHER)], &[]);
    let before = w.net.packets_to(OTHER);
    let state = w.server.data_dir.join("gvisor/state");
    let sandboxes = || {
        let out = std::process::Command::new("runsc")
            .arg("--root")
            .arg(&state)
            .args(["list", "-quiet"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The first networked workload boots its own sandbox; pods are booted behind it.
    let first = run(&w, policy.clone(), &fetch);
    assert_eq!(pod_of(&w, &first), None, "{first}");
    let mut served: Vec<String> = Vec::new();
    for _ in 0..3 {
        let (pod, done) = common::eventually(Duration::from_secs(60), "a pod", || {
            let done = run(&w, policy.clone(), &fetch);
            pod_of(&w, &done).map(|pod| (pod, done))
        });
        let got = lines(&done);
        assert_eq!(got[0], format!("hello from {API}"), "{done}");
        assert!(got[1].starts_with("refused"), "{done}");
        assert!(!served.contains(&pod), "{pod} served two workloads");
        served.push(pod);
    }
    // Each pod went with its workload.
    common::eventually(Duration::from_secs(30), "used pods destroyed", || {
        let now = sandboxes();
        served
            .iter()
            .all(|p| !now.contains(p.as_str()))
            .then_some(())
    });
    assert_eq!(
        w.net.packets_to(OTHER),
        before,
        "a packet reached the other"
    );
    // A pod waits with a small memory bound: the workload's own replaces it, both ways.
    let sized = |mem_mb: u32, megabytes: u32| {
        common::eventually(Duration::from_secs(60), "a pod", || {
            let mut body = body(
                &w,
                policy.clone(),
                &format!("b = b'x' * ({megabytes} << 20); print(len(b) >> 20)"),
            );
            body["resources"]["mem_mb"] = json!(mem_mb);
            let done = w.server.run(body);
            pod_of(&w, &done).map(|_| done)
        })
    };
    let fits = sized(384, 200);
    assert_eq!(fits["status"], "completed", "{fits}");
    assert_eq!(fits["output"], "200", "{fits}");
    let bomb = sized(64, 400);
    assert_eq!(bomb["status"], "failed", "{bomb}");
    assert!(
        bomb["error"].as_str().unwrap().contains("memory limit"),
        "{bomb}"
    );
}
