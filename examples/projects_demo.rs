//! Replays a recorded workspace through the default broker and notifier,
//! and shows what each live view received next to what the routing table
//! says it should have received.
//!
//! ```text
//! cargo run --example projects_demo [path/to/workload.jsonl]
//! RUST_LOG=debug cargo run --example projects_demo   # every delivery
//! ```
//!
//! The workload format is described in `docs/workload.md`.

use std::collections::HashMap;
use std::error::Error;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use actix::prelude::*;
use projects_pubsub::workload::{self, Workload};
use projects_pubsub::{
    Delivery, EventName, Mutation, Payload, ProjectsNotifier, Subscribe, Topic, TopicBroker,
    TopicKind,
};
use uuid::Uuid;

const DEFAULT_WORKLOAD: &str = "examples/data/workspace.jsonl";

/// Events received (or expected) per event name.
type Counts = HashMap<EventName, usize>;

/// A live view, as a page of the original application would be: it
/// subscribes to one topic and, here, only counts what arrives.
struct View {
    label: String,
    received: Counts,
}

impl Actor for View {
    type Context = Context<Self>;
}

impl Handler<Delivery> for View {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        log::debug!(
            "{}: {} #{} on {}",
            self.label,
            delivery.event().name,
            delivery.seq(),
            delivery.topic()
        );
        *self
            .received
            .entry(delivery.event().name.clone())
            .or_default() += 1;
    }
}

/// Asks a view for its counts. Its mailbox is first in, first out, so the
/// answer comes after every delivery queued before the question.
struct Report;

impl Message for Report {
    type Result = Counts;
}

impl Handler<Report> for View {
    type Result = MessageResult<Report>;

    fn handle(&mut self, _: Report, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.received.clone())
    }
}

#[actix::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    match replay().await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("projects_demo: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Replays the workload and prints the tables; the exit code says whether
/// every count matched.
async fn replay() -> Result<ExitCode, Box<dyn Error>> {
    let (path, shown) = match std::env::args_os().nth(1) {
        Some(arg) => (PathBuf::from(&arg), arg.to_string_lossy().into_owned()),
        None => (
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_WORKLOAD),
            DEFAULT_WORKLOAD.to_owned(),
        ),
    };
    let file = File::open(&path).map_err(|err| format!("cannot open {shown}: {err}"))?;
    let workload = workload::read(BufReader::new(file));
    for (line, err) in &workload.errors {
        eprintln!("line {line}: {err}");
    }

    let broker = TopicBroker::from_registry();
    let notifier = ProjectsNotifier::from_registry();

    let mut watched = vec![
        ("workspace overview".to_owned(), Topic::all()),
        ("template gallery".to_owned(), Topic::templates()),
        ("task library".to_owned(), Topic::tasks()),
    ];
    if let Some((uuid, name)) = busiest_project(&workload) {
        watched.push((format!("project page ({name})"), Topic::project(uuid)));
    }
    if let Some(topic) = busiest_embed_topic(&workload) {
        watched.push(("embed watcher".to_owned(), topic));
    }

    let mut views = Vec::new();
    for (label, topic) in &watched {
        let view = View {
            label: label.clone(),
            received: Counts::new(),
        }
        .start();
        // Awaited, so every mutation replayed below reaches the view.
        broker
            .send(Subscribe::new(topic.clone(), view.clone().recipient()))
            .await??;
        views.push(view);
    }

    let expected: Vec<Counts> = watched
        .iter()
        .map(|(_, topic)| expected_counts(&workload, topic))
        .collect();

    // As a request handler would: nothing to await per mutation. Awaiting
    // the last one tells us the broker has handed on every event, because
    // events from one notifier keep their order.
    let mut replayed = 0;
    let mut deliveries = 0;
    let mut mutations = workload.mutations.into_iter().peekable();
    while let Some((line, mutation)) = mutations.next() {
        replayed += 1;
        if mutations.peek().is_some() {
            notifier.do_send(mutation);
            continue;
        }
        deliveries = match notifier.send(mutation).await? {
            Ok(_) => broker.send(projects_pubsub::GetStats).await?.deliveries,
            Err(err) => return Err(format!("line {line}: not published: {err}").into()),
        };
    }

    println!(
        "replayed {replayed} mutations from {shown} ({} malformed lines skipped): \
         {deliveries} deliveries\n",
        workload.errors.len()
    );

    let mut mismatches = 0;
    let mut handled = 0;
    for ((label, topic), (view, expected)) in watched.iter().zip(views.iter().zip(&expected)) {
        let received = view.send(Report).await?;
        handled += received.values().sum::<usize>();
        println!("{label} on {topic}");
        mismatches += print_table(&received, expected);
        println!();
    }
    if handled != deliveries as usize {
        println!("the broker counted {deliveries} deliveries, the views handled {handled}");
        mismatches += 1;
    }

    if mismatches == 0 {
        println!("all counts match the routing table");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{mismatches} counts differ from the routing table");
        Ok(ExitCode::FAILURE)
    }
}

