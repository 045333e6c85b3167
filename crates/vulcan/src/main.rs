//! The `vulcan` binary: parses arguments and hands over to the library crates.

mod config;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vulcan",
    version,
    about = "Run untrusted code on your own hardware: V8 isolates, gVisor sandboxes and microVMs behind one API."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the API server (configured by VULCAN_* variables, a .env file, or flags).
    Serve(Box<config::ServeArgs>),
}

fn main() -> std::process::ExitCode {
    // Explicit environment variables win over the .env file.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(*args),
    }
}
