//! The subscription table the broker actor owns.
//!
//! Kept apart from the actor so the rules of the table (idempotent
//! subscribe, pruning, overflow bounds) read without actix plumbing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::{Recipient, WeakRecipient};
use smallvec::SmallVec;

use super::messages::{BrokerStats, Overflow, PublishReceipt, SubscribeOptions};
use crate::delivery::{Delivery, Published, SubscriberId, SubscriptionId, Ticket};
use crate::event::ProjectsEvent;
use crate::topic::Topic;

/// Every subscription of one broker, by topic.
#[derive(Default)]
pub(crate) struct Registry {
    topics: HashMap<Topic, TopicEntry>,
    index: HashMap<SubscriptionId, Topic>,
    by_subscriber: HashMap<SubscriberId, SmallVec<[SubscriptionId; 2]>>,
    // Topics whose slots cache a strong recipient; see `release`.
    hot: Vec<Topic>,
    pub(crate) stats: BrokerStats,
}

#[derive(Default)]
struct TopicEntry {
    seq: u64,
    hot: bool,
    slots: Vec<Slot>,
}

struct Slot {
    id: SubscriptionId,
    subscriber: SubscriberId,
    weak: WeakRecipient<Delivery>,
    // Held only while the broker is busy, so that a burst of publishes
    // does not upgrade the weak recipient once per event. Dropped when the
    // broker's mailbox drains, so an actor whose own addresses are gone can
    // stop.
    strong: Option<Recipient<Delivery>>,
    flow: Option<Box<Flow>>,
}

struct Flow {
    bound: usize,
    overflow: Overflow,
    queued: Arc<AtomicUsize>,
    missed: u64,
    lagging: bool,
}

enum Offer {
    Delivered,
    Missed,
    Gone,
    Overflowed,
}

impl Slot {
    fn live_sender(&mut self) -> Option<&Recipient<Delivery>> {
        if self.strong.is_none() {
            self.strong = self.weak.upgrade();
        }
        self.strong
            .as_ref()
            .filter(|recipient| recipient.connected())
    }

    /// Offers one publish to a slot whose sender `live_sender` just found.
    fn offer(&mut self, published: &Arc<Published>) -> Offer {
        let Some(recipient) = self.strong.as_ref() else {
            return Offer::Gone;
        };
        let Some(flow) = self.flow.as_deref_mut() else {
            recipient.do_send(Delivery::new(Arc::clone(published), 0, None));
            return Offer::Delivered;
        };

        if flow.queued.load(Ordering::Acquire) >= flow.bound {
            return match flow.overflow {
                Overflow::DropNewest => {
                    flow.missed += 1;
                    if !flow.lagging {
                        flow.lagging = true;
                        log::warn!(
                            "subscription {} on {} is {} events behind its bound; dropping \
                             new events until it catches up",
                            self.id,
                            published.topic,
                            flow.bound
                        );
                    }
                    Offer::Missed
                }
                Overflow::Unsubscribe => {
                    log::warn!(
                        "subscription {} on {} reached its bound of {} events; unsubscribed",
                        self.id,
                        published.topic,
                        flow.bound
                    );
                    Offer::Overflowed
                }
            };
        }

        flow.queued.fetch_add(1, Ordering::AcqRel);
        let ticket = Ticket(Arc::clone(&flow.queued));
        let missed = std::mem::take(&mut flow.missed);
        if flow.lagging {
            flow.lagging = false;
            log::debug!(
                "subscription {} caught up after missing {missed} events",
                self.id
            );
        }
        recipient.do_send(Delivery::new(Arc::clone(published), missed, Some(ticket)));
        Offer::Delivered
    }
}

impl Registry {
    /// Adds a subscription, or returns the existing one of the same
    /// subscriber on the same topic.
    pub(crate) fn subscribe(
        &mut self,
        topic: Topic,
        recipient: Recipient<Delivery>,
        options: &SubscribeOptions,
    ) -> SubscriptionId {
        let subscriber = SubscriberId::of(&recipient);
        if let Some(existing) = self.find(subscriber, &topic) {
            return existing;
        }

        let id = SubscriptionId::next();
        let flow = options.bound.map(|bound| {
            Box::new(Flow {
                bound: bound.get(),
                overflow: options.overflow,
                queued: Arc::new(AtomicUsize::new(0)),
                missed: 0,
                lagging: false,
            })
        });
        let slot = Slot {
            id,
            subscriber,
            weak: recipient.downgrade(),
            strong: None,
            flow,
        };

        self.topics
            .entry(topic.clone())
            .or_default()
            .slots
            .push(slot);
        self.by_subscriber.entry(subscriber).or_default().push(id);
        self.index.insert(id, topic);
        self.stats.subscriptions_added += 1;
        id
    }

    fn find(&self, subscriber: SubscriberId, topic: &Topic) -> Option<SubscriptionId> {
        let ids = self.by_subscriber.get(&subscriber)?;
        ids.iter()
            .copied()
            .find(|id| self.index.get(id) == Some(topic))
    }

    /// Removes one subscription; false when the id is unknown.
    pub(crate) fn unsubscribe(&mut self, id: SubscriptionId) -> bool {
        let Some(topic) = self.index.remove(&id) else {
            return false;
        };

        let mut subscriber = None;
        if let Some(entry) = self.topics.get_mut(&topic) {
            if let Some(at) = entry.slots.iter().position(|slot| slot.id == id) {
                subscriber = Some(entry.slots.swap_remove(at).subscriber);
            }
            if entry.slots.is_empty() {
                self.topics.remove(&topic);
            }
        }
        if let Some(subscriber) = subscriber {
            self.forget_subscriber(subscriber, id);
        }
        self.stats.subscriptions_removed += 1;
        true
    }

