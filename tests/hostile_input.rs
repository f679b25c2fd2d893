//! Inputs an attacker would try: each is refused with a typed error that
//! says what is wrong, and whatever is accepted has exactly one form.

use projects_pubsub::{
    DecodeError, EmbedName, MAX_EVENT_JSON_LEN, ProjectsEvent, Topic, TopicError,
};

#[test]
fn an_event_whose_json_form_outgrows_the_limit_is_refused() {
    // `1e15` is written back as `1000000000000000.0`: a document under the
    // limit whose own JSON form is over it.
    let numbers = vec!["1e15"; 6_000].join(",");
    let document =
        format!(r#"{{"event":"saved","resource":"embed","payload":{{"x":[{numbers}]}}}}"#);
    assert!(document.len() < MAX_EVENT_JSON_LEN);

    let refused = ProjectsEvent::from_json(document.as_bytes());

    assert!(matches!(refused, Err(DecodeError::TooLarge { len, .. }) if len > MAX_EVENT_JSON_LEN));
}

#[test]
fn every_accepted_event_decodes_again_from_its_json_form() {
    let document = r#"{"event":"saved","resource":"embed","payload":{"x":[1e15,2.5e-3,-0]}}"#;

    let event = ProjectsEvent::from_json(document.as_bytes()).unwrap();

    assert_eq!(
        ProjectsEvent::from_json(event.to_json().as_bytes()).unwrap(),
        event
    );
}

#[test]
fn an_empty_embed_name_is_named_as_such() {
    for text in ["embed:", "embed:org:acme:"] {
        assert_eq!(
            Topic::parse(text),
            Err(TopicError::EmptyEmbedName),
            "{text}"
        );
    }
    assert_eq!(EmbedName::new(""), Err(TopicError::EmptyEmbedName));
    assert_eq!(Topic::parse(""), Err(TopicError::Empty));
}

#[test]
fn invisible_and_bidirectional_characters_are_refused_in_topics() {
    for text in [
        "embed:a\u{200B}b",
        "embed:\u{FEFF}editor",
        "embed:\u{202E}gnp.exe",
        "embed:x\u{2066}",
    ] {
        let refused = Topic::parse(text);
        assert!(
            matches!(refused, Err(TopicError::ForbiddenChar { .. })),
            "{text:?}: {refused:?}"
        );
    }
    // Visible non-ASCII stays allowed in embed names.
    assert!(Topic::parse("embed:café-board").is_ok());
}

#[test]
fn decode_errors_do_not_echo_huge_input() {
    let huge = "x".repeat(60_000);
    let documents = [
        format!(r#"{{"event":"task_created","resource":"{huge}","payload":{{}}}}"#),
        format!(r#"{{"event":"task_created","resource":"project","payload":{{"uuid":"{huge}"}}}}"#),
    ];

    for document in documents {
        let error = ProjectsEvent::from_json(document.as_bytes()).unwrap_err();
        assert!(
            error.to_string().len() < 400,
            "{} bytes",
            error.to_string().len()
        );
    }
}
