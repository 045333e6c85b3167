//! templates: an OCI image as a microVM's root. A ~230 MB Debian image with python3-numpy
//! (scripts/oci-image.sh numpy) in a local registry; one client, pool off. The first run of
//! the image on a fresh node (convert + boot + snapshot + run; the pull is done before, by
//! registering it), then `import numpy` runs back to back through the template's restore,
//! next to a built-in python one-shot through its restore in the same run.

use serde_json::json;

use crate::common::Server;
use crate::{measure, percentile, Figures};

const NUMPY: &str = "import numpy; print(numpy.arange(6).sum())";

fn registered(registry: &vulcan_gvisor::testing::Registry, image: &str) -> Server {
    let server = Server::start(&[
        ("VULCAN_INSECURE_REGISTRIES", registry.host.as_str()),
        ("VULCAN_MICROVM_POOL", "0"),
    ]);
    let (status, body) = server.post("/v1/images", &json!({"reference": image}));
    assert_eq!(status, 201, "{body}");
    server
}

pub fn run(n: usize, first_runs: usize) {
    let registry = vulcan_gvisor::testing::Registry::start();
    let image = registry.push("numpy:1", "numpy");
    let numpy = json!({"runtime": "python", "image": image, "code": NUMPY});
    // Each first run on a node of its own: nothing converted or snapshotted yet. Only the
    // run is timed, not the server's start (or the pull: registering the image did it).
    let started = std::time::Instant::now();
    let samples = (0..first_runs)
        .map(|_| {
            let server = registered(&registry, &image);
            let t = std::time::Instant::now();
            let w = server.run(numpy.clone());
            let took = t.elapsed();
            assert_eq!(w["output"], "15", "{w}");
            took
        })
        .collect();
    let first = Figures {
        name: "template first run (convert+boot+snapshot)".into(),
        samples,
        wall: started.elapsed(),
        cpu: None,
    };
    let server = registered(&registry, &image);
    let w = server.run(numpy.clone());
    assert_eq!(w["output"], "15", "{w}");
    let builtin = json!({"runtime": "python", "code": "print(15)"});
    let w = server.run(builtin.clone());
    assert_eq!(w["output"], "15", "{w}");
    let later = measure("template import numpy, restore path", n, 1, || {
        let w = server.run(numpy.clone());
        assert_eq!(w["output"], "15", "{w}");
    });
    let plain = measure("built-in python one-shot, restore path", n, 1, || {
        let w = server.run(builtin.clone());
        assert_eq!(w["output"], "15", "{w}");
    });
    let p50 = |f: &Figures| {
        let mut s = f.samples.clone();
        s.sort();
        percentile(&s, 0.5)
    };
    let ratio = p50(&later) / p50(&plain);
    first.print_latency();
    later.print_latency();
    plain.print_latency();
    println!(
        "{:<46} {ratio:.2}x (target <= 1.3x; import numpy p50 target <= 1000 ms)",
        "template numpy / built-in python p50"
    );
}
