//! Any line given to the workload reader is a mutation or a typed error;
//! never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &str| {
    if let Ok(mutation) = projects_pubsub::workload::parse_line(line) {
        let _ = mutation.topics();
    }
});
