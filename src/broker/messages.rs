//! The messages a [`TopicBroker`](super::TopicBroker) handles, and their
//! replies.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::dev::OneshotSender;
use actix::{Message, Recipient};

use crate::delivery::{Delivery, SubscriberId, SubscriptionId};
use crate::event::ProjectsEvent;
use crate::mutation::Targets;
use crate::notifier::{NotifyError, NotifyReceipt};
use crate::topic::Topic;

/// Subscribes a recipient to a topic.
///
/// Replies with the [`SubscriptionId`]. Subscribing the same actor to the
/// same topic again returns the same id and adds nothing: the actor still
/// receives each event once, and the first subscription's options stay in
/// force (unsubscribe first to change them).
///
/// Once the reply has arrived (`broker.send(subscribe).await`), every
/// publish made afterwards reaches the subscriber. Sent with `do_send`, the
/// subscription still takes effect before any message sent to the broker
/// later by the same task, including publishes that pass through a
/// [`ProjectsNotifier`](crate::ProjectsNotifier) of this broker.
///
/// The broker keeps only a weak reference to the recipient: it never keeps
/// a subscriber alive, and a subscriber that stops is removed on its own.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use projects_pubsub::{Overflow, Subscribe, SubscribeOptions, Topic};
/// # use actix::prelude::*;
/// # use projects_pubsub::Delivery;
/// # struct View;
/// # impl Actor for View { type Context = Context<Self>; }
/// # impl Handler<Delivery> for View {
/// #     type Result = ();
/// #     fn handle(&mut self, _: Delivery, _: &mut Context<Self>) {}
/// # }
/// # fn demo(view: Addr<View>) {
/// let plain = Subscribe::new(Topic::all(), view.clone().recipient());
/// let bounded = Subscribe::new(Topic::tasks(), view.recipient())
///     .with_options(SubscribeOptions::bounded(NonZeroUsize::new(64).unwrap()));
/// # }
/// ```
pub struct Subscribe {
    pub(crate) topic: Topic,
    pub(crate) recipient: Recipient<Delivery>,
    pub(crate) options: SubscribeOptions,
}

impl Subscribe {
    /// Subscribes `recipient` to `topic` with default options.
    pub fn new(topic: Topic, recipient: Recipient<Delivery>) -> Subscribe {
        Subscribe {
            topic,
            recipient,
            options: SubscribeOptions::default(),
        }
    }

    /// The same subscription with other options.
    pub fn with_options(mut self, options: SubscribeOptions) -> Subscribe {
        self.options = options;
        self
    }
}

impl Message for Subscribe {
    type Result = Result<SubscriptionId, SubscribeError>;
}

/// How a subscription treats a subscriber that falls behind.
///
/// The default has no bound: every event is queued in the subscriber's
/// mailbox, so a healthy subscriber never loses one, and the broker never
/// waits. Set a bound for a subscriber that may stall, so it cannot grow
/// memory without limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Most events handed to the subscriber and not yet handled; `None`
    /// for no bound.
    pub bound: Option<NonZeroUsize>,
    /// What happens to an event that would exceed the bound.
    pub overflow: Overflow,
}

impl SubscribeOptions {
    /// A bound of `bound` events with the default overflow policy,
    /// [`Overflow::DropNewest`].
    pub fn bounded(bound: NonZeroUsize) -> SubscribeOptions {
        SubscribeOptions {
            bound: Some(bound),
            overflow: Overflow::DropNewest,
        }
    }

    /// The same options with another overflow policy.
    pub fn overflow(mut self, overflow: Overflow) -> SubscribeOptions {
        self.overflow = overflow;
        self
    }
}

/// What a bounded subscription does with an event it has no room for.
///
/// A subscription's bound counts the events handed to the subscriber and
/// not yet handled: a [`Delivery`] holds its place until it is dropped,
/// normally when the handler returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Drop the new event; the subscriber stays subscribed, and its next
    /// delivery reports the count in [`Delivery::missed`].
    #[default]
    DropNewest,
    /// Keep up to `bound` more events waiting in the broker and hand them
    /// on as the subscriber frees places; when that backlog is full, drop
    /// the oldest waiting event. The next delivery reports the count in
    /// [`Delivery::missed`]. At most twice the bound is held for a
    /// subscriber: `bound` in its mailbox and `bound` in the backlog.
    DropOldest,
    /// Hand the subscriber one last event, marked by
    /// [`Delivery::is_last`], and remove the subscription; the subscriber
    /// receives nothing more on that topic until it subscribes again.
    Unsubscribe,
}

/// Why a subscribe was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The broker runs in tenant mode and the topic has no organisation.
    ScopeRequired(Topic),
    /// The recipient's actor has already stopped.
    SubscriberGone,
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::ScopeRequired(topic) => write!(
                f,
                "the broker runs in tenant mode: {topic} needs an organisation scope \
                 (Topic::in_org)"
            ),
            SubscribeError::SubscriberGone => f.write_str("the subscriber has already stopped"),
        }
    }
}

