//! The guarantees of the `TopicBroker` and `ProjectsNotifier` actors, each
//! pinned by a test named after it, with real actors.
//!
//! "Did not arrive" is always shown the same way: a later marker goes
//! through the same path, and once it has arrived, whatever was sent
//! before it would have arrived too.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use actix::prelude::*;
use projects_pubsub::{
    BrokerConfig, BrokerStats, Delivery, EventName, GetStats, Mutation, NotifierConfig,
    NotifyError, Overflow, ProjectPayload, ProjectsEvent, ProjectsNotifier, Publish, PublishError,
    PublishReceipt, Subscribe, SubscribeError, SubscribeOptions, SubscriberCount, SubscriberId,
    SubscriptionId, Topic, TopicBroker, TopicCount, Unsubscribe, UnsubscribeAll,
};
use tokio::sync::watch;
use uuid::Uuid;

use common::{
    LetGo, Log, Recorder, Seen, Stop, eventually, marker_mutation, next_marker, org, recorder,
    settle, subscribe, subscriber, task, task_event, title,
};

/// Publishes a task event titled `title` to `topic` and returns the receipt.
async fn publish(broker: &Addr<TopicBroker>, topic: &Topic, title: &str) -> PublishReceipt {
    broker
        .send(Publish::new(topic.clone(), task_event(title)))
        .await
        .expect("the broker is running")
        .expect("the publish is accepted")
}

async fn subscriber_count(broker: &Addr<TopicBroker>, topic: &Topic) -> usize {
    broker.send(SubscriberCount(topic.clone())).await.unwrap()
}

async fn topic_count(broker: &Addr<TopicBroker>) -> usize {
    broker.send(TopicCount).await.unwrap()
}

fn titles(seen: &[Seen]) -> Vec<String> {
    seen.iter().map(|s| title(s).to_owned()).collect()
}

/// Reads the broker's counters and checks the accounting they document:
/// every event offered was delivered, missed, undeliverable, or waits.
async fn accounted(broker: &Addr<TopicBroker>) -> BrokerStats {
    let stats = broker.send(GetStats).await.unwrap();
    assert_eq!(
        stats.offered,
        stats.deliveries + stats.missed_overflow + stats.undeliverable + stats.backlog,
        "{stats:?}"
    );
    stats
}

fn bound(n: usize) -> SubscribeOptions {
    SubscribeOptions::bounded(NonZeroUsize::new(n).unwrap())
}

// ---- Subscribing and unsubscribing ------------------------------------------------------------

#[actix::test]
async fn an_awaited_subscribe_then_publish_reaches_the_subscriber() {
    let broker = TopicBroker::default().start();
    let (_view, log) = subscriber(&broker, &Topic::tasks()).await;

    let receipt = publish(&broker, &Topic::tasks(), "Paint").await;

    assert_eq!(receipt.delivered, 1);
    assert_eq!(receipt.seq, 1);
    log.wait_len(1).await;
    let seen = assert_one!(log, Topic::tasks(), EventName::TaskCreated);
    assert_eq!(title(&seen), "Paint");
    assert_eq!(seen.seq, 1);
    assert_eq!(seen.missed, 0);
}

#[actix::test]
async fn unsubscribing_by_id_stops_delivery() {
    let broker = TopicBroker::default().start();
    let (view, log) = recorder();
    let id = subscribe(&broker, &Topic::tasks(), &view).await;
    subscribe(&broker, &Topic::all(), &view).await;
    publish(&broker, &Topic::tasks(), "before").await;

    assert!(broker.send(Unsubscribe(id)).await.unwrap());
    let receipt = publish(&broker, &Topic::tasks(), "after").await;
    settle(&broker, &Topic::all(), &[&log]).await;

    assert_eq!(receipt.delivered, 0);
    assert_eq!(titles(&log.events()), ["before"]);
    assert!(!broker.send(Unsubscribe(id)).await.unwrap(), "already gone");
    assert_eq!(subscriber_count(&broker, &Topic::tasks()).await, 0);
}

#[actix::test]
async fn unsubscribe_all_removes_every_subscription_of_one_recipient_only() {
    let broker = TopicBroker::default().start();
    let (leaver, left) = recorder();
    let (stayer, stays) = recorder();
    let topics = [Topic::all(), Topic::tasks(), Topic::project(Uuid::new_v4())];
    for topic in &topics {
        subscribe(&broker, topic, &leaver).await;
        subscribe(&broker, topic, &stayer).await;
    }

    let removed = broker
        .send(UnsubscribeAll(SubscriberId::of_addr(&leaver)))
        .await
        .unwrap();

    assert_eq!(removed, 3);
    for topic in &topics {
        assert_eq!(
            publish(&broker, topic, "after").await.delivered,
            1,
            "{topic}"
        );
        assert_eq!(subscriber_count(&broker, topic).await, 1);
    }
    // The leaver is still alive and reachable on a topic of its own.
    subscribe(&broker, &Topic::templates(), &leaver).await;
    settle(&broker, &Topic::templates(), &[&left]).await;
    settle(&broker, &Topic::all(), &[&stays]).await;
    assert_nothing!(left);
    assert_eq!(titles(&stays.events()), ["after", "after", "after"]);
    let again = broker
        .send(UnsubscribeAll(SubscriberId::of_addr(&stayer)))
        .await;
    assert_eq!(again.unwrap(), 3);
}

