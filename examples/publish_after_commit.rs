//! Publishing after commit, with a real SQLite transaction.
//!
//! Plans a project (the project, three assignments and a dependency) in
//! one transaction and publishes its five events once the transaction has
//! committed. Then tries two operations that fail, one inside the work and
//! one at the commit itself, and shows that neither published anything.
//!
//! Run it with `cargo run --example publish_after_commit`.

use std::error::Error;

use actix::prelude::*;
use projects_pubsub::{
    AssignmentPayload, Batch, Delivery, DependencyPayload, EventName, Mutation, ProjectPayload,
    ProjectsNotifier, Subscribe, Topic, TopicBroker, publish_after_commit,
    publish_after_commit_and_wait,
};
use rusqlite::{Connection, Transaction};
use uuid::Uuid;

const SCHEMA: &str = "
    PRAGMA foreign_keys = ON;
    CREATE TABLE projects (uuid TEXT PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE assignments (
        uuid TEXT PRIMARY KEY,
        project_uuid TEXT NOT NULL REFERENCES projects (uuid) DEFERRABLE INITIALLY DEFERRED,
        title TEXT NOT NULL
    );
    CREATE TABLE dependencies (assignment_uuid TEXT NOT NULL, depends_on_uuid TEXT NOT NULL);
";

/// A live view of the workspace: remembers the name of each event.
#[derive(Default)]
struct Overview(Vec<String>);

impl Actor for Overview {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Overview {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        self.0.push(delivery.event().name.to_string());
    }
}

/// Asks the overview what it has received so far.
struct Seen;

impl Message for Seen {
    type Result = Vec<String>;
}

impl Handler<Seen> for Overview {
    type Result = MessageResult<Seen>;

    fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.0.clone())
    }
}

/// The database work of one step: inserts rows, pushes one mutation each.
fn add_assignment(
    tx: &Transaction<'_>,
    batch: &mut Batch,
    project: Uuid,
    title: &str,
) -> Result<Uuid, Box<dyn Error>> {
    let id = Uuid::new_v4();
    tx.execute(
        "INSERT INTO assignments (uuid, project_uuid, title) VALUES (?1, ?2, ?3)",
        (id.to_string(), project.to_string(), title),
    )?;
    let assignment = AssignmentPayload {
        project_uuid: project,
        uuid: Some(id),
    };
    batch.push(Mutation::assignment(
        EventName::AssignmentCreated,
        assignment,
    )?);
    Ok(id)
}

#[actix::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let overview = Overview::default().start();
    broker
        .send(Subscribe::new(Topic::all(), overview.clone().recipient()))
        .await??;

    let mut db = Connection::open_in_memory()?;
    db.execute_batch(SCHEMA)?;

    println!("1. plan a project in one transaction");
    let project = Uuid::new_v4();
    let committed = publish_after_commit_and_wait(
        &notifier,
        db.transaction()?,
        |tx, batch| {
            tx.execute(
                "INSERT INTO projects (uuid, name) VALUES (?1, ?2)",
                (project.to_string(), "Kitchen refit"),
            )?;
            let payload = ProjectPayload::new(project, "Kitchen refit", false);
            batch.push(Mutation::project(EventName::ProjectCreated, payload)?);

            let strip = add_assignment(tx, batch, project, "Strip the old units")?;
            let fit = add_assignment(tx, batch, project, "Fit the new units")?;
            add_assignment(tx, batch, project, "Tile the splashback")?;

            tx.execute(
                "INSERT INTO dependencies VALUES (?1, ?2)",
                (fit.to_string(), strip.to_string()),
            )?;
            let dependency = DependencyPayload {
                assignment_uuid: fit,
                depends_on_uuid: strip,
                project_uuid: project,
            };
            batch.push(Mutation::dependency(
                EventName::DependencyAdded,
                dependency,
            )?);
            println!("   {} mutations waiting for the commit", batch.len());
            Ok::<_, Box<dyn Error>>(())
        },
        |tx| tx.commit(),
    )
    .await?;
    let receipt = committed.published?;
    println!(
        "   committed, then published {} mutations to {} topics",
        receipt.mutations, receipt.topics
    );
    // The awaited form resolved once every event was in the overview's
    // mailbox, so this request is answered after all of them.
    for name in overview.send(Seen).await? {
        println!("     overview received {name}");
    }

    println!("2. an operation that fails inside the transaction");
    let failed = publish_after_commit(
        &notifier,
        db.transaction()?,
        |tx, batch| -> Result<(), Box<dyn Error>> {
            add_assignment(tx, batch, project, "Paint the ceiling")?;
            Err("the project is archived".into())
        },
        |tx| tx.commit(),
    );
    if let Err(error) = failed {
        println!("   rolled back ({error}): nothing published");
    }

    println!("3. an operation whose commit fails");
    let failed = publish_after_commit(
        &notifier,
        db.transaction()?,
        // No such project: the deferred foreign key fails at the commit.
        |tx, batch| add_assignment(tx, batch, Uuid::new_v4(), "Orphan"),
        |tx| tx.commit(),
    );
    if let Err(error) = failed {
        println!("   commit failed ({error}): nothing published");
    }

    let rows: i64 = db.query_row("SELECT count(*) FROM assignments", [], |row| row.get(0))?;
    let seen = overview.send(Seen).await?;
    println!(
        "{rows} assignments in the database; the overview received {} events in all",
        seen.len()
    );
    Ok(())
}
