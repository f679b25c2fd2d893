//! Committed changes are not lost quietly: a caller that stops waiting, a
//! stopped notifier or a stopped broker either still publishes or says so.

mod common;

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Waker};
use std::time::{Duration, Instant};

use actix::prelude::*;
use projects_pubsub::{
    Batch, BatchFailure, Delivery, EventName, Mutation, NotifyError, Overflow, ProjectsNotifier,
    Subscribe, SubscribeOptions, TaskPayload, Topic, TopicBroker, publish_after_commit_and_wait,
};
use uuid::Uuid;

use common::broker_about_to_stop;

struct Counter {
    seen: Arc<Mutex<Vec<Delivery>>>,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Counter {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        // Kept: a held delivery keeps its place in a bound.
        self.seen.lock().unwrap().push(delivery);
    }
}

fn task(title: &str) -> Mutation {
    Mutation::task(
        EventName::TaskCreated,
        TaskPayload::new(Uuid::new_v4(), title),
    )
    .unwrap()
}

async fn tasks_listener(broker: &Addr<TopicBroker>) -> (Addr<Counter>, Arc<Mutex<Vec<Delivery>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let counter = Counter {
        seen: Arc::clone(&seen),
    }
    .start();
    let subscribe = Subscribe::new(Topic::tasks(), counter.clone().recipient());
    broker.send(subscribe).await.unwrap().unwrap();
    (counter, seen)
}

async fn wait_for(seen: &Arc<Mutex<Vec<Delivery>>>, count: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if seen.lock().unwrap().len() >= count {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// Polls a future once, as a runtime does before the caller goes away.
fn poll_once<F: Future>(future: F) {
    let mut future = pin!(future);
    let _ = future
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()));
}

#[actix::test]
async fn an_awaited_publish_after_commit_dropped_after_its_commit_still_publishes() {
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let (_counter, seen) = tasks_listener(&broker).await;

    let committed = publish_after_commit_and_wait(
        &notifier,
        (),
        |_, batch: &mut Batch| {
            for i in 0..5 {
                batch.push(task(&format!("task {i}")));
            }
            Ok::<_, std::convert::Infallible>(())
        },
        |()| Ok::<_, std::convert::Infallible>(()),
    );
    // The client went away after the commit: the future is dropped.
    poll_once(committed);

    assert!(
        wait_for(&seen, 5).await,
        "the 5 committed events were published"
    );
}

#[actix::test]
async fn a_dropped_confirmed_send_still_publishes() {
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let (_counter, seen) = tasks_listener(&broker).await;

    drop(ProjectsNotifier::send_confirmed(&notifier, task("kept")));

    assert!(wait_for(&seen, 1).await);
}

#[actix::test]
async fn commit_to_a_stopped_notifier_hands_nothing_over() {
    let arbiter = Arbiter::new();
    let broker = TopicBroker::default().start();
    let notifier = {
        let broker = broker.clone();
        ProjectsNotifier::start_in_arbiter(&arbiter.handle(), move |_| {
            ProjectsNotifier::new(broker)
        })
    };
    arbiter.stop();
    arbiter.join().unwrap();

    let mut batch = Batch::new();
    batch.push(task("a"));
    batch.push(task("b"));

    assert_eq!(batch.commit_to(&notifier), 0);
    let confirmed = ProjectsNotifier::send_confirmed(&notifier, task("c")).await;
    assert_eq!(confirmed, Err(NotifyError::NotifierGone));
}

#[actix::test]
async fn a_stopped_broker_is_reported_as_broker_gone() {
    let arbiter = Arbiter::new();
    let broker = TopicBroker::start_in_arbiter(&arbiter.handle(), |_| TopicBroker::default());
    let notifier = ProjectsNotifier::new(broker).start();
    arbiter.stop();
    arbiter.join().unwrap();

    let refused = notifier.send(task("lost")).await.unwrap();
    assert_eq!(refused, Err(NotifyError::BrokerGone));

    let mut batch = Batch::new();
    batch.push(task("a"));
    batch.push(task("b"));
    let error = batch.commit_and_wait(&notifier).await.unwrap_err();
    assert_eq!(
        error.failures().len(),
        2,
        "every mutation is reported: {error}"
    );
}

#[actix::test]
async fn a_broker_that_stops_with_a_mutation_in_its_mailbox_is_reported_as_broker_gone() {
    // Either the notifier sees the broker gone, or the broker drops the
    // fan-out as it stops; both must read as the broker's loss, never as a
    // closed notifier mailbox.
    let (_arbiter, broker) = broker_about_to_stop();
    let notifier = ProjectsNotifier::new(broker).start();
    let confirmed = ProjectsNotifier::send_confirmed(&notifier, task("confirmed")).await;
    assert_eq!(confirmed, Err(NotifyError::BrokerGone));

    let (_arbiter, broker) = broker_about_to_stop();
    let notifier = ProjectsNotifier::new(broker).start();
    let sent = notifier.send(task("sent")).await;
    assert_eq!(sent, Ok(Err(NotifyError::BrokerGone)));

    let (_arbiter, broker) = broker_about_to_stop();
    let notifier = ProjectsNotifier::new(broker).start();
    let mut batch = Batch::new();
    batch.push(task("a"));
    batch.push(task("b"));
    let error = batch.commit_and_wait(&notifier).await.unwrap_err();
    let refused = |index| BatchFailure::Refused {
        index,
        error: NotifyError::BrokerGone,
    };
    assert_eq!(error.failures(), [refused(0), refused(1)], "{error}");
    assert!(notifier.connected(), "the notifier itself still runs");
}

#[actix::test]
async fn a_notify_receipt_counts_events_queued_behind_a_bound() {
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let counter = Counter {
        seen: Arc::clone(&seen),
    }
    .start();
    let options = SubscribeOptions::bounded(NonZeroUsize::MIN).overflow(Overflow::DropOldest);
    let subscribe =
        Subscribe::new(Topic::tasks(), counter.clone().recipient()).with_options(options);
    broker.send(subscribe).await.unwrap().unwrap();

    let first = notifier.send(task("first")).await.unwrap().unwrap();
    assert!(wait_for(&seen, 1).await);
    let second = notifier.send(task("second")).await.unwrap().unwrap();

    assert_eq!((first.delivered, first.queued), (1, 0));
    assert_eq!((second.delivered, second.queued, second.missed), (0, 1, 0));
}