#[actix::test]
async fn a_subscriber_that_stops_itself_is_pruned_without_unsubscribe() {
    let broker = TopicBroker::default().start();
    let (view, log) = subscriber(&broker, &Topic::all()).await;
    subscribe(&broker, &Topic::tasks(), &view).await;
    assert_eq!(topic_count(&broker).await, 2);

    view.send(Stop).await.unwrap();
    log.wait_stopped().await;

    // The test still holds an address: pruning does not wait for it.
    eventually("the stopped subscriber to be pruned", || async {
        subscriber_count(&broker, &Topic::all()).await == 0
    })
    .await;
    assert_eq!(subscriber_count(&broker, &Topic::tasks()).await, 0);
    assert_eq!(topic_count(&broker).await, 0);
    assert_eq!(publish(&broker, &Topic::all(), "after").await.delivered, 0);
    assert!(!view.connected(), "the address outlives its stopped actor");
    assert_eq!(accounted(&broker).await.subscriptions_pruned, 2);
}

#[actix::test]
async fn a_subscriber_whose_addresses_are_all_dropped_stops_and_is_pruned() {
    let broker = TopicBroker::default().start();
    let (view, log) = subscriber(&broker, &Topic::all()).await;
    publish(&broker, &Topic::all(), "while alive").await;
    log.wait_len(1).await;

    // The broker holds the subscriber weakly, so dropping the last address
    // lets it stop.
    drop(view);
    log.wait_stopped().await;

    eventually("the dropped subscriber to be pruned", || async {
        subscriber_count(&broker, &Topic::all()).await == 0
    })
    .await;
    assert_eq!(topic_count(&broker).await, 0);
    assert_eq!(publish(&broker, &Topic::all(), "after").await.delivered, 0);
    assert_eq!(titles(&log.events()), ["while alive"]);
    accounted(&broker).await;
}

#[actix::test]
async fn with_a_zero_hold_a_dropped_subscriber_stops_once_the_broker_is_idle() {
    let config = BrokerConfig::default().hold(std::time::Duration::ZERO);
    let broker = TopicBroker::new(config).start();
    let (view, log) = subscriber(&broker, &Topic::all()).await;
    publish(&broker, &Topic::all(), "while alive").await;
    log.wait_len(1).await;

    drop(view);
    log.wait_stopped().await;

    assert_eq!(publish(&broker, &Topic::all(), "after").await.delivered, 0);
    assert_eq!(titles(&log.events()), ["while alive"]);
    accounted(&broker).await;
}

#[actix::test]
async fn subscribing_one_recipient_twice_to_a_topic_returns_the_same_id_and_delivers_once() {
    let broker = TopicBroker::default().start();
    let (view, log) = recorder();

    let first = subscribe(&broker, &Topic::tasks(), &view).await;
    let second = subscribe(&broker, &Topic::tasks(), &view).await;
    let via_recipient = broker
        .send(Subscribe::new(Topic::tasks(), view.clone().recipient()))
        .await
        .unwrap()
        .unwrap();
    let other_topic = subscribe(&broker, &Topic::all(), &view).await;

    assert_eq!(first, second);
    assert_eq!(first, via_recipient);
    assert_ne!(first, other_topic);
    assert_eq!(subscriber_count(&broker, &Topic::tasks()).await, 1);
    assert_eq!(publish(&broker, &Topic::tasks(), "once").await.delivered, 1);
    settle(&broker, &Topic::tasks(), &[&log]).await;
    assert_eq!(titles(&log.events()), ["once"]);

    // One unsubscribe removes it: there never were two.
    assert!(broker.send(Unsubscribe(first)).await.unwrap());
    assert_eq!(subscriber_count(&broker, &Topic::tasks()).await, 0);
}

// ---- Several instances of one actor type ------------------------------------------------------

#[actix::test]
async fn three_actors_of_the_same_type_on_one_topic_each_get_the_event() {
    let broker = TopicBroker::default().start();
    let (_a, a) = subscriber(&broker, &Topic::all()).await;
    let (_b, b) = subscriber(&broker, &Topic::all()).await;
    let (_c, c) = subscriber(&broker, &Topic::all()).await;

    let receipt = publish(&broker, &Topic::all(), "for all three").await;
    settle(&broker, &Topic::all(), &[&a, &b, &c]).await;

    assert_eq!(receipt.delivered, 3);
    let seen: Vec<Seen> = [&a, &b, &c]
        .iter()
        .map(|log| assert_one!(log, Topic::all(), EventName::TaskCreated))
        .collect();
    // One event, shared by the three deliveries, never copied.
    assert!(Arc::ptr_eq(&seen[0].event, &seen[1].event));
    assert!(Arc::ptr_eq(&seen[1].event, &seen[2].event));
}

