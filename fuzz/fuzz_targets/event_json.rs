//! Any bytes given to the event decoder are an event whose JSON form
//! decodes to itself, or a typed error; never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use projects_pubsub::{Mutation, ProjectsEvent};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(event) = ProjectsEvent::from_json(bytes) {
        let json = event.to_json();
        assert_eq!(ProjectsEvent::from_json(json.as_bytes()).ok().as_ref(), Some(&event));
        if let Ok(mutation) = Mutation::from_event(event) {
            let _ = mutation.topics();
        }
    }
});
