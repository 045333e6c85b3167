//! `vulcan man DIR`: a man page per command, from the CLI's own definition, so the pages
//! cannot drift from the flags. `vulcan fn deploy` becomes `vulcan-fn-deploy.1`.

use std::path::Path;

/// Writes the pages of `command` and of every subcommand under it; returns how many.
pub fn write_pages(command: &clap::Command, dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut command = command.clone();
    // Subcommands render with their full names ("vulcan fn deploy") only once built.
    command.build();
    write_tree(&command, command.get_name(), dir)
}

fn write_tree(command: &clap::Command, name: &str, dir: &Path) -> std::io::Result<usize> {
    let page = clap_mangen::Man::new(command.clone()).title(name.to_owned());
    let mut text = Vec::new();
    page.render(&mut text)?;
    std::fs::write(dir.join(format!("{name}.1")), text)?;
    let mut written = 1;
    // Hidden commands (the wasm helper the server starts) are internal: no page.
    for sub in command
        .get_subcommands()
        .filter(|s| s.get_name() != "help" && !s.is_hide_set())
    {
        written += write_tree(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
