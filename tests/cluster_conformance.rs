#![cfg(feature = "redis")]
//! One suite of the broker's core behaviours, run over two transports:
//!
//! - `in_process`: publishers and subscribers share one broker;
//! - `over_redis`: subscribers live on node b, and publishes are made on
//!   node a, so every event crosses the Redis bridge.
//!
//! Each behaviour is written once, against [`Transport`]; the `suite!`
//! macro at the bottom runs every case on both transports.

mod cluster_support;

use actix::prelude::*;
use projects_pubsub::{
    AssignmentPayload, EventName, Mutation, ProjectPayload, ProjectsNotifier, Publish, Subscribe,
    SubscriberCount, SubscriberId, Topic, TopicBroker, Unsubscribe, UnsubscribeAll,
};
use uuid::Uuid;

use cluster_support::{
    Halt, Node, Recorder, RedisServer, config, eventually, listen, marker, names_on, number_of,
    numbered, recorder, seen, subscribe, task_event, unique_prefix,
};

/// Where a case publishes, and where its subscribers live.
trait Transport: Sized {
    /// Sets the transport up.
    async fn open() -> Self;

    /// The broker that publishes go to.
    fn publisher(&self) -> &Addr<TopicBroker>;

    /// A notifier in front of [`Transport::publisher`].
    fn notifier(&self) -> &Addr<ProjectsNotifier>;

    /// The broker that subscribers subscribe on.
    fn subscriber(&self) -> &Addr<TopicBroker>;

    /// Waits until everything published so far, on the publisher or
    /// through the notifier, has been handed to the subscribers.
    async fn settle(&self);
}

/// One broker and its notifier.
struct InProcess {
    broker: Addr<TopicBroker>,
    notifier: Addr<ProjectsNotifier>,
}

impl Transport for InProcess {
    async fn open() -> InProcess {
        let broker = TopicBroker::default().start();
        let notifier = ProjectsNotifier::new(broker.clone()).start();
        InProcess { broker, notifier }
    }

    fn publisher(&self) -> &Addr<TopicBroker> {
        &self.broker
    }

    fn notifier(&self) -> &Addr<ProjectsNotifier> {
        &self.notifier
    }

    fn subscriber(&self) -> &Addr<TopicBroker> {
        &self.broker
    }

    async fn settle(&self) {
        // The awaited form resolves once the broker has handed the marker
        // on, and so everything sent before it.
        self.notifier
            .send(marker(0))
            .await
            .expect("the notifier runs")
            .expect("the marker is routed");
    }
}

/// Two nodes joined by their bridges through a Redis of the test's own.
struct OverRedis {
    a: Node,
    b: Node,
    _redis: RedisServer,
}

impl Transport for OverRedis {
    async fn open() -> OverRedis {
        let redis = RedisServer::start();
        let prefix = unique_prefix("conformance");
        let a = Node::start(config(&redis, &prefix, "a")).await;
        let b = Node::start(config(&redis, &prefix, "b")).await;
        OverRedis {
            a,
            b,
            _redis: redis,
        }
    }

    fn publisher(&self) -> &Addr<TopicBroker> {
        &self.a.broker
    }

    fn notifier(&self) -> &Addr<ProjectsNotifier> {
        &self.a.notifier
    }

    fn subscriber(&self) -> &Addr<TopicBroker> {
        &self.b.broker
    }

    async fn settle(&self) {
        self.a.settle(&[&self.b]).await;
    }
}

async fn publish<T: Transport>(transport: &T, topic: &Topic, n: u64) {
    transport
        .publisher()
        .send(Publish::new(topic.clone(), numbered(n)))
        .await
        .expect("the broker runs")
        .expect("the publish is accepted");
}

async fn numbers(recorder: &Addr<Recorder>) -> Vec<u64> {
    seen(recorder)
        .await
        .iter()
        .map(|seen| number_of(&seen.event))
        .collect()
}

fn topic(name: &str) -> Topic {
    Topic::embed(name).expect("a valid embed topic")
}

