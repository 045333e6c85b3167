//! gvisor: `echo hi` through the API next to a bare `runsc run` of the same bundle (same
//! image root, same spec), throughput with both cores busy, and the same image as a
//! function served from a warm sandbox.

use crate::common::Server;
use crate::{measure, percentile, print_overhead};
use vulcan_gvisor::testing::Registry;

pub fn run(n: usize) {
    let registry = Registry::start();
    let image = registry.push("busybox:bench", "busybox");
    let server = Server::start(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]);
    let body = serde_json::json!({"runtime": "oci", "image": image, "command": ["echo", "hi"]});
    let echo = || {
        let w = server.run(body.clone());
        assert_eq!(w["output"], "hi", "{w}");
    };
    for _ in 0..3 {
        echo();
    }
    let vulcan = measure("gvisor: POST /v1/workloads (echo hi)", n, 1, echo);

    // The same run without Vulcan: the image root Vulcan unpacked, the spec Vulcan writes.
    let record = &server.get(&format!("/v1/images/{image}")).1;
    let hex = record["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let rootfs = server.data_dir.join("images/rootfs").join(hex);
    let config: vulcan_domain::ImageConfig =
        serde_json::from_value(record["config"].clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let command = ["echo".to_owned(), "hi".to_owned()];
    let env = Default::default();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let bare = measure("bare `runsc run` of the same bundle", n, 1, || {
        let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("bench-{}-{i}", std::process::id());
        let spec = vulcan_gvisor::bundle::config(
            &vulcan_gvisor::bundle::RunSpec {
                rootfs: &rootfs,
                image: &config,
                command: Some(&command),
                env: &env,
                resources: vulcan_domain::Resources::default(),
                pids_limit: 512,
                cgroup: &format!("/vulcan-bench/{id}"),
                work: None,
                hold: None,
                network: None,
                pod: None,
            },
            0,
            0,
        )
        .unwrap();
        let bundle = dir.path().join(&id);
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let out = std::process::Command::new("runsc")
            .arg("--root")
            .arg(dir.path().join("state"))
            .args(["--platform=ptrace", "--network=none", "run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    });
    let mut bare_sorted = bare.samples.clone();
    bare_sorted.sort();
    print_overhead("gvisor overhead over bare runsc run", vulcan, bare);
    measure("gvisor: 4 clients back to back", n.div_ceil(2), 4, echo).print();

    // The same image and command deployed as a function: invocations are executed into a
    // warm sandbox.
    let r = ureq::put(&server.url("/v1/functions/echo")).send_json(body.clone());
    assert!(r.is_ok_and(|r| r.status() < 300));
    let invoke = || {
        let (status, w) = server.post("/v1/functions/echo/invoke", &serde_json::Value::Null);
        assert_eq!((status, w["output"].as_str()), (200, Some("hi")), "{w}");
    };
    invoke();
    let warm = measure(
        "gvisor function, warm sandbox: 1 client back to back",
        n,
        1,
        invoke,
    );
    let mut warm_sorted = warm.samples.clone();
    warm_sorted.sort();
    warm.print();
    println!(
        "{:<46} {:.2}x at p50",
        "warm function / bare runsc run",
        percentile(&warm_sorted, 0.5) / percentile(&bare_sorted, 0.5)
    );
    measure(
        "gvisor function: 4 clients back to back",
        n.div_ceil(2),
        4,
        invoke,
    )
    .print();
}
