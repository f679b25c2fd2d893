//! What a subscriber receives, and the ids that name subscribers and
//! subscriptions.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message, Recipient};

use crate::broker::Ticket;
use crate::event::ProjectsEvent;
use crate::topic::Topic;

/// One event, as handed to one subscriber.
///
/// A subscriber actor implements `Handler<Delivery>`. The event itself is
/// shared: a publish to N subscribers allocates it once, and each
/// `Delivery` holds a reference to it together with the topic it was
/// published on and the topic's sequence number.
///
/// # Sequence numbers
///
/// The broker stamps every publish on a topic with the next number of that
/// topic, starting at 1. A subscriber that sees a jump between two
/// deliveries of the same topic knows it missed events; [`Delivery::missed`]
/// also says how many this subscription lost to its own overflow bound just
/// before this delivery.
///
/// # Examples
///
/// ```
/// use actix::prelude::*;
/// use projects_pubsub::Delivery;
///
/// struct Overview;
///
/// impl Actor for Overview {
///     type Context = Context<Self>;
/// }
///
/// impl Handler<Delivery> for Overview {
///     type Result = ();
///
///     fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
///         println!("{} on {}: {:?}", delivery.event().name, delivery.topic(), delivery.seq());
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Delivery {
    // Two words: the mailbox envelope of a delivery is then no larger than
    // that of a plain `Arc` message, and sits in the allocator's smallest
    // size class with the mailbox's queue nodes.
    published: Arc<Published>,
    ticket: Option<Ticket>,
}

/// One publish on one topic; every subscriber of that topic shares it.
///
/// A delivery that reports missed events, or the end of its subscription,
/// carries a copy of its own with those marks; the shared value has none.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) topic: Topic,
    pub(crate) seq: u64,
    pub(crate) event: Arc<ProjectsEvent>,
    missed: u64,
    last: bool,
    // The frame data the event streams send, written by the first of them
    // and shared by the others: one encoding per publish, not per browser.
    #[cfg(feature = "web")]
    pub(crate) stream_data: std::sync::OnceLock<bytestring::ByteString>,
}

impl Published {
    pub(crate) fn new(topic: Topic, seq: u64, event: Arc<ProjectsEvent>) -> Published {
        Published {
            topic,
            seq,
            event,
            missed: 0,
            last: false,
            #[cfg(feature = "web")]
            stream_data: std::sync::OnceLock::new(),
        }
    }
}

impl Message for Delivery {
    type Result = ();
}

impl Delivery {
    #[inline]
    pub(crate) fn new(
        published: Arc<Published>,
        missed: u64,
        ticket: Option<Ticket>,
        last: bool,
    ) -> Self {
        let published = if missed == 0 && !last {
            published
        } else {
            Arc::new(Published {
                missed,
                last,
                ..Published::new(
                    published.topic.clone(),
                    published.seq,
                    Arc::clone(&published.event),
                )
            })
        };
        Delivery { published, ticket }
    }

    /// The topic the event was published on.
    pub fn topic(&self) -> &Topic {
        &self.published.topic
    }

    /// The sequence number of this publish on its topic, from 1.
    pub fn seq(&self) -> u64 {
        self.published.seq
    }

    /// The event.
    pub fn event(&self) -> &ProjectsEvent {
        &self.published.event
    }

    /// The publish this delivery carries, shared by every subscriber.
    #[cfg(feature = "web")]
    pub(crate) fn published(&self) -> &Published {
        &self.published
    }

    /// The shared event, to keep it beyond the handler without copying it.
    pub fn shared_event(&self) -> Arc<ProjectsEvent> {
        Arc::clone(&self.published.event)
    }

    /// How many events of this subscription were dropped by its overflow
    /// bound since the previous delivery; 0 for a subscription without a
    /// bound, or one that kept up.
    pub fn missed(&self) -> u64 {
        self.published.missed
    }

    /// Whether this is the last delivery of its subscription: the
    /// subscription reached its bound with the
    /// [`Overflow::Unsubscribe`](crate::Overflow::Unsubscribe) policy and
    /// has been removed. Subscribe again to resume.
    pub fn is_last(&self) -> bool {
        self.published.last
    }

    /// Whether this delivery still counts against the subscription's
    /// bound. Dropping the delivery (or calling [`Delivery::release`]) frees
    /// its place.
    pub fn holds_place(&self) -> bool {
        self.ticket.is_some()
    }

    /// Frees this delivery's place in its subscription's bound now, for a
    /// handler that keeps the delivery after it returns but has caught up.
    pub fn release(&mut self) {
        self.ticket = None;
    }
}

/// The identity of one subscriber actor instance.
///
/// Two recipients or addresses of the same actor instance have the same
/// id; two actors of the same type have different ids. Use it to exclude
/// the actor that caused a change from the events of that change.
///
/// The id is the address of the actor's mailbox, so it names an actor only
/// while that actor lives: once an actor has stopped and every address and
/// subscription of it is gone, a new actor may get the same id. Take the id
/// when you need it rather than keeping it beyond the actor's life.
///
/// # Examples
///
/// ```
/// use actix::prelude::*;
/// use projects_pubsub::{Delivery, SubscriberId};
///
/// struct View;
/// impl Actor for View {
///     type Context = Context<Self>;
/// }
/// impl Handler<Delivery> for View {
///     type Result = ();
///     fn handle(&mut self, _: Delivery, _: &mut Context<Self>) {}
/// }
///
/// # actix::System::new().block_on(async {
/// let a = View.start();
/// let b = View.start();
/// assert_eq!(SubscriberId::of(&a.clone().recipient()), SubscriberId::of_addr(&a));
/// assert_ne!(SubscriberId::of_addr(&a), SubscriberId::of_addr(&b));
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(u64);

impl SubscriberId {
    /// The id of the actor behind `recipient`.
    pub fn of(recipient: &Recipient<Delivery>) -> SubscriberId {
        SubscriberId(channel_identity(recipient))
    }

    /// The id of the actor behind `addr`.
    pub fn of_addr<A>(addr: &Addr<A>) -> SubscriberId
    where
        A: Actor + Handler<Delivery>,
        A::Context: ToEnvelope<A, Delivery>,
    {
        SubscriberId(channel_identity(addr))
    }
}

/// Reads the mailbox identity that actix hashes for a recipient or an
/// address: the address of the actor's channel. actix exposes it only
/// through `Hash`, and writes it as a single `usize`.
fn channel_identity<T: Hash>(value: &T) -> u64 {
    let mut capture = CaptureHasher(0);
    value.hash(&mut capture);
    capture.0
}

struct CaptureHasher(u64);

impl Hasher for CaptureHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached with actix 0.13, which writes one usize; folding keeps
        // the id stable should that change.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_usize(&mut self, value: usize) {
        self.0 = value as u64;
    }
}

/// The id of one subscription, returned by a subscribe.
///
/// Ids are unique within the process, across every broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

impl SubscriptionId {
    pub(crate) fn next() -> SubscriptionId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SubscriptionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number, for logs and metrics.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sub-{}", self.0)
    }
}
