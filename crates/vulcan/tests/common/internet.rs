//! A fake internet for the egress tests, made of a network namespace on this host; no test
//! packet can leave the machine.
//!
//! - A guard goes in first: an nftables table on the host that drops anything for the test
//!   ranges leaving through any interface but the fake internet's link, so that even wrong
//!   code under test cannot reach a real network with them.
//! - The namespace holds four HTTP servers (one Python process on port 80 answering
//!   `hello from <address>`, `/big/N` with N bytes, and a POST with `got N`): two "public" ones on documentation addresses, a "private" one
//!   on 10.77.0.10 and a "link-local" one on 169.254.77.1 (never the real metadata address),
//!   and counts the packets that reach each.
//! - A DNS server of the test's own on loopback answers the fake names and counts the
//!   queries for each.
//!
//! Everything is removed when dropped, and IPv4 forwarding is put back as it was.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use vulcan_sandbox::network::dns;

pub const API: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const OTHER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
pub const PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
pub const LINK_LOCAL: Ipv4Addr = Ipv4Addr::new(169, 254, 77, 1);
/// The host's address on the link to the fake internet.
pub const LINK_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const LINK_FAR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// The ranges the test uses; the guard keeps them on the fake internet's link.
const RANGES: [&str; 5] = [
    "203.0.113.0/24",
    "198.51.100.0/24",
    "10.77.0.0/24",
    "169.254.77.0/24",
    "192.0.2.0/24",
];

pub const API_NAME: &str = "api.fake.test";
pub const OTHER_NAME: &str = "other.fake.test";
pub const PRIVATE_NAME: &str = "private.fake.test";

pub struct FakeInternet {
    namespace: String,
    link: String,
    guard: String,
    server: Child,
    forwarding: String,
    pub dns: std::net::SocketAddr,
    queries: Arc<Mutex<HashMap<String, u32>>>,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Applies an nftables script on the host, or in `namespace`.
fn nft(namespace: Option<&str>, script: &str) {
    use std::io::Write;
    let mut cmd = match namespace {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => Command::new("nft"),
    };
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "nft -f in {namespace:?}: {script}"
    );
}

const SERVER: &str = r#"
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_POST(self):
        got = len(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        body = ("got %d\n" % got).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith("/big/"):
            body = b"x" * int(self.path[5:])
        else:
            body = ("hello from %s\n" % self.connection.getsockname()[0]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 80), H).serve_forever()
"#;

