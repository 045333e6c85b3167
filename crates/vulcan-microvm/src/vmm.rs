//! Virtual machine monitors. QEMU's `microvm` machine is the one driver today; the trait is
//! what a Firecracker driver would implement.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Which accelerator a VM runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Everything one VM is started with.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// A read-only root filesystem image attached as the first virtio disk.
    pub rootfs: Option<PathBuf>,
    pub mem_mb: u32,
    pub cpus: u32,
    pub accel: Accel,
    /// The unix socket of the host↔guest channel (the VMM listens on it).
    pub channel: PathBuf,
    /// Where the guest's serial console goes.
    pub console: PathBuf,
    pub pidfile: PathBuf,
    /// Extra kernel command line.
    pub cmdline_extra: String,
    /// The VMM's control socket (QMP), for snapshots and restores.
    pub qmp: Option<PathBuf>,
    /// Start from this saved state (a snapshot's migration stream) instead of booting.
    pub incoming: Option<PathBuf>,
    /// Guest RAM in a file instead of anonymous memory.
    pub memory: Option<GuestMemory>,
    /// The VM's NIC; none: the VM has no NIC.
    pub nic: Option<Nic>,
    /// A writable disk of the VM's own (a sandbox's), after the root: serial
    /// [`vulcan_agent::DATA_DISK_SERIAL`].
    pub data_disk: Option<PathBuf>,
    /// A sandbox's volumes, after its disk: (file, read-only), serials
    /// [`vulcan_agent::volume_serial`] in order.
    pub volumes: Vec<(PathBuf, bool)>,
}

/// A NIC on a tap device made (and filtered on the host) beforehand in a network
/// namespace: the VMM is started in that namespace to attach to it.
#[derive(Debug, Clone)]
pub struct Nic {
    pub namespace: PathBuf,
    pub tap: String,
}

/// Guest RAM backed by a file. A VM being snapshotted writes its RAM through to the file
/// (`shared`), so that saving it writes only the devices' state; every VM restored from
/// the snapshot maps the file copy-on-write: it reads the pages it touches from the page
/// cache, shared with every other clone, and its writes stay its own.
#[derive(Debug, Clone)]
pub struct GuestMemory {
    pub file: PathBuf,
    pub shared: bool,
}

/// `path` as one word for `/bin/sh` (QEMU runs `exec:` migration URIs through it).
pub fn shell_word(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', "'\\''"))
}

/// The guest kernel's command line. `no_timer_check` skips the IO-APIC timer probe, which
/// under emulation on a busy host can stall a boot for many seconds.
pub const KERNEL_CMDLINE: &str = "console=ttyS0 quiet reboot=t panic=-1 no_timer_check";

/// Extra kernel arguments for a guest under `accel`. Under TCG the guest's TSC runs at the
/// host's rate, and calibrating it against the emulated PIT fails on a busy host ("could
/// not calculate TSC khz"), after which the boot stalls: the host's frequency is given.
/// And under TCG no CPU executes the guest's instructions speculatively — QEMU translates
/// its indirect branches and returns into lookups of its own — so the guest kernel's
/// Spectre mitigations (retpolines, RSB filling, user-copy barriers) guard nothing and only
/// cost emulated instructions: `mitigations=off`. Under KVM they stay.
pub fn accel_cmdline(accel: Accel) -> String {
    if accel != Accel::Tcg {
        return String::new();
    }
    let mut args = vec!["mitigations=off".to_owned()];
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let constant = cpuinfo.contains("constant_tsc");
    let mhz = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("cpu MHz")?
            .split(':')
            .nth(1)?
            .trim()
            .parse::<f64>()
            .ok()
    });
    if let Some(mhz) = mhz.filter(|mhz| constant && *mhz > 0.0) {
        args.push(format!("tsc_early_khz={}", (mhz * 1000.0).round() as u64));
    }
    args.join(" ")
}

/// A virtual machine monitor: turns a [`VmSpec`] into a process.
pub trait Vmm: Send + Sync {
    fn name(&self) -> &'static str;
    fn command(&self, spec: &VmSpec) -> tokio::process::Command;
}

/// QEMU's `microvm` machine: no PCI, no firmware tables beyond ACPI, virtio-mmio devices.
pub struct QemuMicrovm {
    pub bin: PathBuf,
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Vmm for QemuMicrovm {
    fn name(&self) -> &'static str {
        "qemu-microvm"
    }

