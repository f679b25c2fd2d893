//! The [`ProjectsNotifier`] actor: turns committed mutations into events on
//! every topic they belong to.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;

use crate::broker::{Fanout, FanoutBatch, Reply, TopicBroker};
use crate::mutation::{Mutation, MutationError};
use crate::service::service_arbiter;

/// How a [`ProjectsNotifier`] behaves.
///
/// # Examples
///
/// ```
/// use projects_pubsub::NotifierConfig;
///
/// let quiet = NotifierConfig::default().broadcasting(false);
/// assert!(!quiet.is_broadcasting());
/// ```
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    tenant_mode: bool,
    broadcasting: bool,
}

impl Default for NotifierConfig {
    fn default() -> NotifierConfig {
        NotifierConfig {
            tenant_mode: false,
            broadcasting: true,
        }
    }
}

impl NotifierConfig {
    /// In tenant mode a mutation without an organisation
    /// ([`Mutation::in_org`]) is refused with [`NotifyError::ScopeRequired`]
    /// and reaches nobody. Off by default.
    pub fn tenant_mode(mut self, on: bool) -> NotifierConfig {
        self.tenant_mode = on;
        self
    }

    /// Whether tenant mode is on.
    pub fn is_tenant_mode(&self) -> bool {
        self.tenant_mode
    }

    /// With broadcasting off, mutations are accepted and reach nobody, as
    /// in the original when its broadcast switch is off. On by default.
    pub fn broadcasting(mut self, on: bool) -> NotifierConfig {
        self.broadcasting = on;
        self
    }

    /// Whether broadcasting is on.
    pub fn is_broadcasting(&self) -> bool {
        self.broadcasting
    }
}

/// The actor request handlers tell about committed changes.
///
/// It receives [`Mutation`]s, routes each with [`Mutation::topics`], and
/// sends the broker one message carrying the event (allocated once, shared
/// by every subscriber) and all its topics. Events from one notifier reach
/// each subscriber in the order the mutations were sent, on every topic.
///
/// Mutations sent with `do_send` in a burst travel to the broker together,
/// up to four in one message, as soon as the notifier's mailbox is empty:
/// fewer hops, no waiting. A mutation sent with `send` goes at once, after
/// any that came before it.
///
/// The default instance, [`ProjectsNotifier::from_registry`], runs on the
/// default broker's arbiter and publishes to the default broker.
///
/// # Examples
///
/// ```
/// use actix::prelude::*;
/// use projects_pubsub::{EventName, Mutation, ProjectsNotifier, TaskPayload, TopicBroker};
/// use uuid::Uuid;
///
/// # actix::System::new().block_on(async {
/// let broker = TopicBroker::default().start();
/// let notifier = ProjectsNotifier::new(broker).start();
///
/// let task = TaskPayload { uuid: Uuid::new_v4(), title: "Sand the floor".into() };
/// let mutation = Mutation::task(EventName::TaskCreated, task).unwrap();
///
/// // From a request handler: nothing to await.
/// notifier.do_send(mutation.clone());
///
/// // Or wait until the broker has handed the events on.
/// let receipt = notifier.send(mutation).await.unwrap().unwrap();
/// assert_eq!(receipt.topics, 2);
/// assert_eq!(receipt.delivered, 0); // nobody subscribed
/// # });
/// ```
pub struct ProjectsNotifier {
    // Shared with each reply: cloning an `Addr` allocates twice, an `Arc`
    // only counts.
    outbox: Arc<Outbox>,
    config: NotifierConfig,
    // Raised by the first refused fire-and-forget mutation of an incident,
    // so the warning is logged once, not once per mutation; lowered by the
    // next mutation that goes through.
    refusing: Arc<AtomicBool>,
}

