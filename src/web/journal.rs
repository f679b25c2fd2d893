//! The resume journal: the last events of every streamed topic, kept so a
//! client that reconnects can be sent what it missed.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use uuid::Uuid;

use crate::broker::{Subscribe, SubscribeError, TopicBroker, Unsubscribe, UnsubscribeAll};
use crate::delivery::{Delivery, SubscriberId, SubscriptionId};
use crate::event::ProjectsEvent;
use crate::topic::Topic;

/// One actor per [`EventStream`](super::EventStream).
///
/// While at least one connection streams a topic, the journal is itself a
/// subscriber of that topic. That keeps the broker's topic alive, so the
/// broker's sequence numbers of the topic only grow for as long as the
/// journal follows it: one *epoch*. After the last connection of a topic
/// leaves, the journal keeps following it for the resume window, then lets
/// it go; following it again starts a new epoch.
pub(crate) struct Journal {
    broker: Addr<TopicBroker>,
    capacity: usize,
    window: Duration,
    max_topics: usize,
    topics: HashMap<Topic, Entry>,
    me: Option<SubscriberId>,
}

struct Entry {
    epoch: u64,
    subscription: SubscriptionId,
    events: VecDeque<(u64, Arc<ProjectsEvent>)>,
    head: u64,
    // The newest sequence number pushed out of the buffer, if any.
    dropped_through: Option<u64>,
    leases: usize,
    // When the last lease went, while none is held; it also names the idle
    // spell, so that an expiry timer set for an earlier one does nothing.
    idle_since: Option<Instant>,
}

impl Journal {
    pub(crate) fn new(
        broker: Addr<TopicBroker>,
        capacity: usize,
        window: Duration,
        max_topics: usize,
    ) -> Journal {
        Journal {
            broker,
            capacity,
            window,
            max_topics,
            topics: HashMap::new(),
            me: None,
        }
    }

    /// Makes room for one more topic by letting the longest idle one go;
    /// false when every followed topic is in use.
    fn make_room(&mut self) -> bool {
        if self.topics.len() < self.max_topics {
            return true;
        }
        let oldest = self
            .topics
            .iter()
            .filter_map(|(topic, entry)| entry.idle_since.map(|since| (since, topic)))
            .min_by_key(|(since, _)| *since)
            .map(|(_, topic)| topic.clone());
        match oldest {
            Some(topic) => {
                self.forget(&topic);
                true
            }
            None => false,
        }
    }

    fn forget(&mut self, topic: &Topic) {
        if let Some(entry) = self.topics.remove(topic) {
            self.broker.do_send(Unsubscribe(entry.subscription));
            log::debug!(
                "resume journal let {topic} go (epoch {:016x}, {} events dropped)",
                entry.epoch,
                entry.events.len()
            );
        }
    }

    fn expire(&mut self, topic: &Topic, since: Instant) {
        let idle = self
            .topics
            .get(topic)
            .is_some_and(|entry| entry.idle_since == Some(since));
        if idle {
            self.forget(topic);
        }
    }
}

fn new_epoch() -> u64 {
    Uuid::new_v4().as_u64_pair().0
}

impl Actor for Journal {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(SubscriberId::of_addr(&ctx.address()));
        log::debug!(
            "resume journal started ({} events per topic, window {:?})",
            self.capacity,
            self.window
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(me) = self.me {
            self.broker.do_send(UnsubscribeAll(me));
        }
        log::debug!("resume journal stopped");
    }
}

/// Starts following a topic for one connection (or counts one more).
pub(crate) struct Track(pub(crate) Topic);

/// Where a followed topic stands.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tracked {
    pub(crate) epoch: u64,
    pub(crate) head: u64,
    /// False when resume is off or the journal is full: the epoch is then
    /// the connection's own, and no position in it can be resumed.
    pub(crate) journaled: bool,
}

impl Tracked {
    /// A position of the connection's own, in an epoch nobody else has.
    fn untracked() -> Tracked {
        Tracked {
            epoch: new_epoch(),
            head: 0,
            journaled: false,
        }
    }
}

impl Message for Track {
    type Result = Result<Tracked, SubscribeError>;
}

impl Handler<Track> for Journal {
    type Result = AtomicResponse<Self, Result<Tracked, SubscribeError>>;

