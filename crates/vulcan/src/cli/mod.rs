//! The client subcommands: everything but `serve` talks to a server over HTTP.
//!
//! Exit status: 0 when the command (or the workload it ran) succeeded; for `run`, a failed
//! workload's own exit code (1 if it has none) and 137 for a killed one; 125 when Vulcan
//! itself failed (server unreachable, request refused).

mod bench;
mod client;
mod functions;
mod queues;
mod render;
mod run;
mod sandboxes;
mod schedules;
mod volumes;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use client::{CliResult, Client};
pub use render::Format;

/// Where the server is and how answers are shown; shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The server's URL.
    #[arg(
        long,
        env = "VULCAN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,

    /// API key, sent as X-API-Key.
    #[arg(long, env = "VULCAN_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,

    /// How answers are printed.
    #[arg(long, short = 'o', value_enum, default_value = "table", global = true)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Run a workload; follows its logs and prints its output, exiting as it did.
    Run(Box<run::RunArgs>),
    /// Show one workload.
    Status { id: String },
    /// Print a workload's log lines; -f follows them live until it ends.
    Logs {
        id: String,
        #[arg(short, long)]
        follow: bool,
        /// Only this stream: stdout, stderr or backend.
        #[arg(long)]
        stream: Option<String>,
    },
    /// List workloads, newest first.
    Ls {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        isolation: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Stop a pending or running workload.
    Kill { id: String },
    /// The backends and whether they can run here.
    Backends,
    /// Workload statistics.
    Stats,
    /// OCI images: pull, list, remove.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// The nodes of the cluster, with their state (live, lost, left).
    Nodes,
    /// API keys: create, list, revoke (admin).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Functions: deploy once, invoke many times (warm), list, roll back, remove.
    #[command(subcommand, name = "fn")]
    Fn(functions::FnCommand),
    /// Schedules: fire a function on a cron.
    #[command(subcommand)]
    Schedules(schedules::SchedulesCommand),
    /// Secrets: encrypted values code gets as environment variables.
    #[command(subcommand)]
    Secrets(schedules::SecretsCommand),
    /// Sandboxes held across many steps: create, ls, exec, sh, cp, pause, resume, timeout, rm.
    #[command(subcommand)]
    Sandbox(sandboxes::SandboxCommand),
    /// Volumes: named disks whose data outlives every sandbox: create, ls, rm.
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Queues: messages kept until acknowledged: create, ls, send, receive, ack, purge, rm.
    #[command(subcommand)]
    Queue(queues::QueueCommand),
    /// Topics: publish a message to every subscribed queue and function.
    #[command(subcommand)]
    Topic(queues::TopicCommand),
    /// Run the same workloads on every available backend and compare them.
    Benchmark(bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// admin, operator, developer or viewer.
        #[arg(long)]
        role: String,
        #[arg(long)]
        tenant: String,
        /// Lifetime in seconds [default: no expiry].
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// List keys (never their secrets).
    Ls,
    /// Revoke a key: it fails from its next request on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Pull an image and register it.
    Pull {
        reference: String,
        /// Run this image for oci workloads that name none.
        #[arg(long)]
        default: bool,
        /// Default resources of its workloads (all three or none).
        #[arg(long, requires_all = ["mem", "timeout"])]
        cpus: Option<u32>,
        #[arg(long, requires_all = ["cpus", "timeout"])]
        mem: Option<u32>,
        #[arg(long, requires_all = ["cpus", "mem"])]
        timeout: Option<u32>,
    },
    /// List registered images.
    Ls,
    /// Remove an image.
    Rm { reference: String },
}

fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn workload_rows(list: &[Value]) -> Vec<Vec<String>> {
    list.iter()
        .map(|w| {
            vec![
                render::cell(&w["id"]),
                render::cell(&w["status"]),
                render::cell(&w["isolation"]),
                render::cell(&w["runtime"]),
                w["duration_ms"]
                    .as_u64()
                    .map_or("-".into(), |d| format!("{d} ms")),
                render::cell(&w["created_at"]),
            ]
        })
        .collect()
}

/// Runs a client command; the exit code follows the module documentation.
pub fn main(conn: Connection, command: ClientCommand) -> ExitCode {
    let client = Client::new(&conn.server, conn.api_key.clone());
    let result = dispatch(&client, conn.output, command);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vulcan: {e}");
            ExitCode::from(125)
        }
    }
}

fn print(format: Format, value: &Value, table: impl FnOnce(&Value)) {
    match format {
        Format::Json => render::json(value),
        Format::Table => table(value),
    }
}

const WORKLOAD_FIELDS: [&str; 17] = [
    "id",
    "status",
    "isolation",
    "requested_isolation",
    "runtime",
    "exit_code",
    "error",
    "duration_ms",
    "cpu_time_ms",
    "peak_memory_bytes",
    "max_processes",
    "request_id",
    "cpu_limit",
    "mem_limit",
    "timeout_s",
    "created_at",
    "finished_at",
];

