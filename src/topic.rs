//! Topics: the names subscribers listen on.
//!
//! A [`Topic`] is either one of the four canonical topics of the projects
//! namespace (`projects:all`, `projects:tasks`, `projects:templates` and
//! `projects:project:<uuid>`), optionally scoped to an organisation
//! (`projects:org:<org_id>:all`, ...), or a host-chosen embed topic
//! (`embed:<name>`, or `embed:org:<org_id>:<name>` when scoped).
//!
//! Canonical topics carry no heap string: an unscoped project topic is its
//! [`Uuid`], so cloning and hashing one costs a copy of 17 bytes. Scoped and
//! embed topics share their text through an `Arc`, so a clone is a reference
//! count increment.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Longest topic string accepted by [`Topic::parse`], in bytes.
pub const MAX_TOPIC_LEN: usize = 255;

/// Longest organisation id accepted by [`OrgId::new`], in bytes.
pub const MAX_ORG_ID_LEN: usize = 64;

const PROJECTS: &str = "projects";
const EMBED: &str = "embed";
const ORG: &str = "org";

/// A topic a subscriber can listen on and an event can be published to.
///
/// Build one with [`Topic::all`], [`Topic::tasks`], [`Topic::templates`],
/// [`Topic::project`] or [`Topic::embed`], scope it with [`Topic::in_org`],
/// or parse its string form with [`Topic::parse`] (also available through
/// [`FromStr`]). [`Display`](fmt::Display) renders the exact string of the
/// catalog, and parsing that string gives the same topic back.
///
/// # Examples
///
/// ```
/// use projects_pubsub::Topic;
/// use uuid::Uuid;
///
/// let id = Uuid::parse_str("6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap();
/// let topic = Topic::project(id);
/// assert_eq!(topic.to_string(), "projects:project:6f9619ff-8b86-d011-b42d-00c04fc964ff");
///
/// let parsed: Topic = "projects:project:6F9619FF-8B86-D011-B42D-00C04FC964FF".parse().unwrap();
/// assert_eq!(parsed, topic);
/// assert_eq!("projects:all".parse::<Topic>().unwrap(), Topic::all());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic {
    scope: Option<OrgId>,
    kind: TopicKind,
}

/// What a [`Topic`] carries, without its organisation scope.
///
/// # Examples
///
/// ```
/// use projects_pubsub::{Topic, TopicKind};
///
/// assert_eq!(Topic::tasks().kind(), &TopicKind::Tasks);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicKind {
    /// Every project, template, task, assignment and dependency mutation.
    All,
    /// Task-library mutations.
    Tasks,
    /// Mutations of template projects.
    Templates,
    /// Mutations scoped to one project.
    Project(Uuid),
    /// A host-chosen topic for UI-intent ("embed") events.
    Embed(EmbedName),
}

/// A validated organisation id, the tenant key of a scoped topic.
///
/// One to [`MAX_ORG_ID_LEN`] bytes of ASCII letters, digits, `-` and `_`.
/// The text is shared, so a clone is cheap.
///
/// # Examples
///
/// ```
/// use projects_pubsub::OrgId;
///
/// assert!(OrgId::new("acme-42").is_ok());
/// assert!(OrgId::new("acme:42").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(Arc<str>);

/// A validated name of an embed topic, the part after `embed:`.
///
/// Non-empty, no whitespace or control characters, and it may not start
/// with `org:` (that prefix marks a scoped embed topic). The length limit is
/// the one of the whole topic string, [`MAX_TOPIC_LEN`].
///
/// # Examples
///
/// ```
/// use projects_pubsub::EmbedName;
///
/// assert!(EmbedName::new("editor:42").is_ok());
/// assert!(EmbedName::new("has space").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmbedName(Arc<str>);

