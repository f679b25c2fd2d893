//! Payloads: the typed body of an event, one shape per resource.
//!
//! Payloads are deliberately minimal, as in the original: they say *what*
//! changed, and a subscriber re-reads any state it needs.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::Resource;

/// The body of a [`ProjectsEvent`](crate::ProjectsEvent).
///
/// In JSON the variant is the `resource` key and its fields are the
/// `payload` object, as `docs/wire-format.md` documents.
///
/// # Examples
///
/// ```
/// use projects_pubsub::{Payload, ProjectRef, Resource};
/// use uuid::Uuid;
///
/// let payload = Payload::ProjectRef(ProjectRef::new(Uuid::nil()));
/// assert_eq!(payload.resource(), Resource::Project);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resource", content = "payload", rename_all = "snake_case")]
pub enum Payload {
    /// The full form of a project.
    Project(ProjectPayload),
    /// The short form of a project: its uuid, and little else.
    ProjectRef(ProjectRef),
    /// A task of the library.
    Task(TaskPayload),
    /// An assignment of a task to a project.
    Assignment(AssignmentPayload),
    /// A dependency between two assignments.
    Dependency(DependencyPayload),
    /// A free-form map for embed (UI intent) events.
    Embed(Map<String, Value>),
}

impl Payload {
    /// The resource this payload describes.
    pub fn resource(&self) -> Resource {
        match self {
            Payload::Project(_) | Payload::ProjectRef(_) => Resource::Project,
            Payload::Task(_) => Resource::Task,
            Payload::Assignment(_) => Resource::Assignment,
            Payload::Dependency(_) => Resource::Dependency,
            Payload::Embed(_) => Resource::Embed,
        }
    }

    /// The uuid of the project this payload belongs to, if any.
    ///
    /// A project's own uuid, or the `project_uuid` of an assignment or a
    /// dependency.
    pub fn project_uuid(&self) -> Option<Uuid> {
        match self {
            Payload::Project(project) => Some(project.uuid),
            Payload::ProjectRef(project) => Some(project.uuid),
            Payload::Assignment(assignment) => Some(assignment.project_uuid),
            Payload::Dependency(dependency) => Some(dependency.project_uuid),
            Payload::Task(_) | Payload::Embed(_) => None,
        }
    }
}

/// The full form of a project, as sent on creation and update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectPayload {
    /// The project's id.
    pub uuid: Uuid,
    /// Its display name.
    pub name: String,
    /// Whether it is a template; templates also reach `projects:templates`.
    pub is_template: bool,
    /// The id of its status entity, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_entity_uuid: Option<Uuid>,
    /// The slug of its current status, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_status_slug: Option<String>,
    /// An id in an external system, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl ProjectPayload {
    /// A project with the required fields and no optional ones.
    pub fn new(uuid: Uuid, name: impl Into<String>, is_template: bool) -> ProjectPayload {
        ProjectPayload {
            uuid,
            name: name.into(),
            is_template,
            status_entity_uuid: None,
            current_status_slug: None,
            external_id: None,
        }
    }
}

/// The short form of a project that most project events carry.
///
/// Its `uuid`, sometimes `is_template`, and any extra keys (such as
/// `ext_key`) kept as they came. An extra key named `uuid` or
/// `is_template` is never written: the fields of the same name win, so the
/// JSON form always decodes back.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProjectRef {
    /// The project's id.
    pub uuid: Uuid,
    /// Whether it is a template, when the sender said so. Absent counts as
    /// `false` for routing.
    #[serde(default)]
    pub is_template: Option<bool>,
    /// Any other keys, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Serialize for ProjectRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let extra = self
            .extra
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "uuid" | "is_template"));
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("uuid", &self.uuid)?;
        if let Some(is_template) = self.is_template {
            map.serialize_entry("is_template", &is_template)?;
        }
        for (key, value) in extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl ProjectRef {
    /// The uuid-only form.
    pub fn new(uuid: Uuid) -> ProjectRef {
        ProjectRef {
            uuid,
            is_template: None,
            extra: Map::new(),
        }
    }

    /// The same reference, saying whether the project is a template.
    pub fn template(mut self, is_template: bool) -> ProjectRef {
        self.is_template = Some(is_template);
        self
    }
}

/// A task of the reusable task library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPayload {
    /// The task's id.
    pub uuid: Uuid,
    /// Its title.
    pub title: String,
}

impl TaskPayload {
    /// A task with its id and title.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::TaskPayload;
    /// use uuid::Uuid;
    ///
    /// let task = TaskPayload::new(Uuid::nil(), "Sand the floor");
    /// assert_eq!(task.title, "Sand the floor");
    /// ```
    pub fn new(uuid: Uuid, title: impl Into<String>) -> TaskPayload {
        TaskPayload {
            uuid,
            title: title.into(),
        }
    }
}

/// An assignment of a library task to a project.
///
/// A reorder carries only `project_uuid`, so `uuid` is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentPayload {
    /// The project the assignment belongs to; it decides the routing.
    pub project_uuid: Uuid,
    /// The assignment's id; absent on a reorder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
}

impl AssignmentPayload {
    /// One assignment of a project.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::AssignmentPayload;
    /// use uuid::Uuid;
    ///
    /// let (project, assignment) = (Uuid::new_v4(), Uuid::new_v4());
    /// assert_eq!(AssignmentPayload::new(project, assignment).uuid, Some(assignment));
    /// ```
    pub fn new(project_uuid: Uuid, uuid: Uuid) -> AssignmentPayload {
        AssignmentPayload {
            project_uuid,
            uuid: Some(uuid),
        }
    }

    /// The payload of a reorder: the project only.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::AssignmentPayload;
    /// use uuid::Uuid;
    ///
    /// assert_eq!(AssignmentPayload::reorder(Uuid::nil()).uuid, None);
    /// ```
    pub fn reorder(project_uuid: Uuid) -> AssignmentPayload {
        AssignmentPayload {
            project_uuid,
            uuid: None,
        }
    }
}

/// A dependency between two assignments of one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyPayload {
    /// The assignment that waits.
    pub assignment_uuid: Uuid,
    /// The assignment it waits for.
    pub depends_on_uuid: Uuid,
    /// The project both belong to; it decides the routing.
    pub project_uuid: Uuid,
}

impl DependencyPayload {
    /// `assignment_uuid` waits for `depends_on_uuid`, both of `project_uuid`.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::DependencyPayload;
    /// use uuid::Uuid;
    ///
    /// let (project, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    /// let dependency = DependencyPayload::new(project, a, b);
    /// assert_eq!(dependency.depends_on_uuid, b);
    /// ```
    pub fn new(project_uuid: Uuid, assignment_uuid: Uuid, depends_on_uuid: Uuid) -> Self {
        DependencyPayload {
            assignment_uuid,
            depends_on_uuid,
            project_uuid,
        }
    }
}