#[actix::test]
async fn publish_excluding_one_instance_skips_that_instance_only() {
    let broker = TopicBroker::default().start();
    let (_a, a) = subscriber(&broker, &Topic::all()).await;
    let (b_addr, b) = subscriber(&broker, &Topic::all()).await;
    let (_c, c) = subscriber(&broker, &Topic::all()).await;

    let receipt = broker
        .send(
            Publish::new(Topic::all(), task_event("not for b"))
                .excluding(SubscriberId::of_addr(&b_addr)),
        )
        .await
        .unwrap()
        .unwrap();
    settle(&broker, &Topic::all(), &[&a, &b, &c]).await;

    assert_eq!(receipt.delivered, 2);
    assert_eq!(receipt.excluded, 1);
    assert_nothing!(b, "the excluded instance");
    assert_eq!(titles(&a.events()), ["not for b"]);
    assert_eq!(titles(&c.events()), ["not for b"]);
}

#[actix::test]
async fn mutation_excluding_one_instance_skips_it_on_every_topic() {
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let id = Uuid::new_v4();
    let topics = [Topic::all(), Topic::project(id), Topic::templates()];
    let views: Vec<(Addr<Recorder>, Log)> = (0..3).map(|_| recorder()).collect();
    for (addr, _) in &views {
        for topic in &topics {
            subscribe(&broker, topic, addr).await;
        }
    }
    let b = SubscriberId::of_addr(&views[1].0);

    let template = ProjectPayload::new(id, "Tpl", true);
    let mutation = Mutation::project(EventName::ProjectUpdated, template)
        .unwrap()
        .excluding(b);
    assert_eq!(mutation.origin(), Some(b));
    let receipt = notifier.send(mutation).await.unwrap().unwrap();

    assert_eq!(receipt.topics, 3);
    assert_eq!(receipt.delivered, 6);
    for topic in &topics {
        let name = next_marker();
        notifier.do_send(marker_mutation(topic, &name));
        for (_, log) in &views {
            log.wait_marker(&name).await;
        }
    }
    assert_nothing!(views[1].1, "the excluded instance");
    for (_, log) in [&views[0], &views[2]] {
        let mut got: Vec<Topic> = log.events().into_iter().map(|s| s.topic).collect();
        got.sort();
        let mut expected = topics.to_vec();
        expected.sort();
        assert_eq!(got, expected);
    }
}

// ---- Topics come and go with their subscribers ------------------------------------------------

#[actix::test]
async fn a_topic_whose_last_subscriber_leaves_is_dropped() {
    let broker = TopicBroker::default().start();
    let (first, _) = recorder();
    let (second, _) = recorder();
    let a = subscribe(&broker, &Topic::tasks(), &first).await;
    let b = subscribe(&broker, &Topic::tasks(), &second).await;
    assert_eq!(topic_count(&broker).await, 1);

    broker.send(Unsubscribe(a)).await.unwrap();
    assert_eq!(topic_count(&broker).await, 1, "one subscriber is left");
    broker.send(Unsubscribe(b)).await.unwrap();

    assert_eq!(topic_count(&broker).await, 0);
    assert_eq!(subscriber_count(&broker, &Topic::tasks()).await, 0);
    // A new subscriber starts a new topic, numbered from 1 again.
    let (_third, log) = subscriber(&broker, &Topic::tasks()).await;
    assert_eq!(publish(&broker, &Topic::tasks(), "fresh").await.seq, 1);
    log.wait_len(1).await;
}

#[actix::test]
async fn publishing_to_a_topic_nobody_subscribed_to_delivers_zero_and_creates_nothing() {
    let broker = TopicBroker::default().start();
    let (_other, log) = subscriber(&broker, &Topic::all()).await;
    let nobody = Topic::project(Uuid::new_v4());

    let receipt = publish(&broker, &nobody, "into the void").await;

    assert_eq!(
        receipt,
        PublishReceipt::default(),
        "delivered 0, seq 0, not an error"
    );
    assert_eq!(topic_count(&broker).await, 1);
    assert_eq!(subscriber_count(&broker, &nobody).await, 0);
    // Nothing was kept for a later subscriber either.
    let (_late, late) = subscriber(&broker, &nobody).await;
    assert_eq!(publish(&broker, &nobody, "now").await.seq, 1);
    settle(&broker, &nobody, &[&late]).await;
    assert_eq!(titles(&late.events()), ["now"]);
    settle(&broker, &Topic::all(), &[&log]).await;
    assert_nothing!(log);
}

