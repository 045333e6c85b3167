//! microvm: cold and warm-pool latency of a python workload, the boot time to the agent's
//! Ready frame next to a bare QEMU boot of the same kernel and initramfs to a trivial init;
//! python and node `6*7` one-shots through the boot path and the restore path (snapshots),
//! restore-to-running next to a bare QEMU `-incoming` of the same snapshot file, each
//! interpreter's own start in the guest (exec to the code's first line: what no restore
//! shortens), and the pool of restored VMs back to back.

use std::time::{Duration, Instant};

use crate::common::Server;
use crate::{measure, percentile, Figures};

/// A time Vulcan logged in a microvm workload's `backend` lines: the number after
/// `marker` ("booted to its agent in N ms", ": restored in N ms").
fn logged_ms(server: &Server, id: &str, marker: &str) -> f64 {
    let (_, logs) = server.get(&format!("/v1/workloads/{id}/logs/history?stream=backend"));
    logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|l| {
            let line = l["line"].as_str()?;
            let rest = line.split(marker).nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no line with {marker:?}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A bare QEMU started with `-incoming` from a snapshot's state (the same machine as
/// Vulcan's restore: `spec`; with its RAM mapped from the snapshot's memory file, the
/// state loaded over QMP as Vulcan does), timed until QMP says it runs.
fn bare_incoming_ms(spec: &vulcan_microvm::vmm::VmSpec) -> f64 {
    use std::io::{BufRead, Write};
    use vulcan_microvm::vmm::Vmm;
    let vmm = vulcan_microvm::vmm::QemuMicrovm {
        bin: "qemu-system-x86_64".into(),
    };
    let t = Instant::now();
    let mut child = vmm.command(spec).as_std_mut().spawn().unwrap();
    let qmp = spec.qmp.clone().unwrap();
    let stream = loop {
        match std::os::unix::net::UnixStream::connect(&qmp) {
            Ok(s) => break s,
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut ask = |command: &str| -> String {
        if command.starts_with('{') {
            writeln!(writer, "{command}").unwrap();
        } else {
            writeln!(writer, "{{\"execute\":\"{command}\"}}").unwrap();
        }
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.contains("\"return\"") || line.contains("\"error\"") {
                return line;
            }
        }
    };
    ask("qmp_capabilities");
    if let (Some(state), Some(_)) = (&spec.incoming, &spec.memory) {
        ask(
            r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-ignore-shared","state":true}]}}"#,
        );
        let load = serde_json::json!({"execute": "migrate-incoming", "arguments": {"uri": format!("exec:cat {}", vulcan_microvm::vmm::shell_word(state))}});
        ask(&load.to_string());
    }
    // `{"return": {"status": "inmigrate", "running": false}}` while the state loads: the
    // status is what says it runs, not the key.
    let running = |answer: String| {
        serde_json::from_str::<serde_json::Value>(&answer)
            .is_ok_and(|v| v["return"]["status"] == "running")
    };
    while !running(ask("query-status")) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = t.elapsed().as_secs_f64() * 1000.0;
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

/// A microvm one-shot workload's end-to-end latency through `server`, one client back to
/// back, after one unmeasured run (which makes the snapshot where snapshots are on).
fn microvm_one_shot(server: &Server, name: &str, n: usize, body: &serde_json::Value) -> Figures {
    let first = server.run(body.clone());
    assert_eq!(first["output"], "42", "{first}");
    measure(name, n, 1, || {
        let w = server.run(body.clone());
        assert_eq!(w["output"], "42", "{w}");
    })
}

pub fn run(n: usize) {
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/guest");
    let python = serde_json::json!({"runtime": "python", "code": "print(1 + 2)"});
    let cold_server = Server::start(&[
        ("VULCAN_MICROVM_POOL", "0"),
        ("VULCAN_MICROVM_SNAPSHOTS", "off"),
    ]);
    let (_, backends) = cold_server.get("/v1/backends");
    let accel = backends
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "microvm")
        .unwrap()["details"]["accelerator"]
        .as_str()
        .unwrap_or("unavailable")
        .to_owned();
    let boots = std::sync::Mutex::new(Vec::new());
    let cold = measure(
        &format!("microvm cold boot ({accel}): POST python"),
        n,
        1,
        || {
            let w = cold_server.run(python.clone());
            assert_eq!(w["output"], "3", "{w}");
            boots.lock().unwrap().push(logged_ms(
                &cold_server,
                w["id"].as_str().unwrap(),
                "booted to its agent in ",
            ));
        },
    );
    // Boot path vs restore path: `print(6*7)` and `console.log(6*7)`, pool off.
    let six_by_seven = [
        (
            "python",
            serde_json::json!({"runtime": "python", "code": "print(6*7)"}),
        ),
        (
            "node",
            serde_json::json!({"runtime": "node", "isolation": "microvm", "code": "console.log(6*7)"}),
        ),
    ];
    let booted: Vec<Figures> = six_by_seven
        .iter()
        .map(|(rt, body)| {
            microvm_one_shot(
                &cold_server,
                &format!("microvm {rt} 6*7, boot path ({accel})"),
                n,
                body,
            )
        })
        .collect();
    drop(cold_server);
    let restore_server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let restored: Vec<Figures> = six_by_seven
        .iter()
        .map(|(rt, body)| {
            microvm_one_shot(
                &restore_server,
                &format!("microvm {rt} 6*7, restore path ({accel})"),
                n,
                body,
            )
        })
        .collect();
    let restores: Vec<f64> = (0..n)
        .map(|_| {
            let w = restore_server.run(six_by_seven[0].1.clone());
            logged_ms(&restore_server, w["id"].as_str().unwrap(), ": restored in ")
        })
        .collect();
    // What the restore path cannot shorten: each interpreter's own start on this
    // accelerator, timed inside the guest from the program's start (its process's start
    // time in `/proc/self/stat`, against the boot clock; 10 ms ticks) to the first line of
    // the workload's code.
    let first_line: Vec<(&str, f64)> = [
        (
            "python",
            serde_json::json!({"runtime": "python", "code": "import os, time\nst = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])\nprint(round((time.clock_gettime(time.CLOCK_BOOTTIME) - st / os.sysconf('SC_CLK_TCK')) * 1000))"}),
        ),
        (
            "node",
            serde_json::json!({"runtime": "node", "isolation": "microvm", "code": "const fs = require('fs');\nconst st = Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ').pop().split(' ')[19]);\nconst up = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);\nconsole.log(Math.round((up - st / 100) * 1000));"}),
        ),
    ]
    .into_iter()
    .map(|(rt, body)| {
        let ms = (0..n)
            .map(|_| {
                let w = restore_server.run(body.clone());
                w["output"].as_str().and_then(|o| o.parse().ok()).unwrap_or_else(|| panic!("{w}"))
            })
            .collect();
        (rt, median(ms))
    })
    .collect();
    // The same snapshot file, restored by a bare QEMU with the same machine.
    let snapshots = restore_server.data_dir.join("microvm/snapshots");
    let python_snapshot = std::fs::read_dir(&snapshots)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("python-")
        })
        .unwrap();
    let bare_dir = tempfile::tempdir().unwrap();
    let accel_kind = if accel == "kvm" {
        vulcan_microvm::vmm::Accel::Kvm
    } else {
        vulcan_microvm::vmm::Accel::Tcg
    };
    let spec = vulcan_microvm::vmm::VmSpec {
        kernel: assets.join("vmlinuz"),
        initramfs: assets.join("initramfs.cpio"),
        rootfs: Some(assets.join("rootfs.ext4")),
        mem_mb: 192,
        cpus: 1,
        accel: accel_kind,
        channel: bare_dir.path().join("channel.sock"),
        console: bare_dir.path().join("console.log"),
        pidfile: bare_dir.path().join("qemu.pid"),
        cmdline_extra: format!(
            "{} vulcan.prewarm=python",
            vulcan_microvm::vmm::accel_cmdline(accel_kind)
        )
        .trim()
        .to_owned(),
        qmp: Some(bare_dir.path().join("qmp.sock")),
        incoming: Some(python_snapshot.join("state")),
        // A snapshot of an earlier build (VULCAN_TEST_BIN) carries its RAM in the state.
        memory: Some(python_snapshot.join("memory"))
            .filter(|m| m.exists())
            .map(|file| vulcan_microvm::vmm::GuestMemory {
                file,
                shared: false,
            }),
        nic: None,
        data_disk: None,
        volumes: Vec::new(),
    };
    let bare_restores: Vec<f64> = (0..n).map(|_| bare_incoming_ms(&spec)).collect();
    drop(restore_server);
    for (boot, restore) in booted.into_iter().zip(restored) {
        let (name, ratio_of) = (restore.name.clone(), boot.name.clone());
        let mut b = boot.samples.clone();
        let mut r = restore.samples.clone();
        b.sort();
        r.sort();
        let ratio = percentile(&r, 0.5) / percentile(&b, 0.5);
        boot.print_latency();
        restore.print_latency();
        println!(
            "{:<46} {ratio:.2}x of {ratio_of}",
            format!("{name}: p50 ratio")
        );
    }
    println!(
        "{:<46} p50={:>8.1} ms",
        format!("microvm restore to running, Vulcan ({accel})"),
        median(restores)
    );
    println!(
        "{:<46} p50={:>8.1} ms",
        format!("bare QEMU -incoming to running ({accel})"),
        median(bare_restores)
    );
    for (rt, ms) in first_line {
        println!(
            "{:<46} p50={ms:>8.1} ms",
            format!("{rt}: exec to the code's first line ({accel})")
        );
    }

    // The pool (now of restored VMs), back to back: each run takes the idle VM, and the
    // refill restores the next while the run goes — against a restore per run (pool off).
    let pooled = Server::start(&[("VULCAN_MICROVM_POOL", "python=1,node=0,go=0")]);
    let pooled_figures = microvm_one_shot(
        &pooled,
        &format!("microvm python 6*7, pool of 1 back to back ({accel})"),
        n,
        &six_by_seven[0].1,
    );
    pooled_figures.print_latency();
    drop(pooled);

    // Warm: each run takes a VM the pool booted ahead; the pause (not measured) lets it refill.
    let warm_server = Server::start(&[
        ("VULCAN_MICROVM_POOL", "python=1,node=0,go=0"),
        ("VULCAN_MICROVM_SNAPSHOTS", "off"),
    ]);
    let idle = || {
        let (_, b) = warm_server.get("/v1/backends");
        b.as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == "microvm")
            .unwrap()["details"]["warm_pool"]["python"]["idle"]
            .as_u64()
            .unwrap_or(0)
    };
    let mut warm = Vec::new();
    for _ in 0..n {
        while idle() == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let t = Instant::now();
        let w = warm_server.run(python.clone());
        warm.push(t.elapsed());
        assert_eq!(w["output"], "3", "{w}");
    }
    drop(warm_server);

    // Bare: QEMU with the same kernel and initramfs, booted to a trivial init that prints
    // a marker on the serial console and powers off.
    let bare: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let mut child = std::process::Command::new("qemu-system-x86_64")
                .args([
                    "-M",
                    "microvm,isa-serial=on,rtc=off",
                    "-accel",
                    &accel,
                    "-m",
                    "192",
                    "-smp",
                    "1",
                ])
                .args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"])
                .arg("-kernel")
                .arg(assets.join("vmlinuz"))
                .arg("-initrd")
                .arg(assets.join("initramfs.cpio"))
                .arg("-append")
                .arg(format!(
                    "{} {} rdinit=/bin/trivial-init",
                    vulcan_microvm::vmm::KERNEL_CMDLINE,
                    vulcan_microvm::vmm::accel_cmdline(if accel == "kvm" {
                        vulcan_microvm::vmm::Accel::Kvm
                    } else {
                        vulcan_microvm::vmm::Accel::Tcg
                    })
                ))
                .args(["-serial", "stdio"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            loop {
                line.clear();
                if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
                    panic!("the trivial init never printed its marker");
                }
                if line.contains("VULCAN-TRIVIAL-INIT") {
                    break;
                }
            }
            let elapsed = t.elapsed().as_secs_f64() * 1000.0;
            let _ = child.kill();
            let _ = child.wait();
            elapsed
        })
        .collect();
    let boot = median(boots.into_inner().unwrap());
    let bare_p50 = median(bare);
    cold.print();
    Figures {
        name: format!("microvm warm booted VM, idle gaps ({accel}): POST python"),
        samples: warm,
        wall: Duration::from_secs(1),
        cpu: None,
    }
    .print_latency();
    println!(
        "{:<46} p50={boot:>8.1} ms",
        format!("microvm boot to agent ready ({accel})")
    );
    println!(
        "{:<46} p50={bare_p50:>8.1} ms",
        format!("bare QEMU boot to a trivial init ({accel})")
    );
    println!(
        "{:<46} {:+.1}% at p50",
        "microvm boot overhead over the bare boot",
        (boot / bare_p50 - 1.0) * 100.0
    );

    // A python function: its VM boots once; invocations call the loaded handler.
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let r = ureq::put(&server.url("/v1/functions/sum")).send_json(serde_json::json!({
        "runtime": "python", "isolation": "microvm",
        "code": "def handler(i):\n    return i['a'] + i['b']\n"}));
    assert!(r.is_ok_and(|r| r.status() < 300));
    let invoke = || {
        let (status, w) = server.post(
            "/v1/functions/sum/invoke",
            &serde_json::json!({"a": 1, "b": 2}),
        );
        assert_eq!((status, w["output"].as_str()), (200, Some("3")), "{w}");
    };
    invoke();
    measure(
        &format!("microvm python function, warm VM ({accel})"),
        (n * 5).max(50),
        1,
        invoke,
    )
    .print();
}
