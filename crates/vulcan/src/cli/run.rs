//! `vulcan run` and `vulcan logs`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use clap::Args;
use serde_json::{json, Value};

use super::client::{CliError, CliResult, Client};
use super::render::{self, Format};

/// What runs and with what: shared by `run` and `fn deploy`.
#[derive(Debug, Args)]
pub struct CodeArgs {
    /// go, node, python, wasm or oci [default: from --file's extension, or oci with --image].
    #[arg(long)]
    runtime: Option<String>,
    /// auto, isolate, gvisor or microvm.
    #[arg(long, default_value = "auto")]
    isolation: String,
    /// The code, inline.
    #[arg(long, conflicts_with = "file")]
    code: Option<String>,
    /// A file (its text is the code) or a directory (sent as a tar.gz code_archive).
    #[arg(long)]
    file: Option<PathBuf>,
    /// An OCI image (runtime oci).
    #[arg(long)]
    image: Option<String>,
    /// The command to run in the image, split like a shell would (quotes group words).
    #[arg(long)]
    cmd: Option<String>,
    /// Environment variables, NAME=value (repeatable).
    #[arg(long = "env", short = 'e')]
    env: Vec<String>,
    /// Secrets (by name) the code gets as environment variables (repeatable).
    #[arg(long = "secret")]
    secrets: Vec<String>,
    #[arg(long)]
    cpus: Option<u32>,
    /// Memory in MiB.
    #[arg(long)]
    mem: Option<u32>,
    /// Timeout in seconds.
    #[arg(long)]
    timeout: Option<u32>,
    /// Let the code reach a destination: host[:port], *.domain[:port] or
    /// a.b.c.d[/prefix][:port] (repeatable; nothing is reachable without one). `--allow-net '*'`
    /// asks for every public address.
    #[arg(long = "allow-net")]
    allow_net: Vec<String>,
    /// Keep the code from a destination the --allow-net rules would let it reach (repeatable).
    #[arg(long = "deny-net")]
    deny_net: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    code: CodeArgs,
    /// The input: JSON, or @FILE to read it from a file.
    #[arg(long)]
    input: Option<String>,
    /// Submit and print the id without waiting.
    #[arg(long = "async")]
    detach: bool,
    /// With --async: attempts in all if it fails (each a new workload).
    #[arg(long, requires = "detach")]
    retry: Option<u32>,
    /// With --retry: seconds before the second attempt, doubling after [server default: 1].
    #[arg(long, requires = "retry")]
    backoff: Option<u32>,
    /// With --async: no attempt starts later than this many seconds after the submission.
    #[arg(long, requires = "detach")]
    max_age: Option<u32>,
    /// With --async: a queue that gets the workload when its last attempt failed.
    #[arg(long, requires = "detach")]
    on_failure_queue: Option<String>,
    /// With --async: POSTed the final workload, signed with the secret CALLBACK_SIGNING_KEY.
    #[arg(long, requires = "detach")]
    callback_url: Option<String>,
    /// A volume to mount (gvisor, microvm), NAME:/path or NAME:/path:ro (repeat for more):
    /// the workload runs on the volume's node.
    #[arg(long = "volume", value_name = "NAME:/PATH[:ro]")]
    volumes: Vec<String>,
}

pub fn usage(message: impl Into<String>) -> CliError {
    CliError(message.into())
}

/// Splits a command line into words: whitespace separates, single and double quotes group,
/// a backslash escapes the next character.
pub fn split_words(line: &str) -> CliResult<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                word.extend(chars.next());
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(usage(format!("--cmd {line:?} has an unclosed quote")));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn runtime_for(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()? {
        "js" | "mjs" | "ts" | "mts" => Some("node"),
        "py" => Some("python"),
        "wasm" => Some("wasm"),
        "go" => Some("go"),
        _ => None,
    }
}

/// A directory as a gzip-compressed tar, paths relative to it.
fn pack(dir: &Path) -> CliResult<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)
        .map_err(|e| usage(format!("cannot pack {}: {e}", dir.display())))?;
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| usage(format!("cannot pack {}: {e}", dir.display())))
}

/// `--input`'s JSON: inline, or `@FILE`.
pub fn input_value(input: &str) -> CliResult<Value> {
    let text = match input.strip_prefix('@') {
        Some(file) => {
            std::fs::read_to_string(file).map_err(|e| usage(format!("--input @{file}: {e}")))?
        }
        None => input.to_owned(),
    };
    serde_json::from_str::<Value>(&text)
        .map_err(|e| usage(format!("--input is not valid JSON: {e}")))
}