// ---- Subscribing from inside a handler --------------------------------------------------------

/// A live view that, in one handler, subscribes itself and then reports a
/// change, both with `do_send`: the pattern of a page that mounts and saves.
struct Joiner {
    broker: Addr<TopicBroker>,
    notifier: Addr<ProjectsNotifier>,
    log: Log,
}

impl Actor for Joiner {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Joiner {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        self.log.push(Seen::of(0, &delivery));
    }
}

struct Join(Topic, Mutation);

impl Message for Join {
    type Result = ();
}

impl Handler<Join> for Joiner {
    type Result = ();

    fn handle(&mut self, Join(topic, mutation): Join, ctx: &mut Context<Self>) {
        self.broker
            .do_send(Subscribe::new(topic, ctx.address().recipient()));
        self.notifier.do_send(mutation);
    }
}

async fn subscribe_and_mutate_in_one_handler(
    broker: Addr<TopicBroker>,
    notifier: Addr<ProjectsNotifier>,
) {
    let log = Log::new();
    let id = Uuid::new_v4();
    let joiner = Joiner {
        broker,
        notifier,
        log: log.clone(),
    }
    .start();

    let project = ProjectPayload::new(id, "Mine", false);
    let mutation = Mutation::project(EventName::ProjectUpdated, project).unwrap();
    joiner
        .send(Join(Topic::project(id), mutation))
        .await
        .unwrap();

    log.wait_len(1).await;
    let seen = assert_one!(log, Topic::project(id), EventName::ProjectUpdated);
    assert_eq!(seen.payload.project_uuid(), Some(id));
}

#[actix::test]
async fn an_actor_that_subscribes_and_then_sends_a_mutation_in_one_handler_receives_it() {
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();

    subscribe_and_mutate_in_one_handler(broker, notifier).await;
}

#[actix::test]
async fn subscribing_and_mutating_in_one_handler_works_with_the_default_instances() {
    subscribe_and_mutate_in_one_handler(
        TopicBroker::from_registry(),
        ProjectsNotifier::from_registry(),
    )
    .await;
}

// ---- Volume and order -------------------------------------------------------------------------

#[actix::test]
async fn a_thousand_subscribers_each_get_every_event_exactly_once() {
    const SUBSCRIBERS: usize = 1_000;
    const EVENTS: usize = 20;
    let broker = TopicBroker::default().start();
    let log = Log::new();
    let mut views = Vec::with_capacity(SUBSCRIBERS);
    for who in 0..SUBSCRIBERS {
        let view = Recorder::tagged(who, &log).start();
        subscribe(&broker, &Topic::all(), &view).await;
        views.push(view);
    }

    for n in 0..EVENTS {
        let receipt = publish(&broker, &Topic::all(), &n.to_string()).await;
        assert_eq!(receipt.delivered, SUBSCRIBERS);
    }
    log.wait_len(SUBSCRIBERS * EVENTS).await;

    let mut by_subscriber: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for seen in log.all() {
        by_subscriber
            .entry(seen.who)
            .or_default()
            .push(title(&seen).to_owned());
    }
    let expected: Vec<String> = (0..EVENTS).map(|n| n.to_string()).collect();
    assert_eq!(by_subscriber.len(), SUBSCRIBERS);
    for (who, got) in by_subscriber {
        assert_eq!(got, expected, "subscriber {who}");
    }
    // Nothing beyond: a last marker reaches each exactly once more.
    settle(&broker, &Topic::all(), &[&log]).await;
    log.wait_len(SUBSCRIBERS * (EVENTS + 1)).await;
    assert_eq!(log.events().len(), SUBSCRIBERS * EVENTS);
}

#[actix::test]
async fn ten_thousand_events_through_one_notifier_arrive_in_order_on_every_topic() {
    const EVENTS: usize = 10_000;
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let (library, log) = subscriber(&broker, &Topic::tasks()).await;
    subscribe(&broker, &Topic::all(), &library).await;

    for n in 0..EVENTS {
        notifier.do_send(Mutation::task(EventName::TaskCreated, task(&n.to_string())).unwrap());
    }
    log.wait_len(2 * EVENTS).await;

    let expected_titles: Vec<String> = (0..EVENTS).map(|n| n.to_string()).collect();
    let expected_seqs: Vec<u64> = (1..=EVENTS as u64).collect();
    for topic in [Topic::tasks(), Topic::all()] {
        let on_topic: Vec<Seen> = log.all().into_iter().filter(|s| s.topic == topic).collect();
        assert_eq!(
            titles(&on_topic),
            expected_titles,
            "payload order on {topic}"
        );
        let seqs: Vec<u64> = on_topic.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, expected_seqs, "sequence numbers on {topic}");
        assert!(on_topic.iter().all(|s| s.missed == 0));
    }
}

