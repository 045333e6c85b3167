//! Tables, JSON and colours for the CLI's answers. Colours only on a terminal, and never
//! with `NO_COLOR` set.

use std::io::IsTerminal;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn colour_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `status` coloured by what it means.
pub fn status(status: &str) -> String {
    if !colour_enabled() {
        return status.to_owned();
    }
    let code = match status {
        "completed" => "32",
        "failed" => "31",
        "killed" => "35",
        "running" => "36",
        _ => "33",
    };
    format!("\x1b[{code}m{status}\x1b[0m")
}

pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// A value as a table cell.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints rows under headers, columns aligned (ANSI codes do not count toward widths).
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let visible = |s: &str| {
        let mut n = 0;
        let mut in_escape = false;
        for c in s.chars() {
            match (in_escape, c) {
                (false, '\x1b') => in_escape = true,
                (true, 'm') => in_escape = false,
                (false, _) => n += 1,
                _ => {}
            }
        }
        n
    };
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(visible(c));
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c.clone()
                } else {
                    format!("{c}{}", " ".repeat(widths[i] - visible(c)))
                }
            })
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Key/value lines of an object, in its order.
pub fn fields(value: &Value, keys: &[&str]) {
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    for key in keys {
        let v = &value[*key];
        let text = if *key == "status" {
            status(&cell(v))
        } else {
            cell(v)
        };
        println!("{key:<width$}  {text}");
    }
}
