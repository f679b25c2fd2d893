#![cfg(feature = "redis")]
//! Redis goes away and comes back: the test kills its own `redis-server`
//! with SIGKILL in the middle of a stream of events and starts it again
//! on the same port.

mod cluster_support;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use projects_pubsub::Publish;
use projects_pubsub::Topic;
use projects_pubsub::cluster::{BridgeStats, GapDetected, NodeId};

use cluster_support::{
    GapLog, Gaps, Node, RedisServer, config, eventually, listen, number_of, numbered, seen,
    unique_prefix, wait_for_count,
};

/// Every message a bridge numbered is in exactly one place.
fn assert_accounted(stats: &BridgeStats) {
    let waiting = stats.queued as u64 + stats.in_flight as u64;
    assert_eq!(
        stats.sequenced,
        stats.published + stats.lost + stats.dropped + waiting,
        "the counts do not add up: {stats:?}"
    );
}

async fn wait_down(node: &Node, name: &str) {
    eventually(&format!("{name} sees the link down"), || async {
        !node.stats().await.connected
    })
    .await;
}

#[actix_rt::test]
async fn redis_killed_mid_stream_comes_back_and_the_outage_queue_arrives() {
    let mut redis = RedisServer::start();
    let prefix = unique_prefix("kill");
    let a = Node::start(config(&redis, &prefix, "a")).await;
    let b = Node::start(config(&redis, &prefix, "b")).await;
    let topic = Topic::embed("stream").unwrap();
    let here = listen(&a.broker, &topic).await;
    let there = listen(&b.broker, &topic).await;
    let mut next = 0;

    // A stream that crosses while the link is up.
    for _ in 0..100 {
        a.publish(&topic, numbered(next)).await;
        next += 1;
    }
    wait_for_count(&there, 100).await;

    // Redis dies in the middle of a burst, and the stream goes on.
    for _ in 0..50 {
        a.broker
            .do_send(Publish::new(topic.clone(), numbered(next)));
        next += 1;
    }
    redis.kill9();
    for _ in 0..50 {
        a.publish(&topic, numbered(next)).await;
        next += 1;
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    wait_down(&a, "a").await;
    wait_down(&b, "b").await;

    // Published while Redis is away: delivered here at once, queued for b.
    let outage = next..next + 100;
    for _ in outage.clone() {
        a.publish(&topic, numbered(next)).await;
        next += 1;
    }
    assert_eq!(
        wait_for_count(&here, next as usize).await.len(),
        next as usize
    );
    let during = a.stats().await;
    assert!(during.queued >= 100, "the outage events wait: {during:?}");
    assert_accounted(&during);

    redis.restart();
    eventually("b receives the last event of the outage", || async {
        seen(&there)
            .await
            .last()
            .is_some_and(|last| number_of(&last.event) == next - 1)
    })
    .await;

    let numbers: Vec<u64> = seen(&there)
        .await
        .iter()
        .map(|seen| number_of(&seen.event))
        .collect();
    assert!(
        numbers.windows(2).all(|pair| pair[0] < pair[1]),
        "events arrived out of order or twice"
    );
    for n in outage {
        assert!(
            numbers.contains(&n),
            "event {n}, published during the outage, is missing"
        );
    }
    for n in 0..100 {
        assert!(
            numbers.contains(&n),
            "event {n}, sent before the outage, is missing"
        );
    }

    let sent = a.drained().await;
    assert!(sent.connected && sent.reconnects >= 1, "{sent:?}");
    assert_eq!(sent.sequenced, next, "one message per publish");
    assert_eq!((sent.queued, sent.in_flight, sent.dropped), (0, 0, 0));
    assert_accounted(&sent);

    let got = b.stats().await;
    assert!(got.reconnects >= 1);
    assert_eq!(got.received, numbers.len() as u64);
    assert_eq!(
        got.received + got.gaps,
        next,
        "b sees what it missed as a gap: {got:?}"
    );
    assert_eq!(
        seen(&here).await.len(),
        next as usize,
        "a got an echo of its own"
    );
}

#[actix_rt::test]
async fn a_full_outage_queue_drops_the_oldest_and_the_other_node_sees_the_gap() {
    let mut redis = RedisServer::start();
    let prefix = unique_prefix("full");
    let gaps = GapLog::default().start();
    let a = Node::start(config(&redis, &prefix, "a").outage_queue(5)).await;
    let b = Node::start(config(&redis, &prefix, "b").on_gap(gaps.clone().recipient())).await;
    let topic = Topic::embed("stream").unwrap();
    let there = listen(&b.broker, &topic).await;

    a.publish(&topic, numbered(0)).await;
    wait_for_count(&there, 1).await;

    redis.kill9();
    wait_down(&a, "a").await;
    for n in 1..=12 {
        a.publish(&topic, numbered(n)).await;
    }
    let during = a.stats().await;
    assert_eq!((during.queued, during.dropped), (5, 7));
    assert_accounted(&during);

    redis.restart();
    let seen = wait_for_count(&there, 6).await;
    let numbers: Vec<u64> = seen.iter().map(|seen| number_of(&seen.event)).collect();
    assert_eq!(numbers, [0, 8, 9, 10, 11, 12], "the oldest were dropped");

    let sent = a.drained().await;
    assert_eq!((sent.published, sent.dropped, sent.queued), (6, 7, 0));
    assert_accounted(&sent);
    assert_eq!(b.stats().await.gaps, 7);
    assert_eq!(
        gaps.send(Gaps).await.unwrap(),
        [GapDetected {
            origin: NodeId::new("a").unwrap(),
            last: 1,
            seq: 9,
            missed: 7,
        }]
    );
}

/// Keeps the warnings and notices the crate logs, for the test below.
struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) && record.target().starts_with("projects_pubsub") {
            let mut lines = self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            lines.push((record.level(), record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

fn captured() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        if log::set_logger(capture).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
        capture
    })
}