#[actix::test]
async fn fire_and_forget_and_awaited_mutations_keep_the_order_they_were_sent_in() {
    // The notifier sends fire-and-forget mutations to the broker in small
    // batches; an awaited one in between must neither overtake them nor be
    // overtaken, and its receipt means everything before it is delivered.
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let (_library, log) = subscriber(&broker, &Topic::tasks()).await;

    let mut sent = Vec::new();
    for round in 0..50 {
        for n in 0..round % 11 {
            let title = format!("{round}.{n}");
            notifier.do_send(Mutation::task(EventName::TaskCreated, task(&title)).unwrap());
            sent.push(title);
        }
        let title = format!("{round} awaited");
        let awaited = Mutation::task(EventName::TaskCreated, task(&title)).unwrap();
        let receipt = notifier.send(awaited).await.unwrap().unwrap();
        sent.push(title);

        assert_eq!(receipt.delivered, 1, "round {round}");
        settle(&broker, &Topic::tasks(), &[&log]).await;
        assert_eq!(
            titles(&log.events()),
            sent,
            "after the awaited mutation of round {round}"
        );
    }
}

#[actix::test]
async fn a_notifier_that_stops_still_sends_the_mutations_it_took() {
    let broker = TopicBroker::default().start();
    let (_library, log) = subscriber(&broker, &Topic::tasks()).await;
    let notifier = ProjectsNotifier::new(broker.clone()).start();

    for n in 0..3 {
        notifier.do_send(Mutation::task(EventName::TaskCreated, task(&n.to_string())).unwrap());
    }
    // Dropping the only address stops the notifier once its mailbox is
    // handled; what it held for the broker goes out as it stops.
    drop(notifier);

    log.wait_len(3).await;
    assert_eq!(titles(&log.events()), ["0", "1", "2"]);
}

#[actix::test]
async fn sequence_numbers_start_at_one_and_are_independent_per_topic() {
    let broker = TopicBroker::default().start();
    let (view, log) = subscriber(&broker, &Topic::tasks()).await;
    subscribe(&broker, &Topic::all(), &view).await;
    let (_other, other) = subscriber(&broker, &Topic::all()).await;

    let mut receipts = Vec::new();
    for (topic, title) in [
        (Topic::tasks(), "t1"),
        (Topic::all(), "a1"),
        (Topic::all(), "a2"),
        (Topic::tasks(), "t2"),
        (Topic::all(), "a3"),
    ] {
        receipts.push(publish(&broker, &topic, title).await.seq);
    }
    settle(&broker, &Topic::all(), &[&log, &other]).await;

    assert_eq!(receipts, [1, 1, 2, 2, 3]);
    let seen: Vec<(String, String, u64)> = log
        .events()
        .iter()
        .map(|s| (s.topic.to_string(), title(s).to_owned(), s.seq))
        .collect();
    let expected = [
        ("projects:tasks", "t1", 1),
        ("projects:all", "a1", 1),
        ("projects:all", "a2", 2),
        ("projects:tasks", "t2", 2),
        ("projects:all", "a3", 3),
    ];
    let expected: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(t, n, s)| (t.to_string(), n.to_string(), *s))
        .collect();
    assert_eq!(seen, expected);
    // A topic's number belongs to the topic, not to the subscriber.
    let others: Vec<u64> = other.events().iter().map(|s| s.seq).collect();
    assert_eq!(others, [1, 2, 3]);
}

// ---- Instances --------------------------------------------------------------------------------

#[actix::test]
async fn the_default_instances_work_and_are_the_same_on_every_call() {
    let broker = TopicBroker::from_registry();
    let notifier = ProjectsNotifier::from_registry();
    assert!(broker == TopicBroker::from_registry());
    assert!(notifier == ProjectsNotifier::from_registry());

    let id = Uuid::new_v4();
    let (_page, log) = subscriber(&TopicBroker::from_registry(), &Topic::project(id)).await;
    let project = ProjectPayload::new(id, "Default", false);
    let receipt = ProjectsNotifier::from_registry()
        .send(Mutation::project(EventName::ProjectCreated, project).unwrap())
        .await
        .unwrap()
        .unwrap();

    assert_eq!(receipt.delivered, 1);
    log.wait_len(1).await;
    assert_one!(log, Topic::project(id), EventName::ProjectCreated);
    assert_eq!(subscriber_count(&broker, &Topic::project(id)).await, 1);
}

