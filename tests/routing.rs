//! Every row of the catalog's routing table: first through the pure
//! `Mutation::topics`, then end to end through a notifier and a broker with
//! a subscriber on every kind of topic, checking who receives what and that
//! nobody else does.

#[macro_use]
mod common;

use std::sync::Arc;

use actix::prelude::*;
use projects_pubsub::{
    AssignmentPayload, CustomName, EventName, Mutation, MutationError, NotifyError, Payload,
    ProjectPayload, ProjectRef, ProjectsEvent, ProjectsNotifier, Resource, Topic, TopicBroker,
    TopicError,
};
use serde_json::{Map, json};
use uuid::Uuid;

use common::{Log, Recorder, assignment, dependency, marker_mutation, next_marker, org, task};

/// The targets of `mutation`, sorted, so a test states the set it expects.
fn targets(mutation: &Mutation) -> Vec<Topic> {
    let mut topics = mutation.topics().expect("the mutation routes").to_vec();
    let len = topics.len();
    topics.sort();
    topics.dedup();
    assert_eq!(topics.len(), len, "a topic appears twice in the targets");
    topics
}

fn sorted(mut topics: Vec<Topic>) -> Vec<Topic> {
    topics.sort();
    topics
}

/// Builds a mutation of one resource with the given name.
type Build = Box<dyn Fn(EventName) -> Result<Mutation, MutationError>>;

fn custom(name: &str) -> EventName {
    EventName::Custom(CustomName::new(name).unwrap())
}

// ---- The pure routing function ----------------------------------------------------------------

#[test]
fn project_that_is_not_a_template_routes_to_all_and_its_project() {
    let id = Uuid::new_v4();
    let mutation = Mutation::project(
        EventName::ProjectCreated,
        ProjectPayload::new(id, "Flat", false),
    )
    .unwrap();

    assert_eq!(
        targets(&mutation),
        sorted(vec![Topic::all(), Topic::project(id)])
    );
}

#[test]
fn template_project_routes_to_all_its_project_and_templates() {
    let id = Uuid::new_v4();
    let mutation = Mutation::project(
        EventName::ProjectCreated,
        ProjectPayload::new(id, "Tpl", true),
    )
    .unwrap();

    assert_eq!(
        targets(&mutation),
        sorted(vec![Topic::all(), Topic::project(id), Topic::templates()])
    );
}

#[test]
fn project_ref_without_is_template_routes_as_a_project_that_is_not_a_template() {
    let id = Uuid::new_v4();
    let mutation = Mutation::project_ref(EventName::ProjectArchived, ProjectRef::new(id)).unwrap();

    assert_eq!(
        targets(&mutation),
        sorted(vec![Topic::all(), Topic::project(id)])
    );
}

#[test]
fn project_ref_with_is_template_false_routes_as_a_project() {
    let id = Uuid::new_v4();
    let project = ProjectRef::new(id).template(false);
    let mutation = Mutation::project_ref(EventName::ProjectDeleted, project).unwrap();

    assert_eq!(
        targets(&mutation),
        sorted(vec![Topic::all(), Topic::project(id)])
    );
}

#[test]
fn project_ref_with_is_template_true_reaches_templates() {
    let id = Uuid::new_v4();
    let project = ProjectRef::new(id).template(true);
    let mutation = Mutation::project_ref(EventName::ProjectDeleted, project).unwrap();

    assert_eq!(
        targets(&mutation),
        sorted(vec![Topic::all(), Topic::project(id), Topic::templates()])
    );
}

#[test]
fn every_project_event_name_routes_by_the_project_row() {
    let id = Uuid::new_v4();
    for name in EventName::CATALOG
        .iter()
        .filter(|n| n.resource() == Some(Resource::Project))
    {
        let mutation = Mutation::project_ref(name.clone(), ProjectRef::new(id)).unwrap();
        assert_eq!(
            targets(&mutation),
            sorted(vec![Topic::all(), Topic::project(id)]),
            "{name}"
        );
    }
}

#[test]
fn task_routes_to_all_and_tasks() {
    for name in [
        EventName::TaskCreated,
        EventName::TaskUpdated,
        EventName::TaskDeleted,
    ] {
        let mutation = Mutation::task(name, task("Sand the floor")).unwrap();

        assert_eq!(
            targets(&mutation),
            sorted(vec![Topic::all(), Topic::tasks()])
        );
    }
}