/// Why a string is not a valid topic, organisation id or embed name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The string is empty.
    Empty,
    /// The string is longer than the limit.
    TooLong {
        /// Length of the rejected string, in bytes.
        len: usize,
        /// The limit it exceeded, in bytes.
        max: usize,
    },
    /// An embed topic has nothing after `embed:` (or after its scope).
    EmptyEmbedName,
    /// The string contains whitespace, a control character or an invisible
    /// formatting character (zero-width, bidirectional override, byte order
    /// mark).
    ForbiddenChar {
        /// Byte offset of the first offending character.
        at: usize,
    },
    /// The namespace before the first `:` is neither `projects` nor `embed`.
    UnknownNamespace(String),
    /// The part after `projects:` is not `all`, `tasks`, `templates`,
    /// `project:<uuid>` or an `org:` scope.
    UnknownKind(String),
    /// The uuid of a project topic does not parse.
    MalformedUuid(String),
    /// The organisation id is not 1 to 64 ASCII letters, digits, `-` or `_`.
    InvalidOrgId(String),
    /// An embed name starts with `org:`, which marks a scoped embed topic.
    ReservedEmbedPrefix,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => f.write_str("topic is empty"),
            TopicError::TooLong { len, max } => {
                write!(f, "topic is {len} bytes long, the limit is {max}")
            }
            TopicError::ForbiddenChar { at } => write!(
                f,
                "whitespace, control or invisible formatting character at byte {at}"
            ),
            TopicError::EmptyEmbedName => f.write_str("the embed name after \"embed:\" is empty"),
            TopicError::UnknownNamespace(ns) => write!(
                f,
                "unknown namespace {:?}: expected \"projects\" or \"embed\"",
                shorten(ns)
            ),
            TopicError::UnknownKind(kind) => write!(
                f,
                "unknown topic kind {:?}: expected all, tasks, templates or project:<uuid>",
                shorten(kind)
            ),
            TopicError::MalformedUuid(text) => {
                write!(f, "malformed project uuid {:?}", shorten(text))
            }
            TopicError::InvalidOrgId(text) => write!(
                f,
                "invalid organisation id {:?}: expected 1 to {MAX_ORG_ID_LEN} ASCII \
                 letters, digits, '-' or '_'",
                shorten(text)
            ),
            TopicError::ReservedEmbedPrefix => {
                f.write_str("an embed name may not start with \"org:\"")
            }
        }
    }
}

impl std::error::Error for TopicError {}

