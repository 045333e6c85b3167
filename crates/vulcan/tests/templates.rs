//! Templates' acceptance: registered OCI images as microVMs' roots. Real images (built by
//! debootstrap, umoci and skopeo, or from hand-written layers) in a real local registry,
//! real QEMU microVMs (TCG here), the same images under real runsc. Slow: its own target.

mod common;

use std::time::Duration;

use common::{metric, Server};
use serde_json::{json, Value};
use vulcan_gvisor::testing::Registry;

/// VMs under TCG need the CPUs: these tests run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

const CONVERTED: &str =
    "vulcan_backend_events_total{backend=\"microvm\",event=\"template_converted\"}";

fn server_for(registry: &Registry, env: &[(&str, &str)]) -> Server {
    let mut all = vec![("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())];
    all.extend_from_slice(env);
    Server::start(&all)
}

/// A tar entry written byte by byte (the `tar` crate refuses what a hostile layer holds).
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    data: &'a [u8],
    mode: u32,
    link: &'a str,
}

fn raw<'a>(name: &'a str, kind: tar::EntryType, data: &'a [u8], mode: u32) -> Raw<'a> {
    Raw {
        name,
        kind,
        data,
        mode,
        link: "",
    }
}

fn layer(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_size(e.data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        if e.kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(1).unwrap();
        }
        h.set_cksum();
        tar.append(&h, e.data).unwrap();
    }
    tar.into_inner().unwrap()
}

fn busybox() -> &'static [u8] {
    static BUSYBOX: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BUSYBOX.get_or_init(|| std::fs::read("/bin/busybox").expect("busybox-static"))
}

/// A layer with busybox as `/bin/busybox` and `/bin/sh`, and `/etc/passwd`.
fn busybox_layer() -> Vec<u8> {
    use tar::EntryType as T;
    let mut entries = vec![
        raw("bin/", T::Directory, b"", 0o755),
        raw("etc/", T::Directory, b"", 0o755),
        raw(
            "etc/passwd",
            T::Regular,
            b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n",
            0o644,
        ),
    ];
    entries.push(Raw {
        name: "bin/busybox",
        kind: T::Regular,
        data: busybox(),
        mode: 0o755,
        link: "",
    });
    entries.push(Raw {
        link: "busybox",
        ..raw("bin/sh", T::Symlink, b"", 0o777)
    });
    layer(&entries)
}

fn run_on(server: &Server, isolation: &str, image: &str, script: &str) -> Value {
    server.run(
        json!({"runtime": "oci", "image": image, "isolation": isolation,
        "command": ["/bin/sh", "-c", script]}),
    )
}