// ---- The cases -------------------------------------------------------------------------------

async fn a_subscriber_gets_each_event_once<T: Transport>(transport: T) {
    let red = topic("red");
    let view = listen(transport.subscriber(), &red).await;

    for n in 1..=3 {
        publish(&transport, &red, n).await;
    }
    transport.settle().await;

    assert_eq!(numbers(&view).await, [1, 2, 3]);
}

async fn unsubscribe_stops_delivery<T: Transport>(transport: T) {
    let red = topic("red");
    let view = Recorder::default().start();
    let id = subscribe(transport.subscriber(), &red, &view).await;

    publish(&transport, &red, 1).await;
    transport.settle().await;
    assert!(transport.subscriber().send(Unsubscribe(id)).await.unwrap());
    publish(&transport, &red, 2).await;
    transport.settle().await;

    assert_eq!(numbers(&view).await, [1]);
}

async fn unsubscribe_all_removes_every_topic_of_a_subscriber<T: Transport>(transport: T) {
    let (red, blue) = (topic("red"), topic("blue"));
    let leaving = recorder(transport.subscriber(), &[red.clone(), blue.clone()]).await;
    let staying = listen(transport.subscriber(), &red).await;

    let removed = transport
        .subscriber()
        .send(UnsubscribeAll(SubscriberId::of_addr(&leaving)))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    publish(&transport, &red, 1).await;
    publish(&transport, &blue, 2).await;
    transport.settle().await;

    assert!(numbers(&leaving).await.is_empty());
    assert_eq!(numbers(&staying).await, [1]);
}

async fn an_excluded_subscriber_is_skipped_and_no_one_else<T: Transport>(transport: T) {
    // The excluded view made the change, so it lives where the publish is
    // made; two more views of the same type listen on the subscriber side.
    let red = topic("red");
    let actor = listen(transport.publisher(), &red).await;
    let first = listen(transport.subscriber(), &red).await;
    let second = listen(transport.subscriber(), &red).await;

    transport
        .publisher()
        .send(Publish::new(red.clone(), numbered(7)).excluding(SubscriberId::of_addr(&actor)))
        .await
        .unwrap()
        .unwrap();
    transport.settle().await;

    assert!(numbers(&actor).await.is_empty(), "the excluded view got it");
    assert_eq!(numbers(&first).await, [7]);
    assert_eq!(numbers(&second).await, [7]);
}

async fn events_keep_their_order<T: Transport>(transport: T) {
    let red = topic("red");
    let view = listen(transport.subscriber(), &red).await;

    for n in 0..1_000 {
        transport
            .publisher()
            .do_send(Publish::new(red.clone(), numbered(n)));
    }
    transport.settle().await;

    assert_eq!(numbers(&view).await, (0..1_000).collect::<Vec<_>>());
}

async fn subscribing_twice_is_idempotent<T: Transport>(transport: T) {
    let red = topic("red");
    let view = Recorder::default().start();
    let first = subscribe(transport.subscriber(), &red, &view).await;
    let again = subscribe(transport.subscriber(), &red, &view).await;
    assert_eq!(first, again);

    publish(&transport, &red, 1).await;
    transport.settle().await;

    assert_eq!(numbers(&view).await, [1]);
    let count = transport.subscriber().send(SubscriberCount(red)).await;
    assert_eq!(count.unwrap(), 1);
}

async fn three_instances_of_one_type_each_get_the_event<T: Transport>(transport: T) {
    let red = topic("red");
    let mut views = Vec::new();
    for _ in 0..3 {
        views.push(listen(transport.subscriber(), &red).await);
    }

    publish(&transport, &red, 5).await;
    transport.settle().await;

    for view in &views {
        assert_eq!(numbers(view).await, [5]);
    }
}

