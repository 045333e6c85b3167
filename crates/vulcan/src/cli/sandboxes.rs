//! `vulcan sandbox`: hold a sandbox across many steps — create, list, run commands in it
//! (their output streamed as it comes, the exit code passed on), copy files in and out,
//! move its deadline, remove it.

use std::io::Write;
use std::process::ExitCode;

use base64::Engine as _;
use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{CliResult, Client};
use super::render::{self, Format};
use super::run::usage;
use super::{encode, print};

mod terminal;

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Start a sandbox; prints its id.
    Create {
        /// The image its root comes from [default: the default image].
        #[arg(long)]
        image: Option<String>,
        /// gvisor, microvm or auto [default: the server's VULCAN_SANDBOX_ISOLATION].
        #[arg(long)]
        isolation: Option<String>,
        /// Seconds until it is killed.
        #[arg(long)]
        timeout: Option<u32>,
        #[arg(long)]
        cpus: Option<u32>,
        #[arg(long)]
        mem_mb: Option<u32>,
        /// The disk its writes may fill, in MiB.
        #[arg(long)]
        disk_mb: Option<u32>,
        /// NAME=VALUE in every process's environment (repeat for more).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// KEY=VALUE labels (repeat for more); `ls --meta` filters on them.
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// A volume to mount, NAME:/path or NAME:/path:ro (repeat for more).
        #[arg(long = "volume", value_name = "NAME:/PATH[:ro]")]
        volumes: Vec<String>,
    },
    /// List sandboxes, newest first.
    Ls {
        /// running, paused, ended or lost.
        #[arg(long)]
        state: Option<String>,
        /// KEY=VALUE every listed sandbox has (repeat for more).
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
    },
    /// Run a command in a sandbox, its output streamed; exits with its exit code.
    Exec {
        id: String,
        /// Working directory inside the sandbox.
        #[arg(long)]
        cwd: Option<String>,
        /// NAME=VALUE (repeat for more).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// A terminal in a sandbox: a shell (or the command given) on a terminal the size of
    /// this one, what you type sent as you type it; exits with its exit code.
    Sh {
        id: String,
        /// The command and its arguments [default: sh].
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Copy a file in (`cp FILE ID:/path`) or out (`cp ID:/path FILE`); `-` is stdin/stdout.
    Cp { from: String, to: String },
    /// Save a sandbox to disk and stop it (no memory held until it is resumed).
    Pause { id: String },
    /// Start a paused sandbox again.
    Resume { id: String },
    /// Move a sandbox's deadline to SECONDS from now.
    Timeout { id: String, seconds: u32 },
    /// End a sandbox: everything in it killed, its disk removed.
    Rm { id: String },
}

/// `NAME=VALUE` pairs as a JSON object; `what` names the option in an error.
fn pairs(list: &[String], what: &str) -> CliResult<Value> {
    let mut map = serde_json::Map::new();
    for pair in list {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| usage(format!("{what} {pair:?} is not NAME=VALUE")))?;
        map.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    Ok(Value::Object(map))
}

/// `ID:/path` split, if `arg` names a path in a sandbox.
fn in_sandbox(arg: &str) -> Option<(&str, &str)> {
    let (id, path) = arg.split_once(':')?;
    (path.starts_with('/') && !id.is_empty() && !id.contains('/')).then_some((id, path))
}

fn rows(page: &Value) {
    let rows: Vec<Vec<String>> = page["sandboxes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                render::cell(&s["id"]),
                render::status(&render::cell(&s["state"])),
                render::cell(&s["isolation"]),
                render::cell(&s["image"]),
                render::cell(&s["started_at"]),
                render::cell(&s["end_at"]),
            ]
        })
        .collect();
    render::table(
        &["ID", "STATE", "ISOLATION", "IMAGE", "STARTED", "ENDS"],
        &rows,
    );
}

