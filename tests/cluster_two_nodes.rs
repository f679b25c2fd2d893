#![cfg(feature = "redis")]
//! Two nodes in one process, each a broker with its own Redis bridge, on
//! a `redis-server` the test starts: every routing row crosses over once,
//! nothing echoes, and what must stay local does.

mod cluster_support;

use actix::prelude::*;
use projects_pubsub::cluster::{BridgeError, GapDetected, NodeId, RedisBridge};
use projects_pubsub::{
    AssignmentPayload, DependencyPayload, EventName, Mutation, ProjectPayload, ProjectRef, Publish,
    Topic, TopicBroker,
};
use serde_json::Map;
use uuid::Uuid;

use cluster_support::{
    GapLog, Gaps, Node, RedisServer, config, eventually, listen, names_on, number_of, numbered,
    recorder, seen, task_event, unique_prefix, wait_for_count,
};

/// The mutations of every routing row of the catalog, for project `id`
/// and embed topic `embed`.
fn every_row(id: Uuid, embed: &Topic) -> Vec<Mutation> {
    let assignment = AssignmentPayload {
        project_uuid: id,
        uuid: Some(Uuid::new_v4()),
    };
    let dependency = DependencyPayload {
        assignment_uuid: Uuid::new_v4(),
        depends_on_uuid: Uuid::new_v4(),
        project_uuid: id,
    };
    let task = projects_pubsub::TaskPayload {
        uuid: Uuid::new_v4(),
        title: "Sand the floor".into(),
    };
    vec![
        Mutation::project(
            EventName::ProjectCreated,
            ProjectPayload::new(id, "Flat", false),
        )
        .unwrap(),
        Mutation::project(
            EventName::ProjectUpdated,
            ProjectPayload::new(id, "Flat", true),
        )
        .unwrap(),
        Mutation::project_ref(EventName::ProjectArchived, ProjectRef::new(id)).unwrap(),
        Mutation::task(EventName::TaskCreated, task).unwrap(),
        Mutation::assignment(EventName::AssignmentCreated, assignment).unwrap(),
        Mutation::dependency(EventName::DependencyAdded, dependency).unwrap(),
        Mutation::embed(embed.clone(), EventName::Opened, Map::new()).unwrap(),
    ]
}

#[actix_rt::test]
async fn every_routing_row_crosses_to_the_other_node_once_without_echo() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("rows");
    let a = Node::start(config(&redis, &prefix, "a")).await;
    let b = Node::start(config(&redis, &prefix, "b")).await;

    let id = Uuid::new_v4();
    let embed = Topic::embed("editor:1").unwrap();
    let topics = [
        Topic::all(),
        Topic::tasks(),
        Topic::templates(),
        Topic::project(id),
        embed.clone(),
    ];
    let here = recorder(&a.broker, &topics).await;
    let there = recorder(&b.broker, &topics).await;

    for mutation in every_row(id, &embed) {
        a.notifier.send(mutation).await.unwrap().unwrap();
    }
    a.settle(&[&b]).await;

    let expected: [(&Topic, &[&str]); 5] = [
        (
            &topics[0],
            &[
                "project_created",
                "project_updated",
                "project_archived",
                "task_created",
                "assignment_created",
                "dependency_added",
            ],
        ),
        (&topics[1], &["task_created"]),
        (&topics[2], &["project_updated"]),
        (
            &topics[3],
            &[
                "project_created",
                "project_updated",
                "project_archived",
                "assignment_created",
                "dependency_added",
            ],
        ),
        (&topics[4], &["opened"]),
    ];
    for (topic, names) in expected {
        assert_eq!(names_on(&there, topic).await, names, "on node b, {topic}");
        assert_eq!(names_on(&here, topic).await, names, "on node a, {topic}");
    }
    assert_eq!(seen(&there).await.len(), 14);
    assert_eq!(seen(&here).await.len(), 14, "node a got an echo of its own");

    // 14 topic publishes plus the barrier marker went out, and came back
    // to a only as echoes.
    let sent = a.drained().await;
    assert_eq!(sent.sequenced, 15);
    assert_eq!(sent.published, 15);
    assert_eq!(sent.received, 0);
    eventually("a hears its own messages back", || async {
        a.stats().await.echoes == 15
    })
    .await;
    let got = b.stats().await;
    assert_eq!(got.received, 15);
    assert_eq!((got.echoes, got.malformed, got.gaps), (0, 0, 0));
    assert_eq!(seen(&here).await.len(), 14, "node a got an echo of its own");
}