/// Keeps error messages short when the rejected input is huge.
fn shorten(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

impl Topic {
    /// `projects:all`: every mutation of the workspace.
    pub const fn all() -> Topic {
        Topic {
            scope: None,
            kind: TopicKind::All,
        }
    }

    /// `projects:tasks`: task-library mutations.
    pub const fn tasks() -> Topic {
        Topic {
            scope: None,
            kind: TopicKind::Tasks,
        }
    }

    /// `projects:templates`: mutations of template projects.
    pub const fn templates() -> Topic {
        Topic {
            scope: None,
            kind: TopicKind::Templates,
        }
    }

    /// `projects:project:<uuid>`: mutations scoped to one project.
    pub const fn project(uuid: Uuid) -> Topic {
        Topic {
            scope: None,
            kind: TopicKind::Project(uuid),
        }
    }

    /// `embed:<name>`: a host-chosen topic for UI-intent events.
    ///
    /// # Errors
    ///
    /// Returns a [`TopicError`] when `name` is not a valid [`EmbedName`], or
    /// when the rendered topic would exceed [`MAX_TOPIC_LEN`].
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::Topic;
    ///
    /// let topic = Topic::embed("editor:7").unwrap();
    /// assert_eq!(topic.to_string(), "embed:editor:7");
    /// ```
    pub fn embed(name: &str) -> Result<Topic, TopicError> {
        let topic = Topic {
            scope: None,
            kind: TopicKind::Embed(EmbedName::new(name)?),
        };
        topic.check_len()?;
        Ok(topic)
    }

    /// Builds a topic from its parts.
    ///
    /// # Errors
    ///
    /// [`TopicError::TooLong`] when the rendered topic would exceed
    /// [`MAX_TOPIC_LEN`].
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{OrgId, Topic, TopicKind};
    ///
    /// let org = OrgId::new("acme").unwrap();
    /// let topic = Topic::from_parts(Some(org), TopicKind::Tasks).unwrap();
    /// assert_eq!(topic.to_string(), "projects:org:acme:tasks");
    /// ```
    pub fn from_parts(scope: Option<OrgId>, kind: TopicKind) -> Result<Topic, TopicError> {
        let topic = Topic { scope, kind };
        topic.check_len()?;
        Ok(topic)
    }

    /// The same topic, scoped to organisation `org`.
    ///
    /// # Errors
    ///
    /// Fails only when the scoped string would exceed [`MAX_TOPIC_LEN`],
    /// which can happen for a long embed name.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{OrgId, Topic};
    ///
    /// let org = OrgId::new("acme").unwrap();
    /// let topic = Topic::all().in_org(org).unwrap();
    /// assert_eq!(topic.to_string(), "projects:org:acme:all");
    /// ```
    pub fn in_org(self, org: OrgId) -> Result<Topic, TopicError> {
        Topic::from_parts(Some(org), self.kind)
    }

    /// The same topic without its organisation scope.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{OrgId, Topic};
    ///
    /// let scoped = Topic::all().in_org(OrgId::new("acme").unwrap()).unwrap();
    /// assert_eq!(scoped.unscoped(), Topic::all());
    /// ```
    pub fn unscoped(&self) -> Topic {
        Topic {
            scope: None,
            kind: self.kind.clone(),
        }
    }

    /// The organisation this topic is scoped to, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::Topic;
    ///
    /// let topic = Topic::parse("projects:org:acme:all").unwrap();
    /// assert_eq!(topic.org().map(|org| org.as_str()), Some("acme"));
    /// assert_eq!(Topic::all().org(), None);
    /// ```
    pub fn org(&self) -> Option<&OrgId> {
        self.scope.as_ref()
    }

    /// What the topic carries.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{Topic, TopicKind};
    /// use uuid::Uuid;
    ///
    /// let id = Uuid::new_v4();
    /// assert_eq!(Topic::project(id).kind(), &TopicKind::Project(id));
    /// ```
    pub fn kind(&self) -> &TopicKind {
        &self.kind
    }

    /// Whether this is an embed topic rather than one of the canonical four.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::Topic;
    ///
    /// assert!(Topic::embed("board").unwrap().is_embed());
    /// assert!(!Topic::templates().is_embed());
    /// ```
    pub fn is_embed(&self) -> bool {
        matches!(self.kind, TopicKind::Embed(_))
    }

    /// Parses the string form of a topic.
    ///
    /// Accepts the canonical forms, their `org:` scoped forms and embed
    /// topics. A project uuid may be in any form the `uuid` crate accepts
    /// (upper case, braced, simple); it renders back in lowercase hyphenated
    /// form.
    ///
    /// # Errors
    ///
    /// A [`TopicError`] saying what is wrong: empty, longer than
    /// [`MAX_TOPIC_LEN`], whitespace or control characters, unknown
    /// namespace or kind, malformed uuid or organisation id.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{Topic, TopicError};
    ///
    /// assert_eq!(Topic::parse("projects:tasks"), Ok(Topic::tasks()));
    /// assert!(matches!(Topic::parse("chat:all"), Err(TopicError::UnknownNamespace(_))));
    /// assert!(matches!(Topic::parse("projects:project:nope"), Err(TopicError::MalformedUuid(_))));
    /// ```
    pub fn parse(text: &str) -> Result<Topic, TopicError> {
        check_text(text, MAX_TOPIC_LEN)?;

        let (namespace, rest) = text.split_once(':').unwrap_or((text, ""));
        let (scope, rest) = match rest.strip_prefix("org:") {
            Some(scoped) => {
                let (org, rest) = scoped.split_once(':').unwrap_or((scoped, ""));
                (Some(OrgId::new(org)?), rest)
            }
            None => (None, rest),
        };

        let kind = match namespace {
            PROJECTS => parse_projects_kind(rest)?,
            EMBED => TopicKind::Embed(EmbedName::new(rest)?),
            other => return Err(TopicError::UnknownNamespace(other.to_owned())),
        };
        Ok(Topic { scope, kind })
    }

    fn check_len(&self) -> Result<(), TopicError> {
        let len = self.rendered_len();
        if len > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong {
                len,
                max: MAX_TOPIC_LEN,
            });
        }
        Ok(())
    }

    fn rendered_len(&self) -> usize {
        let scope = self
            .scope
            .as_ref()
            .map_or(0, |org| ORG.len() + org.0.len() + 2);
        let kind = match &self.kind {
            TopicKind::All => "all".len(),
            TopicKind::Tasks => "tasks".len(),
            TopicKind::Templates => "templates".len(),
            TopicKind::Project(_) => "project:".len() + 36,
            TopicKind::Embed(name) => name.0.len(),
        };
        let namespace = if self.is_embed() {
            EMBED.len()
        } else {
            PROJECTS.len()
        };
        namespace + 1 + scope + kind
    }
}