impl ProjectsNotifier {
    /// A notifier publishing to `broker`, with the default configuration.
    pub fn new(broker: Addr<TopicBroker>) -> ProjectsNotifier {
        ProjectsNotifier {
            outbox: Arc::new(Outbox {
                broker,
                pending: Mutex::new(Vec::new()),
            }),
            config: NotifierConfig::default(),
            refusing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same notifier with another configuration.
    pub fn with_config(mut self, config: NotifierConfig) -> ProjectsNotifier {
        self.config = config;
        self
    }

    fn prepare(&self, mutation: Mutation) -> Result<Option<Fanout>, NotifyError> {
        if self.config.tenant_mode && mutation.org().is_none() {
            return Err(NotifyError::ScopeRequired);
        }
        let topics = mutation.topics()?;
        if !self.config.broadcasting {
            log::trace!(
                "broadcasting is off: {} reaches nobody",
                mutation.event.name
            );
            return Ok(None);
        }

        log::trace!("{} goes to {} topics", mutation.event.name, topics.len());
        Ok(Some(Fanout {
            topics,
            event: mutation.event,
            exclude: mutation.origin,
            local_only: mutation.local_only,
            reply: Reply::nobody(),
        }))
    }
}

impl Default for ProjectsNotifier {
    fn default() -> ProjectsNotifier {
        ProjectsNotifier::new(TopicBroker::from_registry())
    }
}

impl Actor for ProjectsNotifier {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        log::debug!(
            "projects notifier started (tenant mode: {})",
            self.config.tenant_mode
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Fire-and-forget mutations it took are sent, not lost.
        self.outbox.flush();
        log::debug!("projects notifier stopped");
    }
}

/// The most fire-and-forget fan-outs a notifier holds before it sends them
/// to its broker, even if its mailbox is still busy.
///
/// Four keeps a batch's buffer under 1 KiB. glibc's allocator tidies all
/// of its small free blocks before it serves a larger request, and that
/// costs more than the mailbox hops a longer batch would save.
const MAX_BATCH: usize = 4;

/// Where a notifier's routed mutations wait for their broker.
///
/// A mutation sent with `do_send` needs no answer, so its fan-out waits
/// here until the notifier's mailbox is empty (or [`MAX_BATCH`] wait), and
/// all that waits goes to the broker in one message: one mailbox hop per
/// burst instead of one per mutation. A mutation whose caller waits sends
/// what waits first, then itself, so the broker sees every mutation in the
/// order the notifier took them.
struct Outbox {
    broker: Addr<TopicBroker>,
    pending: Mutex<Vec<Fanout>>,
}

impl Outbox {
    /// Holds a fire-and-forget fan-out; the first of a burst schedules the
    /// flush that runs once the mailbox is empty.
    fn hold(&self, fanout: Fanout, ctx: &mut Context<ProjectsNotifier>) {
        let mut pending = self.pending();
        pending.push(fanout);
        match pending.len() {
            1 => ctx.notify(Flush),
            MAX_BATCH => self.send(&mut pending),
            _ => {}
        }
    }

    /// Sends everything that waits.
    fn flush(&self) {
        self.send(&mut self.pending());
    }

    fn pending(&self) -> MutexGuard<'_, Vec<Fanout>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends what `pending` holds: a lone fan-out as it is, so the buffer
    /// keeps its room and nothing is allocated for it, several in a batch.
    fn send(&self, pending: &mut Vec<Fanout>) {
        if pending.is_empty() {
            return;
        }
        if !self.broker.connected() {
            // Dropping the fan-outs logs their loss, once per incident.
            pending.clear();
            return;
        }

        log::trace!("{} fan-outs go to the broker in one message", pending.len());
        if pending.len() == 1 {
            self.broker.do_send(pending.remove(0));
        } else {
            self.broker.do_send(FanoutBatch(std::mem::take(pending)));
        }
    }
}

/// Sends what waits in the outbox; see [`Outbox`].
struct Flush;

impl Message for Flush {
    type Result = ();
}

impl Handler<Flush> for ProjectsNotifier {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
        self.outbox.flush();
    }
}

impl Supervised for ProjectsNotifier {}

impl SystemService for ProjectsNotifier {
    fn start_service(_: &ArbiterHandle) -> Addr<ProjectsNotifier> {
        Supervisor::start_in_arbiter(&service_arbiter(), |_| ProjectsNotifier::default())
    }
}

/// A mutation with the channel its receipt goes back on; see
/// [`ProjectsNotifier::send_confirmed`].
struct Confirm {
    mutation: Mutation,
    reply: OneshotSender<Result<NotifyReceipt, NotifyError>>,
}

impl Message for Confirm {
    type Result = ();
}

impl Handler<Confirm> for ProjectsNotifier {
    type Result = ();

