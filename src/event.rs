//! Events: what a subscriber receives, a name and a payload.
//!
//! The namespace of the original's `{:projects, event, payload}` triple is
//! implied: every [`ProjectsEvent`] belongs to `projects`. Names of the
//! catalog are variants of [`EventName`]; any other snake_case name can be
//! published as [`EventName::Custom`] without forking the crate.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::payload::Payload;

/// Longest custom event name, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 64;

/// Largest JSON document [`ProjectsEvent::from_json`] will parse, in bytes.
pub const MAX_EVENT_JSON_LEN: usize = 64 * 1024;

/// The resource an event is about; it decides how a mutation is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A project or a template project.
    Project,
    /// A task of the reusable task library.
    Task,
    /// An assignment of a task to a project.
    Assignment,
    /// A dependency between two assignments of a project.
    Dependency,
    /// A UI intent published on a host-chosen topic.
    Embed,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Project => "project",
            Resource::Task => "task",
            Resource::Assignment => "assignment",
            Resource::Dependency => "dependency",
            Resource::Embed => "embed",
        })
    }
}

macro_rules! event_names {
    ($($(#[$doc:meta])* $variant:ident => $text:literal, $resource:ident;)*) => {
        /// The name of an event: every name of the catalog, or a custom one.
        ///
        /// Renders and parses as the catalog's snake_case text. Parsing a
        /// name that is not in the catalog gives [`EventName::Custom`] when
        /// it is a valid [`CustomName`].
        ///
        /// # Examples
        ///
        /// ```
        /// use projects_pubsub::{EventName, Resource};
        ///
        /// let name: EventName = "dependency_added".parse().unwrap();
        /// assert_eq!(name, EventName::DependencyAdded);
        /// assert_eq!(name.resource(), Some(Resource::Dependency));
        ///
        /// let custom: EventName = "budget_approved".parse().unwrap();
        /// assert_eq!(custom.as_str(), "budget_approved");
        /// assert_eq!(custom.resource(), None);
        /// ```
        #[derive(Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum EventName {
            $($(#[$doc])* $variant,)*
            /// A name outside the catalog, validated by [`CustomName::new`].
            Custom(CustomName),
        }

        impl EventName {
            /// Every name of the catalog, in catalog order.
            pub const CATALOG: &'static [EventName] = &[$(EventName::$variant,)*];

            /// The snake_case text of the name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(EventName::$variant => $text,)*
                    EventName::Custom(name) => name.as_str(),
                }
            }

            /// The resource a catalog name belongs to; `None` for a custom name.
            pub fn resource(&self) -> Option<Resource> {
                match self {
                    $(EventName::$variant => Some(Resource::$resource),)*
                    EventName::Custom(_) => None,
                }
            }

            fn from_catalog(text: &str) -> Option<EventName> {
                match text {
                    $($text => Some(EventName::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_names! {
    /// `project_created`
    ProjectCreated => "project_created", Project;
    /// `project_updated`
    ProjectUpdated => "project_updated", Project;
    /// `project_deleted`
    ProjectDeleted => "project_deleted", Project;
    /// `project_status_changed`
    ProjectStatusChanged => "project_status_changed", Project;
    /// `project_started`
    ProjectStarted => "project_started", Project;
    /// `project_completed`
    ProjectCompleted => "project_completed", Project;
    /// `project_reopened`
    ProjectReopened => "project_reopened", Project;
    /// `project_archived`
    ProjectArchived => "project_archived", Project;
    /// `project_unarchived`
    ProjectUnarchived => "project_unarchived", Project;
    /// `project_members_changed`
    ProjectMembersChanged => "project_members_changed", Project;
    /// `project_grants_changed`
    ProjectGrantsChanged => "project_grants_changed", Project;
    /// `project_labels_changed`
    ProjectLabelsChanged => "project_labels_changed", Project;
    /// `project_features_changed`
    ProjectFeaturesChanged => "project_features_changed", Project;
    /// `project_modules_changed`
    ProjectModulesChanged => "project_modules_changed", Project;
    /// `project_invoice_generated`
    ProjectInvoiceGenerated => "project_invoice_generated", Project;
    /// `portal_rotated`
    PortalRotated => "portal_rotated", Project;
    /// `work_logged`
    WorkLogged => "work_logged", Project;
    /// `whiteboard_created`
    WhiteboardCreated => "whiteboard_created", Project;
    /// `whiteboard_updated`
    WhiteboardUpdated => "whiteboard_updated", Project;
    /// `whiteboard_deleted`
    WhiteboardDeleted => "whiteboard_deleted", Project;
    /// `project_event_created`
    ProjectEventCreated => "project_event_created", Project;
    /// `project_event_updated`
    ProjectEventUpdated => "project_event_updated", Project;
    /// `project_event_deleted`
    ProjectEventDeleted => "project_event_deleted", Project;
    /// `task_created`
    TaskCreated => "task_created", Task;
    /// `task_updated`
    TaskUpdated => "task_updated", Task;
    /// `task_deleted`
    TaskDeleted => "task_deleted", Task;
    /// `assignment_created`
    AssignmentCreated => "assignment_created", Assignment;
    /// `assignment_updated`
    AssignmentUpdated => "assignment_updated", Assignment;
    /// `assignment_deleted`
    AssignmentDeleted => "assignment_deleted", Assignment;
    /// `assignment_reordered`
    AssignmentReordered => "assignment_reordered", Assignment;
    /// `dependency_added`
    DependencyAdded => "dependency_added", Dependency;
    /// `dependency_removed`
    DependencyRemoved => "dependency_removed", Dependency;
    /// `opened`: an embed UI intent.
    Opened => "opened", Embed;
    /// `closed`: an embed UI intent.
    Closed => "closed", Embed;
    /// `saved`: an embed UI intent.
    Saved => "saved", Embed;
    /// `deleted`: an embed UI intent.
    Deleted => "deleted", Embed;
}

impl EventName {
    /// Parses a name: a catalog name, or else a valid custom name.
    ///
    /// # Errors
    ///
    /// [`EventNameError`] when `text` is neither.
    pub fn parse(text: &str) -> Result<EventName, EventNameError> {
        match EventName::from_catalog(text) {
            Some(name) => Ok(name),
            None => CustomName::new(text).map(EventName::Custom),
        }
    }
}

/// A validated event name outside the catalog.
///
/// One to [`MAX_EVENT_NAME_LEN`] bytes of lowercase ASCII letters, digits
/// and `_`, starting with a letter: the catalog's own snake_case shape, so
/// such a name is safe in a topic, a log line or a JSON key. A catalog name
/// is refused, so each name has exactly one representation.
///
/// # Examples
///
/// ```
/// use projects_pubsub::{CustomName, EventName};
///
/// let name = CustomName::new("budget_approved").unwrap();
/// assert_eq!(EventName::Custom(name).as_str(), "budget_approved");
/// assert!(CustomName::new("project_created").is_err());
/// assert!(CustomName::new("Budget Approved").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CustomName(Arc<str>);

/// Why a string is not a valid event name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventNameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_EVENT_NAME_LEN`] bytes.
    TooLong(usize),
    /// The name is not snake_case ASCII starting with a letter.
    NotSnakeCase(String),
    /// A custom name may not repeat a catalog name; use the variant.
    InCatalog(String),
}

impl fmt::Display for EventNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventNameError::Empty => f.write_str("event name is empty"),
            EventNameError::TooLong(len) => write!(
                f,
                "event name is {len} bytes long, the limit is {MAX_EVENT_NAME_LEN}"
            ),
            // Only names within the length limit get this far: shown whole.
            EventNameError::NotSnakeCase(name) => write!(
                f,
                "event name {name:?} is not snake_case (a-z, 0-9 and '_', starting with a letter)"
            ),
            EventNameError::InCatalog(name) => {
                write!(f, "{name:?} is a catalog name: use its EventName variant")
            }
        }
    }
}

impl std::error::Error for EventNameError {}

impl CustomName {
    /// Validates a custom event name.
    ///
    /// # Errors
    ///
    /// [`EventNameError`] when the name is empty, too long, not snake_case,
    /// or already a catalog name.
    pub fn new(text: &str) -> Result<CustomName, EventNameError> {
        if text.is_empty() {
            return Err(EventNameError::Empty);
        }
        if text.len() > MAX_EVENT_NAME_LEN {
            return Err(EventNameError::TooLong(text.len()));
        }
        let snake = text.as_bytes()[0].is_ascii_lowercase()
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !snake {
            return Err(EventNameError::NotSnakeCase(text.to_owned()));
        }
        if EventName::from_catalog(text).is_some() {
            return Err(EventNameError::InCatalog(text.to_owned()));
        }
        Ok(CustomName(Arc::from(text)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventName({})", self.as_str())
    }
}

impl fmt::Debug for CustomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomName({})", &*self.0)
    }
}

impl FromStr for EventName {
    type Err = EventNameError;

    fn from_str(text: &str) -> Result<EventName, EventNameError> {
        EventName::parse(text)
    }
}

impl Serialize for EventName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventName, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        EventName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An event of the projects namespace: a name and a payload.
///
/// This is the value every subscriber of every target topic receives,
/// shared behind an `Arc` (see [`Delivery`](crate::Delivery)). Its JSON form
/// is documented in `docs/wire-format.md`:
///
/// ```json
/// {"event":"task_created","resource":"task","payload":{"uuid":"…","title":"Paint"}}
/// ```
///
/// # Examples
///
/// ```
/// use projects_pubsub::{EventName, Payload, ProjectsEvent, TaskPayload};
/// use uuid::Uuid;
///
/// let task = TaskPayload { uuid: Uuid::nil(), title: "Paint".into() };
/// let event = ProjectsEvent::new(EventName::TaskCreated, Payload::Task(task));
/// let json = event.to_json();
/// assert!(json.starts_with(r#"{"event":"task_created","resource":"task""#));
/// assert_eq!(ProjectsEvent::from_json(json.as_bytes()).unwrap(), event);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectsEvent {
    /// The event name, snake_case in JSON.
    #[serde(rename = "event")]
    pub name: EventName,
    /// What changed; `resource` and `payload` in JSON.
    #[serde(flatten)]
    pub payload: Payload,
}

/// Why a JSON document is not a valid event.
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The document is larger than the limit, in bytes; nothing was parsed.
    TooLarge {
        /// Size of the rejected document, in bytes.
        len: usize,
        /// The limit it exceeded, in bytes.
        max: usize,
    },
    /// The document is not valid JSON or not of the documented form.
    Invalid(serde_json::Error),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { len, max } => {
                write!(f, "event document is {len} bytes, the limit is {max}")
            }
            DecodeError::Invalid(err) => {
                // serde_json quotes the offending value, which may be huge.
                let reason = err.to_string();
                match reason.char_indices().nth(300) {
                    Some((cut, _)) => write!(f, "invalid event document: {}…", &reason[..cut]),
                    None => write!(f, "invalid event document: {reason}"),
                }
            }
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Invalid(err) => Some(err),
            DecodeError::TooLarge { .. } => None,
        }
    }
}