#[test]
fn assignment_routes_to_all_and_the_project_of_project_uuid() {
    let project = Uuid::new_v4();
    let payload = assignment(project);
    let own = payload.uuid.unwrap();
    let mutation = Mutation::assignment(EventName::AssignmentCreated, payload).unwrap();

    assert_eq!(
        targets(&mutation),
        sorted(vec![Topic::all(), Topic::project(project)])
    );
    assert!(!targets(&mutation).contains(&Topic::project(own)));
}

#[test]
fn assignment_reorder_without_its_own_uuid_routes_to_the_project() {
    let project = Uuid::new_v4();
    let reorder = AssignmentPayload {
        project_uuid: project,
        uuid: None,
    };
    let mutation = Mutation::assignment(EventName::AssignmentReordered, reorder).unwrap();

    assert_eq!(
        targets(&mutation),
        sorted(vec![Topic::all(), Topic::project(project)])
    );
}

#[test]
fn dependency_routes_to_all_and_the_project_of_project_uuid() {
    let project = Uuid::new_v4();
    for name in [EventName::DependencyAdded, EventName::DependencyRemoved] {
        let mutation = Mutation::dependency(name, dependency(project)).unwrap();

        assert_eq!(
            targets(&mutation),
            sorted(vec![Topic::all(), Topic::project(project)])
        );
    }
}

#[test]
fn embed_routes_to_its_own_topic_only() {
    let topic = Topic::embed("editor:42").unwrap();
    for name in [
        EventName::Opened,
        EventName::Closed,
        EventName::Saved,
        EventName::Deleted,
    ] {
        let mutation = Mutation::embed(topic.clone(), name, Map::new()).unwrap();

        assert_eq!(targets(&mutation), vec![topic.clone()]);
    }
}

#[test]
fn scoped_mutations_route_to_the_scoped_topics_of_every_row() {
    let acme = org("acme");
    let id = Uuid::new_v4();
    let scoped = |topics: Vec<Topic>| {
        sorted(
            topics
                .into_iter()
                .map(|t| t.in_org(acme.clone()).unwrap())
                .collect(),
        )
    };
    let template = ProjectPayload::new(id, "Tpl", true);

    let cases = vec![
        (
            Mutation::project(EventName::ProjectCreated, template).unwrap(),
            scoped(vec![Topic::all(), Topic::project(id), Topic::templates()]),
        ),
        (
            Mutation::project_ref(EventName::ProjectStarted, ProjectRef::new(id)).unwrap(),
            scoped(vec![Topic::all(), Topic::project(id)]),
        ),
        (
            Mutation::task(EventName::TaskUpdated, task("Paint")).unwrap(),
            scoped(vec![Topic::all(), Topic::tasks()]),
        ),
        (
            Mutation::assignment(EventName::AssignmentUpdated, assignment(id)).unwrap(),
            scoped(vec![Topic::all(), Topic::project(id)]),
        ),
        (
            Mutation::dependency(EventName::DependencyAdded, dependency(id)).unwrap(),
            scoped(vec![Topic::all(), Topic::project(id)]),
        ),
        (
            Mutation::embed(Topic::embed("chat").unwrap(), EventName::Opened, Map::new()).unwrap(),
            scoped(vec![Topic::embed("chat").unwrap()]),
        ),
    ];
    for (mutation, expected) in cases {
        let mutation = mutation.in_org(acme.clone());

        assert_eq!(mutation.org(), Some(&acme));
        assert_eq!(targets(&mutation), expected, "{:?}", mutation.event().name);
        assert!(
            targets(&mutation)
                .iter()
                .all(|topic| topic.org() == Some(&acme))
        );
    }
}

#[test]
fn an_embed_topic_scoped_to_an_org_gives_the_mutation_that_org() {
    let acme = org("acme");
    let topic = Topic::embed("chat").unwrap().in_org(acme.clone()).unwrap();
    let mutation = Mutation::embed(topic.clone(), EventName::Saved, Map::new()).unwrap();

    assert_eq!(mutation.org(), Some(&acme));
    assert_eq!(targets(&mutation), vec![topic]);
}