    /// Removes every subscription of one subscriber; returns how many.
    pub(crate) fn unsubscribe_all(&mut self, subscriber: SubscriberId) -> usize {
        let ids = self.by_subscriber.remove(&subscriber).unwrap_or_default();
        let mut removed = 0;
        for id in ids {
            // forget_subscriber finds nothing left to forget: the list is gone.
            removed += usize::from(self.unsubscribe(id));
        }
        removed
    }

    fn forget_subscriber(&mut self, subscriber: SubscriberId, id: SubscriptionId) {
        if let Some(ids) = self.by_subscriber.get_mut(&subscriber) {
            ids.retain(|known| *known != id);
            if ids.is_empty() {
                self.by_subscriber.remove(&subscriber);
            }
        }
    }

    /// Hands `event` to every live subscriber of `topic` except `exclude`.
    pub(crate) fn publish(
        &mut self,
        topic: &Topic,
        event: &Arc<ProjectsEvent>,
        exclude: Option<SubscriberId>,
    ) -> PublishReceipt {
        self.stats.publishes += 1;
        let Some(entry) = self.topics.get_mut(topic) else {
            return PublishReceipt::default();
        };

        entry.seq += 1;
        let published = Arc::new(Published {
            topic: topic.clone(),
            seq: entry.seq,
            event: Arc::clone(event),
        });
        if !entry.hot {
            entry.hot = true;
            self.hot.push(topic.clone());
        }

        let mut receipt = PublishReceipt {
            seq: entry.seq,
            ..PublishReceipt::default()
        };
        let mut dead: SmallVec<[usize; 4]> = SmallVec::new();
        for (at, slot) in entry.slots.iter_mut().enumerate() {
            if exclude == Some(slot.subscriber) {
                receipt.excluded += 1;
                continue;
            }
            if slot.live_sender().is_none() {
                dead.push(at);
                continue;
            }
            match slot.offer(&published) {
                Offer::Delivered => receipt.delivered += 1,
                Offer::Missed => receipt.missed += 1,
                Offer::Overflowed => {
                    receipt.missed += 1;
                    self.stats.overflow_unsubscribed += 1;
                    dead.push(at);
                }
                Offer::Gone => dead.push(at),
            }
        }
        log::trace!(
            "published #{} on {topic} to {} subscribers",
            entry.seq,
            receipt.delivered
        );

        self.stats.deliveries += receipt.delivered as u64;
        self.stats.missed_overflow += receipt.missed as u64;
        if !dead.is_empty() {
            self.remove_slots(topic, &dead);
        }
        receipt
    }

    /// Removes the slots at `positions` (ascending) of `topic`.
    fn remove_slots(&mut self, topic: &Topic, positions: &[usize]) {
        let Some(entry) = self.topics.get_mut(topic) else {
            return;
        };

        let mut removed: SmallVec<[(SubscriptionId, SubscriberId); 4]> = SmallVec::new();
        for &at in positions.iter().rev() {
            let slot = entry.slots.swap_remove(at);
            removed.push((slot.id, slot.subscriber));
        }
        if entry.slots.is_empty() {
            self.topics.remove(topic);
        }

        for (id, subscriber) in removed {
            log::debug!("pruned subscription {id} on {topic}: subscriber stopped or overflowed");
            self.index.remove(&id);
            self.forget_subscriber(subscriber, id);
            self.stats.subscriptions_pruned += 1;
        }
    }

    /// Drops every cached strong recipient, so idle subscribers whose
    /// addresses are gone can stop.
    pub(crate) fn release(&mut self) {
        for topic in self.hot.drain(..) {
            if let Some(entry) = self.topics.get_mut(&topic) {
                entry.hot = false;
                for slot in &mut entry.slots {
                    slot.strong = None;
                }
            }
        }
    }

    pub(crate) fn has_hot(&self) -> bool {
        !self.hot.is_empty()
    }

    /// Removes the dead subscriptions of `topic`; returns how many.
    pub(crate) fn prune_topic(&mut self, topic: &Topic) -> usize {
        let Some(entry) = self.topics.get_mut(topic) else {
            return 0;
        };

        let dead: SmallVec<[usize; 4]> = entry
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(at, slot)| {
                let alive = slot.live_sender().is_some();
                // A liveness check must not leave a strong reference behind
                // on a topic that is not in the hot list.
                if !entry.hot {
                    slot.strong = None;
                }
                (!alive).then_some(at)
            })
            .collect();
        let count = dead.len();
        if count > 0 {
            self.remove_slots(topic, &dead);
        }
        count
    }

    /// Removes the dead subscriptions of every topic; returns how many.
    pub(crate) fn sweep(&mut self) -> usize {
        let topics: Vec<Topic> = self.topics.keys().cloned().collect();
        topics.iter().map(|topic| self.prune_topic(topic)).sum()
    }

    pub(crate) fn subscriber_count(&mut self, topic: &Topic) -> usize {
        self.prune_topic(topic);
        self.topics.get(topic).map_or(0, |entry| entry.slots.len())
    }

    pub(crate) fn topic_count(&self) -> usize {
        self.topics.len()
    }

    pub(crate) fn subscription_count(&self) -> usize {
        self.index.len()
    }
}
