//! `vulcan benchmark`: starts the server's benchmark, shows its progress, prints the
//! comparison, and can write a self-contained HTML report with charts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::client::{CliError, CliResult, Client};
use super::render::{self, Format};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Sequential runs per backend, and runs of the concurrent phase.
    #[arg(long, default_value_t = 20)]
    iterations: u32,
    /// Runs in flight during the throughput phase.
    #[arg(long, default_value_t = 4)]
    concurrency: u32,
    /// The image of the gvisor runs [default: the server's default image], and of the
    /// microvm runs (instead of the built-in python root) when given.
    #[arg(long)]
    image: Option<String>,
    /// Only these backends (comma-separated).
    #[arg(long, value_delimiter = ',')]
    backends: Vec<String>,
    /// Print the report as JSON (same as --output json).
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page with charts.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Columns of the table and the charts: (key, title, unit).
const METRICS: [(&str, &str, &str); 6] = [
    ("cold_start_ms", "cold start", "ms"),
    ("warm_start_ms", "warm start", "ms"),
    ("p50_ms", "p50", "ms"),
    ("p95_ms", "p95", "ms"),
    ("throughput_per_s", "throughput", "/s"),
    ("memory_per_workload_mb", "memory per workload", "MB"),
];

pub fn benchmark(client: &Client, format: Format, args: BenchArgs) -> CliResult<ExitCode> {
    let mut request = json!({"iterations": args.iterations, "concurrency": args.concurrency});
    if let Some(image) = &args.image {
        request["image"] = json!(image);
    }
    if !args.backends.is_empty() {
        request["backends"] = json!(args.backends);
    }
    let started = client.post("/v1/benchmarks", &request)?;
    let id = started["id"]
        .as_str()
        .ok_or_else(|| CliError("the server answered without a benchmark id".into()))?
        .to_owned();
    // On stderr, and only on a terminal (indicatif hides it otherwise).
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} runs  {elapsed}")
            .expect("a valid template")
            .progress_chars("#>-"),
    );
    let report = loop {
        let report = client.get(&format!("/v1/benchmarks/{id}"))?;
        let (done, total) = (
            report["progress"]["done"].as_u64().unwrap_or(0),
            report["progress"]["total"].as_u64().unwrap_or(0),
        );
        bar.set_length(total);
        bar.set_position(done);
        if report["status"] != "running" {
            bar.finish_and_clear();
            break report;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if let Some(path) = &args.report {
        std::fs::write(path, html(&report))
            .map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("report written to {}", path.display());
    }
    if args.json || format == Format::Json {
        render::json(&report);
    } else {
        table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn table(report: &Value) {
    let results = report["results"].as_array().cloned().unwrap_or_default();
    let mut headers = vec!["BACKEND", "MODE"];
    headers.extend(METRICS.iter().map(|(_, title, _)| *title));
    headers.push("FAILED");
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let mut row = vec![
                render::cell(&r["backend"]),
                r["mode"].as_str().unwrap_or("workload").to_owned(),
            ];
            if let Some(reason) = r["skipped"].as_str() {
                row.extend(METRICS.iter().map(|_| "-".to_owned()));
                row.push(format!("skipped: {reason}"));
                return row;
            }
            row.extend(METRICS.iter().map(|(key, _, unit)| {
                r[*key]
                    .as_f64()
                    .map_or("-".into(), |v| format!("{v:.1} {unit}"))
            }));
            row.push(format!(
                "{}/{}",
                render::cell(&r["failed_runs"]),
                render::cell(&r["runs"])
            ));
            row
        })
        .collect();
    render::table(&headers, &rows);
    for r in &results {
        if let Some(starts) = r["start_ms"].as_object().filter(|m| !m.is_empty()) {
            let side_by_side: Vec<String> = starts
                .iter()
                .map(|(how, ms)| format!("{how} {:.0} ms", ms.as_f64().unwrap_or(0.0)))
                .collect();
            println!(
                "{} sandbox start (median): {}",
                render::cell(&r["backend"]),
                side_by_side.join(", ")
            );
        }
    }
    println!(
        "node {}, {} CPUs, {} iterations, concurrency {}",
        render::cell(&report["node_id"]),
        render::cell(&report["cpus"]),
        render::cell(&report["request"]["iterations"]),
        render::cell(&report["request"]["concurrency"])
    );
}

/// A self-contained page: the report as JSON, and the dashboard's chart script, which draws
/// one SVG bar chart per metric from it (no network, no external files).
pub fn html(report: &Value) -> String {
    let data = report.to_string().replace("</", "<\\/");
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Vulcan benchmark {id}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }}
h1 {{ font-size: 1.4rem; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1.5rem; }}
figure {{ margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem; }}
figcaption {{ font-weight: 600; margin-bottom: 0.4rem; }}
table {{ border-collapse: collapse; margin-top: 1.5rem; }}
td, th {{ border-bottom: 1px solid #eee; padding: 0.3rem 0.8rem; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.bar {{ fill: #d9480f; }}
</style>
</head>
<body>
<h1>Vulcan benchmark <code>{id}</code></h1>
<p id="summary"></p>
<div class="charts" id="charts"></div>
<table id="figures"></table>
<script type="application/json" id="report">{data}</script>
<script>{charts}</script>
<script>
(function () {{
  const report = JSON.parse(document.getElementById("report").textContent);
  document.getElementById("summary").textContent =
    `node ${{report.node_id}}, ${{report.cpus}} CPUs, ${{report.request.iterations}} iterations, ` +
    `concurrency ${{report.request.concurrency}}, finished ${{report.finished_at || "(running)"}}`;
  const drawn = window.vulcanBenchmarkCharts(report, document.getElementById("charts"), document.getElementById("figures"));
  document.body.setAttribute("data-charts", String(drawn));
}})();
</script>
</body>
</html>
"##,
        id = render::cell(&report["id"]),
        charts = vulcan_api::dashboard::CHARTS_JS.replace("</", "<\\/"),
    )
}