fn parse_projects_kind(rest: &str) -> Result<TopicKind, TopicError> {
    match rest {
        "all" => Ok(TopicKind::All),
        "tasks" => Ok(TopicKind::Tasks),
        "templates" => Ok(TopicKind::Templates),
        _ => match rest.strip_prefix("project:") {
            Some(id) => Uuid::parse_str(id)
                .map(TopicKind::Project)
                .map_err(|_| TopicError::MalformedUuid(id.to_owned())),
            None => Err(TopicError::UnknownKind(rest.to_owned())),
        },
    }
}

/// Invisible formatting characters (zero-width, bidirectional overrides,
/// byte order marks): refused so that two topics that look the same are the
/// same, and a topic cannot reverse the text of a log line.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// The checks every part of a topic shares: length, emptiness, characters.
fn check_text(text: &str, max: usize) -> Result<(), TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty);
    }
    if text.len() > max {
        return Err(TopicError::TooLong {
            len: text.len(),
            max,
        });
    }
    if let Some((at, _)) = text
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control() || is_invisible_format(*c))
    {
        return Err(TopicError::ForbiddenChar { at });
    }
    Ok(())
}

impl OrgId {
    /// Validates an organisation id.
    ///
    /// # Errors
    ///
    /// [`TopicError::InvalidOrgId`] unless `id` is 1 to [`MAX_ORG_ID_LEN`]
    /// ASCII letters, digits, `-` or `_`.
    pub fn new(id: &str) -> Result<OrgId, TopicError> {
        let valid = !id.is_empty()
            && id.len() <= MAX_ORG_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(TopicError::InvalidOrgId(id.to_owned()));
        }
        Ok(OrgId(Arc::from(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl EmbedName {
    /// Validates the name of an embed topic.
    ///
    /// # Errors
    ///
    /// [`TopicError::Empty`], [`TopicError::TooLong`],
    /// [`TopicError::ForbiddenChar`] or [`TopicError::ReservedEmbedPrefix`].
    pub fn new(name: &str) -> Result<EmbedName, TopicError> {
        if name.is_empty() {
            return Err(TopicError::EmptyEmbedName);
        }
        check_text(name, MAX_TOPIC_LEN - EMBED.len() - 1)?;
        if name.starts_with("org:") {
            return Err(TopicError::ReservedEmbedPrefix);
        }
        Ok(EmbedName(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let namespace = if self.is_embed() { EMBED } else { PROJECTS };
        f.write_str(namespace)?;
        f.write_str(":")?;
        if let Some(org) = &self.scope {
            write!(f, "{ORG}:{}:", org.0)?;
        }
        match &self.kind {
            TopicKind::All => f.write_str("all"),
            TopicKind::Tasks => f.write_str("tasks"),
            TopicKind::Templates => f.write_str("templates"),
            TopicKind::Project(uuid) => write!(f, "project:{}", uuid.hyphenated()),
            TopicKind::Embed(name) => f.write_str(&name.0),
        }
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({self})")
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgId({:?})", &*self.0)
    }
}

impl fmt::Display for EmbedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmbedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmbedName({:?})", &*self.0)
    }
}

impl FromStr for Topic {
    type Err = TopicError;

    fn from_str(text: &str) -> Result<Topic, TopicError> {
        Topic::parse(text)
    }
}

impl FromStr for OrgId {
    type Err = TopicError;

    fn from_str(text: &str) -> Result<OrgId, TopicError> {
        OrgId::new(text)
    }
}

impl TryFrom<&str> for Topic {
    type Error = TopicError;

    fn try_from(text: &str) -> Result<Topic, TopicError> {
        Topic::parse(text)
    }
}

impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Topic, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Topic::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for OrgId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrgId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<OrgId, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        OrgId::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_topics_carry_no_heap_string() {
        // An unscoped project topic is its uuid plus two niche-packed tags.
        assert!(std::mem::size_of::<Topic>() <= 40);
    }

    #[test]
    fn scoped_embed_renders_and_parses_back() {
        let org = OrgId::new("acme").unwrap();
        let topic = Topic::embed("chat:1").unwrap().in_org(org).unwrap();
        assert_eq!(topic.to_string(), "embed:org:acme:chat:1");
        assert_eq!(Topic::parse("embed:org:acme:chat:1").unwrap(), topic);
    }
}