    fn command(&self, spec: &VmSpec) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        match &spec.memory {
            Some(memory) => cmd
                .args(["-M", "microvm,isa-serial=on,rtc=off,memory-backend=ram"])
                .args([
                    "-object",
                    &format!(
                        "memory-backend-file,id=ram,size={}M,mem-path={},share={}",
                        spec.mem_mb,
                        path(&memory.file).replace(',', ",,"),
                        if memory.shared { "on" } else { "off" }
                    ),
                ]),
            None => cmd.args(["-M", "microvm,isa-serial=on,rtc=off"]),
        };
        cmd.args(["-accel", spec.accel.as_str()]);
        if spec.accel == Accel::Kvm {
            cmd.args(["-cpu", "host"]);
        }
        cmd.args([
            "-m",
            &spec.mem_mb.to_string(),
            "-smp",
            &spec.cpus.to_string(),
        ])
        .args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(&spec.kernel)
        .arg("-initrd")
        .arg(&spec.initramfs)
        .arg("-append")
        .arg(format!("{KERNEL_CMDLINE} {}", spec.cmdline_extra).trim());
        if let Some(rootfs) = &spec.rootfs {
            cmd.args([
                "-drive",
                &format!(
                    "file={},format=raw,if=none,id=root,readonly=on",
                    path(rootfs)
                ),
                "-device",
                "virtio-blk-device,drive=root",
            ]);
        }
        if let Some(disk) = &spec.data_disk {
            cmd.args([
                "-drive",
                &format!(
                    "file={},format=raw,if=none,id=data,cache=writeback",
                    path(disk).replace(',', ",,")
                ),
                "-device",
                &format!(
                    "virtio-blk-device,drive=data,serial={}",
                    vulcan_agent::DATA_DISK_SERIAL
                ),
            ]);
        }
        for (n, (file, read_only)) in spec.volumes.iter().enumerate() {
            let access = if *read_only { ",readonly=on" } else { "" };
            cmd.args([
                "-drive",
                &format!(
                    "file={},format=raw,if=none,id=vol{n},cache=writeback{access}",
                    path(file).replace(',', ",,")
                ),
                "-device",
                &format!(
                    "virtio-blk-device,drive=vol{n},serial={}",
                    vulcan_agent::volume_serial(n)
                ),
            ]);
        }
        let namespace = match &spec.nic {
            Some(nic) => {
                cmd.args([
                    "-netdev",
                    &format!(
                        "tap,id=net0,ifname={},script=no,downscript=no",
                        nic.tap.replace(',', ",,")
                    ),
                    "-device",
                    "virtio-net-device,netdev=net0",
                ]);
                Some(std::fs::File::open(&nic.namespace))
            }
            None => None,
        };
        cmd.args(["-device", "virtio-serial-device"])
            .args([
                "-chardev",
                &format!(
                    "socket,id=ch0,path={},server=on,wait=off",
                    path(&spec.channel)
                ),
            ])
            .args([
                "-device",
                &format!(
                    "virtserialport,chardev=ch0,name={}",
                    vulcan_agent::PORT_NAME
                ),
            ])
            .args(["-serial", &format!("file:{}", path(&spec.console))]);
        if let Some(qmp) = &spec.qmp {
            cmd.args(["-qmp", &format!("unix:{},server=on,wait=off", path(qmp))]);
        }
        match (&spec.incoming, &spec.memory) {
            // The state is loaded over QMP, once RAM is marked as left to the file.
            (Some(_), Some(_)) => {
                cmd.args(["-incoming", "defer"]);
            }
            (Some(state), None) => {
                cmd.args(["-incoming", &format!("exec:cat {}", shell_word(state))]);
            }
            (None, _) => {}
        }
        cmd.arg("-pidfile")
            .arg(&spec.pidfile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl and setns are async-signal-safe; the VM dies with the server; the
        // namespace's descriptor stays open in the parent (the closure owns it) until the
        // child has joined it.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                match &namespace {
                    Some(Ok(file)) => {
                        use std::os::fd::AsRawFd;
                        if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Some(Err(e)) => return Err(std::io::Error::new(e.kind(), e.to_string())),
                    None => {}
                }
                Ok(())
            });
        }
        cmd
    }
}
