//! Tenant-scoped topics: the organisation key in every topic, tenant mode
//! on the broker and the notifier, and the isolation proof.
//!
//! The isolation suite ([`isolation_suite`]) takes its transport as a
//! parameter: where the subscribers subscribe and where the mutations are
//! published. It runs over one in-process broker and, when the `redis`
//! feature is built, over two nodes bridged through a Redis server of the
//! test's own, so that every event crosses the network.

#[cfg(feature = "redis")]
mod cluster_support;

use std::collections::{BTreeMap, HashMap};

use actix::prelude::*;
use actix::registry::SystemRegistry;
use projects_pubsub::{
    AssignmentPayload, BrokerConfig, Delivery, DependencyPayload, EventName, Mutation,
    NotifierConfig, NotifyError, OrgId, Payload, ProjectPayload, ProjectRef, ProjectsEvent,
    ProjectsNotifier, Publish, PublishError, Resource, Subscribe, SubscribeError, SubscriberCount,
    TaskPayload, Topic, TopicBroker, TopicCount, TopicError,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// A subscriber that records every delivery.

/// A delivery as recorded: the topic string and the event.
type Got = (String, ProjectsEvent);

#[derive(Default)]
struct Recorder {
    got: Vec<Got>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Recorder {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        self.got
            .push((delivery.topic().to_string(), delivery.event().clone()));
    }
}

/// Replies with everything recorded so far: every delivery queued in the
/// mailbox before the request is in the reply.
struct Recorded;

impl Message for Recorded {
    type Result = Vec<Got>;
}

impl Handler<Recorded> for Recorder {
    type Result = MessageResult<Recorded>;

    fn handle(&mut self, _: Recorded, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.got.clone())
    }
}

async fn recorded(recorder: &Addr<Recorder>) -> Vec<Got> {
    recorder.send(Recorded).await.expect("recorder alive")
}

fn org(id: &str) -> OrgId {
    OrgId::new(id).expect("valid org id")
}

fn scoped(topic: Topic, id: &str) -> Topic {
    topic
        .in_org(org(id))
        .expect("scoped topic within the length limit")
}

fn task_created(title: &str) -> Mutation {
    let task = TaskPayload {
        uuid: Uuid::new_v4(),
        title: title.into(),
    };
    Mutation::task(EventName::TaskCreated, task).expect("task name fits a task")
}

fn task_event(title: &str) -> ProjectsEvent {
    task_created(title).event().clone()
}

fn tenant_broker() -> Addr<TopicBroker> {
    TopicBroker::new(BrokerConfig::default().tenant_mode(true)).start()
}

fn tenant_notifier(broker: Addr<TopicBroker>) -> Addr<ProjectsNotifier> {
    let config = NotifierConfig::default().tenant_mode(true);
    ProjectsNotifier::new(broker).with_config(config).start()
}

// ---------------------------------------------------------------------------
// Scoped topics: rendering and parsing.

#[test]
fn scoped_topics_round_trip_for_every_kind() {
    let id = Uuid::parse_str("6F9619FF-8B86-D011-B42D-00C04FC964FF").expect("uuid");
    let long_org = "o".repeat(64);
    for org_id in ["acme", "A-b_9", long_org.as_str()] {
        let kinds = [
            (Topic::all(), "projects:org:{org}:all".to_owned()),
            (Topic::tasks(), "projects:org:{org}:tasks".to_owned()),
            (
                Topic::templates(),
                "projects:org:{org}:templates".to_owned(),
            ),
            (
                Topic::project(id),
                "projects:org:{org}:project:6f9619ff-8b86-d011-b42d-00c04fc964ff".to_owned(),
            ),
            (
                Topic::embed("editor:7").expect("embed"),
                "embed:org:{org}:editor:7".to_owned(),
            ),
        ];
        for (unscoped, pattern) in kinds {
            let text = pattern.replace("{org}", org_id);
            let topic = scoped(unscoped.clone(), org_id);

            assert_eq!(topic.to_string(), text);
            assert_eq!(Topic::parse(&text), Ok(topic.clone()), "parsing {text}");
            assert_eq!(topic.org(), Some(&org(org_id)));
            assert_eq!(topic.kind(), unscoped.kind());
            assert_eq!(topic.unscoped(), unscoped);
            assert_ne!(
                topic, unscoped,
                "a scoped topic differs from the global one"
            );

            let json = serde_json::to_string(&topic).expect("serialize");
            assert_eq!(json, format!("\"{text}\""));
            let back: Topic = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, topic);
        }
    }
}

#[test]
fn scoped_project_topics_accept_any_uuid_form_and_render_it_canonically() {
    let text = "projects:org:acme:project:{6F9619FF-8B86-D011-B42D-00C04FC964FF}";
    let topic = Topic::parse(text).expect("braced uuid parses");
    assert_eq!(
        topic.to_string(),
        "projects:org:acme:project:6f9619ff-8b86-d011-b42d-00c04fc964ff"
    );
}