pub fn command(client: &Client, format: Format, command: SandboxCommand) -> CliResult<ExitCode> {
    match command {
        SandboxCommand::Create {
            image,
            isolation,
            timeout,
            cpus,
            mem_mb,
            disk_mb,
            env,
            metadata,
            volumes,
        } => {
            let volumes = volumes
                .iter()
                .map(|v| super::volumes::mount_of(v))
                .collect::<CliResult<Vec<_>>>()?;
            let body = json!({
                "volumes": volumes,
                "image": image,
                "isolation": isolation,
                "timeout_s": timeout,
                "resources": {"cpus": cpus, "mem_mb": mem_mb, "disk_mb": disk_mb},
                "env": pairs(&env, "--env")?,
                "metadata": pairs(&metadata, "--meta")?,
            });
            let made = client.post("/v1/sandboxes", &strip_nulls(body))?;
            print(format, &made, |s| println!("{}", render::cell(&s["id"])));
        }
        SandboxCommand::Ls { state, metadata } => {
            let mut query = String::from("/v1/sandboxes?limit=100");
            if let Some(state) = state {
                query.push_str(&format!("&state={}", encode(&state)));
            }
            for pair in metadata {
                query.push_str(&format!("&metadata={}", encode(&pair)));
            }
            let page = client.get(&query)?;
            print(format, &page, rows);
        }
        SandboxCommand::Exec {
            id,
            cwd,
            env,
            command,
        } => return exec(client, format, &id, cwd, &env, command),
        SandboxCommand::Sh { id, command } => return terminal::sh(client, &id, command),
        SandboxCommand::Cp { from, to } => copy(client, format, &from, &to)?,
        SandboxCommand::Timeout { id, seconds } => {
            let s = client.post(
                &format!("/v1/sandboxes/{}/timeout", encode(&id)),
                &json!({ "timeout_s": seconds }),
            )?;
            print(format, &s, |s| {
                println!(
                    "{} now ends at {}",
                    render::cell(&s["id"]),
                    render::cell(&s["end_at"])
                )
            });
        }
        SandboxCommand::Pause { id } => change(client, format, &id, "pause")?,
        SandboxCommand::Resume { id } => change(client, format, &id, "resume")?,
        SandboxCommand::Rm { id } => {
            let s = client.delete(&format!("/v1/sandboxes/{}", encode(&id)))?;
            print(format, &s, |s| {
                println!(
                    "{} {}",
                    render::cell(&s["id"]),
                    render::status(&render::cell(&s["state"]))
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sandbox pause|resume`: `verb` is the route's last segment.
fn change(client: &Client, format: Format, id: &str, verb: &str) -> CliResult<()> {
    let s = client.post(&format!("/v1/sandboxes/{}/{verb}", encode(id)), &json!({}))?;
    print(format, &s, |s| {
        println!(
            "{} {}",
            render::cell(&s["id"]),
            render::status(&render::cell(&s["state"]))
        )
    });
    Ok(())
}

/// A JSON object without its `null` members (at any depth): the server's defaults apply.
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A process's exit code as a shell reports it (128 + the signal that ended it).
fn exit_code(exit: &Value) -> ExitCode {
    let code = exit["exit_code"]
        .as_i64()
        .or_else(|| exit["signal"].as_i64().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// `sandbox exec`: starts the command in the background and follows its output to its
/// exit; the process's exit code is this one's (128 + the signal that ended it).
fn exec(
    client: &Client,
    format: Format,
    id: &str,
    cwd: Option<String>,
    env: &[String],
    command: Vec<String>,
) -> CliResult<ExitCode> {
    let mut words = command.into_iter();
    let cmd = words
        .next()
        .ok_or_else(|| usage("give the command to run after the sandbox's id"))?;
    let started = client.post(
        &format!("/v1/sandboxes/{}/processes", encode(id)),
        &strip_nulls(json!({
            "cmd": cmd,
            "args": words.collect::<Vec<_>>(),
            "cwd": cwd,
            "env": pairs(env, "--env")?,
            "background": true,
        })),
    )?;
    let pid = started["pid"]
        .as_u64()
        .ok_or_else(|| usage(format!("the server's answer has no pid: {started}")))?;
    let mut exit = json!(null);
    client.events(
        &format!("/v1/sandboxes/{}/processes/{pid}/output", encode(id)),
        |event| {
            let bytes = event.data["data"]
                .as_str()
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .unwrap_or_default();
            match event.name.as_str() {
                "stdout" if format == Format::Table => {
                    let _ = std::io::stdout().write_all(&bytes);
                    let _ = std::io::stdout().flush();
                }
                "stderr" if format == Format::Table => {
                    let _ = std::io::stderr().write_all(&bytes);
                }
                "exit" => {
                    exit = event.data;
                    return false;
                }
                _ => {}
            }
            true
        },
    )?;
    if format == Format::Json {
        let info = client.get(&format!("/v1/sandboxes/{}/processes/{pid}", encode(id)))?;
        render::json(&info);
    }
    Ok(exit_code(&exit))
}

/// `sandbox cp`: one side a local file (or `-`), the other `ID:/path`.
fn copy(client: &Client, format: Format, from: &str, to: &str) -> CliResult<()> {
    match (in_sandbox(from), in_sandbox(to)) {
        (None, Some((id, path))) => {
            let reader: Box<dyn std::io::Read> = if from == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(
                    std::fs::File::open(from)
                        .map_err(|e| usage(format!("cannot open {from}: {e}")))?,
                )
            };
            let entry = client.put_stream(
                &format!("/v1/sandboxes/{}/files?path={}", encode(id), encode(path)),
                reader,
            )?;
            print(format, &entry, |e| {
                println!(
                    "{} bytes to {id}:{}",
                    render::cell(&e["size"]),
                    render::cell(&e["path"])
                )
            });
        }
        (Some((id, path)), None) => {
            let mut reader = client.get_stream(&format!(
                "/v1/sandboxes/{}/files?path={}",
                encode(id),
                encode(path)
            ))?;
            let copied = if to == "-" {
                std::io::copy(&mut reader, &mut std::io::stdout())
            } else {
                let mut file = std::fs::File::create(to)
                    .map_err(|e| usage(format!("cannot create {to}: {e}")))?;
                std::io::copy(&mut reader, &mut file)
            }
            .map_err(|e| usage(format!("the download broke: {e}")))?;
            if to != "-" {
                print(format, &json!({ "bytes": copied, "to": to }), |_| {
                    println!("{copied} bytes to {to}")
                });
            }
        }
        _ => {
            return Err(usage(
                "one side of cp is a sandbox's path (ID:/path), the other a local file or -",
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_path_is_an_id_then_an_absolute_path() {
        assert_eq!(in_sandbox("sb1:/home/a.txt"), Some(("sb1", "/home/a.txt")));
        assert_eq!(in_sandbox("./local:file"), None);
        assert_eq!(in_sandbox("sb1:relative"), None);
        assert_eq!(in_sandbox("/abs/file"), None);
    }

    #[test]
    fn nulls_are_left_out_for_the_servers_defaults() {
        assert_eq!(
            strip_nulls(json!({"a": null, "b": {"c": null, "d": 1}})),
            json!({"b": {"d": 1}})
        );
    }
}