impl std::error::Error for SubscribeError {}

/// Removes one subscription. Replies `true` if it existed.
#[derive(Debug, Clone, Copy)]
pub struct Unsubscribe(pub SubscriptionId);

impl Message for Unsubscribe {
    type Result = bool;
}

/// Removes every subscription of one subscriber. Replies with how many.
#[derive(Debug, Clone, Copy)]
pub struct UnsubscribeAll(pub SubscriberId);

impl Message for UnsubscribeAll {
    type Result = usize;
}

/// Publishes an event to one topic.
///
/// Replies with a [`PublishReceipt`]. Publishing to a topic nobody
/// subscribed to succeeds with zero deliveries and creates nothing.
///
/// # Examples
///
/// ```
/// use projects_pubsub::{EventName, Payload, ProjectRef, ProjectsEvent, Publish, Topic};
/// use uuid::Uuid;
///
/// let id = Uuid::new_v4();
/// let event = ProjectsEvent::new(EventName::ProjectArchived, Payload::ProjectRef(ProjectRef::new(id)));
/// let publish = Publish::new(Topic::project(id), event);
/// ```
#[derive(Debug, Clone)]
pub struct Publish {
    pub(crate) topic: Topic,
    pub(crate) event: Arc<ProjectsEvent>,
    pub(crate) exclude: Option<SubscriberId>,
    pub(crate) local_only: bool,
}

impl Publish {
    /// Publishes `event` to `topic`.
    pub fn new(topic: Topic, event: impl Into<Arc<ProjectsEvent>>) -> Publish {
        Publish {
            topic,
            event: event.into(),
            exclude: None,
            local_only: false,
        }
    }

    /// The same publish, kept on this node: it is not handed to the
    /// broker's relay (see [`SetRelay`]), so no other node sees it.
    pub fn local_only(mut self) -> Publish {
        self.local_only = true;
        self
    }

    /// The same publish, skipping one subscriber (for example the view that
    /// made the change and has already reloaded itself).
    pub fn excluding(mut self, subscriber: SubscriberId) -> Publish {
        self.exclude = Some(subscriber);
        self
    }
}

impl Message for Publish {
    type Result = Result<PublishReceipt, PublishError>;
}

/// What became of one publish.
///
/// `delivered` counts the subscribers the event was handed to: queued in
/// their mailboxes, not yet handled. A successful publish does not mean
/// anyone has read the event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReceipt {
    /// Subscribers the event was handed to.
    pub delivered: usize,
    /// Subscribers for which the event waits in the broker, behind their
    /// bound ([`Overflow::DropOldest`]).
    pub queued: usize,
    /// Events lost to overflow bounds by this publish: the new event for
    /// [`Overflow::DropNewest`], the oldest waiting one for
    /// [`Overflow::DropOldest`].
    pub missed: usize,
    /// Subscribers skipped because the publish excluded them.
    pub excluded: usize,
    /// The sequence number the event got on its topic; 0 when nobody was
    /// subscribed.
    pub seq: u64,
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// The broker runs in tenant mode and the topic has no organisation.
    ScopeRequired(Topic),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::ScopeRequired(topic) => write!(
                f,
                "the broker runs in tenant mode: {topic} needs an organisation scope"
            ),
        }
    }
}

impl std::error::Error for PublishError {}

/// How many live subscriptions a topic has. Replies with the count.
///
/// Subscribers that have stopped are pruned before counting.
#[derive(Debug, Clone)]
pub struct SubscriberCount(pub Topic);

impl Message for SubscriberCount {
    type Result = usize;
}

/// How many topics have at least one subscription. Replies with the count.
#[derive(Debug, Clone, Copy)]
pub struct TopicCount;

impl Message for TopicCount {
    type Result = usize;
}

/// Restarts a supervised broker. Replies once the restart is under way.
///
/// The broker stops and its supervisor (the default instance has one; use
/// `Supervisor::start` for an explicit instance) starts it again with the
/// same subscription table: subscriptions survive, cached recipients are let
/// go, and sequence numbers continue. An unsupervised broker just stops.
#[derive(Debug, Clone, Copy)]
pub struct Restart;

impl Message for Restart {
    type Result = ();
}

/// Asks for the broker's counters. Replies with [`BrokerStats`].
#[derive(Debug, Clone, Copy)]
pub struct GetStats;

impl Message for GetStats {
    type Result = BrokerStats;
}

