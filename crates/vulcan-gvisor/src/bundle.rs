//! The OCI runtime spec (`config.json`) of one run: the image's root read-only, a tmpfs
//! at `/tmp` as the only writable place, no network but loopback (or, for a workload with
//! an egress policy, the namespace Vulcan made for it), and the workload's resources as
//! cgroup limits.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use oci_spec::OciSpecError;
use vulcan_domain::{ImageConfig, Resources};

/// What the sandbox itself (gVisor's sentry and gofer) needs on top of the workload.
pub const SANDBOX_OVERHEAD_MB: u64 = 64;

/// The period of every sandbox's CPU bound, in µs: its quota is the CPUs times this.
pub const CPU_PERIOD: u64 = 100_000;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The sandbox's memory bound: the workload's memory plus the sandbox's own.
pub fn memory_limit_bytes(mem_mb: u32) -> u64 {
    (u64::from(mem_mb) + SANDBOX_OVERHEAD_MB) * 1024 * 1024
}

/// Everything that goes into one run's spec.
pub struct RunSpec<'a> {
    pub rootfs: &'a Path,
    pub image: &'a ImageConfig,
    /// Replaces the image's `Cmd` (its `Entrypoint` stays, as with `docker run`).
    pub command: Option<&'a [String]>,
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub resources: Resources,
    /// Host tasks the sandbox may have (gVisor's own threads count too).
    pub pids_limit: u32,
    /// Path of the cgroup under each controller, e.g. `/vulcan-gvisor/<id>`.
    pub cgroup: &'a str,
    /// The workload's unpacked `code_archive`, mounted read-write at `/work` (the cwd).
    pub work: Option<&'a Path>,
    /// A warm instance's init ([`HOLD_PATH`] in the sandbox): it keeps the sandbox open,
    /// and the workload's process ([`process`]) is executed into it once per invocation.
    pub hold: Option<&'a Path>,
    /// A sandbox with a network: the namespace it joins and the `resolv.conf` it gets.
    pub network: Option<NetworkSpec<'a>>,
    /// The pod (see [`crate::pods`]) this container joins: its sandbox, network and
    /// limits are the pod's, so the spec names neither cgroup nor resources.
    pub pod: Option<&'a str>,
}

/// The annotations runsc reads to run several containers in one sandbox (as Kubernetes'
/// CRI names them): the first container's type is `sandbox`; a later one's is `container`,
/// with the first one's id.
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// Where a networked sandbox's interface is, and its resolver.
#[derive(Debug, Clone, Copy)]
pub struct NetworkSpec<'a> {
    pub namespace: &'a Path,
    pub resolv_conf: &'a Path,
}

/// Where a warm instance's init is mounted.
pub const HOLD_PATH: &str = "/.vulcan/hold";

/// Where a `code_archive` appears in the sandbox.
pub const WORK_DIR: &str = "/work";

/// The process's argv: the image's entrypoint followed by the command (or the image's cmd).
pub fn argv(image: &ImageConfig, command: Option<&[String]>) -> Vec<String> {
    vulcan_sandbox::image_user::argv(&image.entrypoint, &image.cmd, command)
}

pub use vulcan_sandbox::image_user::user;

/// Every spec builder's failure: a value the OCI types refuse.
fn invalid(e: OciSpecError) -> String {
    format!("cannot build the sandbox's OCI spec: {e}")
}

/// The environment a process starts with: a `PATH`, the image's, then `env`'s.
pub fn environment(
    image: &ImageConfig,
    env: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut all: Vec<String> = vec![DEFAULT_PATH.to_owned()];
    let mut set = |pair: String| {
        let name = pair.split('=').next().unwrap_or_default().to_owned();
        all.retain(|e| e.split('=').next() != Some(name.as_str()));
        all.push(pair);
    };
    image.env.iter().cloned().for_each(&mut set);
    env.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .for_each(&mut set);
    all
}

/// The workload's process: its argv, environment, directory, user and capabilities.
pub fn process(run: &RunSpec<'_>, uid: u32, gid: u32) -> Result<Process, String> {
    let cwd = if run.work.is_some() {
        WORK_DIR
    } else if run.image.working_dir.starts_with('/') {
        run.image.working_dir.as_str()
    } else {
        "/"
    };
    process_of(
        argv(run.image, run.command),
        environment(run.image, run.env),
        cwd,
        uid,
        gid,
    )
}

