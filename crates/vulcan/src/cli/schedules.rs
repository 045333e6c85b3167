//! `vulcan schedules` and `vulcan secrets`.

use std::io::Read;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{CliResult, Client};
use super::render::{self, Format};
use super::run::{input_value, usage};
use super::{encode, print};

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Fire FUNCTION on a cron: 5 fields, or 6 with seconds first.
    Add {
        function: String,
        #[arg(long)]
        cron: String,
        /// The input of every run: JSON, or @FILE.
        #[arg(long)]
        input: Option<String>,
        /// IANA time zone the cron is read in.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Start a run even while the last one still goes (default: skip the tick).
        #[arg(long)]
        allow_overlap: bool,
    },
    /// List schedules with their next and last runs.
    Ls,
    /// Delete a schedule (its runs stay).
    Rm { id: String },
    /// Start firing again, from the next tick.
    Enable { id: String },
    /// Stop firing.
    Disable { id: String },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store a new value, read from stdin (never from the command line).
    Set { name: String },
    /// List names, versions and times (never values).
    Ls,
    /// Delete a secret.
    Rm { name: String },
    /// Seal every value again under the server's current key (admin).
    RotateKey,
}

fn schedule_rows(list: &Value) {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let state = if s["enabled"] == true { "on" } else { "off" };
            vec![
                render::cell(&s["id"]),
                render::cell(&s["function"]),
                render::cell(&s["cron"]),
                render::cell(&s["timezone"]),
                state.into(),
                render::cell(&s["next_run_at"]),
                render::cell(&s["last_run_at"]),
                render::cell(&s["skipped_ticks"]),
            ]
        })
        .collect();
    render::table(
        &[
            "ID", "FUNCTION", "CRON", "ZONE", "STATE", "NEXT", "LAST", "SKIPPED",
        ],
        &rows,
    );
}

pub fn schedules(client: &Client, format: Format, command: SchedulesCommand) -> CliResult<()> {
    match command {
        SchedulesCommand::Add {
            function,
            cron,
            input,
            timezone,
            allow_overlap,
        } => {
            let mut body = json!({"function": function, "cron": cron, "timezone": timezone});
            if let Some(input) = input {
                body["input"] = input_value(&input)?;
            }
            if allow_overlap {
                body["overlap"] = json!("allow");
            }
            let made = client.post("/v1/schedules", &body)?;
            print(format, &made, |s| {
                println!(
                    "{} fires {} next at {}",
                    render::cell(&s["id"]),
                    render::cell(&s["function"]),
                    render::cell(&s["next_run_at"])
                )
            });
        }
        SchedulesCommand::Ls => {
            let list = client.get("/v1/schedules")?;
            print(format, &list, schedule_rows);
        }
        SchedulesCommand::Rm { id } => {
            client.delete(&format!("/v1/schedules/{}", encode(&id)))?;
            print(format, &json!({ "deleted": id }), |_| {
                println!("deleted {id}")
            });
        }
        SchedulesCommand::Enable { id } => toggle(client, format, &id, true)?,
        SchedulesCommand::Disable { id } => toggle(client, format, &id, false)?,
    }
    Ok(())
}

/// `schedules enable|disable`.
fn toggle(client: &Client, format: Format, id: &str, enabled: bool) -> CliResult<()> {
    let changed = client.patch(
        &format!("/v1/schedules/{}", encode(id)),
        &json!({ "enabled": enabled }),
    )?;
    print(format, &changed, |s| {
        if enabled {
            println!("{id} enabled: next at {}", render::cell(&s["next_run_at"]))
        } else {
            println!("{id} disabled")
        }
    });
    Ok(())
}

pub fn secrets(client: &Client, format: Format, command: SecretsCommand) -> CliResult<()> {
    match command {
        SecretsCommand::Set { name } => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .map_err(|e| usage(format!("cannot read the value from stdin: {e}")))?;
            // `echo value | vulcan secrets set NAME` sends one trailing newline.
            if value.ends_with('\n') {
                value.pop();
                if value.ends_with('\r') {
                    value.pop();
                }
            }
            if value.is_empty() {
                return Err(usage(format!(
                    "no value on stdin: pipe it in, e.g. `vulcan secrets set {name} < file`"
                )));
            }
            let info = client.put(
                &format!("/v1/secrets/{}", encode(&name)),
                &json!({ "value": value }),
            )?;
            print(format, &info, |i| {
                println!(
                    "{} is at version {}",
                    render::cell(&i["name"]),
                    render::cell(&i["version"])
                )
            });
        }
        SecretsCommand::Ls => {
            let list = client.get("/v1/secrets")?;
            print(format, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        vec![
                            render::cell(&s["name"]),
                            render::cell(&s["tenant"]),
                            render::cell(&s["version"]),
                            render::cell(&s["updated_at"]),
                        ]
                    })
                    .collect();
                render::table(&["NAME", "TENANT", "VERSION", "UPDATED"], &rows);
            });
        }
        SecretsCommand::Rm { name } => {
            client.delete(&format!("/v1/secrets/{}", encode(&name)))?;
            print(format, &json!({ "deleted": name }), |_| {
                println!("deleted {name}")
            });
        }
        SecretsCommand::RotateKey => {
            let done = client.post("/v1/secrets/rotate-key", &json!({}))?;
            print(format, &done, |d| {
                println!(
                    "{} values sealed again under key {}",
                    render::cell(&d["resealed"]),
                    render::cell(&d["key_id"])
                )
            });
        }
    }
    Ok(())
}
