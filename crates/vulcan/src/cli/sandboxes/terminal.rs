//! `vulcan sandbox sh`: a terminal in a sandbox. The process runs on a pseudo-terminal in
//! the sandbox the size of this one; this terminal is put in raw mode (every key goes to
//! the sandbox as it is typed, ^C included, and the sandbox's terminal echoes), its size
//! followed, and put back as it was at the end. Without a terminal here (stdin piped),
//! the input is sent as it comes and its end typed as ^D.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::super::client::{CliResult, Client};
use super::super::encode;
use super::super::run::usage;
use super::exit_code;

/// The size assumed when stdout is not a terminal.
const DEFAULT_SIZE: (u16, u16) = (24, 80);

/// How often this terminal's size is looked at (a resize is passed on).
const SIZE_EVERY: Duration = Duration::from_millis(250);

/// This terminal's size (rows, cols), if stdout is one.
fn size_here() -> Option<(u16, u16)> {
    // SAFETY: a winsize is plain integers (all zeroes is one); TIOCGWINSZ writes one
    // into the struct it is given.
    let (ok, ws) = unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        let ok = libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0;
        (ok, ws)
    };
    (ok && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// This terminal in raw mode until dropped.
struct Raw(libc::termios);

impl Raw {
    fn enter() -> Option<Raw> {
        // SAFETY: tcgetattr fills the termios it is given; cfmakeraw and tcsetattr read it.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(Raw(saved))
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: puts back the settings read in `enter`.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.0) };
    }
}

pub fn sh(client: &Client, id: &str, command: Vec<String>) -> CliResult<ExitCode> {
    let mut words = command.into_iter();
    let cmd = words.next().unwrap_or_else(|| "sh".to_owned());
    let (rows, cols) = size_here().unwrap_or(DEFAULT_SIZE);
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".to_owned());
    let processes = format!("/v1/sandboxes/{}/processes", encode(id));
    let started = client.post(
        &processes,
        &json!({
            "cmd": cmd,
            "args": words.collect::<Vec<_>>(),
            "env": {"TERM": term},
            "background": true,
            "pty": {"rows": rows, "cols": cols},
        }),
    )?;
    let pid = started["pid"]
        .as_u64()
        .ok_or_else(|| usage(format!("the server's answer has no pid: {started}")))?;
    let process = format!("{processes}/{pid}");
    let interactive = std::io::stdin().is_terminal();
    let raw = if interactive { Raw::enter() } else { None };

    let (input, at) = (client.clone(), format!("{process}/input"));
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            let body = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => json!({ "close": true }),
                Ok(n) => json!({
                    "data_base64": base64::engine::general_purpose::STANDARD.encode(&buf[..n])
                }),
            };
            let last = body.get("close").is_some();
            // The process may have ended meanwhile: its output says so, not this.
            if input.post(&at, &body).is_err() || last {
                return;
            }
        }
    });
    if raw.is_some() {
        let (resizer, at) = (client.clone(), format!("{process}/resize"));
        std::thread::spawn(move || {
            let mut last = (rows, cols);
            loop {
                std::thread::sleep(SIZE_EVERY);
                let Some(now) = size_here().filter(|now| *now != last) else {
                    continue;
                };
                last = now;
                if resizer
                    .post(&at, &json!({"rows": now.0, "cols": now.1}))
                    .is_err()
                {
                    return;
                }
            }
        });
    }

    let mut exit = Value::Null;
    let shown = client.events(&format!("{process}/output"), |event| {
        if event.name == "exit" {
            exit = event.data;
            return false;
        }
        if let Some(bytes) = event.data["data"]
            .as_str()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes);
            let _ = out.flush();
        }
        true
    });
    drop(raw);
    shown?;
    Ok(exit_code(&exit))
}