#[test]
fn a_catalog_name_of_another_resource_is_name_not_for() {
    let id = Uuid::new_v4();
    let embed = Topic::embed("chat").unwrap();
    let constructors: Vec<(Resource, Build)> = vec![
        (
            Resource::Project,
            Box::new(move |n| Mutation::project(n, ProjectPayload::new(id, "P", false))),
        ),
        (
            Resource::Project,
            Box::new(move |n| Mutation::project_ref(n, ProjectRef::new(id))),
        ),
        (Resource::Task, Box::new(|n| Mutation::task(n, task("T")))),
        (
            Resource::Assignment,
            Box::new(move |n| Mutation::assignment(n, assignment(id))),
        ),
        (
            Resource::Dependency,
            Box::new(move |n| Mutation::dependency(n, dependency(id))),
        ),
        (
            Resource::Embed,
            Box::new(move |n| Mutation::embed(embed.clone(), n, Map::new())),
        ),
    ];

    for name in EventName::CATALOG {
        for (resource, build) in &constructors {
            let result = build(name.clone());
            if name.resource() == Some(*resource) {
                assert!(result.is_ok(), "{name} should fit a {resource}: {result:?}");
            } else {
                assert_eq!(
                    result,
                    Err(MutationError::NameNotFor {
                        name: name.clone(),
                        resource: *resource,
                    }),
                    "{name} for a {resource}"
                );
            }
        }
    }
}

#[test]
fn custom_names_are_accepted_for_any_resource() {
    let id = Uuid::new_v4();
    let name = custom("budget_approved");
    let embed = Topic::embed("chat").unwrap();

    let mutations = [
        Mutation::project(name.clone(), ProjectPayload::new(id, "P", true)),
        Mutation::project_ref(name.clone(), ProjectRef::new(id)),
        Mutation::task(name.clone(), task("T")),
        Mutation::assignment(name.clone(), assignment(id)),
        Mutation::dependency(name.clone(), dependency(id)),
        Mutation::embed(embed, name.clone(), Map::new()),
    ];
    for mutation in mutations {
        let mutation = mutation.expect("a custom name fits every resource");

        assert_eq!(mutation.event().name, name);
        assert!(mutation.topics().is_ok());
    }
}

#[test]
fn custom_names_route_by_their_payload() {
    let id = Uuid::new_v4();
    let mutation = Mutation::project(
        custom("budget_approved"),
        ProjectPayload::new(id, "P", true),
    )
    .unwrap();

    assert_eq!(
        targets(&mutation),
        sorted(vec![Topic::all(), Topic::project(id), Topic::templates()])
    );
}

#[test]
fn embed_on_a_canonical_topic_is_refused() {
    let canonical = [
        Topic::all(),
        Topic::tasks(),
        Topic::templates(),
        Topic::project(Uuid::nil()),
    ];
    for topic in canonical {
        let scoped = topic.clone().in_org(org("acme")).unwrap();
        for topic in [topic, scoped] {
            assert_eq!(
                Mutation::embed(topic.clone(), EventName::Opened, Map::new()),
                Err(MutationError::NotAnEmbedTopic(topic))
            );
        }
    }
}

#[test]
fn an_event_with_an_embed_payload_needs_its_topic() {
    let event = ProjectsEvent::new(EventName::Opened, Payload::Embed(Map::new()));

    assert_eq!(
        Mutation::from_event(event),
        Err(MutationError::EmbedNeedsTopic)
    );
}

#[test]
fn an_event_built_elsewhere_routes_like_its_constructor() {
    let id = Uuid::new_v4();
    let payload = dependency(id);
    let event = ProjectsEvent::new(EventName::DependencyRemoved, Payload::Dependency(payload));
    let decoded = ProjectsEvent::from_json(event.to_json().as_bytes()).unwrap();
    let mutation = Mutation::from_event(decoded).unwrap();

    assert_eq!(
        targets(&mutation),
        sorted(vec![Topic::all(), Topic::project(id)])
    );
    assert_eq!(
        Mutation::from_event(ProjectsEvent::new(
            EventName::TaskCreated,
            Payload::Dependency(dependency(id))
        )),
        Err(MutationError::NameNotFor {
            name: EventName::TaskCreated,
            resource: Resource::Dependency,
        })
    );
}

#[test]
fn an_org_that_makes_an_embed_topic_too_long_is_a_topic_error() {
    let name = "e".repeat(240);
    let topic = Topic::embed(&name).unwrap();
    let mutation = Mutation::embed(topic, EventName::Opened, Map::new())
        .unwrap()
        .in_org(org("a-rather-long-organisation-name"));

    assert!(matches!(
        mutation.topics(),
        Err(MutationError::Topic(TopicError::TooLong { .. }))
    ));
}

// ---- End to end: notifier, broker and a subscriber on every kind of topic ---------------------

