//! What the cluster tests share: a `redis-server` of their own on a free
//! loopback port (so a test may kill and restart it), a recording
//! subscriber, nodes made of a broker, a notifier and a bridge, and waits
//! with a generous deadline instead of fixed sleeps.
//!
//! Every test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use projects_pubsub::cluster::{
    BridgeConfig, BridgeStats, GapDetected, GetBridgeStats, NodeId, RedisBridge, StopBridge,
};
use projects_pubsub::{
    Delivery, EventName, Mutation, Payload, ProjectsEvent, ProjectsNotifier, Publish, Subscribe,
    SubscriptionId, TaskPayload, Topic, TopicBroker,
};
use serde_json::{Map, json};
use uuid::Uuid;

/// How long a test waits for something that should happen. Generous on
/// purpose: a slow machine makes a test slower, never red.
pub const PATIENCE: Duration = Duration::from_secs(30);

const POLL: Duration = Duration::from_millis(5);

/// A `redis-server` this test owns, on a free loopback port. Killed when
/// dropped.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("a bound address").port()
}

fn spawn_server(port: u16) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--loglevel", "warning"])
        .arg("--dir")
        .arg(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "redis-server is not on PATH: install Debian's redis-server package \
             (scripts/test does so)",
        )
}

/// Whether a server answers PING on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> RedisServer {
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                port,
                child: Some(spawn_server(port)),
            };
            if server.wait_ready() {
                return server;
            }
            // Another process took the port first: try another.
            server.kill9();
        }
        panic!("could not start redis-server on a free port");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if answers(self.port) {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|child| child.try_wait().ok().flatten().is_some());
            if exited {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address for a bridge.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it (SIGSTOP): connections stay open and nothing answers, as
    /// with a hung server or a network that drops packets.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill9();
        for _ in 0..50 {
            self.child = Some(spawn_server(self.port));
            if self.wait_ready() {
                return;
            }
            self.kill9();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart redis-server on port {}", self.port);
    }

    /// Publishes `payload` on `channel` as a program in another language
    /// would: with `redis-cli` when it is on PATH, else with a plain client.
    pub fn publish_raw(&self, channel: &str, payload: &str) {
        let cli = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["PUBLISH", channel, payload])
            .stdin(Stdio::null())
            .output();
        match cli {
            Ok(output) if output.status.success() => return,
            Ok(output) => panic!(
                "redis-cli PUBLISH failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(_) => {}
        }

        let client = redis::Client::open(self.url()).expect("a valid address");
        let mut conn = client.get_connection().expect("the test server answers");
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query(&mut conn)
            .expect("PUBLISH works");
    }

    /// How many clients subscribe to `channel` (`PUBSUB NUMSUB`).
    pub fn subscribers(&self, channel: &str) -> i64 {
        let client = redis::Client::open(self.url()).expect("a valid address");
        let mut conn = client.get_connection().expect("the test server answers");
        let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query(&mut conn)
            .expect("PUBSUB NUMSUB works");
        counts.first().map_or(0, |(_, count)| *count)
    }

    /// Runs one command and returns its integer reply.
    pub fn query_int(&self, args: &[&str]) -> i64 {
        let client = redis::Client::open(self.url()).expect("a valid address");
        let mut conn = client.get_connection().expect("the test server answers");
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn).expect("the command works")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A channel prefix no other test uses.
pub fn unique_prefix(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("t{}-{name}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A bridge configuration with quick timings, so that tests of outages
/// do not wait for production defaults.
pub fn config(redis: &RedisServer, prefix: &str, node: &str) -> BridgeConfig {
    BridgeConfig::new(redis.url(), NodeId::new(node).expect("a valid node id"))
        .channel_prefix(prefix)
        .expect("a valid prefix")
        .backoff(Duration::from_millis(20), Duration::from_millis(250))
        .heartbeat(Duration::from_millis(250))
        .node_ttl(Duration::from_secs(3))
        .response_timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(3))
        .resync_wait(Duration::from_secs(5))
}

/// One delivery, as a [`Recorder`] saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub topic: Topic,
    pub event: ProjectsEvent,
}

/// A subscriber that records what it receives.
#[derive(Default)]
pub struct Recorder {
    seen: Vec<Seen>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Recorder {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        self.seen.push(Seen {
            topic: delivery.topic().clone(),
            event: delivery.event().clone(),
        });
    }
}

/// Asks a [`Recorder`] for everything it has received so far. Its mailbox
/// is first in, first out: the reply comes after every delivery that was
/// queued before the question.
pub struct Snapshot;

impl Message for Snapshot {
    type Result = Vec<Seen>;
}

impl Handler<Snapshot> for Recorder {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.seen.clone())
    }
}

