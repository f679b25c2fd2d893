//! The event stream endpoint over real HTTP, without a browser: framing,
//! refusals, resume, slow clients and the lifetime of a connection.

#![cfg(feature = "web")]

mod web_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use actix_web::HttpRequest;
use projects_pubsub::web::{Denied, StreamLimits, StreamPosition};
use projects_pubsub::{
    BrokerConfig, EventName, OrgId, Payload, ProjectsEvent, Publish, SubscriberCount, Topic,
    TopicBroker, TopicCount,
};
use serde_json::json;
use uuid::Uuid;
use web_support::{Served, SseReader, eventually, task_event};

/// Limits that make heartbeats frequent, so closed connections are noticed
/// quickly; everything else as by default.
fn quick() -> StreamLimits {
    StreamLimits::default().heartbeat(Duration::from_millis(50))
}

async fn publish(served: &Served, topic: &Topic, event: ProjectsEvent) {
    served
        .broker
        .send(Publish::new(topic.clone(), event))
        .await
        .expect("broker alive")
        .expect("publish accepted");
}

async fn count(served: &Served, topic: &Topic) -> usize {
    served
        .broker
        .send(SubscriberCount(topic.clone()))
        .await
        .expect("broker alive")
}

fn title_of(frame: &web_support::Frame) -> String {
    frame.json()["payload"]["title"]
        .as_str()
        .expect("a task title")
        .to_owned()
}

#[actix_rt::test]
async fn frames_follow_the_event_stream_format() {
    let served = Served::allow_all(quick()).await;
    let topic = Topic::tasks();
    let mut reader = SseReader::open(&served.url(&[&topic]), None).await;
    assert_eq!(reader.status, 200);
    let header = |name: &str| reader.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("content-type"), Some("text/event-stream"));
    assert_eq!(header("cache-control"), Some("no-cache"));

    let retry = reader.next_frame().await.expect("a retry frame");
    assert_eq!(retry.raw, "retry: 2000");

    let ready = reader.next_data().await;
    assert_eq!(ready.event.as_deref(), Some("ready"));
    assert_eq!(
        ready.json(),
        json!({"topics": ["projects:tasks"], "reload": []})
    );
    let opening = StreamPosition::parse(ready.id.as_deref().expect("an id")).unwrap();
    assert!(!opening.is_empty());

    publish(&served, &topic, task_event("Sand the floor")).await;
    let frame = reader.next_data().await;
    let id = frame.id.clone().expect("event frames carry an id");
    assert_eq!(frame.raw, format!("id: {id}\ndata: {}", frame.data));
    assert_eq!(
        frame.event, None,
        "events are unnamed: EventSource's `message`"
    );
    let body = frame.json();
    assert_eq!(body["topic"], "projects:tasks");
    assert_eq!(body["event"], "task_created");
    assert_eq!(body["resource"], "task");
    assert_eq!(body["payload"]["title"], "Sand the floor");

    let position = StreamPosition::parse(&id).unwrap();
    assert_eq!(position.to_string(), id);
    assert_ne!(position, opening, "the id moves with every event");

    let heartbeat = loop {
        let frame = reader.next_frame().await.expect("the stream goes on");
        if frame.comment.is_some() {
            break frame;
        }
    };
    assert_eq!(heartbeat.raw, ": keep-alive");
    served.stop().await;
}

#[actix_rt::test]
async fn a_stream_carries_only_its_own_topics() {
    let served = Served::allow_all(quick()).await;
    let mine = Topic::project(Uuid::new_v4());
    let other = Topic::project(Uuid::new_v4());
    let mut reader = SseReader::open(&served.url(&[&mine]), None).await;
    reader.next_data().await;

    publish(&served, &other, task_event("not for you")).await;
    publish(&served, &mine, task_event("for you")).await;
    let frame = reader.next_data().await;
    assert_eq!(frame.json()["topic"], mine.to_string());
    assert_eq!(title_of(&frame), "for you");
    served.stop().await;
}

