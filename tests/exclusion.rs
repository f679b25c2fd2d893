//! Sender exclusion through the notifier: a mutation that names the
//! subscriber which caused it reaches everyone but that subscriber, on
//! every topic of the mutation.

use actix::prelude::*;
use projects_pubsub::{
    AssignmentPayload, Batch, BrokerConfig, Delivery, EventName, Mutation, NotifierConfig, OrgId,
    ProjectPayload, ProjectsNotifier, Subscribe, SubscriberId, TaskPayload, Topic, TopicBroker,
};
use uuid::Uuid;

/// A live view: records the topic and event name of every delivery.
#[derive(Default)]
struct View {
    got: Vec<(String, String)>,
}

impl Actor for View {
    type Context = Context<Self>;
}

impl Handler<Delivery> for View {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        let name = delivery.event().name.to_string();
        self.got.push((delivery.topic().to_string(), name));
    }
}

/// Replies with what the view received so far: every delivery queued in
/// its mailbox before this request is included.
struct Received;

impl Message for Received {
    type Result = Vec<(String, String)>;
}

impl Handler<Received> for View {
    type Result = MessageResult<Received>;

    fn handle(&mut self, _: Received, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.got.clone())
    }
}

/// Another kind of subscriber on the same topics, to show that exclusion
/// names one instance, never a type.
#[derive(Default)]
struct Counter(usize);

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Counter {
    type Result = ();

    fn handle(&mut self, _: Delivery, _: &mut Context<Self>) {
        self.0 += 1;
    }
}

struct Count;

impl Message for Count {
    type Result = usize;
}

impl Handler<Count> for Counter {
    type Result = usize;

    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> usize {
        self.0
    }
}

fn pair() -> (Addr<TopicBroker>, Addr<ProjectsNotifier>) {
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    (broker, notifier)
}

async fn subscribe(broker: &Addr<TopicBroker>, topics: &[Topic], who: Recipient<Delivery>) {
    for topic in topics {
        broker
            .send(Subscribe::new(topic.clone(), who.clone()))
            .await
            .expect("broker alive")
            .expect("subscribe");
    }
}

/// The three topics a template project's mutation goes to.
fn template_topics(id: Uuid) -> Vec<Topic> {
    vec![Topic::all(), Topic::project(id), Topic::templates()]
}

fn template_created(id: Uuid) -> Mutation {
    let template = ProjectPayload::new(id, "Kitchen refit", true);
    Mutation::project(EventName::ProjectCreated, template).expect("project name")
}

async fn received(view: &Addr<View>) -> Vec<(String, String)> {
    view.send(Received).await.expect("view alive")
}

#[actix::test]
async fn the_excluded_subscriber_gets_nothing_on_any_topic_and_everyone_else_gets_all() {
    let (broker, notifier) = pair();
    let id = Uuid::new_v4();
    let topics = template_topics(id);
    let actor = View::default().start();
    let twin = View::default().start();
    let other_type = Counter::default().start();
    subscribe(&broker, &topics, actor.clone().recipient()).await;
    subscribe(&broker, &topics, twin.clone().recipient()).await;
    subscribe(&broker, &topics, other_type.clone().recipient()).await;

    let mutation = template_created(id).excluding(SubscriberId::of_addr(&actor));
    assert_eq!(mutation.origin(), Some(SubscriberId::of_addr(&actor)));
    let receipt = notifier
        .send(mutation)
        .await
        .expect("notifier alive")
        .expect("routable");

    assert_eq!(receipt.topics, 3);
    assert_eq!(
        receipt.delivered, 6,
        "two subscribers on each of three topics"
    );
    assert!(received(&actor).await.is_empty());
    let expected: Vec<(String, String)> = topics
        .iter()
        .map(|topic| (topic.to_string(), "project_created".to_owned()))
        .collect();
    assert_eq!(received(&twin).await, expected);
    assert_eq!(other_type.send(Count).await.expect("alive"), 3);
}

