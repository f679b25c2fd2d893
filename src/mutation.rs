//! Mutations: what a request handler tells the notifier once a change is
//! committed, and the routing table that turns one into topics.

use std::fmt;
use std::sync::Arc;

use actix::Message;
use serde_json::{Map, Value};
use smallvec::{SmallVec, smallvec};

use crate::delivery::SubscriberId;
use crate::event::{EventName, ProjectsEvent, Resource};
use crate::notifier::{NotifyError, NotifyReceipt};
use crate::payload::{
    AssignmentPayload, DependencyPayload, Payload, ProjectPayload, ProjectRef, TaskPayload,
};
use crate::topic::{OrgId, Topic, TopicError};

/// The topics one mutation goes to: at most three, kept inline.
pub type Targets = SmallVec<[Topic; 3]>;

/// A committed change, sent to a [`ProjectsNotifier`](crate::ProjectsNotifier).
///
/// Build one with the constructor of its resource ([`Mutation::project`],
/// [`Mutation::project_ref`], [`Mutation::task`], [`Mutation::assignment`],
/// [`Mutation::dependency`], [`Mutation::embed`]); each takes the typed
/// payload of that resource, and refuses a catalog event name of another
/// resource. The notifier routes it with [`Mutation::topics`] and publishes
/// one shared event to every target topic.
///
/// Send it with `do_send` from a request handler (nothing to await), or
/// with `send(..).await` to learn, once the broker has handed the events
/// on, how many subscribers got them.
///
/// # Examples
///
/// ```
/// use projects_pubsub::{EventName, Mutation, ProjectPayload, Topic};
/// use uuid::Uuid;
///
/// let id = Uuid::new_v4();
/// let template = ProjectPayload::new(id, "Kitchen refit", true);
/// let mutation = Mutation::project(EventName::ProjectCreated, template).unwrap();
/// assert_eq!(
///     mutation.topics().unwrap().as_slice(),
///     &[Topic::all(), Topic::project(id), Topic::templates()]
/// );
///
/// // A task event name does not fit a project.
/// let task_name = Mutation::project(EventName::TaskCreated, ProjectPayload::new(id, "x", false));
/// assert!(task_name.is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    // Shared: a clone of a mutation (a retried or batched one) copies no
    // payload, and the notifier hands the same allocation to the broker.
    pub(crate) event: Arc<ProjectsEvent>,
    embed_topic: Option<Topic>,
    org: Option<OrgId>,
    pub(crate) origin: Option<SubscriberId>,
    pub(crate) local_only: bool,
}

/// Why a mutation could not be built or routed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MutationError {
    /// A catalog name of one resource was used for another.
    NameNotFor {
        /// The name given.
        name: EventName,
        /// The resource of the mutation.
        resource: Resource,
    },
    /// An embed mutation names a canonical topic instead of an embed topic.
    NotAnEmbedTopic(Topic),
    /// An embed payload can only be routed with an embed topic: use
    /// [`Mutation::embed`].
    EmbedNeedsTopic,
    /// Scoping a topic to the mutation's organisation made it invalid.
    Topic(TopicError),
}

impl fmt::Display for MutationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MutationError::NameNotFor { name, resource } => write!(
                f,
                "{name} is a {} event, not a {resource} event",
                name.resource()
                    .map_or_else(|| "custom".to_owned(), |r| r.to_string())
            ),
            MutationError::NotAnEmbedTopic(topic) => {
                write!(f, "{topic} is not an embed topic (embed:<name>)")
            }
            MutationError::EmbedNeedsTopic => {
                f.write_str("an embed event needs its topic: use Mutation::embed")
            }
            MutationError::Topic(err) => write!(f, "invalid target topic: {err}"),
        }
    }
}

impl std::error::Error for MutationError {}

impl From<TopicError> for MutationError {
    fn from(err: TopicError) -> MutationError {
        MutationError::Topic(err)
    }
}

impl Mutation {
    /// A change of a project, in its full form.
    ///
    /// # Errors
    ///
    /// [`MutationError::NameNotFor`] when `name` is a catalog name of
    /// another resource.
    pub fn project(name: EventName, project: ProjectPayload) -> Result<Mutation, MutationError> {
        Mutation::routed(name, Resource::Project, Payload::Project(project))
    }

    /// A change of a project, in its short (uuid) form.
    ///
    /// # Errors
    ///
    /// [`MutationError::NameNotFor`] when `name` is a catalog name of
    /// another resource.
    pub fn project_ref(name: EventName, project: ProjectRef) -> Result<Mutation, MutationError> {
        Mutation::routed(name, Resource::Project, Payload::ProjectRef(project))
    }

