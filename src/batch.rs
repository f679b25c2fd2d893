//! Publishing after commit: mutations held back until the database
//! transaction that made them has committed.
//!
//! An event announces a change that other views will re-read. Sent from
//! inside a transaction, it can arrive before the change is visible (the
//! view re-reads the old state) or announce a change that never happens
//! (the transaction rolls back). A [`Batch`] holds the mutations of one
//! transaction and sends them only when told to, after the commit.
//!
//! The safe path is [`publish_after_commit`]: it owns the transaction,
//! commits it itself, and sends the batch only once the commit succeeded.
//! See `docs/publish-after-commit.md` for the reasoning behind its shape.

use std::fmt;
use std::vec;

use actix::Addr;

use crate::mutation::Mutation;
use crate::notifier::{NotifyError, NotifyReceipt, ProjectsNotifier};

/// Mutations collected while a database transaction is open, sent to a
/// [`ProjectsNotifier`] only once it has committed.
///
/// Push the mutations of a transaction as it makes them, then, once the
/// transaction has committed, hand them over with [`Batch::commit_to`]
/// (nothing to await) or [`Batch::commit_and_wait`] (resolves once the
/// broker has handed every event on). The notifier receives them in push
/// order, so each subscriber sees them in that order too.
///
/// A batch that is dropped, or given up with [`Batch::discard`], sends
/// nothing: a transaction that rolls back, returns an error or unwinds
/// takes its events with it.
///
/// A batch cannot know when the database committed; that is the caller's
/// part. [`publish_after_commit`] takes it over: prefer it wherever the
/// transaction's commit is a call that consumes the transaction.
///
/// # Examples
///
/// ```
/// use actix::prelude::*;
/// use projects_pubsub::{Batch, EventName, Mutation, ProjectsNotifier, TaskPayload, TopicBroker};
/// use uuid::Uuid;
///
/// # actix::System::new().block_on(async {
/// let notifier = ProjectsNotifier::new(TopicBroker::default().start()).start();
///
/// let mut batch = Batch::new();
/// let task = TaskPayload { uuid: Uuid::new_v4(), title: "Sand the floor".into() };
/// batch.push(Mutation::task(EventName::TaskCreated, task).unwrap());
/// // ... the database transaction commits here ...
/// let receipt = batch.commit_and_wait(&notifier).await.unwrap();
/// assert_eq!(receipt.mutations, 1);
/// # });
/// ```
#[must_use = "a batch sends nothing until `commit_to` or `commit_and_wait` is called"]
// No `Default`: it would let the work of `publish_after_commit` swap the
// batch out with `std::mem::take` and send it before the commit.
#[derive(Debug)]
pub struct Batch {
    mutations: Vec<Mutation>,
}

#[allow(clippy::new_without_default)]
impl Batch {
    /// An empty batch.
    ///
    /// Allocates nothing until the first push.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::Batch;
    ///
    /// let batch = Batch::new();
    /// assert!(batch.is_empty());
    /// # batch.discard();
    /// ```
    pub fn new() -> Batch {
        Batch {
            mutations: Vec::new(),
        }
    }

    /// Adds a mutation after the ones already pushed.
    ///
    /// Nothing is sent: the mutation waits in the batch until the batch is
    /// committed to a notifier. Routing and scope are checked by the
    /// notifier then, not here.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{Batch, EventName, Mutation, ProjectRef};
    /// use uuid::Uuid;
    ///
    /// let mut batch = Batch::new();
    /// let project = ProjectRef::new(Uuid::new_v4());
    /// batch.push(Mutation::project_ref(EventName::ProjectArchived, project).unwrap());
    /// assert_eq!(batch.len(), 1);
    /// # batch.discard();
    /// ```
    pub fn push(&mut self, mutation: Mutation) {
        self.mutations.push(mutation);
    }

