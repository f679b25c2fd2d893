//! Publishing after commit, with a real SQLite transaction: a committed
//! transaction publishes each of its mutations once and in order; one
//! that rolls back, fails or unwinds publishes nothing; and no event of a
//! transaction exists anywhere while it is still open.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use actix::prelude::*;
use projects_pubsub::{
    AssignmentPayload, Batch, BatchFailure, BrokerConfig, Delivery, DependencyPayload, EventName,
    Mutation, NotifierConfig, NotifyError, OrgId, Payload, ProjectPayload, ProjectsEvent,
    ProjectsNotifier, Subscribe, Topic, TopicBroker, publish_after_commit,
    publish_after_commit_and_wait,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction};
use serde_json::Map;
use uuid::Uuid;

const SCHEMA: &str = "
    PRAGMA foreign_keys = ON;
    CREATE TABLE IF NOT EXISTS projects (
        uuid TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        is_template INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS assignments (
        uuid TEXT PRIMARY KEY,
        project_uuid TEXT NOT NULL
            REFERENCES projects (uuid) DEFERRABLE INITIALLY DEFERRED,
        position INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS dependencies (
        assignment_uuid TEXT NOT NULL,
        depends_on_uuid TEXT NOT NULL,
        project_uuid TEXT NOT NULL
    );
";

fn memory_db() -> Connection {
    let db = Connection::open_in_memory().expect("in-memory database");
    db.execute_batch(SCHEMA).expect("schema");
    db
}

// ---------------------------------------------------------------------------
// The application's database work: each function changes rows inside the
// transaction it is given and pushes one mutation per change.

fn create_project(tx: &Transaction<'_>, batch: &mut Batch, id: Uuid) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO projects (uuid, name, is_template) VALUES (?1, ?2, 0)",
        (id.to_string(), "Kitchen refit"),
    )?;
    let project = ProjectPayload::new(id, "Kitchen refit", false);
    batch.push(Mutation::project(EventName::ProjectCreated, project).expect("project name"));
    Ok(())
}

fn assign(
    tx: &Transaction<'_>,
    batch: &mut Batch,
    project: Uuid,
    at: i64,
) -> rusqlite::Result<Uuid> {
    let id = Uuid::new_v4();
    tx.execute(
        "INSERT INTO assignments (uuid, project_uuid, position) VALUES (?1, ?2, ?3)",
        (id.to_string(), project.to_string(), at),
    )?;
    let assignment = AssignmentPayload {
        project_uuid: project,
        uuid: Some(id),
    };
    let mutation = Mutation::assignment(EventName::AssignmentCreated, assignment);
    batch.push(mutation.expect("assignment name"));
    Ok(id)
}

fn depend(
    tx: &Transaction<'_>,
    batch: &mut Batch,
    project: Uuid,
    assignment: Uuid,
    on: Uuid,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO dependencies VALUES (?1, ?2, ?3)",
        (assignment.to_string(), on.to_string(), project.to_string()),
    )?;
    let dependency = DependencyPayload {
        assignment_uuid: assignment,
        depends_on_uuid: on,
        project_uuid: project,
    };
    let mutation = Mutation::dependency(EventName::DependencyAdded, dependency);
    batch.push(mutation.expect("dependency name"));
    Ok(())
}

/// A project with `rows` assignments and a dependency between the first
/// two: a multi-row operation. Returns the assignment ids.
fn plan_project(
    tx: &Transaction<'_>,
    batch: &mut Batch,
    project: Uuid,
    rows: i64,
) -> rusqlite::Result<Vec<Uuid>> {
    create_project(tx, batch, project)?;
    let assignments = (0..rows)
        .map(|at| assign(tx, batch, project, at))
        .collect::<rusqlite::Result<Vec<Uuid>>>()?;
    if let [first, second, ..] = assignments[..] {
        depend(tx, batch, project, second, first)?;
    }
    Ok(assignments)
}

fn count(db: &Connection, table: &str) -> i64 {
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
        row.get(0)
    })
    .expect("count rows")
}

// ---------------------------------------------------------------------------
// A subscriber that records every delivery, and a way to know that every
// event sent so far has reached it.

#[derive(Default)]
struct Recorder {
    got: Vec<ProjectsEvent>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Delivery> for Recorder {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        self.got.push(delivery.event().clone());
    }
}

struct Recorded;

impl Message for Recorded {
    type Result = Vec<ProjectsEvent>;
}

impl Handler<Recorded> for Recorder {
    type Result = MessageResult<Recorded>;

    fn handle(&mut self, _: Recorded, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.got.clone())
    }
}

