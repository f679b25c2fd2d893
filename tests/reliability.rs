//! Slow, stuck, failing and misbehaving subscribers: the broker keeps
//! delivering to everyone else, loses nothing it did not say it lost, and
//! counts what it dropped.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use projects_pubsub::{
    BrokerStats, Delivery, EventName, GetStats, Mutation, Overflow, ProjectsNotifier, Publish,
    Subscribe, SubscribeOptions, SubscriberCount, TaskPayload, Topic, TopicBroker,
};
use uuid::Uuid;

/// What a subscriber saw: sequence numbers, missed counts, last marks.
#[derive(Default, Debug)]
struct Seen {
    seqs: Vec<u64>,
    missed: u64,
    last: bool,
    at: Vec<Instant>,
}

/// A subscriber that records, and can hold on to its deliveries to play a
/// stuck consumer (a held delivery keeps its place in a bound).
struct Holder {
    seen: Arc<Mutex<Seen>>,
    hold: bool,
    held: Vec<Delivery>,
    sleep_per_event: Option<Duration>,
    panic_on_seq: Option<u64>,
}

impl Holder {
    fn new(seen: &Arc<Mutex<Seen>>) -> Holder {
        Holder {
            seen: Arc::clone(seen),
            hold: false,
            held: Vec::new(),
            sleep_per_event: None,
            panic_on_seq: None,
        }
    }
}

impl Actor for Holder {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Holder {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        if self.panic_on_seq == Some(delivery.seq()) {
            panic!("subscriber fails on purpose at seq {}", delivery.seq());
        }
        if let Some(pause) = self.sleep_per_event {
            // Blocks this actor's thread, the worst a subscriber can do.
            std::thread::sleep(pause);
        }
        {
            let mut seen = self.seen.lock().unwrap();
            seen.seqs.push(delivery.seq());
            seen.missed += delivery.missed();
            seen.last |= delivery.is_last();
            seen.at.push(Instant::now());
        }
        if self.hold {
            self.held.push(delivery);
        }
    }
}

/// Releases every held delivery and stops holding new ones.
struct Resume;

impl Message for Resume {
    type Result = ();
}

impl Handler<Resume> for Holder {
    type Result = ();

    fn handle(&mut self, _: Resume, _: &mut Context<Self>) {
        self.hold = false;
        self.held.clear();
    }
}

fn task_event(title: &str) -> projects_pubsub::ProjectsEvent {
    let task = TaskPayload {
        uuid: Uuid::new_v4(),
        title: title.to_owned(),
    };
    projects_pubsub::ProjectsEvent::new(
        EventName::TaskUpdated,
        projects_pubsub::Payload::Task(task),
    )
}

async fn publish_n(broker: &Addr<TopicBroker>, topic: &Topic, n: usize) -> Vec<usize> {
    let mut missed = Vec::new();
    for i in 0..n {
        let publish = Publish::new(topic.clone(), task_event(&format!("event {i}")));
        missed.push(broker.send(publish).await.unwrap().unwrap().missed);
    }
    missed
}

/// Waits, up to ten seconds, until `check` holds.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    check()
}

/// Subscribes `who` to `topic` and waits until the broker has it.
async fn subscribe(broker: &Addr<TopicBroker>, topic: &Topic, who: &Addr<Holder>) {
    let subscribe = Subscribe::new(topic.clone(), who.clone().recipient());
    broker.send(subscribe).await.unwrap().unwrap();
}

fn bounded(n: usize, overflow: Overflow) -> SubscribeOptions {
    SubscribeOptions::bounded(NonZeroUsize::new(n).unwrap()).overflow(overflow)
}

async fn stats(broker: &Addr<TopicBroker>) -> BrokerStats {
    broker.send(GetStats).await.unwrap()
}

fn assert_accounted(stats: &BrokerStats) {
    assert_eq!(
        stats.offered,
        stats.deliveries + stats.missed_overflow + stats.undeliverable + stats.backlog,
        "every offered event is delivered, missed, undeliverable or waiting: {stats:?}"
    );
}

/// A broker with one subscriber on `projects:tasks` that holds every
/// delivery until it is sent [`Resume`]: a stuck consumer with a bound.
struct Paused {
    broker: Addr<TopicBroker>,
    paused: Addr<Holder>,
    seen: Arc<Mutex<Seen>>,
    topic: Topic,
}