impl RunArgs {
    fn body(&self) -> CliResult<Value> {
        let mut body = self.code.body()?;
        if let Some(input) = &self.input {
            body["input"] = input_value(input)?;
        }
        if let Some(max_attempts) = self.retry {
            body["retry"] = json!({"max_attempts": max_attempts});
            if let Some(backoff) = self.backoff {
                body["retry"]["backoff_s"] = json!(backoff);
            }
        }
        if let Some(age) = self.max_age {
            body["max_age_s"] = json!(age);
        }
        if let Some(queue) = &self.on_failure_queue {
            body["on_failure"] = json!({ "queue": queue });
        }
        if let Some(url) = &self.callback_url {
            body["callback_url"] = json!(url);
        }
        if !self.volumes.is_empty() {
            let volumes = self
                .volumes
                .iter()
                .map(|v| super::volumes::mount_of(v))
                .collect::<CliResult<Vec<_>>>()?;
            body["volumes"] = json!(volumes);
        }
        Ok(body)
    }
}

impl CodeArgs {
    /// The request body's code, runtime, environment and resources.
    pub fn body(&self) -> CliResult<Value> {
        let mut body = json!({"isolation": self.isolation});
        let mut runtime = self.runtime.clone();
        if let Some(image) = &self.image {
            body["image"] = json!(image);
            runtime.get_or_insert_with(|| "oci".into());
        }
        if let Some(cmd) = &self.cmd {
            body["command"] = json!(split_words(cmd)?);
        }
        if let Some(code) = &self.code {
            body["code"] = json!(code);
        }
        if let Some(path) = &self.file {
            let meta = std::fs::metadata(path)
                .map_err(|e| usage(format!("--file {}: {e}", path.display())))?;
            if meta.is_dir() {
                body["code_archive"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(pack(path)?));
            } else {
                let bytes = std::fs::read(path)
                    .map_err(|e| usage(format!("--file {}: {e}", path.display())))?;
                let inferred = runtime_for(path);
                if runtime.is_none() {
                    runtime = inferred.map(str::to_owned);
                }
                body["code"] = if runtime.as_deref() == Some("wasm") {
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(String::from_utf8(bytes).map_err(|_| usage(format!(
                        "--file {} is not UTF-8 text",
                        path.display()
                    )))?)
                };
            }
        }
        let Some(runtime) = runtime else {
            return Err(usage(
                "say which runtime: --runtime node|python|go|wasm|oci (or --image for oci, or a --file with a known extension)",
            ));
        };
        body["runtime"] = json!(runtime);
        if !self.env.is_empty() {
            let mut env = serde_json::Map::new();
            for pair in &self.env {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| usage(format!("--env {pair:?} is not NAME=value")))?;
                env.insert(k.to_owned(), json!(v));
            }
            body["env"] = Value::Object(env);
        }
        if !self.secrets.is_empty() {
            body["secrets"] = json!(self.secrets);
        }
        if !self.allow_net.is_empty() {
            let allow: Vec<&String> = self.allow_net.iter().filter(|r| *r != "*").collect();
            body["network"] = json!({"egress": "allow", "allow": allow, "deny": self.deny_net});
        } else if !self.deny_net.is_empty() {
            return Err(usage(
                "--deny-net narrows --allow-net: give --allow-net too",
            ));
        }
        let mut resources = serde_json::Map::new();
        for (key, value) in [
            ("cpus", self.cpus),
            ("mem_mb", self.mem),
            ("timeout_s", self.timeout),
        ] {
            if let Some(v) = value {
                resources.insert(key.into(), json!(v));
            }
        }
        if !resources.is_empty() {
            body["resources"] = Value::Object(resources);
        }
        Ok(body)
    }
}

/// The process exit code a finished workload maps to.
pub fn exit_code_of(workload: &Value) -> ExitCode {
    match workload["status"].as_str() {
        Some("completed") => ExitCode::SUCCESS,
        Some("killed") => ExitCode::from(137),
        _ => {
            let code = workload["exit_code"].as_i64().unwrap_or(1);
            ExitCode::from(if (1..=255).contains(&code) {
                code as u8
            } else {
                1
            })
        }
    }
}

/// Prints one log event's line where it belongs; returns the stdout text printed.
fn print_line(event: &Value) -> Option<String> {
    let line = event["line"].as_str().unwrap_or_default();
    match event["stream"].as_str() {
        Some("stdout") => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            Some(line.to_owned())
        }
        Some("stderr") => {
            eprintln!("{line}");
            None
        }
        _ => {
            if render::colour_enabled() {
                eprintln!("\x1b[2mvulcan: {line}\x1b[0m");
            } else {
                eprintln!("vulcan: {line}");
            }
            None
        }
    }
}