/// A process with `args`, `env` and `cwd`, as `uid`:`gid`, with gVisor's default
/// capabilities, no new privileges and a bound on open files.
pub fn process_of(
    args: Vec<String>,
    env: Vec<String>,
    cwd: &str,
    uid: u32,
    gid: u32,
) -> Result<Process, String> {
    let capabilities: Capabilities = CAPABILITIES.into_iter().collect();
    ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(uid)
                .gid(gid)
                .build()
                .map_err(invalid)?,
        )
        .args(args)
        .env(env)
        .cwd(cwd)
        .no_new_privileges(true)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()
            .map_err(invalid)?])
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(capabilities.clone())
                .effective(capabilities.clone())
                .permitted(capabilities)
                .inheritable(Capabilities::new())
                .ambient(Capabilities::new())
                .build()
                .map_err(invalid)?,
        )
        .build()
        .map_err(invalid)
}

const CAPABILITIES: [Capability; 6] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
];

/// [`CAPABILITIES`] as the kernel numbers them, a bit each.
pub fn capability_bits() -> u64 {
    CAPABILITIES
        .iter()
        .map(|c| match c {
            Capability::Chown => 1 << 0,
            Capability::DacOverride => 1 << 1,
            Capability::Fowner => 1 << 3,
            Capability::Kill => 1 << 5,
            Capability::Setgid => 1 << 6,
            Capability::Setuid => 1 << 7,
            // Not one a process is given (see CAPABILITIES): none.
            _ => 0,
        })
        .fold(0, |bits, bit| bits | bit)
}

fn mount(destination: &str, typ: &str, source: &Path, options: &[&str]) -> Result<Mount, String> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(invalid)
}

/// The namespaces every sandbox has of its own; its network is the namespace at `network`
/// when one is given (Vulcan made it), else one with loopback only.
fn namespaces(network: Option<&Path>) -> Result<Vec<LinuxNamespace>, String> {
    [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ]
    .into_iter()
    .map(|typ| {
        let mut ns = LinuxNamespaceBuilder::default().typ(typ);
        if let (LinuxNamespaceType::Network, Some(path)) = (typ, network) {
            ns = ns.path(path);
        }
        ns.build()
    })
    .collect::<Result<Vec<_>, _>>()
    .map_err(invalid)
}

/// A sandbox's bounds as runsc sets them on its cgroup: memory (when given), `cpus` CPUs
/// and `pids_limit` tasks.
fn bounds(memory_bytes: Option<u64>, cpus: u32, pids_limit: u32) -> Result<LinuxResources, String> {
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(bytes) = memory_bytes {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(i64::try_from(bytes).unwrap_or(i64::MAX))
                .build()
                .map_err(invalid)?,
        );
    }
    resources
        .cpu(
            LinuxCpuBuilder::default()
                .quota(i64::from(cpus) * CPU_PERIOD as i64)
                .period(CPU_PERIOD)
                .build()
                .map_err(invalid)?,
        )
        .pids(
            LinuxPidsBuilder::default()
                .limit(i64::from(pids_limit))
                .build()
                .map_err(invalid)?,
        )
        .build()
        .map_err(invalid)
}

/// The sandbox's spec: the workload's process (or, for a warm instance, its init), the
/// image's root read-only, the mounts, namespaces and limits.
pub fn config(run: &RunSpec<'_>, uid: u32, gid: u32) -> Result<Spec, String> {
    let mut process = process(run, uid, gid)?;
    if run.hold.is_some() {
        process.set_args(Some(vec![HOLD_PATH.to_owned()]));
    }
    let mem_bytes = memory_limit_bytes(run.resources.mem_mb);
    let scratch = format!("size={}m", u64::from(run.resources.mem_mb).clamp(16, 512));
    let mut mounts = vec![
        mount("/proc", "proc", Path::new("proc"), &[])?,
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/sys",
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/tmp",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "nodev", "mode=1777", &scratch],
        )?,
    ];
    if let Some(work) = run.work {
        mounts.push(mount(
            WORK_DIR,
            "bind",
            work,
            &["rbind", "rw", "nosuid", "nodev"],
        )?);
    }
    if let Some(network) = &run.network {
        mounts.push(mount(
            "/etc/resolv.conf",
            "bind",
            network.resolv_conf,
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        )?);
    }
    if let Some(hold) = run.hold {
        mounts.push(mount(
            HOLD_PATH,
            "bind",
            hold,
            &["rbind", "ro", "nosuid", "nodev"],
        )?);
    }
    let namespaces = namespaces(run.network.as_ref().map(|n| n.namespace))?;
    let resources = bounds(Some(mem_bytes), run.resources.cpus, run.pids_limit)?;
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        // gVisor's /proc and /sys are its own: nothing of the host's to mask.
        .masked_paths(Vec::<String>::new())
        .readonly_paths(Vec::<String>::new());
    let mut annotations = std::collections::HashMap::new();
    match run.pod {
        Some(pod) => {
            annotations.insert(CONTAINER_TYPE.to_owned(), "container".to_owned());
            annotations.insert(SANDBOX_ID.to_owned(), pod.to_owned());
        }
        None => linux = linux.cgroups_path(run.cgroup).resources(resources),
    }
    SpecBuilder::default()
        .version("1.0.2")
        .hostname("vulcan")
        .process(process)
        .root(
            RootBuilder::default()
                .path(run.rootfs)
                .readonly(true)
                .build()
                .map_err(invalid)?,
        )
        .mounts(mounts)
        .linux(linux.build().map_err(invalid)?)
        .annotations(annotations)
        .build()
        .map_err(invalid)
}

