//! How fast the crate delivers, beside what an actix user could use instead.
//!
//! One process, one run: the crate's full path (a [`Mutation`] sent to a
//! [`ProjectsNotifier`], routed, delivered by a [`TopicBroker`] to every
//! subscriber actor) beside three baselines:
//!
//! - raw actix: a `Vec<Recipient<_>>` and a `do_send` loop (a map of such
//!   vectors and the crate's routing function for the projects mix);
//! - actix-broker 0.4: `SystemBroker` and `issue_async`;
//! - tokio's broadcast channel with one receiver task per subscriber.
//!
//! Every throughput figure is end to end: from the first publish of the
//! timed windows until every subscriber has handled every event. Events go
//! out in windows of a few thousand deliveries; the publisher waits until
//! every subscriber has acknowledged its share of a window (an atomic
//! counter and a `Notify`) before it sends the next, so queues stay short.
//! Mechanisms alternate between repetitions and each figure is the median
//! of five.
//!
//! ```text
//! cargo bench --bench throughput              # full volume, writes docs/throughput.svg
//! cargo bench --bench throughput -- --quick   # the same scenarios, less volume
//! cargo bench --bench throughput -- --only fanout --mech crate   # one part, for a profiler
//! ```
//!
//! `docs/performance.md` explains the scenarios and discusses the results.

use std::alloc::{GlobalAlloc, Layout, System as Heap};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_broker::{BrokerIssue, BrokerSubscribe, SystemBroker};
use projects_pubsub::{
    BrokerConfig, Delivery, EventName, GetStats, Mutation, Payload, ProjectsEvent,
    ProjectsNotifier, Subscribe, TaskPayload, Topic, TopicBroker, TopicCount, workload,
};
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------------------------

/// The system allocator, counting bytes and calls while [`COUNTING`] is on.
///
/// Off by default, so the throughput runs pay one relaxed load per call and
/// no shared counter; the memory scenarios switch it on around what they
/// measure.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static NET_BYTES: AtomicI64 = AtomicI64::new(0);
static ALLOC_CALLS: AtomicU64 = AtomicU64::new(0);

fn count(delta: i64, call: bool) {
    if COUNTING.load(Ordering::Relaxed) {
        NET_BYTES.fetch_add(delta, Ordering::Relaxed);
        if call {
            ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64, true);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { Heap.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64, true);
        // SAFETY: as above.
        unsafe { Heap.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64), false);
        // SAFETY: as above.
        unsafe { Heap.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as i64 - layout.size() as i64, true);
        // SAFETY: as above.
        unsafe { Heap.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Net bytes and allocation calls between `start` and `stop`.
struct AllocWindow {
    bytes: i64,
    calls: u64,
}

impl AllocWindow {
    fn start() -> AllocWindow {
        let window = AllocWindow {
            bytes: NET_BYTES.load(Ordering::SeqCst),
            calls: ALLOC_CALLS.load(Ordering::SeqCst),
        };
        COUNTING.store(true, Ordering::SeqCst);
        window
    }

    fn stop(self) -> AllocWindow {
        COUNTING.store(false, Ordering::SeqCst);
        AllocWindow {
            bytes: NET_BYTES.load(Ordering::SeqCst) - self.bytes,
            calls: ALLOC_CALLS.load(Ordering::SeqCst) - self.calls,
        }
    }
}

/// Resident set size from `/proc/self/statm`, assuming 4 KiB pages.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Nanoseconds the calling thread has run on a CPU, from
/// `/proc/thread-self/schedstat`: unlike wall time, it does not count the
/// time other processes of a busy machine take.
fn thread_cpu_nanos() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

struct Opts {
    quick: bool,
    only: Vec<String>,
    mechs: Vec<Mech>,
    plot: Option<PathBuf>,
    reps: usize,
    arbiters: usize,
    /// Fan-out sizes to run; all four by default.
    sizes: Vec<usize>,
    /// Timed deliveries per run, instead of the default of the mode.
    deliveries: Option<u64>,
}

impl Opts {
    fn parse() -> Opts {
        let mut opts = Opts {
            quick: false,
            only: Vec::new(),
            mechs: Mech::ALL.to_vec(),
            plot: None,
            reps: 5,
            arbiters: 2,
            sizes: vec![1, 10, 100, 1000],
            deliveries: None,
        };
        let mut plot = true;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => opts.quick = true,
                "--only" => opts.only.extend(args.next()),
                "--plot" => opts.plot = args.next().map(PathBuf::from),
                "--no-plot" => plot = false,
                "--reps" => opts.reps = args.next().and_then(|n| n.parse().ok()).unwrap_or(5),
                "--arbiters" => {
                    opts.arbiters = args.next().and_then(|n| n.parse().ok()).unwrap_or(2)
                }
                "--n" => {
                    opts.sizes = args
                        .next()
                        .and_then(|n| n.parse().ok())
                        .into_iter()
                        .collect()
                }
                "--deliveries" => opts.deliveries = args.next().and_then(|n| n.parse().ok()),
                "--mech" => {
                    let wanted = args.next().unwrap_or_default();
                    opts.mechs = Mech::ALL
                        .into_iter()
                        .filter(|mech| mech.key() == wanted)
                        .collect();
                }
                // cargo bench passes --bench to every bench binary.
                "--bench" => {}
                "--sizes" => {
                    println!(
                        "Mutation {} ProjectsEvent {} Topic {} Delivery {} Subscribe {}",
                        size_of::<Mutation>(),
                        size_of::<ProjectsEvent>(),
                        size_of::<Topic>(),
                        size_of::<Delivery>(),
                        size_of::<Subscribe>()
                    );
                    std::process::exit(0);
                }
                other => eprintln!("ignoring unknown argument {other:?}"),
            }
        }
        if plot && opts.plot.is_none() && !opts.quick && opts.only.is_empty() {
            opts.plot = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/throughput.svg").into());
        }
        if !plot {
            opts.plot = None;
        }
        opts
    }

    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| part.contains(only.as_str()))
    }

    fn command(&self) -> String {
        let mut command = String::from("cargo bench --bench throughput");
        if self.quick {
            command.push_str(" -- --quick");
        }
        command
    }

    /// Deliveries timed per throughput run.
    fn run_deliveries(&self) -> u64 {
        let default = if self.quick { 300_000 } else { 2_000_000 };
        self.deliveries.unwrap_or(default)
    }
}

/// Deliveries in flight per window, at most: the publisher waits for every
/// acknowledgement of a window before it sends the next.
const WINDOW_DELIVERIES: u64 = 8192;

/// Most events per window on one topic.
const MAX_WINDOW_EVENTS: u64 = 1024;

// ---------------------------------------------------------------------------------------------
// Acknowledgements
// ---------------------------------------------------------------------------------------------

/// What the publisher waits on: subscribers report once per window in
/// which they received events.
#[derive(Default)]
struct Done {
    reports: AtomicU64,
    target: AtomicU64,
    notify: Notify,
}

impl Done {
    async fn wait_for(&self, target: u64) {
        while self.reports.load(Ordering::Acquire) < target {
            self.notify.notified().await;
        }
    }
}

/// A subscriber's count of what it received, reporting to [`Done`] when it
/// has its share of a window. One atomic operation per subscriber and
/// window, so the harness costs next to nothing per delivery.
struct Tracker {
    done: Arc<Done>,
    report_at: Arc<[u64]>,
    next: usize,
    got: u64,
}

