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

/// The terminal colour of a workload status.
fn status_colour(status: &str) -> comfy_table::Color {
    use comfy_table::Color;
    match status {
        "completed" => Color::Green,
        "failed" => Color::Red,
        "killed" => Color::Magenta,
        "running" => Color::Cyan,
        _ => Color::Yellow,
    }
}

/// `status` coloured by what it means, for a line of text (tables colour their own).
pub fn status(status: &str) -> String {
    if !colour_enabled() {
        return status.to_owned();
    }
    let code = match status_colour(status) {
        comfy_table::Color::Green => "32",
        comfy_table::Color::Red => "31",
        comfy_table::Color::Magenta => "35",
        comfy_table::Color::Cyan => "36",
        _ => "33",
    };
    format!("\x1b[{code}m{status}\x1b[0m")
}

/// A spinner on stderr for a wait of unknown length (an image pull, a cold boot); hidden
/// when stderr is not a terminal. Finish it before printing anything else.
pub fn spinner(message: String) -> indicatif::ProgressBar {
    let spinner = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .expect("a valid template"),
    );
    spinner.set_message(message);
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    spinner
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

/// Prints rows under headers, columns aligned and unframed (as `ls -l` or `kubectl get`
/// do), never wrapped; a `STATUS` column is coloured on a terminal.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    use comfy_table::{presets, Cell, ContentArrangement, Table};
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(Cell::new));
    if colour_enabled() {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    let status_column = headers.iter().position(|h| *h == "STATUS");
    for row in rows {
        table.add_row(row.iter().enumerate().map(|(i, text)| {
            let cell = Cell::new(text);
            if Some(i) == status_column {
                cell.fg(status_colour(text))
            } else {
                cell
            }
        }));
    }
    let last = headers.len().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
    }
    println!("{}", table.trim_fmt());
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
