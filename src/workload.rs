//! Reading a recorded workload: one mutation per line of JSON.
//!
//! A workload file replays the changes of a workspace through a
//! [`ProjectsNotifier`](crate::ProjectsNotifier), as
//! `examples/projects_demo.rs` does. Each line holds one event in its
//! documented JSON form, exactly what [`ProjectsEvent`]'s `serde` support
//! produces; an embed event adds a `"topic"` key naming its embed topic,
//! because embed events are routed to the topic their sender chose:
//!
//! ```text
//! # comments and blank lines are skipped
//! {"event":"task_created","resource":"task","payload":{"uuid":"…","title":"Sand the floor"}}
//! {"event":"saved","resource":"embed","payload":{"draft":3},"topic":"embed:editor:42"}
//! ```
//!
//! `docs/workload.md` documents the format with an example per resource.
//!
//! # Errors are data
//!
//! Nothing in this module panics, whatever the input. [`parse_line`] says
//! what is wrong with one line as a [`LineError`], and [`read`] collects
//! those errors with their line numbers in [`Workload::errors`] and goes on
//! with the next line, so a caller can report every bad line at once and
//! still replay the good ones.
//!
//! A line longer than [`MAX_EVENT_JSON_LEN`] bytes is refused without
//! being parsed, and [`read`] never holds more than that many bytes of one
//! line in memory, so a corrupt file cannot exhaust memory through one
//! endless line.
//!
//! # Examples
//!
//! ```
//! use projects_pubsub::workload::{self, LineError};
//!
//! let text = concat!(
//!     "# the task library grows\n",
//!     r#"{"event":"task_created","resource":"task","payload":"#,
//!     r#"{"uuid":"7d4c8f0e-3b1a-4c55-9e2f-1a2b3c4d5e6f","title":"Paint"}}"#,
//!     "\n\n",
//!     r#"{"event":"task_created","resource":"task""#,
//! );
//! let workload = workload::read(text.as_bytes());
//! assert!(matches!(workload.mutations[..], [(2, _)]));
//! assert!(matches!(workload.errors[..], [(4, LineError::InvalidJson(_))]));
//! ```

use std::fmt;
use std::io::{self, BufRead};

use serde::de::Error as _;
use serde_json::{Map, Value};

use crate::event::{MAX_EVENT_JSON_LEN, ProjectsEvent, Resource};
use crate::mutation::{Mutation, MutationError};
use crate::payload::Payload;
use crate::topic::{Topic, TopicError};

/// The key of a line that names the topic of an embed event.
const TOPIC_KEY: &str = "topic";

/// The mutations of a workload file, and what was wrong with its other
/// lines.
///
/// Both lists are in file order and carry 1-based line numbers. Blank
/// lines and comment lines (starting with `#`) appear in neither.
///
/// # Examples
///
/// ```
/// use projects_pubsub::workload::{self, Workload};
///
/// let workload: Workload = workload::read("\n# nothing yet\n".as_bytes());
/// assert!(workload.mutations.is_empty());
/// assert!(workload.errors.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Workload {
    /// Each valid line's number and its mutation.
    pub mutations: Vec<(usize, Mutation)>,
    /// Each malformed line's number and why it was refused. An I/O error
    /// ends the reading and is the last entry.
    pub errors: Vec<(usize, LineError)>,
}