    /// How many mutations the batch holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::Batch;
    ///
    /// assert_eq!(Batch::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.mutations.len()
    }

    /// Whether the batch holds no mutation.
    ///
    /// Committing an empty batch is allowed and sends nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::Batch;
    ///
    /// assert!(Batch::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.mutations.is_empty()
    }

    /// The mutations held, in push order.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{Batch, EventName, Mutation, ProjectRef};
    /// use uuid::Uuid;
    ///
    /// let mut batch = Batch::new();
    /// let project = ProjectRef::new(Uuid::new_v4());
    /// batch.push(Mutation::project_ref(EventName::ProjectStarted, project).unwrap());
    /// assert_eq!(batch.mutations()[0].event().name, EventName::ProjectStarted);
    /// # batch.discard();
    /// ```
    pub fn mutations(&self) -> &[Mutation] {
        &self.mutations
    }

    /// Gives the batch up: nothing is sent.
    ///
    /// Dropping the batch does the same; this spells it out where a
    /// transaction is rolled back on purpose.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::{Batch, EventName, Mutation, ProjectRef};
    /// use uuid::Uuid;
    ///
    /// let mut batch = Batch::new();
    /// let project = ProjectRef::new(Uuid::new_v4());
    /// batch.push(Mutation::project_ref(EventName::ProjectDeleted, project).unwrap());
    /// // ... the transaction rolls back ...
    /// batch.discard();
    /// ```
    pub fn discard(self) {
        drop(self);
    }

    /// Sends every mutation to `notifier`, in push order, without waiting.
    ///
    /// Call it once the transaction that made the mutations has committed.
    /// Returns how many mutations were handed to the notifier's mailbox.
    ///
    /// The mutations are sent with `do_send`, as a request handler would:
    /// a mutation the notifier refuses (for example one without an
    /// organisation in tenant mode) is dropped and logged at `warn` level.
    /// Use [`Batch::commit_and_wait`] to learn about it instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix::prelude::*;
    /// use projects_pubsub::{
    ///     Batch, EventName, Mutation, ProjectRef, ProjectsNotifier, TopicBroker,
    /// };
    /// use uuid::Uuid;
    ///
    /// # actix::System::new().block_on(async {
    /// let notifier = ProjectsNotifier::new(TopicBroker::default().start()).start();
    /// let mut batch = Batch::new();
    /// let project = ProjectRef::new(Uuid::new_v4());
    /// batch.push(Mutation::project_ref(EventName::ProjectCompleted, project).unwrap());
    /// assert_eq!(batch.commit_to(&notifier), 1);
    /// # });
    /// ```
    pub fn commit_to(mut self, notifier: &Addr<ProjectsNotifier>) -> usize {
        let mutations = std::mem::take(&mut self.mutations);
        let count = mutations.len();
        if !notifier.connected() {
            log::warn!("batch of {count} committed mutations lost: the notifier has stopped");
            return 0;
        }
        for mutation in mutations {
            notifier.do_send(mutation);
        }
        log::trace!("batch of {count} mutations handed to the notifier");
        count
    }

    /// Sends every mutation to `notifier`, in push order, and resolves once
    /// the broker has handed each event on.
    ///
    /// Call it once the transaction that made the mutations has committed.
    /// Every mutation is in the notifier's mailbox, in push order, before
    /// the first await (see [`ProjectsNotifier::send_confirmed`]).
    ///
    /// # Errors
    ///
    /// The mutations describe committed changes, so a refused one does not
    /// stop the others: every mutation is still offered, and the
    /// [`BatchError`] lists the ones that failed together with the receipt
    /// of those that went out. Only a notifier that has stopped ends the
    /// sending early.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe once polled: the first poll sends every mutation, so
    /// dropping the future afterwards loses only the receipt.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix::prelude::*;
    /// use projects_pubsub::{
    ///     Batch, EventName, Mutation, NotifierConfig, ProjectRef, ProjectsNotifier, TopicBroker,
    /// };
    /// use uuid::Uuid;
    ///
    /// # actix::System::new().block_on(async {
    /// let broker = TopicBroker::default().start();
    /// let config = NotifierConfig::default().tenant_mode(true);
    /// let notifier = ProjectsNotifier::new(broker).with_config(config).start();
    ///
    /// let mut batch = Batch::new();
    /// let project = ProjectRef::new(Uuid::new_v4());
    /// // No organisation: a tenant-mode notifier refuses it.
    /// batch.push(Mutation::project_ref(EventName::ProjectReopened, project).unwrap());
    /// let error = batch.commit_and_wait(&notifier).await.unwrap_err();
    /// assert_eq!(error.failures().len(), 1);
    /// # });
    /// ```
    pub async fn commit_and_wait(
        mut self,
        notifier: &Addr<ProjectsNotifier>,
    ) -> Result<BatchReceipt, BatchError> {
        let mutations = std::mem::take(&mut self.mutations);
        let pending: Vec<_> = mutations
            .into_iter()
            .map(|mutation| ProjectsNotifier::send_confirmed(notifier, mutation))
            .collect();

        let mut receipt = BatchReceipt::default();
        let mut failures = Vec::new();
        for (index, one) in pending.into_iter().enumerate() {
            match one.await {
                Ok(one) => {
                    receipt.mutations += 1;
                    receipt.events += one;
                }
                Err(NotifyError::NotifierGone) => {
                    failures.push(BatchFailure::NotifierGone { index });
                    break;
                }
                Err(error) => failures.push(BatchFailure::Refused { index, error }),
            }
        }

        log::trace!(
            "batch handed on: {} mutations, {} failures",
            receipt.mutations,
            failures.len()
        );
        if failures.is_empty() {
            Ok(receipt)
        } else {
            Err(BatchError { receipt, failures })
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if !self.mutations.is_empty() {
            log::debug!(
                "batch of {} mutations dropped unsent (its transaction did not commit)",
                self.mutations.len()
            );
        }
    }
}