struct Setup {
    notifier: Addr<ProjectsNotifier>,
    recorder: Addr<Recorder>,
}

/// A broker and a notifier, and a recorder on `projects:all`.
async fn setup() -> Setup {
    let broker = TopicBroker::default().start();
    let notifier = ProjectsNotifier::new(broker.clone()).start();
    let recorder = Recorder::default().start();
    broker
        .send(Subscribe::new(Topic::all(), recorder.clone().recipient()))
        .await
        .expect("broker alive")
        .expect("subscribe");
    Setup { notifier, recorder }
}

/// A UI intent on a topic nobody watches: its awaited receipt comes back
/// only once everything sent to the notifier before it was handed on.
fn probe() -> Mutation {
    let topic = Topic::embed("probe").expect("embed");
    Mutation::embed(topic, EventName::Opened, Map::new()).expect("embed")
}

impl Setup {
    /// Everything the recorder has received from mutations sent before
    /// this call, with or without waiting.
    async fn settled(&self) -> Vec<ProjectsEvent> {
        self.notifier
            .send(probe())
            .await
            .expect("notifier alive")
            .expect("probe routable");
        self.recorder.send(Recorded).await.expect("recorder alive")
    }
}

fn names(events: &[ProjectsEvent]) -> Vec<&str> {
    events.iter().map(|event| event.name.as_str()).collect()
}

// ---------------------------------------------------------------------------
// Commit.

#[actix::test]
async fn a_committed_transaction_publishes_every_mutation_once_and_in_order() {
    let setup = setup().await;
    let mut db = memory_db();
    let project = Uuid::new_v4();

    let mut pushed = Vec::new();
    let assignments = publish_after_commit(
        &setup.notifier,
        db.transaction().expect("begin"),
        |tx, batch| {
            let assignments = plan_project(tx, batch, project, 4)?;
            pushed = batch.mutations().to_vec();
            Ok::<_, rusqlite::Error>(assignments)
        },
        |tx| tx.commit(),
    )
    .expect("committed");

    assert_eq!(assignments.len(), 4);
    assert_eq!(count(&db, "assignments"), 4);
    let got = setup.settled().await;
    let expected: Vec<ProjectsEvent> = pushed.iter().map(|m| m.event().clone()).collect();
    assert_eq!(
        names(&got),
        [
            "project_created",
            "assignment_created",
            "assignment_created",
            "assignment_created",
            "assignment_created",
            "dependency_added",
        ]
    );
    assert_eq!(got, expected, "each event once, in push order");
}

#[actix::test]
async fn the_awaited_form_resolves_once_every_event_was_handed_on() {
    let setup = setup().await;
    let mut db = memory_db();
    let project = Uuid::new_v4();

    let committed = publish_after_commit_and_wait(
        &setup.notifier,
        db.transaction().expect("begin"),
        |tx, batch| plan_project(tx, batch, project, 3),
        |tx| tx.commit(),
    )
    .await
    .expect("committed");

    assert_eq!(committed.value.len(), 3);
    let receipt = committed.published.expect("all published");
    assert_eq!(receipt.mutations, 5);
    assert_eq!(
        receipt.topics, 10,
        "each mutation goes to all and project:<uuid>"
    );
    assert_eq!(receipt.delivered, 5, "one subscriber, on all");
    // No flush needed: the events are already in the recorder's mailbox.
    let got = setup.recorder.send(Recorded).await.expect("recorder alive");
    assert_eq!(got.len(), 5);
}

#[actix::test]
async fn a_batch_committed_by_hand_after_the_transaction_publishes_in_order() {
    let setup = setup().await;
    let mut db = memory_db();
    let project = Uuid::new_v4();

    let mut batch = Batch::new();
    let tx = db.transaction().expect("begin");
    plan_project(&tx, &mut batch, project, 2).expect("work");
    tx.commit().expect("commit");
    let expected: Vec<ProjectsEvent> = batch
        .mutations()
        .iter()
        .map(|m| m.event().clone())
        .collect();
    assert_eq!(batch.commit_to(&setup.notifier), 4);

    assert_eq!(setup.settled().await, expected);
}

#[actix::test]
async fn an_empty_batch_publishes_nothing() {
    let setup = setup().await;
    let batch = Batch::new();
    assert!(batch.is_empty());
    let receipt = batch
        .commit_and_wait(&setup.notifier)
        .await
        .expect("nothing to fail");
    assert_eq!(receipt.mutations, 0);
    assert!(setup.settled().await.is_empty());
}

// ---------------------------------------------------------------------------
// Rollback, in every way a transaction can end without committing.