/// Why one line of a workload is not a mutation.
///
/// The message of each variant says what to change in the line.
///
/// # Examples
///
/// ```
/// use projects_pubsub::workload::{self, LineError};
///
/// let err = workload::parse_line(r#"{"event":"opened","resource":"embed","payload":{}}"#)
///     .unwrap_err();
/// assert!(matches!(err, LineError::MissingTopic));
/// assert!(err.to_string().contains(r#""topic""#));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LineError {
    /// The line is empty or only whitespace.
    Empty,
    /// The line is longer than [`MAX_EVENT_JSON_LEN`] bytes; it was not
    /// parsed.
    TooLong {
        /// Length of the line, in bytes.
        len: usize,
        /// The limit it exceeded, in bytes.
        max: usize,
    },
    /// The line is not valid UTF-8.
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        at: usize,
    },
    /// The line is not valid JSON.
    InvalidJson(serde_json::Error),
    /// The line is JSON, but not an event of the documented form: not an
    /// object, a missing key, an unknown resource, a payload that does not
    /// fit its resource, an invalid event name.
    InvalidEvent(serde_json::Error),
    /// The `topic` key of an embed event is not a valid topic.
    InvalidTopic(TopicError),
    /// An embed event has no `topic` key.
    MissingTopic,
    /// An event that is not an embed event has a `topic` key; its topics
    /// follow from the routing table.
    UnexpectedTopic(Resource),
    /// The event cannot be routed: a catalog name of another resource, or
    /// a canonical topic given for an embed event.
    Routing(MutationError),
    /// Reading failed; nothing after this line was read.
    Io(io::Error),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Empty => f.write_str("empty line: expected one event as a JSON object"),
            LineError::TooLong { len, max } => write!(
                f,
                "line is {len} bytes long, the limit is {max}: shorten the event's payload"
            ),
            LineError::NotUtf8 { at } => write!(
                f,
                "line is not valid UTF-8 (invalid byte at offset {at}): save the file as UTF-8"
            ),
            LineError::InvalidJson(err) => match first_line_message(err) {
                Some(message) => write!(
                    f,
                    "not valid JSON at column {}: {message}; a line holds one JSON object",
                    err.column()
                ),
                None => write!(f, "not valid JSON: {err}; a line holds one JSON object"),
            },
            LineError::InvalidEvent(err) => {
                let message = first_line_message(err).unwrap_or_else(|| err.to_string());
                write!(
                    f,
                    "not an event of the documented form: {message} (see docs/workload.md)"
                )
            }
            LineError::InvalidTopic(err) => write!(f, "invalid embed topic: {err}"),
            LineError::MissingTopic => f.write_str(
                "an embed event needs a \"topic\" key naming its embed topic, \
                 such as \"embed:editor:42\"",
            ),
            LineError::UnexpectedTopic(resource) => write!(
                f,
                "a {resource} event takes no \"topic\" key: its topics follow from the \
                 routing table, only embed events name their topic"
            ),
            LineError::Routing(err) => write!(f, "cannot route the event: {err}"),
            LineError::Io(err) => write!(f, "reading failed: {err}"),
        }
    }
}

/// serde_json's message without the position it appends, when the error
/// is on the first line of the text: the caller reports the line itself,
/// and "line 1" would contradict it.
fn first_line_message(err: &serde_json::Error) -> Option<String> {
    if err.line() != 1 {
        return None;
    }
    let text = err.to_string();
    let position = format!(" at line 1 column {}", err.column());
    text.strip_suffix(&position).map(str::to_owned)
}

impl std::error::Error for LineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LineError::InvalidJson(err) | LineError::InvalidEvent(err) => Some(err),
            LineError::InvalidTopic(err) => Some(err),
            LineError::Routing(err) => Some(err),
            LineError::Io(err) => Some(err),
            LineError::Empty
            | LineError::TooLong { .. }
            | LineError::NotUtf8 { .. }
            | LineError::MissingTopic
            | LineError::UnexpectedTopic(_) => None,
        }
    }
}

/// Parses one line of a workload into a [`Mutation`].
///
/// The line is one event in the JSON form of [`ProjectsEvent`], plus a
/// `"topic"` key for an embed event and only for one. Whitespace around
/// the object is allowed. Unlike [`read`], this function does not skip
/// comments: it parses exactly one mutation, and an empty line is an
/// error.
///
/// The mutation is routed as [`Mutation::topics`] says: a line cannot
/// choose the topics of a project, task, assignment or dependency event.
///
/// # Errors
///
/// A [`LineError`] saying what is wrong, checked in this order: longer
/// than [`MAX_EVENT_JSON_LEN`], empty, not JSON, not an event, topic
/// missing, unexpected or invalid, event name of another resource.
///
/// # Examples
///
/// ```
/// use projects_pubsub::workload::{self, LineError};
/// use projects_pubsub::{EventName, Topic};
///
/// let line = r#"{"event":"project_archived","resource":"project_ref",
///     "payload":{"uuid":"6f9619ff-8b86-d011-b42d-00c04fc964ff"}}"#;
/// let mutation = workload::parse_line(line).unwrap();
/// assert_eq!(mutation.event().name, EventName::ProjectArchived);
/// assert_eq!(mutation.topics().unwrap()[0], Topic::all());
///
/// let task_name = r#"{"event":"task_created","resource":"project_ref",
///     "payload":{"uuid":"6f9619ff-8b86-d011-b42d-00c04fc964ff"}}"#;
/// assert!(matches!(workload::parse_line(task_name), Err(LineError::Routing(_))));
/// ```
pub fn parse_line(line: &str) -> Result<Mutation, LineError> {
    if line.len() > MAX_EVENT_JSON_LEN {
        return Err(LineError::TooLong {
            len: line.len(),
            max: MAX_EVENT_JSON_LEN,
        });
    }
    if line.trim().is_empty() {
        return Err(LineError::Empty);
    }

    let mut object: Map<String, Value> = serde_json::from_str(line).map_err(|err| {
        if err.is_data() {
            LineError::InvalidEvent(err)
        } else {
            LineError::InvalidJson(err)
        }
    })?;
    let topic = object.remove(TOPIC_KEY);
    let event: ProjectsEvent =
        serde_json::from_value(Value::Object(object)).map_err(LineError::InvalidEvent)?;

    let ProjectsEvent { name, payload } = event;
    match (payload, topic) {
        (Payload::Embed(_), None) => Err(LineError::MissingTopic),
        (Payload::Embed(payload), Some(topic)) => {
            Mutation::embed(parse_topic(topic)?, name, payload).map_err(LineError::Routing)
        }
        (payload, Some(_)) => Err(LineError::UnexpectedTopic(payload.resource())),
        (payload, None) => {
            Mutation::from_event(ProjectsEvent::new(name, payload)).map_err(LineError::Routing)
        }
    }
}