pub fn run(client: &Client, format: Format, args: RunArgs) -> CliResult<ExitCode> {
    let body = args.body()?;
    let accepted = client.post("/v1/workloads/async", &body)?;
    let id = accepted["id"]
        .as_str()
        .ok_or_else(|| usage("the server answered without an id"))?
        .to_owned();
    if args.detach {
        match format {
            Format::Json => render::json(&accepted),
            Format::Table => println!("{id}"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut printed = Vec::new();
    // Until the first line: a cold start (an image pull, a microVM boot) can take seconds.
    let waiting = render::spinner(format!("{id}: starting"));
    client.events(&format!("/v1/workloads/{id}/logs"), |event| {
        if !waiting.is_finished() && matches!(event.name.as_str(), "log" | "done") {
            waiting.finish_and_clear();
        }
        match event.name.as_str() {
            "log" => {
                if format == Format::Table {
                    printed.extend(print_line(&event.data));
                }
                true
            }
            "done" => false,
            _ => true,
        }
    })?;
    waiting.finish_and_clear();
    let workload = client.get(&format!("/v1/workloads/{id}"))?;
    match format {
        Format::Json => render::json(&workload),
        Format::Table => {
            let output = workload["output"].as_str().unwrap_or_default();
            // A script's output is what it printed, already shown line by line.
            if !output.is_empty() && output.trim_end() != printed.join("\n").trim_end() {
                println!("{output}");
            }
            if workload["status"] != "completed" {
                eprintln!(
                    "vulcan: workload {id} {}: {}",
                    render::cell(&workload["status"]),
                    workload["error"].as_str().unwrap_or("no error recorded")
                );
            }
        }
    }
    Ok(exit_code_of(&workload))
}

pub fn logs(
    client: &Client,
    format: Format,
    id: &str,
    follow: bool,
    stream: Option<&str>,
) -> CliResult<ExitCode> {
    let query = stream.map_or(String::new(), |s| format!("?stream={s}"));
    if follow {
        client.events(&format!("/v1/workloads/{id}/logs{query}"), |event| {
            if format == Format::Json {
                println!("{}", json!({"event": event.name, "data": event.data}));
                let _ = std::io::stdout().flush();
            } else if event.name == "log" {
                print_line(&event.data);
            }
            event.name != "done"
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let history = client.get(&format!("/v1/workloads/{id}/logs/history{query}"))?;
    match format {
        Format::Json => render::json(&history),
        Format::Table => {
            for line in history["lines"].as_array().into_iter().flatten() {
                print_line(line);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_options_go_into_the_body_and_need_async() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        use clap::Parser as _;
        let parsed = Cli::try_parse_from([
            "run",
            "--runtime",
            "node",
            "--code",
            "1",
            "--async",
            "--retry",
            "3",
            "--backoff",
            "2",
            "--max-age",
            "60",
            "--on-failure-queue",
            "dead",
            "--callback-url",
            "https://h.example/x",
            "--volume",
            "data:/data",
            "--volume",
            "refs:/refs:ro",
        ])
        .unwrap();
        let body = parsed.run.body().unwrap();
        assert_eq!(body["retry"], json!({"max_attempts": 3, "backoff_s": 2}));
        assert_eq!(body["max_age_s"], 60);
        assert_eq!(body["on_failure"], json!({"queue": "dead"}));
        assert_eq!(body["callback_url"], "https://h.example/x");
        assert_eq!(
            body["volumes"],
            json!([
                {"name": "data", "path": "/data", "read_only": false},
                {"name": "refs", "path": "/refs", "read_only": true}
            ])
        );
        assert!(Cli::try_parse_from(["run", "--code", "1", "--retry", "3"]).is_err());
        assert!(Cli::try_parse_from(["run", "--code", "1", "--async", "--backoff", "2"]).is_err());
        let plain = Cli::try_parse_from(["run", "--runtime", "node", "--code", "1"]).unwrap();
        assert!(plain.run.body().unwrap().get("retry").is_none());
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words("sh -c 'echo hi; exit 3'").unwrap(),
            ["sh", "-c", "echo hi; exit 3"]
        );
        assert_eq!(
            split_words(r#"a "b c" d\ e ''"#).unwrap(),
            ["a", "b c", "d e", ""]
        );
        assert!(split_words("echo 'open").is_err());
    }

    #[test]
    fn exit_codes_mirror_the_workload() {
        assert_eq!(
            exit_code_of(&json!({"status": "completed"})),
            ExitCode::SUCCESS
        );
        assert_eq!(
            exit_code_of(&json!({"status": "failed", "exit_code": 3})),
            ExitCode::from(3)
        );
        assert_eq!(
            exit_code_of(&json!({"status": "failed", "exit_code": null})),
            ExitCode::from(1)
        );
        assert_eq!(
            exit_code_of(&json!({"status": "killed"})),
            ExitCode::from(137)
        );
    }
}
