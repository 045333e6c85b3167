//! `vulcan queue`: a tenant's queues and their messages; `vulcan topic`: topics that fan a
//! message out to queues and functions.

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{CliResult, Client};
use super::render::{self, Format};
use super::{encode, print};

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Make a queue (or change one: `--update`).
    Create {
        name: String,
        /// Seconds a received message stays hidden from other consumers.
        #[arg(long)]
        visibility_timeout: Option<u32>,
        /// Receives before a message moves to the dead-letter queue.
        #[arg(long)]
        max_receives: Option<u32>,
        /// The queue that takes messages past --max-receives.
        #[arg(long)]
        dead_letter_queue: Option<String>,
        /// Seconds a message is kept.
        #[arg(long)]
        retention: Option<u32>,
        /// The largest message body (its JSON), in bytes.
        #[arg(long)]
        max_message_bytes: Option<u32>,
        /// Change the queue if it exists (PUT) instead of refusing.
        #[arg(long)]
        update: bool,
    },
    /// List queues with their depth, messages in flight and dead-lettered.
    Ls,
    /// Send a message: BODY is JSON (a bare word is sent as a string).
    Send {
        name: String,
        body: String,
        /// Seconds before it can be received.
        #[arg(long, default_value_t = 0)]
        delay: u32,
        /// Sent again with this id within 5 minutes, it is stored once.
        #[arg(long)]
        dedup_id: Option<String>,
    },
    /// Receive messages (and acknowledge them with --ack).
    Receive {
        name: String,
        #[arg(long, default_value_t = 1)]
        max: u32,
        /// Seconds to wait for a first message.
        #[arg(long, default_value_t = 0)]
        wait: u32,
        /// Acknowledge what was received: it is gone for good.
        #[arg(long)]
        ack: bool,
    },
    /// Acknowledge deliveries by receipt.
    Ack { name: String, receipts: Vec<String> },
    /// Remove every message of a queue.
    Purge { name: String },
    /// Delete a queue and its messages.
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Make a topic.
    Create { name: String },
    /// List topics with their subscriptions.
    Ls,
    /// Subscribe a queue, a function or a URL (POSTed each message, signed with the
    /// tenant's secret CALLBACK_SIGNING_KEY) to a topic.
    #[command(group(clap::ArgGroup::new("target").required(true).multiple(false)))]
    Subscribe {
        name: String,
        #[arg(long, group = "target")]
        queue: Option<String>,
        #[arg(long, group = "target")]
        function: Option<String>,
        #[arg(long, group = "target")]
        url: Option<String>,
    },
    /// Remove a subscription (its id, from `vulcan topic ls`).
    Unsubscribe { name: String, id: String },
    /// Publish a message: BODY is JSON (a bare word is sent as a string).
    Publish { name: String, body: String },
    /// Delete a topic (its queues and functions stay).
    Rm { name: String },
}

pub fn topic_command(client: &Client, format: Format, command: TopicCommand) -> CliResult<()> {
    match command {
        TopicCommand::Create { name } => {
            let made = client.post("/v1/topics", &json!({"name": name}))?;
            print(format, &made, |t| println!("{}", render::cell(&t["name"])));
        }
        TopicCommand::Ls => {
            let all = client.get("/v1/topics")?;
            print(format, &all, |topics| {
                let rows: Vec<Vec<String>> = topics
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|t| {
                        let subs = t["subscriptions"].as_array().cloned().unwrap_or_default();
                        let name = render::cell(&t["name"]);
                        let tenant = render::cell(&t["tenant"]);
                        if subs.is_empty() {
                            return vec![vec![name, "-".into(), "-".into(), tenant]];
                        }
                        subs.iter()
                            .map(|s| {
                                let target = match (
                                    s["queue"].as_str(),
                                    s["function"].as_str(),
                                    s["url"].as_str(),
                                ) {
                                    (Some(q), _, _) => format!("queue {q}"),
                                    (_, Some(f), _) => format!("function {f}"),
                                    (_, _, Some(u)) => format!("url {u}"),
                                    _ => "-".into(),
                                };
                                vec![name.clone(), render::cell(&s["id"]), target, tenant.clone()]
                            })
                            .collect()
                    })
                    .collect();
                render::table(&["TOPIC", "SUBSCRIPTION", "TO", "TENANT"], &rows);
            });
        }
        TopicCommand::Subscribe {
            name,
            queue,
            function,
            url,
        } => {
            let made = client.post(
                &format!("/v1/topics/{}/subscriptions", encode(&name)),
                &json!({"queue": queue, "function": function, "url": url}),
            )?;
            print(format, &made, |s| println!("{}", render::cell(&s["id"])));
        }
        TopicCommand::Unsubscribe { name, id } => {
            let left = client.delete(&format!(
                "/v1/topics/{}/subscriptions/{}",
                encode(&name),
                encode(&id)
            ))?;
            print(format, &left, |t| {
                println!("{} unsubscribed from {}", id, render::cell(&t["name"]))
            });
        }
        TopicCommand::Publish { name, body } => {
            let done = client.post(
                &format!("/v1/topics/{}/publish", encode(&name)),
                &json!({"body": body_of(&body)}),
            )?;
            print(format, &done, |d| {
                for q in d["queues"].as_array().into_iter().flatten() {
                    println!(
                        "queue {}: {}",
                        render::cell(&q["queue"]),
                        render::cell(&q["id"])
                    );
                }
                for f in d["functions"].as_array().into_iter().flatten() {
                    match f["workload_id"].as_str() {
                        Some(id) => println!("function {}: {id}", render::cell(&f["function"])),
                        None => println!(
                            "function {}: {}",
                            render::cell(&f["function"]),
                            render::cell(&f["error"])
                        ),
                    }
                }
            });
        }
        TopicCommand::Rm { name } => {
            let gone = client.delete(&format!("/v1/topics/{}", encode(&name)))?;
            print(format, &gone, |t| {
                println!("{} deleted", render::cell(&t["name"]))
            });
        }
    }
    Ok(())
}