#[actix_rt::test]
async fn malformed_requests_are_400_with_the_reason_and_subscribe_nothing() {
    let served = Served::allow_all(quick().max_topics(2)).await;
    let cases = [
        (
            "topic=projects:project:nope",
            "malformed project uuid \"nope\"",
        ),
        ("topic=chat:all", "unknown namespace \"chat\""),
        ("topic=projects:all&topic=projects:everything", "topic 2"),
        ("other=1", "no topic requested"),
        (
            "topic=projects:all&topic=projects:tasks&topic=projects:templates",
            "3 topics requested, a stream may carry at most 2",
        ),
    ];
    for (query, reason) in cases {
        let url = format!("{}/events?{query}", served.base);
        let reader = SseReader::open(&url, None).await;
        assert_eq!(reader.status, 400, "{query}");
        let body = reader.text().await;
        assert!(body.contains(reason), "{query}: {body:?} lacks {reason:?}");
    }

    assert_eq!(served.broker.send(TopicCount).await.unwrap(), 0);
    let stats = served.stream.stats();
    assert_eq!(stats.malformed, 5);
    assert_eq!(stats.opened, 0);
    served.stop().await;
}

#[actix_rt::test]
async fn a_denied_topic_is_403_and_subscribes_nothing() {
    let secret = Topic::project(Uuid::new_v4());
    let refused = secret.clone();
    let served = Served::start(quick(), move |_: &HttpRequest, topic: &Topic| {
        if *topic == refused {
            return Err(Denied::new("not a member of this project"));
        }
        Ok(())
    })
    .await;

    let reader = SseReader::open(&served.url(&[&Topic::all(), &secret]), None).await;
    assert_eq!(reader.status, 403);
    assert_eq!(
        reader.text().await,
        format!("{secret}: not a member of this project")
    );

    // Not even the allowed topic was subscribed, nor followed by the journal.
    assert_eq!(served.broker.send(TopicCount).await.unwrap(), 0);
    assert_eq!(served.stream.stats().denied, 1);
    assert_eq!(served.stream.stats().opened, 0);
    served.stop().await;
}

#[actix_rt::test]
async fn the_authorisation_function_sees_the_request_and_every_topic() {
    // (the x-user header, the topic) of every call.
    type Calls = Vec<(Option<String>, String)>;
    let seen: Arc<Mutex<Calls>> = Arc::default();
    let log = Arc::clone(&seen);
    let served = Served::start(quick(), move |request: &HttpRequest, topic: &Topic| {
        let user = request
            .headers()
            .get("x-user")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        log.lock().unwrap().push((user.clone(), topic.to_string()));
        user.map(|_| ()).ok_or_else(|| Denied::new("sign in first"))
    })
    .await;
    let project = Topic::project(Uuid::new_v4());
    let url = served.url(&[&Topic::all(), &project]);

    let anonymous = SseReader::open(&url, None).await;
    assert_eq!(anonymous.status, 403);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[(None, "projects:all".to_owned())],
        "the first refusal ends the request"
    );

    seen.lock().unwrap().clear();
    let response = web_support::client()
        .get(&url)
        .insert_header(("x-user", "ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[
            (Some("ada".to_owned()), "projects:all".to_owned()),
            (Some("ada".to_owned()), project.to_string()),
        ]
    );
    served.stop().await;
}

#[actix_rt::test]
async fn a_reconnecting_client_gets_what_it_missed() {
    let served = Served::allow_all(quick()).await;
    let topic = Topic::tasks();
    let url = served.url(&[&topic]);

    let mut first = SseReader::open(&url, None).await;
    first.next_data().await;
    publish(&served, &topic, task_event("one")).await;
    publish(&served, &topic, task_event("two")).await;
    assert_eq!(title_of(&first.next_data().await), "one");
    let two = first.next_data().await;
    assert_eq!(title_of(&two), "two");
    drop(first);

    publish(&served, &topic, task_event("three")).await;
    publish(&served, &topic, task_event("four")).await;

    let mut second = SseReader::open(&url, two.id.as_deref()).await;
    let opening = second.next_data().await;
    assert_eq!(opening.event.as_deref(), Some("ready"));
    assert_eq!(opening.json()["reload"], json!([]));
    assert_eq!(title_of(&second.next_data().await), "three");
    assert_eq!(title_of(&second.next_data().await), "four");

    publish(&served, &topic, task_event("five")).await;
    assert_eq!(
        title_of(&second.next_data().await),
        "five",
        "live events follow the replay, without duplicates"
    );

    let stats = served.stream.stats();
    assert_eq!(stats.resumed, 1);
    assert_eq!(stats.replayed, 2);
    assert_eq!(stats.reloads, 0);
    served.stop().await;
}

