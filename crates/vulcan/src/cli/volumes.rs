//! `vulcan volume`: a tenant's named disks, mounted by its sandboxes
//! (`vulcan sandbox create --volume NAME:/path[:ro]`).

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{CliResult, Client};
use super::render::{self, Format};
use super::run::usage;
use super::{encode, print};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Make a volume on the server's node.
    Create {
        name: String,
        /// What its files may fill, in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mb: u32,
    },
    /// List volumes by name.
    Ls,
    /// Delete a volume and its data (refused while a sandbox mounts it).
    Rm { name: String },
}

fn rows(volumes: &Value) {
    let rows: Vec<Vec<String>> = volumes
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            vec![
                render::cell(&v["name"]),
                format!("{} MiB", render::cell(&v["size_mb"])),
                render::cell(&v["tenant"]),
                render::cell(&v["node_id"]),
                render::cell(&v["created_at"]),
            ]
        })
        .collect();
    render::table(&["NAME", "SIZE", "TENANT", "NODE", "CREATED"], &rows);
}

pub fn command(client: &Client, format: Format, command: VolumeCommand) -> CliResult<()> {
    match command {
        VolumeCommand::Create { name, size_mb } => {
            let made = client.post("/v1/volumes", &json!({"name": name, "size_mb": size_mb}))?;
            print(format, &made, |v| println!("{}", render::cell(&v["name"])));
        }
        VolumeCommand::Ls => {
            let all = client.get("/v1/volumes")?;
            print(format, &all, rows);
        }
        VolumeCommand::Rm { name } => {
            let gone = client.delete(&format!("/v1/volumes/{}", encode(&name)))?;
            print(format, &gone, |v| {
                println!("{} deleted", render::cell(&v["name"]))
            });
        }
    }
    Ok(())
}

/// `NAME:/path[:ro]` as a sandbox's volume mount.
pub fn mount_of(arg: &str) -> CliResult<Value> {
    let bad = || {
        usage(format!(
            "--volume {arg:?} is not NAME:/path or NAME:/path:ro (an absolute path inside the sandbox)"
        ))
    };
    let (name, rest) = arg.split_once(':').ok_or_else(bad)?;
    let (path, read_only) = match rest.strip_suffix(":ro") {
        Some(path) => (path, true),
        None => (rest.strip_suffix(":rw").unwrap_or(rest), false),
    };
    if name.is_empty() || !path.starts_with('/') {
        return Err(bad());
    }
    Ok(json!({"name": name, "path": path, "read_only": read_only}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_is_a_name_an_absolute_path_and_ro_or_not() {
        assert_eq!(
            mount_of("data:/mnt/data:ro").unwrap(),
            json!({"name": "data", "path": "/mnt/data", "read_only": true})
        );
        assert_eq!(
            mount_of("data:/mnt/data").unwrap(),
            json!({"name": "data", "path": "/mnt/data", "read_only": false})
        );
        assert!(mount_of("data").is_err());
        assert!(mount_of("data:mnt").is_err());
        assert!(mount_of(":/mnt").is_err());
    }
}
