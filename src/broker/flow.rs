//! Per-subscription bounds: how many events one subscriber may have in
//! hand, and what becomes of the events beyond that.
//!
//! actix's `do_send` ignores a mailbox's capacity, so the broker counts for
//! itself: each bounded delivery carries a [`Ticket`] that gives its place
//! back when the subscriber drops the [`Delivery`], normally when its
//! handler returns.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use actix::{Message, Recipient, WeakRecipient};

use super::messages::Overflow;
use crate::delivery::{Delivery, Published, SubscriptionId};

/// Asks the broker to hand a subscription's backlog on; sent by the last
/// ticket of a [`Overflow::DropOldest`] subscription that has a backlog.
pub(crate) struct Refill(pub(crate) SubscriptionId);

impl Message for Refill {
    type Result = ();
}

/// The part of a flow that deliveries share with the broker.
#[derive(Debug)]
pub(crate) struct FlowShared {
    id: SubscriptionId,
    queued: AtomicUsize,
    waiting: AtomicBool,
    wake: Option<WeakRecipient<Refill>>,
}

/// A place in a bounded subscription, given back when dropped.
#[derive(Debug)]
pub(crate) struct Ticket(Arc<FlowShared>);

impl Drop for Ticket {
    fn drop(&mut self) {
        // Sequentially consistent on both sides: either the broker sees the
        // freed place when it re-checks after raising `waiting`, or this
        // drop sees `waiting` raised and asks for a refill.
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
        if self.0.waiting.load(Ordering::SeqCst) && self.0.waiting.swap(false, Ordering::SeqCst) {
            if let Some(broker) = self.0.wake.as_ref().and_then(WeakRecipient::upgrade) {
                broker.do_send(Refill(self.0.id));
            }
        }
    }
}

/// What a bounded subscription did with one publish.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowOutcome {
    /// Events handed to the subscriber now: the new one, or older ones
    /// from the backlog, or both.
    pub(crate) handed: usize,
    /// Whether the new event itself was handed on now.
    pub(crate) delivered: bool,
    /// Whether the new event waits in the backlog.
    pub(crate) queued: bool,
    /// Events dropped by this publish: the new one, or the oldest waiting.
    pub(crate) missed: usize,
    /// Whether the subscription must be removed.
    pub(crate) unsubscribe: bool,
}

/// The broker's side of a bounded subscription.
pub(crate) struct Flow {
    bound: usize,
    overflow: Overflow,
    shared: Arc<FlowShared>,
    backlog: VecDeque<Arc<Published>>,
    missed: u64,
    lagging: bool,
}

impl Flow {
    pub(crate) fn new(
        id: SubscriptionId,
        bound: usize,
        overflow: Overflow,
        wake: Option<WeakRecipient<Refill>>,
    ) -> Flow {
        let shared = FlowShared {
            id,
            queued: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            wake,
        };
        Flow {
            bound,
            overflow,
            shared: Arc::new(shared),
            backlog: VecDeque::new(),
            missed: 0,
            lagging: false,
        }
    }

    fn has_room(&self) -> bool {
        self.shared.queued.load(Ordering::SeqCst) < self.bound
    }

    fn hand_on(&mut self, recipient: &Recipient<Delivery>, published: Arc<Published>) {
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        let ticket = Ticket(Arc::clone(&self.shared));
        let missed = std::mem::take(&mut self.missed);
        if self.lagging {
            self.lagging = false;
            log::debug!(
                "subscription {} caught up after missing {missed} events",
                self.shared.id
            );
        }
        recipient.do_send(Delivery::new(published, missed, Some(ticket), false));
    }

    fn start_incident(&mut self, published: &Published) {
        if !self.lagging {
            self.lagging = true;
            log::warn!(
                "subscription {} on {} has {} events unhandled, its bound; {} until it \
                 catches up",
                self.shared.id,
                published.topic,
                self.bound,
                match self.overflow {
                    Overflow::DropOldest => "dropping the oldest waiting events",
                    _ => "dropping new events",
                }
            );
        }
    }

    /// Offers one publish to the subscription.
    pub(crate) fn offer(
        &mut self,
        recipient: &Recipient<Delivery>,
        published: &Arc<Published>,
    ) -> FlowOutcome {
        let mut outcome = FlowOutcome::default();
        if self.backlog.is_empty() && self.has_room() {
            self.hand_on(recipient, Arc::clone(published));
            outcome.handed = 1;
            outcome.delivered = true;
            return outcome;
        }

        match self.overflow {
            Overflow::DropNewest => {
                self.start_incident(published);
                self.missed += 1;
                outcome.missed = 1;
            }
            Overflow::Unsubscribe => {
                log::warn!(
                    "subscription {} on {} reached its bound of {} unhandled events; \
                     unsubscribed",
                    self.shared.id,
                    published.topic,
                    self.bound
                );
                // One delivery past the bound tells the subscriber it has been
                // removed; nothing follows it.
                recipient.do_send(Delivery::new(
                    Arc::clone(published),
                    self.missed,
                    None,
                    true,
                ));
                outcome.handed = 1;
                outcome.delivered = true;
                outcome.unsubscribe = true;
            }
            Overflow::DropOldest => {
                self.backlog.push_back(Arc::clone(published));
                if self.backlog.len() > self.bound {
                    self.start_incident(published);
                    self.backlog.pop_front();
                    self.missed += 1;
                    outcome.missed = 1;
                }
                outcome.handed = self.refill(recipient);
                // The new event is the last of the backlog.
                outcome.queued = !self.backlog.is_empty();
                outcome.delivered = !outcome.queued;
            }
        }
        outcome
    }

    /// Hands the backlog on while there is room; returns how many events.
    pub(crate) fn refill(&mut self, recipient: &Recipient<Delivery>) -> usize {
        let mut handed = 0;
        loop {
            while self.has_room() {
                let Some(next) = self.backlog.pop_front() else {
                    return handed;
                };
                self.hand_on(recipient, next);
                handed += 1;
            }
            if self.backlog.is_empty() {
                return handed;
            }

            // Full with a backlog: ask the last ticket to wake us, then look
            // again in case every ticket was dropped in between.
            self.shared.waiting.store(true, Ordering::SeqCst);
            if !self.has_room() {
                return handed;
            }
            self.shared.waiting.store(false, Ordering::SeqCst);
        }
    }

    /// Events waiting in the backlog.
    pub(crate) fn backlog_len(&self) -> usize {
        self.backlog.len()
    }
}