fn rows(queues: &Value) {
    let rows: Vec<Vec<String>> = queues
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            vec![
                render::cell(&q["name"]),
                render::cell(&q["depth"]),
                render::cell(&q["in_flight"]),
                render::cell(&q["delayed"]),
                render::cell(&q["oldest_age_s"]),
                render::cell(&q["dead_letter_queue"]),
                render::cell(&q["dead_lettered"]),
                render::cell(&q["tenant"]),
            ]
        })
        .collect();
    render::table(
        &[
            "NAME",
            "DEPTH",
            "IN FLIGHT",
            "DELAYED",
            "OLDEST (S)",
            "DLQ",
            "DEAD-LETTERED",
            "TENANT",
        ],
        &rows,
    );
}

/// A message's body from the command line: JSON, or else the text as a string.
fn body_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

pub fn command(client: &Client, format: Format, command: QueueCommand) -> CliResult<()> {
    match command {
        QueueCommand::Create {
            name,
            visibility_timeout,
            max_receives,
            dead_letter_queue,
            retention,
            max_message_bytes,
            update,
        } => {
            let mut settings = serde_json::Map::new();
            for (key, value) in [
                ("visibility_timeout_s", visibility_timeout.map(Value::from)),
                ("max_receives", max_receives.map(Value::from)),
                ("dead_letter_queue", dead_letter_queue.map(Value::from)),
                ("retention_s", retention.map(Value::from)),
                ("max_message_bytes", max_message_bytes.map(Value::from)),
            ] {
                if let Some(value) = value {
                    settings.insert(key.to_owned(), value);
                }
            }
            let made = if update {
                client.put(
                    &format!("/v1/queues/{}", encode(&name)),
                    &Value::Object(settings),
                )?
            } else {
                settings.insert("name".into(), Value::from(name));
                client.post("/v1/queues", &Value::Object(settings))?
            };
            print(format, &made, |q| println!("{}", render::cell(&q["name"])));
        }
        QueueCommand::Ls => {
            let all = client.get("/v1/queues")?;
            print(format, &all, rows);
        }
        QueueCommand::Send {
            name,
            body,
            delay,
            dedup_id,
        } => {
            let sent = client.post(
                &format!("/v1/queues/{}/messages", encode(&name)),
                &json!({"body": body_of(&body), "delay_s": delay, "dedup_id": dedup_id}),
            )?;
            print(format, &sent, |s| {
                for m in s["messages"].as_array().into_iter().flatten() {
                    let note = if m["duplicate"] == true {
                        " (duplicate)"
                    } else {
                        ""
                    };
                    println!("{}{note}", render::cell(&m["id"]));
                }
            });
        }
        QueueCommand::Receive {
            name,
            max,
            wait,
            ack,
        } => {
            let path = encode(&name);
            let got = client.post(
                &format!("/v1/queues/{path}/receive"),
                &json!({"max": max, "wait_s": wait}),
            )?;
            let receipts: Vec<Value> = got["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["receipt"].clone())
                .collect();
            if ack && !receipts.is_empty() {
                client.post(
                    &format!("/v1/queues/{path}/ack"),
                    &json!({"receipts": receipts}),
                )?;
            }
            print(format, &got, |g| {
                for m in g["messages"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}",
                        render::cell(&m["id"]),
                        m["body"],
                        if ack {
                            "acked".to_owned()
                        } else {
                            render::cell(&m["receipt"])
                        }
                    );
                }
            });
        }
        QueueCommand::Ack { name, receipts } => {
            let done = client.post(
                &format!("/v1/queues/{}/ack", encode(&name)),
                &json!({"receipts": receipts}),
            )?;
            print(format, &done, |d| {
                println!(
                    "{} acknowledged, {} stale",
                    d["acked"].as_array().map_or(0, Vec::len),
                    d["stale"].as_array().map_or(0, Vec::len)
                )
            });
        }
        QueueCommand::Purge { name } => {
            let done = client.post(&format!("/v1/queues/{}/purge", encode(&name)), &json!({}))?;
            print(format, &done, |d| {
                println!("{} messages purged", render::cell(&d["purged"]))
            });
        }
        QueueCommand::Rm { name } => {
            let gone = client.delete(&format!("/v1/queues/{}", encode(&name)))?;
            print(format, &gone, |q| {
                println!("{} deleted", render::cell(&q["name"]))
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_json_or_else_the_text_itself() {
        assert_eq!(body_of(r#"{"n": 1}"#), json!({"n": 1}));
        assert_eq!(body_of("42"), json!(42));
        assert_eq!(body_of("hello world"), json!("hello world"));
    }
}