impl Extend<Mutation> for Batch {
    fn extend<I: IntoIterator<Item = Mutation>>(&mut self, mutations: I) {
        self.mutations.extend(mutations);
    }
}

impl FromIterator<Mutation> for Batch {
    fn from_iter<I: IntoIterator<Item = Mutation>>(mutations: I) -> Batch {
        Batch {
            mutations: mutations.into_iter().collect(),
        }
    }
}

impl IntoIterator for Batch {
    type Item = Mutation;
    type IntoIter = vec::IntoIter<Mutation>;

    /// Takes the mutations back out, unsent.
    fn into_iter(mut self) -> vec::IntoIter<Mutation> {
        std::mem::take(&mut self.mutations).into_iter()
    }
}

/// What became of a batch sent with [`Batch::commit_and_wait`].
///
/// The counts add up the [`NotifyReceipt`](crate::NotifyReceipt)s of the
/// mutations that went out. `delivered` counts events handed to
/// subscribers' mailboxes, not yet handled.
///
/// # Examples
///
/// ```
/// use projects_pubsub::BatchReceipt;
///
/// let receipt = BatchReceipt::default();
/// assert_eq!(receipt.mutations, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReceipt {
    /// Mutations the notifier accepted and the broker handed on.
    pub mutations: usize,
    /// The receipts of those mutations, summed: topics, deliveries, events
    /// queued and missed. Its fields read through the batch receipt too
    /// (`receipt.delivered`).
    pub events: NotifyReceipt,
}

impl std::ops::Deref for BatchReceipt {
    type Target = NotifyReceipt;

    fn deref(&self) -> &NotifyReceipt {
        &self.events
    }
}

/// One mutation of a batch that did not go out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchFailure {
    /// The notifier refused the mutation at `index`; the others were still
    /// sent.
    Refused {
        /// Position of the mutation in the batch, from 0.
        index: usize,
        /// Why the notifier refused it.
        error: NotifyError,
    },
    /// The notifier had stopped when the mutation at `index` was sent: it
    /// and every later mutation of the batch were not sent.
    NotifierGone {
        /// Position of the first unsent mutation, from 0.
        index: usize,
    },
}

