//! What the crate logs at `warn`: only what a user must act on, once per
//! incident. A logger of the test's own counts the warnings.

mod common;

use std::sync::Mutex;

use actix::prelude::*;
use projects_pubsub::{
    EventName, Mutation, NotifyError, ProjectsNotifier, TaskPayload, TopicBroker,
};
use uuid::Uuid;

/// Every warning logged in this test binary.
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Counting;

impl log::Log for Counting {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if record.level() <= log::Level::Warn {
            WARNINGS.lock().unwrap().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// How many warnings so far say a mutation was lost.
fn losses() -> usize {
    WARNINGS
        .lock()
        .unwrap()
        .iter()
        .filter(|warning| warning.contains("mutation was dropped"))
        .count()
}

fn task(title: &str) -> Mutation {
    Mutation::task(
        EventName::TaskCreated,
        TaskPayload::new(Uuid::new_v4(), title),
    )
    .unwrap()
}

#[actix::test]
async fn a_lost_mutation_is_warned_about_once_and_a_delivered_one_never() {
    log::set_logger(&Counting).expect("the only logger of this binary");
    log::set_max_level(log::LevelFilter::Warn);

    // Delivered, awaited or not: nothing to warn about.
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker).start();
    for n in 0..3 {
        notifier.do_send(task(&format!("quiet {n}")));
        let receipt = notifier.send(task(&format!("awaited {n}"))).await.unwrap();
        assert!(receipt.is_ok());
    }
    ProjectsNotifier::send_confirmed(&notifier, task("confirmed"))
        .await
        .unwrap();
    assert_eq!(losses(), 0, "{:?}", WARNINGS.lock().unwrap());

    // A broker that stops with a backlog: the fire-and-forget mutations
    // sent to it are lost, and that is said once.
    let (home, broker) = common::broker_about_to_stop();
    let notifier = ProjectsNotifier::new(broker).start();
    for n in 0..10 {
        notifier.do_send(task(&format!("lost {n}")));
    }
    // Sent after them, so answered only once they have been dropped.
    let last = ProjectsNotifier::send_confirmed(&notifier, task("last")).await;
    assert_eq!(last, Err(NotifyError::BrokerGone));
    assert_eq!(losses(), 1, "{:?}", WARNINGS.lock().unwrap());
    home.stop();
}
