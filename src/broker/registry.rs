//! The subscription table the broker actor owns.
//!
//! Kept apart from the actor so the rules of the table (idempotent
//! subscribe, pruning, overflow bounds) read without actix plumbing.
//!
//! # Layout
//!
//! Each topic with subscribers has an entry in a slab, `entries`, found by
//! its place. The three unscoped topics nearly every mutation goes to
//! (`projects:all`, `projects:tasks`, `projects:templates`) have their
//! places in fixed fields, so publishing to them hashes nothing; unscoped
//! project topics are found by their uuid as one 128-bit key, and every
//! other topic through a map keyed by the topic. Subscriptions name their
//! topic by its place: the index of subscriptions and the list of each
//! subscriber hold no topic values, and an idempotent subscribe compares
//! places in the subscriber's own short list rather than looking up each of
//! its subscriptions.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use actix::{Recipient, WeakRecipient};
use smallvec::SmallVec;

use super::flow::{Flow, Refill};
use super::messages::{BrokerStats, PublishReceipt, SubscribeOptions};
use crate::delivery::{Delivery, Published, SubscriberId, SubscriptionId};
use crate::event::ProjectsEvent;
use crate::topic::{Topic, TopicKind};

/// Where a topic's entry lives in [`Registry::entries`].
type Place = u32;

/// A map keyed by the registry's own ids, with [`IdHasher`].
type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Hashes the registry's integer keys.
///
/// Subscription ids are counted by this process and subscriber ids are
/// mailbox addresses: no client chooses them, so they need none of the
/// keyed SipHash that guards maps keyed by outside input against collision
/// attacks. Topics, which clients name, keep `std`'s hasher.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached: both id types hash a single u64.
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        // A folded 128-bit product spreads sequential ids and aligned
        // addresses over the high bits (the map's tags) and the low bits
        // (its buckets) alike.
        let wide =
            u128::from(self.0 ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        self.0 = (wide as u64) ^ ((wide >> 64) as u64);
    }
}

/// Every subscription of one broker, by topic.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Vec<Option<TopicEntry>>,
    // Places in `entries` that hold no topic, for reuse.
    vacant: Vec<Place>,
    // The places of `projects:all`, `projects:tasks`, `projects:templates`.
    fixed: [Option<Place>; 3],
    // The places of unscoped project topics, by uuid. Clients name these,
    // so the map keeps `std`'s keyed hasher; one 128-bit key hashes in
    // about a third of the time the whole topic takes.
    projects: HashMap<u128, Place>,
    // The places of every other topic.
    places: HashMap<Topic, Place>,
    index: IdMap<SubscriptionId, Owner>,
    by_subscriber: IdMap<SubscriberId, SmallVec<[(SubscriptionId, Place); 2]>>,
    // Topics whose slots may cache a strong recipient; see `release`.
    hot: Vec<Place>,
    // Where the tickets of backlogged subscriptions ask for a refill: the
    // broker's own address, set when it starts.
    pub(crate) wake: Option<WeakRecipient<Refill>>,
    pub(crate) stats: BrokerStats,
}

/// Where a subscription lives: its topic's place, and its subscriber, who
/// has one slot at most per topic.
#[derive(Clone, Copy)]
struct Owner {
    place: Place,
    subscriber: SubscriberId,
}

struct TopicEntry {
    topic: Topic,
    seq: u64,
    hot: bool,
    slots: Vec<Slot>,
}

struct Slot {
    subscriber: SubscriberId,
    weak: WeakRecipient<Delivery>,
    // Held for a while after a publish, so that a stream of publishes does
    // not upgrade the weak recipient once per event. Dropped when the
    // broker's hold ends, so an actor whose own addresses are gone can
    // stop.
    strong: Option<Recipient<Delivery>>,
    flow: Option<Box<Flow>>,
}

impl Slot {
    /// Events waiting in this subscription's backlog; they are lost when
    /// the slot goes.
    fn backlog_len(&self) -> u64 {
        self.flow
            .as_deref()
            .map_or(0, |flow| flow.backlog_len() as u64)
    }
}

/// The recipient to hand events to, if the subscriber still runs: the
/// cached one, or the weak one upgraded (and cached).
fn live<'a>(
    strong: &'a mut Option<Recipient<Delivery>>,
    weak: &WeakRecipient<Delivery>,
) -> Option<&'a Recipient<Delivery>> {
    if strong.is_none() {
        *strong = weak.upgrade();
    }
    strong.as_ref().filter(|recipient| recipient.connected())
}

/// How the registry finds a topic's place.
enum Key<'a> {
    /// An unscoped `all`, `tasks` or `templates` topic: its fixed field.
    Fixed(usize),
    /// An unscoped project topic: its uuid.
    Project(u128),
    /// Any other topic.
    Other(&'a Topic),
}

