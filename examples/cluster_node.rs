//! One node of a cluster: a broker, a notifier and a Redis bridge, with a
//! task-library view that prints every event it receives. It reads
//! commands on standard input, so that two nodes can run side by side.
//!
//! Run two nodes against one Redis, each in a terminal of its own:
//!
//! ```text
//! cargo run --example cluster_node --features redis -- --node a
//! cargo run --example cluster_node --features redis -- --node b
//! ```
//!
//! then type `publish 3` in the first one. Both print the three events: the
//! first because its own view listens, the second because they crossed
//! Redis. Neither prints an event twice.
//!
//! Options: `--redis <url>` (default `redis://127.0.0.1:6379/`),
//! `--node <id>` (default: a random id), `--prefix <channel prefix>`.
//! Commands: `publish [n]`, `stats`, `quit` (or the end of the input).
//!
//! Each line it prints starts with a word a script can match: `ready
//! <node>`, `got <topic> <event> <title>`, `published <n>`, `stats ...`,
//! `bye ...` and `error ...`. `RUST_LOG=debug` shows the bridge at work.

use std::error::Error;
use std::process::ExitCode;

use actix::prelude::*;
use projects_pubsub::cluster::{
    BridgeConfig, DEFAULT_CHANNEL_PREFIX, GetBridgeStats, NodeId, RedisBridge, StopBridge,
};
use projects_pubsub::{
    Delivery, EventName, Mutation, Payload, ProjectsNotifier, Subscribe, TaskPayload, Topic,
    TopicBroker,
};
use tokio::sync::mpsc;
use uuid::Uuid;

const USAGE: &str = "usage: cluster_node [--redis <url>] [--node <id>] [--prefix <prefix>]";

/// A view of the task library: prints what it receives.
struct Library;

impl Actor for Library {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Library {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        let title = match &delivery.event().payload {
            Payload::Task(task) => task.title.clone(),
            other => format!("{other:?}"),
        };
        println!("got {} {} {title}", delivery.topic(), delivery.event().name);
    }
}

struct Options {
    redis: String,
    node: NodeId,
    prefix: String,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            redis: "redis://127.0.0.1:6379/".to_owned(),
            node: NodeId::random(),
            prefix: DEFAULT_CHANNEL_PREFIX.to_owned(),
        };
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--redis" => options.redis = value,
                "--node" => options.node = NodeId::new(&value).map_err(|err| err.to_string())?,
                "--prefix" => options.prefix = value,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(options)
    }
}

/// The lines of standard input, read on a thread of their own.
fn input_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn run(options: Options) -> Result<(), Box<dyn Error>> {
    let broker = TopicBroker::from_registry();
    let notifier = ProjectsNotifier::from_registry();

    // The broker holds subscribers weakly: keep the view's address.
    let library = Library.start();
    let subscribe = Subscribe::new(Topic::tasks(), library.clone().recipient());
    broker.send(subscribe).await??;

    let config =
        BridgeConfig::new(&options.redis, options.node.clone()).channel_prefix(&options.prefix)?;
    let bridge = RedisBridge::connect(broker, config).await?;
    println!("ready {}", options.node);

    let mut lines = input_lines();
    let mut sent = 0;
    while let Some(line) = lines.recv().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("publish") => {
                let Ok(count) = words.next().unwrap_or("1").parse::<u32>() else {
                    println!("error publish takes a count: publish 3");
                    continue;
                };
                for _ in 0..count {
                    sent += 1;
                    let task = TaskPayload {
                        uuid: Uuid::new_v4(),
                        title: format!("{}-{sent}", options.node),
                    };
                    notifier
                        .send(Mutation::task(EventName::TaskCreated, task)?)
                        .await??;
                }
                println!("published {count}");
            }
            Some("stats") => {
                let stats = bridge.send(GetBridgeStats).await?;
                println!(
                    "stats published={} received={} echoes={} malformed={} gaps={} queued={} \
                     dropped={} connected={}",
                    stats.published,
                    stats.received,
                    stats.echoes,
                    stats.malformed,
                    stats.gaps,
                    stats.queued,
                    stats.dropped,
                    stats.connected
                );
            }
            Some("quit") => break,
            Some(other) => println!("error unknown command {other:?}: publish [n], stats, quit"),
            None => {}
        }
    }

    let stats = bridge.send(StopBridge).await?;
    println!(
        "bye published={} received={}",
        stats.published, stats.received
    );
    Ok(())
}

fn main() -> ExitCode {
    env_logger::init();
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(err) => {
            println!("error {err}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };

    match System::new().block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            println!("error {err}");
            ExitCode::FAILURE
        }
    }
}