/// The catalog's routing table, written out again from the payloads so
/// that the demo checks the crate instead of asking it.
fn routing_table(mutation: &Mutation) -> Vec<Topic> {
    let project = |uuid, is_template| {
        let mut topics = vec![Topic::all(), Topic::project(uuid)];
        if is_template {
            topics.push(Topic::templates());
        }
        topics
    };
    match &mutation.event().payload {
        Payload::Project(p) => project(p.uuid, p.is_template),
        Payload::ProjectRef(p) => project(p.uuid, p.is_template == Some(true)),
        Payload::Task(_) => vec![Topic::all(), Topic::tasks()],
        Payload::Assignment(a) => vec![Topic::all(), Topic::project(a.project_uuid)],
        Payload::Dependency(d) => vec![Topic::all(), Topic::project(d.project_uuid)],
        // An embed event goes to the one topic its line named.
        Payload::Embed(_) => mutation.topics().map(|t| t.to_vec()).unwrap_or_default(),
    }
}

fn expected_counts(workload: &Workload, topic: &Topic) -> Counts {
    let mut counts = Counts::new();
    for (_, mutation) in &workload.mutations {
        if routing_table(mutation).contains(topic) {
            *counts.entry(mutation.event().name.clone()).or_default() += 1;
        }
    }
    counts
}

/// The project with the most mutations on its own topic, and its latest
/// name; ties go to the smaller uuid so the choice is stable.
fn busiest_project(workload: &Workload) -> Option<(Uuid, String)> {
    let mut counts: HashMap<Uuid, usize> = HashMap::new();
    let mut names: HashMap<Uuid, String> = HashMap::new();
    for (_, mutation) in &workload.mutations {
        for topic in routing_table(mutation) {
            if let TopicKind::Project(uuid) = topic.kind() {
                *counts.entry(*uuid).or_default() += 1;
            }
        }
        if let Payload::Project(project) = &mutation.event().payload {
            names.insert(project.uuid, project.name.clone());
        }
    }

    let (uuid, _) = counts
        .into_iter()
        .max_by(|(a, a_count), (b, b_count)| a_count.cmp(b_count).then(b.cmp(a)))?;
    let name = names.remove(&uuid).unwrap_or_else(|| uuid.to_string());
    Some((uuid, name))
}

/// The embed topic with the most events, ties going to the smaller topic.
fn busiest_embed_topic(workload: &Workload) -> Option<Topic> {
    let mut counts: HashMap<Topic, usize> = HashMap::new();
    for (_, mutation) in &workload.mutations {
        for topic in routing_table(mutation) {
            if topic.is_embed() {
                *counts.entry(topic).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .max_by(|(a, a_count), (b, b_count)| a_count.cmp(b_count).then(b.cmp(a)))
        .map(|(topic, _)| topic)
}

/// Prints one view's table, catalog names first; returns how many rows
/// differ.
fn print_table(received: &Counts, expected: &Counts) -> usize {
    let mut names: Vec<&EventName> = received.keys().chain(expected.keys()).collect();
    names.sort_by_key(|name| {
        let rank = EventName::CATALOG.iter().position(|known| known == *name);
        (rank.unwrap_or(usize::MAX), name.as_str())
    });
    names.dedup();

    println!("  {:<28}{:>10}{:>10}", "event", "received", "expected");
    let mut mismatches = 0;
    for name in names {
        let got = received.get(name).copied().unwrap_or(0);
        let want = expected.get(name).copied().unwrap_or(0);
        let flag = if got == want { "" } else { "  <- mismatch" };
        mismatches += usize::from(got != want);
        println!("  {:<28}{got:>10}{want:>10}{flag}", name.as_str());
    }
    let total = |counts: &Counts| counts.values().sum::<usize>();
    println!(
        "  {:<28}{:>10}{:>10}",
        "total",
        total(received),
        total(expected)
    );
    mismatches
}