impl fmt::Display for BatchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchFailure::Refused { index, error } => write!(f, "mutation {index}: {error}"),
            BatchFailure::NotifierGone { index } => write!(
                f,
                "the notifier has stopped: mutation {index} and the ones after it were not sent"
            ),
        }
    }
}

/// Why some mutations of a batch did not go out.
///
/// Holds the receipt of the ones that did, and a [`BatchFailure`] for each
/// one that did not, in batch order.
///
/// # Examples
///
/// See [`Batch::commit_and_wait`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    receipt: BatchReceipt,
    failures: Vec<BatchFailure>,
}

impl BatchError {
    /// What the mutations that did go out achieved.
    pub fn receipt(&self) -> &BatchReceipt {
        &self.receipt
    }

    /// The mutations that did not go out, in batch order.
    pub fn failures(&self) -> &[BatchFailure] {
        &self.failures
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} mutations of the batch did not go out (first: ",
            self.failures.len()
        )?;
        match self.failures.first() {
            Some(first) => write!(f, "{first})"),
            None => f.write_str("none)"),
        }
    }
}

impl std::error::Error for BatchError {}

/// The result of [`publish_after_commit_and_wait`]: the value the work
/// returned, and what became of its events.
///
/// The transaction has committed whenever a `Committed` exists: a failure
/// in `published` means events were lost, never that the change was.
#[derive(Debug)]
pub struct Committed<T> {
    /// What the work returned.
    pub value: T,
    /// What became of the batch, sent after the commit.
    pub published: Result<BatchReceipt, BatchError>,
}

/// Runs `work` in the transaction `tx`, commits it with `commit`, and only
/// then sends the mutations `work` pushed to `notifier`.
///
/// This is the safe way to publish from a transaction, and it is generic
/// over the database: `Tx` is any transaction value, and `commit` is how
/// to commit it (for `rusqlite`, `|tx| tx.commit()`).
///
/// - `work` gets the open transaction and an empty [`Batch`]. It does the
///   database work and pushes a mutation for each change. It can neither
///   commit the transaction (it only borrows it, and the usual `commit`
///   consumes the transaction) nor send the batch (it only borrows that
///   too).
/// - If `work` returns `Ok`, `commit(tx)` runs; if that succeeds, the batch
///   goes to the notifier in push order, with `do_send`, and the value of
///   `work` is returned.
/// - If `work` returns `Err`, or `commit` fails, or `work` panics, the
///   transaction and the batch are dropped: the database rolls back (as
///   dropping an open transaction does in the usual Rust database crates)
///   and nothing is sent. The error is returned as it came.
///
/// Sending with `do_send` means this needs no async context, as a request
/// handler's code does not; see [`publish_after_commit_and_wait`] for the
/// awaited form, and [`Batch::commit_to`] for what a refused mutation
/// does.
///
/// # Errors
///
/// The error of `work`, or that of `commit` converted into `E`.
///
/// # Examples
///
/// ```
/// use actix::prelude::*;
/// use projects_pubsub::{
///     EventName, Mutation, ProjectsNotifier, TaskPayload, TopicBroker, publish_after_commit,
/// };
/// use rusqlite::Connection;
/// use uuid::Uuid;
///
/// # actix::System::new().block_on(async {
/// let notifier = ProjectsNotifier::new(TopicBroker::default().start()).start();
/// let mut db = Connection::open_in_memory().unwrap();
/// db.execute_batch("CREATE TABLE tasks (uuid TEXT PRIMARY KEY, title TEXT NOT NULL)").unwrap();
///
/// let task = TaskPayload { uuid: Uuid::new_v4(), title: "Paint the hall".into() };
/// let uuid = publish_after_commit(
///     &notifier,
///     db.transaction().unwrap(),
///     |tx, batch| {
///         tx.execute(
///             "INSERT INTO tasks (uuid, title) VALUES (?1, ?2)",
///             (task.uuid.to_string(), &task.title),
///         )?;
///         batch.push(Mutation::task(EventName::TaskCreated, task.clone()).unwrap());
///         Ok::<_, rusqlite::Error>(task.uuid)
///     },
///     |tx| tx.commit(),
/// )
/// .unwrap();
/// assert_eq!(uuid, task.uuid);
/// # });
/// ```
pub fn publish_after_commit<Tx, T, E, C>(
    notifier: &Addr<ProjectsNotifier>,
    tx: Tx,
    work: impl FnOnce(&mut Tx, &mut Batch) -> Result<T, E>,
    commit: impl FnOnce(Tx) -> Result<(), C>,
) -> Result<T, E>
where
    E: From<C>,
{
    let (value, batch) = run_and_commit(tx, work, commit)?;
    batch.commit_to(notifier);
    Ok(value)
}

