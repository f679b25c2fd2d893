//! The workload reader, and the workload the demo ships with.

use std::collections::HashSet;
use std::io::{self, BufReader, Read};

use projects_pubsub::workload::{self, LineError, MAX_KEPT_ERRORS, Workload};
use projects_pubsub::{
    EventName, MAX_EVENT_JSON_LEN, MutationError, Payload, ProjectsEvent, Resource, Topic,
    TopicError,
};
use proptest::prelude::*;
use uuid::Uuid;

const SHIPPED: &str = include_str!("../examples/data/workspace.jsonl");

const TASK: &str = concat!(
    r#"{"event":"task_created","resource":"task","#,
    r#""payload":{"uuid":"7d4c8f0e-3b1a-4c55-9e2f-1a2b3c4d5e6f","title":"Paint"}}"#
);

/// Asserts that `parse_line` refuses `$line` with an error matching
/// `$pattern`, and that the error has something to say.
macro_rules! assert_refused {
    ($line:expr, $pattern:pat) => {{
        let line: &str = &$line;
        match workload::parse_line(line) {
            Err(err @ $pattern) => {
                assert!(!err.to_string().is_empty());
                err
            }
            other => panic!(
                "expected {} for {:?}, got {other:?}",
                stringify!($pattern),
                line.chars().take(80).collect::<String>()
            ),
        }
    }};
}

fn shipped() -> Workload {
    workload::read(SHIPPED.as_bytes())
}

