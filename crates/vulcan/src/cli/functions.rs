//! `vulcan fn`: deploy functions, invoke them, list them and their versions, roll back,
//! remove.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{CliResult, Client};
use super::render::{self, Format};
use super::run::{exit_code_of, input_value, usage, CodeArgs};
use super::{encode, print};

#[derive(Debug, Subcommand)]
pub enum FnCommand {
    /// Deploy a new version of a function (identical content keeps the current one).
    Deploy(Box<DeployArgs>),
    /// Invoke a function's active version; prints its output, exiting as it did.
    Invoke {
        name: String,
        /// The input: JSON, or @FILE to read it from a file.
        #[arg(long)]
        input: Option<String>,
        /// Start the invocation and print its workload id without waiting.
        #[arg(long = "async")]
        detach: bool,
    },
    /// List functions with their active version, warm instances and invocations.
    Ls,
    /// List a function's versions, newest first.
    Versions { name: String },
    /// Make an earlier (or later) version active again.
    Rollback { name: String, version: u32 },
    /// Delete a function: its instances stop, its history stays.
    Rm { name: String },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    name: String,
    #[command(flatten)]
    code: CodeArgs,
    /// Give every invocation a fresh instance (the code may then be a plain script).
    #[arg(long)]
    no_reuse: bool,
    /// Warm instances at once, per node [default: 4].
    #[arg(long)]
    max_instances: Option<u32>,
    /// Seconds an idle instance is kept [default: 300].
    #[arg(long)]
    idle_timeout: Option<u32>,
    /// Its HTTP trigger (/fn/TENANT/NAME) needs no API key.
    #[arg(long)]
    public: bool,
}

impl DeployArgs {
    fn body(&self) -> CliResult<Value> {
        let mut body = self.code.body()?;
        if self.no_reuse {
            body["reuse"] = json!(false);
        }
        if let Some(n) = self.max_instances {
            body["max_instances"] = json!(n);
        }
        if let Some(s) = self.idle_timeout {
            body["idle_timeout_s"] = json!(s);
        }
        if self.public {
            body["public"] = json!(true);
        }
        Ok(body)
    }
}

fn short(digest: &Value) -> String {
    render::cell(digest).chars().take(12).collect()
}

pub fn command(client: &Client, format: Format, command: FnCommand) -> CliResult<ExitCode> {
    match command {
        FnCommand::Deploy(args) => {
            let body = args.body()?;
            let deployed = client.put(&format!("/v1/functions/{}", encode(&args.name)), &body)?;
            print(format, &deployed, |d| {
                let what = if d["changed"] == true {
                    "deployed"
                } else {
                    "unchanged, still"
                };
                println!(
                    "{} {what} version {} (digest {})",
                    render::cell(&d["name"]),
                    render::cell(&d["version"]),
                    short(&d["digest"])
                );
            });
        }
        FnCommand::Invoke {
            name,
            input,
            detach,
        } => {
            let input = match input {
                Some(text) => input_value(&text)?,
                None => Value::Null,
            };
            let path = format!(
                "/v1/functions/{}/invoke{}",
                encode(&name),
                if detach { "/async" } else { "" }
            );
            let workload = client.post(&path, &input)?;
            if detach {
                print(format, &workload, |w| {
                    println!("{}", render::cell(&w["id"]))
                });
                return Ok(ExitCode::SUCCESS);
            }
            print(format, &workload, |w| {
                if let Some(output) = w["output"].as_str().filter(|o| !o.is_empty()) {
                    println!("{output}");
                }
                if w["status"] != "completed" {
                    eprintln!(
                        "vulcan: invocation {} {}: {}",
                        render::cell(&w["id"]),
                        render::cell(&w["status"]),
                        w["error"].as_str().unwrap_or("no error recorded")
                    );
                }
            });
            return Ok(exit_code_of(&workload));
        }
        FnCommand::Ls => {
            let list = client.get("/v1/functions")?;
            print(format, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| {
                        vec![
                            render::cell(&f["name"]),
                            render::cell(&f["tenant"]),
                            format!(
                                "{}/{}",
                                render::cell(&f["active_version"]),
                                render::cell(&f["latest_version"])
                            ),
                            render::cell(&f["runtime"]),
                            render::cell(&f["instances"]),
                            render::cell(&f["invocations"]),
                            if f["public"] == true { "yes" } else { "" }.into(),
                            render::cell(&f["updated_at"]),
                        ]
                    })
                    .collect();
                render::table(
                    &[
                        "NAME",
                        "TENANT",
                        "ACTIVE/LATEST",
                        "RUNTIME",
                        "WARM",
                        "INVOCATIONS",
                        "PUBLIC",
                        "UPDATED",
                    ],
                    &rows,
                );
            });
        }
        FnCommand::Versions { name } => {
            let path = format!("/v1/functions/{}", encode(&name));
            let active = client.get(&path)?["active_version"].clone();
            let list = client.get(&format!("{path}/versions"))?;
            print(format, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| {
                        vec![
                            render::cell(&v["version"]),
                            if v["version"] == active { "*" } else { "" }.into(),
                            short(&v["digest"]),
                            render::cell(&v["runtime"]),
                            render::cell(&v["isolation"]),
                            if v["reuse"] == true { "warm" } else { "fresh" }.into(),
                            render::cell(&v["created_at"]),
                        ]
                    })
                    .collect();
                render::table(
                    &[
                        "VERSION",
                        "ACTIVE",
                        "DIGEST",
                        "RUNTIME",
                        "ISOLATION",
                        "INSTANCES",
                        "CREATED",
                    ],
                    &rows,
                );
            });
        }
        FnCommand::Rollback { name, version } => {
            if version == 0 {
                return Err(usage("versions count from 1"));
            }
            let function = client.put(
                &format!("/v1/functions/{}/active", encode(&name)),
                &json!({ "version": version }),
            )?;
            print(format, &function, |f| {
                println!(
                    "{} now runs version {}",
                    render::cell(&f["name"]),
                    render::cell(&f["active_version"])
                )
            });
        }
        FnCommand::Rm { name } => {
            client.delete(&format!("/v1/functions/{}", encode(&name)))?;
            print(format, &json!({ "deleted": name }), |_| {
                println!("deleted {name} (its versions are kept in the history)")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