impl Tracker {
    fn new(done: &Arc<Done>, report_at: &Arc<[u64]>) -> Tracker {
        Tracker {
            done: Arc::clone(done),
            report_at: Arc::clone(report_at),
            next: 0,
            got: 0,
        }
    }

    #[inline]
    fn hit(&mut self) {
        self.got += 1;
        if self.got == self.report_at[self.next] {
            self.next += 1;
            let reports = self.done.reports.fetch_add(1, Ordering::AcqRel) + 1;
            if reports >= self.done.target.load(Ordering::Acquire) {
                self.done.notify.notify_one();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Subscribers
// ---------------------------------------------------------------------------------------------

/// The event as the baselines send it: shared, like the crate's.
#[derive(Clone)]
struct RawEvent(Arc<ProjectsEvent>);

impl Message for RawEvent {
    type Result = ();
}

/// The same, as a distinct type for actix-broker, which routes by type.
#[derive(Clone)]
struct BrokerEvent(Arc<ProjectsEvent>);

impl Message for BrokerEvent {
    type Result = ();
}

struct Ping;

impl Message for Ping {
    type Result = ();
}

/// The subscriber of every actix mechanism: it looks at the event and
/// counts it.
struct Sub {
    tracker: Tracker,
    actix_broker: bool,
}

impl Actor for Sub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.actix_broker {
            self.subscribe_system_async::<BrokerEvent>(ctx);
        }
    }
}

impl Handler<Delivery> for Sub {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        black_box(&delivery.event().name);
        self.tracker.hit();
    }
}

impl Handler<RawEvent> for Sub {
    type Result = ();

    fn handle(&mut self, event: RawEvent, _: &mut Context<Self>) {
        black_box(&event.0.name);
        self.tracker.hit();
    }
}

impl Handler<BrokerEvent> for Sub {
    type Result = ();

    fn handle(&mut self, event: BrokerEvent, _: &mut Context<Self>) {
        black_box(&event.0.name);
        self.tracker.hit();
    }
}

impl Handler<Ping> for Sub {
    type Result = ();

    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
}

/// actix-broker's issuer: the trait needs an actor type, never started.
struct Issuer;

impl Actor for Issuer {
    type Context = Context<Self>;
}

/// A subscriber that does nothing, for the memory scenarios.
struct Idle;

impl Actor for Idle {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Idle {
    type Result = ();

    fn handle(&mut self, _: Delivery, _: &mut Context<Self>) {}
}

// ---------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------

/// A small deterministic generator, so every run routes the same stream.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

fn project_id(i: usize) -> Uuid {
    Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 | i as u128)
}

/// A new mutation equal to `mutation`, built from a copy of its event as a
/// request handler builds one: the same copy the baselines make of the
/// event they send. (A clone of a mutation would share its event.)
fn rebuilt(mutation: &Mutation) -> Mutation {
    let event = mutation.event().clone();
    let rebuilt = match (mutation.embed_topic(), event.payload) {
        (Some(topic), Payload::Embed(map)) => Mutation::embed(topic.clone(), event.name, map),
        (_, payload) => Mutation::from_event(ProjectsEvent::new(event.name, payload)),
    };
    rebuilt.expect("a bench mutation stays valid when rebuilt")
}

fn task_mutation(i: usize) -> Mutation {
    let task = TaskPayload {
        uuid: Uuid::from_u128(i as u128 + 1),
        title: "Sand the floor".into(),
    };
    Mutation::task(EventName::TaskCreated, task).expect("a task name fits a task")
}

/// The mutations of the demo workload, `examples/data/workspace.jsonl`.
fn recorded_workload() -> Result<Vec<Mutation>, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/workspace.jsonl");
    let file = std::fs::File::open(path).map_err(|err| format!("{path}: {err}"))?;
    let read = workload::read(std::io::BufReader::new(file));
    if read.mutations.is_empty() {
        return Err(format!("{path} holds no mutation"));
    }
    Ok(read
        .mutations
        .into_iter()
        .map(|(_, mutation)| mutation)
        .collect())
}

/// The same mutation, moved to `project` when it belongs to one.
fn moved_to(mutation: &Mutation, project: Uuid) -> Mutation {
    let mut event = mutation.event().clone();
    match &mut event.payload {
        Payload::Project(p) => p.uuid = project,
        Payload::ProjectRef(p) => p.uuid = project,
        Payload::Assignment(a) => a.project_uuid = project,
        Payload::Dependency(d) => d.project_uuid = project,
        _ => return mutation.clone(),
    }
    Mutation::from_event(event).expect("a recorded mutation stays valid when moved")
}

/// `count` mutations in the recorded order and proportions, each moved to
/// one of `projects` projects chosen at random.
fn mix_stream(recorded: &[Mutation], count: usize, projects: usize) -> Vec<Mutation> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    (0..count)
        .map(|i| {
            moved_to(
                &recorded[i % recorded.len()],
                project_id(rng.below(projects)),
            )
        })
        .collect()
}

