//! The `vulcan` binary: parses arguments and hands over to the library crates.

mod cli;
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
    #[command(flatten)]
    connection: cli::Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the API server (configured by VULCAN_* variables, a .env file, or flags).
    Serve(Box<config::ServeArgs>),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> std::process::ExitCode {
    // Explicit environment variables win over the .env file.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "vulcan", &mut std::io::stdout());
            std::process::ExitCode::SUCCESS
        }
        Command::Client(command) => cli::main(cli.connection, command),
    }
}