#[actix_rt::test]
async fn events_cross_in_both_directions_between_three_nodes() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("three");
    let nodes = [
        Node::start(config(&redis, &prefix, "n1")).await,
        Node::start(config(&redis, &prefix, "n2")).await,
        Node::start(config(&redis, &prefix, "n3")).await,
    ];
    let mut recorders = Vec::new();
    for node in &nodes {
        recorders.push(recorder(&node.broker, &[Topic::tasks()]).await);
    }

    for (at, node) in nodes.iter().enumerate() {
        node.publish(&Topic::tasks(), task_event(&format!("from {at}")))
            .await;
    }
    for node in &nodes {
        let others: Vec<&Node> = nodes
            .iter()
            .filter(|other| !std::ptr::eq(*other, node))
            .collect();
        node.settle(&others).await;
    }

    for recorder in &recorders {
        let mut titles: Vec<String> = seen(recorder)
            .await
            .into_iter()
            .map(|seen| match seen.event.payload {
                projects_pubsub::Payload::Task(task) => task.title,
                other => panic!("unexpected payload {other:?}"),
            })
            .collect();
        titles.sort();
        assert_eq!(titles, ["from 0", "from 1", "from 2"]);
    }
}

#[actix_rt::test]
async fn events_of_one_origin_keep_their_order_across_topics() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("order");
    let a = Node::start(config(&redis, &prefix, "a")).await;
    let b = Node::start(config(&redis, &prefix, "b")).await;
    let red = Topic::embed("red").unwrap();
    let blue = Topic::embed("blue").unwrap();
    let there = recorder(&b.broker, &[red.clone(), blue.clone()]).await;

    for n in 0..1_000 {
        let topic = if n % 3 == 0 { &red } else { &blue };
        a.broker.do_send(Publish::new(topic.clone(), numbered(n)));
    }

    let seen = wait_for_count(&there, 1_000).await;
    let numbers: Vec<u64> = seen.iter().map(|seen| number_of(&seen.event)).collect();
    assert_eq!(numbers, (0..1_000).collect::<Vec<_>>());
}

#[actix_rt::test]
async fn local_only_publishes_and_mutations_stay_on_their_node() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("local");
    let a = Node::start(config(&redis, &prefix, "a")).await;
    let b = Node::start(config(&redis, &prefix, "b")).await;
    let here = recorder(&a.broker, &[Topic::all(), Topic::tasks()]).await;
    let there = recorder(&b.broker, &[Topic::all(), Topic::tasks()]).await;

    a.broker
        .send(Publish::new(Topic::all(), task_event("publish")).local_only())
        .await
        .unwrap()
        .unwrap();
    let task = projects_pubsub::TaskPayload {
        uuid: Uuid::new_v4(),
        title: "mutation".into(),
    };
    let mutation = Mutation::task(EventName::TaskUpdated, task).unwrap();
    a.notifier
        .send(mutation.local_only())
        .await
        .unwrap()
        .unwrap();
    a.settle(&[&b]).await;

    assert_eq!(
        seen(&here).await.len(),
        3,
        "local subscribers get local-only events"
    );
    assert!(
        seen(&there).await.is_empty(),
        "a local-only event left its node"
    );
    assert_eq!(
        a.stats().await.sequenced,
        1,
        "only the barrier marker was sent"
    );
}

#[actix_rt::test]
async fn a_topic_kept_local_neither_leaves_nor_enters_the_node() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("keep");
    let cursor = Topic::embed("cursor").unwrap();
    let a = Node::start(config(&redis, &prefix, "a").keep_local(cursor.clone())).await;
    let b = Node::start(config(&redis, &prefix, "b")).await;
    let here = listen(&a.broker, &cursor).await;
    let there = listen(&b.broker, &cursor).await;

    a.publish(&cursor, numbered(1)).await;
    b.publish(&cursor, numbered(2)).await;
    a.settle(&[&b]).await;
    b.settle(&[&a]).await;

    let numbers = |seen: Vec<cluster_support::Seen>| -> Vec<u64> {
        seen.iter().map(|seen| number_of(&seen.event)).collect()
    };
    assert_eq!(
        numbers(seen(&here).await),
        [1],
        "a kept-local topic took a remote event"
    );
    assert_eq!(
        numbers(seen(&there).await),
        [2],
        "a kept-local topic left its node"
    );
    assert_eq!(a.stats().await.kept_local, 2, "one out, one in");
}