/// How many events of each name the recorded workload holds.
fn proportions(recorded: &[Mutation]) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for mutation in recorded {
        *counts.entry(mutation.event().name.to_string()).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

// ---------------------------------------------------------------------------------------------
// Plans: what a throughput run sends, and what it waits for
// ---------------------------------------------------------------------------------------------

struct Plan {
    mutations: Vec<Mutation>,
    /// The subscribed topics and how many subscribers each has.
    topics: Vec<(Topic, usize)>,
    /// Event ranges; the first window warms up and is not timed.
    windows: Vec<Range<usize>>,
    /// Reports expected once each window is handled, cumulative.
    reports: Vec<u64>,
    /// Per topic: a subscriber's counts at which it reports, then a sentinel.
    report_at: Vec<Arc<[u64]>>,
    timed_deliveries: u64,
    /// Most events of one topic in one window (the broadcast capacity).
    capacity: usize,
    /// Whether the baselines must route (the mix) or have one list (fan-out).
    routed: bool,
}

impl Plan {
    fn new(
        mutations: Vec<Mutation>,
        topics: Vec<(Topic, usize)>,
        window: u64,
        routed: bool,
    ) -> Plan {
        let index: HashMap<&Topic, usize> = topics
            .iter()
            .enumerate()
            .map(|(at, (topic, _))| (topic, at))
            .collect();

        let mut windows = Vec::new();
        let mut reports = Vec::new();
        let mut report_at: Vec<Vec<u64>> = vec![Vec::new(); topics.len()];
        let mut received = vec![0u64; topics.len()];
        let mut in_window = vec![0u64; topics.len()];
        let (mut start, mut deliveries, mut reporters) = (0, 0u64, 0u64);
        let (mut timed, mut capacity) = (0u64, 1usize);
        for (at, mutation) in mutations.iter().enumerate() {
            for topic in mutation.topics().expect("bench mutations route") {
                if let Some(&t) = index.get(&topic) {
                    in_window[t] += 1;
                    deliveries += topics[t].1 as u64;
                }
            }
            if deliveries < window && at + 1 < mutations.len() {
                continue;
            }

            for (t, count) in in_window.iter_mut().enumerate() {
                if *count > 0 {
                    received[t] += *count;
                    report_at[t].push(received[t]);
                    reporters += topics[t].1 as u64;
                    capacity = capacity.max(*count as usize);
                    *count = 0;
                }
            }
            if !windows.is_empty() {
                timed += deliveries;
            }
            windows.push(start..at + 1);
            reports.push(reporters);
            start = at + 1;
            deliveries = 0;
        }

        let report_at = report_at
            .into_iter()
            .map(|mut at| {
                at.push(u64::MAX);
                at.into()
            })
            .collect();
        Plan {
            mutations,
            topics,
            windows,
            reports,
            report_at,
            timed_deliveries: timed,
            capacity,
            routed,
        }
    }

    /// Fan-out: task mutations, `n` subscribers on `projects:all`.
    fn fanout(n: usize, deliveries: u64) -> Plan {
        let per_window = (WINDOW_DELIVERIES / n as u64).clamp(1, MAX_WINDOW_EVENTS);
        Plan::fanout_windows(n, per_window, deliveries)
    }

    /// Fan-out with `per_window` events per window.
    fn fanout_windows(n: usize, per_window: u64, deliveries: u64) -> Plan {
        let windows = 1 + deliveries.div_ceil(per_window * n as u64);
        let mutations = (0..(windows * per_window) as usize)
            .map(task_mutation)
            .collect();
        Plan::new(
            mutations,
            vec![(Topic::all(), n)],
            per_window * n as u64,
            false,
        )
    }

    /// The projects mix: 1,000 project topics with 10 subscribers each and
    /// 50 subscribers on `projects:all`.
    fn mix(recorded: &[Mutation], deliveries: u64) -> Plan {
        let mut topics: Vec<(Topic, usize)> = vec![(Topic::all(), 50)];
        topics.extend((0..1000).map(|p| (Topic::project(project_id(p)), 10)));
        // About 57 deliveries per mutation; a few windows more than needed.
        let count = (deliveries / 50 + WINDOW_DELIVERIES / 20) as usize;
        Plan::new(
            mix_stream(recorded, count, 1000),
            topics,
            WINDOW_DELIVERIES,
            true,
        )
    }

    fn subscribers(&self) -> usize {
        self.topics.iter().map(|(_, n)| n).sum()
    }

    fn window_events(&self) -> usize {
        self.windows.get(1).map_or(0, |w| w.len())
    }

    /// Sends every window with `publish`, waiting for each to be handled;
    /// returns the seconds from the first timed publish to the last
    /// acknowledgement.
    async fn publish(&self, done: &Done, mut publish: impl FnMut(&Mutation)) -> f64 {
        let mut start = Instant::now();
        let mut counted = None;
        for (w, range) in self.windows.iter().enumerate() {
            if w == 1 {
                if COUNT_TIMED.load(Ordering::SeqCst) {
                    counted = Some(AllocWindow::start());
                }
                start = Instant::now();
            }
            let target = self.reports[w];
            done.target.store(target, Ordering::Release);
            for mutation in &self.mutations[range.clone()] {
                publish(mutation);
            }
            done.wait_for(target).await;
        }
        let secs = start.elapsed().as_secs_f64();
        if let Some(counted) = counted {
            *TIMED_WINDOW.lock().expect("not poisoned") = Some(counted.stop());
        }
        secs
    }
}

// ---------------------------------------------------------------------------------------------
// Mechanisms
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
enum Mech {
    Crate,
    Raw,
    ActixBroker,
    Tokio,
}

impl Mech {
    const ALL: [Mech; 4] = [Mech::Crate, Mech::Raw, Mech::ActixBroker, Mech::Tokio];

    fn label(self) -> &'static str {
        match self {
            Mech::Crate => "projects-pubsub",
            Mech::Raw => "raw actix",
            Mech::ActixBroker => "actix-broker",
            Mech::Tokio => "tokio broadcast",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Mech::Crate => "crate",
            Mech::Raw => "raw",
            Mech::ActixBroker => "broker",
            Mech::Tokio => "tokio",
        }
    }
}

/// Where subscriber `i` runs.
fn place(handles: &[ArbiterHandle], i: usize) -> &ArbiterHandle {
    &handles[i % handles.len()]
}

/// One throughput run in a fresh actix system; returns deliveries per
/// second.
fn run(plan: &Plan, mech: Mech, arbiters: usize) -> f64 {
    let system = System::new();
    let secs = system.block_on(async {
        let extra: Vec<Arbiter> = (0..arbiters).map(|_| Arbiter::new()).collect();
        let handles: Vec<ArbiterHandle> = if extra.is_empty() {
            vec![Arbiter::current()]
        } else {
            extra.iter().map(Arbiter::handle).collect()
        };
        let done = Arc::new(Done::default());

        let secs = match mech {
            Mech::Crate => run_crate(plan, &handles, &done).await,
            Mech::Raw => run_raw(plan, &handles, &done).await,
            Mech::ActixBroker => run_actix_broker(plan, &handles, &done).await,
            Mech::Tokio => run_tokio(plan, &handles, &done).await,
        };

        for arbiter in extra {
            arbiter.stop();
            let _ = arbiter.join();
        }
        secs
    });
    drop(system);
    plan.timed_deliveries as f64 / secs
}

fn start_subs(
    plan: &Plan,
    handles: &[ArbiterHandle],
    done: &Arc<Done>,
    actix_broker: bool,
) -> Vec<(usize, Addr<Sub>)> {
    let mut subs = Vec::with_capacity(plan.subscribers());
    for (t, (_, n)) in plan.topics.iter().enumerate() {
        for _ in 0..*n {
            let tracker = Tracker::new(done, &plan.report_at[t]);
            let sub = Sub {
                tracker,
                actix_broker,
            };
            let addr = Sub::start_in_arbiter(place(handles, subs.len()), move |_| sub);
            subs.push((t, addr));
        }
    }
    subs
}

async fn run_crate(plan: &Plan, handles: &[ArbiterHandle], done: &Arc<Done>) -> f64 {
    let broker = TopicBroker::new(BrokerConfig::default()).start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let subs = start_subs(plan, handles, done, false);
    for (t, addr) in &subs {
        let topic = plan.topics[*t].0.clone();
        broker.do_send(Subscribe::new(topic, addr.clone().recipient()));
    }
    let subscribed = broker.send(TopicCount).await.expect("the broker runs");
    assert_eq!(subscribed, plan.topics.len());

    let secs = plan
        .publish(done, |mutation| notifier.do_send(rebuilt(mutation)))
        .await;
    let stats = broker.send(GetStats).await.expect("the broker runs");
    assert_eq!(stats.offered, stats.deliveries, "every offer was delivered");
    drop(subs);
    secs
}

async fn run_raw(plan: &Plan, handles: &[ArbiterHandle], done: &Arc<Done>) -> f64 {
    let subs = start_subs(plan, handles, done, false);
    let mut lists: HashMap<Topic, Vec<Recipient<RawEvent>>> = HashMap::new();
    for (t, addr) in subs {
        let topic = plan.topics[t].0.clone();
        lists.entry(topic).or_default().push(addr.recipient());
    }

    if plan.routed {
        plan.publish(done, |mutation| {
            let event = Arc::new(mutation.event().clone());
            for topic in mutation.topics().expect("bench mutations route") {
                if let Some(list) = lists.get(&topic) {
                    for recipient in list {
                        recipient.do_send(RawEvent(Arc::clone(&event)));
                    }
                }
            }
        })
        .await
    } else {
        let list = &lists[&plan.topics[0].0];
        plan.publish(done, |mutation| {
            let event = Arc::new(mutation.event().clone());
            for recipient in list {
                recipient.do_send(RawEvent(Arc::clone(&event)));
            }
        })
        .await
    }
}

