//! The cgroup policy against a fake cgroup tree (the kernel's own is tested by the
//! backends' tests).

use super::*;

/// A fake v2 mount: directories and files as the kernel would show them.
fn fake_v2(controllers: &str) -> (PathBuf, impl Drop) {
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("vulcan-cgroup-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
    (dir.clone(), Gone(dir))
}

/// A v2 parent at the fake mount's root, with pids.
fn fake_parent(mount: &Path) -> CgroupParent {
    CgroupParent {
        memory: mount.to_path_buf(),
        pids: None,
        cpu: None,
        v2: true,
        with_pids: true,
    }
}

#[test]
fn a_sweep_leaves_a_group_just_made_whoever_made_it() {
    let (mount, _gone) = fake_v2("memory pids");
    let parent = fake_parent(&mount);
    for name in ["fresh", "old"] {
        std::fs::create_dir_all(mount.join(name)).unwrap();
    }
    let long_ago = std::time::SystemTime::now() - SWEEP_AGE * 2;
    std::fs::File::open(mount.join("old"))
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    parent.sweep();
    assert!(mount.join("fresh").exists(), "a group just made is kept");
    assert!(!mount.join("old").exists(), "an old empty group is removed");
}

#[test]
fn a_controller_that_cannot_be_delegated_is_an_error() {
    // A plain directory keeps whatever is written to cgroup.subtree_control, so
    // "+memory +pids" is not read back as "memory pids": delegation failed.
    let (mount, _gone) = fake_v2("memory pids");
    let err = CgroupParent::create_at(&mount, Path::new("vulcan-test"), true).unwrap_err();
    assert!(err.contains("cannot be enabled"), "{err}");
}

#[test]
fn limits_and_counters_use_each_versions_files() {
    let (mount, _gone) = fake_v2("memory pids");
    let parent = fake_parent(&mount);
    let group = parent.group("w1").unwrap();
    std::fs::write(group.dir().join("memory.swap.max"), "max").unwrap();
    group.set_memory_max(64 << 20).unwrap();
    group.set_pids_max(64).unwrap();
    group.kill_all_on_oom().unwrap();
    let read = |f: &str| std::fs::read_to_string(group.dir().join(f)).unwrap();
    assert_eq!(read("memory.max"), (64u64 << 20).to_string());
    assert_eq!(read("memory.swap.max"), "0", "no swap beyond the limit");
    assert_eq!(read("pids.max"), "64");
    assert_eq!(read("memory.oom.group"), "1");
    std::fs::write(
        group.dir().join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n",
    )
    .unwrap();
    std::fs::write(group.dir().join("pids.events"), "max 7\n").unwrap();
    assert_eq!(
        group.events(),
        Events {
            oom_kills: 2,
            pids_refused: 7
        }
    );
}

#[test]
fn usage_is_measured_from_a_mark_on_v1_and_v2() {
    let (mount, _gone) = fake_v2("memory pids");
    let v1 = Cgroup {
        memory: mount.join("memory"),
        pids: Some(mount.join("pids")),
        cpu: Some(mount.join("cpuacct")),
        v2: false,
    };
    for dir in [
        &v1.memory,
        v1.pids.as_ref().unwrap(),
        v1.cpu.as_ref().unwrap(),
    ] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(v1.cpu.as_ref().unwrap().join("cpuacct.usage"), "5000000000").unwrap();
    std::fs::write(v1.memory.join("memory.max_usage_in_bytes"), "999").unwrap();
    let mark = v1.mark();
    assert_eq!(
        std::fs::read_to_string(v1.memory.join("memory.max_usage_in_bytes")).unwrap(),
        "0",
        "the peak is reset"
    );
    std::fs::write(v1.cpu.as_ref().unwrap().join("cpuacct.usage"), "6250000000").unwrap();
    std::fs::write(v1.memory.join("memory.max_usage_in_bytes"), "104857600").unwrap();
    assert_eq!(
        v1.usage_since(mark),
        Usage {
            cpu_time_ms: 1250,
            peak_memory_bytes: 100 << 20,
            max_processes: None
        }
    );
    let v2 = Cgroup {
        memory: mount.clone(),
        pids: None,
        cpu: None,
        v2: true,
    };
    std::fs::write(mount.join("cpu.stat"), "usage_usec 1000\nuser_usec 800\n").unwrap();
    let mark = v2.mark();
    std::fs::write(mount.join("cpu.stat"), "usage_usec 901000\nuser_usec 800\n").unwrap();
    std::fs::write(mount.join("memory.peak"), "4096").unwrap();
    std::fs::write(mount.join("pids.peak"), "3").unwrap();
    assert_eq!(
        v2.usage_since(mark),
        Usage {
            cpu_time_ms: 900,
            peak_memory_bytes: 4096,
            max_processes: Some(3)
        }
    );
}

#[test]
fn v1_raises_memory_and_swap_in_an_order_the_kernel_accepts() {
    let (mount, _gone) = fake_v2("");
    let group = Cgroup {
        memory: mount.clone(),
        pids: Some(mount.join("pids")),
        cpu: None,
        v2: false,
    };
    std::fs::write(mount.join("memory.limit_in_bytes"), "100").unwrap();
    std::fs::write(mount.join("memory.memsw.limit_in_bytes"), "100").unwrap();
    group.set_memory_max(200).unwrap();
    let read = |f: &str| std::fs::read_to_string(mount.join(f)).unwrap();
    assert_eq!(
        (
            read("memory.limit_in_bytes"),
            read("memory.memsw.limit_in_bytes")
        ),
        ("200".into(), "200".into())
    );
    std::fs::write(
        mount.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    )
    .unwrap();
    assert_eq!(group.events().oom_kills, 1);
}