fn backend_lines(server: &Server, w: &Value) -> Vec<String> {
    let (_, logs) = server.get(&format!(
        "/v1/workloads/{}/logs/history",
        w["id"].as_str().unwrap()
    ));
    logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["stream"] == "backend")
        .map(|l| l["line"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_images_config_is_honoured_as_gvisor_does_and_each_vm_writes_to_its_own_overlay() {
    let _one = serial();
    let registry = Registry::start();
    let config = json!({"Env": ["GREETING=hello", "PATH=/bin"], "WorkingDir": "/app",
        "User": "app", "Cmd": ["/bin/sh", "-c", "echo from cmd"]});
    let a = registry.push_layers("configured:1", &[busybox_layer()], config);
    let b = registry.push_layers("other:1", &[busybox_layer()], json!({"Cmd": ["/bin/sh"]}));
    let server = server_for(&registry, &[]);

    let script = "echo $GREETING; id -u; id -g; pwd; echo $PATH";
    let on_vm = run_on(&server, "microvm", &a, script);
    assert_eq!(on_vm["status"], "completed", "{on_vm}");
    assert_eq!(on_vm["isolation"], "microvm");
    let on_gvisor = run_on(&server, "gvisor", &a, script);
    assert_eq!(on_gvisor["status"], "completed", "{on_gvisor}");
    assert_eq!(on_vm["output"], "hello\n1000\n1000\n/app\n/bin", "{on_vm}");
    assert_eq!(on_vm["output"], on_gvisor["output"]);
    let lines = backend_lines(&server, &on_vm);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("converting image") && l.contains(&a)),
        "{lines:?}"
    );
    // The image's own command, with the workload's env over the image's.
    let cmd = server.run(json!({"runtime": "oci", "image": a, "isolation": "microvm"}));
    assert_eq!(cmd["output"], "from cmd", "{cmd}");
    // A function of the image on a microVM: its warm instance runs the command per call.
    common::deploy_function(
        &server,
        "greet",
        json!({"runtime": "oci", "image": a, "isolation": "microvm", "reuse": true,
            "command": ["/bin/sh", "-c", "read line; echo \"$GREETING $line\""]}),
    );
    for who in ["one", "two"] {
        let (status, w) = server.post("/v1/functions/greet/invoke", &json!(who));
        assert_eq!(status, 200, "{w}");
        assert_eq!(w["output"], format!("hello \"{who}\""), "{w}");
        assert_eq!(w["isolation"], "microvm", "{w}");
    }
    assert_eq!(metric(&server, CONVERTED), 1.0);

    // A VM writes anywhere in its root (as root: `b` names no user), and the next VM of
    // the image does not see it.
    let wrote = run_on(
        &server,
        "microvm",
        &b,
        "id -u; pwd; echo mark > /etc/left-behind && cat /etc/left-behind",
    );
    assert_eq!(
        wrote["output"], "0\n/\nmark",
        "root and / without User and WorkingDir: {wrote}"
    );
    let other = run_on(
        &server,
        "microvm",
        &a,
        "cat /etc/left-behind 2>/dev/null || echo not-here",
    );
    assert_eq!(other["output"], "not-here", "{other}");
    let again = run_on(
        &server,
        "microvm",
        &b,
        "cat /etc/left-behind 2>/dev/null || echo gone",
    );
    assert_eq!(again["output"], "gone", "{again}");
    let lines = backend_lines(&server, &again);
    assert!(
        lines.iter().any(|l| l.contains("restored from snapshot")),
        "a later run restores the template's snapshot: {lines:?}"
    );
    assert_eq!(
        metric(&server, CONVERTED),
        2.0,
        "two images in turn, then the first again: nothing converted twice"
    );

    // What this node keeps of each image, in the image list.
    let (_, images) = server.get("/v1/images");
    let record = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == a.as_str())
        .unwrap_or_else(|| panic!("{a} in {images}"))
        .clone();
    let kept = &record["microvm"][0];
    let node = kept["node"].as_str().unwrap_or_else(|| panic!("{record}"));
    assert!(kept["root_bytes"].as_u64().unwrap() > 0, "{record}");
    assert!(kept["snapshots"].as_u64().unwrap() >= 1, "{record}");
    assert!(kept["snapshot_bytes"].as_u64().unwrap() > 0, "{record}");
    // And in the CLI's list.
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_vulcan"))
        .args(["images", "ls"])
        .env("VULCAN_URL", &server.base)
        .env_remove("VULCAN_API_KEY")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let row = listed
        .lines()
        .find(|l| l.starts_with(a.as_str()))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains(&format!("{node}: root ")), "{listed}");
    assert!(
        listed.lines().next().unwrap().contains("MICROVM"),
        "{listed}"
    );
}