    fn handle(&mut self, Confirm { mutation, reply }: Confirm, ctx: &mut Context<Self>) {
        let forward = Handler::<Mutation>::handle(self, mutation, ctx);
        MessageResponse::<ProjectsNotifier, Mutation>::handle(forward, ctx, Some(reply));
    }
}

impl ProjectsNotifier {
    /// Sends `mutation` to `notifier` now, and returns a future that
    /// resolves with its receipt once the broker has handed the events on.
    ///
    /// Unlike `notifier.send(mutation)`, this is cancel safe: the mutation
    /// is in the notifier's mailbox before this function returns, so
    /// dropping the future (an actix-web handler whose client went away)
    /// loses only the receipt, never the events of a committed change.
    /// With `Addr::send`, actix drops a message whose caller stopped
    /// waiting before the notifier took it.
    ///
    /// # Errors
    ///
    /// The future resolves with [`NotifyError::NotifierGone`] if the
    /// notifier had stopped, [`NotifyError::BrokerGone`] if its broker had,
    /// or the notifier's own refusal.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix::prelude::*;
    /// use projects_pubsub::{EventName, Mutation, ProjectsNotifier, TaskPayload, TopicBroker};
    /// use uuid::Uuid;
    ///
    /// # actix::System::new().block_on(async {
    /// let notifier = ProjectsNotifier::new(TopicBroker::default().start()).start();
    /// let task = TaskPayload::new(Uuid::new_v4(), "Tile the bathroom");
    /// let mutation = Mutation::task(EventName::TaskCreated, task).unwrap();
    ///
    /// let receipt = ProjectsNotifier::send_confirmed(&notifier, mutation).await.unwrap();
    /// assert_eq!(receipt.topics, 2);
    /// # });
    /// ```
    pub fn send_confirmed(
        notifier: &Addr<ProjectsNotifier>,
        mutation: Mutation,
    ) -> impl Future<Output = Result<NotifyReceipt, NotifyError>> + use<> {
        let (reply, receipt) = tokio::sync::oneshot::channel();
        notifier.do_send(Confirm { mutation, reply });
        async move { receipt.await.unwrap_or(Err(NotifyError::NotifierGone)) }
    }
}

/// What a notifier did with one mutation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyReceipt {
    /// Topics the event was published on.
    pub topics: usize,
    /// Deliveries over all those topics (a subscriber of two of them
    /// counts twice).
    pub delivered: usize,
    /// Subscriptions for which the event waits in the broker, behind their
    /// bound ([`Overflow::DropOldest`](crate::Overflow::DropOldest)).
    pub queued: usize,
    /// Deliveries lost to subscriptions over their bound.
    pub missed: usize,
}

impl From<crate::PublishReceipt> for NotifyReceipt {
    /// The receipt of a publish on one topic, as a part of a mutation's.
    fn from(one: crate::PublishReceipt) -> NotifyReceipt {
        NotifyReceipt {
            topics: 1,
            delivered: one.delivered,
            queued: one.queued,
            missed: one.missed,
        }
    }
}

impl std::ops::AddAssign for NotifyReceipt {
    /// Adds another receipt's counts, to total several mutations.
    fn add_assign(&mut self, other: NotifyReceipt) {
        self.topics += other.topics;
        self.delivered += other.delivered;
        self.queued += other.queued;
        self.missed += other.missed;
    }
}

