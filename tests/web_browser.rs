//! The live demo in a real browser: headless Chromium, driven over
//! chromedriver, shows a change made on one page on another page of the
//! same project without a reload, and nothing on a page of another project.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs
//! them); `CHROMIUM` and `CHROMEDRIVER` point at other binaries. The test
//! starts chromedriver on a free loopback port itself and stops it, and the
//! browsers, at the end. The screenshot goes to `target/live-updates.png`.

#![cfg(feature = "web")]

#[path = "../examples/live_server/app.rs"]
mod app;
mod web_support;

use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use web_support::PATIENCE;

/// The budget for a change to show on another page.
const LIVE_BUDGET: Duration = Duration::from_secs(2);

fn binary(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: install Debian's chromium and chromium-driver (scripts/test does), \
         or set {variable}",
        path.display()
    );
    path
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("a free loopback port");
    listener.local_addr().expect("a bound address").port()
}

/// A chromedriver process of this test, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    profiles: Vec<PathBuf>,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chromedriver.log");
        let child = Command::new(binary("CHROMEDRIVER", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles: Vec::new(),
        }
    }

    /// A new browser session with a fresh profile.
    async fn browser(&mut self, name: &str) -> Client {
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("chromium-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("a profile directory");
        self.profiles.push(profile.clone());

        let chromium = binary("CHROMIUM", "/usr/bin/chromium");
        let options = json!({
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--window-size=1200,800",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);

        // chromedriver needs a moment before it listens.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let attempt = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&self.url)
                .await;
            match attempt {
                Ok(client) => return client,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("no browser session from chromedriver: {err}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for profile in &self.profiles {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

async fn script(page: &Client, code: &str) -> Value {
    page.execute(code, Vec::new())
        .await
        .unwrap_or_else(|err| panic!("script {code:?} failed: {err}"))
}

/// Waits until `code` returns `true` in the page, failing after [`PATIENCE`].
async fn until(page: &Client, what: &str, code: &str) {
    let deadline = Instant::now() + PATIENCE;
    while script(page, code).await != Value::Bool(true) {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn open_project(page: &Client, base: &str, uuid: &str, name: &str) {
    page.goto(&format!("{base}/projects/{uuid}"))
        .await
        .expect("the project page loads");
    until(
        page,
        "the stream to be live",
        "return document.getElementById('status').dataset.state === 'live'",
    )
    .await;
    until(
        page,
        "the project to be shown",
        &format!(
            "const h = document.getElementById('project-name'); \
             return h !== null && h.textContent === {};",
            json!(name)
        ),
    )
    .await;
}

/// Runs a sequence of element commands, again from the start when the
/// page re-rendered under it (every event re-renders the view).
async fn on_fresh_elements<F, Fut>(what: &str, mut steps: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), CmdError>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match steps().await {
            Ok(()) => return,
            Err(err) if err.is_stale_element_reference() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("{what}: {err}"),
        }
    }
}

async fn click(page: &Client, selector: &str) {
    on_fresh_elements(&format!("click {selector}"), || async {
        page.find(Locator::Css(selector)).await?.click().await
    })
    .await;
}

/// The project's name as shown; read in one step, since every event
/// re-renders the view and an element found earlier may be gone.
async fn heading(page: &Client) -> String {
    let text = script(
        page,
        "const h = document.getElementById('project-name'); return h && h.textContent;",
    )
    .await;
    text.as_str().unwrap_or_default().to_owned()
}

async fn logged_events(page: &Client) -> Vec<String> {
    let list = script(
        page,
        "return Array.from(document.querySelectorAll('#events li strong'), e => e.textContent)",
    )
    .await;
    serde_json::from_value(list).expect("a list of event names")
}

async fn create_project(base: &str, name: &str, template: Option<&str>) -> String {
    let mut response = web_support::client()
        .post(format!("{base}/api/projects"))
        .send_json(&json!({ "name": name, "template": template }))
        .await
        .expect("the demo answers");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("a JSON project");
    body["uuid"].as_str().expect("a uuid").to_owned()
}

#[actix_rt::test]
async fn a_change_on_one_page_appears_on_another_without_a_reload() {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("a loopback port");
    let db = app::open_database(None).expect("an in-memory workspace");
    let running = app::serve(listener, db).expect("the demo starts");
    let base = format!("http://{}", running.addr);
    let server = running.server.handle();
    actix_rt::spawn(running.server);

    let mut workspace = web_support::client()
        .get(format!("{base}/api/workspace"))
        .send()
        .await
        .expect("the demo answers");
    let workspace: Value = workspace.json().await.expect("a JSON workspace");
    let template = workspace["projects"]
        .as_array()
        .and_then(|projects| projects.iter().find(|p| p["is_template"] == true))
        .and_then(|template| template["uuid"].as_str())
        .expect("the sample workspace has a template")
        .to_owned();
    let loft = create_project(&base, "Loft conversion", Some(&template)).await;
    let bathroom = create_project(&base, "Bathroom", None).await;

    let mut driver = Driver::start();
    let a = driver.browser("a").await;
    let b = driver.browser("b").await;
    let c = driver.browser("c").await;
    let outcome = AssertUnwindSafe(scenario(&base, &loft, &bathroom, &a, &b, &c))
        .catch_unwind()
        .await;

    for page in [a, b, c] {
        let _ = page.close().await;
    }
    drop(driver);
    server.stop(false).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(base: &str, loft: &str, bathroom: &str, a: &Client, b: &Client, c: &Client) {
    open_project(a, base, loft, "Loft conversion").await;
    open_project(b, base, loft, "Loft conversion").await;
    open_project(c, base, bathroom, "Bathroom").await;
    // A reload would lose this mark.
    script(b, "window.pageMark = 'still here'; return true;").await;

    on_fresh_elements("rename on page A", || async {
        let input = a.find(Locator::Id("rename-input")).await?;
        input.clear().await?;
        input.send_keys("Loft conversion, phase 2").await?;
        a.find(Locator::Id("rename-button")).await?.click().await
    })
    .await;
    let clicked = Instant::now();

    let mut shown = heading(b).await;
    while shown != "Loft conversion, phase 2" && clicked.elapsed() <= LIVE_BUDGET {
        tokio::time::sleep(Duration::from_millis(20)).await;
        shown = heading(b).await;
    }
    let took = clicked.elapsed();
    assert_eq!(
        shown, "Loft conversion, phase 2",
        "page B did not show the change within {LIVE_BUDGET:?}"
    );
    assert!(took <= LIVE_BUDGET, "page B took {took:?}");
    assert_eq!(
        script(b, "return window.pageMark === 'still here'").await,
        Value::Bool(true),
        "page B was reloaded"
    );
    assert_eq!(logged_events(b).await, ["project_updated"]);
    eprintln!("page B showed the new name {took:?} after the click on page A");

    // The other forms of page A: assign a task, reorder, add a dependency.
    let count = "return document.querySelectorAll('#assignments li').length";
    assert_eq!(script(b, count).await, json!(4));
    click(a, "#assign button").await;
    until(b, "the new assignment on page B", &format!("{count} === 5")).await;

    let first = "return document.querySelector('#assignments li').firstChild.textContent";
    let was_first = script(b, first).await;
    until(
        a,
        "page A to show its new assignment",
        &format!("{count} === 5"),
    )
    .await;
    click(a, "#assignments li:first-child button[title='move down']").await;
    until(
        b,
        "the reorder on page B",
        &format!(
            "return document.querySelectorAll('#assignments li')[1].firstChild.textContent \
             === {was_first}"
        ),
    )
    .await;

    until(
        a,
        "page A to show the reorder",
        "return document.querySelector('#depend') !== null",
    )
    .await;
    on_fresh_elements("add a dependency on page A", || async {
        let waited_for = a.find(Locator::Id("waited-for-select")).await?;
        waited_for.select_by_index(1).await?;
        a.find(Locator::Css("#depend button")).await?.click().await
    })
    .await;
    until(
        b,
        "the dependency on page B",
        "return document.querySelectorAll('#dependencies li').length === 1",
    )
    .await;
    assert_eq!(
        logged_events(b).await,
        [
            "dependency_added",
            "assignment_reordered",
            "assignment_created",
            "project_updated"
        ],
        "newest first"
    );
    assert_eq!(
        script(b, "return window.pageMark === 'still here'").await,
        Value::Bool(true),
        "page B was reloaded"
    );

    let screenshot = b.screenshot().await.expect("a screenshot of page B");
    let path = target_dir().join("live-updates.png");
    std::fs::write(&path, screenshot).expect("the screenshot is written");
    eprintln!("screenshot of page B in {}", path.display());

    // Page C follows another project: by the time B has the events, C would
    // have had them too. Give it longer still before looking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(heading(c).await, "Bathroom");
    assert!(
        logged_events(c).await.is_empty(),
        "page C heard another project's event"
    );

    // C was listening all along: a change of its own project shows up.
    let renamed = web_support::client()
        .patch(format!("{base}/api/projects/{bathroom}"))
        .send_json(&json!({ "name": "Bathroom, tiled" }))
        .await
        .expect("the demo answers");
    assert_eq!(renamed.status(), 200);
    until(
        c,
        "page C to show its own project's change",
        "return document.getElementById('project-name').textContent === 'Bathroom, tiled'",
    )
    .await;
    assert_eq!(logged_events(c).await, ["project_updated"]);
}