/// Like [`publish_after_commit`], and then waits until the broker has
/// handed every event of the batch on.
///
/// `work` and `commit` run at once, synchronously, as in
/// [`publish_after_commit`]; the batch is then sent with
/// [`Batch::commit_and_wait`], after the commit.
///
/// # Errors
///
/// The error of `work`, or that of `commit` converted into `E`: then
/// nothing was committed and nothing was sent. Once the commit succeeded
/// the result is `Ok`, and a failure to publish is reported in
/// [`Committed::published`] next to the value.
///
/// # Examples
///
/// ```
/// use actix::prelude::*;
/// use projects_pubsub::{
///     EventName, Mutation, ProjectRef, ProjectsNotifier, TopicBroker,
///     publish_after_commit_and_wait,
/// };
/// use rusqlite::Connection;
/// use uuid::Uuid;
///
/// # actix::System::new().block_on(async {
/// let notifier = ProjectsNotifier::new(TopicBroker::default().start()).start();
/// let mut db = Connection::open_in_memory().unwrap();
/// db.execute_batch("CREATE TABLE projects (uuid TEXT PRIMARY KEY, archived INTEGER)").unwrap();
///
/// let id = Uuid::new_v4();
/// let committed = publish_after_commit_and_wait(
///     &notifier,
///     db.transaction().unwrap(),
///     |tx, batch| {
///         tx.execute("INSERT INTO projects VALUES (?1, 1)", [id.to_string()])?;
///         let project = ProjectRef::new(id);
///         batch.push(Mutation::project_ref(EventName::ProjectArchived, project).unwrap());
///         Ok::<_, rusqlite::Error>(())
///     },
///     |tx| tx.commit(),
/// )
/// .await
/// .unwrap();
/// assert_eq!(committed.published.unwrap().mutations, 1);
/// # });
/// ```
pub async fn publish_after_commit_and_wait<Tx, T, E, C>(
    notifier: &Addr<ProjectsNotifier>,
    tx: Tx,
    work: impl FnOnce(&mut Tx, &mut Batch) -> Result<T, E>,
    commit: impl FnOnce(Tx) -> Result<(), C>,
) -> Result<Committed<T>, E>
where
    E: From<C>,
{
    let (value, batch) = run_and_commit(tx, work, commit)?;
    let published = batch.commit_and_wait(notifier).await;
    Ok(Committed { value, published })
}

/// The part both helpers share: the batch leaves this function only once
/// `commit` has returned `Ok`.
fn run_and_commit<Tx, T, E, C>(
    mut tx: Tx,
    work: impl FnOnce(&mut Tx, &mut Batch) -> Result<T, E>,
    commit: impl FnOnce(Tx) -> Result<(), C>,
) -> Result<(T, Batch), E>
where
    E: From<C>,
{
    let mut batch = Batch::new();
    let value = work(&mut tx, &mut batch)?;

    commit(tx)?;
    Ok((value, batch))
}