#[actix::test]
async fn two_explicit_brokers_side_by_side_do_not_see_each_others_events() {
    let left = TopicBroker::default().start();
    let right = TopicBroker::default().start();
    let left_notifier = ProjectsNotifier::new(left.clone()).start();
    let (_l, left_log) = subscriber(&left, &Topic::tasks()).await;
    let (_r, right_log) = subscriber(&right, &Topic::tasks()).await;

    let mutation = Mutation::task(EventName::TaskCreated, task("left only")).unwrap();
    assert_eq!(
        left_notifier
            .send(mutation)
            .await
            .unwrap()
            .unwrap()
            .delivered,
        1
    );
    assert_eq!(publish(&right, &Topic::tasks(), "right only").await.seq, 1);
    settle(&left, &Topic::tasks(), &[&left_log]).await;
    settle(&right, &Topic::tasks(), &[&right_log]).await;

    assert_eq!(titles(&left_log.events()), ["left only"]);
    assert_eq!(titles(&right_log.events()), ["right only"]);
    assert!(left != right);
}

// ---- Tenant mode ------------------------------------------------------------------------------

fn tenant_broker() -> Addr<TopicBroker> {
    TopicBroker::new(BrokerConfig::default().tenant_mode(true)).start()
}

#[actix::test]
async fn a_tenant_broker_refuses_an_unscoped_subscribe_and_keeps_delivering() {
    let broker = tenant_broker();
    let scoped = Topic::all().in_org(org("acme")).unwrap();
    let (view, log) = subscriber(&broker, &scoped).await;
    publish(&broker, &scoped, "before").await;

    let refused = broker
        .send(Subscribe::new(Topic::all(), view.clone().recipient()))
        .await;

    assert_eq!(
        refused.unwrap(),
        Err(SubscribeError::ScopeRequired(Topic::all()))
    );
    assert_eq!(topic_count(&broker).await, 1);
    assert_eq!(subscriber_count(&broker, &scoped).await, 1);
    let receipt = publish(&broker, &scoped, "after").await;
    assert_eq!((receipt.delivered, receipt.seq), (1, 2));
    settle(&broker, &scoped, &[&log]).await;
    assert_eq!(titles(&log.events()), ["before", "after"]);
}

#[actix::test]
async fn a_tenant_broker_refuses_an_unscoped_publish_and_keeps_delivering() {
    let broker = tenant_broker();
    let scoped = Topic::tasks().in_org(org("acme")).unwrap();
    let (_view, log) = subscriber(&broker, &scoped).await;
    publish(&broker, &scoped, "before").await;

    let refused = broker
        .send(Publish::new(Topic::tasks(), task_event("unscoped")))
        .await;

    assert_eq!(
        refused.unwrap(),
        Err(PublishError::ScopeRequired(Topic::tasks()))
    );
    let receipt = publish(&broker, &scoped, "after").await;
    assert_eq!(
        (receipt.delivered, receipt.seq),
        (1, 2),
        "no number was used up"
    );
    settle(&broker, &scoped, &[&log]).await;
    assert_eq!(titles(&log.events()), ["before", "after"]);
}

#[actix::test]
async fn a_tenant_notifier_refuses_an_unscoped_mutation_sent_with_send() {
    let broker = TopicBroker::default().start();
    let config = NotifierConfig::default().tenant_mode(true);
    let notifier = ProjectsNotifier::new(broker.clone())
        .with_config(config)
        .start();
    let acme = org("acme");
    let (view, log) = subscriber(&broker, &Topic::tasks()).await;
    subscribe(
        &broker,
        &Topic::tasks().in_org(acme.clone()).unwrap(),
        &view,
    )
    .await;

    let unscoped = Mutation::task(EventName::TaskCreated, task("unscoped")).unwrap();
    let refused = notifier.send(unscoped.clone()).await.unwrap();
    let scoped = notifier
        .send(unscoped.in_org(acme.clone()))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(refused, Err(NotifyError::ScopeRequired));
    assert_eq!(scoped.delivered, 1);
    let acme_tasks = Topic::tasks().in_org(acme).unwrap();
    log.wait_len(1).await;
    assert_one!(log, acme_tasks, EventName::TaskCreated);
}

#[actix::test]
async fn a_tenant_notifier_drops_an_unscoped_mutation_sent_with_do_send() {
    let broker = TopicBroker::default().start();
    let config = NotifierConfig::default().tenant_mode(true);
    let notifier = ProjectsNotifier::new(broker.clone())
        .with_config(config)
        .start();
    let acme = org("acme");
    let acme_all = Topic::all().in_org(acme.clone()).unwrap();
    let (view, log) = subscriber(&broker, &Topic::all()).await;
    subscribe(&broker, &acme_all, &view).await;

    notifier.do_send(Mutation::task(EventName::TaskCreated, task("unscoped")).unwrap());
    let scoped = Mutation::task(EventName::TaskCreated, task("scoped")).unwrap();
    notifier.do_send(scoped.in_org(acme));
    log.wait_len(1).await;
    // Markers through the same notifier: the unscoped one is long past.
    let name = next_marker();
    notifier.do_send(marker_mutation(&acme_all, &name));
    log.wait_marker(&name).await;

    let seen = assert_one!(log, acme_all, EventName::TaskCreated);
    assert_eq!(title(&seen), "scoped");
}