#[actix::test]
async fn an_explicit_rollback_publishes_nothing() {
    let setup = setup().await;
    let mut db = memory_db();

    let mut batch = Batch::new();
    let tx = db.transaction().expect("begin");
    plan_project(&tx, &mut batch, Uuid::new_v4(), 3).expect("work");
    assert_eq!(batch.len(), 5);
    tx.rollback().expect("rollback");
    batch.discard();

    assert_eq!(count(&db, "projects"), 0);
    assert!(setup.settled().await.is_empty());
}

#[actix::test]
async fn an_error_from_the_work_publishes_nothing_and_rolls_back() {
    let setup = setup().await;
    let mut db = memory_db();
    let project = Uuid::new_v4();

    let failed = publish_after_commit(
        &setup.notifier,
        db.transaction().expect("begin"),
        |tx, batch| {
            plan_project(tx, batch, project, 3)?;
            // The same project again: the primary key refuses it.
            create_project(tx, batch, project)
        },
        |tx| tx.commit(),
    );

    let error = failed.expect_err("duplicate key");
    assert_eq!(
        error.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation)
    );
    assert_eq!(count(&db, "projects"), 0);
    assert_eq!(count(&db, "assignments"), 0);
    assert!(setup.settled().await.is_empty());
}

/// The application's own error type: the work fails on a business rule,
/// and the commit's error converts into it.
#[derive(Debug)]
enum PlanError {
    TooManyAssignments,
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for PlanError {
    fn from(error: rusqlite::Error) -> PlanError {
        PlanError::Db(error)
    }
}

#[actix::test]
async fn a_business_rule_error_publishes_nothing() {
    let setup = setup().await;
    let mut db = memory_db();

    let failed = publish_after_commit(
        &setup.notifier,
        db.transaction().expect("begin"),
        |tx, batch| {
            let assignments = plan_project(tx, batch, Uuid::new_v4(), 3)?;
            if assignments.len() > 2 {
                return Err(PlanError::TooManyAssignments);
            }
            Ok(assignments)
        },
        |tx| tx.commit(),
    );

    match failed {
        Err(PlanError::TooManyAssignments) => {}
        Err(PlanError::Db(error)) => panic!("expected the business rule, got {error}"),
        Ok(assignments) => panic!("committed {assignments:?}"),
    }
    assert_eq!(count(&db, "assignments"), 0);
    assert!(setup.settled().await.is_empty());
}

#[actix::test]
async fn a_failed_commit_publishes_nothing() {
    let setup = setup().await;
    let mut db = memory_db();

    // The foreign key is deferred: the orphan row is accepted inside the
    // transaction, and the commit itself fails.
    let failed = publish_after_commit(
        &setup.notifier,
        db.transaction().expect("begin"),
        |tx, batch| assign(tx, batch, Uuid::new_v4(), 0),
        |tx| tx.commit(),
    );

    let error = failed.expect_err("the deferred foreign key fails the commit");
    assert_eq!(
        error.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation)
    );
    assert_eq!(count(&db, "assignments"), 0);
    assert!(setup.settled().await.is_empty());

    // The failure was the transaction's, not the notifier's.
    let committed = publish_after_commit(
        &setup.notifier,
        db.transaction().expect("begin"),
        |tx, batch| create_project(tx, batch, Uuid::new_v4()),
        |tx| tx.commit(),
    );
    assert!(committed.is_ok(), "{committed:?}");
    assert_eq!(names(&setup.settled().await), ["project_created"]);
}

#[actix::test]
async fn dropping_an_open_transaction_and_its_batch_publishes_nothing() {
    let setup = setup().await;
    let mut db = memory_db();

    {
        let mut batch = Batch::new();
        let tx = db.transaction().expect("begin");
        plan_project(&tx, &mut batch, Uuid::new_v4(), 2).expect("work");
        // An early return, say: both go out of scope, neither committed.
    }

    assert_eq!(count(&db, "projects"), 0);
    assert!(setup.settled().await.is_empty());
}

#[actix::test]
async fn a_panic_in_the_work_publishes_nothing() {
    let setup = setup().await;
    let mut db = memory_db();

    let unwound = catch_unwind(AssertUnwindSafe(|| {
        publish_after_commit(
            &setup.notifier,
            db.transaction().expect("begin"),
            |tx, batch| -> rusqlite::Result<()> {
                plan_project(tx, batch, Uuid::new_v4(), 2)?;
                panic!("a bug in the handler, after the rows and mutations were made")
            },
            |tx| tx.commit(),
        )
    }));

    assert!(unwound.is_err());
    assert_eq!(count(&db, "projects"), 0);
    assert!(setup.settled().await.is_empty());
}