/// Says whether an error is the one a case expects.
type ErrorCheck = fn(&TopicError) -> bool;

#[test]
fn scoped_topics_with_bad_parts_are_rejected_with_typed_errors() {
    let too_long_org = format!("projects:org:{}:all", "o".repeat(65));
    let cases: Vec<(&str, ErrorCheck)> = vec![
        (
            "projects:org::all",
            |e| matches!(e, TopicError::InvalidOrgId(id) if id.is_empty()),
        ),
        ("projects:org:a.b:all", |e| {
            matches!(e, TopicError::InvalidOrgId(_))
        }),
        ("projects:org:ac/me:tasks", |e| {
            matches!(e, TopicError::InvalidOrgId(_))
        }),
        (too_long_org.as_str(), |e| {
            matches!(e, TopicError::InvalidOrgId(_))
        }),
        ("projects:org:acme", |e| {
            matches!(e, TopicError::UnknownKind(_))
        }),
        ("projects:org:acme:", |e| {
            matches!(e, TopicError::UnknownKind(_))
        }),
        ("projects:org:acme:everything", |e| {
            matches!(e, TopicError::UnknownKind(_))
        }),
        ("projects:org:acme:project:nope", |e| {
            matches!(e, TopicError::MalformedUuid(_))
        }),
        ("projects:org:acme:org:beta:all", |e| {
            matches!(e, TopicError::UnknownKind(_))
        }),
        ("projects:org:ac me:all", |e| {
            matches!(e, TopicError::ForbiddenChar { at: 15 })
        }),
        ("embed:org:acme", |e| {
            matches!(e, TopicError::EmptyEmbedName)
        }),
        ("embed:org:acme:org:beta:x", |e| {
            matches!(e, TopicError::ReservedEmbedPrefix)
        }),
        ("chat:org:acme:all", |e| {
            matches!(e, TopicError::UnknownNamespace(_))
        }),
    ];
    for (text, expected) in cases {
        match Topic::parse(text) {
            Ok(topic) => panic!("{text:?} parsed as {topic}"),
            Err(error) => assert!(expected(&error), "{text:?} gave {error:?}"),
        }
    }
}