/// A broker and notifier with one recorder on each topic of a small
/// workspace: the canonical four (two projects), two embed topics, and
/// the same again scoped to the organisation `acme`, plus `all` of `beta`.
struct Stage {
    notifier: Addr<ProjectsNotifier>,
    p1: Uuid,
    p2: Uuid,
    watchers: Vec<(Topic, Log)>,
    // Kept so the recorders live as long as the stage.
    _recorders: Vec<Addr<Recorder>>,
}

impl Stage {
    async fn new() -> Stage {
        let broker = TopicBroker::default().start();
        let notifier = ProjectsNotifier::new(broker.clone()).start();
        let (p1, p2) = (Uuid::new_v4(), Uuid::new_v4());
        let acme = org("acme");

        let unscoped = vec![
            Topic::all(),
            Topic::tasks(),
            Topic::templates(),
            Topic::project(p1),
            Topic::project(p2),
            Topic::embed("editor:1").unwrap(),
            Topic::embed("editor:2").unwrap(),
        ];
        let mut topics = unscoped.clone();
        topics.extend(
            unscoped
                .into_iter()
                .map(|t| t.in_org(acme.clone()).unwrap()),
        );
        topics.push(Topic::all().in_org(org("beta")).unwrap());

        let mut watchers = Vec::new();
        let mut recorders = Vec::new();
        for topic in topics {
            let (addr, log) = common::subscriber(&broker, &topic).await;
            watchers.push((topic, log));
            recorders.push(addr);
        }
        Stage {
            notifier,
            p1,
            p2,
            watchers,
            _recorders: recorders,
        }
    }

    /// Sends `mutation`, proves with markers sent after it through the same
    /// notifier that it reached exactly the watched topics `expected`, once
    /// each, and forgets what was seen.
    async fn check(&self, mutation: Mutation, expected: Vec<Topic>) {
        let event = mutation.event().clone();
        let routed = mutation.topics().unwrap();
        assert!(expected.iter().all(|topic| routed.contains(topic)));

        let receipt = self.notifier.send(mutation).await.unwrap().unwrap();
        assert_eq!(receipt.topics, routed.len(), "topics of {}", event.name);
        assert_eq!(
            receipt.delivered,
            expected.len(),
            "deliveries of {}",
            event.name
        );

        self.settle().await;
        let mut shared: Option<Arc<ProjectsEvent>> = None;
        for (topic, log) in &self.watchers {
            if expected.contains(topic) {
                let seen = assert_one!(log, topic.clone(), event.name.clone());
                assert_eq!(*seen.event, event, "payload on {topic}");
                assert_eq!(seen.payload, event.payload);
                // One event value is shared by every topic, never copied.
                match &shared {
                    None => shared = Some(seen.event),
                    Some(first) => assert!(Arc::ptr_eq(first, &seen.event), "copied for {topic}"),
                }
            } else {
                assert_nothing!(log, format!("{} on {topic}", event.name));
            }
            log.clear();
        }
    }

    /// Sends one marker mutation per watched topic through the notifier and
    /// waits until each watcher has seen its marker.
    async fn settle(&self) {
        let name = next_marker();
        for (topic, _) in &self.watchers {
            self.notifier.do_send(marker_mutation(topic, &name));
        }
        for (_, log) in &self.watchers {
            log.wait_marker(&name).await;
        }
    }
}

fn acme(topic: Topic) -> Topic {
    topic.in_org(org("acme")).unwrap()
}

#[actix::test]
async fn a_project_reaches_all_and_its_project_and_nobody_else() {
    let stage = Stage::new().await;
    let project = ProjectPayload::new(stage.p1, "Flat", false);

    stage
        .check(
            Mutation::project(EventName::ProjectCreated, project).unwrap(),
            vec![Topic::all(), Topic::project(stage.p1)],
        )
        .await;
}

#[actix::test]
async fn a_template_also_reaches_templates_and_nobody_else() {
    let stage = Stage::new().await;
    let template = ProjectPayload::new(stage.p1, "Tpl", true);

    stage
        .check(
            Mutation::project(EventName::ProjectUpdated, template).unwrap(),
            vec![Topic::all(), Topic::project(stage.p1), Topic::templates()],
        )
        .await;
}

#[actix::test]
async fn a_project_ref_routes_by_its_is_template_end_to_end() {
    let stage = Stage::new().await;

    stage
        .check(
            Mutation::project_ref(EventName::ProjectArchived, ProjectRef::new(stage.p2)).unwrap(),
            vec![Topic::all(), Topic::project(stage.p2)],
        )
        .await;
    stage
        .check(
            Mutation::project_ref(
                EventName::ProjectDeleted,
                ProjectRef::new(stage.p2).template(true),
            )
            .unwrap(),
            vec![Topic::all(), Topic::project(stage.p2), Topic::templates()],
        )
        .await;
}