// ---------------------------------------------------------------------------
// Refusals after the commit.

#[actix::test]
async fn a_refused_mutation_does_not_hold_back_the_rest_of_the_batch() {
    let broker = TopicBroker::new(BrokerConfig::default().tenant_mode(true)).start();
    let config = NotifierConfig::default().tenant_mode(true);
    let notifier = ProjectsNotifier::new(broker.clone())
        .with_config(config)
        .start();
    let acme = OrgId::new("acme").expect("org");
    let recorder = Recorder::default().start();
    let topic = Topic::all().in_org(acme.clone()).expect("scoped");
    broker
        .send(Subscribe::new(topic, recorder.clone().recipient()))
        .await
        .expect("broker alive")
        .expect("subscribe");

    let created = |name: &str| {
        let project = ProjectPayload::new(Uuid::new_v4(), name, false);
        Mutation::project(EventName::ProjectCreated, project).expect("project name")
    };
    let batch: Batch = [
        created("first").in_org(acme.clone()),
        created("unscoped"),
        created("third").in_org(acme),
    ]
    .into_iter()
    .collect();
    let error = batch
        .commit_and_wait(&notifier)
        .await
        .expect_err("one refused");

    assert_eq!(
        error.failures(),
        [BatchFailure::Refused {
            index: 1,
            error: NotifyError::ScopeRequired
        }]
    );
    assert_eq!(error.receipt().mutations, 2);
    let got = recorder.send(Recorded).await.expect("recorder alive");
    let project_names: Vec<&str> = got
        .iter()
        .map(|event| match &event.payload {
            Payload::Project(project) => project.name.as_str(),
            other => panic!("unexpected payload {other:?}"),
        })
        .collect();
    assert_eq!(project_names, ["first", "third"]);
}

#[actix::test]
async fn a_batch_for_a_stopped_notifier_says_what_was_not_sent() {
    let broker = TopicBroker::default().start();
    let elsewhere = Arbiter::new();
    let notifier = ProjectsNotifier::start_in_arbiter(&elsewhere.handle(), move |_| {
        ProjectsNotifier::new(broker)
    });
    elsewhere.stop();
    elsewhere.join().expect("the arbiter's thread ends");

    let mut batch = Batch::new();
    batch.push(probe());
    batch.push(probe());
    let error = batch
        .commit_and_wait(&notifier)
        .await
        .expect_err("notifier gone");
    assert_eq!(error.failures(), [BatchFailure::NotifierGone { index: 0 }]);
    assert_eq!(error.receipt().mutations, 0);
}

// ---------------------------------------------------------------------------
// While the transaction is open, none of its events exists anywhere.
//
// The broker, the notifier and a witness run on an arbiter of their own,
// so they keep working while the test's thread holds a transaction open.
// The witness reads the database through a second connection each time an
// event reaches it and reports whether the changed row is visible there.

/// A database file in a directory of its own, removed afterwards.
struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    fn new(name: &str) -> TempDb {
        let unique = Uuid::new_v4().simple();
        let dir = std::env::temp_dir().join(format!("projects-pubsub-{name}-{unique}"));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDb { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("workspace.sqlite3")
    }

    fn open(&self) -> Connection {
        open_file(&self.path())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn open_file(path: &Path) -> Connection {
    let db = Connection::open(path).expect("database file");
    db.pragma_update(None, "journal_mode", "WAL")
        .expect("write-ahead log");
    db.execute_batch(SCHEMA).expect("schema");
    db
}

/// What the witness saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// An event of the row `uuid` of `table`, and whether that row was
    /// visible to another connection when the event was handled.
    Row {
        table: &'static str,
        uuid: Uuid,
        visible: bool,
    },
    /// An event the witness has no row for.
    Unexpected(String),
    /// The probe: everything sent before it has been handled.
    Probe,
}

struct Witness {
    db: Connection,
    seen: mpsc::Sender<Seen>,
}

impl Actor for Witness {
    type Context = Context<Self>;
}

impl Witness {
    fn row(&self, table: &'static str, key: &str, uuid: Uuid) -> Seen {
        let sql = format!("SELECT 1 FROM {table} WHERE {key} = ?1");
        let row: Option<i64> = self
            .db
            .query_row(&sql, [uuid.to_string()], |row| row.get(0))
            .optional()
            .expect("read through the second connection");
        Seen::Row {
            table,
            uuid,
            visible: row.is_some(),
        }
    }
}

impl Handler<Delivery> for Witness {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        let seen = match &delivery.event().payload {
            Payload::Project(project) => self.row("projects", "uuid", project.uuid),
            Payload::Assignment(AssignmentPayload {
                uuid: Some(uuid), ..
            }) => self.row("assignments", "uuid", *uuid),
            Payload::Dependency(dependency) => self.row(
                "dependencies",
                "assignment_uuid",
                dependency.assignment_uuid,
            ),
            Payload::Embed(_) => Seen::Probe,
            other => Seen::Unexpected(format!("{other:?}")),
        };
        let _ = self.seen.send(seen);
    }
}