/// Stops a [`Recorder`], as a view that closes.
pub struct Halt;

impl Message for Halt {
    type Result = ();
}

impl Handler<Halt> for Recorder {
    type Result = ();

    fn handle(&mut self, _: Halt, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Starts a recorder subscribed to `topics` on `broker`.
pub async fn recorder(broker: &Addr<TopicBroker>, topics: &[Topic]) -> Addr<Recorder> {
    let recorder = Recorder::default().start();
    for topic in topics {
        subscribe(broker, topic, &recorder).await;
    }
    recorder
}

/// Starts a recorder subscribed to `topic` on `broker`.
pub async fn listen(broker: &Addr<TopicBroker>, topic: &Topic) -> Addr<Recorder> {
    recorder(broker, std::slice::from_ref(topic)).await
}

pub async fn subscribe(
    broker: &Addr<TopicBroker>,
    topic: &Topic,
    recorder: &Addr<Recorder>,
) -> SubscriptionId {
    broker
        .send(Subscribe::new(topic.clone(), recorder.clone().recipient()))
        .await
        .expect("the broker runs")
        .expect("the subscription is accepted")
}

pub async fn seen(recorder: &Addr<Recorder>) -> Vec<Seen> {
    recorder.send(Snapshot).await.expect("the recorder runs")
}

/// The event names a recorder saw on `topic`, in order.
pub async fn names_on(recorder: &Addr<Recorder>, topic: &Topic) -> Vec<String> {
    seen(recorder)
        .await
        .into_iter()
        .filter(|seen| &seen.topic == topic)
        .map(|seen| seen.event.name.as_str().to_owned())
        .collect()
}

/// Waits until `check` holds, or panics after [`PATIENCE`] with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        actix_rt::time::sleep(POLL).await;
    }
}

/// Waits until `recorder` has seen at least `count` deliveries.
pub async fn wait_for_count(recorder: &Addr<Recorder>, count: usize) -> Vec<Seen> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = seen(recorder).await;
        if seen.len() >= count {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {count} deliveries, got {}",
            seen.len()
        );
        actix_rt::time::sleep(POLL).await;
    }
}

/// A task event whose title is `title`.
pub fn task_event(title: &str) -> ProjectsEvent {
    let task = TaskPayload {
        uuid: Uuid::new_v4(),
        title: title.into(),
    };
    ProjectsEvent::new(EventName::TaskCreated, Payload::Task(task))
}

/// An embed event carrying a number.
pub fn numbered(n: u64) -> ProjectsEvent {
    let mut payload = Map::new();
    payload.insert("n".into(), json!(n));
    ProjectsEvent::new(EventName::Saved, Payload::Embed(payload))
}

/// The number an event made by [`numbered`] carries.
pub fn number_of(event: &ProjectsEvent) -> u64 {
    match &event.payload {
        Payload::Embed(map) => map
            .get("n")
            .and_then(|n| n.as_u64())
            .expect("a numbered event"),
        other => panic!("not a numbered event: {other:?}"),
    }
}

/// A broker, a notifier publishing to it, and a bridge joining it to Redis.
pub struct Node {
    pub broker: Addr<TopicBroker>,
    pub notifier: Addr<ProjectsNotifier>,
    pub bridge: Addr<RedisBridge>,
    barrier: Addr<Recorder>,
    marks: AtomicU64,
}

