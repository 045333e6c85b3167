//! The VM's NIC: its driver loaded, `eth0` addressed and routed through the host's tap, and
//! the resolver written where the workload's root reads it. Only for a job that has a
//! network (or a guest booted with a NIC to be snapshotted, `vulcan.nic=1`, which loads the
//! driver before it is Ready); a guest without one never loads the driver.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vulcan_agent::GuestNetwork;

use crate::{load_modules, mount};

/// The modules of the NIC's driver, in load order (`scripts/guest.sh` lists them).
const NET_MODULES: &str = "/etc/vulcan/net-modules";

/// Loads the NIC's driver: at boot for a VM booted with a NIC to be snapshotted
/// (`vulcan.nic=1`), so that the VMs restored from it have `eth0` already.
pub fn load_driver() {
    if !Path::new("/sys/class/net/eth0").exists() {
        load_modules(NET_MODULES);
    }
}

/// Configures `eth0` for `net` and points `root`'s `/etc/resolv.conf` at its resolver.
pub fn configure(net: &GuestNetwork, root: &Path) -> Result<(), String> {
    load_driver();
    let link = Path::new("/sys/class/net/eth0");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !link.exists() {
        if Instant::now() > deadline {
            return Err("the VM's network device (eth0) did not appear".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let address = format!("{}/{}", net.address, net.prefix);
    let gateway = net.gateway.to_string();
    for args in [
        &["link", "set", "lo", "up"][..],
        &["addr", "add", &address, "dev", "eth0"],
        &["link", "set", "eth0", "up"],
        &["route", "add", "default", "via", &gateway],
    ] {
        let out = Command::new("/bin/ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let resolv = format!("nameserver {}\n", net.resolver);
    fs::write("/etc/resolv.conf", &resolv)
        .map_err(|e| format!("cannot write /etc/resolv.conf: {e}"))?;
    if root != Path::new("/") {
        // The runtime's root is read-only and shared: the file is mounted over its own.
        let target = root.join("etc/resolv.conf");
        mount(
            "/etc/resolv.conf",
            &target.to_string_lossy(),
            "",
            libc::MS_BIND,
            "",
        )
        .map_err(|e| format!("cannot bind the resolver onto {}: {e}", target.display()))?;
    }
    Ok(())
}