    /// A change of the task library.
    ///
    /// # Errors
    ///
    /// [`MutationError::NameNotFor`] when `name` is a catalog name of
    /// another resource.
    pub fn task(name: EventName, task: TaskPayload) -> Result<Mutation, MutationError> {
        Mutation::routed(name, Resource::Task, Payload::Task(task))
    }

    /// A change of an assignment of a task to a project.
    ///
    /// # Errors
    ///
    /// [`MutationError::NameNotFor`] when `name` is a catalog name of
    /// another resource.
    pub fn assignment(
        name: EventName,
        assignment: AssignmentPayload,
    ) -> Result<Mutation, MutationError> {
        Mutation::routed(name, Resource::Assignment, Payload::Assignment(assignment))
    }

    /// A change of a dependency between two assignments.
    ///
    /// # Errors
    ///
    /// [`MutationError::NameNotFor`] when `name` is a catalog name of
    /// another resource.
    pub fn dependency(
        name: EventName,
        dependency: DependencyPayload,
    ) -> Result<Mutation, MutationError> {
        Mutation::routed(name, Resource::Dependency, Payload::Dependency(dependency))
    }

    /// A UI intent (`opened`, `closed`, `saved`, `deleted` or a custom
    /// name) on a host-chosen embed topic, with a free-form payload.
    ///
    /// # Errors
    ///
    /// [`MutationError::NotAnEmbedTopic`] for a canonical topic, and
    /// [`MutationError::NameNotFor`] for a catalog name of a resource.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{EventName, Mutation, Topic};
    ///
    /// let topic = Topic::embed("editor:7").unwrap();
    /// let mutation = Mutation::embed(topic.clone(), EventName::Saved, Default::default()).unwrap();
    /// assert_eq!(mutation.topics().unwrap().as_slice(), &[topic]);
    /// ```
    pub fn embed(
        topic: Topic,
        name: EventName,
        payload: Map<String, Value>,
    ) -> Result<Mutation, MutationError> {
        if !topic.is_embed() {
            return Err(MutationError::NotAnEmbedTopic(topic));
        }
        check_name(&name, Resource::Embed)?;
        Ok(Mutation {
            event: Arc::new(ProjectsEvent::new(name, Payload::Embed(payload))),
            embed_topic: Some(topic),
            org: None,
            origin: None,
            local_only: false,
        })
    }

    /// A mutation carrying an event built elsewhere (for example decoded
    /// from JSON), routed by its payload.
    ///
    /// # Errors
    ///
    /// [`MutationError::EmbedNeedsTopic`] for an embed payload, and
    /// [`MutationError::NameNotFor`] when the name does not fit the payload.
    pub fn from_event(event: ProjectsEvent) -> Result<Mutation, MutationError> {
        let resource = event.resource();
        if resource == Resource::Embed {
            return Err(MutationError::EmbedNeedsTopic);
        }
        Mutation::routed(event.name, resource, event.payload)
    }

    fn routed(
        name: EventName,
        resource: Resource,
        payload: Payload,
    ) -> Result<Mutation, MutationError> {
        check_name(&name, resource)?;
        Ok(Mutation {
            event: Arc::new(ProjectsEvent::new(name, payload)),
            embed_topic: None,
            org: None,
            origin: None,
            local_only: false,
        })
    }

    /// The same mutation, scoped to organisation `org`: every target topic
    /// carries it. Required when the notifier runs in tenant mode.
    ///
    /// An embed mutation whose topic is already scoped moves to `org`: the
    /// organisation given here wins.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{EventName, Mutation, OrgId, TaskPayload};
    /// use uuid::Uuid;
    ///
    /// let org = OrgId::new("acme").unwrap();
    /// let task = TaskPayload { uuid: Uuid::new_v4(), title: "Tile".into() };
    /// let mutation = Mutation::task(EventName::TaskCreated, task).unwrap().in_org(org);
    /// let topics: Vec<String> = mutation.topics().unwrap().iter().map(|t| t.to_string()).collect();
    /// assert_eq!(topics, ["projects:org:acme:all", "projects:org:acme:tasks"]);
    /// ```
    pub fn in_org(mut self, org: OrgId) -> Mutation {
        self.org = Some(org);
        self
    }

