//! The subscription table the broker actor owns.
//!
//! Kept apart from the actor so the rules of the table (idempotent
//! subscribe, pruning, overflow bounds) read without actix plumbing.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Recipient, WeakRecipient};
use smallvec::SmallVec;

use super::flow::{Flow, Refill};
use super::messages::{BrokerStats, PublishReceipt, SubscribeOptions};
use crate::delivery::{Delivery, Published, SubscriberId, SubscriptionId};
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
    // Where the tickets of backlogged subscriptions ask for a refill: the
    // broker's own address, set when it starts.
    pub(crate) wake: Option<WeakRecipient<Refill>>,
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

impl Slot {
    fn live_sender(&mut self) -> Option<&Recipient<Delivery>> {
        if self.strong.is_none() {
            self.strong = self.weak.upgrade();
        }
        self.strong
            .as_ref()
            .filter(|recipient| recipient.connected())
    }

    /// Events waiting in this subscription's backlog; they are lost when
    /// the slot goes.
    fn backlog_len(&self) -> u64 {
        self.flow
            .as_deref()
            .map_or(0, |flow| flow.backlog_len() as u64)
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
            Box::new(Flow::new(
                id,
                bound.get(),
                options.overflow,
                self.wake.clone(),
            ))
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
                let slot = entry.slots.swap_remove(at);
                self.stats.undeliverable += slot.backlog_len();
                subscriber = Some(slot.subscriber);
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
        let stats = &mut self.stats;
        for (at, slot) in entry.slots.iter_mut().enumerate() {
            if exclude == Some(slot.subscriber) {
                receipt.excluded += 1;
                continue;
            }
            stats.offered += 1;
            if slot.live_sender().is_none() {
                stats.undeliverable += 1;
                dead.push(at);
                continue;
            }
            let Some(recipient) = slot.strong.as_ref() else {
                continue;
            };

            let Some(flow) = slot.flow.as_deref_mut() else {
                recipient.do_send(Delivery::new(Arc::clone(&published), 0, None, false));
                receipt.delivered += 1;
                stats.deliveries += 1;
                continue;
            };
            let outcome = flow.offer(recipient, &published);
            receipt.delivered += usize::from(outcome.delivered);
            receipt.queued += usize::from(outcome.queued);
            receipt.missed += outcome.missed;
            stats.deliveries += outcome.handed as u64;
            stats.missed_overflow += outcome.missed as u64;
            if outcome.unsubscribe {
                stats.overflow_unsubscribed += 1;
                dead.push(at);
            }
        }
        log::trace!(
            "published #{} on {topic} to {} subscribers",
            entry.seq,
            receipt.delivered
        );

        if !dead.is_empty() {
            self.remove_slots(topic, &dead);
        }
        receipt
    }

    /// Hands on what waits in one subscription's backlog, as far as its
    /// bound allows.
    pub(crate) fn refill(&mut self, id: SubscriptionId) {
        let Some(topic) = self.index.get(&id) else {
            return;
        };
        let Some(entry) = self.topics.get_mut(topic) else {
            return;
        };
        let Some(slot) = entry.slots.iter_mut().find(|slot| slot.id == id) else {
            return;
        };

        if !entry.hot {
            entry.hot = true;
            self.hot.push(topic.clone());
        }
        if slot.live_sender().is_none() {
            return;
        }
        if let (Some(recipient), Some(flow)) = (slot.strong.as_ref(), slot.flow.as_deref_mut()) {
            self.stats.deliveries += flow.refill(recipient) as u64;
        }
    }

    /// Events waiting in every backlog.
    pub(crate) fn backlog(&self) -> u64 {
        let waiting = self.topics.values().flat_map(|entry| &entry.slots);
        waiting.map(Slot::backlog_len).sum()
    }

    /// Removes the slots at `positions` (ascending) of `topic`.
    fn remove_slots(&mut self, topic: &Topic, positions: &[usize]) {
        let Some(entry) = self.topics.get_mut(topic) else {
            return;
        };

        let mut removed: SmallVec<[(SubscriptionId, SubscriberId); 4]> = SmallVec::new();
        for &at in positions.iter().rev() {
            let slot = entry.slots.swap_remove(at);
            self.stats.undeliverable += slot.backlog_len();
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