/// A long-lived sandbox's spec (see [`crate::sandboxes`]): its init the hold program,
/// its root `rootfs` writable (an overlay on the host whose writes land on the sandbox's
/// own disk), `/tmp` on that disk too (not a tmpfs: its files are the sandbox's files),
/// and `volumes` bound in: (their mount on the host, the path inside, read-only).
pub fn sandbox_config(
    run: &RunSpec<'_>,
    uid: u32,
    gid: u32,
    volumes: &[(PathBuf, String, bool)],
) -> Result<Spec, String> {
    let mut spec = config(run, uid, gid)?;
    let tmp = run.rootfs.join("tmp");
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in mounts.iter_mut() {
        if m.destination() == Path::new("/tmp") {
            *m = mount("/tmp", "bind", &tmp, &["rbind", "rw", "nosuid", "nodev"])?;
        }
    }
    spec.set_mounts(Some(mounts));
    bind_volumes(&mut spec, volumes)?;
    spec.set_root(Some(
        RootBuilder::default()
            .path(run.rootfs)
            .readonly(false)
            .build()
            .map_err(invalid)?,
    ));
    Ok(spec)
}

/// Binds `volumes` into `spec`: (their mount on the host, the path inside, read-only).
pub fn bind_volumes(spec: &mut Spec, volumes: &[(PathBuf, String, bool)]) -> Result<(), String> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (source, path, read_only) in volumes {
        let access = if *read_only { "ro" } else { "rw" };
        mounts.push(mount(
            path,
            "bind",
            source,
            &["rbind", access, "nosuid", "nodev"],
        )?);
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// Where a pod's init is in its root.
pub const POD_INIT: &str = "/hold";

/// A pod's spec: a sandbox whose root (`root`, read-only) holds nothing but the hold
/// program at [`POD_INIT`], with the network of `namespace`, in cgroup `cgroup` (made
/// with its memory bound), one CPU and `pids_limit` tasks until a workload's container
/// joins it and the workload's own bounds are set. Its process has no capability.
pub fn pod_config(
    root: &Path,
    namespace: &Path,
    cgroup: &str,
    pids_limit: u32,
) -> Result<Spec, String> {
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(invalid)?,
        )
        .args(vec![POD_INIT.to_owned()])
        .env(vec![DEFAULT_PATH.to_owned()])
        .cwd("/")
        .no_new_privileges(true)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(Capabilities::new())
                .effective(Capabilities::new())
                .permitted(Capabilities::new())
                .inheritable(Capabilities::new())
                .ambient(Capabilities::new())
                .build()
                .map_err(invalid)?,
        )
        .build()
        .map_err(invalid)?;
    // No memory bound in the spec: runsc would tell the sandbox's kernel that bound as its
    // total memory, and the workload's bound is not known yet. The cgroup Vulcan made
    // holds the pod's bound; the kernel sees the host's memory, as a container does.
    let namespaces = namespaces(Some(namespace))?;
    let resources = bounds(None, 1, pids_limit)?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(cgroup)
        .resources(resources)
        .masked_paths(Vec::<String>::new())
        .readonly_paths(Vec::<String>::new())
        .build()
        .map_err(invalid)?;
    let annotations: std::collections::HashMap<String, String> =
        [(CONTAINER_TYPE.to_owned(), "sandbox".to_owned())]
            .into_iter()
            .collect();
    SpecBuilder::default()
        .version("1.0.2")
        .hostname("vulcan")
        .process(process)
        .root(
            RootBuilder::default()
                .path(root)
                .readonly(true)
                .build()
                .map_err(invalid)?,
        )
        .mounts(vec![mount("/proc", "proc", Path::new("proc"), &[])?])
        .linux(linux)
        .annotations(annotations)
        .build()
        .map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            env: vec!["PATH=/custom".into(), "A=1".into()],
            working_dir: "/app".into(),
            user: String::new(),
        }
    }

    #[test]
    fn a_process_has_the_same_capabilities_however_it_is_started() {
        // chown 0, dac_override 1, fowner 3, kill 5, setgid 6, setuid 7: as runsc exec
        // would give a process of the spec's (`process_of`).
        assert_eq!(capability_bits(), 0b1110_1011);
        let spec = process_of(vec!["true".into()], vec![], "/", 0, 0).unwrap();
        let bounding = spec
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .clone()
            .unwrap();
        assert_eq!(bounding.len() as u32, capability_bits().count_ones());
    }

    #[test]
    fn command_replaces_cmd_and_keeps_the_entrypoint() {
        let cmd = vec!["x".to_owned()];
        assert_eq!(argv(&image(), Some(&cmd)), ["/entry", "x"]);
        assert_eq!(argv(&image(), None), ["/entry", "default"]);
    }

    #[test]
    fn request_env_overrides_image_env_and_limits_follow_resources() {
        let env = [("A".to_owned(), "2".to_owned())].into_iter().collect();
        let img = image();
        let spec = config(
            &RunSpec {
                rootfs: Path::new("/images/x"),
                image: &img,
                command: None,
                env: &env,
                resources: Resources {
                    cpus: 2,
                    mem_mb: 100,
                    timeout_s: 5,
                    net_mbps: None,
                },
                pids_limit: 300,
                cgroup: "/vulcan-gvisor/w1",
                work: None,
                hold: None,
                network: None,
                pod: None,
            },
            0,
            0,
        )
        .unwrap();
        let spec = serde_json::to_value(spec).unwrap();
        let env: Vec<&str> = spec["process"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(env, ["PATH=/custom", "A=2"]);
        assert_eq!(spec["process"]["cwd"], "/app");
        assert_eq!(spec["root"]["readonly"], true);
        assert_eq!(
            spec["linux"]["resources"]["memory"]["limit"],
            (100 + SANDBOX_OVERHEAD_MB) * 1024 * 1024
        );
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 200_000);
        assert_eq!(spec["linux"]["resources"]["pids"]["limit"], 300);
    }

    #[test]
    fn a_pod_holds_only_its_init_and_a_container_in_it_names_the_pod_not_its_bounds() {
        let pod = pod_config(
            Path::new("/pods/root"),
            Path::new("/run/netns/vulcan-egress-7"),
            "/vulcan-gvisor/pod-1-1",
            300,
        )
        .unwrap();
        let pod = serde_json::to_value(pod).unwrap();
        assert_eq!(pod["annotations"][CONTAINER_TYPE], "sandbox");
        assert_eq!(pod["process"]["args"], serde_json::json!([POD_INIT]));
        assert_eq!(
            pod["process"]["capabilities"]["bounding"],
            serde_json::json!([])
        );
        assert_eq!(pod["root"]["readonly"], true);
        assert_eq!(pod["linux"]["cgroupsPath"], "/vulcan-gvisor/pod-1-1");
        // The bound the sandbox's kernel would take for its total is set on the cgroup.
        assert!(pod["linux"]["resources"]["memory"].is_null(), "{pod}");
        assert_eq!(pod["linux"]["resources"]["pids"]["limit"], 300);
        let network = pod["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .unwrap()
            .clone();
        assert_eq!(network["path"], "/run/netns/vulcan-egress-7");

        let img = image();
        let env = Default::default();
        let container = config(
            &RunSpec {
                rootfs: Path::new("/images/x"),
                image: &img,
                command: None,
                env: &env,
                resources: Resources::default(),
                pids_limit: 300,
                cgroup: "/vulcan-gvisor/w1",
                work: None,
                hold: None,
                network: None,
                pod: Some("pod-1-1"),
            },
            0,
            0,
        )
        .unwrap();
        let container = serde_json::to_value(container).unwrap();
        assert_eq!(container["annotations"][CONTAINER_TYPE], "container");
        assert_eq!(container["annotations"][SANDBOX_ID], "pod-1-1");
        assert!(container["linux"]["cgroupsPath"].is_null(), "{container}");
        for bound in ["memory", "cpu", "pids"] {
            assert!(
                container["linux"]["resources"][bound].is_null(),
                "{container}"
            );
        }
        assert_eq!(
            container["process"]["args"],
            serde_json::json!(["/entry", "default"])
        );
    }
}