async fn run_actix_broker(plan: &Plan, handles: &[ArbiterHandle], done: &Arc<Done>) -> f64 {
    assert!(
        !plan.routed,
        "actix-broker routes by message type, not by topic"
    );
    let subs = start_subs(plan, handles, done, true);
    // Each subscriber subscribes when it starts; once it has answered a
    // ping its subscription is queued at the broker ahead of any publish.
    let pings: Vec<_> = subs.iter().map(|(_, addr)| addr.send(Ping)).collect();
    for ping in pings {
        ping.await.expect("the subscriber runs");
    }

    let issuer = Issuer;
    let secs = plan
        .publish(done, |mutation| {
            let event = Arc::new(mutation.event().clone());
            issuer.issue_async::<SystemBroker, _>(BrokerEvent(event));
        })
        .await;
    // Stop the subscribers here: the broker holds them strongly.
    drop(subs);
    secs
}

async fn run_tokio(plan: &Plan, handles: &[ArbiterHandle], done: &Arc<Done>) -> f64 {
    let capacity = plan.capacity.next_power_of_two();
    let mut senders: HashMap<Topic, broadcast::Sender<Arc<ProjectsEvent>>> = HashMap::new();
    let mut spawned = 0;
    for (t, (topic, n)) in plan.topics.iter().enumerate() {
        let sender = senders
            .entry(topic.clone())
            .or_insert_with(|| broadcast::channel(capacity).0);
        for _ in 0..*n {
            let mut receiver = sender.subscribe();
            let mut tracker = Tracker::new(done, &plan.report_at[t]);
            place(handles, spawned).spawn(async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) => {
                            black_box(&event.name);
                            tracker.hit();
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            panic!("a receiver lagged by {n}: the window is too large")
                        }
                    }
                }
            });
            spawned += 1;
        }
    }

    if plan.routed {
        plan.publish(done, |mutation| {
            let event = Arc::new(mutation.event().clone());
            for topic in mutation.topics().expect("bench mutations route") {
                if let Some(sender) = senders.get(&topic) {
                    let _ = sender.send(Arc::clone(&event));
                }
            }
        })
        .await
    } else {
        let sender = &senders[&plan.topics[0].0];
        plan.publish(done, |mutation| {
            let _ = sender.send(Arc::new(mutation.event().clone()));
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput scenarios
// ---------------------------------------------------------------------------------------------

struct Scenario {
    name: String,
    n: usize,
    arbiters: usize,
    plan: Plan,
    mechs: Vec<Mech>,
    samples: HashMap<Mech, Vec<f64>>,
}

impl Scenario {
    fn median(&self, mech: Mech) -> Option<f64> {
        let mut samples = self.samples.get(&mech)?.clone();
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        Some(samples[samples.len() / 2])
    }

    fn range(&self, mech: Mech) -> Option<(f64, f64)> {
        let samples = self.samples.get(&mech)?;
        let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = samples.iter().copied().fold(0.0, f64::max);
        Some((min, max))
    }

    fn ratio(&self, mech: Mech, base: Mech) -> Option<f64> {
        Some(self.median(mech)? / self.median(base)?)
    }
}

fn scenarios(opts: &Opts, recorded: &Result<Vec<Mutation>, String>) -> Vec<Scenario> {
    let deliveries = opts.run_deliveries();
    let mut list = Vec::new();
    let mut add = |name: String, n: usize, arbiters: usize, plan: Plan, mechs: &[Mech]| {
        let mechs: Vec<Mech> = mechs
            .iter()
            .copied()
            .filter(|mech| opts.mechs.contains(mech))
            .collect();
        list.push(Scenario {
            name,
            n,
            arbiters,
            plan,
            mechs,
            samples: HashMap::new(),
        });
    };

    let spread = format!("{} arbiters", opts.arbiters);
    for (arbiters, place) in [(0, "1 arbiter"), (opts.arbiters, spread.as_str())] {
        if opts.wants(&format!("fanout {place}")) {
            for &n in &opts.sizes {
                let name = format!("fan-out, {place}");
                add(name, n, arbiters, Plan::fanout(n, deliveries), &Mech::ALL);
            }
        }
    }
    match recorded {
        Ok(recorded) => {
            for (arbiters, place) in [(0, "1 arbiter"), (opts.arbiters, spread.as_str())] {
                if opts.wants(&format!("mix {place}")) {
                    let plan = Plan::mix(recorded, deliveries);
                    let n = plan.subscribers();
                    let mechs = [Mech::Crate, Mech::Raw, Mech::Tokio];
                    add(format!("projects mix, {place}"), n, arbiters, plan, &mechs);
                }
            }
        }
        Err(err) => eprintln!("skipping the projects mix: {err}"),
    }
    // How the window size moves the crate against raw actix: the broker
    // keeps the recipients it resolved for its hold (10 ms), which spans
    // several windows here, then resolves them again.
    if opts.wants("windows") {
        for per_window in [2, 8, 32, 128] {
            let name = format!("fan-out, {per_window} events/window");
            let plan = Plan::fanout_windows(1000, per_window, deliveries);
            add(name, 1000, 0, plan, &[Mech::Crate, Mech::Raw]);
        }
    }
    list
}

fn run_throughput(opts: &Opts, list: &mut [Scenario]) {
    for rep in 0..opts.reps {
        for scenario in list.iter_mut() {
            let mut mechs = scenario.mechs.clone();
            if !mechs.is_empty() {
                let turn = rep % mechs.len();
                mechs.rotate_left(turn);
            }
            for mech in mechs {
                let rate = run(&scenario.plan, mech, scenario.arbiters);
                scenario.samples.entry(mech).or_default().push(rate);
            }
            eprintln!(
                "rep {}/{}: {} N={} done",
                rep + 1,
                opts.reps,
                scenario.name,
                scenario.n
            );
        }
    }
}

/// Allocation calls and net bytes per delivery of one timed fan-out run
/// on one arbiter, per mechanism. The counted part is the timed windows,
/// including the clone of the event every mechanism makes per publish.
fn allocations(n: usize, deliveries: u64) -> Vec<(Mech, f64, f64)> {
    let plan = Plan::fanout(n, deliveries);
    Mech::ALL
        .iter()
        .map(|&mech| {
            COUNT_TIMED.store(true, Ordering::SeqCst);
            run(&plan, mech, 0);
            COUNT_TIMED.store(false, Ordering::SeqCst);
            let window = TIMED_WINDOW.lock().expect("not poisoned").take();
            let window = window.unwrap_or(AllocWindow { bytes: 0, calls: 0 });
            let per = plan.timed_deliveries as f64;
            (mech, window.calls as f64 / per, window.bytes as f64 / per)
        })
        .collect()
}

/// Whether [`Plan::publish`] counts allocations over its timed windows.
static COUNT_TIMED: AtomicBool = AtomicBool::new(false);

/// What [`Plan::publish`] counted.
static TIMED_WINDOW: Mutex<Option<AllocWindow>> = Mutex::new(None);

// ---------------------------------------------------------------------------------------------
// Subscribe cost
// ---------------------------------------------------------------------------------------------

const SUBSCRIPTIONS: usize = 100_000;
const SUBSCRIBE_TOPICS: usize = 10_000;
const SUBSCRIBE_ACTORS: usize = 10_000;
const SUBSCRIBE_BATCH: usize = 1_000;

struct SubscribeCost {
    nanos: f64,
    cpu_nanos: f64,
    alloc_bytes: f64,
    alloc_calls: f64,
    rss_bytes: f64,
}

/// 100,000 subscriptions over 10,000 topics, from 10,000 actors with 10
/// subscriptions each: time per subscription (median of `reps` runs) and
/// retained bytes per subscription (one more run, counted).
fn subscribe_cost(reps: usize) -> SubscribeCost {
    let once = |count: bool| {
        let system = System::new();
        let cost = system.block_on(subscribe_once(count));
        drop(system);
        cost
    };
    // The counted run goes first, while resident memory has not yet grown
    // for this scenario, so its resident figure means something.
    let counted = once(true);
    let mut timed: Vec<SubscribeCost> = (0..reps).map(|_| once(false)).collect();
    timed.sort_by(|a, b| a.cpu_nanos.total_cmp(&b.cpu_nanos));
    let cpu_nanos = timed[timed.len() / 2].cpu_nanos;
    timed.sort_by(|a, b| a.nanos.total_cmp(&b.nanos));
    SubscribeCost {
        nanos: timed[timed.len() / 2].nanos,
        cpu_nanos,
        ..counted
    }
}

async fn subscribe_once(count: bool) -> SubscribeCost {
    let broker = TopicBroker::default().start();
    let actors: Vec<Addr<Idle>> = (0..SUBSCRIBE_ACTORS).map(|_| Idle.start()).collect();
    let topics: Vec<Topic> = (0..SUBSCRIBE_TOPICS)
        .map(|i| Topic::project(project_id(i)))
        .collect();
    // Lets the actors start.
    broker.send(TopicCount).await.expect("the broker runs");

    // Each subscription is built and sent as an application would: a clone
    // of the actor's address as a recipient, in a `Subscribe` sent with
    // `do_send`; every thousandth is awaited, as subscribes come in bursts.
    // With `count`, the allocator counts from before the first message
    // exists until the last is consumed, so what remains is what the broker
    // keeps; the timing runs without counting, which costs time itself.
    let per_topic = SUBSCRIPTIONS / SUBSCRIBE_TOPICS;
    let subscribe = |s: usize| {
        let recipient = actors[s % SUBSCRIBE_ACTORS].clone().recipient();
        Subscribe::new(topics[s / per_topic].clone(), recipient)
    };
    let rss = resident_bytes();
    let counted = count.then(AllocWindow::start);
    let started = Instant::now();
    let cpu = thread_cpu_nanos();
    for first in (0..SUBSCRIPTIONS).step_by(SUBSCRIBE_BATCH) {
        let last = (first + SUBSCRIBE_BATCH).min(SUBSCRIPTIONS) - 1;
        for s in first..last {
            broker.do_send(subscribe(s));
        }
        broker
            .send(subscribe(last))
            .await
            .expect("the broker runs")
            .expect("the subscriber runs");
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_nanos() - cpu;
    let counted = counted.map(AllocWindow::stop);
    let rss = resident_bytes().saturating_sub(rss);

    let stats = broker.send(GetStats).await.expect("the broker runs");
    assert_eq!(stats.topics, SUBSCRIBE_TOPICS as u64);
    assert_eq!(stats.subscriptions, SUBSCRIPTIONS as u64);
    let per = SUBSCRIPTIONS as f64;
    SubscribeCost {
        nanos: secs * 1e9 / per,
        cpu_nanos: cpu as f64 / per,
        alloc_bytes: counted.as_ref().map_or(0.0, |c| c.bytes as f64 / per),
        alloc_calls: counted.as_ref().map_or(0.0, |c| c.calls as f64 / per),
        rss_bytes: rss as f64 / per,
    }
}

/// Takes `Subscribe` messages and drops them: what actix alone costs.
struct Sink;

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<Subscribe> for Sink {
    type Result = Result<projects_pubsub::SubscriptionId, projects_pubsub::SubscribeError>;

    fn handle(&mut self, subscribe: Subscribe, _: &mut Context<Self>) -> Self::Result {
        drop(black_box(subscribe));
        Err(projects_pubsub::SubscribeError::SubscriberGone)
    }
}

/// CPU nanoseconds per subscription of the same loop as [`subscribe_once`]
/// sent to a [`Sink`]: the recipient clone, the message and its delivery,
/// without the broker's work. Median of `reps`.
fn subscribe_floor(reps: usize) -> f64 {
    let mut runs: Vec<f64> = (0..reps)
        .map(|_| {
            let system = System::new();
            let nanos = system.block_on(async {
                let sink = Sink.start();
                let actors: Vec<Addr<Idle>> = (0..SUBSCRIBE_ACTORS).map(|_| Idle.start()).collect();
                let topics: Vec<Topic> = (0..SUBSCRIBE_TOPICS)
                    .map(|i| Topic::project(project_id(i)))
                    .collect();
                let per_topic = SUBSCRIPTIONS / SUBSCRIBE_TOPICS;
                let subscribe = |s: usize| {
                    let recipient = actors[s % SUBSCRIBE_ACTORS].clone().recipient();
                    Subscribe::new(topics[s / per_topic].clone(), recipient)
                };
                let _ = sink.send(subscribe(0)).await;
                let cpu = thread_cpu_nanos();
                for first in (0..SUBSCRIPTIONS).step_by(SUBSCRIBE_BATCH) {
                    let last = (first + SUBSCRIBE_BATCH).min(SUBSCRIPTIONS) - 1;
                    for s in first..last {
                        sink.do_send(subscribe(s));
                    }
                    let _ = sink.send(subscribe(last)).await;
                }
                (thread_cpu_nanos() - cpu) as f64 / SUBSCRIPTIONS as f64
            });
            drop(system);
            nanos
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// Churn
// ---------------------------------------------------------------------------------------------

struct Churn {
    cycles: usize,
    secs: f64,
    rss_cold: u64,
    rss_start: u64,
    rss_peak: u64,
    rss_end: u64,
    net_bytes: i64,
    topics: usize,
    subscriptions: u64,
    pruned: u64,
}

/// Cycles before the measured ones, so the figures start from the
/// working set of the churn itself (a thousand actors, hash tables sized
/// for them) rather than from an empty process.
const CHURN_WARM_UP: usize = 10_000;

/// Subscribers that subscribe and stop, `cycles` times: each actor
/// subscribes to one of 1,000 project topics with `do_send`, giving away
/// its only address, so it stops as soon as the broker holds it weakly.
/// Every thousand cycles a topic count makes the broker sweep.
fn churn(cycles: usize) -> Churn {
    let system = System::new();
    let result = system.block_on(async {
        let broker = TopicBroker::default().start();
        let topics: Vec<Topic> = (0..1000).map(|i| Topic::project(project_id(i))).collect();
        let batch = 1000;
        broker.send(TopicCount).await.expect("the broker runs");
        let rss_cold = resident_bytes();

        let mut cycle = 0;
        let mut run = |count: usize| {
            let broker = broker.clone();
            let topics = &topics;
            let first = cycle;
            cycle += count;
            async move {
                let mut rss_peak = 0;
                for b in 0..count / batch {
                    for i in 0..batch {
                        let topic = topics[(first + b * batch + i) % topics.len()].clone();
                        broker.do_send(Subscribe::new(topic, Idle.start().recipient()));
                    }
                    // A topic count sweeps: it prunes the previous batch,
                    // stopped by now.
                    broker.send(TopicCount).await.expect("the broker runs");
                    if b % 50 == 0 {
                        rss_peak = resident_bytes().max(rss_peak);
                    }
                }
                let mut topic_count = usize::MAX;
                for _ in 0..1000 {
                    topic_count = broker.send(TopicCount).await.expect("the broker runs");
                    if topic_count == 0 {
                        break;
                    }
                    actix_rt::time::sleep(Duration::from_millis(1)).await;
                }
                (topic_count, rss_peak)
            }
        };

        run(CHURN_WARM_UP).await;
        let rss_start = resident_bytes();
        let counted = AllocWindow::start();
        let started = Instant::now();
        let (topic_count, rss_peak) = run(cycles).await;
        let secs = started.elapsed().as_secs_f64();
        let stats = broker.send(GetStats).await.expect("the broker runs");
        let counted = counted.stop();
        Churn {
            cycles,
            secs,
            rss_cold,
            rss_start,
            rss_peak,
            rss_end: resident_bytes(),
            net_bytes: counted.bytes,
            topics: topic_count,
            subscriptions: stats.subscriptions,
            pruned: stats.subscriptions_pruned,
        }
    });
    drop(system);
    result
}

// ---------------------------------------------------------------------------------------------
// Latency
// ---------------------------------------------------------------------------------------------

struct Latency {
    mutations: usize,
    rate: f64,
    samples: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

/// Records, for each delivery, the time since the notifier was called.
struct Stopwatch {
    /// Per topic: the index of the mutation behind each sequence number.
    mutation_of_seq: Arc<[u32]>,
    sent: Arc<[AtomicU64]>,
    base: Instant,
    warm_up: usize,
    samples: Vec<u32>,
    received: Arc<AtomicU64>,
}

impl Stopwatch {
    fn record(&mut self, mutation: usize) {
        let now = self.base.elapsed().as_nanos() as u64;
        if mutation >= self.warm_up {
            let sent = self.sent[mutation].load(Ordering::Acquire);
            let nanos = now.saturating_sub(sent).min(u64::from(u32::MAX));
            self.samples.push(nanos as u32);
        }
        self.received.fetch_add(1, Ordering::Release);
    }
}

impl Actor for Stopwatch {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Stopwatch {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        let mutation = self.mutation_of_seq[(delivery.seq() - 1) as usize] as usize;
        self.record(mutation);
    }
}

/// An event as the hand-written router of the raw baseline sends it,
/// numbered so the subscriber knows which mutation it came from.
struct Stamped {
    mutation: u32,
    event: Arc<ProjectsEvent>,
}

impl Message for Stamped {
    type Result = ();
}

impl Handler<Stamped> for Stopwatch {
    type Result = ();

    fn handle(&mut self, stamped: Stamped, _: &mut Context<Self>) {
        black_box(&stamped.event.name);
        self.record(stamped.mutation as usize);
    }
}

struct Flush;

impl Message for Flush {
    type Result = Vec<u32>;
}

impl Handler<Flush> for Stopwatch {
    type Result = MessageResult<Flush>;

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        MessageResult(std::mem::take(&mut self.samples))
    }
}

/// What an actix user might write instead of the notifier and the broker:
/// one actor that routes each mutation with the crate's routing function
/// and sends the event to a list of recipients per topic.
struct Router {
    lists: HashMap<Topic, Vec<Recipient<Stamped>>>,
    next: u32,
}

impl Actor for Router {
    type Context = Context<Self>;
}

/// A mutation for the [`Router`].
struct Route(Mutation);

impl Message for Route {
    type Result = ();
}

impl Handler<Route> for Router {
    type Result = ();

    fn handle(&mut self, Route(mutation): Route, _: &mut Context<Self>) {
        // The one copy of the event this path makes, as the crate's path
        // makes one when the publisher rebuilds the mutation.
        let event = Arc::new(mutation.event().clone());
        let number = self.next;
        self.next += 1;
        for topic in mutation.topics().expect("bench mutations route") {
            for recipient in self.lists.get(&topic).into_iter().flatten() {
                recipient.do_send(Stamped {
                    mutation: number,
                    event: Arc::clone(&event),
                });
            }
        }
    }
}

/// Mutations per second of the latency scenario; `LATENCY_RATE` in the
/// environment overrides it, to explore.
fn latency_rate() -> f64 {
    std::env::var("LATENCY_RATE")
        .ok()
        .and_then(|rate| rate.parse().ok())
        .unwrap_or(10_000.0)
}

const LATENCY_SUBSCRIBERS: usize = 100;

/// A steady 10,000 mutations per second of the projects mix over 10
/// projects, with 100 subscribers on each of `projects:all`,
/// `projects:tasks`, `projects:templates` and the 10 project topics, through
/// the crate (`mech` is [`Mech::Crate`]) or a hand-written router.
///
/// A publisher thread, standing for request handlers, paces the mutations
/// and stamps each just before it calls the notifier (or the router). With
/// `spread`, notifier and broker (or the router) run on an arbiter of their
/// own, as the default instances do, and the subscribers on the main
/// arbiter; without, everything but the publisher shares the main arbiter.
fn latency(recorded: &[Mutation], secs: f64, spread: bool, mech: Mech) -> Latency {
    let count = (latency_rate() * secs) as usize;
    let mutations = Arc::new(mix_stream(recorded, count, 10));
    let mut topics = vec![Topic::all(), Topic::tasks(), Topic::templates()];
    topics.extend((0..10).map(|p| Topic::project(project_id(p))));
    let mut seqs: Vec<Vec<u32>> = vec![Vec::new(); topics.len()];
    for (at, mutation) in mutations.iter().enumerate() {
        for topic in mutation.topics().expect("bench mutations route") {
            if let Some(t) = topics.iter().position(|known| *known == topic) {
                seqs[t].push(at as u32);
            }
        }
    }
    let expected: u64 = seqs
        .iter()
        .map(|s| (s.len() * LATENCY_SUBSCRIBERS) as u64)
        .sum();

    let system = System::new();
    let result = system.block_on(async move {
        let service = spread.then(Arbiter::new);
        let home = service
            .as_ref()
            .map_or_else(Arbiter::current, Arbiter::handle);

        let base = Instant::now();
        let sent: Arc<[AtomicU64]> = (0..count).map(|_| AtomicU64::new(0)).collect();
        let received = Arc::new(AtomicU64::new(0));
        let mut watches: Vec<(usize, Addr<Stopwatch>)> = Vec::new();
        for (t, seqs) in seqs.into_iter().enumerate() {
            let mutation_of_seq: Arc<[u32]> = seqs.into();
            for _ in 0..LATENCY_SUBSCRIBERS {
                let watch = Stopwatch {
                    mutation_of_seq: Arc::clone(&mutation_of_seq),
                    sent: Arc::clone(&sent),
                    base,
                    warm_up: count / 10,
                    samples: Vec::new(),
                    received: Arc::clone(&received),
                };
                watches.push((t, watch.start()));
            }
        }

        let publish: Box<dyn FnMut(&Mutation) + Send> = if mech == Mech::Crate {
            let broker = TopicBroker::start_in_arbiter(&home, |_| TopicBroker::default());
            for (t, watch) in &watches {
                let recipient = watch.clone().recipient();
                broker.do_send(Subscribe::new(topics[*t].clone(), recipient));
            }
            broker.send(TopicCount).await.expect("the broker runs");
            let notifier =
                ProjectsNotifier::start_in_arbiter(&home, move |_| ProjectsNotifier::new(broker));
            Box::new(move |mutation| notifier.do_send(rebuilt(mutation)))
        } else {
            let mut lists: HashMap<Topic, Vec<Recipient<Stamped>>> = HashMap::new();
            for (t, watch) in &watches {
                let list = lists.entry(topics[*t].clone()).or_default();
                list.push(watch.clone().recipient());
            }
            let router = Router::start_in_arbiter(&home, move |_| Router { lists, next: 0 });
            Box::new(move |mutation| router.do_send(Route(mutation.clone())))
        };

        let publisher = {
            let sent = Arc::clone(&sent);
            let mutations = Arc::clone(&mutations);
            std::thread::spawn(move || pace(&mutations, publish, &sent, base))
        };
        let deadline = Instant::now() + Duration::from_secs_f64(secs * 4.0 + 30.0);
        while received.load(Ordering::Acquire) < expected || !publisher.is_finished() {
            assert!(Instant::now() < deadline, "latency run did not finish");
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        let publish_secs = publisher.join().expect("the publisher finished");

        let mut samples = Vec::new();
        for (_, watch) in &watches {
            samples.extend(watch.send(Flush).await.expect("the subscriber runs"));
        }
        drop(watches);
        if let Some(service) = service {
            service.stop();
            let _ = service.join();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        Latency {
            mutations: count,
            rate: count as f64 / publish_secs,
            samples: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    });
    drop(system);
    result
}

/// Hands each mutation to `publish` at a steady rate; returns the seconds
/// it took. Sleeps while the next mutation is far, then yields.
fn pace(
    mutations: &[Mutation],
    mut publish: impl FnMut(&Mutation),
    sent: &[AtomicU64],
    base: Instant,
) -> f64 {
    let period = Duration::from_secs_f64(1.0 / latency_rate());
    let start = Instant::now();
    for (at, mutation) in mutations.iter().enumerate() {
        let due = start + period * at as u32;
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            let left = due - now;
            if left > Duration::from_micros(200) {
                std::thread::sleep(left - Duration::from_micros(150));
            } else {
                std::thread::yield_now();
            }
        }
        sent[at].store(base.elapsed().as_nanos() as u64, Ordering::Release);
        publish(mutation);
    }
    start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".into(), |r| format!("{r:.2}"))
}

/// The throughput table in Markdown, under 100 columns: rates in millions
/// of deliveries per second.
fn table(list: &[Scenario]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {:<26} | {:>5} | {:<15} | {:>6} | {:>12} | {:>5} | {:>7} |",
        "scenario", "N", "mechanism", "M/s", "min..max", "/raw", "/broker"
    );
    let _ = writeln!(
        out,
        "|{}|{}:|{}|{}:|{}:|{}:|{}:|",
        "-".repeat(28),
        "-".repeat(6),
        "-".repeat(17),
        "-".repeat(7),
        "-".repeat(13),
        "-".repeat(6),
        "-".repeat(8)
    );
    for scenario in list {
        for &mech in &scenario.mechs {
            let (Some(median), Some((min, max))) = (scenario.median(mech), scenario.range(mech))
            else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {:<26} | {:>5} | {:<15} | {:>6.2} | {:>12} | {:>5} | {:>7} |",
                scenario.name,
                scenario.n,
                mech.label(),
                median / 1e6,
                format!("{:.2}..{:.2}", min / 1e6, max / 1e6),
                ratio_text(scenario.ratio(mech, Mech::Raw)),
                ratio_text(scenario.ratio(mech, Mech::ActixBroker)),
            );
        }
    }
    out
}

struct Target {
    met: bool,
    text: String,
}

fn target(met: bool, text: String) -> Target {
    Target { met, text }
}

fn ratio_targets(list: &[Scenario]) -> Vec<Target> {
    let mut targets = Vec::new();
    let one = |n: usize| {
        list.iter()
            .find(|s| s.name == "fan-out, 1 arbiter" && s.n == n)
    };
    for (n, want) in [(1, 0.6), (10, 0.9), (100, 0.95), (1000, 0.95)] {
        if let Some(ratio) = one(n).and_then(|s| s.ratio(Mech::Crate, Mech::Raw)) {
            let text = format!("full path vs raw actix, N={n}: {ratio:.2} (target >= {want})");
            targets.push(target(ratio >= want, text));
        }
    }
    for (n, want) in [(1, 2.0), (100, 1.2)] {
        if let Some(ratio) = one(n).and_then(|s| s.ratio(Mech::Crate, Mech::ActixBroker)) {
            let text = format!("full path vs actix-broker, N={n}: {ratio:.2} (target >= {want})");
            targets.push(target(ratio >= want, text));
        }
    }
    targets
}

fn print_targets(targets: &[Target]) {
    println!();
    println!("Targets:");
    for t in targets {
        println!("{:<8} {}", if t.met { "MET" } else { "NOT MET" }, t.text);
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cpus} CPUs, Linux {}", kernel.trim())
}

fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Plot
// ---------------------------------------------------------------------------------------------

fn plot(path: &std::path::Path, list: &[Scenario]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let fanouts: Vec<&Scenario> = list
        .iter()
        .filter(|s| s.name.starts_with("fan-out") && s.name.contains("arbiter"))
        .collect();
    let rates: Vec<f64> = fanouts
        .iter()
        .flat_map(|s| Mech::ALL.iter().filter_map(|&m| s.median(m)))
        .collect();
    if rates.is_empty() {
        return Ok(());
    }
    // Room below the lowest line for the legend.
    let low = rates.iter().copied().fold(f64::INFINITY, f64::min) / 6.0;
    let high = rates.iter().copied().fold(0.0, f64::max) * 1.5;

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Fan-out on one topic: deliveries per second (median of 5)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d((0.8f64..1250f64).log_scale(), (low..high).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("subscribers on the topic (N)")
        .y_desc("deliveries per second")
        .x_label_formatter(&|n| format!("{n:.0}"))
        .y_label_formatter(&|r| format!("{:.1} M", r / 1e6))
        .draw()?;

    let colors = [
        RGBColor(200, 30, 30),
        RGBColor(30, 30, 30),
        RGBColor(30, 110, 200),
        RGBColor(40, 160, 60),
    ];
    let groups: Vec<String> = {
        let mut names: Vec<String> = fanouts.iter().map(|s| s.name.clone()).collect();
        names.dedup();
        names
    };
    for (g, group) in groups.iter().enumerate() {
        for (mech, color) in Mech::ALL.iter().zip(colors) {
            let points: Vec<(f64, f64)> = fanouts
                .iter()
                .filter(|s| &s.name == group)
                .filter_map(|s| Some((s.n as f64, s.median(*mech)?)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let place = group.trim_start_matches("fan-out, ");
            let label = format!("{}, {place}", mech.label());
            let style = color.stroke_width(2);
            if g == 0 {
                chart
                    .draw_series(LineSeries::new(points.clone(), style))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            } else {
                chart
                    .draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], style));
            }
            chart.draw_series(
                points
                    .iter()
                    .map(|&point| Circle::new(point, 3, color.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

fn main() {
    let opts = Opts::parse();
    let began = Instant::now();
    let recorded = recorded_workload();
    println!("projects-pubsub throughput benchmark");
    println!("machine: {}", machine());
    println!("command: {}", opts.command());
    println!("load average at start: {}", load_average());
    match &recorded {
        Ok(recorded) => {
            let kinds: Vec<String> = proportions(recorded)
                .into_iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            println!(
                "projects mix: the {} mutations of examples/data/workspace.jsonl: {}",
                recorded.len(),
                kinds.join(", ")
            );
        }
        Err(err) => println!("projects mix: not available ({err})"),
    }
    let mut targets = Vec::new();

    if opts.wants("churn") {
        let cycles = 1_000_000;
        let c = churn(cycles);
        let change = (c.rss_end as f64 - c.rss_start as f64) / c.rss_start as f64;
        println!();
        println!(
            "churn: {} subscribe-and-stop cycles after {CHURN_WARM_UP} to warm up, in {:.2} s \
             ({:.2} µs each); resident {:.1} MiB in the cold process, {:.1} MiB after the \
             warm-up, {:.1} MiB peak, {:.1} MiB at end ({:+.1}% from after the warm-up); \
             allocator net {:+} bytes over the measured cycles; {} topics, {} subscriptions \
             left, {} pruned",
            c.cycles,
            c.secs,
            c.secs * 1e6 / c.cycles as f64,
            c.rss_cold as f64 / 1048576.0,
            c.rss_start as f64 / 1048576.0,
            c.rss_peak as f64 / 1048576.0,
            c.rss_end as f64 / 1048576.0,
            change * 100.0,
            c.net_bytes,
            c.topics,
            c.subscriptions,
            c.pruned,
        );
        let text = format!(
            "churn: resident {:+.1}% after {} cycles (target within 10%), {} topics left \
             (target 0)",
            change * 100.0,
            c.cycles,
            c.topics
        );
        targets.push(target(change.abs() <= 0.10 && c.topics == 0, text));
    }

    if opts.wants("subscribe") {
        let cost = subscribe_cost(opts.reps);
        let floor = subscribe_floor(opts.reps);
        println!();
        println!(
            "subscribe: {SUBSCRIPTIONS} subscriptions over {SUBSCRIBE_TOPICS} topics \
             ({SUBSCRIBE_ACTORS} actors): {:.0} ns of CPU time per subscription ({:.0} ns \
             wall time); {:.0} bytes per subscription kept (counting allocator, requested \
             sizes; {:.1} allocations made per subscription), {:.0} bytes by resident memory \
             (statm, message garbage included); median of {}",
            cost.cpu_nanos,
            cost.nanos,
            cost.alloc_bytes,
            cost.alloc_calls,
            cost.rss_bytes,
            opts.reps
        );
        println!(
            "  of which actix alone (the recipient clone, the message, an actor that drops \
             it): {floor:.0} ns of CPU time"
        );
        let text = format!(
            "subscribe: {:.0} ns CPU ({:.0} wall), {:.0} bytes each (targets < 600 ns, \
             < 200 bytes)",
            cost.cpu_nanos, cost.nanos, cost.alloc_bytes
        );
        targets.push(target(
            cost.cpu_nanos < 600.0 && cost.alloc_bytes < 200.0,
            text,
        ));
    }

    if opts.wants("allocs") {
        println!();
        println!("allocations per delivery, fan-out on one arbiter (timed windows, counted):");
        for n in [1, 100] {
            for (mech, calls, bytes) in allocations(n, opts.run_deliveries() / 4) {
                println!(
                    "  N={n:<4} {:<16} {calls:>6.2} allocations, {bytes:>7.1} net bytes",
                    mech.label()
                );
            }
        }
    }

    let mut list = scenarios(&opts, &recorded);
    if !list.is_empty() {
        eprintln!("throughput: {} scenarios", list.len());
        run_throughput(&opts, &mut list);
        println!();
        println!(
            "Throughput: millions of deliveries per second (M/s), end to end, median of {} \
             (windows of {} deliveries at most, {} events per window at most); /raw and \
             /broker: ratio to raw actix and to actix-broker in the same scenario",
            opts.reps, WINDOW_DELIVERIES, MAX_WINDOW_EVENTS
        );
        for scenario in &list {
            eprintln!(
                "  {} N={}: {} events per window, {} windows, {} timed deliveries",
                scenario.name,
                scenario.n,
                scenario.plan.window_events(),
                scenario.plan.windows.len(),
                scenario.plan.timed_deliveries
            );
        }
        println!("{}", table(&list));
        targets.extend(ratio_targets(&list));
        if let Some(path) = &opts.plot {
            match plot(path, &list) {
                Ok(()) => println!("plot written to {}", path.display()),
                Err(err) => eprintln!("plot failed: {err}"),
            }
        }
    }

    if opts.wants("latency one arbiter") || opts.wants("latency spread") {
        if let Ok(recorded) = &recorded {
            let secs = if opts.quick { 1.5 } else { 4.0 };
            println!();
            for spread in [false, true] {
                let part = if spread {
                    "latency spread"
                } else {
                    "latency one arbiter"
                };
                for mech in [Mech::Crate, Mech::Raw] {
                    if !opts.wants(part) || !opts.mechs.contains(&mech) {
                        continue;
                    }
                    let l = latency(recorded, secs, spread, mech);
                    let layout = match (spread, mech) {
                        (false, Mech::Crate) => "broker, notifier and subscribers on one arbiter",
                        (true, Mech::Crate) => "broker and notifier on their own arbiter",
                        (false, _) => "raw actix router and subscribers on one arbiter",
                        (true, _) => "raw actix router on its own arbiter",
                    };
                    println!(
                        "latency, {layout}: {} mutations at {:.0}/s, {} subscribers per topic, \
                         {} deliveries measured (first 10% skipped): p50 {:.1} µs, p99 {:.1} \
                         µs, max {:.1} µs",
                        l.mutations, l.rate, LATENCY_SUBSCRIBERS, l.samples, l.p50, l.p99, l.max
                    );
                    if !spread && mech == Mech::Crate {
                        let text = format!(
                            "latency, one arbiter: p50 {:.1} µs (target < 50), p99 {:.1} µs \
                             (target < 1000)",
                            l.p50, l.p99
                        );
                        targets.push(target(l.p50 < 50.0 && l.p99 < 1000.0, text));
                    }
                }
            }
        }
    }

    print_targets(&targets);
    println!();
    println!(
        "load average at end: {}; total {:.1} s",
        load_average(),
        began.elapsed().as_secs_f64()
    );
}
