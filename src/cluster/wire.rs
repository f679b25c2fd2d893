//! The wire form: what one event looks like on a Redis channel, so that
//! nodes written in any language can take part.
//!
//! # Channels
//!
//! An event published on topic `T` travels on the Redis channel
//! `<prefix>:T`, for example `projects-pubsub:projects:all` or
//! `projects-pubsub:embed:editor:7` with the default prefix. A bridge
//! listens with the pattern `<prefix>:*`, so one subscription covers every
//! topic and keeps the events of one origin in the order it sent them.
//!
//! # Messages
//!
//! A message is the event's documented JSON form (see
//! [`ProjectsEvent::to_json`]) with three more keys:
//!
//! | key      | type              | meaning                                   |
//! |----------|-------------------|-------------------------------------------|
//! | `v`      | integer           | format version, [`WIRE_VERSION`] (1)      |
//! | `origin` | string            | the sending node's [`NodeId`]             |
//! | `seq`    | unsigned integer  | the sender's message count, from 1, one per message |
//!
//! ```json
//! {"v":1,"origin":"web-1","seq":42,"event":"task_created","resource":"task",
//!  "payload":{"uuid":"6f9619ff-8b86-d011-b42d-00c04fc964ff","title":"Paint"}}
//! ```
//!
//! Keys may come in any order. A reader looks at `v` first: a message of
//! another version is skipped whatever else it holds.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use super::config::NodeId;
use crate::event::{DecodeError, MAX_EVENT_JSON_LEN, ProjectsEvent};
use crate::topic::{Topic, TopicError};

/// The version of the wire form this crate writes and reads.
pub const WIRE_VERSION: u64 = 1;

/// Largest message a bridge accepts or sends, in bytes: the largest event
/// document plus room for the envelope keys.
pub const MAX_WIRE_LEN: usize = MAX_EVENT_JSON_LEN + 1024;

/// The Redis channel that carries the events of `topic`.
///
/// # Examples
///
/// ```
/// use projects_pubsub::Topic;
/// use projects_pubsub::cluster::wire;
///
/// assert_eq!(wire::channel("projects-pubsub", &Topic::all()), "projects-pubsub:projects:all");
/// ```
pub fn channel(prefix: &str, topic: &Topic) -> String {
    format!("{prefix}:{topic}")
}

/// The Redis pattern a bridge listens on: every channel of `prefix`.
pub fn pattern(prefix: &str) -> String {
    format!("{prefix}:*")
}

/// The channel every bridge of `prefix` joins, so that Redis can count
/// them; nothing is published on it, and the pattern does not cover it.
///
/// ```
/// use projects_pubsub::cluster::wire;
///
/// assert_eq!(wire::presence("projects-pubsub"), "projects-pubsub");
/// ```
pub fn presence(prefix: &str) -> String {
    prefix.to_owned()
}

/// The topic a channel of `prefix` carries.
///
/// # Errors
///
/// [`WireError::ForeignChannel`] when the channel does not start with
/// `<prefix>:`, and [`WireError::Topic`] when the rest is not a topic.
///
/// # Examples
///
/// ```
/// use projects_pubsub::Topic;
/// use projects_pubsub::cluster::wire;
///
/// let topic = wire::topic_of("projects-pubsub", "projects-pubsub:projects:tasks").unwrap();
/// assert_eq!(topic, Topic::tasks());
/// assert!(wire::topic_of("projects-pubsub", "projects-pubsub:chat:1").is_err());
/// ```
pub fn topic_of(prefix: &str, channel: &str) -> Result<Topic, WireError> {
    let rest = channel
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or(WireError::ForeignChannel)?;
    Topic::parse(rest).map_err(WireError::Topic)
}

/// One decoded message: who sent it, its place in the sender's sequence,
/// and the event.
///
/// # Examples
///
/// ```
/// use projects_pubsub::cluster::{NodeId, WireMessage};
/// use projects_pubsub::{EventName, Payload, ProjectsEvent, TaskPayload};
///
/// let task = TaskPayload { uuid: uuid::Uuid::nil(), title: "Paint".into() };
/// let message = WireMessage {
///     origin: NodeId::new("web-1").unwrap(),
///     seq: 1,
///     event: ProjectsEvent::new(EventName::TaskCreated, Payload::Task(task)),
/// };
/// let text = message.encode();
/// assert!(text.starts_with(r#"{"v":1,"origin":"web-1","seq":1,"event":"task_created""#));
/// assert_eq!(WireMessage::decode(text.as_bytes()).unwrap(), message);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WireMessage {
    /// The node that sent the message.
    pub origin: NodeId,
    /// The sender's count of messages sent, from 1.
    pub seq: u64,
    /// The event.
    pub event: ProjectsEvent,
}