/// Why a mutation reached nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifyError {
    /// Tenant mode is on and the mutation has no organisation.
    ScopeRequired,
    /// The mutation could not be routed.
    Mutation(MutationError),
    /// The notifier's broker has stopped: the mutation reached nobody.
    BrokerGone,
    /// The notifier had stopped before it could take the mutation.
    NotifierGone,
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyError::ScopeRequired => f.write_str(
                "tenant mode is on and the mutation has no organisation (Mutation::in_org)",
            ),
            NotifyError::Mutation(err) => write!(f, "{err}"),
            NotifyError::BrokerGone => f.write_str("the notifier's broker has stopped"),
            NotifyError::NotifierGone => f.write_str("the notifier has stopped"),
        }
    }
}

impl std::error::Error for NotifyError {}

impl From<MutationError> for NotifyError {
    fn from(err: MutationError) -> NotifyError {
        NotifyError::Mutation(err)
    }
}

/// Switches broadcasting on or off at run time. Replies with the previous
/// setting.
#[derive(Debug, Clone, Copy)]
pub struct SetBroadcasting(pub bool);

impl Message for SetBroadcasting {
    type Result = bool;
}

impl Handler<SetBroadcasting> for ProjectsNotifier {
    type Result = bool;

    fn handle(&mut self, SetBroadcasting(on): SetBroadcasting, _: &mut Context<Self>) -> bool {
        std::mem::replace(&mut self.config.broadcasting, on)
    }
}

impl Handler<Mutation> for ProjectsNotifier {
    type Result = Forward;

    fn handle(&mut self, mutation: Mutation, _: &mut Context<Self>) -> Forward {
        let prepared = self.prepare(mutation);
        let refusing = match &prepared {
            Ok(_) => {
                self.refusing.store(false, Ordering::Relaxed);
                None
            }
            Err(_) => Some(Arc::clone(&self.refusing)),
        };
        Forward {
            outbox: Arc::clone(&self.outbox),
            prepared,
            refusing,
        }
    }
}

/// The reply to a [`Mutation`]: the fan-out is sent to the broker only once
/// actix says whether the caller waits, so a `do_send` costs no reply
/// channel and may travel with others, and a `send` is answered by the
/// broker itself.
pub struct Forward {
    outbox: Arc<Outbox>,
    prepared: Result<Option<Fanout>, NotifyError>,
    refusing: Option<Arc<AtomicBool>>,
}

impl MessageResponse<ProjectsNotifier, Mutation> for Forward {
    fn handle(
        self,
        ctx: &mut Context<ProjectsNotifier>,
        tx: Option<OneshotSender<Result<NotifyReceipt, NotifyError>>>,
    ) {
        match (self.prepared, tx) {
            (Ok(Some(fanout)), None) => self.outbox.hold(fanout, ctx),
            (Ok(Some(mut fanout)), Some(tx)) => {
                self.outbox.flush();
                // A fan-out dropped unhandled, here or by a broker that has
                // stopped since this check, answers `BrokerGone`.
                fanout.reply.wait(tx);
                if self.outbox.broker.connected() {
                    self.outbox.broker.do_send(fanout);
                }
            }
            (Ok(None), Some(tx)) => {
                let _ = tx.send(Ok(NotifyReceipt::default()));
            }
            (Ok(None), None) => {}
            (Err(err), tx) => refuse(err, tx, self.refusing.as_deref()),
        }
    }
}

/// Answers a waiting caller with `err`, or logs it for a `do_send` caller:
/// at `warn` for the first refusal of an incident, at `debug` after.
fn refuse(
    err: NotifyError,
    tx: Option<OneshotSender<Result<NotifyReceipt, NotifyError>>>,
    refusing: Option<&AtomicBool>,
) {
    if let Some(tx) = tx {
        let _ = tx.send(Err(err));
        return;
    }

    let first = refusing.is_none_or(|flag| !flag.swap(true, Ordering::Relaxed));
    if first {
        log::warn!(
            "mutation dropped: {err}; further refusals are logged at debug until a mutation \
             goes through"
        );
    } else {
        log::debug!("mutation dropped: {err}");
    }
}