async fn a_mutation_reaches_each_of_its_topics_once<T: Transport>(transport: T) {
    let id = Uuid::new_v4();
    let topics = [
        Topic::all(),
        Topic::project(id),
        Topic::templates(),
        Topic::tasks(),
    ];
    let view = recorder(transport.subscriber(), &topics).await;

    let template = ProjectPayload::new(id, "Kitchen", true);
    let created = Mutation::project(EventName::ProjectCreated, template).unwrap();
    let assignment = AssignmentPayload {
        project_uuid: id,
        uuid: None,
    };
    let reordered = Mutation::assignment(EventName::AssignmentReordered, assignment).unwrap();
    transport.notifier().do_send(created);
    transport.notifier().do_send(reordered);
    transport.settle().await;

    assert_eq!(
        names_on(&view, &topics[0]).await,
        ["project_created", "assignment_reordered"]
    );
    assert_eq!(
        names_on(&view, &topics[1]).await,
        ["project_created", "assignment_reordered"]
    );
    assert_eq!(names_on(&view, &topics[2]).await, ["project_created"]);
    assert!(names_on(&view, &topics[3]).await.is_empty());
    assert_eq!(seen(&view).await.len(), 5);
}

async fn subscribers_of_other_topics_get_nothing<T: Transport>(transport: T) {
    let tasks_view = recorder(transport.subscriber(), &[Topic::tasks()]).await;
    let project_view = recorder(transport.subscriber(), &[Topic::project(Uuid::new_v4())]).await;

    transport
        .publisher()
        .send(Publish::new(Topic::all(), task_event("only on all")))
        .await
        .unwrap()
        .unwrap();
    transport.settle().await;

    assert!(seen(&tasks_view).await.is_empty());
    assert!(seen(&project_view).await.is_empty());
}

async fn a_stopped_subscriber_is_pruned_and_the_others_still_get_events<T: Transport>(
    transport: T,
) {
    let red = topic("red");
    let leaving = listen(transport.subscriber(), &red).await;
    let staying = listen(transport.subscriber(), &red).await;

    leaving.send(Halt).await.unwrap();
    publish(&transport, &red, 1).await;
    transport.settle().await;

    assert_eq!(numbers(&staying).await, [1]);
    let subscriber = transport.subscriber().clone();
    eventually("the stopped subscriber is pruned", || {
        let subscriber = subscriber.clone();
        let red = red.clone();
        async move { subscriber.send(SubscriberCount(red)).await.unwrap() == 1 }
    })
    .await;
}

async fn a_subscription_made_before_a_publish_is_never_missed<T: Transport>(transport: T) {
    // The awaited subscribe is in place before the publish that follows
    // it, however far that publish travels.
    let red = topic("red");
    for n in 0..20 {
        let view = Recorder::default().start();
        transport
            .subscriber()
            .send(Subscribe::new(red.clone(), view.clone().recipient()))
            .await
            .unwrap()
            .unwrap();
        publish(&transport, &red, n).await;
        transport.settle().await;
        assert_eq!(numbers(&view).await, [n]);
        view.send(Halt).await.unwrap();
    }
}

/// Runs every case on both transports.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod in_process {
            $(
                #[actix_rt::test]
                async fn $case() {
                    super::$case(<super::InProcess as super::Transport>::open().await).await;
                }
            )*
        }

        mod over_redis {
            $(
                #[actix_rt::test]
                async fn $case() {
                    super::$case(<super::OverRedis as super::Transport>::open().await).await;
                }
            )*
        }
    };
}

suite!(
    a_subscriber_gets_each_event_once,
    unsubscribe_stops_delivery,
    unsubscribe_all_removes_every_topic_of_a_subscriber,
    an_excluded_subscriber_is_skipped_and_no_one_else,
    events_keep_their_order,
    subscribing_twice_is_idempotent,
    three_instances_of_one_type_each_get_the_event,
    a_mutation_reaches_each_of_its_topics_once,
    subscribers_of_other_topics_get_nothing,
    a_stopped_subscriber_is_pruned_and_the_others_still_get_events,
    a_subscription_made_before_a_publish_is_never_missed,
);