#[test]
fn org_ids_are_validated() {
    for good in ["a", "acme", "ACME-42", "under_score", &"x".repeat(64)] {
        let id = OrgId::new(good).expect("valid org id");
        assert_eq!(id.as_str(), good);
        assert_eq!(good.parse::<OrgId>(), Ok(id));
    }
    for bad in ["", "a:b", "a b", "a\n", "émile", "a.b", &"x".repeat(65)] {
        assert!(
            matches!(OrgId::new(bad), Err(TopicError::InvalidOrgId(_))),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn a_scoped_embed_topic_that_would_be_too_long_is_refused() {
    let name = "n".repeat(245);
    let topic = Topic::embed(&name).expect("an embed name within the limit");
    let error = topic.in_org(org("acme")).expect_err("too long once scoped");
    assert!(matches!(error, TopicError::TooLong { .. }), "{error:?}");
}

#[test]
fn a_mutation_in_an_org_targets_only_topics_of_that_org() {
    let id = Uuid::new_v4();
    let acme = org("acme");
    let template = ProjectPayload::new(id, "Kitchen refit", true);
    let mutation = Mutation::project(EventName::ProjectCreated, template)
        .expect("project name")
        .in_org(acme.clone());

    assert_eq!(mutation.org(), Some(&acme));
    let targets = mutation.topics().expect("routable");
    let rendered: Vec<String> = targets.iter().map(Topic::to_string).collect();
    assert_eq!(
        rendered,
        [
            "projects:org:acme:all".to_owned(),
            format!("projects:org:acme:project:{id}"),
            "projects:org:acme:templates".to_owned(),
        ]
    );
}

proptest! {
    #[test]
    fn any_valid_org_and_kind_round_trips(
        org_id in "[A-Za-z0-9_-]{1,64}",
        kind in 0usize..5,
        uuid in any::<u128>(),
        name in "[a-np-z][a-z0-9:._-]{0,40}",
    ) {
        let unscoped = match kind {
            0 => Topic::all(),
            1 => Topic::tasks(),
            2 => Topic::templates(),
            3 => Topic::project(Uuid::from_u128(uuid)),
            _ => Topic::embed(&name).expect("generated embed name is valid"),
        };
        let topic = unscoped.in_org(OrgId::new(&org_id).expect("generated org is valid"));
        let topic = topic.expect("generated topics stay within the limit");
        prop_assert_eq!(Topic::parse(&topic.to_string()), Ok(topic));
    }

    #[test]
    fn any_text_after_an_org_prefix_never_panics(rest in "\\PC{0,300}") {
        let _ = Topic::parse(&format!("projects:org:{rest}"));
        let _ = Topic::parse(&format!("embed:org:{rest}"));
    }
}

// ---------------------------------------------------------------------------
// Tenant mode: what fails without a scope, and that nothing else breaks.

#[actix::test]
async fn global_mode_is_the_default() {
    assert!(!BrokerConfig::default().is_tenant_mode());
    assert!(!NotifierConfig::default().is_tenant_mode());

    let broker = TopicBroker::from_registry();
    let notifier = ProjectsNotifier::from_registry();
    let view = Recorder::default().start();
    broker
        .send(Subscribe::new(Topic::tasks(), view.clone().recipient()))
        .await
        .expect("broker alive")
        .expect("a global topic is accepted in global mode");

    let receipt = notifier
        .send(task_created("Paint"))
        .await
        .expect("notifier alive")
        .expect("an unscoped mutation is accepted in global mode");
    assert_eq!(receipt.delivered, 1);
    assert_eq!(recorded(&view).await.len(), 1);
}

#[actix::test]
async fn tenant_broker_refuses_an_unscoped_subscribe_and_keeps_working() {
    let broker = tenant_broker();
    let view = Recorder::default().start();

    let unscoped = [
        Topic::all(),
        Topic::tasks(),
        Topic::templates(),
        Topic::project(Uuid::new_v4()),
        Topic::embed("editor:1").expect("embed"),
    ];
    for topic in unscoped {
        let refused = broker
            .send(Subscribe::new(topic.clone(), view.clone().recipient()))
            .await
            .expect("broker alive");
        assert_eq!(refused, Err(SubscribeError::ScopeRequired(topic.clone())));
        assert!(
            refused
                .expect_err("refused")
                .to_string()
                .contains("Topic::in_org")
        );
        assert_eq!(broker.send(SubscriberCount(topic)).await.expect("alive"), 0);
    }
    assert_eq!(broker.send(TopicCount).await.expect("alive"), 0);

    let topic = scoped(Topic::tasks(), "acme");
    broker
        .send(Subscribe::new(topic.clone(), view.clone().recipient()))
        .await
        .expect("broker alive")
        .expect("a scoped topic is accepted");
    let receipt = broker
        .send(Publish::new(topic.clone(), task_event("Sand")))
        .await
        .expect("broker alive")
        .expect("a scoped publish is accepted");
    assert_eq!(receipt.delivered, 1);
    let got = recorded(&view).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "projects:org:acme:tasks");
}

#[actix::test]
async fn tenant_broker_refuses_an_unscoped_publish_and_keeps_working() {
    let broker = tenant_broker();
    let view = Recorder::default().start();
    let topic = scoped(Topic::all(), "acme");
    broker
        .send(Subscribe::new(topic.clone(), view.clone().recipient()))
        .await
        .expect("broker alive")
        .expect("scoped subscribe");

    let refused = broker
        .send(Publish::new(Topic::all(), task_event("Leak")))
        .await
        .expect("broker alive");
    assert_eq!(refused, Err(PublishError::ScopeRequired(Topic::all())));

    let receipt = broker
        .send(Publish::new(topic, task_event("Kept")))
        .await
        .expect("broker alive")
        .expect("scoped publish");
    assert_eq!(receipt.delivered, 1);
    let got = recorded(&view).await;
    assert_eq!(got.len(), 1, "only the scoped publish arrives: {got:?}");
    assert_title(&got[0].1, "Kept");
}

/// Checks that `event` is the task titled `title`.
fn assert_title(event: &ProjectsEvent, title: &str) {
    match &event.payload {
        Payload::Task(task) => assert_eq!(task.title, title),
        other => panic!("expected a task payload, got {other:?}"),
    }
}

#[actix::test]
async fn tenant_notifier_refuses_an_unscoped_mutation_and_delivers_nothing() {
    // A global broker, so that a global subscriber could hear a leak.
    let broker = TopicBroker::default().start();
    let notifier = tenant_notifier(broker.clone());
    let global = Recorder::default().start();
    let tenant = Recorder::default().start();
    for (topic, view) in [
        (Topic::all(), &global),
        (scoped(Topic::all(), "acme"), &tenant),
    ] {
        broker
            .send(Subscribe::new(topic, view.clone().recipient()))
            .await
            .expect("broker alive")
            .expect("subscribe");
    }

    let refused = notifier
        .send(task_created("Leak"))
        .await
        .expect("notifier alive");
    assert_eq!(refused, Err(NotifyError::ScopeRequired));
    notifier.do_send(task_created("Leak too"));

    let receipt = notifier
        .send(task_created("Kept").in_org(org("acme")))
        .await
        .expect("notifier alive")
        .expect("a scoped mutation is accepted");
    assert_eq!(receipt.delivered, 1);

    assert!(recorded(&global).await.is_empty());
    let got = recorded(&tenant).await;
    assert_eq!(got.len(), 1);
    assert_title(&got[0].1, "Kept");
}

#[actix::test]
async fn an_embed_mutation_on_a_scoped_topic_carries_its_scope() {
    let broker = tenant_broker();
    let notifier = tenant_notifier(broker.clone());
    let view = Recorder::default().start();
    let topic = scoped(Topic::embed("editor:7").expect("embed"), "acme");
    broker
        .send(Subscribe::new(topic.clone(), view.clone().recipient()))
        .await
        .expect("broker alive")
        .expect("subscribe");

    let mutation = Mutation::embed(topic, EventName::Saved, Map::new()).expect("embed");
    assert_eq!(mutation.org(), Some(&org("acme")));
    let receipt = notifier
        .send(mutation)
        .await
        .expect("notifier alive")
        .expect("the embed topic's scope is enough");
    assert_eq!(receipt.delivered, 1);

    let unscoped = Topic::embed("editor:7").expect("embed");
    let refused = notifier
        .send(Mutation::embed(unscoped, EventName::Saved, Map::new()).expect("embed"))
        .await
        .expect("notifier alive");
    assert_eq!(refused, Err(NotifyError::ScopeRequired));
    assert_eq!(recorded(&view).await.len(), 1);
}

#[actix::test]
async fn a_tenant_broker_refuses_a_global_notifiers_unscoped_fanout() {
    let broker = tenant_broker();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let view = Recorder::default().start();
    broker
        .send(Subscribe::new(
            scoped(Topic::all(), "acme"),
            view.clone().recipient(),
        ))
        .await
        .expect("broker alive")
        .expect("subscribe");

    let refused = notifier
        .send(task_created("Leak"))
        .await
        .expect("notifier alive");
    assert_eq!(refused, Err(NotifyError::ScopeRequired));
    notifier.do_send(task_created("Leak too"));

    let receipt = notifier
        .send(task_created("Kept").in_org(org("acme")))
        .await
        .expect("notifier alive")
        .expect("scoped");
    assert_eq!(receipt.delivered, 1);
    let got = recorded(&view).await;
    assert_eq!(got.len(), 1);
    assert_title(&got[0].1, "Kept");
}

#[actix::test]
async fn tenant_mode_can_be_the_system_default() {
    let broker = tenant_broker();
    SystemRegistry::set(broker);
    SystemRegistry::set(tenant_notifier(TopicBroker::from_registry()));

    let view = Recorder::default().start();
    let refused = TopicBroker::from_registry()
        .send(Subscribe::new(Topic::all(), view.clone().recipient()))
        .await
        .expect("broker alive");
    assert_eq!(refused, Err(SubscribeError::ScopeRequired(Topic::all())));
    let refused = ProjectsNotifier::from_registry()
        .send(task_created("Leak"))
        .await
        .expect("notifier alive");
    assert_eq!(refused, Err(NotifyError::ScopeRequired));
}

// ---------------------------------------------------------------------------
// The isolation proof.

/// One way events travel from the suite's publishes to its subscribers.
///
/// The in-process transport is one broker and one notifier. A bridged
/// transport would subscribe on one node's broker and publish through
/// another node's notifier.
trait Transport {
    /// A name for failure messages.
    fn name(&self) -> &str;

    /// The broker the suite's subscribers subscribe on.
    fn subscribe_on(&self) -> Addr<TopicBroker>;

    /// The notifier the suite sends its mutations through.
    fn publish_through(&self) -> Addr<ProjectsNotifier>;

    /// Whether a mutation's awaited receipt counts every delivery of it.
    /// True in process; false when events cross a network, where the
    /// receipt counts only the publishing node's subscribers.
    fn delivered_on_receipt(&self) -> bool;

    /// Whether the broker refuses topics without an organisation.
    fn tenant_mode(&self) -> bool;

    /// Waits until everything published so far has reached the
    /// subscribers' mailboxes.
    async fn settle(&self);
}

/// One broker and one notifier, both on the arbiter given.
struct InProcess {
    name: &'static str,
    broker: Addr<TopicBroker>,
    notifier: Addr<ProjectsNotifier>,
    tenant_mode: bool,
}

impl InProcess {
    fn start(name: &'static str, tenant_mode: bool, arbiter: &ArbiterHandle) -> InProcess {
        let broker_config = BrokerConfig::default().tenant_mode(tenant_mode);
        let broker =
            TopicBroker::start_in_arbiter(arbiter, move |_| TopicBroker::new(broker_config));
        let notifier_config = NotifierConfig::default().tenant_mode(tenant_mode);
        let to = broker.clone();
        let notifier = ProjectsNotifier::start_in_arbiter(arbiter, move |_| {
            ProjectsNotifier::new(to).with_config(notifier_config)
        });
        InProcess {
            name,
            broker,
            notifier,
            tenant_mode,
        }
    }
}

impl Transport for InProcess {
    fn name(&self) -> &str {
        self.name
    }

    fn subscribe_on(&self) -> Addr<TopicBroker> {
        self.broker.clone()
    }

    fn publish_through(&self) -> Addr<ProjectsNotifier> {
        self.notifier.clone()
    }

    fn delivered_on_receipt(&self) -> bool {
        true
    }

    fn tenant_mode(&self) -> bool {
        self.tenant_mode
    }

    async fn settle(&self) {
        // An awaited mutation is already in its subscribers' mailboxes.
    }
}

/// Two nodes joined through a Redis server of the test's own: the suite's
/// subscribers live on node b and its mutations are sent on node a, so
/// every event crosses the bridge.
#[cfg(feature = "redis")]
struct OverRedis {
    name: &'static str,
    tenant_mode: bool,
    /// Node a's notifier; node a's broker lives as long as it does.
    a: Addr<ProjectsNotifier>,
    b: Addr<TopicBroker>,
    barrier: Addr<Recorder>,
    _bridges: [Addr<projects_pubsub::RedisBridge>; 2],
    _redis: cluster_support::RedisServer,
}

#[cfg(feature = "redis")]
impl OverRedis {
    /// The organisation of the markers that [`Transport::settle`] sends:
    /// no tenant of the suite has it.
    const BARRIER_ORG: &str = "settle-barrier";

    async fn start(name: &'static str, tenant_mode: bool) -> OverRedis {
        use cluster_support::{RedisServer, config, unique_prefix};
        use projects_pubsub::RedisBridge;

        let redis = RedisServer::start();
        let prefix = unique_prefix("tenants");
        let here = Arbiter::current();
        let a = InProcess::start(name, tenant_mode, &here);
        let b = InProcess::start(name, tenant_mode, &here);
        let bridge = |node: &InProcess, id: &str| {
            RedisBridge::connect(node.broker.clone(), config(&redis, &prefix, id))
        };
        let bridges = [
            bridge(&a, "a").await.expect("node a connects"),
            bridge(&b, "b").await.expect("node b connects"),
        ];

        let barrier = Recorder::default().start();
        b.broker
            .send(Subscribe::new(
                OverRedis::barrier_topic(),
                barrier.clone().recipient(),
            ))
            .await
            .expect("broker alive")
            .expect("a scoped topic is accepted in either mode");

        OverRedis {
            name,
            tenant_mode,
            a: a.notifier,
            b: b.broker,
            barrier,
            _bridges: bridges,
            _redis: redis,
        }
    }

    fn barrier_topic() -> Topic {
        scoped(
            Topic::embed("barrier").expect("embed"),
            OverRedis::BARRIER_ORG,
        )
    }
}

#[cfg(feature = "redis")]
impl Transport for OverRedis {
    fn name(&self) -> &str {
        self.name
    }

    fn subscribe_on(&self) -> Addr<TopicBroker> {
        self.b.clone()
    }

    fn publish_through(&self) -> Addr<ProjectsNotifier> {
        self.a.clone()
    }

    fn delivered_on_receipt(&self) -> bool {
        false
    }

    fn tenant_mode(&self) -> bool {
        self.tenant_mode
    }

    /// Sends a marker after everything else on node a and waits until
    /// node b has handed it on: the bridge keeps each origin's order, so
    /// every event published before it is in its subscribers' mailboxes.
    async fn settle(&self) {
        let markers = recorded(&self.barrier).await.len();
        let topic = Topic::embed("barrier").expect("embed");
        let mutation = Mutation::embed(topic, EventName::Saved, Map::new())
            .expect("a valid embed mutation")
            .in_org(org(OverRedis::BARRIER_ORG));
        self.a
            .send(mutation)
            .await
            .expect("notifier alive")
            .expect("the marker is routed");

        let barrier = self.barrier.clone();
        cluster_support::eventually("the marker crosses the bridge", || {
            let barrier = barrier.clone();
            async move { recorded(&barrier).await.len() > markers }
        })
        .await;
    }
}

/// A small seeded generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u64_pair(self.next(), self.next())
    }
}