impl FakeInternet {
    pub fn start() -> FakeInternet {
        let tag = std::process::id() % 100_000;
        let namespace = format!("vtinet{tag}");
        let link = format!("vti{tag}");
        let guard = format!("vulcan_test_guard_{tag}");
        let ranges = RANGES.join(", ");
        // The guard before anything else.
        nft(
            None,
            &format!(
                "table ip {guard} {{
  chain output {{ type filter hook output priority -300; policy accept;
    ip daddr {{ {ranges} }} oifname != \"{link}\" drop
  }}
  chain forward {{ type filter hook forward priority -300; policy accept;
    ip daddr {{ {ranges} }} oifname != \"{link}\" drop
  }}
}}"
            ),
        );
        let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap_or_default()
            .trim()
            .to_owned();
        sh(&["ip", "netns", "add", &namespace]);
        sh(&[
            "ip", "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &namespace,
        ]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{LINK_HOST}/24"),
            "dev",
            &link,
        ]);
        sh(&["ip", "link", "set", &link, "up"]);
        for range in &RANGES[..4] {
            sh(&[
                "ip",
                "route",
                "add",
                range,
                "via",
                &LINK_FAR.to_string(),
                "dev",
                &link,
            ]);
        }
        let inside = |args: &[&str]| {
            let mut all = vec!["ip", "-n", namespace.as_str()];
            all.extend_from_slice(args);
            sh(&all);
        };
        inside(&["addr", "add", &format!("{LINK_FAR}/24"), "dev", "eth0"]);
        inside(&["link", "set", "eth0", "up"]);
        inside(&["link", "set", "lo", "up"]);
        for ip in [API, OTHER, PRIVATE, LINK_LOCAL] {
            inside(&["addr", "add", &format!("{ip}/32"), "dev", "lo"]);
        }
        inside(&["route", "add", "default", "via", &LINK_HOST.to_string()]);
        let counters: String = [API, OTHER, PRIVATE, LINK_LOCAL]
            .iter()
            .map(|ip| format!("    ip daddr {ip} counter\n"))
            .collect();
        nft(
            Some(&namespace),
            &format!(
                "table ip count {{\n  chain input {{ type filter hook input priority 0; policy accept;\n{counters}  }}\n}}"
            ),
        );
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &namespace,
                "/usr/bin/python3",
                "-c",
                SERVER,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 for the fake internet's servers");
        let (dns, queries) = start_dns();
        let net = FakeInternet {
            namespace,
            link,
            guard,
            server,
            forwarding,
            dns,
            queries,
        };
        // Up when the host can fetch a page (through the link, not a sandbox).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while ureq::get(&format!("http://{API}/"))
            .timeout(Duration::from_secs(1))
            .call()
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the fake internet's server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        net
    }

    /// Packets that reached `ip` in the fake internet so far.
    pub fn packets_to(&self, ip: Ipv4Addr) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.namespace,
                "nft",
                "list",
                "table",
                "ip",
                "count",
            ])
            .output()
            .expect("nft list");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains(&format!("ip daddr {ip} counter")))
            .unwrap_or_else(|| panic!("no counter for {ip} in {text}"));
        let after = line.split("packets ").nth(1).unwrap_or("0");
        after
            .split_whitespace()
            .next()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0)
    }

    /// Queries the test's DNS server got for `name`.
    pub fn queries_for(&self, name: &str) -> u32 {
        self.queries.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

/// The test's DNS server: the fake names, one address each, TTL 60; refused otherwise.
fn start_dns() -> (std::net::SocketAddr, Arc<Mutex<HashMap<String, u32>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a DNS port");
    let addr = socket.local_addr().unwrap();
    let queries: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let counted = queries.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            let Some(q) = dns::question(&buf[..n]) else {
                continue;
            };
            *counted.lock().unwrap().entry(q.name.clone()).or_default() += 1;
            let ip = match q.name.as_str() {
                API_NAME => Some(API),
                OTHER_NAME => Some(OTHER),
                PRIVATE_NAME => Some(PRIVATE),
                _ => None,
            };
            let reply = match ip {
                Some(ip) if q.qtype == dns::TYPE_A => dns::answer(&buf[..n], &q, &[ip], 60),
                Some(_) => dns::empty_answer(&buf[..n], &q, 0),
                None => dns::empty_answer(&buf[..n], &q, 3),
            };
            let _ = socket.send_to(&reply, from);
        }
    });
    (addr, queries)
}

impl Drop for FakeInternet {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.guard])
            .status();
        // Networks a killed server had no time to remove (their owner is gone).
        if let Ok(entries) = std::fs::read_dir("/run/vulcan-egress") {
            for entry in entries.flatten() {
                let owner = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if std::path::Path::new(&format!("/proc/{}", owner.trim())).exists() {
                    continue;
                }
                let slot = entry.file_name().to_string_lossy().into_owned();
                let _ = Command::new("ip")
                    .args(["netns", "del", &format!("vulcan-egress-{slot}")])
                    .status();
                let _ = std::fs::remove_file(entry.path());
            }
        }
        // The servers' tables; a server still running would make them again.
        for family in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, "vulcan_egress"])
                .stderr(Stdio::null())
                .status();
        }
        if !self.forwarding.is_empty() {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.forwarding);
        }
    }
}

/// A Python program that tries each URL (3 s each) and prints one line per URL: the page,
/// or `refused <why>`; then looks `names` up and prints `resolved <ip>` or `unresolved`.
pub fn probe(urls: &[String], names: &[&str]) -> String {
    format!(
        r#"
import socket, urllib.request
for url in {urls:?}:
    try:
        print(urllib.request.urlopen(url, timeout=3).read().decode().strip())
    except Exception as e:
        print("refused", type(e).__name__)
for name in {names:?}:
    try:
        print("resolved", socket.gethostbyname(name))
    except Exception as e:
        print("unresolved")
"#
    )
}

/// [`host_network`] once it has stopped changing (networks are removed, and made ahead of
/// time, off the workloads' paths): Vulcan's stock of networks made ahead of time, if any,
/// and nothing else once every sandbox has ended.
pub fn settled_network() -> (String, String, usize) {
    let mut last = host_network();
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(500));
        let now = host_network();
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("Vulcan's networks on the host did not settle: {last:?}");
}

