//! The VM's NIC: its driver loaded, `eth0` addressed and routed through the host's tap, and
//! the resolver written where the workload's root reads it. Only for a job that has a
//! network (or a guest booted with a NIC to be snapshotted, `vulcan.nic=1`, which loads the
//! driver before it is Ready); a guest without one never loads the driver. The interface is
//! configured with the kernel's socket ioctls: no process is started for it (each costs
//! milliseconds under emulation).

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
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
    // SAFETY: socket has no memory preconditions; a descriptor it returns is ours to own.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!(
            "cannot open a socket to configure the network: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    set_up(&socket, "lo")?;
    let mut req = ifreq("eth0");
    req.ifr_ifru.ifru_addr = sockaddr(net.address);
    ioctl(&socket, libc::SIOCSIFADDR, &mut req, "set eth0's address")?;
    let mask = u32::MAX
        .checked_shl(32 - u32::from(net.prefix))
        .unwrap_or(0);
    req.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
    ioctl(
        &socket,
        libc::SIOCSIFNETMASK,
        &mut req,
        "set eth0's netmask",
    )?;
    set_up(&socket, "eth0")?;
    let any = sockaddr(Ipv4Addr::UNSPECIFIED);
    let mut route = RtEntry {
        rt_pad1: 0,
        rt_dst: any,
        rt_gateway: sockaddr(net.gateway),
        rt_genmask: any,
        rt_flags: libc::RTF_UP | libc::RTF_GATEWAY,
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: std::ptr::null_mut(),
        rt_window: 0,
        rt_irtt: 0,
    };
    ioctl(
        &socket,
        libc::SIOCADDRT,
        &mut route,
        "add the default route",
    )?;

    let resolv = format!("nameserver {}\n", net.resolver);
    fs::write("/etc/resolv.conf", &resolv)
        .map_err(|e| format!("cannot write /etc/resolv.conf: {e}"))?;
    let target = root.join("etc/resolv.conf");
    let a_file = fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_file());
    if root != Path::new("/") && !a_file {
        // An image's root (writable through its overlay) may have a link there, or nothing.
        let _ = fs::remove_file(&target);
        fs::create_dir_all(root.join("etc"))
            .and_then(|()| fs::write(&target, &resolv))
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    } else if root != Path::new("/") {
        // The runtime's root is read-only and shared: the file is mounted over its own.
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

/// `struct rtentry` (glibc's libc crate does not define it).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: both are 16-byte plain-data structs; the kernel reads an AF_INET sockaddr
    // as a sockaddr_in.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: all zeroes is a valid ifreq (an empty name, a zeroed union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *to = from as libc::c_char;
    }
    req
}

/// Sets interface `name` up.
fn set_up(socket: &OwnedFd, name: &str) -> Result<(), String> {
    let mut req = ifreq(name);
    ioctl(
        socket,
        libc::SIOCGIFFLAGS,
        &mut req,
        &format!("read {name}'s flags"),
    )?;
    // SAFETY: SIOCGIFFLAGS filled in the flags member.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(
        socket,
        libc::SIOCSIFFLAGS,
        &mut req,
        &format!("set {name} up"),
    )
}

/// Makes the socket ioctl `request` with `arg`; `what` names it in the error.
fn ioctl<T>(
    socket: &OwnedFd,
    request: libc::c_ulong,
    arg: &mut T,
    what: &str,
) -> Result<(), String> {
    // SAFETY: `arg` is the struct `request` takes, alive and exclusively borrowed across
    // the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), request, arg as *mut T) };
    if rc != 0 {
        return Err(format!("cannot {what}: {}", io::Error::last_os_error()));
    }
    Ok(())
}
