//! Traces exported over OTLP: real `vulcan serve` nodes on a real PostgreSQL server of the
//! test's own, running real Deno isolates, exporting to an OTLP/HTTP receiver the test runs
//! on loopback, which decodes what it is sent (OTLP protobuf, as a collector would).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, Server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use serde_json::{json, Value};
use vulcan_store::testing::PgServer;

/// One span as the receiver got it.
#[derive(Debug, Clone)]
struct Seen {
    node: String,
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    attributes: HashMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf body, answered 200.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || serve(stream, &kept));
            }
        });
        Receiver { port, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn of_trace(&self, trace: &str) -> Vec<Seen> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.trace == trace).cloned().collect()
    }
}

/// Serves one connection's requests (the exporter keeps it alive).
fn serve(stream: TcpStream, spans: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        assert!(line.starts_with("POST /v1/traces "), "{line}");
        let mut length = 0;
        let mut content_type = String::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "content-type" => content_type = value.trim().to_owned(),
                _ => {}
            }
        }
        assert_eq!(content_type, "application/x-protobuf");
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for resource_spans in request.resource_spans {
            let resource: HashMap<String, String> = resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default()
                .into_iter()
                .map(|kv| (kv.key, text(&kv.value)))
                .collect();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.lock().unwrap().push(Seen {
                        node: resource
                            .get("service.instance.id")
                            .cloned()
                            .unwrap_or_default(),
                        service: resource.get("service.name").cloned().unwrap_or_default(),
                        trace: hex(&span.trace_id),
                        id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                        name: span.name,
                        attributes: span
                            .attributes
                            .into_iter()
                            .map(|kv| (kv.key, text(&kv.value)))
                            .collect(),
                    });
                }
            }
        }
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Runs `body` on `server` synchronously with the request header `traceparent`.
fn run_traced(server: &Server, traceparent: Option<&str>, body: &Value) -> Value {
    let mut request =
        ureq::post(&server.url("/v1/workloads")).set("Content-Type", "application/json");
    if let Some(traceparent) = traceparent {
        request = request.set("traceparent", traceparent);
    }
    let answer = request.send_string(&body.to_string()).expect("a 200");
    answer.into_json().unwrap()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn echo_traceparent() -> Value {
    json!({"runtime": "node", "code": "export default () => Deno.env.get('TRACEPARENT') ?? 'none'"})
}

#[test]
fn a_workload_submitted_to_one_node_and_run_on_another_is_one_trace() {
    let receiver = Receiver::start();
    let endpoint = receiver.endpoint();
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let node = |id: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut env = vec![
            ("VULCAN_DATABASE_URL", url.as_str()),
            ("VULCAN_NODE_ID", id),
            ("VULCAN_ISOLATE_POOL_SIZE", "1"),
            (
                "VULCAN_SECRET_KEY",
                "dHJhY2VzLXRlc3Qta2V5LTMyLWJ5dGVzLWxvbmchISE=",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "vulcan-under-test"),
        ];
        env.extend_from_slice(extra);
        Server::start(&env)
    };
    // A cannot run isolates: what it admits, B runs.
    let a = node("a", &[("VULCAN_DENO_BIN", "/nonexistent/deno")]);
    let b = node("b", &[]);
    eventually(Duration::from_secs(20), "b to be live", || {
        let (_, nodes) = a.get("/v1/nodes");
        nodes
            .as_array()?
            .iter()
            .any(|n| n["id"] == "b" && n["state"] == "live")
            .then_some(())
    });
    // B's one pooled isolate process is ready (on a loaded machine its start can trail B's
    // liveness), so the run below takes it.
    eventually(
        Duration::from_secs(30),
        "b's isolate pool to be filled",
        || {
            let (_, backends) = b.get("/v1/backends");
            backends
                .as_array()?
                .iter()
                .any(|x| {
                    x["name"] == "isolate"
                        && x["details"]["warm_pool"]["idle"].as_u64().unwrap_or(0) >= 1
                })
                .then_some(())
        },
    );

    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    let w = run_traced(&a, Some(&traceparent), &echo_traceparent());
    assert_eq!(
        (w["status"].as_str(), w["node_id"].as_str()),
        (Some("completed"), Some("b")),
        "{w}"
    );
    assert_eq!(w["trace_id"], TRACE, "{w}");
    // Its code got the trace context, in the trace the client started.
    let seen_by_code = w["output"].as_str().unwrap().trim_matches('"').to_owned();
    assert!(
        seen_by_code.starts_with(&format!("00-{TRACE}-")),
        "{seen_by_code}"
    );

    let wanted = [
        "POST /v1/workloads",
        "admission",
        "store.enqueue",
        "queue wait",
        "claim",
        "run",
        "preparation",
        "execution",
        "store.finish",
    ];
    let spans = eventually(Duration::from_secs(15), "the trace's spans", || {
        let spans = receiver.of_trace(TRACE);
        wanted
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name))
            .then_some(spans)
    });
    let one = |name: &str| spans.iter().find(|s| s.name == name).unwrap().clone();
    let (request, admission, run) = (one("POST /v1/workloads"), one("admission"), one("run"));
    assert!(
        spans.iter().all(|s| s.service == "vulcan-under-test"),
        "{spans:?}"
    );
    // The request continues the client's span; admission is on A, the run on B, its
    // child; the code's context is the run's.
    assert_eq!(request.parent, CLIENT_SPAN, "{request:?}");
    assert_eq!(request.node, "a");
    assert_eq!(admission.parent, request.id, "{admission:?}");
    assert_eq!(admission.node, "a");
    assert_eq!(
        (run.node.as_str(), run.parent.as_str()),
        ("b", admission.id.as_str())
    );
    assert_eq!(seen_by_code, format!("00-{TRACE}-{}-01", run.id));
    let claim = one("claim");
    assert_eq!(claim.attributes["vulcan.node"], "b", "{claim:?}");
    assert_eq!(one("queue wait").node, "b");
    for name in ["preparation", "execution", "store.finish"] {
        let span = one(name);
        assert_eq!(
            (span.node.as_str(), span.parent.as_str()),
            ("b", run.id.as_str()),
            "{span:?}"
        );
    }
    assert_eq!(
        one("preparation").attributes["vulcan.preparation"],
        "pool",
        "a warm isolate process was taken"
    );

    // Without a traceparent a request starts a trace of its own.
    let w = run_traced(&a, None, &echo_traceparent());
    let own = w["trace_id"].as_str().unwrap().to_owned();
    assert_eq!(own.len(), 32);
    assert_ne!(own, TRACE);
    eventually(Duration::from_secs(15), "the new trace's run", || {
        receiver
            .of_trace(&own)
            .iter()
            .any(|s| s.name == "run" && s.node == "b")
            .then_some(())
    });
}