#[actix_rt::test]
async fn a_second_node_with_the_same_id_is_refused_at_start() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("dup");
    let first = Node::start(config(&redis, &prefix, "web-1")).await;

    let broker = TopicBroker::default().start();
    let second = RedisBridge::connect(broker.clone(), config(&redis, &prefix, "web-1")).await;
    match second {
        Err(BridgeError::NodeIdTaken(node)) => assert_eq!(node, NodeId::new("web-1").unwrap()),
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("a second node with the same id was accepted"),
    }

    // The same id under another prefix is another cluster.
    let other_prefix = unique_prefix("dup-other");
    RedisBridge::connect(broker.clone(), config(&redis, &other_prefix, "web-1"))
        .await
        .expect("another prefix is another cluster");

    // Once the first node stops, its id is free at once.
    first.stop().await;
    RedisBridge::connect(broker, config(&redis, &prefix, "web-1"))
        .await
        .expect("the id was freed on stop");
}

#[actix_rt::test]
async fn the_node_id_claim_is_renewed_while_the_node_runs() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("ttl");
    let _node = Node::start(config(&redis, &prefix, "a")).await;
    let key = format!("{prefix}:node:a");

    // The claim lives 3 s; after 4 s of heartbeats it is still there.
    actix_rt::time::sleep(std::time::Duration::from_secs(4)).await;
    let ttl = redis.query_int(&["PTTL", &key]);
    assert!(ttl > 0, "the node id claim lapsed (PTTL {ttl})");
}

#[actix_rt::test]
async fn bad_settings_and_unreachable_redis_are_typed_errors() {
    let redis = RedisServer::start();
    let broker = TopicBroker::default().start();
    let node = NodeId::new("a").unwrap();

    let bad_url = projects_pubsub::cluster::BridgeConfig::new("not a url", node.clone());
    assert!(matches!(
        RedisBridge::connect(broker.clone(), bad_url).await,
        Err(BridgeError::InvalidUrl(_))
    ));

    let slow_heartbeat = config(&redis, "p", "a").heartbeat(std::time::Duration::from_secs(60));
    assert!(matches!(
        RedisBridge::connect(broker.clone(), slow_heartbeat).await,
        Err(BridgeError::Config(_))
    ));

    let no_queue = config(&redis, "p", "a").outage_queue(0);
    assert!(matches!(
        RedisBridge::connect(broker.clone(), no_queue).await,
        Err(BridgeError::Config(_))
    ));

    let port = redis.port();
    drop(redis);
    let nobody =
        projects_pubsub::cluster::BridgeConfig::new(format!("redis://127.0.0.1:{port}/"), node);
    assert!(matches!(
        RedisBridge::connect(broker, nobody).await,
        Err(BridgeError::Redis(_) | BridgeError::Timeout(_))
    ));
}

#[actix_rt::test]
async fn a_hand_written_event_from_another_language_reaches_local_subscribers() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("cli");
    let gaps = GapLog::default().start();
    let b = Node::start(config(&redis, &prefix, "b").on_gap(gaps.clone().recipient())).await;
    let there = recorder(&b.broker, &[Topic::tasks()]).await;

    let channel = format!("{prefix}:projects:tasks");
    let event = |seq: u64, title: &str| {
        format!(
            r#"{{"v":1,"origin":"php-1","seq":{seq},"event":"task_created","resource":"task",
               "payload":{{"uuid":"6f9619ff-8b86-d011-b42d-00c04fc964ff","title":"{title}"}}}}"#
        )
    };
    redis.publish_raw(&channel, &event(1, "Paint"));
    redis.publish_raw(&channel, &event(5, "Varnish"));

    let seen = wait_for_count(&there, 2).await;
    let titles: Vec<String> = seen
        .iter()
        .map(|seen| match &seen.event.payload {
            projects_pubsub::Payload::Task(task) => task.title.clone(),
            other => panic!("unexpected payload {other:?}"),
        })
        .collect();
    assert_eq!(titles, ["Paint", "Varnish"]);

    let stats = b.stats().await;
    assert_eq!((stats.received, stats.gaps, stats.malformed), (2, 3, 0));
    let reported = gaps.send(Gaps).await.unwrap();
    assert_eq!(
        reported,
        [GapDetected {
            origin: NodeId::new("php-1").unwrap(),
            last: 1,
            seq: 5,
            missed: 3,
        }]
    );
}

