//! The behaviour the original module's own tests pin down (the catalog's
//! list), reproduced with real actors: a broker, a notifier, and recording
//! subscribers.
//!
//! "Events are emitted only after the commit" belongs to the host's
//! transaction handling and is not tested here.

#[macro_use]
mod common;

use actix::prelude::*;
use projects_pubsub::{
    AssignmentPayload, EventName, Mutation, NotifierConfig, NotifyReceipt, Payload, ProjectPayload,
    ProjectRef, ProjectsNotifier, SetBroadcasting, TaskPayload, Topic, TopicBroker,
};
use uuid::Uuid;

use common::{Log, Recorder, dependency, marker_mutation, next_marker, subscriber, task};

/// A broker and a notifier of it, started on the current arbiter.
fn start() -> (Addr<TopicBroker>, Addr<ProjectsNotifier>) {
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    (broker, notifier)
}

/// Sends a marker mutation to `topic` through `notifier` and waits until
/// `log` has seen it: everything the notifier was sent before has arrived.
async fn settle(notifier: &Addr<ProjectsNotifier>, topic: &Topic, log: &Log) {
    let name = next_marker();
    notifier.do_send(marker_mutation(topic, &name));
    log.wait_marker(&name).await;
}

#[actix::test]
async fn creating_a_project_reaches_projects_all_with_uuid_name_and_is_template_false() {
    let (broker, notifier) = start();
    let (_overview, log) = subscriber(&broker, &Topic::all()).await;
    let id = Uuid::new_v4();

    let project = ProjectPayload::new(id, "Kitchen refit", false);
    notifier.do_send(Mutation::project(EventName::ProjectCreated, project).unwrap());
    settle(&notifier, &Topic::all(), &log).await;

    let seen = assert_one!(log, Topic::all(), EventName::ProjectCreated);
    let Payload::Project(project) = &seen.payload else {
        panic!("expected a full project payload, got {:?}", seen.payload);
    };
    assert_eq!(project.uuid, id);
    assert_eq!(project.name, "Kitchen refit");
    assert!(!project.is_template);
    assert_eq!(seen.event.namespace(), "projects");
    let json = seen.event.to_json();
    assert!(json.contains(r#""is_template":false"#), "{json}");
}

#[actix::test]
async fn creating_a_template_reaches_projects_templates() {
    let (broker, notifier) = start();
    let (_gallery, log) = subscriber(&broker, &Topic::templates()).await;
    let id = Uuid::new_v4();

    let template = ProjectPayload::new(id, "Bathroom template", true);
    notifier.do_send(Mutation::project(EventName::ProjectCreated, template).unwrap());
    settle(&notifier, &Topic::templates(), &log).await;

    let seen = assert_one!(log, Topic::templates(), EventName::ProjectCreated);
    assert_eq!(seen.payload.project_uuid(), Some(id));
    assert!(matches!(&seen.payload, Payload::Project(p) if p.is_template));
}

#[actix::test]
async fn creating_a_project_that_is_not_a_template_does_not_reach_projects_templates() {
    let (broker, notifier) = start();
    let (_gallery, log) = subscriber(&broker, &Topic::templates()).await;

    let project = ProjectPayload::new(Uuid::new_v4(), "Flat", false);
    notifier.do_send(Mutation::project(EventName::ProjectCreated, project).unwrap());
    settle(&notifier, &Topic::templates(), &log).await;

    assert_nothing!(log);
}

#[actix::test]
async fn updating_and_deleting_a_project_reach_projects_all_with_the_same_uuid() {
    let (broker, notifier) = start();
    let (_overview, log) = subscriber(&broker, &Topic::all()).await;
    let id = Uuid::new_v4();

    let renamed = ProjectPayload::new(id, "Kitchen refit, phase 2", false);
    notifier.do_send(Mutation::project(EventName::ProjectUpdated, renamed).unwrap());
    notifier
        .do_send(Mutation::project_ref(EventName::ProjectDeleted, ProjectRef::new(id)).unwrap());
    settle(&notifier, &Topic::all(), &log).await;

    let events = log.events();
    assert_names!(
        events,
        [EventName::ProjectUpdated, EventName::ProjectDeleted]
    );
    for seen in &events {
        assert_eq!(seen.topic, Topic::all());
        assert_eq!(seen.payload.project_uuid(), Some(id), "{}", seen.name);
    }
}

#[actix::test]
async fn task_create_update_and_delete_each_reach_projects_tasks() {
    let (broker, notifier) = start();
    let (_library, log) = subscriber(&broker, &Topic::tasks()).await;
    let created = task("Sand the floor");
    let id = created.uuid;
    let updated = TaskPayload {
        uuid: id,
        title: "Sand and oil the floor".into(),
    };

    notifier.do_send(Mutation::task(EventName::TaskCreated, created).unwrap());
    notifier.do_send(Mutation::task(EventName::TaskUpdated, updated.clone()).unwrap());
    notifier.do_send(Mutation::task(EventName::TaskDeleted, updated).unwrap());
    settle(&notifier, &Topic::tasks(), &log).await;

    let events = log.events();
    assert_names!(
        events,
        [
            EventName::TaskCreated,
            EventName::TaskUpdated,
            EventName::TaskDeleted
        ]
    );
    for seen in &events {
        assert_eq!(seen.topic, Topic::tasks());
        assert!(
            matches!(&seen.payload, Payload::Task(t) if t.uuid == id),
            "{}",
            seen.name
        );
    }
}

#[actix::test]
async fn adding_and_removing_a_dependency_reach_the_topic_of_the_assignments_project() {
    let (broker, notifier) = start();
    let project = Uuid::new_v4();
    let topic = Topic::project(project);
    let (_page, log) = subscriber(&broker, &topic).await;
    let added = dependency(project);

    notifier.do_send(Mutation::dependency(EventName::DependencyAdded, added.clone()).unwrap());
    notifier.do_send(Mutation::dependency(EventName::DependencyRemoved, added.clone()).unwrap());
    settle(&notifier, &topic, &log).await;

    let events = log.events();
    assert_names!(
        events,
        [EventName::DependencyAdded, EventName::DependencyRemoved]
    );
    for seen in &events {
        assert_eq!(seen.topic, topic);
        let Payload::Dependency(dependency) = &seen.payload else {
            panic!("expected a dependency payload, got {:?}", seen.payload);
        };
        // All three uuids arrive, unchanged.
        assert_eq!(dependency, &added);
        let json = seen.event.to_json();
        for key in ["assignment_uuid", "depends_on_uuid", "project_uuid"] {
            assert!(json.contains(key), "{key} missing from {json}");
        }
    }
}

#[actix::test]
async fn reordering_assignments_reaches_the_project_topic_with_project_uuid() {
    let (broker, notifier) = start();
    let project = Uuid::new_v4();
    let topic = Topic::project(project);
    let (_page, log) = subscriber(&broker, &topic).await;

    let reorder = AssignmentPayload {
        project_uuid: project,
        uuid: None,
    };
    notifier.do_send(Mutation::assignment(EventName::AssignmentReordered, reorder).unwrap());
    settle(&notifier, &topic, &log).await;

    let seen = assert_one!(log, topic, EventName::AssignmentReordered);
    assert_eq!(seen.payload.project_uuid(), Some(project));
    let json = seen.event.to_json();
    assert!(
        json.contains(&format!(r#""project_uuid":"{project}""#)),
        "{json}"
    );
}

/// Subscribers on every topic a template mutation reaches, so "reaches
/// nobody" is checked everywhere it could have gone.
async fn watch_everything(
    broker: &Addr<TopicBroker>,
    id: Uuid,
) -> Vec<(Topic, Log, Addr<Recorder>)> {
    let mut watchers = Vec::new();
    for topic in [
        Topic::all(),
        Topic::templates(),
        Topic::project(id),
        Topic::tasks(),
    ] {
        let (addr, log) = subscriber(broker, &topic).await;
        watchers.push((topic, log, addr));
    }
    watchers
}

#[actix::test]
async fn a_mutation_made_with_broadcasting_switched_off_reaches_nobody() {
    let broker = TopicBroker::default().start();
    let quiet = NotifierConfig::default().broadcasting(false);
    let notifier = ProjectsNotifier::new(broker.clone())
        .with_config(quiet)
        .start();
    let id = Uuid::new_v4();
    let watchers = watch_everything(&broker, id).await;

    let template = ProjectPayload::new(id, "Template", true);
    let mutation = Mutation::project(EventName::ProjectCreated, template).unwrap();
    notifier.do_send(mutation.clone());
    let receipt = notifier.send(mutation).await.unwrap().unwrap();
    notifier.do_send(Mutation::task(EventName::TaskCreated, task("Paint")).unwrap());
    assert_eq!(receipt, NotifyReceipt::default());

    // Markers through the same notifier, once it broadcasts again.
    assert!(!notifier.send(SetBroadcasting(true)).await.unwrap());
    for (topic, log, _) in &watchers {
        settle(&notifier, topic, log).await;
        assert_nothing!(log, topic.to_string());
    }
}

#[actix::test]
async fn switching_broadcasting_off_at_run_time_silences_later_mutations_only() {
    let (broker, notifier) = start();
    let id = Uuid::new_v4();
    let watchers = watch_everything(&broker, id).await;
    let update = |name: &str| {
        Mutation::project(
            EventName::ProjectUpdated,
            ProjectPayload::new(id, name, true),
        )
        .unwrap()
    };

    notifier.do_send(update("before"));
    assert!(
        notifier.send(SetBroadcasting(false)).await.unwrap(),
        "it was on"
    );
    notifier.do_send(update("while off"));
    let receipt = notifier
        .send(update("while off, awaited"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.delivered, 0);
    assert!(
        !notifier.send(SetBroadcasting(true)).await.unwrap(),
        "it was off"
    );
    notifier.do_send(update("after"));

    for (topic, log, _) in &watchers {
        settle(&notifier, topic, log).await;
        let names: Vec<String> = log
            .events()
            .iter()
            .map(|seen| match &seen.payload {
                Payload::Project(project) => project.name.clone(),
                other => panic!("unexpected payload {other:?}"),
            })
            .collect();
        if *topic == Topic::tasks() {
            assert!(names.is_empty(), "{names:?}");
        } else {
            assert_eq!(names, ["before", "after"], "on {topic}");
        }
    }
}
