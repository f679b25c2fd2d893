//! Shared helpers of the integration tests: a recording subscriber, marker
//! events to prove that something did *not* arrive, and waits with a
//! generous deadline instead of fixed sleeps.
//!
//! Every test file compiles this module on its own and uses part of it.
#![allow(dead_code, unused_macros)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::prelude::*;
use projects_pubsub::{
    AssignmentPayload, CustomName, Delivery, DependencyPayload, EventName, Mutation, OrgId,
    Payload, ProjectRef, ProjectsEvent, Publish, Restart, Subscribe, SubscriptionId, TaskPayload,
    Topic, TopicBroker, TopicKind,
};
use serde_json::Map;
use tokio::sync::watch;
use uuid::Uuid;

/// How long a test waits for something that should happen. Generous on
/// purpose: a slow machine must not fail a test, only make it slower.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(2);

/// One delivery, as a [`Recorder`] saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The tag of the recorder that saw it.
    pub who: usize,
    pub topic: Topic,
    pub seq: u64,
    pub name: EventName,
    pub payload: Payload,
    pub missed: u64,
    /// Whether the broker marked it as the last of its subscription.
    pub last: bool,
    /// The shared event itself, to check that it is shared.
    pub event: Arc<ProjectsEvent>,
}

impl Seen {
    /// What `delivery` says, seen by the recorder tagged `who`.
    pub fn of(who: usize, delivery: &Delivery) -> Seen {
        Seen {
            who,
            topic: delivery.topic().clone(),
            seq: delivery.seq(),
            name: delivery.event().name.clone(),
            payload: delivery.event().payload.clone(),
            missed: delivery.missed(),
            last: delivery.is_last(),
            event: delivery.shared_event(),
        }
    }

    /// Whether this is a marker event (see [`next_marker`]).
    pub fn is_marker(&self) -> bool {
        self.name.as_str().starts_with(MARKER_PREFIX)
    }
}

/// What one or more recorders saw, shared between them and the test.
#[derive(Clone, Default)]
pub struct Log(Arc<LogInner>);

#[derive(Default)]
struct LogInner {
    seen: Mutex<Vec<Seen>>,
    stopped: AtomicBool,
}

impl Log {
    pub fn new() -> Log {
        Log::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Seen>> {
        // A panicking recorder must not hide what it saw.
        self.0
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes down one delivery.
    pub fn push(&self, seen: Seen) {
        self.lock().push(seen);
    }

    /// Everything seen, markers included, in order.
    pub fn all(&self) -> Vec<Seen> {
        self.lock().clone()
    }

    /// Everything seen except markers, in order.
    pub fn events(&self) -> Vec<Seen> {
        self.lock()
            .iter()
            .filter(|seen| !seen.is_marker())
            .cloned()
            .collect()
    }

    /// Number of deliveries seen, markers included.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Forgets everything seen so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Whether a recorder of this log has run its `stopped` hook.
    pub fn has_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Waits until `done` holds for what was seen; panics after
    /// [`PATIENCE`], saying what it waited for.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if done(&self.lock()) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited {PATIENCE:?} for {what}; saw {} deliveries: {:?}",
                    self.len(),
                    summary(&self.all())
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until at least `n` deliveries (markers included) were seen.
    pub async fn wait_len(&self, n: usize) {
        self.wait_until(&format!("{n} deliveries"), |seen| seen.len() >= n)
            .await;
    }

    /// Waits until the marker `name` was seen on some topic.
    pub async fn wait_marker(&self, name: &EventName) {
        self.wait_until(&format!("marker {name}"), |seen| {
            seen.iter().any(|s| &s.name == name)
        })
        .await;
    }

    /// Waits until the `stopped` hook of a recorder of this log ran.
    pub async fn wait_stopped(&self) {
        eventually("the recorder to stop", || async { self.has_stopped() }).await;
    }
}

/// `(topic, event name)` of each delivery: short enough for a panic message.
pub fn summary(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter()
        .map(|s| (s.topic.to_string(), s.name.to_string()))
        .collect()
}

/// Polls `check` until it yields true; panics after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() <= deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// How a [`Recorder`] treats a delivery after writing it down.
enum Mode {
    /// Drops it at once, freeing its place in a bounded subscription.
    Plain,
    /// Keeps it until [`LetGo`], so it keeps its place: a subscriber that
    /// has stopped keeping up.
    Hoarding(Vec<Delivery>),
    /// Keeps it and stops handling messages until the gate opens.
    Gated(watch::Receiver<bool>),
}

/// A subscriber actor that writes down every [`Delivery`] in a [`Log`].
pub struct Recorder {
    who: usize,
    log: Log,
    mode: Mode,
}

impl Recorder {
    pub fn new(log: &Log) -> Recorder {
        Recorder::tagged(0, log)
    }

    /// A recorder whose entries carry `who`, for many recorders sharing
    /// one log.
    pub fn tagged(who: usize, log: &Log) -> Recorder {
        Recorder {
            who,
            log: log.clone(),
            mode: Mode::Plain,
        }
    }

    /// A recorder that keeps every delivery until it gets [`LetGo`].
    pub fn hoarding(log: &Log) -> Recorder {
        Recorder {
            mode: Mode::Hoarding(Vec::new()),
            ..Recorder::new(log)
        }
    }

    /// A recorder whose handler waits, holding its delivery, until `gate`
    /// says `true`.
    pub fn gated(log: &Log, gate: watch::Receiver<bool>) -> Recorder {
        Recorder {
            mode: Mode::Gated(gate),
            ..Recorder::new(log)
        }
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.log.0.stopped.store(true, Ordering::SeqCst);
    }
}

impl Handler<Delivery> for Recorder {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        self.log.push(Seen::of(self.who, &delivery));
        match &mut self.mode {
            Mode::Plain => {}
            Mode::Hoarding(kept) => kept.push(delivery),
            Mode::Gated(gate) => {
                let mut gate = gate.clone();
                ctx.wait(
                    async move {
                        let _ = gate.wait_for(|open| *open).await;
                        drop(delivery);
                    }
                    .into_actor(self),
                );
            }
        }
    }
}

/// Asks a recorder to stop itself with `ctx.stop()`.
pub struct Stop;

impl Message for Stop {
    type Result = ();
}

impl Handler<Stop> for Recorder {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Makes a hoarding recorder drop what it kept. Replies with how many.
pub struct LetGo;

impl Message for LetGo {
    type Result = usize;
}

impl Handler<LetGo> for Recorder {
    type Result = usize;