/// Every tenant has a project with this id (say, imported from one
/// template): only the organisation key tells their topics apart.
const SHARED_PROJECT: Uuid = Uuid::from_u128(0x5EED_0000_0000_4000_8000_0000_0000_0001);

/// Embed names: every tenant uses both; only `board` has subscribers.
const EMBED_NAMES: [&str; 2] = ["board", "chat"];

struct Tenant {
    org: String,
    /// Projects 0 and 1 and the shared one have subscribers; 2 has none.
    projects: [Uuid; 4],
}

/// What one generated mutation changes, before it becomes a [`Mutation`].
enum Change {
    Project { uuid: Uuid, template: bool },
    ProjectRef { uuid: Uuid, template: Option<bool> },
    Task,
    Assignment { project: Uuid },
    Dependency { project: Uuid },
    Embed { name: &'static str },
}

struct Planned {
    tenant: usize,
    change: Change,
    event: ProjectsEvent,
}

fn tenants(count: usize, rng: &mut Rng) -> Vec<Tenant> {
    (0..count)
        .map(|at| Tenant {
            org: if at % 2 == 0 {
                format!("org-{at:03}")
            } else {
                format!("Tenant_{at}")
            },
            projects: [rng.uuid(), rng.uuid(), rng.uuid(), SHARED_PROJECT],
        })
        .collect()
}

/// The names of the catalog for one resource, plus one custom name.
fn names_of(resource: Resource) -> Vec<EventName> {
    let mut names: Vec<EventName> = EventName::CATALOG
        .iter()
        .filter(|name| name.resource() == Some(resource))
        .cloned()
        .collect();
    names.push(EventName::parse("budget_approved").expect("valid custom name"));
    names
}

/// A unique id of a generated mutation, carried in its payload.
fn seq_uuid(seq: u64) -> Uuid {
    Uuid::from_u128(0xA11C_E000_0000_0000_0000_0000_0000_0000 | u128::from(seq))
}

fn plan(tenants: &[Tenant], count: u64, rng: &mut Rng) -> Vec<Planned> {
    let names: HashMap<Resource, Vec<EventName>> = [
        Resource::Project,
        Resource::Task,
        Resource::Assignment,
        Resource::Dependency,
        Resource::Embed,
    ]
    .into_iter()
    .map(|resource| (resource, names_of(resource)))
    .collect();

    (0..count)
        .map(|seq| {
            let tenant = rng.below(tenants.len());
            let project = tenants[tenant].projects[rng.below(4)];
            let (change, resource) = match rng.below(6) {
                0 => (
                    Change::Project {
                        uuid: project,
                        template: rng.coin(),
                    },
                    Resource::Project,
                ),
                1 => {
                    let template = match rng.below(3) {
                        0 => None,
                        1 => Some(false),
                        _ => Some(true),
                    };
                    let change = Change::ProjectRef {
                        uuid: project,
                        template,
                    };
                    (change, Resource::Project)
                }
                2 => (Change::Task, Resource::Task),
                3 => (Change::Assignment { project }, Resource::Assignment),
                4 => (Change::Dependency { project }, Resource::Dependency),
                _ => {
                    let name = EMBED_NAMES[rng.below(EMBED_NAMES.len())];
                    (Change::Embed { name }, Resource::Embed)
                }
            };
            let choices = &names[&resource];
            let name = choices[rng.below(choices.len())].clone();
            let event = ProjectsEvent::new(name, payload_of(&change, seq));
            Planned {
                tenant,
                change,
                event,
            }
        })
        .collect()
}

fn payload_of(change: &Change, seq: u64) -> Payload {
    let mut tagged = Map::new();
    tagged.insert("seq".into(), json!(seq));
    match *change {
        Change::Project { uuid, template } => {
            Payload::Project(ProjectPayload::new(uuid, format!("m{seq}"), template))
        }
        Change::ProjectRef { uuid, template } => Payload::ProjectRef(ProjectRef {
            uuid,
            is_template: template,
            extra: tagged,
        }),
        Change::Task => Payload::Task(TaskPayload {
            uuid: seq_uuid(seq),
            title: format!("m{seq}"),
        }),
        Change::Assignment { project } => Payload::Assignment(AssignmentPayload {
            project_uuid: project,
            uuid: Some(seq_uuid(seq)),
        }),
        Change::Dependency { project } => Payload::Dependency(DependencyPayload {
            assignment_uuid: seq_uuid(seq),
            depends_on_uuid: seq_uuid(seq | 1 << 40),
            project_uuid: project,
        }),
        Change::Embed { .. } => Payload::Embed(tagged),
    }
}

/// The sequence number a generated event carries.
fn seq_of(event: &ProjectsEvent) -> u64 {
    let from_uuid = |uuid: Uuid| (uuid.as_u128() & u128::from(u64::MAX)) as u64;
    let from_map = |map: &Map<String, Value>| {
        map.get("seq")
            .and_then(Value::as_u64)
            .expect("generated maps carry seq")
    };
    match &event.payload {
        Payload::Project(project) => project.name[1..].parse().expect("name is m<seq>"),
        Payload::ProjectRef(project) => from_map(&project.extra),
        Payload::Task(task) => from_uuid(task.uuid),
        Payload::Assignment(assignment) => {
            from_uuid(assignment.uuid.expect("generated assignments carry a uuid"))
        }
        Payload::Dependency(dependency) => from_uuid(dependency.assignment_uuid),
        Payload::Embed(map) => from_map(map),
    }
}

/// The routing table of the catalog, written out again for the test: the
/// topic strings one change goes to in organisation `org`.
fn expected_topics(org: &str, change: &Change) -> Vec<String> {
    let topic = |kind: &str| format!("projects:org:{org}:{kind}");
    let project = |uuid: &Uuid| topic(&format!("project:{uuid}"));
    match change {
        Change::Project { uuid, template } => {
            let mut topics = vec![topic("all"), project(uuid)];
            if *template {
                topics.push(topic("templates"));
            }
            topics
        }
        Change::ProjectRef { uuid, template } => {
            let mut topics = vec![topic("all"), project(uuid)];
            if *template == Some(true) {
                topics.push(topic("templates"));
            }
            topics
        }
        Change::Task => vec![topic("all"), topic("tasks")],
        Change::Assignment { project: uuid } | Change::Dependency { project: uuid } => {
            vec![topic("all"), project(uuid)]
        }
        Change::Embed { name } => vec![format!("embed:org:{org}:{name}")],
    }
}

/// The topics every tenant's subscribers listen on: the expected string,
/// and the topic built through the crate's API.
fn subscribed_topics(tenant: &Tenant) -> Vec<(String, Topic)> {
    let o = &tenant.org;
    let [first, second, _, shared] = tenant.projects;
    let topics = [
        (format!("projects:org:{o}:all"), Topic::all()),
        (format!("projects:org:{o}:tasks"), Topic::tasks()),
        (format!("projects:org:{o}:templates"), Topic::templates()),
        (
            format!("projects:org:{o}:project:{first}"),
            Topic::project(first),
        ),
        (
            format!("projects:org:{o}:project:{second}"),
            Topic::project(second),
        ),
        (
            format!("projects:org:{o}:project:{shared}"),
            Topic::project(shared),
        ),
        (
            format!("embed:org:{o}:board"),
            Topic::embed("board").expect("embed"),
        ),
    ];
    topics
        .into_iter()
        .map(|(text, topic)| (text, scoped(topic, o)))
        .collect()
}

/// A subscriber of the suite: its tenant (none for a global bystander),
/// its topic string and the events it must receive, in order.
struct Expectation {
    tenant: Option<usize>,
    topic: String,
    recorder: Addr<Recorder>,
    expected: Vec<Got>,
}

/// Subscribes a recorder to every topic kind of every tenant (two on each
/// tenant's `all`), publishes `planned` through the transport, and checks
/// that each subscriber received exactly the events the routing table
/// gives its topic, in order, and never one of another tenant.
///
/// In global mode, bystanders also subscribe to the unscoped topics; all
/// mutations are scoped, so they must receive nothing.
async fn isolation_suite(transport: &impl Transport, tenants: &[Tenant], planned: &[Planned]) {
    let name = transport.name();
    let broker = transport.subscribe_on();

    let mut subscribers: Vec<(Option<usize>, String, Topic)> = Vec::new();
    for (at, tenant) in tenants.iter().enumerate() {
        for (text, topic) in subscribed_topics(tenant) {
            assert_eq!(topic.to_string(), text, "{name}: rendering");
            if text.ends_with(":all") {
                subscribers.push((Some(at), text.clone(), topic.clone()));
            }
            subscribers.push((Some(at), text, topic));
        }
    }
    if !transport.tenant_mode() {
        let bystanders = [
            Topic::all(),
            Topic::tasks(),
            Topic::templates(),
            Topic::project(SHARED_PROJECT),
            Topic::embed("board").expect("embed"),
        ];
        for topic in bystanders {
            subscribers.push((None, topic.to_string(), topic));
        }
    }

    let mut by_topic: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut expectations = Vec::new();
    for (at, (tenant, text, topic)) in subscribers.iter().enumerate() {
        let recorder = Recorder::default().start();
        broker
            .send(Subscribe::new(topic.clone(), recorder.clone().recipient()))
            .await
            .expect("broker alive")
            .unwrap_or_else(|error| panic!("{name}: subscribe to {text}: {error}"));
        by_topic.entry(text).or_default().push(at);
        expectations.push(Expectation {
            tenant: *tenant,
            topic: text.clone(),
            recorder,
            expected: Vec::new(),
        });
    }

    // The expected events of each subscriber, from the routing table above.
    let mut total_expected = 0;
    for planned in planned {
        let org = &tenants[planned.tenant].org;
        for topic in expected_topics(org, &planned.change) {
            for &at in by_topic.get(topic.as_str()).into_iter().flatten() {
                expectations[at]
                    .expected
                    .push((topic.clone(), planned.event.clone()));
                total_expected += 1;
            }
        }
    }

    assert!(total_expected > 0, "{name}: the plan delivers nothing");

    let notifier = transport.publish_through();
    let mut delivered = 0;
    for planned in planned {
        let mutation = mutation_of(planned, tenants);
        let receipt = notifier
            .send(mutation)
            .await
            .expect("notifier alive")
            .unwrap_or_else(|error| panic!("{name}: publish refused: {error}"));
        delivered += receipt.delivered;
    }
    if transport.delivered_on_receipt() {
        assert_eq!(
            delivered, total_expected,
            "{name}: deliveries over all topics"
        );
    }
    transport.settle().await;

    for expectation in &expectations {
        // After `settle`, every event is queued before this request: an
        // extra one, of another tenant or not, would be in the reply.
        let got = recorded(&expectation.recorder).await;

        for (topic, event) in &got {
            let from = planned[seq_of(event) as usize].tenant;
            assert_eq!(
                Some(from),
                expectation.tenant,
                "{name}: a subscriber of {} received an event of tenant {} on {topic}",
                expectation.topic,
                tenants[from].org
            );
        }
        assert_eq!(
            got.len(),
            expectation.expected.len(),
            "{name}: number of events on {}",
            expectation.topic
        );
        assert!(
            got == expectation.expected,
            "{name}: the events on {} differ from the routing table: {}",
            expectation.topic,
            first_difference(&got, &expectation.expected)
        );
    }
}

/// Builds the mutation of a planned change, scoped to its tenant.
fn mutation_of(planned: &Planned, tenants: &[Tenant]) -> Mutation {
    let org = org(&tenants[planned.tenant].org);
    let event = planned.event.clone();
    let mutation = match &planned.change {
        Change::Embed { name } => {
            let topic = Topic::embed(name).expect("embed");
            let Payload::Embed(map) = event.payload else {
                panic!("an embed change has an embed payload");
            };
            Mutation::embed(topic, event.name, map)
        }
        _ => Mutation::from_event(event),
    };
    mutation
        .expect("generated names fit their resource")
        .in_org(org)
}

/// Where two event lists first differ, for a readable failure.
fn first_difference(got: &[Got], expected: &[Got]) -> String {
    let at = got
        .iter()
        .zip(expected)
        .position(|(got, expected)| got != expected)
        .unwrap_or(got.len().min(expected.len()));
    let show = |item: Option<&Got>| item.map(|(topic, event)| (topic.clone(), seq_of(event)));
    format!(
        "first difference at {at}: got {:?}, expected {:?}",
        show(got.get(at)),
        show(expected.get(at)),
    )
}

const TENANTS: usize = 100;
const MUTATIONS: u64 = 4_000;

#[actix::test]
async fn no_tenant_ever_hears_another_in_tenant_mode() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let tenants = tenants(TENANTS, &mut rng);
    let planned = plan(&tenants, MUTATIONS, &mut rng);
    let here = Arbiter::current();
    let transport = InProcess::start("in-process, tenant mode", true, &here);
    isolation_suite(&transport, &tenants, &planned).await;
}

