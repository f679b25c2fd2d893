//! The cross-node row of the benchmark table: events per second, and the
//! latency from a publish on node A to the delivery on node B, through a
//! `redis-server` this benchmark starts on a free loopback port.
//!
//! Run it with `cargo bench --bench cross_node --features redis`. Node A
//! and node B each run their broker and bridge on an arbiter (a thread) of
//! their own, in one process; Redis is a separate process. Two runs:
//!
//! - *burst*: 50,000 events published as fast as the publisher can, so the
//!   rate is the bridge's throughput and the latency includes queueing;
//! - *paced*: 2,000 events, one per millisecond, so the latency is that of
//!   one event crossing an idle path.

#[path = "../tests/cluster_support/mod.rs"]
mod cluster_support;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix::prelude::*;
use projects_pubsub::cluster::{GetBridgeStats, RedisBridge, StopBridge};
use projects_pubsub::{
    Delivery, EventName, Payload, ProjectsEvent, Publish, Subscribe, Topic, TopicBroker,
};
use serde_json::{Map, json};
use tokio::sync::oneshot;

use cluster_support::{RedisServer, config, unique_prefix};

const BURST: usize = 50_000;
const PACED: usize = 2_000;
const WARM_UP: usize = 2_000;

/// The clock every timestamp is read from.
fn clock() -> &'static Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now)
}

fn stamped() -> ProjectsEvent {
    let mut payload = Map::new();
    let now = clock().elapsed().as_nanos() as u64;
    payload.insert("t".into(), json!(now));
    ProjectsEvent::new(EventName::Saved, Payload::Embed(payload))
}

/// Node B's subscriber: records how long each event took to reach it.
struct Stopwatch {
    latencies: Vec<Duration>,
    expect: usize,
    done: Option<oneshot::Sender<(Vec<Duration>, Instant)>>,
}

impl Actor for Stopwatch {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Stopwatch {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        let now = clock().elapsed();
        if let Payload::Embed(map) = &delivery.event().payload {
            let sent = map.get("t").and_then(|t| t.as_u64()).unwrap_or(0);
            self.latencies
                .push(now.saturating_sub(Duration::from_nanos(sent)));
        }
        if self.latencies.len() == self.expect {
            if let Some(done) = self.done.take() {
                let _ = done.send((std::mem::take(&mut self.latencies), Instant::now()));
            }
        }
    }
}

/// Expects `count` events on node B's stopwatch.
struct Expect(usize, oneshot::Sender<(Vec<Duration>, Instant)>);

impl Message for Expect {
    type Result = ();
}

impl Handler<Expect> for Stopwatch {
    type Result = ();

