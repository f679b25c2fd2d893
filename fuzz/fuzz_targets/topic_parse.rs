//! Any string given to the topic parser is a topic that renders back to a
//! string parsing to itself, or a typed error; never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use projects_pubsub::{EventName, OrgId, Topic};

fuzz_target!(|text: &str| {
    if let Ok(topic) = Topic::parse(text) {
        let rendered = topic.to_string();
        assert!(rendered.len() <= projects_pubsub::MAX_TOPIC_LEN);
        assert_eq!(Topic::parse(&rendered).as_ref(), Ok(&topic));
    }
    if let Ok(org) = OrgId::new(text) {
        assert_eq!(org.as_str(), text);
    }
    if let Ok(name) = EventName::parse(text) {
        assert_eq!(EventName::parse(name.as_str()).as_ref(), Ok(&name));
    }
});