struct Stage {
    arbiter: Arbiter,
    // The broker holds subscribers weakly: this address keeps the witness.
    _witness: Addr<Witness>,
    notifier: Addr<ProjectsNotifier>,
    seen: mpsc::Receiver<Seen>,
}

impl Stage {
    /// Starts the broker, the notifier and a witness of `project`'s topic
    /// on an arbiter of their own.
    async fn start(db: &TempDb, project: Uuid) -> Stage {
        let arbiter = Arbiter::new();
        let handle = arbiter.handle();
        let broker = TopicBroker::start_in_arbiter(&handle, |_| TopicBroker::default());
        let to = broker.clone();
        let notifier =
            ProjectsNotifier::start_in_arbiter(&handle, move |_| ProjectsNotifier::new(to));

        let (sender, seen) = mpsc::channel();
        let path = db.path();
        let witness = Witness::start_in_arbiter(&handle, move |_| Witness {
            db: open_file(&path),
            seen: sender,
        });
        for topic in [
            Topic::project(project),
            Topic::embed("probe").expect("embed"),
        ] {
            broker
                .send(Subscribe::new(topic, witness.clone().recipient()))
                .await
                .expect("broker alive")
                .expect("subscribe");
        }
        Stage {
            arbiter,
            _witness: witness,
            notifier,
            seen,
        }
    }

    /// Sends a probe and blocks until the witness has handled it; returns
    /// what the witness saw before it. Blocking is fine: nothing this test
    /// waits for runs on the test's thread.
    fn seen_before_probe(&self) -> Vec<Seen> {
        self.notifier.do_send(probe());
        let mut before = Vec::new();
        loop {
            match self.seen.recv().expect("the witness is alive") {
                Seen::Probe => return before,
                row => before.push(row),
            }
        }
    }
}

#[actix::test]
async fn a_multi_row_operation_publishes_only_after_its_commit() {
    let file = TempDb::new("after-commit");
    let project = Uuid::new_v4();
    let stage = Stage::start(&file, project).await;
    let mut db = file.open();

    let mut seen_while_open = None;
    let assignments = publish_after_commit(
        &stage.notifier,
        db.transaction().expect("begin"),
        |tx, batch| {
            let assignments = plan_project(tx, batch, project, 5)?;
            // The transaction is still open: every event sent through the
            // notifier before the probe has reached the witness by now.
            seen_while_open = Some(stage.seen_before_probe());
            Ok::<_, rusqlite::Error>(assignments)
        },
        |tx| tx.commit(),
    )
    .expect("committed");

    assert_eq!(
        seen_while_open,
        Some(Vec::new()),
        "no event while the transaction was open"
    );
    let visible = |table, uuid| Seen::Row {
        table,
        uuid,
        visible: true,
    };
    let mut expected = vec![visible("projects", project)];
    expected.extend(assignments.iter().map(|&uuid| visible("assignments", uuid)));
    expected.push(visible("dependencies", assignments[1]));
    let seen = stage.seen_before_probe();
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(
        seen, expected,
        "every row was visible when its event arrived, in order"
    );
    stage.arbiter.stop();
}

/// The control experiment: the same witness catches an event sent from
/// inside an open transaction, the bug the batch exists to prevent.
#[actix::test]
async fn the_witness_catches_an_event_sent_from_inside_a_transaction() {
    let file = TempDb::new("inside-tx");
    let project = Uuid::new_v4();
    let stage = Stage::start(&file, project).await;
    let mut db = file.open();

    let mut batch = Batch::new();
    let tx = db.transaction().expect("begin");
    create_project(&tx, &mut batch, project).expect("insert");
    // Wrong: published while the transaction is open.
    batch.commit_to(&stage.notifier);
    let seen = stage.seen_before_probe();
    tx.commit().expect("commit");

    assert_eq!(
        seen,
        [Seen::Row {
            table: "projects",
            uuid: project,
            visible: false
        }]
    );
    stage.arbiter.stop();
}