/// The topic that [`Node::settle`] sends its markers on.
pub fn barrier_topic() -> Topic {
    Topic::embed("test-barrier").expect("a valid embed topic")
}

impl Node {
    /// Starts a node whose bridge uses `config`.
    pub async fn start(config: BridgeConfig) -> Node {
        let broker = TopicBroker::default().start();
        let notifier = ProjectsNotifier::new(broker.clone()).start();
        let bridge = RedisBridge::connect(broker.clone(), config)
            .await
            .expect("the bridge connects");
        let barrier = recorder(&broker, &[barrier_topic()]).await;
        Node {
            broker,
            notifier,
            bridge,
            barrier,
            marks: AtomicU64::new(0),
        }
    }

    pub async fn stats(&self) -> BridgeStats {
        self.bridge
            .send(GetBridgeStats)
            .await
            .expect("the bridge runs")
    }

    /// The counters once nothing waits to be sent or acknowledged: a
    /// message can reach another node before its sender has read Redis's
    /// answer.
    pub async fn drained(&self) -> BridgeStats {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stats = self.stats().await;
            if stats.queued == 0 && stats.in_flight == 0 {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge never drained: {stats:?}"
            );
            actix_rt::time::sleep(POLL).await;
        }
    }

    pub async fn stop(&self) -> BridgeStats {
        self.bridge.send(StopBridge).await.expect("the bridge runs")
    }

    /// Publishes `event` on `topic` here and waits until this broker has
    /// handled it.
    pub async fn publish(&self, topic: &Topic, event: ProjectsEvent) {
        self.broker
            .send(Publish::new(topic.clone(), event))
            .await
            .expect("the broker runs")
            .expect("the publish is accepted");
    }

    /// Waits until everything this node published so far, on its broker
    /// or through its notifier, has reached the brokers of `others`: a
    /// marker sent after it has, and each origin's messages arrive in
    /// order.
    pub async fn settle(&self, others: &[&Node]) {
        let mark = 1_000_000 + self.marks.fetch_add(1, Ordering::Relaxed);
        self.notifier
            .send(marker(mark))
            .await
            .expect("the notifier runs")
            .expect("the marker is routed");
        for other in others {
            let barrier = other.barrier.clone();
            eventually("the barrier marker crosses", || {
                let barrier = barrier.clone();
                async move {
                    seen(&barrier)
                        .await
                        .iter()
                        .any(|seen| number_of(&seen.event) == mark)
                }
            })
            .await;
        }
    }
}

/// A mutation carrying number `mark` on the [`barrier_topic`].
pub fn marker(mark: u64) -> Mutation {
    let mut payload = Map::new();
    payload.insert("n".into(), json!(mark));
    Mutation::embed(barrier_topic(), EventName::Saved, payload).expect("a valid embed mutation")
}

/// Reads the lines a child process prints, with a deadline per line.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
}

impl Lines {
    pub fn new(stdout: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// The next line for which `wanted` holds, skipping others; panics
    /// after [`PATIENCE`].
    pub fn expect(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("gave up waiting for {what}"),
            }
        }
    }

    /// Every line that comes within `wait`.
    pub fn drain(&self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut lines = Vec::new();
        while let Ok(line) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            lines.push(line);
        }
        lines
    }
}

/// Records the gaps a bridge reports.
#[derive(Default)]
pub struct GapLog(Vec<GapDetected>);

impl Actor for GapLog {
    type Context = Context<Self>;
}

impl Handler<GapDetected> for GapLog {
    type Result = ();

    fn handle(&mut self, gap: GapDetected, _: &mut Context<Self>) {
        self.0.push(gap);
    }
}

pub struct Gaps;

impl Message for Gaps {
    type Result = Vec<GapDetected>;
}

impl Handler<Gaps> for GapLog {
    type Result = MessageResult<Gaps>;

    fn handle(&mut self, _: Gaps, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.0.clone())
    }
}