#[test]
fn hostile_images_are_refused_or_neutralised_and_the_server_stays_healthy() {
    use tar::EntryType as T;
    let _one = serial();
    let registry = Registry::start();
    let marker = format!("vulcan-host-secret-{}", std::process::id());
    let secret = std::env::temp_dir().join(&marker);
    std::fs::write(&secret, "HOST SECRET").unwrap();
    let link_to = format!("/tmp/{marker}");
    let suid = Raw {
        name: "bin/busybox-suid",
        kind: T::Regular,
        data: busybox(),
        mode: 0o4755,
        link: "",
    };
    let planted = layer(&[
        Raw {
            link: "/",
            ..raw("hostroot", T::Symlink, b"", 0o777)
        },
        Raw {
            link: &link_to,
            ..raw("secret", T::Symlink, b"", 0o777)
        },
        raw("evilmem", T::Char, b"", 0o666),
        suid,
    ]);
    let contained = registry.push_layers(
        "contained:1",
        &[busybox_layer(), planted],
        json!({"User": "1000"}),
    );
    // A budget the bomb and the sparse file are over.
    let server = server_for(&registry, &[("VULCAN_IMAGE_MAX_MB", "64")]);
    let w = run_on(
        &server,
        "microvm",
        &contained,
        "cat /secret 2>&1; ls /hostroot/tmp; test -e /evilmem && echo device || echo no-device; /bin/busybox-suid id -u",
    );
    assert_eq!(w["status"], "completed", "{w}");
    let output = w["output"].as_str().unwrap();
    assert!(!output.contains("HOST SECRET"), "{output}");
    assert!(!output.contains(&marker), "the host's /tmp: {output}");
    assert!(
        output.contains("no-device"),
        "device nodes are skipped: {output}"
    );
    assert!(
        output.trim_end().ends_with("1000"),
        "a setuid binary gives no privilege: {output}"
    );
    std::fs::remove_file(&secret).unwrap();

    // Refused at the pull, with a clear error; nothing lands outside the image's root.
    let escape = format!("../../escape-{}", std::process::id());
    let dotdot = registry.push_layers(
        "dotdot:1",
        &[layer(&[raw(&escape, T::Regular, b"out", 0o644)])],
        json!({"Cmd": ["/bin/sh"]}),
    );
    let mut sparse_header = tar::Header::new_gnu();
    {
        let gnu = sparse_header.as_gnu_mut().unwrap();
        gnu.name[..3].copy_from_slice(b"big");
        let octal = |field: &mut [u8], n: u64| {
            let text = format!("{n:0width$o}", width = field.len() - 1);
            field[..text.len()].copy_from_slice(text.as_bytes());
        };
        let ten_gb: u64 = 10 << 30;
        octal(&mut gnu.sparse[0].offset, ten_gb - 512);
        octal(&mut gnu.sparse[0].numbytes, 512);
        octal(&mut gnu.realsize, ten_gb);
    }
    sparse_header.set_entry_type(T::GNUSparse);
    sparse_header.set_mode(0o644);
    sparse_header.set_size(512);
    sparse_header.set_cksum();
    let mut sparse = tar::Builder::new(Vec::new());
    sparse.append(&sparse_header, &[7u8; 512][..]).unwrap();
    let sparse = registry.push_layers(
        "sparse:1",
        &[sparse.into_inner().unwrap()],
        json!({"Cmd": ["/bin/sh"]}),
    );
    let zeros = vec![0u8; 200 << 20];
    let mut bomb = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("bomb").unwrap();
    h.set_size(zeros.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    bomb.append(&h, &zeros[..]).unwrap();
    let bomb = registry.push_layers(
        "bomb:1",
        &[bomb.into_inner().unwrap()],
        json!({"Cmd": ["/bin/sh"]}),
    );
    for (image, says) in [
        (&dotdot, "escapes the image root"),
        (&sparse, "unpacks to more than"),
        (&bomb, "unpacks to more than"),
    ] {
        let w = run_on(&server, "microvm", image, "true");
        assert_eq!(w["status"], "failed", "{image}: {w}");
        let error = w["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{image}: {error}");
    }
    let escaped = server
        .data_dir
        .parent()
        .unwrap()
        .join(escape.trim_start_matches("../../"));
    assert!(!escaped.exists());
    let images_dir = server.data_dir.join("images");
    assert!(!images_dir.join(escape.trim_start_matches("../")).exists());

    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200);
    let fine = run_on(&server, "microvm", &contained, "echo still-fine");
    assert_eq!(fine["output"], "still-fine", "{fine}");
}

