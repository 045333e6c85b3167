//! WebSockets end to end: a real server, real RFC 6455 connections (tungstenite), real
//! Deno isolates.

mod common;

use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use common::{sum_workload, Server};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

const ADMIN: &str = "vk_wsadmin_0123456789";

fn server() -> Server {
    Server::start(&[
        ("VULCAN_AUTH", "on"),
        ("VULCAN_ADMIN_KEY", ADMIN),
        ("VULCAN_WS_PING_S", "1"),
    ])
}

type Socket = WebSocket<TcpStream>;

/// A connection to `path` with `key` in `X-API-Key`, over a TCP stream of our own.
fn connect_with(server: &Server, path: &str, key: &str, stream: TcpStream) -> Socket {
    let url = server.url(path).replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("X-API-Key", key.parse().unwrap());
    let (socket, response) = tungstenite::client(request, stream).expect("handshake");
    assert_eq!(response.status(), 101);
    socket
}

fn connect(server: &Server, path: &str, key: &str) -> Socket {
    let stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    connect_with(server, path, key, stream)
}

/// The next JSON message (pings are answered by tungstenite itself); `None` once closed.
fn next_json(socket: &mut Socket) -> Option<Value> {
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

fn key_for(server: &Server, tenant: &str) -> String {
    let r = ureq::post(&server.url("/v1/keys"))
        .set("X-API-Key", ADMIN)
        .send_json(json!({"name": tenant, "role": "developer", "tenant": tenant}))
        .unwrap();
    r.into_json::<Value>().unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn submit(server: &Server, key: &str, body: Value) -> String {
    let r = ureq::post(&server.url("/v1/workloads/async"))
        .set("X-API-Key", key)
        .send_json(body)
        .unwrap();
    r.into_json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

const TEN_LINES: &str = "export default async () => { for (let i = 0; i < 10; i++) { console.log('line ' + i); await new Promise(r => setTimeout(r, 150)); } return 'ok'; }";

#[test]
fn logs_stream_live_then_done_and_a_reconnect_resumes_without_gap_or_repeat() {
    let server = server();
    let id = submit(
        &server,
        ADMIN,
        json!({"runtime": "node", "code": TEN_LINES}),
    );
    let mut socket = connect(&server, &format!("/ws/logs/{id}"), ADMIN);
    let mut seen = Vec::new();
    let mut live = false;
    while seen.len() < 3 {
        let m = next_json(&mut socket).expect("a line");
        assert_eq!(m["type"], "log", "{m}");
        if seen.is_empty() {
            // The first line arrives while the workload still runs.
            let (_, w) = server_get(&server, &format!("/v1/workloads/{id}"));
            live = w["status"] == "running";
        }
        seen.push((
            m["seq"].as_u64().unwrap(),
            m["line"].as_str().unwrap().to_owned(),
        ));
    }
    assert!(live, "lines arrive live");
    drop(socket);
    let last = seen.last().unwrap().0;
    let mut socket = connect(&server, &format!("/ws/logs/{id}?since={last}"), ADMIN);
    let done = loop {
        let m = next_json(&mut socket).expect("a message");
        if m["type"] == "done" {
            break m;
        }
        seen.push((
            m["seq"].as_u64().unwrap(),
            m["line"].as_str().unwrap().to_owned(),
        ));
    };
    assert_eq!(done["status"], "completed", "{done}");
    let lines: Vec<String> = seen.iter().map(|(_, l)| l.clone()).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected, "no gap, no repeat");
    let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(next_json(&mut socket).is_none(), "closed after done");
}

fn server_get(server: &Server, path: &str) -> (u16, Value) {
    common::answer_of(ureq::get(&server.url(path)).set("X-API-Key", ADMIN).call())
}

#[test]
fn events_arrive_for_each_step_and_a_tenant_sees_only_its_own() {
    let server = server();
    let (a, b) = (key_for(&server, "a"), key_for(&server, "b"));
    let mut all = connect(&server, "/ws/events?kind=workload", ADMIN);
    let mut only_a = connect(&server, "/ws/events", &a);
    let mut failed_only = connect(&server, "/ws/events?kind=workload&status=failed", ADMIN);
    let ours = submit(&server, &a, sum_workload(1, 2));
    let theirs = submit(&server, &b, sum_workload(3, 4));
    let bad = submit(
        &server,
        &a,
        json!({"runtime": "node", "code": "export default () => { throw new Error('no') }"}),
    );
    let mut steps = Vec::new();
    while steps.len() < 9 {
        let e = next_json(&mut all).expect("an event");
        assert_eq!(e["kind"], "workload");
        steps.push((
            e["id"].as_str().unwrap().to_owned(),
            e["type"].as_str().unwrap().to_owned(),
        ));
    }
    for id in [&ours, &theirs, &bad] {
        let mine: Vec<&str> = steps
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(mine, ["created", "started", "finished"], "{id}: {steps:?}");
    }
    let mut seen_by_a = Vec::new();
    while seen_by_a.len() < 6 {
        let e = next_json(&mut only_a).expect("an event");
        assert_eq!(e["tenant"], "a", "{e}");
        seen_by_a.push(e["id"].as_str().unwrap().to_owned());
    }
    assert!(!seen_by_a.contains(&theirs));
    let failed = next_json(&mut failed_only).expect("the failure");
    assert_eq!(
        (
            failed["id"].as_str(),
            failed["type"].as_str(),
            failed["status"].as_str()
        ),
        (Some(bad.as_str()), Some("finished"), Some("failed"))
    );
}

#[test]
fn keys_come_in_headers_or_the_subprotocol_never_in_the_url() {
    let server = server();
    let url = server.url("/ws/events").replace("http://", "ws://");
    // In the URL: refused before any upgrade.
    let err = tungstenite::connect(format!("{url}?api_key={ADMIN}")).unwrap_err();
    match err {
        tungstenite::Error::Http(response) => assert_eq!(response.status(), 401),
        other => panic!("{other}"),
    }
    // No key at all.
    let err = tungstenite::connect(url.as_str()).unwrap_err();
    assert!(
        matches!(err, tungstenite::Error::Http(ref r) if r.status() == 401),
        "{err}"
    );
    // A browser's way: the key as a subprotocol beside "vulcan", which is the one chosen.
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("vulcan, vulcan.key.{ADMIN}").parse().unwrap(),
    );
    let (mut socket, response) = tungstenite::connect(request).unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "vulcan"
    );
    socket.close(None).unwrap();
    // Stats come as JSON, scoped like /v1/stats.
    let mut stats = connect(&server, "/ws/stats", ADMIN);
    let first = next_json(&mut stats).unwrap();
    assert!(first["by_status"].is_object(), "{first}");
}

