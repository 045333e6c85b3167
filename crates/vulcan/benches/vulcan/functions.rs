//! Function figures: invocations of a warm node function (one client back to back; four
//! clients back to back for ten seconds), beside one-shot isolate workloads under the
//! same back-to-back load.
use serde_json::json;

use super::common::{sum_workload, Server};
use super::{for_seconds, measure};

fn put(server: &Server, path: &str, body: &serde_json::Value) {
    let r = ureq::put(&server.url(path))
        .send_json(body.clone())
        .unwrap();
    assert!(r.status() < 300);
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