#[actix_rt::test]
async fn garbage_on_the_channels_is_counted_and_skipped_and_the_bridge_goes_on() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("garbage");
    let a = Node::start(config(&redis, &prefix, "a")).await;
    let b = Node::start(config(&redis, &prefix, "b")).await;
    let there = recorder(&b.broker, &[Topic::all(), Topic::tasks()]).await;

    let all = format!("{prefix}:projects:all");
    let garbage = [
        (all.as_str(), "not json at all".to_owned()),
        (all.as_str(), "[1,2,3]".to_owned()),
        (
            all.as_str(),
            r#"{"v":2,"origin":"x","seq":1,"anything":"new"}"#.to_owned(),
        ),
        (
            all.as_str(),
            r#"{"origin":"x","seq":1,"event":"task_created"}"#.to_owned(),
        ),
        (
            all.as_str(),
            r#"{"v":1,"origin":"no spaces","seq":1}"#.to_owned(),
        ),
        (all.as_str(), r#"{"v":1,"origin":"x","seq":-4}"#.to_owned()),
        (
            all.as_str(),
            r#"{"v":1,"origin":"x","seq":1,"event":"Nope"}"#.to_owned(),
        ),
        (
            all.as_str(),
            r#"{"v":1,"origin":"x","seq":2,"event":"task_created","resource":"task",
                "payload":{"uuid":"not-a-uuid","title":"t"}}"#
                .to_owned(),
        ),
        (
            all.as_str(),
            format!("{{\"v\":1,\"pad\":\"{}\"}}", "x".repeat(70_000)),
        ),
    ];
    for (channel, payload) in &garbage {
        redis.publish_raw(channel, payload);
    }
    let bad_topic = format!(
        r#"{{"v":1,"origin":"x","seq":3,{}"#,
        &task_event("t").to_json()[1..]
    );
    redis.publish_raw(&format!("{prefix}:chat:lobby"), &bad_topic);
    let expected = garbage.len() as u64 + 1;

    eventually("b counts every malformed message", || async {
        b.stats().await.malformed == expected
    })
    .await;
    eventually("a counts every malformed message", || async {
        a.stats().await.malformed == expected
    })
    .await;

    a.publish(&Topic::tasks(), task_event("still works")).await;
    a.settle(&[&b]).await;
    let seen = seen(&there).await;
    assert_eq!(seen.len(), 1, "only the real event was delivered: {seen:?}");
    assert_eq!(seen[0].topic, Topic::tasks());
    let stats = b.stats().await;
    assert!(stats.connected);
    assert_eq!(stats.received, 2, "the event and the barrier marker");
}

#[actix_rt::test]
async fn an_event_too_large_for_the_wire_stays_local_and_is_counted() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("large");
    let a = Node::start(config(&redis, &prefix, "a")).await;
    let b = Node::start(config(&redis, &prefix, "b")).await;
    let topic = Topic::embed("big").unwrap();
    let here = listen(&a.broker, &topic).await;
    let there = listen(&b.broker, &topic).await;

    let mut payload = Map::new();
    payload.insert("blob".into(), "x".repeat(70_000).into());
    let large = projects_pubsub::ProjectsEvent::new(
        EventName::Saved,
        projects_pubsub::Payload::Embed(payload),
    );
    a.publish(&topic, large).await;
    a.publish(&topic, numbered(1)).await;
    a.settle(&[&b]).await;

    assert_eq!(seen(&here).await.len(), 2, "local subscribers get both");
    let crossed = seen(&there).await;
    assert_eq!(crossed.len(), 1);
    assert_eq!(number_of(&crossed[0].event), 1);
    let sent = a.drained().await;
    assert_eq!((sent.unsendable, sent.sequenced), (1, 2));
    assert_eq!(
        b.stats().await.gaps,
        0,
        "an event kept local takes no number"
    );
}

#[actix::test]
async fn redis_counts_the_bridges_of_a_prefix_on_its_presence_channel() {
    // After an outage a bridge waits until as many bridges listen as before
    // (`resync_wait`); the count must be of bridges, not of distinct
    // patterns, which Redis 6.2 and later report as one for all of them.
    let redis = RedisServer::start();
    let prefix = unique_prefix("presence");
    let a = Node::start(config(&redis, &prefix, "a")).await;
    let b = Node::start(config(&redis, &prefix, "b")).await;
    let presence = projects_pubsub::cluster::wire::presence(&prefix);
    assert_eq!(redis.subscribers(&presence), 2);

    b.stop().await;
    eventually("the stopped bridge to leave", || {
        let count = redis.subscribers(&presence);
        async move { count == 1 }
    })
    .await;
    a.stop().await;
}