impl Paused {
    async fn start(bound: usize, overflow: Overflow) -> Paused {
        let broker = TopicBroker::default().start();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let paused = Holder {
            hold: true,
            ..Holder::new(&seen)
        }
        .start();
        let topic = Topic::tasks();
        let subscribe = Subscribe::new(topic.clone(), paused.clone().recipient())
            .with_options(bounded(bound, overflow));
        broker.send(subscribe).await.unwrap().unwrap();
        Paused {
            broker,
            paused,
            seen,
            topic,
        }
    }
}

#[actix::test]
async fn slow_subscriber_with_small_mailbox_gets_all_100_in_order() {
    let broker = TopicBroker::default().start();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let slow = Holder::create(|ctx| {
        ctx.set_mailbox_capacity(1);
        Holder {
            sleep_per_event: Some(Duration::from_millis(1)),
            ..Holder::new(&seen)
        }
    });
    let topic = Topic::tasks();
    subscribe(&broker, &topic, &slow).await;

    let missed = publish_n(&broker, &topic, 100).await;

    assert!(missed.iter().all(|m| *m == 0));
    assert!(eventually(|| seen.lock().unwrap().seqs.len() == 100).await);
    assert_eq!(seen.lock().unwrap().seqs, (1..=100).collect::<Vec<u64>>());
    assert_eq!(broker.send(SubscriberCount(topic)).await.unwrap(), 1);
    assert_accounted(&stats(&broker).await);
}

#[actix::test]
async fn bound_of_n_on_a_paused_subscriber_loses_nothing_for_n_events() {
    for overflow in [
        Overflow::DropNewest,
        Overflow::DropOldest,
        Overflow::Unsubscribe,
    ] {
        let Paused {
            broker,
            paused: _paused,
            seen,
            topic,
        } = Paused::start(8, overflow).await;

        let missed = publish_n(&broker, &topic, 8).await;

        assert_eq!(missed.iter().sum::<usize>(), 0, "{overflow:?}");
        assert!(
            eventually(|| seen.lock().unwrap().seqs.len() == 8).await,
            "{overflow:?}"
        );
        assert_eq!(
            broker.send(SubscriberCount(topic)).await.unwrap(),
            1,
            "{overflow:?}"
        );
        assert!(!seen.lock().unwrap().last);
    }
}

#[actix::test]
async fn drop_newest_reports_exactly_3_missed_for_n_plus_3_and_stays_subscribed() {
    let Paused {
        broker,
        paused,
        seen,
        topic,
    } = Paused::start(8, Overflow::DropNewest).await;

    let missed = publish_n(&broker, &topic, 11).await;
    assert_eq!(missed.iter().sum::<usize>(), 3);
    assert_eq!(stats(&broker).await.missed_overflow, 3);

    // Once it catches up, the next delivery tells it how many it missed,
    // and the sequence numbers show the gap.
    paused.send(Resume).await.unwrap();
    publish_n(&broker, &topic, 1).await;
    assert!(eventually(|| seen.lock().unwrap().seqs.len() == 9).await);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.missed, 3);
        assert_eq!(seen.seqs, vec![1, 2, 3, 4, 5, 6, 7, 8, 12]);
    }
    assert_eq!(broker.send(SubscriberCount(topic)).await.unwrap(), 1);
    assert_accounted(&stats(&broker).await);
}

#[actix::test]
async fn drop_oldest_keeps_the_newest_and_reports_exactly_3_missed() {
    let Paused {
        broker,
        paused,
        seen,
        topic,
    } = Paused::start(4, Overflow::DropOldest).await;

    // 4 handed on, 4 waiting in the backlog, 3 more push the 3 oldest
    // waiting ones out.
    let missed = publish_n(&broker, &topic, 11).await;
    assert_eq!(missed.iter().sum::<usize>(), 3);
    let before = stats(&broker).await;
    assert_eq!(before.backlog, 4);
    assert_accounted(&before);

    paused.send(Resume).await.unwrap();
    assert!(eventually(|| seen.lock().unwrap().seqs.len() == 8).await);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.seqs, vec![1, 2, 3, 4, 8, 9, 10, 11]);
        assert_eq!(seen.missed, 3);
    }
    let after = stats(&broker).await;
    assert_eq!(after.backlog, 0);
    assert_eq!(after.missed_overflow, 3);
    assert_accounted(&after);
}

#[actix::test]
async fn unsubscribe_policy_marks_a_last_delivery_and_removes_the_subscription() {
    // The subscriber's address is kept (`_paused`) so it does not stop.
    let Paused {
        broker,
        paused: _paused,
        seen,
        topic,
    } = Paused::start(8, Overflow::Unsubscribe).await;

    publish_n(&broker, &topic, 11).await;

    assert!(eventually(|| seen.lock().unwrap().seqs.len() == 9).await);
    assert!(seen.lock().unwrap().last);
    assert_eq!(broker.send(SubscriberCount(topic)).await.unwrap(), 0);
    let stats = stats(&broker).await;
    assert_eq!(stats.overflow_unsubscribed, 1);
    assert_accounted(&stats);
}