#[actix_rt::test]
async fn an_outage_logs_one_warning_and_one_notice_however_many_retries() {
    let capture = captured();
    let mut redis = RedisServer::start();
    let prefix = unique_prefix("logs");
    let a = Node::start(config(&redis, &prefix, "logger-a")).await;

    redis.kill9();
    wait_down(&a, "logger-a").await;
    // Long enough for several failed reconnect attempts.
    actix_rt::time::sleep(Duration::from_millis(1_500)).await;
    redis.restart();
    eventually("logger-a is linked again", || async {
        a.stats().await.connected
    })
    .await;

    let lines = capture
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let mine: Vec<&(log::Level, String)> = lines
        .iter()
        .filter(|(_, text)| text.starts_with("node logger-a:"))
        .collect();
    let warnings: Vec<_> = mine
        .iter()
        .filter(|(level, _)| *level == log::Level::Warn)
        .collect();
    let notices: Vec<_> = mine
        .iter()
        .filter(|(level, _)| *level == log::Level::Info)
        .collect();
    assert_eq!(warnings.len(), 1, "one warning per outage: {mine:?}");
    assert!(warnings[0].1.contains("is down"), "{mine:?}");
    assert_eq!(notices.len(), 1, "one notice when back: {mine:?}");
    assert!(notices[0].1.contains("is back"), "{mine:?}");
}

#[actix_rt::test]
async fn a_redis_that_stops_answering_is_found_by_the_heartbeat() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("frozen");
    let second = Duration::from_secs(1);
    let quick = |node: &str| config(&redis, &prefix, node).response_timeout(second);
    let a = Node::start(quick("a")).await;
    let b = Node::start(quick("b")).await;
    let topic = Topic::embed("stream").unwrap();
    let there = listen(&b.broker, &topic).await;
    a.publish(&topic, numbered(0)).await;
    wait_for_count(&there, 1).await;

    // No connection closes: only the heartbeat can tell.
    redis.pause();
    wait_down(&a, "a").await;
    wait_down(&b, "b").await;
    for n in 1..=3 {
        a.publish(&topic, numbered(n)).await;
    }
    redis.resume();

    let seen = wait_for_count(&there, 4).await;
    let numbers: Vec<u64> = seen.iter().map(|seen| number_of(&seen.event)).collect();
    assert_eq!(numbers, [0, 1, 2, 3]);
    let sent = a.drained().await;
    assert!(sent.connected && sent.reconnects >= 1, "{sent:?}");
    assert_accounted(&sent);
}