#[test]
fn past_the_disk_budget_the_least_recently_used_template_goes() {
    let _one = serial();
    let registry = Registry::start();
    // Two images (two manifests: their configurations differ).
    let a = registry.push_layers("first:1", &[busybox_layer()], json!({"Env": ["N=1"]}));
    let b = registry.push_layers("second:1", &[busybox_layer()], json!({"Env": ["N=2"]}));
    // Room for one root, not for its snapshot too: only the template in use stays.
    let server = server_for(&registry, &[("VULCAN_TEMPLATE_DISK_MB", "16")]);
    for image in [&a, &b, &a] {
        let w = run_on(&server, "microvm", image, "echo ok");
        assert_eq!(w["output"], "ok", "{w}");
    }
    assert_eq!(
        metric(&server, CONVERTED),
        3.0,
        "the first image's template went to make room for the second's"
    );
    let kept: Vec<_> = std::fs::read_dir(server.data_dir.join("microvm/templates"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (_, images) = server.get("/v1/images");
    let with_template: Vec<_> = images
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["microvm"].as_array().is_some_and(|m| !m.is_empty()))
        .map(|i| i["reference"].clone())
        .collect();
    assert_eq!(with_template, [json!(a)], "{images}");

    // An image removed takes its template with it (at the next sweep).
    let (status, body) = server.delete(&format!("/v1/images/{a}"));
    assert_eq!(status, 204, "{body}");
    common::eventually(
        Duration::from_secs(30),
        "the removed image's template gone",
        || {
            std::fs::read_dir(server.data_dir.join("microvm/templates"))
                .unwrap()
                .next()
                .is_none()
                .then_some(())
        },
    );
    let snapshots: Vec<_> = std::fs::read_dir(server.data_dir.join("microvm/snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("oci-"))
        .collect();
    assert!(snapshots.is_empty(), "its snapshots too: {snapshots:?}");
}

#[test]
fn numpy_from_a_debian_image_runs_on_a_microvm_and_on_gvisor_alike() {
    let _one = serial();
    let registry = Registry::start();
    let image = registry.push("numpy:1", "numpy");
    let server = server_for(&registry, &[]);
    let (status, body) = server.post("/v1/images", &json!({"reference": image}));
    assert_eq!(status, 201, "{body}");
    let sum = "import numpy; print(numpy.arange(6).sum())";

    let python = |mem_mb: u32| {
        server.run(json!({"runtime": "python", "image": image, "code": sum,
            "resources": {"mem_mb": mem_mb, "timeout_s": 120}}))
    };
    let first = python(256);
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(first["isolation"], "microvm", "{first}");
    assert_eq!(first["output"], "15", "{first}");
    let later = python(256);
    assert_eq!(later["output"], "15", "{later}");
    assert!(
        backend_lines(&server, &later)
            .iter()
            .any(|l| l.contains("restored from snapshot")),
        "{later}"
    );
    let oci = |isolation: &str| {
        server.run(
            json!({"runtime": "oci", "image": image, "isolation": isolation,
            "command": ["python3", "-c", sum], "resources": {"mem_mb": 256, "timeout_s": 120}}),
        )
    };
    let on_vm = oci("microvm");
    assert_eq!(on_vm["output"], "15", "{on_vm}");
    let on_gvisor = oci("gvisor");
    assert_eq!(on_gvisor["status"], "completed", "{on_gvisor}");
    assert_eq!(on_gvisor["output"], "15", "{on_gvisor}");
    assert_eq!(metric(&server, CONVERTED), 1.0, "one image, converted once");

    // A function whose handler runs in the image's python, kept warm.
    common::deploy_function(
        &server,
        "numpy-sum",
        json!({"runtime": "python", "image": image, "reuse": true, "max_instances": 1,
            "code": "import numpy\ncalls = 0\ndef handler(input):\n    global calls\n    calls += 1\n    return {'sum': int(numpy.arange(input['n']).sum()), 'calls': calls}\n",
            "resources": {"mem_mb": 256, "timeout_s": 120}}),
    );
    for (n, calls) in [(6, 1), (4, 2)] {
        let (status, w) = server.post("/v1/functions/numpy-sum/invoke", &json!({"n": n}));
        assert_eq!(status, 200, "{w}");
        let answer: Value = serde_json::from_str(w["output"].as_str().unwrap_or("null")).unwrap();
        assert_eq!(
            answer,
            json!({"sum": n * (n - 1) / 2, "calls": calls}),
            "{w}"
        );
    }

    // The built-in root has no numpy: the image is what brings it.
    let builtin = server.run(json!({"runtime": "python", "code": sum, "isolation": "microvm"}));
    assert_eq!(builtin["status"], "failed", "{builtin}");
    assert!(
        builtin["error"]
            .as_str()
            .unwrap_or_default()
            .contains("numpy"),
        "{builtin}"
    );
}
