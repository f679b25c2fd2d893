//! Shutting down: a broker that never ran does not panic when its system is
//! dropped. A test binary of its own, because it watches panics process-wide.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;
use projects_pubsub::{ProjectsNotifier, TopicBroker};

#[test]
fn dropping_a_system_with_a_broker_that_never_ran_does_not_panic() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&panics);
    std::panic::set_hook(Box::new(move |info| {
        counted.fetch_add(1, Ordering::SeqCst);
        eprintln!("panic: {info}");
    }));

    let system = System::new();
    system.block_on(async {
        let broker = TopicBroker::default().start();
        let _notifier = ProjectsNotifier::new(broker).start();
    });
    drop(system);

    let _ = std::panic::take_hook();
    assert_eq!(panics.load(Ordering::SeqCst), 0);
}