fn embed_line(topic: &str) -> String {
    let event = r#"{"event":"opened","resource":"embed","payload":{"user":"ana"}"#;
    format!(r#"{event},"topic":{topic}}}"#)
}

// The shipped workload.

#[test]
fn shipped_workload_has_at_least_300_valid_mutations() {
    let workload = shipped();
    assert!(
        workload.mutations.len() >= 300,
        "only {} mutations",
        workload.mutations.len()
    );
}

#[test]
fn shipped_workload_uses_every_catalog_name() {
    let used: HashSet<EventName> = shipped()
        .mutations
        .iter()
        .map(|(_, mutation)| mutation.event().name.clone())
        .collect();
    let missing: Vec<&EventName> = EventName::CATALOG
        .iter()
        .filter(|name| !used.contains(*name))
        .collect();
    assert!(missing.is_empty(), "unused catalog names: {missing:?}");
}

#[test]
fn shipped_workload_uses_every_embed_verb_on_an_embed_topic() {
    let workload = shipped();
    for verb in [
        EventName::Opened,
        EventName::Closed,
        EventName::Saved,
        EventName::Deleted,
    ] {
        let on_embed_topic = workload.mutations.iter().any(|(_, mutation)| {
            let topics = mutation.topics().unwrap();
            mutation.event().name == verb && topics.len() == 1 && topics[0].is_embed()
        });
        assert!(on_embed_topic, "{verb} is not published on an embed topic");
    }
}

#[test]
fn shipped_workload_reports_its_malformed_lines_with_their_numbers() {
    // The malformed lines are the ones right after a comment that says so.
    let lines: Vec<&str> = SHIPPED.lines().collect();
    let on_purpose: Vec<usize> = (1..lines.len())
        .filter(|&at| lines[at - 1].starts_with('#') && !lines[at].starts_with('#'))
        .filter(|&at| {
            let comment = lines[..at].iter().rev().take_while(|l| l.starts_with('#'));
            comment
                .into_iter()
                .any(|l| l.contains("malformed on purpose"))
        })
        .map(|at| at + 1)
        .collect();
    assert_eq!(on_purpose.len(), 2);

    let workload = shipped();
    let reported: Vec<usize> = workload.errors.iter().map(|(line, _)| *line).collect();
    assert_eq!(reported, on_purpose);
    assert!(matches!(workload.errors[0].1, LineError::InvalidJson(_)));
    assert!(matches!(workload.errors[1].1, LineError::InvalidEvent(_)));
    assert!(workload.errors[1].1.to_string().contains("milestone"));
}

#[test]
fn shipped_workload_line_numbers_point_at_their_lines() {
    let lines: Vec<&str> = SHIPPED.lines().collect();
    for (number, mutation) in shipped().mutations {
        let parsed = workload::parse_line(lines[number - 1]).unwrap();
        assert_eq!(parsed, mutation, "line {number}");
    }
}

#[test]
fn shipped_workload_uppercase_uuids_parse_and_route_in_lowercase() {
    let upper = SHIPPED
        .lines()
        .enumerate()
        .filter(|(_, line)| line.starts_with('{'))
        .filter(|(_, line)| {
            line.split('"')
                .any(|s| s.len() == 36 && s != s.to_lowercase())
        })
        .map(|(at, _)| at + 1)
        .collect::<Vec<_>>();
    assert!(!upper.is_empty(), "the workload has no uppercase uuid");

    let workload = shipped();
    for number in upper {
        let (_, mutation) = workload
            .mutations
            .iter()
            .find(|(line, _)| *line == number)
            .unwrap_or_else(|| panic!("line {number} was refused"));
        for topic in mutation.topics().unwrap() {
            let text = topic.to_string();
            assert_eq!(text, text.to_lowercase());
        }
    }
}

#[test]
fn shipped_workload_lines_are_the_events_json_form() {
    for (number, mutation) in shipped().mutations {
        let mut line = mutation.event().to_json();
        if mutation.event().resource() == Resource::Embed {
            let topic = serde_json::to_string(&mutation.topics().unwrap()[0]).unwrap();
            line = format!("{},\"topic\":{topic}}}", &line[..line.len() - 1]);
        }
        assert_eq!(
            workload::parse_line(&line).unwrap(),
            mutation,
            "line {number}"
        );
    }
}

// parse_line.

#[test]
fn parses_a_task_line_and_routes_it_by_the_table() {
    let mutation = workload::parse_line(TASK).unwrap();
    assert_eq!(mutation.event().name, EventName::TaskCreated);
    assert_eq!(
        mutation.topics().unwrap().as_slice(),
        &[Topic::all(), Topic::tasks()]
    );
}

#[test]
fn parses_an_embed_line_to_its_own_topic() {
    let mutation = workload::parse_line(&embed_line(r#""embed:editor:42""#)).unwrap();
    assert_eq!(mutation.event().name, EventName::Opened);
    assert_eq!(
        mutation.topics().unwrap().as_slice(),
        &[Topic::embed("editor:42").unwrap()]
    );
    assert!(matches!(&mutation.event().payload, Payload::Embed(map) if map["user"] == "ana"));
}

#[test]
fn accepts_a_custom_event_name() {
    let line = r#"{"event":"budget_approved","resource":"project_ref",
        "payload":{"uuid":"6f9619ff-8b86-d011-b42d-00c04fc964ff","amount_cents":100}}"#;
    let mutation = workload::parse_line(line).unwrap();
    assert_eq!(mutation.event().name.as_str(), "budget_approved");
}

#[test]
fn accepts_surrounding_whitespace_and_uppercase_uuids() {
    let line = r#"  {"event":"assignment_reordered","resource":"assignment",
        "payload":{"project_uuid":"6F9619FF-8B86-D011-B42D-00C04FC964FF"}}  "#;
    let mutation = workload::parse_line(line).unwrap();
    let id = Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
    assert_eq!(mutation.topics().unwrap()[1], Topic::project(id));
}

#[test]
fn refuses_an_empty_line() {
    assert_refused!("", LineError::Empty);
    assert_refused!(" \t ", LineError::Empty);
}

#[test]
fn refuses_text_that_is_not_json() {
    assert_refused!("hello", LineError::InvalidJson(_));
    assert_refused!("# a comment", LineError::InvalidJson(_));
    let err = assert_refused!(&TASK[..40], LineError::InvalidJson(_));
    // The reader reports the line number; serde's "line 1" would contradict it.
    let message = err.to_string();
    assert!(message.contains("column 40"), "{message}");
    assert!(!message.contains("line 1"), "{message}");
}

#[test]
fn refuses_json_that_is_not_an_object() {
    assert_refused!("[1,2]", LineError::InvalidEvent(_));
    assert_refused!("42", LineError::InvalidEvent(_));
    assert_refused!("null", LineError::InvalidEvent(_));
}

#[test]
fn refuses_a_line_longer_than_the_event_limit_without_parsing_it() {
    let padding = "x".repeat(MAX_EVENT_JSON_LEN);
    let huge = TASK.replace("Paint", &padding);
    let err = assert_refused!(huge, LineError::TooLong { .. });
    let (len, max) = (huge.len(), MAX_EVENT_JSON_LEN);
    assert!(matches!(err, LineError::TooLong { len: l, max: m } if l == len && m == max));

    // Not even JSON: refused for its length before anything else.
    assert_refused!(
        "{".repeat(MAX_EVENT_JSON_LEN + 1),
        LineError::TooLong { .. }
    );
}

#[test]
fn accepts_a_line_of_exactly_the_limit() {
    let padding = "x".repeat(MAX_EVENT_JSON_LEN - TASK.len() + "Paint".len());
    let line = TASK.replace("Paint", &padding);
    assert_eq!(line.len(), MAX_EVENT_JSON_LEN);
    assert!(workload::parse_line(&line).is_ok());
}

#[test]
fn refuses_an_unknown_resource_and_names_it() {
    let err = assert_refused!(
        TASK.replace(r#""resource":"task""#, r#""resource":"milestone""#),
        LineError::InvalidEvent(_)
    );
    let message = err.to_string();
    assert!(
        message.contains("milestone") && message.contains("project_ref"),
        "{message}"
    );
}

#[test]
fn refuses_a_payload_that_does_not_fit_its_resource() {
    // A task payload where a project's full form is expected: no name.
    let project = TASK.replace(r#""resource":"task""#, r#""resource":"project""#);
    let err = assert_refused!(
        project.replace("task_created", "project_created"),
        LineError::InvalidEvent(_)
    );
    assert!(err.to_string().contains("`name`"), "{err}");
    assert_refused!(
        TASK.replace("7d4c8f0e", "not-a-uuid"),
        LineError::InvalidEvent(_)
    );
    assert_refused!(
        TASK.replace("task_created", "Task Created"),
        LineError::InvalidEvent(_)
    );
    assert_refused!(
        r#"{"event":"task_created","payload":{}}"#,
        LineError::InvalidEvent(_)
    );
}

#[test]
fn refuses_a_catalog_name_of_another_resource() {
    let err = assert_refused!(
        TASK.replace("task_created", "dependency_added"),
        LineError::Routing(_)
    );
    assert!(matches!(
        err,
        LineError::Routing(MutationError::NameNotFor {
            name: EventName::DependencyAdded,
            resource: Resource::Task
        })
    ));

    assert_refused!(
        embed_line(r#""embed:editor:42""#).replace("opened", "task_created"),
        LineError::Routing(MutationError::NameNotFor { .. })
    );
}

#[test]
fn refuses_an_embed_event_without_a_topic() {
    let line = r#"{"event":"saved","resource":"embed","payload":{"draft":2}}"#;
    let err = assert_refused!(line, LineError::MissingTopic);
    assert!(err.to_string().contains("\"topic\""));
}

#[test]
fn refuses_a_canonical_topic_for_an_embed_event() {
    let err = assert_refused!(embed_line(r#""projects:all""#), LineError::Routing(_));
    assert!(matches!(
        err,
        LineError::Routing(MutationError::NotAnEmbedTopic(topic)) if topic == Topic::all()
    ));
}

#[test]
fn refuses_an_invalid_embed_topic() {
    assert_refused!(
        embed_line(r#""embed:has space""#),
        LineError::InvalidTopic(TopicError::ForbiddenChar { .. })
    );
    assert_refused!(
        embed_line(r#""""#),
        LineError::InvalidTopic(TopicError::Empty)
    );
    assert_refused!(
        embed_line(r#""chat:42""#),
        LineError::InvalidTopic(TopicError::UnknownNamespace(_))
    );
    assert_refused!(embed_line("42"), LineError::InvalidEvent(_));
}

#[test]
fn refuses_a_topic_on_an_event_routed_by_the_table() {
    let line = TASK.replace("}}", r#"},"topic":"embed:editor:42"}"#);
    assert_refused!(line, LineError::UnexpectedTopic(Resource::Task));
}

#[test]
fn refuses_deep_nesting_without_overflowing_the_stack() {
    let deep = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let err = assert_refused!(deep, LineError::InvalidJson(_));
    assert!(err.to_string().contains("recursion limit"), "{err}");

    let nested = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
    let deep_payload = embed_line(r#""embed:editor:42""#).replace(r#""ana""#, &nested);
    assert!(deep_payload.len() < MAX_EVENT_JSON_LEN);
    assert_refused!(deep_payload, LineError::InvalidJson(_));
}

// read.

#[test]
fn read_skips_blank_and_comment_lines_and_counts_them() {
    let text = format!("# header\n\n   \n  # indented comment\n{TASK}\n\n{TASK}");
    let workload = workload::read(text.as_bytes());
    let numbers: Vec<usize> = workload.mutations.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [5, 7]);
    assert!(workload.errors.is_empty());
}

#[test]
fn read_accepts_crlf_line_breaks_and_a_byte_order_mark() {
    let text = format!("\u{feff}{TASK}\r\n# comment\r\n{TASK}\r\n");
    let workload = workload::read(text.as_bytes());
    assert_eq!(workload.mutations.len(), 2);
    assert!(workload.errors.is_empty(), "{:?}", workload.errors);
}

#[test]
fn read_reports_each_bad_line_and_goes_on() {
    let text = format!("{TASK}\nnot json\n{TASK}\n[1]\n{TASK}\n");
    let workload = workload::read(text.as_bytes());
    let good: Vec<usize> = workload.mutations.iter().map(|(n, _)| *n).collect();
    assert_eq!(good, [1, 3, 5]);
    assert!(matches!(
        workload.errors[..],
        [
            (2, LineError::InvalidJson(_)),
            (4, LineError::InvalidEvent(_))
        ]
    ));
}

#[test]
fn read_skips_a_too_long_line_and_keeps_counting() {
    let long = "y".repeat(MAX_EVENT_JSON_LEN * 3 + 17);
    let text = format!("{TASK}\n{long}\n{TASK}\n");
    // A small buffer makes the long line span many reads.
    let workload = workload::read(BufReader::with_capacity(7, text.as_bytes()));
    let good: Vec<usize> = workload.mutations.iter().map(|(n, _)| *n).collect();
    assert_eq!(good, [1, 3]);
    assert!(matches!(
        workload.errors[..],
        [(2, LineError::TooLong { len, max })] if len == long.len() && max == MAX_EVENT_JSON_LEN
    ));
}

#[test]
fn read_reports_a_line_that_is_not_utf8() {
    let mut bytes = TASK.as_bytes().to_vec();
    bytes.extend_from_slice(b"\n{\"event\xff\n");
    bytes.extend_from_slice(TASK.as_bytes());
    let workload = workload::read(&bytes[..]);
    assert_eq!(workload.mutations.len(), 2);
    assert!(matches!(
        workload.errors[..],
        [(2, LineError::NotUtf8 { at: 7 })]
    ));
}

#[test]
fn read_reads_a_last_line_without_a_line_break() {
    let workload = workload::read(TASK.as_bytes());
    assert_eq!(workload.mutations.len(), 1);
    assert_eq!(workload.mutations[0].0, 1);
}

/// A reader that fails once its text is used up.
struct FailingAfter<'a>(&'a [u8]);

impl Read for FailingAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = self.0.read(buf)?;
        Ok(n)
    }
}

#[test]
fn read_stops_at_an_io_error_and_keeps_what_it_read() {
    let text = format!("{TASK}\n{TASK}\n");
    let workload = workload::read(BufReader::new(FailingAfter(text.as_bytes())));
    assert_eq!(workload.mutations.len(), 2);
    assert!(matches!(workload.errors[..], [(3, LineError::Io(_))]));
    assert!(workload.errors[0].1.to_string().contains("disk on fire"));
}

// Regressions.

/// `TASK` padded to exactly `MAX_EVENT_JSON_LEN` bytes.
fn task_of_exactly_the_limit() -> String {
    let padding = "x".repeat(MAX_EVENT_JSON_LEN - TASK.len() + "Paint".len());
    let line = TASK.replace("Paint", &padding);
    assert_eq!(line.len(), MAX_EVENT_JSON_LEN);
    line
}

#[test]
fn duplicate_keys_are_refused() {
    let payload = r#""payload":{"uuid":"7d4c8f0e-3b1a-4c55-9e2f-1a2b3c4d5e6f","title":"x"}"#;
    let event = r#""event":"task_created","event":"task_deleted""#;
    let name = format!(r#"{{{event},"resource":"task",{payload}}}"#);
    let err = assert_refused!(name, LineError::InvalidEvent(_));
    assert!(err.to_string().contains("duplicate field `event`"), "{err}");

    let title = TASK.replace(r#""title":"Paint""#, r#""title":"a","title":"b""#);
    assert_refused!(title, LineError::InvalidEvent(_));

    // A task line that names `embed` too is not an embed line without a topic.
    let resource =
        format!(r#"{{"event":"task_created","resource":"task","resource":"embed",{payload}}}"#);
    let err = assert_refused!(resource, LineError::InvalidEvent(_));
    assert!(err.to_string().contains("resource"), "{err}");

    let topic = embed_line(r#""embed:editor:1","topic":"embed:editor:2""#);
    assert_refused!(topic, LineError::InvalidEvent(_));
}

#[test]
fn error_messages_do_not_echo_huge_input() {
    let array = format!("[{}0]", "0,".repeat(20_000));
    let err = assert_refused!(embed_line(&array), LineError::InvalidEvent(_));
    let message = err.to_string();
    assert!(message.len() < 400, "{} bytes", message.len());
    assert!(
        message.contains("\"topic\"") && message.contains('…'),
        "{message}"
    );

    let huge = "r".repeat(60_000);
    let line = format!(r#"{{"event":"saved","resource":"{huge}","payload":{{}}}}"#);
    let err = assert_refused!(line, LineError::InvalidEvent(_));
    let message = err.to_string();
    assert!(message.len() < 600, "{} bytes", message.len());
    assert!(
        message.contains(&"r".repeat(100)) && message.contains('…'),
        "{message}"
    );
    // What the message was for stays in it.
    assert!(message.contains("unknown variant"), "{message}");

    // Quotes in the value cut it into short stretches; the whole is still short.
    let quotes = r#"a\""#.repeat(20_000);
    let line = format!(r#"{{"event":"saved","resource":"{quotes}","payload":{{}}}}"#);
    let err = assert_refused!(line, LineError::InvalidEvent(_));
    assert!(
        err.to_string().len() < 600,
        "{} bytes",
        err.to_string().len()
    );
}

#[test]
fn a_line_at_the_limit_is_accepted_with_crlf_and_after_a_bom() {
    let line = task_of_exactly_the_limit();
    for text in [
        format!("{line}\n"),
        format!("{line}\r\n"),
        format!("{line}\r"),
        format!("\u{feff}{line}\r\n"),
        format!("\u{feff}{line}"),
    ] {
        for capacity in [1, 2, 5, 8192] {
            let workload = workload::read(BufReader::with_capacity(capacity, text.as_bytes()));
            assert_eq!(workload.mutations.len(), 1, "{:?}", workload.errors);
            assert!(workload.errors.is_empty(), "{:?}", workload.errors);
        }
    }

    // One byte more is too long, and the reported length leaves out the
    // line break and the byte order mark.
    let over = format!(
        "\u{feff}{}\r\n",
        line.replace("Paint", "Paint!").replacen('x', "xx", 1)
    );
    let workload = workload::read(BufReader::with_capacity(3, over.as_bytes()));
    assert!(matches!(
        workload.errors[..],
        [(1, LineError::TooLong { len, .. })] if len == MAX_EVENT_JSON_LEN + 1
    ));

    // Bytes that only start like a byte order mark are part of the line.
    let workload = workload::read(BufReader::with_capacity(1, &b"\xEF\xBBx\n"[..]));
    assert!(matches!(
        workload.errors[..],
        [(1, LineError::NotUtf8 { at: 0 })]
    ));
}

#[test]
fn long_or_non_utf8_comment_lines_are_skipped() {
    let long = MAX_EVENT_JSON_LEN * 2;
    let text = format!(
        "# {}\n{}\n  \t# {}\r\n{TASK}\n{}# late\n",
        "x".repeat(long),
        " ".repeat(long),
        "y".repeat(long),
        " ".repeat(long)
    );
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"# caf\xe9 au lait\n");
    let workload = workload::read(BufReader::with_capacity(7, &bytes[..]));
    assert_eq!(workload.mutations.len(), 1);
    assert_eq!(workload.mutations[0].0, 4);
    assert!(workload.errors.is_empty(), "{:?}", workload.errors);

    // After a byte order mark, too.
    let workload = workload::read(&b"\xEF\xBB\xBF# caf\xe9\n"[..]);
    assert!(workload.errors.is_empty(), "{:?}", workload.errors);
}

/// Repeats one line `lines` times, without holding them.
struct Repeat {
    line: &'static [u8],
    lines: usize,
    at: usize,
}

impl Read for Repeat {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = io::BufRead::fill_buf(self)?.read(out)?;
        io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl io::BufRead for Repeat {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self.lines {
            0 => Ok(&[]),
            _ => Ok(&self.line[self.at..]),
        }
    }

    fn consume(&mut self, amt: usize) {
        self.at += amt;
        if self.at == self.line.len() {
            self.at = 0;
            self.lines -= 1;
        }
    }
}

#[test]
fn a_corrupt_file_keeps_a_bounded_number_of_errors() {
    let lines = 200_000;
    let workload = workload::read(Repeat {
        line: b"x\n",
        lines,
        at: 0,
    });
    assert_eq!(workload.errors.len(), MAX_KEPT_ERRORS);
    assert_eq!(workload.errors_omitted, lines - MAX_KEPT_ERRORS);
    let numbers: Vec<usize> = workload.errors.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (1..=MAX_KEPT_ERRORS).collect::<Vec<_>>());

    // Valid lines are all kept, and an I/O error is kept after the limit.
    let mut text = "not json\n".repeat(MAX_KEPT_ERRORS + 5);
    text.push_str(&format!("{TASK}\n"));
    let workload = workload::read(BufReader::new(FailingAfter(text.as_bytes())));
    assert_eq!(workload.mutations.len(), 1);
    assert_eq!(workload.errors.len(), MAX_KEPT_ERRORS + 1);
    assert_eq!(workload.errors_omitted, 5);
    assert!(matches!(
        workload.errors.last(),
        Some((n, LineError::Io(_))) if *n == MAX_KEPT_ERRORS + 7
    ));

    let clean = workload::read(format!("{TASK}\nnot json\n").as_bytes());
    assert_eq!((clean.errors.len(), clean.errors_omitted), (1, 0));
}

#[test]
fn line_errors_are_send_sync_errors() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_error::<LineError>();
}

proptest! {
    #[test]
    fn parse_line_never_panics(line in ".{0,300}") {
        let _ = workload::parse_line(&line);
    }

    #[test]
    fn parse_line_never_panics_on_near_events(
        name in "[a-z_]{0,30}",
        resource in "[a-z_]{0,12}",
        payload in r#"\{[ -~]{0,60}\}"#,
        topic in proptest::option::of(r#"[ -~]{0,40}"#),
    ) {
        let topic = topic.map(|t| format!(",\"topic\":{}", serde_json::to_string(&t).unwrap()));
        let line = format!(
            r#"{{"event":"{name}","resource":"{resource}","payload":{payload}{}}}"#,
            topic.unwrap_or_default()
        );
        let _ = workload::parse_line(&line);
    }

    #[test]
    fn read_never_panics_and_numbers_lines_within_the_input(
        bytes in proptest::collection::vec(any::<u8>(), 0..2_000),
        capacity in 1usize..64,
    ) {
        let lines = bytes.split(|&b| b == b'\n').count();
        let reader = BufReader::with_capacity(capacity, &bytes[..]);
        let workload = workload::read(reader);
        let mut numbers: Vec<usize> = workload.mutations.iter().map(|(n, _)| *n).collect();
        numbers.extend(workload.errors.iter().map(|(n, _)| *n));
        for number in &numbers {
            prop_assert!((1..=lines).contains(number));
        }
        let distinct: HashSet<usize> = numbers.iter().copied().collect();
        prop_assert_eq!(distinct.len(), numbers.len());
    }
}

#[test]
fn a_line_that_grows_past_the_limit_when_written_back_is_refused_like_the_decoder_does() {
    // `1e15` is written back as `1000000000000000.0`: a line under the limit
    // can hold an event whose one JSON form is over it.
    let entries: Vec<String> = (0..5_000).map(|at| format!(r#""k{at}":1e15"#)).collect();
    let event = format!(
        r#"{{"event":"saved","resource":"embed","payload":{{{}}}}}"#,
        entries.join(",")
    );
    let line = format!(r#"{},"topic":"embed:board"}}"#, &event[..event.len() - 1]);
    assert!(line.len() <= MAX_EVENT_JSON_LEN, "the line itself fits");

    let err = assert_refused!(line, LineError::WrittenTooLong { .. });
    let LineError::WrittenTooLong { len, max } = err else {
        unreachable!()
    };
    assert!(len > max);
    assert!(
        ProjectsEvent::from_json(event.as_bytes()).is_err(),
        "the decoder refuses the same event"
    );
}