#[actix_rt::test]
async fn resume_keeps_each_topic_apart() {
    let served = Served::allow_all(quick()).await;
    let tasks = Topic::tasks();
    let project = Topic::project(Uuid::new_v4());
    let url = served.url(&[&tasks, &project]);

    let mut first = SseReader::open(&url, None).await;
    first.next_data().await;
    publish(&served, &tasks, task_event("t1")).await;
    publish(&served, &project, task_event("p1")).await;
    first.next_data().await;
    let last = first.next_data().await;
    assert_eq!(title_of(&last), "p1");
    drop(first);

    publish(&served, &project, task_event("p2")).await;
    publish(&served, &tasks, task_event("t2")).await;

    let mut second = SseReader::open(&url, last.id.as_deref()).await;
    second.next_data().await;
    let mut replayed = vec![title_of(&second.next_data().await)];
    replayed.push(title_of(&second.next_data().await));
    replayed.sort();
    assert_eq!(replayed, ["p2", "t2"]);
    served.stop().await;
}

#[actix_rt::test]
async fn a_client_whose_missed_events_are_gone_is_told_to_reload() {
    let served = Served::allow_all(quick().resume_buffer(2)).await;
    let topic = Topic::tasks();
    let url = served.url(&[&topic]);

    let mut first = SseReader::open(&url, None).await;
    first.next_data().await;
    publish(&served, &topic, task_event("seen")).await;
    let seen = first.next_data().await;
    drop(first);
    for title in ["a", "b", "c", "d"] {
        publish(&served, &topic, task_event(title)).await;
    }

    let mut second = SseReader::open(&url, seen.id.as_deref()).await;
    let opening = second.next_data().await;
    assert_eq!(opening.event.as_deref(), Some("reload"));
    assert_eq!(opening.json()["reload"], json!(["projects:tasks"]));

    publish(&served, &topic, task_event("after")).await;
    assert_eq!(
        title_of(&second.next_data().await),
        "after",
        "after the reload frame the stream goes on live"
    );
    assert_eq!(served.stream.stats().reloads, 1);
    served.stop().await;
}

#[actix_rt::test]
async fn an_id_that_is_not_a_position_is_told_to_reload() {
    let served = Served::allow_all(quick()).await;
    let topic = Topic::tasks();
    for id in ["garbage", "0123456789abcdef-3"] {
        let mut reader = SseReader::open(&served.url(&[&topic]), Some(id)).await;
        assert_eq!(reader.status, 200);
        let opening = reader.next_data().await;
        assert_eq!(opening.event.as_deref(), Some("reload"), "{id}");
        assert_eq!(opening.json()["reload"], json!(["projects:tasks"]));
    }
    served.stop().await;
}

#[actix_rt::test]
async fn with_resume_off_a_reconnect_always_reloads() {
    let served = Served::allow_all(quick().resume_buffer(0)).await;
    let topic = Topic::tasks();
    let url = served.url(&[&topic]);
    let mut first = SseReader::open(&url, None).await;
    let opening = first.next_data().await;
    assert_eq!(opening.event.as_deref(), Some("ready"));
    drop(first);

    let mut second = SseReader::open(&url, opening.id.as_deref()).await;
    assert_eq!(second.next_data().await.event.as_deref(), Some("reload"));
    served.stop().await;
}

#[actix_rt::test]
async fn closing_the_connection_removes_its_subscriptions() {
    // Without resume there is no journal subscription beside the client's.
    let served = Served::allow_all(quick().resume_buffer(0)).await;
    let topics = [Topic::all(), Topic::project(Uuid::new_v4())];
    let mut reader = SseReader::open(&served.url(&[&topics[0], &topics[1]]), None).await;
    reader.next_data().await;
    for topic in &topics {
        assert_eq!(count(&served, topic).await, 1);
    }
    assert_eq!(served.stream.stats().open, 1);

    drop(reader);
    eventually("the closed stream's subscriptions are removed", || async {
        count(&served, &topics[0]).await == 0 && count(&served, &topics[1]).await == 0
    })
    .await;
    eventually("the stream is counted as closed", || async {
        served.stream.stats().open == 0
    })
    .await;
    assert_eq!(served.broker.send(TopicCount).await.unwrap(), 0);
    served.stop().await;
}

#[actix_rt::test]
async fn the_journal_lets_a_topic_go_after_the_resume_window() {
    let window = Duration::from_millis(200);
    let served = Served::allow_all(quick().resume_window(window)).await;
    let topic = Topic::tasks();
    let mut reader = SseReader::open(&served.url(&[&topic]), None).await;
    reader.next_data().await;
    assert_eq!(
        count(&served, &topic).await,
        2,
        "the connection and the journal"
    );

    drop(reader);
    eventually("the topic has no subscriber left", || async {
        count(&served, &topic).await == 0
    })
    .await;
    served.stop().await;
}

