//! Function figures: invocations of a warm node function (one client back to back; four
//! clients back to back for ten seconds), beside one-shot isolate workloads under the
//! same back-to-back load.

use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{sum_workload, Server};
use super::{measure, Figures};

fn put(server: &Server, path: &str, body: &serde_json::Value) {
    let r = ureq::put(&server.url(path))
        .send_json(body.clone())
        .unwrap();
    assert!(r.status() < 300);
}

/// `clients` threads invoking back to back for `secs` seconds.
fn for_seconds(name: &str, clients: usize, secs: u64, f: impl Fn() + Sync) -> Figures {
    let stop = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let samples = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let mut v = Vec::new();
                    while Instant::now() < stop {
                        let t = Instant::now();
                        f();
                        v.push(t.elapsed());
                    }
                    v
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    Figures {
        name: name.into(),
        samples,
        wall: started.elapsed(),
    }
}

pub fn run(n: usize) {
    let server = Server::start(&[("VULCAN_ISOLATE_POOL_SIZE", "4")]);
    put(
        &server,
        "/v1/functions/sum",
        &json!({"runtime": "node", "code": "export default (i) => ({sum: i.a + i.b})", "max_instances": 4}),
    );
    let invoke = || {
        let (status, w) = server.post("/v1/functions/sum/invoke", &json!({"a": 1, "b": 2}));
        assert_eq!(
            (status, w["output"].as_str()),
            (200, Some("{\"sum\":3}")),
            "{w}"
        );
    };
    for _ in 0..50 {
        invoke();
    }
    measure("function warm: 1 client back to back", n, 1, invoke).print();
    for_seconds("function warm: 4 clients back to back, 10 s", 4, 10, invoke).print();
    let one_shot = || {
        let w = server.run(sum_workload(1, 2));
        assert_eq!(w["output"], "{\"sum\":3}", "{w}");
    };
    measure(
        "one-shot isolate: 1 client back to back",
        n.min(200),
        1,
        one_shot,
    )
    .print();
    for_seconds(
        "one-shot isolate: 4 clients back to back, 10 s",
        4,
        10,
        one_shot,
    )
    .print();
}