/// Why a message on a bridge channel was skipped.
#[derive(Debug)]
#[non_exhaustive]
pub enum WireError {
    /// The message is larger than [`MAX_WIRE_LEN`]; nothing was parsed.
    TooLarge {
        /// Size of the message, in bytes.
        len: usize,
    },
    /// The message is not a JSON object of the wire form.
    Invalid(serde_json::Error),
    /// A required envelope key (`v`, `origin` or `seq`) is missing.
    MissingField(&'static str),
    /// The message says it is of a version this crate does not read.
    UnknownVersion(u64),
    /// The `origin` is not a valid [`NodeId`].
    InvalidOrigin(String),
    /// The envelope is fine but the event inside is not.
    Event(DecodeError),
    /// The channel is not one of the bridge's.
    ForeignChannel,
    /// The channel does not name a valid topic.
    Topic(TopicError),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TooLarge { len } => {
                write!(f, "message is {len} bytes, the limit is {MAX_WIRE_LEN}")
            }
            WireError::Invalid(err) => write!(f, "not a wire message: {err}"),
            WireError::MissingField(key) => write!(f, "the {key:?} key is missing"),
            WireError::UnknownVersion(v) => {
                write!(
                    f,
                    "unknown wire version {v}, this node reads {WIRE_VERSION}"
                )
            }
            WireError::InvalidOrigin(origin) => write!(f, "invalid origin {origin:?}"),
            WireError::Event(err) => write!(f, "{err}"),
            WireError::ForeignChannel => f.write_str("not a channel of this bridge"),
            WireError::Topic(err) => write!(f, "channel names no topic: {err}"),
        }
    }
}

impl std::error::Error for WireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WireError::Invalid(err) => Some(err),
            WireError::Event(err) => Some(err),
            WireError::Topic(err) => Some(err),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    v: Option<u64>,
    #[serde(default, borrow)]
    origin: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct VersionOnly {
    #[serde(default)]
    v: Option<u64>,
}

impl WireMessage {
    /// The message in its wire form.
    pub fn encode(&self) -> String {
        Encoder::new(&self.origin).encode(self.seq, &self.event.to_json())
    }

    /// Reads a message in its wire form.
    ///
    /// # Errors
    ///
    /// A [`WireError`] saying what is wrong: too large, not JSON, an
    /// envelope key missing or invalid, an unknown version, or an event
    /// that does not decode.
    pub fn decode(bytes: &[u8]) -> Result<WireMessage, WireError> {
        let Header { origin, seq } = read_header(bytes)?;
        let event = read_event(bytes)?;
        Ok(WireMessage { origin, seq, event })
    }
}

/// The envelope of a message: who sent it, and its number.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) origin: NodeId,
    pub(crate) seq: u64,
}

/// Reads the envelope only, so that a bridge can skip its own messages
/// without decoding their events.
pub(crate) fn read_header(bytes: &[u8]) -> Result<Header, WireError> {
    if bytes.len() > MAX_WIRE_LEN {
        return Err(WireError::TooLarge { len: bytes.len() });
    }
    if let Some(header) = read_written_header(bytes) {
        return Ok(header);
    }

    let envelope: Envelope<'_> = match serde_json::from_slice(bytes) {
        Ok(envelope) => envelope,
        Err(err) => {
            // A later version may change the other keys; it keeps `v`.
            let version = serde_json::from_slice::<VersionOnly>(bytes).ok();
            return Err(match version.and_then(|only| only.v) {
                Some(v) if v != WIRE_VERSION => WireError::UnknownVersion(v),
                _ => WireError::Invalid(err),
            });
        }
    };
    match envelope.v {
        None => return Err(WireError::MissingField("v")),
        Some(WIRE_VERSION) => {}
        Some(other) => return Err(WireError::UnknownVersion(other)),
    }
    let origin = envelope.origin.ok_or(WireError::MissingField("origin"))?;
    let origin = NodeId::new(&origin)
        .map_err(|_| WireError::InvalidOrigin(super::config::shorten(&origin)))?;
    let seq = envelope.seq.ok_or(WireError::MissingField("seq"))?;
    Ok(Header { origin, seq })
}

/// Reads the envelope the way [`Encoder`] writes it, first and in a fixed
/// order, without a JSON parser; `None` for any other layout, which the
/// parser then reads. The event decoder checks the whole document later.
fn read_written_header(bytes: &[u8]) -> Option<Header> {
    let rest = bytes.strip_prefix(br#"{"v":1,"origin":""#)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let origin = NodeId::new(std::str::from_utf8(&rest[..end]).ok()?).ok()?;
    let rest = rest[end..].strip_prefix(br#"","seq":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 || rest.get(digits) != Some(&b',') {
        return None;
    }
    let seq = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    Some(Header { origin, seq })
}

/// Reads the event of a message whose envelope [`read_header`] accepted:
/// the envelope keys are ignored by the event's own decoder.
pub(crate) fn read_event(bytes: &[u8]) -> Result<ProjectsEvent, WireError> {
    ProjectsEvent::from_json_limited(bytes, MAX_WIRE_LEN).map_err(WireError::Event)
}

/// Writes messages of one origin: the envelope's start is built once.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    head: String,
}