#[actix::test]
async fn a_tenant_broker_refuses_an_unscoped_fan_out_from_a_global_notifier() {
    let broker = tenant_broker();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let acme_tasks = Topic::tasks().in_org(org("acme")).unwrap();
    let (_view, log) = subscriber(&broker, &acme_tasks).await;

    let unscoped = Mutation::task(EventName::TaskCreated, task("unscoped")).unwrap();
    let refused = notifier.send(unscoped.clone()).await.unwrap();
    let scoped = notifier
        .send(unscoped.in_org(org("acme")))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(refused, Err(NotifyError::ScopeRequired));
    assert_eq!(scoped.delivered, 1);
    log.wait_len(1).await;
    assert_one!(log, acme_tasks, EventName::TaskCreated);
}

// ---- A subscriber that is already gone --------------------------------------------------------

#[actix::test]
async fn subscribing_a_recipient_whose_actor_has_stopped_is_subscriber_gone() {
    let broker = TopicBroker::default().start();
    let (_live, live) = subscriber(&broker, &Topic::all()).await;
    let (gone, gone_log) = recorder();
    let recipient = gone.clone().recipient::<Delivery>();
    gone.send(Stop).await.unwrap();
    gone_log.wait_stopped().await;
    eventually("the stopped actor's mailbox to close", || {
        let connected = recipient.connected();
        async move { !connected }
    })
    .await;

    let refused = broker
        .send(Subscribe::new(Topic::all(), recipient))
        .await
        .unwrap();

    assert_eq!(refused, Err(SubscribeError::SubscriberGone));
    assert_eq!(subscriber_count(&broker, &Topic::all()).await, 1);
    assert_eq!(
        publish(&broker, &Topic::all(), "still works")
            .await
            .delivered,
        1
    );
    settle(&broker, &Topic::all(), &[&live]).await;
    assert_eq!(titles(&live.events()), ["still works"]);
}

// ---- Bounded subscriptions --------------------------------------------------------------------

#[actix::test]
async fn a_bounded_subscription_loses_nothing_within_its_bound_and_counts_what_it_missed() {
    const BOUND: usize = 4;
    let broker = TopicBroker::default().start();
    let log = Log::new();
    let slow = Recorder::hoarding(&log).start();
    broker
        .send(Subscribe::new(Topic::tasks(), slow.clone().recipient()).with_options(bound(BOUND)))
        .await
        .unwrap()
        .unwrap();

    for n in 1..=BOUND {
        let receipt = publish(&broker, &Topic::tasks(), &n.to_string()).await;
        assert_eq!((receipt.delivered, receipt.missed), (1, 0), "event {n}");
    }
    log.wait_len(BOUND).await;
    for n in BOUND + 1..=BOUND + 3 {
        let receipt = publish(&broker, &Topic::tasks(), &n.to_string()).await;
        assert_eq!((receipt.delivered, receipt.missed), (0, 1), "event {n}");
    }
    assert_eq!(slow.send(LetGo).await.unwrap(), BOUND);
    let receipt = publish(&broker, &Topic::tasks(), "caught up").await;
    assert_eq!((receipt.delivered, receipt.missed), (1, 0));
    log.wait_len(BOUND + 1).await;

    let seen = log.all();
    let seqs: Vec<u64> = seen.iter().map(|s| s.seq).collect();
    let missed: Vec<u64> = seen.iter().map(|s| s.missed).collect();
    assert_eq!(titles(&seen), ["1", "2", "3", "4", "caught up"]);
    assert_eq!(seqs, [1, 2, 3, 4, 8]);
    assert_eq!(missed, [0, 0, 0, 0, 3]);
    let stats = accounted(&broker).await;
    assert_eq!(
        (stats.offered, stats.deliveries, stats.missed_overflow),
        (8, 5, 3)
    );
}

#[actix::test]
async fn a_bounded_subscriber_stuck_in_its_handler_reports_what_it_missed_once_it_catches_up() {
    const BOUND: usize = 3;
    let broker = TopicBroker::default().start();
    let log = Log::new();
    let (open, gate) = watch::channel(false);
    let slow = Recorder::gated(&log, gate).start();
    broker
        .send(Subscribe::new(Topic::all(), slow.clone().recipient()).with_options(bound(BOUND)))
        .await
        .unwrap()
        .unwrap();

    let mut delivered = 0;
    let mut missed = 0;
    for n in 1..=BOUND + 3 {
        let receipt = publish(&broker, &Topic::all(), &n.to_string()).await;
        delivered += receipt.delivered;
        missed += receipt.missed;
    }
    assert_eq!((delivered, missed), (BOUND, 3));
    open.send(true).unwrap();
    log.wait_len(BOUND).await;
    let receipt = publish(&broker, &Topic::all(), "caught up").await;
    assert_eq!(receipt.delivered, 1);
    log.wait_len(BOUND + 1).await;

    let seen = log.all();
    assert_eq!(titles(&seen), ["1", "2", "3", "caught up"]);
    assert_eq!(
        seen.iter().map(|s| s.missed).collect::<Vec<_>>(),
        [0, 0, 0, 3]
    );
    assert_eq!(seen[3].seq, 7);
    let stats = accounted(&broker).await;
    assert_eq!(
        (stats.offered, stats.deliveries, stats.missed_overflow),
        (7, 4, 3)
    );
}