/// Counters of one broker since it started.
///
/// Every event offered to a subscription ends in exactly one of
/// `deliveries`, `missed_overflow` or `undeliverable`, or still waits in a
/// backlog (`backlog`), so
/// `offered == deliveries + missed_overflow + undeliverable + backlog`
/// holds whenever the counters are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Publishes handled, one per topic of a fan-out.
    pub publishes: u64,
    /// Events offered to subscriptions (the fan-out of every publish,
    /// excluded subscribers not counted).
    pub offered: u64,
    /// Events handed to subscribers.
    pub deliveries: u64,
    /// Events dropped by a subscription's overflow bound.
    pub missed_overflow: u64,
    /// Events not handed on because their subscription ended first: the
    /// subscriber had stopped, or events still waited in its backlog when
    /// it left.
    pub undeliverable: u64,
    /// Events waiting in the backlogs of [`Overflow::DropOldest`]
    /// subscriptions now.
    pub backlog: u64,
    /// Subscriptions removed by the [`Overflow::Unsubscribe`] policy.
    pub overflow_unsubscribed: u64,
    /// Subscriptions added.
    pub subscriptions_added: u64,
    /// Subscriptions removed by unsubscribe.
    pub subscriptions_removed: u64,
    /// Subscriptions removed because the subscriber stopped or overflowed.
    pub subscriptions_pruned: u64,
    /// Subscriptions alive now.
    pub subscriptions: u64,
    /// Topics with at least one subscription now.
    pub topics: u64,
}

/// One event for several topics, as a notifier sends it: one message for
/// the whole fan-out of a mutation.
pub(crate) struct Fanout {
    pub(crate) topics: Targets,
    pub(crate) event: Arc<ProjectsEvent>,
    pub(crate) exclude: Option<SubscriberId>,
    pub(crate) local_only: bool,
    pub(crate) reply: Reply,
}

/// Where the outcome of one fan-out goes: the caller that waits for it, or,
/// for a fire-and-forget mutation, nobody.
///
/// A fan-out can be dropped unhandled when the broker stops between the
/// notifier's check and its mailbox taking the message. Dropped unanswered,
/// a waiting caller still learns [`NotifyError::BrokerGone`] (not a closed
/// mailbox, which would blame the notifier), and a fire-and-forget loss is
/// logged.
pub(crate) struct Reply {
    tx: Option<OneshotSender<Result<NotifyReceipt, NotifyError>>>,
    // Lowered once the broker has answered: dropping is then no loss.
    pending: bool,
}

// One warning per incident: raised by the first fire-and-forget fan-out
// lost with its broker, lowered by the next one a broker handles.
static LOSING: AtomicBool = AtomicBool::new(false);

impl Reply {
    /// Nobody waits.
    pub(crate) fn nobody() -> Reply {
        Reply {
            tx: None,
            pending: true,
        }
    }

    /// From now on `tx` waits for the outcome.
    pub(crate) fn wait(&mut self, tx: OneshotSender<Result<NotifyReceipt, NotifyError>>) {
        self.tx = Some(tx);
    }

    /// Answers the caller, if one waits.
    pub(crate) fn send(mut self, outcome: Result<NotifyReceipt, NotifyError>) {
        self.pending = false;
        // Read first: brokers on several threads would otherwise all write
        // this line for every fan-out.
        if LOSING.load(Ordering::Relaxed) {
            LOSING.store(false, Ordering::Relaxed);
        }
        if let Some(tx) = self.tx.take() {
            // The caller may have stopped waiting; that is its choice.
            let _ = tx.send(outcome);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.pending {
            return;
        }

        match self.tx.take() {
            Some(tx) => {
                let _ = tx.send(Err(NotifyError::BrokerGone));
            }
            None if !LOSING.swap(true, Ordering::Relaxed) => {
                log::warn!(
                    "a mutation was dropped: {}; further losses are logged at debug",
                    NotifyError::BrokerGone
                );
            }
            None => log::debug!("a mutation was dropped: {}", NotifyError::BrokerGone),
        }
    }
}

/// An event a broker hands to its relay after delivering it locally: the
/// way out to other nodes (for example a Redis bridge).
///
/// Publishes marked local-only are never relayed, and neither are events
/// that came in from a relay: that is what keeps them from echoing.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// The topics the event was published on.
    pub topics: Targets,
    /// The event, shared with the local subscribers.
    pub event: Arc<ProjectsEvent>,
}

impl Message for Relayed {
    type Result = ();
}

/// Sets (or, with `None`, removes) the broker's relay. Replies with
/// nothing.
///
/// The broker holds the relay strongly and hands it every publish that is
/// not local-only, in publish order, after local delivery.
pub struct SetRelay(pub Option<Recipient<Relayed>>);

impl Message for SetRelay {
    type Result = ();
}

impl Message for Fanout {
    type Result = ();
}

/// Several fan-outs in the order a notifier took their mutations: what a
/// notifier sends when fire-and-forget mutations come in a burst.
pub(crate) struct FanoutBatch(pub(crate) Vec<Fanout>);

impl Message for FanoutBatch {
    type Result = ();
}
