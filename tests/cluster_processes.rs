#![cfg(feature = "redis")]
//! Two operating-system processes, each running the `cluster_node`
//! example, exchange events through a `redis-server` the test starts.
//!
//! The test asks cargo for the example's executable (`cargo build
//! --example cluster_node`, which does nothing when it is up to date), so
//! it runs the example as it is now, whether or not the whole test suite
//! built the examples first.

mod cluster_support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::{Lines, PATIENCE, RedisServer, unique_prefix};

/// Builds the example if needed and returns the path of its executable.
fn example_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // The features this test was built with, so that cargo reuses the
    // library it already built instead of building another variant.
    let mut features = vec!["redis"];
    if cfg!(feature = "web") {
        features.push("web");
    }
    let output = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--example",
            "cluster_node",
            "--message-format",
            "json",
        ])
        .args(["--features", &features.join(",")])
        .stdin(Stdio::null())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "building the cluster_node example failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "cluster_node")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the example's executable")
}

/// One running node; killed if the test ends early.
struct NodeProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines,
}

impl NodeProcess {
    fn spawn(binary: &PathBuf, redis: &RedisServer, prefix: &str, name: &str) -> NodeProcess {
        let mut child = Command::new(binary)
            .args(["--redis", &redis.url(), "--node", name, "--prefix", prefix])
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the example starts");
        let stdin = child.stdin.take();
        let lines = Lines::new(child.stdout.take().expect("a piped stdout"));
        NodeProcess {
            name: name.to_owned(),
            child,
            stdin,
            lines,
        }
    }

    fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("the node reads its input");
        stdin.flush().expect("the node reads its input");
    }

    /// The titles of the next `count` events the node prints.
    fn got(&self, count: usize) -> Vec<String> {
        (0..count)
            .map(|_| {
                let line = self
                    .lines
                    .expect(&format!("an event on {}", self.name), |line| {
                        line.starts_with("got ")
                    });
                line.rsplit(' ').next().unwrap_or_default().to_owned()
            })
            .collect()
    }

    /// Asks for the node's counters until `wanted` holds for them.
    fn stats_until(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.command("stats");
            let line = self
                .lines
                .expect("a stats line", |line| line.starts_with("stats "));
            if wanted(&line) {
                return line;
            }
            assert!(Instant::now() < deadline, "{}: {line}", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the node with `quit` and waits for a clean exit.
    fn quit(mut self) {
        self.command("quit");
        self.lines.expect("bye", |line| line.starts_with("bye "));
        let status = self.child.wait().expect("the node exits");
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The titles from `node`, in the order they came.
fn from(titles: &[String], node: &str) -> Vec<String> {
    titles
        .iter()
        .filter(|title| title.starts_with(&format!("{node}-")))
        .cloned()
        .collect()
}

#[test]
fn two_node_processes_exchange_events_without_echo() {
    let redis = RedisServer::start();
    let binary = example_binary();
    let prefix = unique_prefix("processes");
    let mut a = NodeProcess::spawn(&binary, &redis, &prefix, "proc-a");
    let mut b = NodeProcess::spawn(&binary, &redis, &prefix, "proc-b");
    a.lines
        .expect("proc-a ready", |line| line == "ready proc-a");
    b.lines
        .expect("proc-b ready", |line| line == "ready proc-b");

    a.command("publish 5");
    b.command("publish 3");
    let at_a = a.got(8);
    let at_b = b.got(8);

    let ours = |node: &str, count: usize| -> Vec<String> {
        (1..=count).map(|n| format!("{node}-{n}")).collect()
    };
    for titles in [&at_a, &at_b] {
        assert_eq!(from(titles, "proc-a"), ours("proc-a", 5), "{titles:?}");
        assert_eq!(from(titles, "proc-b"), ours("proc-b", 3), "{titles:?}");
    }

    // The task events went to two topics; the view listens to one of them.
    let counts_a =
        a.stats_until(|line| line.contains("echoes=10") && line.contains("published=10"));
    assert!(counts_a.contains("received=6"), "{counts_a}");
    let counts_b = b.stats_until(|line| line.contains("echoes=6"));
    assert!(counts_b.contains("received=10"), "{counts_b}");
    assert!(counts_b.contains("malformed=0 gaps=0"), "{counts_b}");
    assert!(
        a.lines
            .drain(Duration::from_millis(300))
            .iter()
            .all(|line| !line.starts_with("got ")),
        "proc-a printed an event twice"
    );

    a.quit();
    b.quit();
}

#[test]
fn a_second_process_with_a_node_id_in_use_is_refused() {
    let redis = RedisServer::start();
    let binary = example_binary();
    let prefix = unique_prefix("processes-dup");
    let first = NodeProcess::spawn(&binary, &redis, &prefix, "web-1");
    first
        .lines
        .expect("web-1 ready", |line| line == "ready web-1");

    let mut second = NodeProcess::spawn(&binary, &redis, &prefix, "web-1");
    let refusal = second
        .lines
        .expect("a refusal", |line| line.starts_with("error "));
    assert!(
        refusal.contains("node id web-1 is held by another live node"),
        "{refusal}"
    );
    let status = second.child.wait().expect("the refused node exits");
    assert!(!status.success());

    first.quit();
}