#[actix::test]
async fn a_subscriber_sleeping_a_second_per_event_does_not_delay_a_fast_one() {
    let _ = env_logger::builder().is_test(true).try_init();
    let broker = TopicBroker::from_registry();
    let topic = Topic::embed(&format!("isolation-{}", Uuid::new_v4())).unwrap();

    // The sleeper blocks the thread of its own arbiter; the fast one runs
    // here.
    let sleeper_seen = Arc::new(Mutex::new(Seen::default()));
    let sleeper_arbiter = Arbiter::new();
    let sleeper = {
        let seen = Arc::clone(&sleeper_seen);
        Holder::start_in_arbiter(&sleeper_arbiter.handle(), move |_| Holder {
            sleep_per_event: Some(Duration::from_secs(1)),
            ..Holder::new(&seen)
        })
    };
    let fast_seen = Arc::new(Mutex::new(Seen::default()));
    let fast = Holder::new(&fast_seen).start();
    subscribe(&broker, &topic, &sleeper).await;
    subscribe(&broker, &topic, &fast).await;

    for i in 0..10 {
        broker.do_send(Publish::new(
            topic.clone(),
            task_event(&format!("event {i}")),
        ));
    }
    let last_publish = Instant::now();

    assert!(eventually(|| fast_seen.lock().unwrap().seqs.len() == 10).await);
    let fast_done = *fast_seen.lock().unwrap().at.last().unwrap();
    let lag = fast_done.saturating_duration_since(last_publish);
    assert!(
        lag < Duration::from_millis(50),
        "fast subscriber finished {lag:?} after"
    );
    assert!(sleeper_seen.lock().unwrap().seqs.len() < 10);
    sleeper_arbiter.stop();
}