    fn handle(&mut self, Track(topic): Track, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(entry) = self.topics.get_mut(&topic) {
            entry.leases += 1;
            entry.idle_since = None;
            let tracked = Tracked {
                epoch: entry.epoch,
                head: entry.head,
                journaled: true,
            };
            return AtomicResponse::new(Box::pin(fut::ready(Ok(tracked))));
        }
        if self.capacity == 0 || !self.make_room() {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(Tracked::untracked()))));
        }

        // Atomic: no delivery is handled before the entry exists, so the
        // epoch holds every event published after the subscription.
        let subscribe = self
            .broker
            .send(Subscribe::new(topic.clone(), ctx.address().recipient()));
        AtomicResponse::new(Box::pin(subscribe.into_actor(self).map(
            move |reply, journal, _| {
                let subscription = match reply {
                    Ok(Ok(id)) => id,
                    Ok(Err(err)) => return Err(err),
                    Err(err) => {
                        log::debug!("resume journal could not reach the broker: {err}");
                        return Ok(Tracked::untracked());
                    }
                };
                let epoch = new_epoch();
                log::debug!("resume journal follows {topic} (epoch {epoch:016x})");
                journal.topics.insert(
                    topic,
                    Entry {
                        epoch,
                        subscription,
                        events: VecDeque::new(),
                        head: 0,
                        dropped_through: None,
                        leases: 1,
                        idle_since: None,
                    },
                );
                Ok(Tracked {
                    epoch,
                    head: 0,
                    journaled: true,
                })
            },
        )))
    }
}

/// One connection stopped streaming a topic.
pub(crate) struct Release {
    pub(crate) topic: Topic,
    pub(crate) epoch: u64,
}

impl Message for Release {
    type Result = ();
}

impl Handler<Release> for Journal {
    type Result = ();

    fn handle(&mut self, Release { topic, epoch }: Release, ctx: &mut Context<Self>) {
        let Some(entry) = self.topics.get_mut(&topic) else {
            return;
        };
        if entry.epoch != epoch || entry.leases == 0 {
            return;
        }
        entry.leases -= 1;
        if entry.leases > 0 {
            return;
        }

        let since = Instant::now();
        entry.idle_since = Some(since);
        if self.window.is_zero() {
            self.expire(&topic, since);
        } else {
            ctx.run_later(self.window, move |journal, _| journal.expire(&topic, since));
        }
    }
}

/// Asks what a topic carried after a position.
pub(crate) struct Since {
    pub(crate) topic: Topic,
    pub(crate) epoch: u64,
    /// `None` when the client holds no position in this epoch.
    pub(crate) after: Option<u64>,
}

/// The answer to [`Since`].
pub(crate) enum SinceReply {
    /// Every event after the position, oldest first.
    Replay(Vec<(u64, Arc<ProjectsEvent>)>),
    /// The position is not in the journal; `head` is where the topic
    /// stands now (0 when the journal does not follow it).
    Gone { head: u64 },
}

impl Message for Since {
    type Result = SinceReply;
}

impl Handler<Since> for Journal {
    type Result = MessageResult<Since>;

    fn handle(&mut self, since: Since, _: &mut Context<Self>) -> Self::Result {
        let Some(entry) = self
            .topics
            .get(&since.topic)
            .filter(|entry| entry.epoch == since.epoch)
        else {
            return MessageResult(SinceReply::Gone { head: 0 });
        };

        let gone = SinceReply::Gone { head: entry.head };
        let Some(after) = since.after else {
            return MessageResult(gone);
        };
        if entry.dropped_through.is_some_and(|dropped| after < dropped) {
            return MessageResult(gone);
        }
        let events = entry
            .events
            .iter()
            .filter(|(seq, _)| *seq > after)
            .cloned()
            .collect();
        MessageResult(SinceReply::Replay(events))
    }
}

impl Handler<Delivery> for Journal {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
        let Some(entry) = self.topics.get_mut(delivery.topic()) else {
            return;
        };

        if delivery.seq() <= entry.head {
            // Only a delivery left over from an earlier subscription of this
            // topic can go back. The epoch's history can no longer be
            // trusted, so every resume in it reloads from now on.
            log::debug!(
                "resume journal saw {} go back to #{}: its epoch no longer resumes",
                delivery.topic(),
                delivery.seq()
            );
            entry.events.clear();
            entry.dropped_through = Some(u64::MAX);
            return;
        }

        log::trace!(
            "resume journal keeps #{} of {}",
            delivery.seq(),
            delivery.topic()
        );
        entry.head = delivery.seq();
        entry
            .events
            .push_back((delivery.seq(), delivery.shared_event()));
        while entry.events.len() > self.capacity {
            if let Some((seq, _)) = entry.events.pop_front() {
                entry.dropped_through = Some(seq);
            }
        }
    }
}

/// A connection's hold on one followed topic; released when dropped.
pub(crate) struct Lease {
    journal: Addr<Journal>,
    topic: Topic,
    epoch: u64,
}

impl Lease {
    pub(crate) fn new(journal: Addr<Journal>, topic: Topic, epoch: u64) -> Lease {
        Lease {
            journal,
            topic,
            epoch,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.journal.do_send(Release {
            topic: self.topic.clone(),
            epoch: self.epoch,
        });
    }
}
