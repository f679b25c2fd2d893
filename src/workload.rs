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
//! with the next line, so a caller can report the bad lines at once and
//! still replay the good ones.
//!
//! A corrupt file cannot exhaust memory. A line longer than
//! [`MAX_EVENT_JSON_LEN`] bytes is refused without being parsed, and
//! [`read`] never holds more than that many bytes of one line; it keeps
//! the first [`MAX_KEPT_ERRORS`] errors and only counts the others; and an
//! error message echoes at most 100 characters of the line.
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

use serde::de::{Error as _, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::event::{MAX_EVENT_JSON_LEN, ProjectsEvent, Resource};
use crate::mutation::{Mutation, MutationError};
use crate::payload::Payload;
use crate::topic::{Topic, TopicError};

/// How many errors [`read`] keeps; it counts the others in
/// [`Workload::errors_omitted`].
///
/// A corrupt file (a binary file, a file of another format) has an error
/// on almost every line; the first errors say what is wrong, and keeping
/// a bounded number of them keeps the memory [`read`] uses proportional to
/// the valid lines, not to the size of the file.
pub const MAX_KEPT_ERRORS: usize = 1_000;

/// At most this many characters of a value from the input are echoed in
/// an error message; a longer one is cut and ends with `…`.
const MAX_ECHO_CHARS: usize = 100;

/// At most this many characters of a decoder's message are kept, whatever
/// it echoes.
const MAX_MESSAGE_CHARS: usize = 300;

/// The UTF-8 byte order mark, ignored at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The mutations of a workload file, and what was wrong with its other
/// lines.
///
/// Both lists are in file order and carry 1-based line numbers. Blank
/// lines and comment lines (starting with `#`) appear in neither.
///
/// Every valid line is kept, but only the first [`MAX_KEPT_ERRORS`]
/// errors are: the others are counted in [`Workload::errors_omitted`], so
/// a corrupt file of millions of bad lines costs no more memory than a
/// thousand.
///
/// # Examples
///
/// ```
/// use projects_pubsub::workload::{self, Workload};
///
/// let workload: Workload = workload::read("\n# nothing yet\n".as_bytes());
/// assert!(workload.mutations.is_empty());
/// assert!(workload.errors.is_empty());
/// assert_eq!(workload.errors_omitted, 0);
/// ```
#[derive(Debug, Default)]
pub struct Workload {
    /// Each valid line's number and its mutation.
    pub mutations: Vec<(usize, Mutation)>,
    /// Each malformed line's number and why it was refused, for the first
    /// [`MAX_KEPT_ERRORS`] malformed lines. An I/O error ends the reading
    /// and is the last entry, kept even beyond that limit.
    pub errors: Vec<(usize, LineError)>,
    /// How many malformed lines are not in [`Workload::errors`] because
    /// [`MAX_KEPT_ERRORS`] were kept already; `0` for most files.
    pub errors_omitted: usize,
}

impl Workload {
    /// Records an error, or counts it once [`MAX_KEPT_ERRORS`] are kept.
    fn refuse(&mut self, number: usize, err: LineError) {
        if self.errors.len() < MAX_KEPT_ERRORS {
            self.errors.push((number, err));
        } else {
            self.errors_omitted = self.errors_omitted.saturating_add(1);
        }
    }
}

/// Why one line of a workload is not a mutation.
///
/// The message of each variant says what to change in the line. It
/// echoes at most 100 characters of any value taken from the line (a
/// longer one is cut and ends with `…`), so a huge bad value makes a short
/// message.
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
    /// The event parsed, but its documented JSON form, written back, would
    /// be longer than [`MAX_EVENT_JSON_LEN`] bytes (`1e15` is written
    /// `1000000000000000.0`): `ProjectsEvent::from_json` would refuse it.
    WrittenTooLong {
        /// Length of the event's JSON form, in bytes.
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
            LineError::WrittenTooLong { len, max } => write!(
                f,
                "the event is {len} bytes long once written back, the limit is {max}: \
                 shorten the event's payload"
            ),
            LineError::NotUtf8 { at } => write!(
                f,
                "line is not valid UTF-8 (invalid byte at offset {at}): save the file as UTF-8"
            ),
            LineError::InvalidJson(err) => match first_line_message(err) {
                Some(message) => write!(
                    f,
                    "not valid JSON at column {}: {}; a line holds one JSON object",
                    err.column(),
                    shorten_message(&message)
                ),
                None => write!(
                    f,
                    "not valid JSON: {}; a line holds one JSON object",
                    shorten_message(&err.to_string())
                ),
            },
            LineError::InvalidEvent(err) => {
                let message = first_line_message(err).unwrap_or_else(|| err.to_string());
                write!(
                    f,
                    "not an event of the documented form: {} (see docs/workload.md)",
                    shorten_message(&message)
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

/// `message` with every quoted stretch (between backticks or double
/// quotes) of more than [`MAX_ECHO_CHARS`] characters cut to that many and
/// marked with `…`, and the whole cut to [`MAX_MESSAGE_CHARS`]: serde's
/// messages quote the offending value in full.
fn shorten_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 8));
    let mut run = 0usize;
    let mut total = 0usize;

    for c in message.chars() {
        if total == MAX_MESSAGE_CHARS {
            out.push('…');
            break;
        }
        if c == '`' || c == '"' {
            if run > MAX_ECHO_CHARS {
                out.push('…');
                total += 1;
            }
            run = 0;
        } else {
            run += 1;
            if run > MAX_ECHO_CHARS {
                continue;
            }
        }
        out.push(c);
        total += 1;
    }
    if run > MAX_ECHO_CHARS && total < MAX_MESSAGE_CHARS {
        out.push('…');
    }
    out
}

/// `text` cut to [`MAX_ECHO_CHARS`] characters, with `…` when it was cut.
fn shorten_echo(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
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
            | LineError::WrittenTooLong { .. }
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
/// than [`MAX_EVENT_JSON_LEN`], empty, not JSON, not an event (a key given
/// twice included), topic missing, unexpected or invalid, event name of
/// another resource.
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

    // Straight into the event, as `ProjectsEvent::from_json` decodes it:
    // a duplicate key is refused, never decided by its last occurrence.
    let parsed: EventLine = serde_json::from_str(line).map_err(|err| {
        if !err.is_data() {
            return LineError::InvalidJson(err);
        }
        // Syntax before content, so that a line cut short is "not JSON"
        // even when a key before the cut is also wrong: only a refused
        // line is read a second time.
        match serde_json::from_str::<IgnoredAny>(line) {
            Err(syntax) => LineError::InvalidJson(syntax),
            Ok(_) => LineError::InvalidEvent(short_error(err)),
        }
    })?;

    let len = parsed.event.encoded_len();
    if len > MAX_EVENT_JSON_LEN {
        return Err(LineError::WrittenTooLong {
            len,
            max: MAX_EVENT_JSON_LEN,
        });
    }

    let ProjectsEvent { name, payload } = parsed.event;
    match (payload, parsed.topic) {
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

/// One line: the event in its JSON form, and the `topic` of an embed event.
#[derive(Deserialize)]
struct EventLine {
    #[serde(flatten)]
    event: ProjectsEvent,
    /// `Some(Value::Null)` for `"topic":null`, which is not a topic either.
    #[serde(default, deserialize_with = "present")]
    topic: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The decoder's error, with a message that echoes little of the line: it
/// is kept in [`Workload::errors`], and a huge value must not be kept too.
fn short_error(err: serde_json::Error) -> serde_json::Error {
    let message = first_line_message(&err).unwrap_or_else(|| err.to_string());
    let short = shorten_message(&message);
    if short == message {
        return err;
    }
    serde_json::Error::custom(short)
}

fn parse_topic(value: Value) -> Result<Topic, LineError> {
    match value {
        Value::String(text) => Topic::parse(&text).map_err(LineError::InvalidTopic),
        other => Err(LineError::InvalidEvent(serde_json::Error::custom(
            format_args!(
                "the \"topic\" key must be a string such as \"embed:editor:42\", not {}",
                shorten_echo(&other.to_string())
            ),
        ))),
    }
}

/// Reads a whole workload: every line, in order.
///
/// Blank lines and lines whose first non-blank character is `#` are
/// skipped, whatever their length and even when they are not UTF-8: a
/// skipped line is never an error. Every other line goes through
/// [`parse_line`]; its mutation or its error is kept with its 1-based line
/// number, and reading goes on. Line breaks may be `\n` or `\r\n`, and a
/// UTF-8 byte order mark at the start is ignored; neither counts towards
/// the length of a line.
///
/// Never holds more than [`MAX_EVENT_JSON_LEN`] bytes (and one for a
/// `\r`) of one line: the rest of a longer line is skipped unread and the
/// line is reported as [`LineError::TooLong`]. Keeps the first
/// [`MAX_KEPT_ERRORS`] errors and counts the others in
/// [`Workload::errors_omitted`]. An I/O error ends the reading; it is
/// recorded as [`LineError::Io`] on the line where it happened, after
/// everything read until then.
///
/// # Examples
///
/// ```
/// use std::io::BufReader;
/// use projects_pubsub::workload::{self, LineError};
///
/// let text = b"\xEF\xBB\xBF# a workspace\r\n\r\nnot json\r\n# caf\xE9, in Latin-1";
/// let workload = workload::read(BufReader::new(&text[..]));
/// assert!(workload.mutations.is_empty());
/// assert!(matches!(workload.errors[..], [(3, LineError::InvalidJson(_))]));
/// ```
pub fn read<R: BufRead>(mut reader: R) -> Workload {
    let mut workload = Workload::default();
    let mut buf = Vec::new();
    let max = MAX_EVENT_JSON_LEN;

    for number in 1.. {
        buf.clear();
        let line = match read_line(&mut reader, &mut buf, max, number == 1) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(err) => {
                workload.errors.push((number, LineError::Io(err)));
                break;
            }
        };

        // Blank or comment, decided before the length and the encoding.
        if matches!(line.first_non_blank, None | Some(b'#')) {
            continue;
        }
        if line.len > max {
            let len = line.len;
            workload.refuse(number, LineError::TooLong { len, max });
            continue;
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(text) => text,
            Err(err) => {
                let at = err.valid_up_to();
                workload.refuse(number, LineError::NotUtf8 { at });
                continue;
            }
        };

        // Blank in the Unicode sense, or a comment after such blanks.
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(text) {
            Ok(mutation) => workload.mutations.push((number, mutation)),
            Err(err) => workload.refuse(number, err),
        }
    }
    workload
}

/// What [`read_line`] found of one line, without its line break and, on
/// the first line, without a byte order mark.
struct RawLine {
    /// Length of the line in bytes, without a final `\r`.
    len: usize,
    /// The first byte that is not ASCII whitespace, if any.
    first_non_blank: Option<u8>,
}

/// Reads one line; when it is at most `max` bytes long, the buffer holds
/// all of it. The buffer never holds more than `max + 1` bytes.
///
/// Returns `None` at the end of the input.
fn read_line<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    first_line: bool,
) -> io::Result<Option<RawLine>> {
    // One more byte than the limit, for the `\r` of a `\r\n`.
    let mut line = LineBytes {
        buf,
        keep: max.saturating_add(1),
        len: 0,
        first_non_blank: None,
        last: None,
    };
    // How many bytes of a byte order mark were seen, while it may be one.
    let mut bom = first_line.then_some(0usize);
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

        let (mut chunk, used, ended) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], at + 1, true),
            None => (available, available.len(), false),
        };
        if let Some(matched) = bom {
            let rest = &BOM[matched..];
            let same = chunk.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if same == rest.len() {
                chunk = &chunk[same..];
                bom = None;
            } else if same == chunk.len() {
                chunk = &[];
                bom = Some(matched + same);
            } else {
                // Not a byte order mark: what looked like one is text.
                line.push(&BOM[..matched]);
                bom = None;
            }
        }
        line.push(chunk);
        reader.consume(used);
        if ended {
            break;
        }
    }

    if !seen_any {
        return Ok(None);
    }
    if let Some(matched) = bom {
        line.push(&BOM[..matched]);
    }
    let mut len = line.len;
    if line.last == Some(b'\r') {
        len -= 1;
        if line.len <= line.keep {
            line.buf.pop();
        }
    }
    Ok(Some(RawLine {
        len,
        first_non_blank: line.first_non_blank,
    }))
}

/// The bytes of one line as they are read: all of them counted, the first
/// `keep` kept.
struct LineBytes<'a> {
    buf: &'a mut Vec<u8>,
    keep: usize,
    len: usize,
    first_non_blank: Option<u8>,
    last: Option<u8>,
}

impl LineBytes<'_> {
    fn push(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else {
            return;
        };
        self.len = self.len.saturating_add(bytes.len());
        self.last = Some(last);
        if self.first_non_blank.is_none() {
            self.first_non_blank = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
        }
        if self.len <= self.keep {
            self.buf.extend_from_slice(bytes);
        }
    }
}