impl ProjectsEvent {
    /// Builds an event.
    pub fn new(name: EventName, payload: Payload) -> ProjectsEvent {
        ProjectsEvent { name, payload }
    }

    /// The namespace of every event of this crate: `projects`.
    pub const fn namespace(&self) -> &'static str {
        "projects"
    }

    /// The resource the event is about, taken from its payload.
    pub fn resource(&self) -> Resource {
        self.payload.resource()
    }

    /// The documented JSON form of the event.
    pub fn to_json(&self) -> String {
        // Every field serialises to plain JSON values, so this cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The length of [`ProjectsEvent::to_json`], counted without building
    /// the string.
    pub(crate) fn encoded_len(&self) -> usize {
        struct Counter(usize);

        impl std::io::Write for Counter {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0 += bytes.len();
                Ok(bytes.len())
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let mut counter = Counter(0);
        // As in `to_json`, this cannot fail.
        let _ = serde_json::to_writer(&mut counter, self);
        counter.0
    }

    /// Decodes the documented JSON form, refusing documents larger than
    /// [`MAX_EVENT_JSON_LEN`] before parsing them.
    ///
    /// # Errors
    ///
    /// [`DecodeError::TooLarge`] or [`DecodeError::Invalid`].
    pub fn from_json(bytes: &[u8]) -> Result<ProjectsEvent, DecodeError> {
        ProjectsEvent::from_json_limited(bytes, MAX_EVENT_JSON_LEN)
    }

    /// Like [`ProjectsEvent::from_json`], with a size limit of your own.
    ///
    /// The limit holds for the document and for the event's own JSON form
    /// ([`ProjectsEvent::to_json`]), which can be longer: an event accepted
    /// here always decodes again from its JSON form.
    ///
    /// # Errors
    ///
    /// [`DecodeError::TooLarge`] or [`DecodeError::Invalid`].
    pub fn from_json_limited(bytes: &[u8], max: usize) -> Result<ProjectsEvent, DecodeError> {
        if bytes.len() > max {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max,
            });
        }
        let event: ProjectsEvent = serde_json::from_slice(bytes).map_err(DecodeError::Invalid)?;

        // A document can grow when written back (`1e15` becomes
        // `1000000000000000.0`); refusing what would not decode again keeps
        // one JSON form for every accepted event.
        let len = event.encoded_len();
        if len > max {
            return Err(DecodeError::TooLarge { len, max });
        }
        Ok(event)
    }
}
