//! A bounded soak run: subscribers join, leave and crash, one is stuck, and
//! mutations are published on thousands of topics, for a given time. At the
//! end it prints what was published, delivered and missed (by reason), the
//! subscriptions alive and the resident memory at start, middle and end, and
//! exits non-zero if the counts do not add up or memory kept growing.
//!
//! ```sh
//! cargo run --release --example soak -- --seconds 20
//! ```

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use projects_pubsub::{
    AssignmentPayload, BrokerStats, Delivery, EventName, GetStats, Mutation, Overflow,
    ProjectPayload, ProjectsNotifier, Subscribe, SubscribeOptions, TaskPayload, Topic, TopicBroker,
    TopicCount,
};
use uuid::Uuid;

const PROJECTS: usize = 3_000;
const TRANSIENT: usize = 2_000;
const MUTATIONS_PER_TICK: usize = 40;
const TICK: Duration = Duration::from_millis(2);

/// A small deterministic generator, so runs are comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// What every subscriber adds to.
#[derive(Default)]
struct Counters {
    handled: AtomicU64,
    crashed: AtomicU64,
}

/// A view that lives for a while, then leaves or crashes.
struct View {
    counters: Arc<Counters>,
    crash_after: Option<u32>,
    seen: u32,
}

impl Actor for View {
    type Context = Context<Self>;
}

impl Handler<Delivery> for View {
    type Result = ();

    fn handle(&mut self, _: Delivery, _: &mut Context<Self>) {
        self.seen += 1;
        if self.crash_after == Some(self.seen) {
            self.counters.crashed.fetch_add(1, Ordering::Relaxed);
            panic!("soak: a view crashes on purpose");
        }
        self.counters.handled.fetch_add(1, Ordering::Relaxed);
    }
}

/// A subscriber that never lets go of what it receives: its bound fills up
/// and stays full.
struct Stuck(Vec<Delivery>);

impl Actor for Stuck {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Stuck {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        self.0.push(delivery);
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn mutation(rng: &mut Rng, projects: &[Uuid]) -> Mutation {
    let project = projects[rng.below(projects.len())];
    let made = match rng.below(4) {
        0 => Mutation::project(
            EventName::ProjectUpdated,
            ProjectPayload::new(project, "soak", rng.below(10) == 0),
        ),
        1 => Mutation::task(
            EventName::TaskUpdated,
            TaskPayload {
                uuid: Uuid::from_u128(rng.below(500) as u128),
                title: "t".into(),
            },
        ),
        _ => Mutation::assignment(
            EventName::AssignmentUpdated,
            AssignmentPayload {
                project_uuid: project,
                uuid: Some(Uuid::new_v4()),
            },
        ),
    };
    made.expect("the soak builds only well-formed mutations")
}

fn seconds_from_args() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == "--seconds")
        .and_then(|at| args.get(at + 1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(20)
}

#[actix::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    // Crashing views are part of the workload; their panics are counted,
    // not printed.
    std::panic::set_hook(Box::new(|_| {}));

    let seconds = seconds_from_args();
    let broker = TopicBroker::from_registry();
    let notifier = ProjectsNotifier::from_registry();
    let counters = Arc::new(Counters::default());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let projects: Vec<Uuid> = (0..PROJECTS)
        .map(|i| Uuid::from_u128(i as u128 + 1))
        .collect();

    // The views live on their own arbiter, as an application's would.
    let views = Arbiter::new();
    let stuck = Stuck(Vec::new()).start();
    let stuck_options =
        SubscribeOptions::bounded(NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN))
            .overflow(Overflow::DropNewest);
    broker.do_send(
        Subscribe::new(Topic::all(), stuck.clone().recipient()).with_options(stuck_options),
    );

    let mut alive: Vec<Addr<View>> = Vec::new();
    let started = Instant::now();
    let mut rss_start = 0;
    let mut rss_middle = 0;
    let mut published_topics = 0u64;
    let mut middle_taken = false;

