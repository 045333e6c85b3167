//! What the queue tests share: a queue made, messages sent and received, a node of a
//! cluster, a function's invocations.

use serde_json::{json, Value};

use super::Server;

pub fn made(server: &Server, body: Value) -> Value {
    let (status, q) = server.post("/v1/queues", &body);
    assert_eq!(status, 201, "{q}");
    q
}

pub fn send(server: &Server, queue: &str, body: Value) -> Value {
    let (status, sent) = server.post(&format!("/v1/queues/{queue}/messages"), &body);
    assert_eq!(status, 201, "{sent}");
    sent
}

pub fn receive(server: &Server, queue: &str, max: u32, wait_s: u32) -> Vec<Value> {
    let (status, got) = server.post(
        &format!("/v1/queues/{queue}/receive"),
        &json!({"max": max, "wait_s": wait_s}),
    );
    assert_eq!(status, 200, "{got}");
    got["messages"].as_array().unwrap().clone()
}

/// A node of a cluster on the PostgreSQL database at `url`.
pub fn pg_node(url: &str, id: &str) -> Server {
    Server::start(&[
        ("VULCAN_DATABASE_URL", url),
        ("VULCAN_NODE_ID", id),
        // Every node of a cluster opens secrets with the same key.
        (
            "VULCAN_SECRET_KEY",
            "cXVldWUtdGVzdC1rZXktMzItYnl0ZXMtbG9uZy4uLi4=",
        ),
    ])
}

/// Every invocation of `function`, following the pages.
pub fn invocations(server: &Server, function: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = server.get(&format!(
            "/v1/workloads?function={function}&limit=100{after}"
        ));
        assert_eq!(status, 200, "{page}");
        all.extend(page["workloads"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return all,
        }
    }
}