fn key(topic: &Topic) -> Key<'_> {
    if topic.org().is_some() {
        return Key::Other(topic);
    }
    match topic.kind() {
        TopicKind::All => Key::Fixed(0),
        TopicKind::Tasks => Key::Fixed(1),
        TopicKind::Templates => Key::Fixed(2),
        TopicKind::Project(uuid) => Key::Project(uuid.as_u128()),
        _ => Key::Other(topic),
    }
}

impl Registry {
    fn place_of(&self, topic: &Topic) -> Option<Place> {
        match key(topic) {
            Key::Fixed(field) => self.fixed[field],
            Key::Project(uuid) => self.projects.get(&uuid).copied(),
            Key::Other(topic) => self.places.get(topic).copied(),
        }
    }

    fn entry_mut(&mut self, place: Place) -> Option<&mut TopicEntry> {
        self.entries.get_mut(place as usize)?.as_mut()
    }

    fn add_topic(&mut self, topic: Topic) -> Place {
        let place = self.vacant.pop().unwrap_or_else(|| {
            self.entries.push(None);
            (self.entries.len() - 1) as Place
        });
        match key(&topic) {
            Key::Fixed(field) => self.fixed[field] = Some(place),
            Key::Project(uuid) => {
                self.projects.insert(uuid, place);
            }
            Key::Other(topic) => {
                self.places.insert(topic.clone(), place);
            }
        }
        self.entries[place as usize] = Some(TopicEntry {
            topic,
            seq: 0,
            hot: false,
            slots: Vec::new(),
        });
        place
    }

    /// Drops the entry at `place`, whose last subscription has gone.
    fn drop_topic(&mut self, place: Place) {
        let Some(entry) = self.entries.get_mut(place as usize).and_then(Option::take) else {
            return;
        };
        match key(&entry.topic) {
            Key::Fixed(field) => self.fixed[field] = None,
            Key::Project(uuid) => {
                self.projects.remove(&uuid);
            }
            Key::Other(topic) => {
                self.places.remove(topic);
            }
        }
        self.vacant.push(place);
    }

    /// Adds a subscription, or returns the existing one of the same
    /// subscriber on the same topic.
    pub(crate) fn subscribe(
        &mut self,
        topic: Topic,
        recipient: Recipient<Delivery>,
        options: &SubscribeOptions,
    ) -> SubscriptionId {
        let subscriber = SubscriberId::of(&recipient);
        // A topic made here is new, so the subscriber cannot be on it yet.
        let place = match self.place_of(&topic) {
            Some(place) => place,
            None => self.add_topic(topic),
        };
        let ids = self.by_subscriber.entry(subscriber).or_default();
        if let Some(&(existing, _)) = ids.iter().find(|(_, at)| *at == place) {
            return existing;
        }
        let id = SubscriptionId::next();
        ids.push((id, place));

        let flow = options.bound.map(|bound| {
            Box::new(Flow::new(
                id,
                bound.get(),
                options.overflow,
                self.wake.clone(),
            ))
        });
        let slot = Slot {
            subscriber,
            weak: recipient.downgrade(),
            strong: None,
            flow,
        };

        if let Some(entry) = self.entry_mut(place) {
            // Half again rather than twice: a topic's list keeps less room
            // it may never use, for a few more moves as it grows.
            let slots = &mut entry.slots;
            if slots.len() == slots.capacity() {
                slots.reserve_exact((slots.len() / 2).max(4));
            }
            slots.push(slot);
        }
        self.index.insert(id, Owner { place, subscriber });
        self.stats.subscriptions_added += 1;
        id
    }

    /// Removes one subscription; false when the id is unknown.
    pub(crate) fn unsubscribe(&mut self, id: SubscriptionId) -> bool {
        let Some(owner) = self.index.remove(&id) else {
            return false;
        };

        self.remove_slot(owner);
        self.forget(owner.subscriber, id);
        self.stats.subscriptions_removed += 1;
        true
    }

    /// Removes every subscription of one subscriber; returns how many.
    pub(crate) fn unsubscribe_all(&mut self, subscriber: SubscriberId) -> usize {
        let ids = self.by_subscriber.remove(&subscriber).unwrap_or_default();
        let mut removed = 0;
        for (id, _) in ids {
            let Some(owner) = self.index.remove(&id) else {
                continue;
            };
            self.remove_slot(owner);
            self.stats.subscriptions_removed += 1;
            removed += 1;
        }
        removed
    }