#[actix::test]
async fn a_panicking_subscriber_stops_nobody_else() {
    let _ = env_logger::builder().is_test(true).try_init();
    let broker = TopicBroker::from_registry();
    let notifier = ProjectsNotifier::from_registry();

    // The failing subscriber lives on an arbiter of its own, as an
    // application's views usually do; its panic ends only its own actor.
    let failing_seen = Arc::new(Mutex::new(Seen::default()));
    let failing_arbiter = Arbiter::new();
    let failing = {
        let seen = Arc::clone(&failing_seen);
        Holder::start_in_arbiter(&failing_arbiter.handle(), move |_| Holder {
            panic_on_seq: Some(2),
            ..Holder::new(&seen)
        })
    };
    let healthy_seen = Arc::new(Mutex::new(Seen::default()));
    let healthy = Holder::new(&healthy_seen).start();

    let org = projects_pubsub::OrgId::new(&format!(
        "panic-{}",
        &Uuid::new_v4().simple().to_string()[..8]
    ))
    .unwrap();
    let topic = Topic::tasks().in_org(org.clone()).unwrap();
    subscribe(&broker, &topic, &failing).await;
    subscribe(&broker, &topic, &healthy).await;

    for i in 0..5 {
        let task = TaskPayload {
            uuid: Uuid::new_v4(),
            title: format!("task {i}"),
        };
        let mutation = Mutation::task(EventName::TaskCreated, task)
            .unwrap()
            .in_org(org.clone());
        notifier.send(mutation).await.unwrap().unwrap();
    }

    assert!(eventually(|| healthy_seen.lock().unwrap().seqs.len() == 5).await);
    // Its own thread may lag behind: wait for its one event, then check
    // that nothing after the panic was handled.
    assert!(eventually(|| !failing_seen.lock().unwrap().seqs.is_empty()).await);
    assert_eq!(failing_seen.lock().unwrap().seqs, vec![1]);
    // The dead subscriber is pruned once its actor is gone (how long the
    // panic takes to unwind varies, with a backtrace printed it is slow),
    // and the broker and the notifier still work.
    let mut pruned = false;
    for _ in 0..1000 {
        if broker.send(SubscriberCount(topic.clone())).await.unwrap() == 1 {
            pruned = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(pruned, "the panicked subscriber is pruned");
    let task = TaskPayload {
        uuid: Uuid::new_v4(),
        title: "after".into(),
    };
    let mutation = Mutation::task(EventName::TaskCreated, task)
        .unwrap()
        .in_org(org);
    let receipt = notifier.send(mutation).await.unwrap().unwrap();
    assert_eq!(receipt.delivered, 1);
    assert_eq!(broker.send(SubscriberCount(topic)).await.unwrap(), 1);
    failing_arbiter.stop();
}

#[actix::test]
async fn subscriptions_survive_a_broker_restart() {
    // A supervised broker that is stopped is restarted with its state:
    // the subscription table lives in the actor value.
    let broker = Supervisor::start(|_| TopicBroker::default());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let view = Holder::new(&seen).start();
    let topic = Topic::tasks();
    subscribe(&broker, &topic, &view).await;
    publish_n(&broker, &topic, 1).await;

    broker.send(projects_pubsub::Restart).await.unwrap();

    publish_n(&broker, &topic, 1).await;
    assert!(eventually(|| seen.lock().unwrap().seqs.len() == 2).await);
    assert_eq!(seen.lock().unwrap().seqs, vec![1, 2]);
    assert_eq!(broker.send(SubscriberCount(topic)).await.unwrap(), 1);
}

/// A subscriber that notes when it stops.
struct Witness {
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl Actor for Witness {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Handler<Delivery> for Witness {
    type Result = ();

    fn handle(&mut self, _: Delivery, _: &mut Context<Self>) {}
}

/// What keeps the broker's mailbox from draining in
/// [`dropped_subscriber_stops_while_the_broker_is_kept_busy_by`].
#[derive(Clone, Copy)]
enum Flood {
    Publishes,
    Queries,
}

#[actix::test]
async fn a_dropped_subscriber_stops_while_publishes_keep_the_broker_busy() {
    dropped_subscriber_stops_while_the_broker_is_kept_busy_by(Flood::Publishes).await;
}

#[actix::test]
async fn a_dropped_subscriber_stops_while_queries_keep_the_broker_busy() {
    dropped_subscriber_stops_while_the_broker_is_kept_busy_by(Flood::Queries).await;
}

/// actix runs an actor's timers only once its mailbox is empty. Messages
/// from many senders at once keep the broker's mailbox from ever draining;
/// the broker must still let go of the addresses it holds once its hold is
/// over, so a subscriber whose own address is dropped stops.
async fn dropped_subscriber_stops_while_the_broker_is_kept_busy_by(flood: Flood) {
    use std::sync::atomic::{AtomicBool, Ordering};

    let home = Arbiter::new();
    let broker = TopicBroker::start_in_arbiter(&home.handle(), |_| TopicBroker::default());
    let stopped = Arc::new(AtomicBool::new(false));
    let witness = Witness {
        stopped: Arc::clone(&stopped),
    }
    .start();
    let quiet = Topic::embed("quiet").unwrap();
    let subscribe = Subscribe::new(quiet.clone(), witness.clone().recipient());
    broker.send(subscribe).await.unwrap().unwrap();
    let event = task_event("flood");

    // A busy topic with 300 live subscribers, so that each publish or
    // count there takes the broker longer than a sender needs to send the
    // next one, flooded by 2 x 512 senders that each send again as soon as
    // the broker answers.
    let busy = Topic::embed("busy").unwrap();
    let mut busy_witnesses = Vec::new();
    for _ in 0..300 {
        let busy_witness = Witness {
            stopped: Arc::new(AtomicBool::new(false)),
        }
        .start();
        let subscribe = Subscribe::new(busy.clone(), busy_witness.clone().recipient());
        broker.send(subscribe).await.unwrap().unwrap();
        busy_witnesses.push(busy_witness);
    }
    let flooding = Arc::new(AtomicBool::new(true));
    let senders: Vec<Arbiter> = (0..2).map(|_| Arbiter::new()).collect();
    for at in 0..1024 {
        let (broker, busy, event, flooding) = (
            broker.clone(),
            busy.clone(),
            event.clone(),
            Arc::clone(&flooding),
        );
        senders[at % 2].spawn(async move {
            while flooding.load(Ordering::Relaxed) {
                let answered = match flood {
                    Flood::Publishes => {
                        let publish = Publish::new(busy.clone(), event.clone());
                        broker.send(publish).await.is_ok()
                    }
                    Flood::Queries => broker.send(SubscriberCount(busy.clone())).await.is_ok(),
                };
                if !answered {
                    break;
                }
            }
        });
    }
    actix_rt::time::sleep(Duration::from_millis(50)).await;

    // Delivered during the flood: the broker holds the witness again.
    let receipt = broker
        .send(Publish::new(quiet.clone(), event.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.delivered, 1);
    drop(witness);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stopped.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the broker kept the dropped subscriber alive for 20 s"
        );
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }

    flooding.store(false, Ordering::Relaxed);
    for sender in senders {
        sender.stop();
    }
    home.stop();
}