#[actix_rt::test]
async fn a_client_too_slow_to_read_is_disconnected_and_counted() {
    let limits = StreamLimits::default()
        .connection_bound(4)
        .resume_buffer(0)
        .heartbeat(Duration::from_secs(3600));
    let served = Served::allow_all(limits).await;
    let topic = Topic::embed("load-test").unwrap();

    // A reader that takes the response head and then reads nothing.
    let mut stalled = SseReader::open(&served.url(&[&topic]), None).await;
    assert_eq!(stalled.status, 200);
    let mut blob = serde_json::Map::new();
    blob.insert("blob".into(), json!("x".repeat(64 * 1024)));
    let event = ProjectsEvent::new(EventName::Saved, Payload::Embed(blob));

    // Sockets buffer a few megabytes; 64 KiB events exceed that quickly.
    let mut published = 0;
    while served.stream.stats().slow_disconnects == 0 {
        assert!(published < 2_000, "no disconnect after {published} events");
        publish(&served, &topic, event.clone()).await;
        published += 1;
        if published % 8 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(served.stream.stats().slow_disconnects, 1);
    eventually("the slow client's subscription is removed", || async {
        count(&served, &topic).await == 0
    })
    .await;

    // What the server had queued still arrives, then the stream ends.
    let mut received = 0;
    while let Some(frame) = stalled.next_frame().await {
        if frame.comment.is_none() && frame.retry.is_none() && frame.event.is_none() {
            received += 1;
        }
    }
    assert!(
        received < published,
        "{received} of {published} events arrived"
    );
    assert_eq!(served.stream.stats().open, 0);
    served.stop().await;
}

#[actix_rt::test]
async fn a_topic_the_broker_refuses_is_400_and_leaves_nothing_behind() {
    let broker = TopicBroker::new(BrokerConfig::default().tenant_mode(true)).start();
    // No resume window: the journal lets a topic go as soon as nobody streams it.
    let limits = quick().resume_window(Duration::ZERO);
    let served = Served::with_broker(broker, limits, |_: &HttpRequest, _: &Topic| Ok(())).await;
    let scoped = Topic::all().in_org(OrgId::new("acme").unwrap()).unwrap();

    let refused = SseReader::open(&served.url(&[&scoped, &Topic::tasks()]), None).await;
    assert_eq!(refused.status, 400);
    assert!(refused.text().await.contains("needs an organisation scope"));
    eventually(
        "the scoped topic's journal subscription is released",
        || async { served.broker.send(TopicCount).await.unwrap() == 0 },
    )
    .await;

    let mut fine = SseReader::open(&served.url(&[&scoped]), None).await;
    assert_eq!(fine.status, 200);
    assert_eq!(fine.next_data().await.event.as_deref(), Some("ready"));
    served.stop().await;
}

#[actix_rt::test]
async fn a_replay_larger_than_the_connection_bound_reloads_instead() {
    // A bound of 4 frames leaves room to replay 2 events.
    let served = Served::allow_all(quick().connection_bound(4)).await;
    let topic = Topic::tasks();
    let url = served.url(&[&topic]);
    let mut first = SseReader::open(&url, None).await;
    let opening = first.next_data().await;
    drop(first);
    for title in ["a", "b", "c"] {
        publish(&served, &topic, task_event(title)).await;
    }

    let mut second = SseReader::open(&url, opening.id.as_deref()).await;
    assert_eq!(second.next_data().await.event.as_deref(), Some("reload"));
    publish(&served, &topic, task_event("d")).await;
    assert_eq!(title_of(&second.next_data().await), "d");
    served.stop().await;
}

#[actix_rt::test]
async fn the_journal_lets_the_longest_idle_topic_go_when_full() {
    let served = Served::allow_all(quick().max_resume_topics(1)).await;
    let tasks = Topic::tasks();
    let mut first = SseReader::open(&served.url(&[&tasks]), None).await;
    let opening = first.next_data().await;
    drop(first);
    eventually("the first stream to close", || async {
        served.stream.stats().open == 0
    })
    .await;

    let mut other = SseReader::open(&served.url(&[&Topic::templates()]), None).await;
    other.next_data().await;
    assert_eq!(
        count(&served, &tasks).await,
        0,
        "the idle topic was let go for the new one"
    );

    let mut again = SseReader::open(&served.url(&[&tasks]), opening.id.as_deref()).await;
    assert_eq!(again.next_data().await.event.as_deref(), Some("reload"));
    served.stop().await;
}