    while started.elapsed() < Duration::from_secs(seconds) {
        // Keep about TRANSIENT views: new ones join, old ones leave.
        while alive.len() < TRANSIENT {
            let counters = Arc::clone(&counters);
            let crash_after = (rng.below(20) == 0).then(|| 1 + rng.below(50) as u32);
            let view = View::start_in_arbiter(&views.handle(), move |_| View {
                counters,
                crash_after,
                seen: 0,
            });
            let topic = match rng.below(10) {
                0 => Topic::all(),
                1 => Topic::tasks(),
                2 => Topic::templates(),
                _ => Topic::project(projects[rng.below(projects.len())]),
            };
            let options = if rng.below(2) == 0 {
                SubscribeOptions::default()
            } else {
                SubscribeOptions::bounded(NonZeroUsize::new(256).unwrap_or(NonZeroUsize::MIN))
            };
            broker.do_send(Subscribe::new(topic, view.clone().recipient()).with_options(options));
            alive.push(view);
        }
        for _ in 0..20 {
            // Dropping the last address makes the view stop; the broker
            // prunes it without being told.
            let leaving = rng.below(alive.len());
            alive.swap_remove(leaving);
        }

        for _ in 0..MUTATIONS_PER_TICK - 1 {
            notifier.do_send(mutation(&mut rng, &projects));
        }
        // Flow control: wait for the broker to have handed on the tick.
        match notifier.send(mutation(&mut rng, &projects)).await {
            Ok(Ok(receipt)) => published_topics += receipt.topics as u64,
            other => {
                eprintln!("soak: a mutation failed: {other:?}");
                std::process::exit(2);
            }
        }
        actix_rt::time::sleep(TICK).await;

        if rss_start == 0 && started.elapsed() > Duration::from_secs(1) {
            rss_start = resident_bytes();
        }
        if !middle_taken && started.elapsed() > Duration::from_secs(seconds / 2) {
            middle_taken = true;
            rss_middle = resident_bytes();
        }
    }

    drop(alive);
    // Let the views drain their mailboxes before counting.
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    // Counting topics sweeps the subscriptions of views that have stopped,
    // so the counters read after it show what is really alive.
    let topics = broker.send(TopicCount).await.unwrap_or_default();
    let stats: BrokerStats = broker.send(GetStats).await.unwrap_or_default();
    let rss_end = resident_bytes();
    report(
        &stats,
        published_topics,
        topics,
        &counters,
        [rss_start, rss_middle, rss_end],
    );
    views.stop();
    System::current().stop();
}

fn report(
    stats: &BrokerStats,
    published_topics: u64,
    topics: usize,
    counters: &Counters,
    [start, middle, end]: [u64; 3],
) {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!("publishes (mutation x topic)    {}", stats.publishes);
    println!("offered (publish x fan-out)     {}", stats.offered);
    println!("delivered                       {}", stats.deliveries);
    println!("missed: overflow bound          {}", stats.missed_overflow);
    println!("missed: subscriber gone         {}", stats.undeliverable);
    println!("waiting in backlogs             {}", stats.backlog);
    println!(
        "handled by views                {}",
        counters.handled.load(Ordering::Relaxed)
    );
    println!(
        "views crashed on purpose        {}",
        counters.crashed.load(Ordering::Relaxed)
    );
    println!("subscriptions alive             {}", stats.subscriptions);
    println!("topics alive                    {topics}");
    println!(
        "subscriptions added / pruned    {} / {}",
        stats.subscriptions_added, stats.subscriptions_pruned
    );
    println!(
        "resident memory MiB             start {:.1}  middle {:.1}  end {:.1}",
        mib(start),
        mib(middle),
        mib(end)
    );
    let _ = published_topics;

    let accounted = stats.deliveries + stats.missed_overflow + stats.undeliverable + stats.backlog;
    let counts_add_up = stats.offered == accounted;
    // Levelled off: the second half grew by less than a quarter and 16 MiB.
    let memory_flat = end <= middle + middle / 4 + 16 * 1024 * 1024;
    println!(
        "counts add up (offered = delivered + missed + waiting): {}",
        if counts_add_up { "yes" } else { "NO" }
    );
    println!(
        "memory levelled off: {}",
        if memory_flat { "yes" } else { "NO" }
    );
    if !(counts_add_up && memory_flat) {
        std::process::exit(1);
    }
}