    /// The same mutation, not delivered to `subscriber` on any topic: the
    /// view that made the change has already reloaded itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix::prelude::*;
    /// use projects_pubsub::{Delivery, EventName, Mutation, ProjectRef, SubscriberId};
    /// use uuid::Uuid;
    ///
    /// struct ProjectPage;
    /// impl Actor for ProjectPage {
    ///     type Context = Context<Self>;
    /// }
    /// impl Handler<Delivery> for ProjectPage {
    ///     type Result = ();
    ///     fn handle(&mut self, _: Delivery, _: &mut Context<Self>) {}
    /// }
    ///
    /// # actix::System::new().block_on(async {
    /// let page = ProjectPage.start();
    /// let archived = ProjectRef::new(Uuid::new_v4());
    /// let mutation = Mutation::project_ref(EventName::ProjectArchived, archived)
    ///     .unwrap()
    ///     .excluding(SubscriberId::of_addr(&page));
    /// assert_eq!(mutation.origin(), Some(SubscriberId::of_addr(&page)));
    /// # });
    /// ```
    pub fn excluding(mut self, subscriber: SubscriberId) -> Mutation {
        self.origin = Some(subscriber);
        self
    }

    /// The same mutation, kept on this node: the broker does not hand its
    /// events to its relay, so subscribers on other nodes never see them.
    pub fn local_only(mut self) -> Mutation {
        self.local_only = true;
        self
    }

    /// The event subscribers will receive.
    pub fn event(&self) -> &ProjectsEvent {
        &self.event
    }

    /// The organisation the mutation is scoped to: the one given with
    /// [`Mutation::in_org`], or else the scope of its embed topic.
    pub fn org(&self) -> Option<&OrgId> {
        self.org
            .as_ref()
            .or_else(|| self.embed_topic.as_ref().and_then(Topic::org))
    }

    /// The topic an embed mutation was given, as given (before any
    /// [`Mutation::in_org`] scoping); `None` for the routed resources.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{EventName, Mutation, Topic};
    ///
    /// let topic = Topic::embed("board").unwrap();
    /// let mutation = Mutation::embed(topic.clone(), EventName::Opened, Default::default()).unwrap();
    /// assert_eq!(mutation.embed_topic(), Some(&topic));
    /// ```
    pub fn embed_topic(&self) -> Option<&Topic> {
        self.embed_topic.as_ref()
    }

    /// The subscriber excluded from this mutation's events, if any.
    pub fn origin(&self) -> Option<SubscriberId> {
        self.origin
    }

    /// The target topics, by the routing table of the catalog.
    ///
    /// | mutation of   | topics                                                   |
    /// |---------------|----------------------------------------------------------|
    /// | a project     | `all`, `project:<uuid>`; `templates` too for a template  |
    /// | a task        | `all`, `tasks`                                           |
    /// | an assignment | `all`, `project:<project_uuid>`                          |
    /// | a dependency  | `all`, `project:<project_uuid>`                          |
    /// | an embed      | its own topic only                                       |
    ///
    /// A project given in its short form without `is_template` routes as
    /// a project that is not a template. With an organisation, every topic
    /// is scoped to it.
    ///
    /// # Errors
    ///
    /// [`MutationError::Topic`] when scoping an embed topic makes it longer
    /// than a topic may be.
    pub fn topics(&self) -> Result<Targets, MutationError> {
        let targets = match (&self.event.payload, &self.embed_topic) {
            (_, Some(topic)) => smallvec![topic.clone()],
            (Payload::Project(project), None) => project_targets(project.uuid, project.is_template),
            (Payload::ProjectRef(project), None) => {
                project_targets(project.uuid, project.is_template.unwrap_or(false))
            }
            (Payload::Task(_), None) => smallvec![Topic::all(), Topic::tasks()],
            (Payload::Assignment(a), None) => {
                smallvec![Topic::all(), Topic::project(a.project_uuid)]
            }
            (Payload::Dependency(d), None) => {
                smallvec![Topic::all(), Topic::project(d.project_uuid)]
            }
            (Payload::Embed(_), None) => return Err(MutationError::EmbedNeedsTopic),
        };

        match &self.org {
            None => Ok(targets),
            Some(org) => targets
                .into_iter()
                .map(|topic| topic.in_org(org.clone()).map_err(MutationError::Topic))
                .collect(),
        }
    }
}

fn project_targets(uuid: uuid::Uuid, is_template: bool) -> Targets {
    let mut targets: Targets = smallvec![Topic::all(), Topic::project(uuid)];
    if is_template {
        targets.push(Topic::templates());
    }
    targets
}

fn check_name(name: &EventName, resource: Resource) -> Result<(), MutationError> {
    match name.resource() {
        Some(own) if own != resource => Err(MutationError::NameNotFor {
            name: name.clone(),
            resource,
        }),
        _ => Ok(()),
    }
}

impl Message for Mutation {
    type Result = Result<NotifyReceipt, NotifyError>;
}