#[actix::test]
async fn overflow_unsubscribe_removes_the_subscription() {
    const BOUND: usize = 2;
    let broker = TopicBroker::default().start();
    let log = Log::new();
    let slow = Recorder::hoarding(&log).start();
    let options = bound(BOUND).overflow(Overflow::Unsubscribe);
    let id = broker
        .send(Subscribe::new(Topic::tasks(), slow.clone().recipient()).with_options(options))
        .await
        .unwrap()
        .unwrap();

    for n in 1..=BOUND {
        assert_eq!(
            publish(&broker, &Topic::tasks(), &n.to_string())
                .await
                .delivered,
            1
        );
    }
    log.wait_len(BOUND).await;
    let receipt = publish(&broker, &Topic::tasks(), "over the bound").await;

    // The event at the bound is handed over as the last one, then nothing.
    assert_eq!((receipt.delivered, receipt.missed), (1, 0));
    assert_eq!(subscriber_count(&broker, &Topic::tasks()).await, 0);
    assert_eq!(topic_count(&broker).await, 0);
    assert!(
        !broker.send(Unsubscribe(id)).await.unwrap(),
        "already removed"
    );
    slow.send(LetGo).await.unwrap();
    assert_eq!(
        publish(&broker, &Topic::tasks(), "after").await.delivered,
        0
    );
    log.wait_len(BOUND + 1).await;
    let seen = log.all();
    assert_eq!(titles(&seen), ["1", "2", "over the bound"]);
    assert_eq!(
        seen.iter().map(|s| s.last).collect::<Vec<_>>(),
        [false, false, true]
    );

    // The subscriber lives on and may subscribe again, with a new id.
    let again = subscribe(&broker, &Topic::tasks(), &slow).await;
    assert_ne!(again, id);
    assert_eq!(
        publish(&broker, &Topic::tasks(), "again").await.delivered,
        1
    );
    log.wait_len(BOUND + 2).await;
    assert_eq!(titles(&log.events())[BOUND + 1], "again");
    let stats = accounted(&broker).await;
    assert_eq!(stats.overflow_unsubscribed, 1);
}

#[actix::test]
async fn drop_oldest_keeps_the_newest_waiting_events_and_hands_them_on_after_a_catch_up() {
    const BOUND: usize = 2;
    let broker = TopicBroker::default().start();
    let log = Log::new();
    let slow = Recorder::hoarding(&log).start();
    let options = bound(BOUND).overflow(Overflow::DropOldest);
    broker
        .send(Subscribe::new(Topic::tasks(), slow.clone().recipient()).with_options(options))
        .await
        .unwrap()
        .unwrap();

    let mut receipts = Vec::new();
    for n in 1..=5 {
        let receipt = publish(&broker, &Topic::tasks(), &n.to_string()).await;
        receipts.push((receipt.delivered, receipt.queued, receipt.missed));
        if n == BOUND {
            log.wait_len(BOUND).await;
        }
    }
    // Two handed on, two waiting in the backlog, then the oldest waiting
    // one (3) is dropped for 5.
    assert_eq!(
        receipts,
        [(1, 0, 0), (1, 0, 0), (0, 1, 0), (0, 1, 0), (0, 1, 1)]
    );

    assert_eq!(slow.send(LetGo).await.unwrap(), BOUND);
    log.wait_len(4).await;
    let seen = log.all();
    assert_eq!(titles(&seen), ["1", "2", "4", "5"]);
    assert_eq!(
        seen.iter().map(|s| s.missed).collect::<Vec<_>>(),
        [0, 0, 1, 0]
    );
    assert_eq!(seen.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2, 4, 5]);
    let stats = accounted(&broker).await;
    assert_eq!(
        (stats.offered, stats.deliveries, stats.missed_overflow),
        (5, 4, 1)
    );
    assert_eq!(stats.backlog, 0);
}

// ---- Types ------------------------------------------------------------------------------------

#[test]
fn the_public_types_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    send_sync::<Topic>();
    send_sync::<ProjectsEvent>();
    send_sync::<Mutation>();
    send_sync::<SubscriptionId>();
    send_sync::<SubscriberId>();
    send_sync::<PublishReceipt>();
    send_sync::<SubscribeError>();
    send_sync::<NotifyError>();
    send::<Delivery>();
    send::<Publish>();
    send::<Subscribe>();
}