#[actix::test]
async fn exclusion_holds_when_the_mutation_is_sent_without_waiting() {
    let (broker, notifier) = pair();
    let id = Uuid::new_v4();
    let topics = template_topics(id);
    let actor = View::default().start();
    let twin = View::default().start();
    subscribe(&broker, &topics, actor.clone().recipient()).await;
    subscribe(&broker, &topics, twin.clone().recipient()).await;

    notifier.do_send(template_created(id).excluding(SubscriberId::of_addr(&actor)));
    // Mutations from one sender are handed on in order: once this one's
    // receipt is back, the one before has been handed on too.
    let task = TaskPayload {
        uuid: Uuid::new_v4(),
        title: "Sand".into(),
    };
    let flush = Mutation::task(EventName::TaskCreated, task).expect("task name");
    notifier
        .send(flush)
        .await
        .expect("alive")
        .expect("routable");

    assert_eq!(
        received(&actor).await,
        [("projects:all".into(), "task_created".into())]
    );
    assert_eq!(received(&twin).await.len(), 4);
}

#[actix::test]
async fn exclusion_applies_to_one_mutation_only() {
    let (broker, notifier) = pair();
    let id = Uuid::new_v4();
    let actor = View::default().start();
    subscribe(&broker, &template_topics(id), actor.clone().recipient()).await;

    let excluded = template_created(id).excluding(SubscriberId::of_addr(&actor));
    let excluded = notifier.send(excluded).await.expect("alive").expect("ok");
    assert_eq!(excluded.delivered, 0);
    let next = notifier
        .send(template_created(id))
        .await
        .expect("alive")
        .expect("ok");
    assert_eq!(next.delivered, 3);
    assert_eq!(received(&actor).await.len(), 3);
}

#[actix::test]
async fn excluding_one_of_three_instances_leaves_the_other_two() {
    let (broker, notifier) = pair();
    let views: Vec<Addr<View>> = (0..3).map(|_| View::default().start()).collect();
    for view in &views {
        subscribe(&broker, &[Topic::all()], view.clone().recipient()).await;
    }

    let task = TaskPayload {
        uuid: Uuid::new_v4(),
        title: "Paint".into(),
    };
    let mutation = Mutation::task(EventName::TaskUpdated, task)
        .expect("task name")
        .excluding(SubscriberId::of_addr(&views[1]));
    let receipt = notifier.send(mutation).await.expect("alive").expect("ok");
    assert_eq!(receipt.delivered, 2);

    let counts = [
        received(&views[0]).await.len(),
        received(&views[1]).await.len(),
        received(&views[2]).await.len(),
    ];
    assert_eq!(counts, [1, 0, 1]);
}

#[actix::test]
async fn excluding_a_subscriber_of_none_of_the_topics_changes_nothing() {
    let (broker, notifier) = pair();
    let id = Uuid::new_v4();
    let view = View::default().start();
    let stranger = View::default().start();
    subscribe(&broker, &template_topics(id), view.clone().recipient()).await;

    let mutation = template_created(id).excluding(SubscriberId::of_addr(&stranger));
    let receipt = notifier.send(mutation).await.expect("alive").expect("ok");
    assert_eq!(receipt.delivered, 3);
    assert!(received(&stranger).await.is_empty());
}

