//! What exporting traces costs: the same sync isolate workloads back to back (one client)
//! and at four clients for ten seconds, on a server with traces off, then on one exporting
//! every span over OTLP/HTTP to a loopback sink (which reads each request and answers 200,
//! as a collector would, without decoding it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use super::common::{metrics, sum_workload, Server};
use super::{for_seconds, measure};

/// A loopback OTLP/HTTP endpoint that takes every request; its URL.
fn sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        let header = line.trim_end().to_ascii_lowercase();
                        if header.is_empty() {
                            break;
                        }
                        if let Some(v) = header.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                    if writer.write_all(ok.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// `vulcan_trace_spans_total{outcome}`.
fn spans(server: &Server, outcome: &str) -> u64 {
    let wanted = format!("vulcan_trace_spans_total{{outcome=\"{outcome}\"}} ");
    metrics(server)
        .lines()
        .find_map(|l| l.strip_prefix(&wanted)?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

pub fn run(n: usize) {
    let endpoint = sink();
    for (label, env) in [
        ("traces off", vec![]),
        (
            "traces on",
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
        ),
    ] {
        let mut env = env;
        env.push(("VULCAN_ISOLATE_POOL_SIZE", "2"));
        let server = Server::start(&env);
        // Warm: the pool filled, the connection made.
        for _ in 0..20 {
            server.run(sum_workload(1, 2));
        }
        measure(&format!("{label}: sync isolate, 1 client"), n, 1, || {
            assert_eq!(server.run(sum_workload(1, 2))["status"], "completed");
        })
        .print();
        for_seconds(&format!("{label}: sync isolate, 4 clients"), 4, 10, || {
            assert_eq!(server.run(sum_workload(1, 2))["status"], "completed");
        })
        .print();
        std::thread::sleep(std::time::Duration::from_millis(500));
        println!(
            "{label}: spans exported {}, dropped {}",
            spans(&server, "exported"),
            spans(&server, "dropped")
        );
    }
}
