//! Choosing the accelerator: KVM only where a guest really boots under it (some hosts
//! expose a /dev/kvm that boots no standard kernel, e.g. paravirtualized KVM), TCG
//! otherwise. The probe's answer is remembered next to the guest kernel, keyed by the
//! host and guest kernels, so it runs once per machine.

use std::path::Path;
use std::time::Duration;

use crate::vm::Vm;
use crate::vmm::{Accel, VmSpec, Vmm};
use crate::{AccelChoice, MicrovmConfig};

/// A KVM guest reaches its agent in well under a second; one that needs longer is stuck.
const PROBE_DEADLINE: Duration = Duration::from_secs(6);

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The accelerator to use and a note on how it was chosen.
pub async fn choose(
    config: &MicrovmConfig,
    vmm: &dyn Vmm,
    kernel: &Path,
    initramfs: &Path,
    vms: &Path,
) -> (Accel, String) {
    match config.accel {
        AccelChoice::Kvm => return (Accel::Kvm, "set by VULCAN_MICROVM_ACCEL".into()),
        AccelChoice::Tcg => return (Accel::Tcg, "set by VULCAN_MICROVM_ACCEL".into()),
        AccelChoice::Auto => {}
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return (Accel::Tcg, "no usable /dev/kvm".into());
    }
    let guest = std::fs::metadata(kernel)
        .map(|m| format!("{}", m.len()))
        .unwrap_or_default();
    let key = format!("host={} guest-kernel-bytes={guest}", host_release());
    let cache = config.assets.join("kvm-probe");
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Some((cached_key, answer)) = text.trim().rsplit_once(' ') {
            if cached_key == key {
                let accel = if answer == "kvm" {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                };
                return (
                    accel,
                    format!("probed earlier on this host ({})", cache.display()),
                );
            }
        }
    }
    let spec = VmSpec {
        kernel: kernel.to_path_buf(),
        initramfs: initramfs.to_path_buf(),
        rootfs: None,
        mem_mb: 128,
        cpus: 1,
        accel: Accel::Kvm,
        channel: Default::default(),
        console: Default::default(),
        pidfile: Default::default(),
        cmdline_extra: String::new(),
        qmp: None,
        incoming: None,
        memory: None,
        nic: None,
        data_disk: None,
        volumes: Vec::new(),
    };
    let (accel, note) = match Vm::boot(vmm, spec, vms, PROBE_DEADLINE).await {
        Ok(vm) => {
            drop(vm);
            (Accel::Kvm, "a probe guest booted under KVM".to_owned())
        }
        Err(e) => (
            Accel::Tcg,
            format!("/dev/kvm is present but a probe guest did not boot under it ({e}); using TCG"),
        ),
    };
    let _ = std::fs::write(&cache, format!("{key} {}\n", accel.as_str()));
    (accel, note)
}