#[actix::test]
async fn exclusion_holds_on_scoped_topics_in_tenant_mode() {
    let broker = TopicBroker::new(BrokerConfig::default().tenant_mode(true)).start();
    let config = NotifierConfig::default().tenant_mode(true);
    let notifier = ProjectsNotifier::new(broker.clone())
        .with_config(config)
        .start();
    let acme = OrgId::new("acme").expect("org");
    let id = Uuid::new_v4();
    let topics: Vec<Topic> = template_topics(id)
        .into_iter()
        .map(|topic| topic.in_org(acme.clone()).expect("scoped"))
        .collect();
    let actor = View::default().start();
    let twin = View::default().start();
    subscribe(&broker, &topics, actor.clone().recipient()).await;
    subscribe(&broker, &topics, twin.clone().recipient()).await;

    let mutation = template_created(id)
        .in_org(acme)
        .excluding(SubscriberId::of_addr(&actor));
    let receipt = notifier.send(mutation).await.expect("alive").expect("ok");
    assert_eq!(receipt.delivered, 3);
    assert!(received(&actor).await.is_empty());
    assert_eq!(received(&twin).await.len(), 3);
}

#[actix::test]
async fn exclusion_survives_a_batch_published_after_commit() {
    let (broker, notifier) = pair();
    let project = Uuid::new_v4();
    let topics = [Topic::all(), Topic::project(project)];
    let actor = View::default().start();
    let twin = View::default().start();
    subscribe(&broker, &topics, actor.clone().recipient()).await;
    subscribe(&broker, &topics, twin.clone().recipient()).await;

    let me = SubscriberId::of_addr(&actor);
    let mut batch = Batch::new();
    for _ in 0..3 {
        let assignment = AssignmentPayload {
            project_uuid: project,
            uuid: Some(Uuid::new_v4()),
        };
        let mutation = Mutation::assignment(EventName::AssignmentCreated, assignment)
            .expect("assignment name")
            .excluding(me);
        batch.push(mutation);
    }
    let receipt = batch.commit_and_wait(&notifier).await.expect("all sent");

    assert_eq!(
        receipt.delivered, 6,
        "three mutations, two topics, one view"
    );
    assert!(received(&actor).await.is_empty());
    assert_eq!(received(&twin).await.len(), 6);
}

// ---------------------------------------------------------------------------
// The acting view: it makes a change and tells the notifier to skip it,
// because it has already reloaded itself.

struct ActingView {
    notifier: Addr<ProjectsNotifier>,
    got: Vec<String>,
}

impl Actor for ActingView {
    type Context = Context<Self>;
}

impl Handler<Delivery> for ActingView {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        self.got.push(delivery.event().name.to_string());
    }
}

/// Asks the view to archive a project, as a user's click would.
struct Archive(Uuid);

impl Message for Archive {
    type Result = ();
}

impl Handler<Archive> for ActingView {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Archive(id): Archive, ctx: &mut Context<Self>) -> Self::Result {
        let me = SubscriberId::of_addr(&ctx.address());
        let project = ProjectPayload::new(id, "Kitchen refit", false);
        let mutation = Mutation::project(EventName::ProjectArchived, project)
            .expect("project name")
            .excluding(me);
        let notifier = self.notifier.clone();
        Box::pin(async move {
            let receipt = notifier.send(mutation).await;
            assert!(matches!(receipt, Ok(Ok(_))), "{receipt:?}");
        })
    }
}

struct Names;

impl Message for Names {
    type Result = Vec<String>;
}

impl Handler<Names> for ActingView {
    type Result = MessageResult<Names>;

    fn handle(&mut self, _: Names, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.got.clone())
    }
}

#[actix::test]
async fn a_view_that_excludes_itself_is_skipped_and_its_twin_is_not() {
    let (broker, notifier) = pair();
    let id = Uuid::new_v4();
    let start = || {
        ActingView {
            notifier: notifier.clone(),
            got: Vec::new(),
        }
        .start()
    };
    let acting = start();
    let twin = start();
    let topics = [Topic::all(), Topic::project(id)];
    subscribe(&broker, &topics, acting.clone().recipient()).await;
    subscribe(&broker, &topics, twin.clone().recipient()).await;

    acting.send(Archive(id)).await.expect("view alive");

    assert!(acting.send(Names).await.expect("alive").is_empty());
    let twin_got = twin.send(Names).await.expect("alive");
    assert_eq!(twin_got, ["project_archived", "project_archived"]);
}