    fn handle(&mut self, Expect(count, done): Expect, _: &mut Context<Self>) {
        self.latencies.clear();
        self.expect = count;
        self.done = Some(done);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn show(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros >= 10_000 {
        format!("{:.1} ms", micros as f64 / 1000.0)
    } else {
        format!("{micros} µs")
    }
}

struct Row {
    run: &'static str,
    events: usize,
    rate: f64,
    latencies: Vec<Duration>,
}

impl Row {
    fn print(mut self) {
        self.latencies.sort();
        println!(
            "| cross-node, {:<22} | {:>7} | {:>10.0} | {:>9} | {:>9} | {:>9} |",
            self.run,
            self.events,
            self.rate,
            show(percentile(&self.latencies, 0.50)),
            show(percentile(&self.latencies, 0.99)),
            show(*self.latencies.last().unwrap_or(&Duration::ZERO)),
        );
    }
}

/// Starts a node's broker and bridge on an arbiter of their own.
async fn node(
    arbiter: &Arbiter,
    redis: &RedisServer,
    prefix: &str,
    name: &str,
) -> (Addr<TopicBroker>, Addr<RedisBridge>) {
    let broker = TopicBroker::start_in_arbiter(&arbiter.handle(), |_| TopicBroker::default());
    let config = config(redis, prefix, name).outage_queue(BURST * 2);
    let (tx, rx) = oneshot::channel();
    let for_bridge = broker.clone();
    arbiter.spawn(async move {
        let _ = tx.send(RedisBridge::connect(for_bridge, config).await);
    });
    let bridge = rx
        .await
        .expect("the arbiter runs")
        .expect("the bridge connects");
    (broker, bridge)
}

async fn measure(
    a: &Addr<TopicBroker>,
    stopwatch: &Addr<Stopwatch>,
    topic: &Topic,
    count: usize,
    pace: Option<Duration>,
) -> (Vec<Duration>, f64) {
    let (done, arrived) = oneshot::channel();
    stopwatch
        .send(Expect(count, done))
        .await
        .expect("the stopwatch runs");

    let start = Instant::now();
    let mut ticks = pace.map(actix_rt::time::interval);
    for _ in 0..count {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        a.do_send(Publish::new(topic.clone(), stamped()));
    }
    let (latencies, end) = match actix_rt::time::timeout(Duration::from_secs(300), arrived).await {
        Ok(Ok(result)) => result,
        _ => panic!("node B did not receive the {count} events within five minutes"),
    };
    let rate = count as f64 / end.duration_since(start).as_secs_f64();
    (latencies, rate)
}

fn main() {
    clock();
    let redis = RedisServer::start();
    let prefix = unique_prefix("bench");
    let system = System::new();

    system.block_on(async {
        let arbiter_a = Arbiter::new();
        let arbiter_b = Arbiter::new();
        let (a, bridge_a) = node(&arbiter_a, &redis, &prefix, "bench-a").await;
        let (b, bridge_b) = node(&arbiter_b, &redis, &prefix, "bench-b").await;

        let topic = Topic::embed("bench").expect("a valid topic");
        let stopwatch = Stopwatch::start_in_arbiter(&arbiter_b.handle(), |_| Stopwatch {
            latencies: Vec::new(),
            expect: usize::MAX,
            done: None,
        });
        b.send(Subscribe::new(topic.clone(), stopwatch.clone().recipient()))
            .await
            .expect("the broker runs")
            .expect("the subscription is accepted");

        measure(&a, &stopwatch, &topic, WARM_UP, None).await;
        let (burst, burst_rate) = measure(&a, &stopwatch, &topic, BURST, None).await;
        let pace = Duration::from_millis(1);
        let (paced, paced_rate) = measure(&a, &stopwatch, &topic, PACED, Some(pace)).await;

        let sent = bridge_a.send(GetBridgeStats).await.expect("bridge A runs");
        let got = bridge_b.send(GetBridgeStats).await.expect("bridge B runs");

        println!(
            "cross-node: publish on node A -> Redis {} on loopback -> delivery on node B",
            redis_version()
        );
        println!(
            "| {:<34} | {:>7} | {:>10} | {:>9} | {:>9} | {:>9} |",
            "run", "events", "events/s", "p50", "p99", "max"
        );
        let widths = [36, 9, 12, 11, 11, 11];
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        println!("|{}|", rule.join("|"));
        Row {
            run: "burst",
            events: BURST,
            rate: burst_rate,
            latencies: burst,
        }
        .print();
        Row {
            run: "paced, 1 per ms",
            events: PACED,
            rate: paced_rate,
            latencies: paced,
        }
        .print();
        println!(
            "node A sent {} messages ({} dropped, {} lost); node B received {} ({} gaps)",
            sent.published, sent.dropped, sent.lost, got.received, got.gaps
        );

        let _ = bridge_a.send(StopBridge).await;
        let _ = bridge_b.send(StopBridge).await;
        arbiter_a.stop();
        arbiter_b.stop();
    });
}

fn redis_version() -> String {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| {
            text.split_whitespace()
                .find_map(|word| word.strip_prefix("v=").map(str::to_owned))
        })
        .unwrap_or_else(|| "(unknown version)".to_owned())
}
