//! The web dashboard in a real browser: Debian's chromium, headless, driven over WebDriver
//! (`chromedriver`, through `fantoccini`), against the real binary with auth on, a real
//! SQLite file and real Deno isolates. Screenshots of every page go to
//! `target/tmp/dashboard-screenshots/`.

mod common;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use vulcan_store::testing::PgServer;

/// One browser at a time: two chromiums on two cores make every wait slower.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(30);

struct Browser {
    driver: Child,
    client: Option<Client>,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(base: &str) -> Browser {
        let port = free_port();
        let profile = tempfile::tempdir().expect("a browser profile directory");
        // A process group of its own, so that the browser it starts goes with it; the
        // browser's scratch directories in the profile's, removed with it.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .env("TMPDIR", profile.path())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/setup.sh installs it)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < WAIT,
                "chromedriver did not listen within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,1000", "--no-first-run", "--disable-sync",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-default-apps", "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a chromium session");
        Browser {
            driver,
            client: Some(client),
            base: base.to_owned(),
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    async fn open(&self, path: &str) {
        self.client()
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    async fn find(&self, css: &str) -> Element {
        self.client()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} within {WAIT:?}: {e}"))
    }

    async fn count(&self, css: &str) -> usize {
        self.client()
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |found| found.len())
    }

    /// The text of `css` once `ready` holds for it (waiting up to 30 s).
    async fn text_when(&self, css: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < WAIT {
            if let Ok(found) = self.client().find(Locator::Css(css)).await {
                if let Ok(text) = found.text().await {
                    if ready(&text) {
                        return text;
                    }
                    last = text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never showed {what} within {WAIT:?}; last text: {last:?}");
    }

    async fn heading(&self, title: &str) {
        self.text_when("main h1", title, |t| t == title).await;
    }

    async fn path(&self) -> String {
        self.client()
            .current_url()
            .await
            .expect("the current URL")
            .path()
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear a field");
        field.send_keys(text).await.expect("type into a field");
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    async fn click_link(&self, text: &str) {
        self.client()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("no link {text:?}: {e}"))
            .click()
            .await
            .expect("click a link");
    }

    async fn sign_in(&self, key: &str) {
        self.open("/sign-in").await;
        self.type_into("#api-key", key).await;
        self.click("form button[type=submit]").await;
    }

    async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let png = self.client().screenshot().await.expect("a screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write a screenshot");
        println!("screenshot: {}", path.display());
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and every chromium process it started: killing chromedriver alone
        // left the browser running when its session had not ended.
        if let Ok(group) = libc::pid_t::try_from(self.driver.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // involved.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn secured() -> (Server, String) {
    let server = Server::start(&[("VULCAN_AUTH", "on")]);
    let key = std::fs::read_to_string(server.data_dir.join("admin.key"))
        .expect("the first admin key")
        .trim()
        .to_owned();
    (server, key)
}

fn call(server: &Server, method: &str, path: &str, key: &str, body: Option<Value>) -> Value {
    let req = ureq::request(method, &server.url(path)).set("X-API-Key", key);
    let (status, body) = common::answer_of(match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    });
    assert!(status < 300, "{method} {path}: {status} {body}");
    body
}

/// Submits `body` without waiting; its id.
fn submit(server: &Server, key: &str, body: Value) -> String {
    call(server, "POST", "/v1/workloads/async", key, Some(body))["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

fn new_key(server: &Server, admin: &str, role: &str, tenant: &str) -> String {
    let created = call(
        server,
        "POST",
        "/v1/keys",
        admin,
        Some(json!({"name": format!("{role}-{tenant}"), "role": role, "tenant": tenant})),
    );
    created["key"].as_str().expect("the new key").to_owned()
}

fn status_of(server: &Server, key: &str, id: &str) -> String {
    call(server, "GET", &format!("/v1/workloads/{id}"), key, None)["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

const SLEEPER: &str = "await new Promise((r) => setTimeout(r, 60000));";

#[tokio::test]
async fn an_admin_signs_in_runs_code_follows_its_log_kills_and_filters() {
    let _one = ONE_BROWSER.lock().await;
    let (server, admin) = secured();
    let browser = Browser::start(&server.base).await;

    // Signed out, any page leads to the sign-in form; a wrong key is refused there.
    browser.open("/workloads").await;
    browser.heading("Sign in").await;
    assert_eq!(browser.path().await, "/sign-in");
    browser.screenshot("sign-in").await;
    browser.type_into("#api-key", "vk_0000_wrong").await;
    browser.click("form button[type=submit]").await;
    let refused = browser
        .text_when("#sign-in-error", "a refusal", |t| !t.is_empty())
        .await;
    assert!(refused.contains("refused"), "{refused}");
    assert_eq!(browser.path().await, "/sign-in");

    // The right key opens the page asked for first.
    browser.type_into("#api-key", &admin).await;
    browser.click("form button[type=submit]").await;
    browser.heading("Workloads").await;
    let timing = browser
        .client()
        .execute(
            "const n = performance.getEntriesByType('navigation')[0]; return [n.responseEnd, n.domContentLoadedEventEnd, n.loadEventEnd];",
            vec![],
        )
        .await
        .expect("navigation timing");
    println!("first page (ms from navigation start: response end, DOM ready, load): {timing}");

    // New workload: bad JSON input is caught before sending; then it runs.
    browser.click_link("New workload").await;
    browser.heading("New workload").await;
    browser
        .type_into("#code", "export default (i) => ({ sum: i.a + i.b })")
        .await;
    browser.type_into("#input", "{nope").await;
    browser.click("#run").await;
    let invalid = browser
        .text_when("#input-error", "a JSON error", |t| !t.is_empty())
        .await;
    assert!(invalid.contains("not valid JSON"), "{invalid}");
    assert_eq!(browser.path().await, "/workloads/new");
    browser.type_into("#input", r#"{"a": 2, "b": 3}"#).await;
    browser.screenshot("new-workload").await;
    browser.click("#run").await;
    let status = browser
        .text_when("#status", "completed", |t| {
            ["completed", "failed", "killed"].contains(&t)
        })
        .await;
    assert_eq!(status, "completed");
    let output = browser
        .text_when("#output-text", "the output", |t| t.contains("sum"))
        .await;
    assert!(output.contains("\"sum\": 5"), "{output}");
    let path = browser.path().await;
    let ran = path.strip_prefix("/workloads/").expect("the detail page");
    assert_eq!(status_of(&server, &admin, ran), "completed");
    browser.screenshot("workload-detail").await;

    // A 3-second workload's lines show up while it still runs.
    let ticking = submit(
        &server,
        &admin,
        json!({"runtime": "node", "code":
            "for (let i = 0; i < 6; i++) { console.log(`tick ${i}`); await new Promise((r) => setTimeout(r, 500)); }"}),
    );
    browser.open(&format!("/workloads/{ticking}")).await;
    browser
        .text_when("#log-lines", "a first tick", |t| t.contains("tick 1"))
        .await;
    assert_eq!(
        status_of(&server, &admin, &ticking),
        "running",
        "the line arrived before the workload ended"
    );
    assert_eq!(
        browser.find("#status").await.text().await.unwrap(),
        "running"
    );
    let all = browser
        .text_when("#log-lines", "every tick", |t| t.contains("tick 5"))
        .await;
    for i in 0..6 {
        assert_eq!(all.matches(&format!("tick {i}")).count(), 1, "{all}");
    }
    browser
        .text_when("#status", "completed", |t| t == "completed")
        .await;

    // Kill from the page.
    let sleeper = submit(&server, &admin, json!({"runtime": "node", "code": SLEEPER}));
    browser.open(&format!("/workloads/{sleeper}")).await;
    browser
        .text_when("#status", "running", |t| t == "running")
        .await;
    browser.screenshot("workload-running").await;
    browser.click("#kill").await;
    browser
        .text_when("#status", "killed", |t| t == "killed")
        .await;
    assert_eq!(status_of(&server, &admin, &sleeper), "killed");
    assert_eq!(browser.count("#kill").await, 0, "no Kill once it ended");

    // The list, filtered by status.
    browser.click_link("Workloads").await;
    browser.heading("Workloads").await;
    browser
        .text_when("main table", "three workloads", |t| {
            t.contains(&sleeper) && t.contains(&ticking) && t.contains(ran)
        })
        .await;
    browser
        .find("#filter-status")
        .await
        .select_by_value("killed")
        .await
        .expect("choose a status");
    browser
        .text_when("main table tbody", "the killed one only", |t| {
            t.contains(&sleeper) && !t.contains(&ticking)
        })
        .await;
    assert_eq!(browser.count("main table tbody tr").await, 1);
    assert!(browser
        .client()
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("status=killed"));
    browser.screenshot("workloads-killed").await;
    // Rows follow the event stream: a new workload appears, then its status changes,
    // with no reload of the page.
    browser
        .find("#filter-status")
        .await
        .select_by_value("")
        .await
        .expect("any status");
    browser
        .text_when("main table tbody", "every workload", |t| {
            t.contains(&ticking)
        })
        .await;
    let marker = browser
        .client()
        .execute("window.stillTheSamePage = true; return true;", vec![])
        .await
        .expect("mark the page");
    assert_eq!(marker, json!(true));
    let newcomer = submit(&server, &admin, json!({"runtime": "node", "code": SLEEPER}));
    let row = format!("main table tbody tr[data-id='{newcomer}']");
    browser
        .text_when(&row, "running", |t| t.contains("running"))
        .await;
    call(
        &server,
        "DELETE",
        &format!("/v1/workloads/{newcomer}"),
        &admin,
        None,
    );
    browser
        .text_when(&row, "killed", |t| t.contains("killed"))
        .await;
    let same = browser
        .client()
        .execute("return window.stillTheSamePage === true;", vec![])
        .await
        .expect("read the mark");
    assert_eq!(same, json!(true), "the list updated without a reload");
    // In a narrow window the navigation wraps and the table scrolls inside its box.
    browser
        .client()
        .set_window_size(420, 900)
        .await
        .expect("a narrow window");
    let overflow = browser
        .client()
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .expect("the page's width");
    assert_eq!(overflow, json!(0), "the page does not scroll sideways");
    browser.screenshot("workloads-narrow").await;
    browser
        .client()
        .set_window_size(1280, 1000)
        .await
        .expect("a wide window");

    // Every other page draws without an error.
    for (path, title) in [
        ("/", "Overview"),
        ("/functions", "Functions"),
        ("/schedules", "Schedules"),
        ("/sandboxes", "Sandboxes"),
        ("/images", "Images"),
        ("/secrets", "Secrets"),
        ("/keys", "Keys"),
        ("/audit", "Audit"),
        ("/benchmarks", "Benchmarks"),
        ("/nodes", "Nodes"),
        ("/backends", "Backends"),
    ] {
        browser.open(path).await;
        browser.heading(title).await;
        assert_eq!(
            browser.count("#alert:not([hidden])").await,
            0,
            "{path} showed an error"
        );
        browser
            .screenshot(&format!("page-{}", title.to_lowercase()))
            .await;
    }
    // The overview counts what the API counts.
    let stats = call(&server, "GET", "/v1/stats", &admin, None);
    let expected = format!(
        "total\n{}\npending\n0\nrunning\n0\ncompleted\n{}\nfailed\n0\nkilled\n{}",
        stats["total"], stats["by_status"]["completed"], stats["by_status"]["killed"]
    );
    assert_eq!(stats["by_status"]["killed"], json!(2));
    browser.open("/").await;
    browser
        .text_when(".cards", "the API's counts", |t| t.starts_with(&expected))
        .await;
    browser.close().await;
}

#[tokio::test]
async fn a_viewer_cannot_kill_and_a_tenant_sees_only_its_own() {
    let _one = ONE_BROWSER.lock().await;
    let (server, admin) = secured();
    let viewer = new_key(&server, &admin, "viewer", "acme");
    let developer = new_key(&server, &admin, "developer", "acme");
    let other = new_key(&server, &admin, "developer", "globex");
    let ours = submit(
        &server,
        &developer,
        json!({"runtime": "node", "code": SLEEPER}),
    );
    let theirs = call(
        &server,
        "POST",
        "/v1/workloads",
        &other,
        Some(json!({"runtime": "node", "code": "export default () => 1"})),
    )["id"]
        .as_str()
        .expect("an id")
        .to_owned();

    let browser = Browser::start(&server.base).await;
    browser.sign_in(&viewer).await;
    browser.heading("Overview").await;
    assert_eq!(
        browser
            .count("#nav a[href='/workloads/new']:not([hidden])")
            .await,
        0,
        "a viewer is not offered New workload"
    );
    browser.open(&format!("/workloads/{ours}")).await;
    browser
        .text_when("#status", "running", |t| t == "running")
        .await;
    browser
        .text_when("#output-text", "the output placeholder", |t| !t.is_empty())
        .await;
    assert_eq!(browser.count("#kill").await, 0, "a viewer sees no Kill");
    browser.screenshot("viewer-workload").await;

    browser.open("/workloads").await;
    browser
        .text_when("main table", "acme's workload", |t| t.contains(&ours))
        .await;
    assert!(!browser
        .find("main table")
        .await
        .text()
        .await
        .unwrap()
        .contains(&theirs));
    assert_eq!(browser.count("main table tbody tr").await, 1);
    browser.open(&format!("/workloads/{theirs}")).await;
    let refused = browser
        .text_when("main .error", "a not found", |t| !t.is_empty())
        .await;
    assert!(
        refused.contains("not found") || refused.contains("no workload"),
        "{refused}"
    );
    browser.screenshot("tenant-other-workload").await;
    // What the role may not do is explained, not shown as a bare error.
    browser.open("/keys").await;
    let forbidden = browser
        .text_when("main .error", "a 403 explained", |t| !t.is_empty())
        .await;
    assert!(
        forbidden.contains("role viewer") && forbidden.contains("keys:manage"),
        "{forbidden}"
    );

    // The same page with a developer key of the tenant offers Kill. (Signed in with the
    // keyboard alone: the key, then Enter.)
    browser.click("#sign-out").await;
    browser.heading("Sign in").await;
    browser
        .type_into(
            "#api-key",
            &format!("{developer}{}", char::from(Key::Enter)),
        )
        .await;
    browser.heading("Overview").await;
    browser.open(&format!("/workloads/{ours}")).await;
    browser.click("#kill").await;
    browser
        .text_when("#status", "killed", |t| t == "killed")
        .await;
    assert_eq!(status_of(&server, &developer, &ours), "killed");
    browser.close().await;
}

#[tokio::test]
async fn any_node_of_a_cluster_serves_the_pages_and_follows_the_others_work() {
    let _one = ONE_BROWSER.lock().await;
    let pg = PgServer::start().expect("a PostgreSQL server of the test's own");
    let url = pg.database().expect("a database");
    let admin = "vk_dashboard_cluster-admin-key";
    let node = |id: &'static str| {
        Server::start(&[
            ("VULCAN_DATABASE_URL", url.as_str()),
            ("VULCAN_NODE_ID", id),
            (
                "VULCAN_SECRET_KEY",
                "Y2x1c3Rlci10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE=",
            ),
            ("VULCAN_ISOLATE_POOL_SIZE", "1"),
            ("VULCAN_AUTH", "on"),
            ("VULCAN_ADMIN_KEY", admin),
        ])
    };
    let (a, b) = (node("a"), node("b"));
    // Work submitted to node A, watched from node B's pages.
    let id = submit(
        &a,
        admin,
        json!({"runtime": "node", "code":
            "for (let i = 0; i < 6; i++) { console.log(`line ${i}`); await new Promise((r) => setTimeout(r, 500)); }"}),
    );
    let browser = Browser::start(&b.base).await;
    browser.sign_in(admin).await;
    browser.heading("Overview").await;
    browser.open(&format!("/workloads/{id}")).await;
    browser
        .text_when("#log-lines", "every line", |t| t.contains("line 5"))
        .await;
    browser
        .text_when("#status", "completed", |t| t == "completed")
        .await;
    browser.open("/nodes").await;
    browser
        .text_when("main table", "both nodes live", |t| {
            t.matches("live").count() >= 2
        })
        .await;
    browser.screenshot("cluster-nodes").await;
    browser.close().await;
}

#[tokio::test]
async fn queues_are_made_fed_and_purged_from_their_page() {
    let _one = ONE_BROWSER.lock().await;
    let (server, admin) = secured();
    call(
        &server,
        "POST",
        "/v1/queues",
        &admin,
        Some(json!({"name": "dead"})),
    );
    call(
        &server,
        "POST",
        "/v1/topics",
        &admin,
        Some(json!({"name": "events"})),
    );
    call(
        &server,
        "POST",
        "/v1/topics/events/subscriptions",
        &admin,
        Some(json!({"queue": "dead"})),
    );
    let browser = Browser::start(&server.base).await;
    browser.sign_in(&admin).await;
    browser.heading("Overview").await;
    browser.click_link("Queues").await;
    browser.heading("Queues").await;
    browser
        .text_when("main", "the topic and its subscription", |t| {
            t.contains("events") && t.contains("queue dead")
        })
        .await;
    browser.type_into("#queue-name", "orders").await;
    browser.type_into("#queue-max-receives", "3").await;
    browser.type_into("#queue-dlq", "dead").await;
    browser.click("main form button[type=submit]").await;
    browser
        .text_when("#queue-orders", "the new queue", |t| t == "orders")
        .await;
    let made = call(&server, "GET", "/v1/queues/orders", &admin, None);
    assert_eq!(made["max_receives"], 3, "{made}");
    assert_eq!(made["dead_letter_queue"], "dead", "{made}");
    // A message sent from the page is in the queue; purged from it, it is gone.
    let select = browser.find("#send-queue").await;
    select.send_keys("orders").await.expect("the queue picked");
    browser.type_into("#send-body", r#"{"sku": "x1"}"#).await;
    browser
        .click("main form:last-of-type button[type=submit]")
        .await;
    let depth = "tr:has(#queue-orders) .queue-depth";
    browser
        .text_when(depth, "a message in orders", |t| t == "1")
        .await;
    let queue = call(&server, "GET", "/v1/queues/orders", &admin, None);
    assert_eq!(queue["depth"], 1, "{queue}");
    browser.screenshot("queues").await;
    browser.click("tr:has(#queue-orders) button.danger").await;
    browser
        .text_when(depth, "the queue purged", |t| t == "0")
        .await;
    let queue = call(&server, "GET", "/v1/queues/orders", &admin, None);
    assert_eq!(queue["depth"], 0, "{queue}");
}

#[tokio::test]
async fn a_function_is_deployed_rolled_back_and_invoked_from_its_pages() {
    let _one = ONE_BROWSER.lock().await;
    let (server, admin) = secured();
    let browser = Browser::start(&server.base).await;
    browser.sign_in(&admin).await;
    browser.heading("Overview").await;
    browser.click_link("Functions").await;
    browser.heading("Functions").await;
    browser.type_into("#fn-name", "greet").await;
    browser
        .type_into("#fn-code", "export default (i) => `v1 ${i.name}`")
        .await;
    browser.click("main form button[type=submit]").await;
    browser.heading("Function greet").await;
    // A second version, deployed through the API, becomes active.
    call(
        &server,
        "PUT",
        "/v1/functions/greet",
        &admin,
        Some(json!({"runtime": "node", "code": "export default (i) => `v2 ${i.name}`"})),
    );
    browser.open("/functions/greet").await;
    browser.click_link("Functions").await;
    browser.click_link("greet").await;
    browser.heading("Function greet").await;
    browser
        .text_when("main", "version 2 active", |t| t.contains("Activate v1"))
        .await;
    browser.screenshot("function").await;
    // Roll back to version 1, then invoke it with an input.
    browser.click("main table button").await;
    browser
        .text_when("main", "version 1 active", |t| t.contains("Activate v2"))
        .await;
    browser
        .type_into("#invoke-input", r#"{"name": "Ada"}"#)
        .await;
    browser.click("main form button[type=submit]").await;
    browser
        .text_when("#status", "completed", |t| t == "completed")
        .await;
    let output = browser
        .text_when("#output-text", "the output", |t| t.contains("Ada"))
        .await;
    assert_eq!(output, "\"v1 Ada\"");

    // A benchmark started from its page shows its progress, then the report's charts.
    browser.click_link("Benchmarks").await;
    browser.heading("Benchmarks").await;
    browser.type_into("#bench-iterations", "3").await;
    browser.type_into("#bench-concurrency", "1").await;
    browser.type_into("#bench-backends", "isolate").await;
    browser.click("main form button[type=submit]").await;
    browser
        .text_when("main dl", "the run to finish", |t| t.contains("completed"))
        .await;
    assert_eq!(browser.count("figure[data-metric]").await, 6);
    assert!(browser.count("rect[data-backend='isolate']").await >= 1);
    let progress = browser
        .client()
        .execute(
            "const p = document.getElementById('bench-progress'); return [p.value, p.max];",
            vec![],
        )
        .await
        .expect("the progress bar");
    assert_eq!(
        progress[0], progress[1],
        "the progress bar is full: {progress}"
    );
    browser.screenshot("benchmark").await;
    browser.close().await;
}

/// A sandbox on gVisor from its pages: listed, a command run in it, paused, resumed and
/// deleted.
#[tokio::test]
async fn a_sandbox_is_listed_run_in_paused_resumed_and_deleted_from_its_pages() {
    let _one = ONE_BROWSER.lock().await;
    let registry = vulcan_gvisor::testing::Registry::start();
    let image = registry.push("busybox:dashboard", "busybox");
    let (server, admin) =
        Server::start_readme_way(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]);
    let server = common::sandbox_host::Host { server };
    let created = call(
        &server,
        "POST",
        "/v1/sandboxes",
        &admin,
        Some(json!({"image": image, "metadata": {"owner": "ada"}})),
    );
    let id = created["id"].as_str().expect("a sandbox id").to_owned();
    let browser = Browser::start(&server.base).await;
    browser.sign_in(&admin).await;
    browser.heading("Overview").await;
    browser.click_link("Sandboxes").await;
    browser.heading("Sandboxes").await;
    browser
        .text_when("main table", "the sandbox listed", |t| {
            t.contains(&id) && t.contains("owner=ada") && t.contains("running")
        })
        .await;
    browser.screenshot("sandboxes").await;
    browser.click_link(&id).await;
    browser.heading(&format!("Sandbox {id}")).await;
    browser
        .type_into("#sandbox-command", "echo hello from the page; exit 3")
        .await;
    browser.click("main form button[type=submit]").await;
    let out = browser
        .text_when("#sandbox-output", "the command's output", |t| {
            t.contains("[exit")
        })
        .await;
    assert_eq!(out, "hello from the page\n[exit 3]");
    // A shell on a terminal, a line at a time; then the file it wrote, in the files.
    browser.click("#sandbox-terminal-open").await;
    browser
        .text_when("#sandbox-terminal", "the shell's prompt", |t| {
            t.contains('#')
        })
        .await;
    browser
        .type_into(
            "#sandbox-terminal-input",
            "echo $((6*7)) > /tmp/answer.txt; cat /tmp/answer.txt\u{E007}",
        )
        .await;
    browser
        .text_when("#sandbox-terminal", "the command's answer", |t| {
            t.contains("\n42\n")
        })
        .await;
    browser
        .click("#sandbox-files button[data-path='/tmp']")
        .await;
    browser
        .text_when("#sandbox-files", "the file the shell wrote", |t| {
            t.contains("answer.txt") && t.contains("3 B")
        })
        .await;
    browser.screenshot("sandbox").await;
    browser.click("#sandbox-key-d").await;
    browser
        .text_when("#sandbox-terminal", "the shell's end", |t| {
            t.contains("[ended: 0]")
        })
        .await;
    browser.click("#sandbox-pause").await;
    browser
        .text_when("#sandbox-state", "paused", |t| t == "paused")
        .await;
    let shown = call(&server, "GET", &format!("/v1/sandboxes/{id}"), &admin, None);
    assert_eq!(shown["state"], "paused", "{shown}");
    browser.click("#sandbox-resume").await;
    browser
        .text_when("#sandbox-state", "running again", |t| t == "running")
        .await;
    // Its page loads from its address too (not only from the list).
    browser.open(&format!("/sandbox/{id}")).await;
    browser.heading(&format!("Sandbox {id}")).await;
    browser.click("#sandbox-delete").await;
    browser
        .client()
        .accept_alert()
        .await
        .expect("confirm the delete");
    browser
        .text_when("#sandbox-state", "ended", |t| t == "ended")
        .await;
    let shown = call(&server, "GET", &format!("/v1/sandboxes/{id}"), &admin, None);
    assert_eq!(shown["end_reason"], "deleted by request", "{shown}");
    browser.close().await;
}

/// A public function that answers with a page whose script tries what an attacker would
/// on the dashboard's origin: read the signed-in key and register a service worker for
/// every path. It writes what it got into `#out`.
const HOSTILE_PAGE: &str = r#"export default (req) => {
  if (req.path === "/sw.js") {
    return { status: 200, headers: { "content-type": "text/javascript", "service-worker-allowed": "/" },
             body: "self.addEventListener('fetch', () => {});" };
  }
  const page = `<!doctype html><title>hostile</title><p id="out">not run</p><script>
    const seen = {};
    try { seen.key = sessionStorage.getItem("vulcan.key"); } catch (e) { seen.storage_error = e.name; }
    try { seen.cookie = document.cookie; } catch (e) { seen.cookie_error = e.name; }
    const done = () => { document.getElementById("out").textContent = JSON.stringify(seen); };
    seen.worker = "pending";
    done();
    try {
      navigator.serviceWorker.register("/fn/admin/hostile/sw.js", { scope: "/" })
        .then(() => { seen.worker = "registered"; done(); }, (e) => { seen.worker = "refused: " + e.name; done(); });
    } catch (e) { seen.worker = "refused: " + e.name; done(); }
  </script>`;
  return { status: 200, body: page,
           headers: { "content-type": "text/html", "service-worker-allowed": "/",
                      "set-cookie": "stolen=1; Path=/", "access-control-allow-origin": "*" } };
};"#;

#[tokio::test]
async fn a_public_functions_page_cannot_read_the_signed_in_key_or_register_a_worker() {
    let _one = ONE_BROWSER.lock().await;
    let (server, admin) = secured();
    call(
        &server,
        "PUT",
        "/v1/functions/hostile",
        &admin,
        Some(json!({"runtime": "node", "code": HOSTILE_PAGE, "public": true})),
    );
    let browser = Browser::start(&server.base).await;
    browser.sign_in(&admin).await;
    browser.heading("Overview").await;
    let stored = browser
        .client()
        .execute("return sessionStorage.getItem('vulcan.key');", vec![])
        .await
        .expect("read the tab's storage");
    assert_eq!(
        stored,
        json!(admin),
        "the dashboard keeps the key in this tab"
    );

    // The same tab opens the function's page, as an admin following a link would.
    browser.open("/fn/admin/hostile").await;
    let out = browser
        .text_when("#out", "what the page's script saw", |t| t != "not run")
        .await;
    // The worker's registration settles, or never does: then what was seen so far.
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        browser.text_when("#out", "the worker's fate", |t| !t.contains("pending")),
    )
    .await
    .unwrap_or(out);
    browser.screenshot("hostile-function-page").await;
    let seen: Value = serde_json::from_str(&out).expect("the page's report");
    assert!(
        seen["key"].is_null() && seen["storage_error"] == "SecurityError",
        "the page read nothing of the dashboard's storage: {seen}"
    );
    assert!(
        seen["worker"].as_str().unwrap_or("").starts_with("refused"),
        "no service worker from a function's page: {seen}"
    );
    // Back on the dashboard: no worker controls it, and no cookie was set.
    browser.open("/").await;
    browser.heading("Overview").await;
    let workers = browser
        .client()
        .execute_async(
            "const done = arguments[0]; navigator.serviceWorker.getRegistrations().then((r) => done(r.length), () => done(-1));",
            vec![],
        )
        .await
        .expect("list the service workers");
    assert_eq!(
        workers,
        json!(0),
        "no service worker registered on this origin"
    );
    let cookie = browser
        .client()
        .execute("return document.cookie;", vec![])
        .await
        .expect("read the cookies");
    assert_eq!(cookie, json!(""), "the function set no cookie");
    browser.close().await;
}