#[actix::test]
async fn a_task_reaches_all_and_tasks_and_nobody_else() {
    let stage = Stage::new().await;

    stage
        .check(
            Mutation::task(EventName::TaskCreated, task("Paint")).unwrap(),
            vec![Topic::all(), Topic::tasks()],
        )
        .await;
}

#[actix::test]
async fn an_assignment_reaches_all_and_its_project_and_nobody_else() {
    let stage = Stage::new().await;

    stage
        .check(
            Mutation::assignment(EventName::AssignmentCreated, assignment(stage.p1)).unwrap(),
            vec![Topic::all(), Topic::project(stage.p1)],
        )
        .await;
}

#[actix::test]
async fn a_dependency_reaches_all_and_its_project_and_nobody_else() {
    let stage = Stage::new().await;

    stage
        .check(
            Mutation::dependency(EventName::DependencyAdded, dependency(stage.p2)).unwrap(),
            vec![Topic::all(), Topic::project(stage.p2)],
        )
        .await;
}

#[actix::test]
async fn an_embed_reaches_its_topic_only() {
    let stage = Stage::new().await;
    let topic = Topic::embed("editor:1").unwrap();
    let mut payload = Map::new();
    payload.insert("field".into(), json!("title"));

    stage
        .check(
            Mutation::embed(topic.clone(), EventName::Saved, payload).unwrap(),
            vec![topic],
        )
        .await;
}

#[actix::test]
async fn scoped_mutations_reach_only_the_topics_of_their_org() {
    let stage = Stage::new().await;
    let template = ProjectPayload::new(stage.p1, "Tpl", true);
    let acme_org = org("acme");

    stage
        .check(
            Mutation::project(EventName::ProjectCreated, template)
                .unwrap()
                .in_org(acme_org.clone()),
            vec![
                acme(Topic::all()),
                acme(Topic::project(stage.p1)),
                acme(Topic::templates()),
            ],
        )
        .await;
    stage
        .check(
            Mutation::task(EventName::TaskDeleted, task("Paint"))
                .unwrap()
                .in_org(acme_org.clone()),
            vec![acme(Topic::all()), acme(Topic::tasks())],
        )
        .await;
    stage
        .check(
            Mutation::embed(
                acme(Topic::embed("editor:2").unwrap()),
                EventName::Closed,
                Map::new(),
            )
            .unwrap(),
            vec![acme(Topic::embed("editor:2").unwrap())],
        )
        .await;
    stage
        .check(
            Mutation::assignment(EventName::AssignmentDeleted, assignment(stage.p2))
                .unwrap()
                .in_org(org("beta")),
            // Nobody watches beta's project topic: the receipt names two
            // topics, and one subscriber gets the event.
            vec![Topic::all().in_org(org("beta")).unwrap()],
        )
        .await;
}

#[actix::test]
async fn a_mutation_of_an_unwatched_project_reaches_only_all() {
    let stage = Stage::new().await;
    let elsewhere = Uuid::new_v4();
    let mutation =
        Mutation::dependency(EventName::DependencyRemoved, dependency(elsewhere)).unwrap();

    let receipt = stage
        .notifier
        .send(mutation.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.topics, 2);
    assert_eq!(receipt.delivered, 1);

    stage.settle().await;
    for (topic, log) in &stage.watchers {
        if *topic == Topic::all() {
            assert_one!(log, Topic::all(), EventName::DependencyRemoved);
        } else {
            assert_nothing!(log, topic.to_string());
        }
    }
}

#[actix::test]
async fn a_mutation_that_cannot_be_routed_is_refused_and_reaches_nobody() {
    let stage = Stage::new().await;
    let too_long = Topic::embed(&"e".repeat(240)).unwrap();
    let mutation = Mutation::embed(too_long, EventName::Opened, Map::new())
        .unwrap()
        .in_org(org("a-rather-long-organisation-name"));

    let refused = stage.notifier.send(mutation).await.unwrap();
    assert!(matches!(
        refused,
        Err(NotifyError::Mutation(MutationError::Topic(
            TopicError::TooLong { .. }
        )))
    ));

    stage.settle().await;
    for (topic, log) in &stage.watchers {
        assert_nothing!(log, topic.to_string());
    }
}