/// `vulcan_trace_spans_total{outcome}` on `server`.
fn spans_counted(server: &Server, outcome: &str) -> f64 {
    common::metrics(server)
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "vulcan_trace_spans_total{{outcome=\"{outcome}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn a_collector_that_is_down_costs_requests_nothing_and_its_spans_are_counted_dropped() {
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let server = Server::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())]);
    let started = Instant::now();
    for _ in 0..10 {
        let w = run_traced(&server, None, &echo_traceparent());
        assert_eq!(w["status"], "completed", "{w}");
        assert_eq!(w["trace_id"].as_str().map(str::len), Some(32), "{w}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ten workloads took {:?} with the collector down",
        started.elapsed()
    );
    eventually(
        Duration::from_secs(15),
        "dropped spans to be counted",
        || (spans_counted(&server, "dropped") >= 10.0).then_some(()),
    );
    assert_eq!(spans_counted(&server, "exported"), 0.0);

    // A retry stays in its first attempt's trace.
    let first = server.submit(json!({
        "runtime": "node", "code": "export default () => { throw new Error('no') }",
        "retry": {"max_attempts": 2, "backoff_s": 0},
    }));
    let first = server.wait_terminal(&first, Duration::from_secs(30));
    let retry = eventually(Duration::from_secs(30), "the retry", || {
        let (_, page) = server.get("/v1/workloads?limit=100");
        page["workloads"]
            .as_array()?
            .iter()
            .find(|w| w["trigger"] == json!({"kind": "retry", "id": first["id"]}))
            .cloned()
    });
    assert_eq!(
        first["trace_id"].as_str().map(str::len),
        Some(32),
        "{first}"
    );
    assert_eq!(retry["trace_id"], first["trace_id"], "{retry}");

    // Without the variables nothing is traced: no trace id, no TRACEPARENT.
    let plain = Server::start(&[]);
    let w = run_traced(&plain, None, &echo_traceparent());
    assert_eq!(
        (w["trace_id"].clone(), w["output"].clone()),
        (Value::Null, json!("\"none\"")),
        "{w}"
    );
    assert_eq!(spans_counted(&plain, "dropped"), 0.0);
}