/// The server's resident memory, in bytes.
fn rss(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// A TCP connection whose receive buffer is tiny, so that a client that does not read
/// pushes back on the server at once.
fn tiny_stream(server: &Server) -> TcpStream {
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    // SAFETY: plain socket calls on a descriptor this function owns until it is wrapped.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 2048;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let std::net::SocketAddr::V4(v4) = addr else {
            panic!("loopback is IPv4 here")
        };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0);
        TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn a_consumer_that_never_reads_is_closed_and_the_server_memory_stays_bounded() {
    let server = server();
    let stream = tiny_stream(&server);
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut slow = connect_with(&server, "/ws/events", ADMIN, stream);
    let before = rss(&server);
    // Events pile up faster than they can be delivered: 400 workloads, 3 events each.
    let started = Instant::now();
    let agent = ureq::AgentBuilder::new().build();
    for _ in 0..400 {
        let r = agent
            .post(&server.url("/v1/workloads/async"))
            .set("X-API-Key", ADMIN)
            .send_json(sum_workload(1, 1));
        assert!(r.is_ok());
    }
    let after = rss(&server);
    eprintln!(
        "submitted 400 in {:?}; server RSS {} MB before, {} MB after",
        started.elapsed(),
        before >> 20,
        after >> 20
    );
    assert!(
        after < before + (64 << 20),
        "memory grew by {} MB",
        (after - before) >> 20
    );
    // The server gave up on it: a close for being too slow where it could still be sent,
    // the connection dropped otherwise; either way it says so in its metrics.
    let mut delivered = 0;
    let ended = loop {
        match slow.read() {
            Ok(Message::Text(_)) => delivered += 1,
            Ok(Message::Close(frame)) => break frame.map(|f| (f.code, f.reason.to_string())),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("still open after 30 s of not reading ({delivered} events read)")
            }
            Err(_) => break None,
        }
    };
    if let Some((code, reason)) = &ended {
        assert_eq!(*code, CloseCode::Policy, "{reason}");
        assert!(reason.contains("too slow"), "{reason}");
    }
    assert!(
        delivered < 1200,
        "it was cut off: {delivered} of 1200 events"
    );
    let metrics = ureq::get(&server.url("/metrics"))
        .set("X-API-Key", ADMIN)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("vulcan_websocket_slow_closed_total 1"),
        "{ended:?}"
    );
    // The server carries on.
    let (status, _) = server_get(&server, "/v1/stats");
    assert_eq!(status, 200);
}

#[test]
fn a_key_has_a_bounded_number_of_sockets_and_sends_small_messages_only() {
    let server = server();
    let key = key_for(&server, "t");
    let mut open: Vec<Socket> = (0..32)
        .map(|_| connect(&server, "/ws/events", &key))
        .collect();
    // The 33rd is refused, saying why; another key is not held to this one's count.
    let url = server.url("/ws/events").replace("http://", "ws://");
    let mut request = url.clone().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("X-API-Key", key.parse().unwrap());
    match tungstenite::connect(request) {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("VULCAN_WS_MAX_PER_KEY"), "{body}");
        }
        Ok(_) => panic!("a 33rd socket of one key was accepted"),
        Err(e) => panic!("{e}"),
    }
    let _other = connect(&server, "/ws/events", ADMIN);
    // A closed one frees its seat.
    let mut first = open.remove(0);
    first.close(None).unwrap();
    while first.read().is_ok() {}
    drop(first);
    let mut reopened = Vec::new();
    common::eventually(Duration::from_secs(5), "a seat to be free", || {
        let mut request = url.clone().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("X-API-Key", key.parse().unwrap());
        tungstenite::connect(request)
            .ok()
            .map(|(s, _)| reopened.push(s))
    });
    // A message over 64 KiB from the client ends its connection (1009: too big).
    let mut socket = connect(&server, "/ws/stats", ADMIN);
    socket
        .send(Message::Text("x".repeat(65 * 1024).into()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let closed = loop {
        assert!(
            Instant::now() < deadline,
            "the connection is still open after a 65 KiB message"
        );
        match socket.read() {
            Ok(Message::Close(frame)) => break frame.map(|f| f.code),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    assert!(
        closed.is_none() || closed == Some(CloseCode::Size),
        "closed for its size: {closed:?}"
    );
    // And the server stays fine.
    assert_eq!(server.get("/healthz").0, 200);
}