fn parse_topic(value: Value) -> Result<Topic, LineError> {
    match value {
        Value::String(text) => Topic::parse(&text).map_err(LineError::InvalidTopic),
        other => Err(LineError::InvalidEvent(serde_json::Error::custom(
            format_args!(
                "the \"topic\" key must be a string such as \"embed:editor:42\", not {other}"
            ),
        ))),
    }
}

/// Reads a whole workload: every line, in order.
///
/// Blank lines and lines whose first non-blank character is `#` are
/// skipped. Every other line goes through [`parse_line`]; its mutation or
/// its error is kept with its 1-based line number, and reading goes on.
/// Line breaks may be `\n` or `\r\n`, and a UTF-8 byte order mark at the
/// start is ignored.
///
/// Never holds more than [`MAX_EVENT_JSON_LEN`] bytes of one line: the
/// rest of a longer line is skipped unread and the line is reported as
/// [`LineError::TooLong`]. An I/O error ends the reading; it is recorded
/// as [`LineError::Io`] on the line where it happened, after everything
/// read until then.
///
/// # Examples
///
/// ```
/// use std::io::BufReader;
/// use projects_pubsub::workload::{self, LineError};
///
/// let text = "\u{feff}# a workspace\r\n\r\nnot json\r\n";
/// let workload = workload::read(BufReader::new(text.as_bytes()));
/// assert!(workload.mutations.is_empty());
/// assert!(matches!(workload.errors[..], [(3, LineError::InvalidJson(_))]));
/// ```
pub fn read<R: BufRead>(mut reader: R) -> Workload {
    let mut workload = Workload::default();
    let mut buf = Vec::new();

    for number in 1.. {
        buf.clear();
        let line = match read_line(&mut reader, &mut buf, MAX_EVENT_JSON_LEN) {
            Ok(RawLine::End) => break,
            Ok(RawLine::TooLong(len)) => {
                let max = MAX_EVENT_JSON_LEN;
                workload
                    .errors
                    .push((number, LineError::TooLong { len, max }));
                continue;
            }
            Ok(RawLine::Read) => &buf[..],
            Err(err) => {
                workload.errors.push((number, LineError::Io(err)));
                break;
            }
        };

        let line = match number {
            1 => line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line),
            _ => line,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(err) => {
                let at = err.valid_up_to();
                workload.errors.push((number, LineError::NotUtf8 { at }));
                continue;
            }
        };

        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(text) {
            Ok(mutation) => workload.mutations.push((number, mutation)),
            Err(err) => workload.errors.push((number, err)),
        }
    }
    workload
}

/// What [`read_line`] found.
enum RawLine {
    /// A line of at most the limit, now in the buffer without its `\n`.
    Read,
    /// A line longer than the limit, of this many bytes; skipped.
    TooLong(usize),
    /// The end of the input.
    End,
}

/// Reads one line into `buf`, keeping at most `max` bytes of it.
fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<RawLine> {
    let mut len = 0usize;
    let mut seen_any = false;

    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            break;
        }
        seen_any = true;

        let (chunk, used, ended) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], at + 1, true),
            None => (available, available.len(), false),
        };
        len = len.saturating_add(chunk.len());
        if len <= max {
            buf.extend_from_slice(chunk);
        }
        reader.consume(used);
        if ended {
            break;
        }
    }

    if !seen_any {
        return Ok(RawLine::End);
    }
    if len > max {
        buf.clear();
        return Ok(RawLine::TooLong(len));
    }
    Ok(RawLine::Read)
}