#[actix::test]
async fn no_tenant_ever_hears_another_in_global_mode_and_global_topics_hear_nothing() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let tenants = tenants(TENANTS, &mut rng);
    let planned = plan(&tenants, MUTATIONS, &mut rng);
    let here = Arbiter::current();
    let transport = InProcess::start("in-process, global mode", false, &here);
    isolation_suite(&transport, &tenants, &planned).await;
}

#[actix::test]
async fn no_tenant_ever_hears_another_with_the_broker_on_its_own_thread() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let tenants = tenants(TENANTS, &mut rng);
    let planned = plan(&tenants, MUTATIONS, &mut rng);
    let elsewhere = Arbiter::new();
    let transport = InProcess::start("in-process, own arbiter", true, &elsewhere.handle());
    isolation_suite(&transport, &tenants, &planned).await;
    elsewhere.stop();
}

#[cfg(feature = "redis")]
#[actix::test]
async fn no_tenant_ever_hears_another_across_a_redis_bridge_in_tenant_mode() {
    let mut rng = Rng(0xBF58_476D_1CE4_E5B9);
    let tenants = tenants(TENANTS, &mut rng);
    let planned = plan(&tenants, MUTATIONS, &mut rng);
    let transport = OverRedis::start("over redis, tenant mode", true).await;
    isolation_suite(&transport, &tenants, &planned).await;
}

#[cfg(feature = "redis")]
#[actix::test]
async fn no_tenant_ever_hears_another_across_a_redis_bridge_in_global_mode() {
    let mut rng = Rng(0x94D0_49BB_1331_11EB);
    let tenants = tenants(TENANTS, &mut rng);
    let planned = plan(&tenants, MUTATIONS, &mut rng);
    let transport = OverRedis::start("over redis, global mode", false).await;
    isolation_suite(&transport, &tenants, &planned).await;
}