    /// Removes the slot of `owner`, and its topic if it was the last.
    fn remove_slot(&mut self, owner: Owner) {
        let Some(entry) = self.entry_mut(owner.place) else {
            return;
        };
        let Some(at) = entry
            .slots
            .iter()
            .position(|slot| slot.subscriber == owner.subscriber)
        else {
            return;
        };

        let slot = entry.slots.swap_remove(at);
        let empty = entry.slots.is_empty();
        self.stats.undeliverable += slot.backlog_len();
        if empty {
            self.drop_topic(owner.place);
        }
    }

    /// Forgets that `subscriber` holds subscription `id`.
    fn forget(&mut self, subscriber: SubscriberId, id: SubscriptionId) {
        if let Some(ids) = self.by_subscriber.get_mut(&subscriber) {
            ids.retain(|(known, _)| *known != id);
            if ids.is_empty() {
                self.by_subscriber.remove(&subscriber);
            }
        }
    }

    /// Forgets the subscription of `subscriber` on the topic at `place`;
    /// returns its id.
    fn forget_place(&mut self, subscriber: SubscriberId, place: Place) -> Option<SubscriptionId> {
        let ids = self.by_subscriber.get_mut(&subscriber)?;
        let at = ids.iter().position(|(_, known)| *known == place)?;
        let (id, _) = ids.swap_remove(at);
        if ids.is_empty() {
            self.by_subscriber.remove(&subscriber);
        }
        self.index.remove(&id);
        Some(id)
    }

    /// Hands `event` to every live subscriber of `topic` except `exclude`.
    pub(crate) fn publish(
        &mut self,
        topic: &Topic,
        event: &Arc<ProjectsEvent>,
        exclude: Option<SubscriberId>,
    ) -> PublishReceipt {
        self.stats.publishes += 1;
        let Some(place) = self.place_of(topic) else {
            return PublishReceipt::default();
        };
        let Some(Some(entry)) = self.entries.get_mut(place as usize) else {
            return PublishReceipt::default();
        };

        entry.seq += 1;
        let published = Arc::new(Published::new(topic.clone(), entry.seq, Arc::clone(event)));
        if !entry.hot {
            entry.hot = true;
            self.hot.push(place);
        }

        let mut receipt = PublishReceipt {
            seq: entry.seq,
            ..PublishReceipt::default()
        };
        let mut dead: SmallVec<[usize; 4]> = SmallVec::new();
        let mut handed = 0u64;
        let mut missed = 0u64;
        let mut overflowed = 0u64;
        for (at, slot) in entry.slots.iter_mut().enumerate() {
            if exclude == Some(slot.subscriber) {
                receipt.excluded += 1;
                continue;
            }
            let Some(recipient) = live(&mut slot.strong, &slot.weak) else {
                dead.push(at);
                continue;
            };

            let Some(flow) = slot.flow.as_deref_mut() else {
                recipient.do_send(Delivery::new(Arc::clone(&published), 0, None, false));
                receipt.delivered += 1;
                handed += 1;
                continue;
            };
            let outcome = flow.offer(recipient, &published);
            receipt.delivered += usize::from(outcome.delivered);
            receipt.queued += usize::from(outcome.queued);
            receipt.missed += outcome.missed;
            handed += outcome.handed as u64;
            missed += outcome.missed as u64;
            if outcome.unsubscribe {
                overflowed += 1;
                dead.push(at);
            }
        }

        let offered = entry.slots.len() - receipt.excluded;
        let stats = &mut self.stats;
        stats.offered += offered as u64;
        stats.deliveries += handed;
        stats.missed_overflow += missed;
        stats.overflow_unsubscribed += overflowed;
        // Every dead slot but the overflowed ones had a stopped subscriber.
        stats.undeliverable += dead.len() as u64 - overflowed;
        log::trace!(
            "published #{} on {topic} to {} subscribers",
            entry.seq,
            receipt.delivered
        );

        if !dead.is_empty() {
            self.remove_slots(place, &dead);
        }
        receipt
    }

    /// Hands on what waits in one subscription's backlog, as far as its
    /// bound allows.
    pub(crate) fn refill(&mut self, id: SubscriptionId) {
        let Some(owner) = self.index.get(&id).copied() else {
            return;
        };
        let Some(Some(entry)) = self.entries.get_mut(owner.place as usize) else {
            return;
        };
        let Some(slot) = entry
            .slots
            .iter_mut()
            .find(|slot| slot.subscriber == owner.subscriber)
        else {
            return;
        };

        if !entry.hot {
            entry.hot = true;
            self.hot.push(owner.place);
        }
        let Some(recipient) = live(&mut slot.strong, &slot.weak) else {
            return;
        };
        if let Some(flow) = slot.flow.as_deref_mut() {
            self.stats.deliveries += flow.refill(recipient) as u64;
        }
    }

