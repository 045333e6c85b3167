//! The `vulcan` binary: parses arguments and hands over to the library crates.

mod cli;
mod config;
mod doctor;
mod man;
mod serve;

use clap::{CommandFactory, Parser, Subcommand};

/// `vulcan --version`: the release and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("VULCAN_COMMIT"), ")");

#[derive(Parser)]
#[command(
    name = "vulcan",
    version = VERSION,
    about = "Run untrusted code on your own hardware: V8 isolates, gVisor sandboxes and microVMs behind one API."
)]
struct Cli {
    #[command(flatten)]
    connection: cli::Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the API server (configured by VULCAN_* variables, a .env file, or flags).
    Serve(Box<config::ServeArgs>),
    /// Check what this host can run, tier by tier, and say how to fix what it cannot
    /// (reads the same settings as serve; changes nothing).
    Doctor {
        #[command(flatten)]
        args: Box<config::ServeArgs>,
        /// Exit non-zero unless these tiers can run (isolate, gvisor, microvm; repeat or
        /// separate with commas).
        #[arg(long, value_delimiter = ',')]
        require: Vec<String>,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write a man page for vulcan and each of its commands into DIR (man1 pages).
    Man { dir: std::path::PathBuf },
    /// Print the API's OpenAPI document (what GET /openapi.json serves; the clients in
    /// clients/ are generated from it).
    Openapi,
    /// (internal) The wasmtime helper process the server starts for wasm workloads.
    #[command(hide = true)]
    WasmHelper {
        /// The empty directory it confines itself to.
        #[arg(long)]
        root: std::path::PathBuf,
        /// Instances at once.
        #[arg(long, default_value_t = 16)]
        slots: u32,
        /// The largest mem_mb of a run.
        #[arg(long, default_value_t = 1024)]
        max_mem_mb: u32,
        /// Compile the module on stdin to stdout instead (a process per module), with
        /// this much data memory at most, in MiB.
        #[arg(long)]
        compile_memory_mb: Option<u64>,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> std::process::ExitCode {
    // Explicit environment variables win over the .env file.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Doctor { args, require } => doctor::run(
            &args,
            &require,
            matches!(cli.connection.output, cli::Format::Json),
        ),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "vulcan", &mut std::io::stdout());
            std::process::ExitCode::SUCCESS
        }
        Command::Openapi => {
            let doc = vulcan_api::openapi::spec();
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            std::process::ExitCode::SUCCESS
        }
        Command::Man { dir } => match man::write_pages(&Cli::command(), &dir) {
            Ok(n) => {
                println!("wrote {n} man pages to {}", dir.display());
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "error: cannot write the man pages to {}: {e}",
                    dir.display()
                );
                std::process::ExitCode::FAILURE
            }
        },
        Command::WasmHelper {
            root,
            compile_memory_mb: Some(memory_mb),
            ..
        } => std::process::ExitCode::from(vulcan_wasm::compile::serve(&root, memory_mb) as u8),
        Command::WasmHelper {
            root,
            slots,
            max_mem_mb,
            compile_memory_mb: None,
        } => {
            let settings = vulcan_wasm::helper::Settings { slots, max_mem_mb };
            match vulcan_wasm::helper::serve(settings, &root) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Client(command) => cli::main(cli.connection, command),
    }
}