    fn handle(&mut self, _: LetGo, _: &mut Context<Self>) -> usize {
        match &mut self.mode {
            Mode::Hoarding(kept) => std::mem::take(kept).len(),
            _ => 0,
        }
    }
}

/// Starts a recorder with a log of its own.
pub fn recorder() -> (Addr<Recorder>, Log) {
    let log = Log::new();
    (Recorder::new(&log).start(), log)
}

/// Subscribes `recorder` to `topic` and waits for the id.
pub async fn subscribe(
    broker: &Addr<TopicBroker>,
    topic: &Topic,
    recorder: &Addr<Recorder>,
) -> SubscriptionId {
    broker
        .send(Subscribe::new(topic.clone(), recorder.clone().recipient()))
        .await
        .expect("the broker is running")
        .expect("the subscription is accepted")
}

/// Starts a recorder subscribed to `topic`.
pub async fn subscriber(broker: &Addr<TopicBroker>, topic: &Topic) -> (Addr<Recorder>, Log) {
    let (addr, log) = recorder();
    subscribe(broker, topic, &addr).await;
    (addr, log)
}

const MARKER_PREFIX: &str = "marker_";

/// A fresh marker name, unique in the process: a custom event name that
/// tests send after the events under test, through the same path. Once a
/// subscriber has seen the marker, it has seen everything sent before it.
pub fn next_marker() -> EventName {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    EventName::Custom(CustomName::new(&format!("{MARKER_PREFIX}{n}")).expect("valid name"))
}

/// An event carrying the marker `name`.
pub fn marker_event(name: &EventName) -> ProjectsEvent {
    ProjectsEvent::new(name.clone(), Payload::Embed(Map::new()))
}

/// Publishes a fresh marker on `topic` and waits until every log in
/// `logs` has seen it: after that they have seen every earlier publish
/// on that topic.
pub async fn settle(broker: &Addr<TopicBroker>, topic: &Topic, logs: &[&Log]) {
    let name = next_marker();
    broker
        .send(Publish::new(topic.clone(), marker_event(&name)))
        .await
        .expect("the broker is running")
        .expect("the marker is published");
    for log in logs {
        log.wait_marker(&name).await;
    }
}

/// A mutation named `name` that reaches `topic` (and perhaps others),
/// sent through a notifier as a marker.
pub fn marker_mutation(topic: &Topic, name: &EventName) -> Mutation {
    let mutation = match topic.kind() {
        TopicKind::All | TopicKind::Tasks => Mutation::task(name.clone(), task("marker")),
        TopicKind::Templates => {
            Mutation::project_ref(name.clone(), ProjectRef::new(Uuid::new_v4()).template(true))
        }
        TopicKind::Project(id) => Mutation::project_ref(name.clone(), ProjectRef::new(*id)),
        TopicKind::Embed(_) => Mutation::embed(topic.clone(), name.clone(), Map::new()),
    };
    let mutation = mutation.expect("custom names fit every resource");
    match (topic.org(), topic.is_embed()) {
        (Some(org), false) => mutation.in_org(org.clone()),
        _ => mutation,
    }
}

/// A task payload with a fresh uuid.
pub fn task(title: &str) -> TaskPayload {
    TaskPayload {
        uuid: Uuid::new_v4(),
        title: title.to_owned(),
    }
}

/// An assignment of a fresh uuid to `project`.
pub fn assignment(project: Uuid) -> AssignmentPayload {
    AssignmentPayload {
        project_uuid: project,
        uuid: Some(Uuid::new_v4()),
    }
}

/// A dependency between two fresh assignments of `project`.
pub fn dependency(project: Uuid) -> DependencyPayload {
    DependencyPayload {
        assignment_uuid: Uuid::new_v4(),
        depends_on_uuid: Uuid::new_v4(),
        project_uuid: project,
    }
}

/// A task event titled `title`, for publishing straight to a broker.
pub fn task_event(title: &str) -> ProjectsEvent {
    ProjectsEvent::new(EventName::TaskCreated, Payload::Task(task(title)))
}

/// The title of a task payload; panics on any other payload.
pub fn title(seen: &Seen) -> &str {
    match &seen.payload {
        Payload::Task(task) => &task.title,
        other => panic!("expected a task payload, got {other:?}"),
    }
}

/// An organisation id that is known to be valid.
pub fn org(id: &str) -> OrgId {
    OrgId::new(id).expect("valid organisation id")
}

/// Asserts the event names of `seen`, in order.
macro_rules! assert_names {
    ($seen:expr, [$($name:expr),* $(,)?]) => {{
        let names: Vec<projects_pubsub::EventName> =
            $seen.iter().map(|seen| seen.name.clone()).collect();
        let expected: Vec<projects_pubsub::EventName> = vec![$($name),*];
        assert_eq!(names, expected, "event names differ");
    }};
}

/// Asserts that a log saw no event except markers.
macro_rules! assert_nothing {
    ($log:expr) => {{
        let events = $log.events();
        assert!(
            events.is_empty(),
            "expected no events, got {:?}",
            $crate::common::summary(&events)
        );
    }};
    ($log:expr, $why:expr) => {{
        let events = $log.events();
        assert!(
            events.is_empty(),
            "{}: expected no events, got {:?}",
            $why,
            $crate::common::summary(&events)
        );
    }};
}

/// Asserts that a log saw exactly one event (markers aside), on `topic`
/// and named `name`, and evaluates to it.
macro_rules! assert_one {
    ($log:expr, $topic:expr, $name:expr) => {{
        let events = $log.events();
        assert_eq!(
            events.len(),
            1,
            "expected one event, got {:?}",
            $crate::common::summary(&events)
        );
        let seen = events.into_iter().next().unwrap();
        assert_eq!(&seen.topic, &$topic, "delivered on the wrong topic");
        assert_eq!(seen.name, $name, "wrong event name");
        seen
    }};
}

/// A broker on its own thread with a long backlog of publishes, told to
/// stop (it is not supervised) once it reaches the end of that backlog:
/// whatever a notifier sends it in the meantime passes the notifier's check
/// that the broker runs, then is dropped unhandled.
pub fn broker_about_to_stop() -> (Arbiter, Addr<TopicBroker>) {
    let arbiter = Arbiter::new();
    let broker = TopicBroker::start_in_arbiter(&arbiter.handle(), |_| TopicBroker::default());
    let event = task_event("backlog");
    for _ in 0..100_000 {
        broker.do_send(Publish::new(Topic::tasks(), event.clone()));
    }
    broker.do_send(Restart);
    (arbiter, broker)
}