impl Encoder {
    pub(crate) fn new(origin: &NodeId) -> Encoder {
        // A node id needs no JSON escaping: it is ASCII without quotes.
        Encoder {
            head: format!(r#"{{"v":{WIRE_VERSION},"origin":"{origin}","seq":"#),
        }
    }

    /// Whether `bytes` starts the way every message of this origin does:
    /// then it is one of ours, whatever follows.
    pub(crate) fn is_own(&self, bytes: &[u8]) -> bool {
        bytes.starts_with(self.head.as_bytes())
    }

    /// The message for an event whose JSON form is `event_json`, an object.
    pub(crate) fn encode(&self, seq: u64, event_json: &str) -> String {
        let fields = event_json.strip_prefix('{').unwrap_or(event_json);
        let mut out = String::with_capacity(self.head.len() + 21 + event_json.len());
        out.push_str(&self.head);
        out.push_str(&seq.to_string());
        if fields.starts_with('}') {
            out.push_str(fields);
        } else {
            out.push(',');
            out.push_str(fields);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use crate::payload::{Payload, ProjectRef};

    fn node() -> NodeId {
        NodeId::new("n1").unwrap()
    }

    fn event() -> ProjectsEvent {
        let reference = ProjectRef::new(uuid::Uuid::nil()).template(true);
        ProjectsEvent::new(EventName::ProjectArchived, Payload::ProjectRef(reference))
    }

    #[test]
    fn a_message_round_trips() {
        let message = WireMessage {
            origin: node(),
            seq: 9,
            event: event(),
        };
        let text = message.encode();
        assert_eq!(WireMessage::decode(text.as_bytes()).unwrap(), message);
    }

    #[test]
    fn keys_may_come_in_any_order() {
        let text = r#"{"payload":{"uuid":"00000000-0000-0000-0000-000000000000",
            "is_template":true},"seq":3,"resource":"project_ref","origin":"n1",
            "event":"project_archived","v":1}"#;
        let message = WireMessage::decode(text.as_bytes()).unwrap();
        assert_eq!(message.seq, 3);
        assert_eq!(message.event, event());
    }

    #[test]
    fn another_version_is_refused_before_anything_else() {
        let text = r#"{"v":2,"origin":{"node":"n1"},"seq":"three"}"#;
        assert!(matches!(
            WireMessage::decode(text.as_bytes()),
            Err(WireError::UnknownVersion(2))
        ));
    }

    #[test]
    fn missing_envelope_keys_are_named() {
        let json = event().to_json();
        assert!(matches!(
            WireMessage::decode(json.as_bytes()),
            Err(WireError::MissingField("v"))
        ));
        let no_seq = format!(r#"{{"v":1,"origin":"n1",{}"#, &json[1..]);
        assert!(matches!(
            WireMessage::decode(no_seq.as_bytes()),
            Err(WireError::MissingField("seq"))
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"null", b"[]", b"{", b"\xff\xfe", b"{\"v\":1}"] {
            assert!(WireMessage::decode(bad).is_err());
        }
        let big = vec![b' '; MAX_WIRE_LEN + 1];
        assert!(matches!(
            WireMessage::decode(&big),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_written_layout_and_the_parser_agree() {
        let written = WireMessage {
            origin: node(),
            seq: u64::MAX,
            event: event(),
        }
        .encode();
        let fast = read_written_header(written.as_bytes()).unwrap();
        assert_eq!((fast.origin.as_str(), fast.seq), ("n1", u64::MAX));

        for other in [
            r#"{"v":1,"origin":"n1","seq":07x,"event":"a"}"#,
            r#"{"v":1,"origin":"n 1","seq":7,"event":"a"}"#,
            r#"{"v":1,"origin":"n1","seq":99999999999999999999,"event":"a"}"#,
            r#"{"v":1, "origin":"n1","seq":7,"event":"a"}"#,
        ] {
            assert!(read_written_header(other.as_bytes()).is_none(), "{other}");
        }
    }

    #[test]
    fn channels_name_their_topic() {
        let topic = Topic::embed("editor:7").unwrap();
        let channel = channel("p", &topic);
        assert_eq!(channel, "p:embed:editor:7");
        assert_eq!(topic_of("p", &channel).unwrap(), topic);
        assert!(matches!(
            topic_of("q", &channel),
            Err(WireError::ForeignChannel)
        ));
    }
}