fn dispatch(client: &Client, format: Format, command: ClientCommand) -> CliResult<ExitCode> {
    match command {
        ClientCommand::Run(args) => return run::run(client, format, *args),
        ClientCommand::Logs { id, follow, stream } => {
            return run::logs(client, format, &id, follow, stream.as_deref())
        }
        ClientCommand::Benchmark(args) => return bench::benchmark(client, format, args),
        ClientCommand::Fn(command) => return functions::command(client, format, command),
        ClientCommand::Sandbox(command) => return sandboxes::command(client, format, command),
        ClientCommand::Volume(command) => volumes::command(client, format, command)?,
        ClientCommand::Queue(command) => queues::command(client, format, command)?,
        ClientCommand::Topic(command) => queues::topic_command(client, format, command)?,
        ClientCommand::Status { id } => {
            let w = client.get(&format!("/v1/workloads/{}", encode(&id)))?;
            print(format, &w, |w| {
                render::fields(w, &WORKLOAD_FIELDS);
                if let Some(out) = w["output"].as_str() {
                    println!("output\n{out}");
                }
            });
        }
        ClientCommand::Ls {
            status,
            isolation,
            limit,
            offset,
        } => {
            let mut query = format!("/v1/workloads?limit={limit}&offset={offset}");
            if let Some(s) = status {
                query.push_str(&format!("&status={}", encode(&s)));
            }
            if let Some(i) = isolation {
                query.push_str(&format!("&isolation={}", encode(&i)));
            }
            let page = client.get(&query)?;
            print(format, &page, |page| {
                let list = page["workloads"].as_array().cloned().unwrap_or_default();
                render::table(
                    &[
                        "ID",
                        "STATUS",
                        "ISOLATION",
                        "RUNTIME",
                        "DURATION",
                        "CREATED",
                    ],
                    &workload_rows(&list),
                );
                println!(
                    "{} of {} (offset {})",
                    list.len(),
                    render::cell(&page["total"]),
                    render::cell(&page["offset"])
                );
            });
        }
        ClientCommand::Kill { id } => {
            let w = client.delete(&format!("/v1/workloads/{}", encode(&id)))?;
            print(format, &w, |w| {
                println!(
                    "{} {}",
                    render::cell(&w["id"]),
                    render::status(&render::cell(&w["status"]))
                )
            });
        }
        ClientCommand::Backends => {
            let list = client.get("/v1/backends")?;
            print(format, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| {
                        vec![
                            render::cell(&b["name"]),
                            if b["available"].as_bool() == Some(true) {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                            render::cell(&b["capabilities"]["supported_runtimes"]),
                            render::cell(&b["capabilities"]["max_concurrency"]),
                            b["reason"].as_str().map(str::to_owned).unwrap_or_else(|| {
                                b["details"].as_object().map_or(String::new(), |d| {
                                    d.iter()
                                        .filter(|(_, v)| v.is_string() || v.is_number())
                                        .map(|(k, v)| format!("{k}={}", render::cell(v)))
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                })
                            }),
                        ]
                    })
                    .collect();
                render::table(
                    &["NAME", "AVAILABLE", "RUNTIMES", "CONCURRENCY", "DETAILS"],
                    &rows,
                );
            });
        }
        ClientCommand::Stats => {
            let stats = client.get("/v1/stats")?;
            print(format, &stats, |s| {
                println!(
                    "total {}   average {} ms",
                    render::cell(&s["total"]),
                    render::cell(&s["avg_duration_ms"])
                );
                if let Some(by) = s["by_status"].as_object() {
                    let line: Vec<String> = by
                        .iter()
                        .map(|(k, v)| format!("{} {}", render::status(k), v))
                        .collect();
                    println!("{}", line.join("   "));
                }
                let rows: Vec<Vec<String>> = s["backends"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, b)| {
                        vec![
                            name.clone(),
                            render::cell(&b["finished"]),
                            render::cell(&b["avg_duration_ms"]),
                            render::cell(&b["p50_duration_ms"]),
                            render::cell(&b["p95_duration_ms"]),
                        ]
                    })
                    .collect();
                if !rows.is_empty() {
                    render::table(
                        &["BACKEND", "FINISHED", "AVG MS", "P50 MS", "P95 MS"],
                        &rows,
                    );
                }
            });
        }
        ClientCommand::Images(images) => images_command(client, format, images)?,
        ClientCommand::Schedules(command) => schedules::schedules(client, format, command)?,
        ClientCommand::Secrets(command) => schedules::secrets(client, format, command)?,
        ClientCommand::Keys(keys) => keys_command(client, format, keys)?,
        ClientCommand::Nodes => {
            let nodes = client.get("/v1/nodes")?;
            print(format, &nodes, |nodes| {
                let rows: Vec<Vec<String>> = nodes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| {
                        let backends: Vec<String> = n["backends"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|b| {
                                let mark = if b["available"].as_bool() == Some(true) {
                                    ""
                                } else {
                                    " (unavailable)"
                                };
                                format!("{}{mark}", render::cell(&b["name"]))
                            })
                            .collect();
                        vec![
                            render::cell(&n["id"]),
                            render::cell(&n["state"]),
                            render::cell(&n["heartbeat_at"]),
                            render::cell(&n["hostname"]),
                            render::cell(&n["cpus"]),
                            format!(
                                "{}/{} MB",
                                render::cell(&n["memory_used_mb"]),
                                render::cell(&n["memory_total_mb"])
                            ),
                            render::cell(&n["active_workloads"]),
                            backends.join(", "),
                        ]
                    })
                    .collect();
                render::table(
                    &[
                        "ID",
                        "STATE",
                        "HEARTBEAT",
                        "HOSTNAME",
                        "CPUS",
                        "MEMORY",
                        "ACTIVE",
                        "BACKENDS",
                    ],
                    &rows,
                );
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn keys_command(client: &Client, format: Format, command: KeysCommand) -> CliResult<()> {
    let rows = |list: &Value| {
        let rows: Vec<Vec<String>> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|k| {
                let state = if !k["revoked_at"].is_null() {
                    "revoked".to_owned()
                } else if let Some(at) = k["expires_at"].as_str() {
                    format!("expires {at}")
                } else {
                    "active".to_owned()
                };
                vec![
                    render::cell(&k["id"]),
                    render::cell(&k["name"]),
                    render::cell(&k["role"]),
                    render::cell(&k["tenant"]),
                    state,
                    render::cell(&k["created_at"]),
                ]
            })
            .collect();
        render::table(&["ID", "NAME", "ROLE", "TENANT", "STATE", "CREATED"], &rows);
    };
    match command {
        KeysCommand::Create {
            name,
            role,
            tenant,
            expires_in,
        } => {
            let mut body = json!({"name": name, "role": role, "tenant": tenant});
            if let Some(s) = expires_in {
                body["expires_in_s"] = json!(s);
            }
            let created = client.post("/v1/keys", &body)?;
            print(format, &created, |k| {
                println!("{}", render::cell(&k["key"]));
                eprintln!(
                    "key {} ({} of tenant {}): shown once, keep it now",
                    render::cell(&k["id"]),
                    render::cell(&k["role"]),
                    render::cell(&k["tenant"])
                );
            });
        }
        KeysCommand::Ls => {
            let list = client.get("/v1/keys")?;
            print(format, &list, rows);
        }
        KeysCommand::Revoke { id } => {
            let revoked = client.delete(&format!("/v1/keys/{}", encode(&id)))?;
            print(format, &revoked, |k| {
                println!("revoked {}", render::cell(&k["id"]))
            });
        }
    }
    Ok(())
}

/// What each node keeps of an image for microVMs: `node: root MB + N snapshots (MB)`.
fn microvm_templates(kept: &Value) -> String {
    let mb = |v: &Value| v.as_f64().unwrap_or(0.0) / 1e6;
    kept.as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}: root {:.0} MB + {} snapshot(s) {:.0} MB",
                render::cell(&t["node"]),
                mb(&t["root_bytes"]),
                render::cell(&t["snapshots"]),
                mb(&t["snapshot_bytes"])
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn images_command(client: &Client, format: Format, command: ImagesCommand) -> CliResult<()> {
    let image_rows = |list: &Value| {
        let rows: Vec<Vec<String>> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                vec![
                    render::cell(&i["reference"]),
                    render::cell(&i["digest"]).chars().take(19).collect(),
                    format!("{:.1} MB", i["size_bytes"].as_f64().unwrap_or(0.0) / 1e6),
                    if i["default"].as_bool() == Some(true) {
                        "yes".into()
                    } else {
                        String::new()
                    },
                    render::cell(&i["pulled_at"]),
                    microvm_templates(&i["microvm"]),
                ]
            })
            .collect();
        render::table(
            &[
                "REFERENCE",
                "DIGEST",
                "SIZE",
                "DEFAULT",
                "PULLED",
                "MICROVM",
            ],
            &rows,
        );
    };
    match command {
        ImagesCommand::Pull {
            reference,
            default,
            cpus,
            mem,
            timeout,
        } => {
            let mut body = json!({"reference": reference, "default": default});
            if let (Some(cpus), Some(mem_mb), Some(timeout_s)) = (cpus, mem, timeout) {
                body["resources"] = json!({"cpus": cpus, "mem_mb": mem_mb, "timeout_s": timeout_s});
            }
            let pulling = render::spinner(format!("pulling {reference}"));
            let record = client.post("/v1/images", &body);
            pulling.finish_and_clear();
            let record = record?;
            print(format, &record, |r| {
                image_rows(&Value::Array(vec![r.clone()]))
            });
        }
        ImagesCommand::Ls => {
            let list = client.get("/v1/images")?;
            print(format, &list, image_rows);
        }
        ImagesCommand::Rm { reference } => {
            client.delete(&format!("/v1/images/{reference}"))?;
            print(format, &json!({"removed": reference}), |_| {
                println!("removed {reference}")
            });
        }
    }
    Ok(())
}