/// Checks that what the host holds of Vulcan's networks is its stock made ahead of time
/// (no more than `vulcan_sandbox::network::STOCK` namespaces per kind of link, and the
/// isolates' processes and gVisor's pods made ahead with theirs), each with its chain and
/// slot record, and as many as `before`.
pub fn only_the_stock_is_left(before: &(String, String, usize)) {
    let now = settled_network();
    // Counted, not named: a stocked slot taken is made up by another.
    let count = |names: &str| names.split(',').filter(|n| !n.is_empty()).count();
    assert_eq!(
        (count(&now.0), count(&now.1), now.2),
        (count(&before.0), count(&before.1), before.2),
        "the networks on the host changed: {before:?} -> {now:?}"
    );
    let namespaces = count(&now.0);
    assert!(
        namespaces
            <= 2 * vulcan_sandbox::network::STOCK
                + vulcan_isolate::NETWORKED_STOCK
                + vulcan_gvisor::pods::STOCK,
        "more than the stock left: {now:?}"
    );
    assert_eq!(
        now.2, namespaces,
        "rules were left without their sandbox: {now:?}"
    );
    let owners = std::fs::read_dir("/run/vulcan-egress").map_or(0, |d| d.count());
    assert_eq!(
        owners, namespaces,
        "slot records and namespaces differ: {now:?}"
    );
}

/// A probe of what a sandbox allowed only `API_NAME:80` reaches: the allowed name's page,
/// then the other public, the private and the link-local servers, the host (the Vulcan API on
/// the fake internet's link) and a gateway address, all of which must be refused; and two
/// names outside the policy, which must not resolve.
pub struct RefusalProbe {
    urls: Vec<String>,
    /// Packets at the refused servers before the probe ran.
    before: [u64; 3],
}

impl RefusalProbe {
    /// `api` is the Vulcan server's base URL.
    pub fn new(net: &FakeInternet, api: &str) -> RefusalProbe {
        let api_port = api.rsplit(':').next().unwrap().to_owned();
        RefusalProbe {
            urls: vec![
                format!("http://{API_NAME}/"),
                url(OTHER),
                url(PRIVATE),
                url(LINK_LOCAL),
                format!("http://{LINK_HOST}:{api_port}/health"),
                format!("http://10.213.0.1:{api_port}/health"),
            ],
            before: [OTHER, PRIVATE, LINK_LOCAL].map(|ip| net.packets_to(ip)),
        }
    }

    /// The Python program to run.
    pub fn script(&self) -> String {
        probe(&self.urls, &[OTHER_NAME, "example.com"])
    }

    /// Checks the run `done` of [`RefusalProbe::script`]: the page, every refusal, no
    /// answer for the other names (never asked upstream), no packet at a refused server.
    pub fn check(&self, net: &FakeInternet, done: &Value) {
        let out = lines(done);
        assert_eq!(out[0], format!("hello from {API}"), "{done}");
        for (line, what) in
            out[1..6]
                .iter()
                .zip(["other public", "private", "link-local", "host", "gateway"])
        {
            assert!(line.starts_with("refused"), "{what}: {line} in {out:?}");
        }
        assert_eq!(out[6..], ["unresolved", "unresolved"], "{out:?}");
        // Refused names never reach the upstream resolver; refused servers saw no packet.
        assert_eq!(net.queries_for(OTHER_NAME), 0);
        assert_eq!(net.queries_for("example.com"), 0);
        assert_eq!(
            [OTHER, PRIVATE, LINK_LOCAL].map(|ip| net.packets_to(ip)),
            self.before,
            "packets reached a refused server"
        );
    }
}

pub fn lines(w: &Value) -> Vec<String> {
    w["output"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn url(ip: impl std::fmt::Display) -> String {
    format!("http://{ip}/")
}

/// Namespaces, links and Vulcan's nftables chains on the host now.
pub fn host_network() -> (String, String, usize) {
    let text = |cmd: &[&str]| {
        let out = std::process::Command::new(cmd[0])
            .args(&cmd[1..])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let namespaces = text(&["ip", "netns", "list"]);
    let links: Vec<String> = text(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_owned()))
        .filter(|n| n.starts_with("vx"))
        .collect();
    let chains = text(&["nft", "list", "table", "ip", "vulcan_egress"])
        .lines()
        .filter(|l| l.trim_start().starts_with("chain s"))
        .count();
    (
        namespaces
            .lines()
            .filter(|l| l.starts_with("vulcan-egress-"))
            .collect::<Vec<_>>()
            .join(","),
        links.join(","),
        chains,
    )
}