    /// Events waiting in every backlog.
    pub(crate) fn backlog(&self) -> u64 {
        let entries = self.entries.iter().flatten();
        entries
            .flat_map(|entry| &entry.slots)
            .map(Slot::backlog_len)
            .sum()
    }

    /// Removes the slots at `positions` (ascending) of the topic at `place`.
    fn remove_slots(&mut self, place: Place, positions: &[usize]) {
        let Some(entry) = self.entry_mut(place) else {
            return;
        };

        let mut removed: SmallVec<[SubscriberId; 4]> = SmallVec::new();
        let mut lost = 0;
        for &at in positions.iter().rev() {
            let slot = entry.slots.swap_remove(at);
            lost += slot.backlog_len();
            removed.push(slot.subscriber);
        }
        let empty = entry.slots.is_empty();
        let topic = entry.topic.clone();
        self.stats.undeliverable += lost;

        for subscriber in removed {
            if let Some(id) = self.forget_place(subscriber, place) {
                log::debug!(
                    "pruned subscription {id} on {topic}: subscriber stopped or overflowed"
                );
            }
            self.stats.subscriptions_pruned += 1;
        }
        if empty {
            self.drop_topic(place);
        }
    }

    /// Drops every cached strong recipient, so idle subscribers whose
    /// addresses are gone can stop.
    pub(crate) fn release(&mut self) {
        for place in self.hot.drain(..) {
            let Some(Some(entry)) = self.entries.get_mut(place as usize) else {
                continue;
            };
            entry.hot = false;
            for slot in &mut entry.slots {
                slot.strong = None;
            }
        }
    }

    pub(crate) fn has_hot(&self) -> bool {
        !self.hot.is_empty()
    }

    /// Removes the dead subscriptions of `topic`; returns how many.
    pub(crate) fn prune_topic(&mut self, topic: &Topic) -> usize {
        match self.place_of(topic) {
            Some(place) => self.prune_place(place),
            None => 0,
        }
    }

    fn prune_place(&mut self, place: Place) -> usize {
        let Some(entry) = self.entry_mut(place) else {
            return 0;
        };

        let hot = entry.hot;
        let dead: SmallVec<[usize; 4]> = entry
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(at, slot)| {
                let alive = live(&mut slot.strong, &slot.weak).is_some();
                // A liveness check must not leave a strong reference behind
                // on a topic that is not in the hot list.
                if !hot {
                    slot.strong = None;
                }
                (!alive).then_some(at)
            })
            .collect();
        let count = dead.len();
        if count > 0 {
            self.remove_slots(place, &dead);
        }
        count
    }

    /// Removes the dead subscriptions of every topic; returns how many.
    ///
    /// Also gives back the memory of tables that grew for many more
    /// subscriptions than remain, so a burst of subscribers that come and
    /// go leaves no lasting footprint.
    pub(crate) fn sweep(&mut self) -> usize {
        let mut pruned = 0;
        for place in 0..self.entries.len() {
            pruned += self.prune_place(place as Place);
        }
        self.shrink();
        pruned
    }

    fn shrink(&mut self) {
        // Only far beyond need, so a table whose size swings with the
        // traffic is not given back and grown again at every sweep.
        fn oversized(len: usize, capacity: usize) -> bool {
            capacity > 64 && capacity > len * 8
        }

        if oversized(self.index.len(), self.index.capacity()) {
            self.index.shrink_to(self.index.len() * 2);
        }
        if oversized(self.by_subscriber.len(), self.by_subscriber.capacity()) {
            self.by_subscriber.shrink_to(self.by_subscriber.len() * 2);
        }
        if oversized(self.projects.len(), self.projects.capacity()) {
            self.projects.shrink_to(self.projects.len() * 2);
        }
        if oversized(self.places.len(), self.places.capacity()) {
            self.places.shrink_to(self.places.len() * 2);
        }
        while let Some(None) = self.entries.last() {
            self.entries.pop();
        }
        let used = self.entries.len();
        self.vacant.retain(|place| (*place as usize) < used);
        if oversized(used, self.entries.capacity()) {
            self.entries.shrink_to(used * 2);
            self.vacant.shrink_to(used);
        }
        if oversized(self.hot.len(), self.hot.capacity()) {
            self.hot.shrink_to(self.hot.len() * 2);
        }
    }

    pub(crate) fn subscriber_count(&mut self, topic: &Topic) -> usize {
        self.prune_topic(topic);
        match self.place_of(topic) {
            Some(place) => self.entry_mut(place).map_or(0, |entry| entry.slots.len()),
            None => 0,
        }
    }

    pub(crate) fn topic_count(&self) -> usize {
        self.places.len() + self.projects.len() + self.fixed.iter().flatten().count()
    }

    pub(crate) fn subscription_count(&self) -> usize {
        self.index.len()
    }
}
