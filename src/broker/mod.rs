//! The [`TopicBroker`] actor: subscriber lists per topic, and delivery.

mod flow;
mod messages;
mod registry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use flow::Refill;
pub(crate) use flow::Ticket;
pub use messages::{
    BrokerStats, GetStats, Overflow, Publish, PublishError, PublishReceipt, Relayed, Restart,
    SetRelay, Subscribe, SubscribeError, SubscribeOptions, SubscriberCount, TopicCount,
    Unsubscribe, UnsubscribeAll,
};
pub(crate) use messages::{Fanout, FanoutBatch, Reply};
use registry::Registry;

use crate::event::ProjectsEvent;
use crate::mutation::Targets;
use crate::notifier::NotifyReceipt;
use crate::service::service_arbiter;
use crate::topic::Topic;

/// How a [`TopicBroker`] behaves.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use projects_pubsub::BrokerConfig;
///
/// let config = BrokerConfig::default().tenant_mode(true).sweep_interval(Duration::from_secs(5));
/// assert!(config.is_tenant_mode());
/// ```
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    tenant_mode: bool,
    sweep_interval: Duration,
    hold: Duration,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            tenant_mode: false,
            sweep_interval: Duration::from_secs(1),
            hold: BrokerConfig::DEFAULT_HOLD,
        }
    }
}

impl BrokerConfig {
    /// In tenant mode every topic must carry an organisation scope; a
    /// subscribe or publish without one is refused with a typed error.
    /// Off by default, which matches the original's global topics.
    pub fn tenant_mode(mut self, on: bool) -> BrokerConfig {
        self.tenant_mode = on;
        self
    }

    /// Whether tenant mode is on.
    pub fn is_tenant_mode(&self) -> bool {
        self.tenant_mode
    }

    /// How often the broker looks for subscribers that stopped on topics
    /// nobody publishes to (busy topics are pruned as they publish).
    /// One second by default; zero turns the sweep off.
    pub fn sweep_interval(mut self, every: Duration) -> BrokerConfig {
        self.sweep_interval = every;
        self
    }

    /// How long [`BrokerConfig::hold`] is by default: 10 ms.
    pub const DEFAULT_HOLD: Duration = Duration::from_millis(10);

    /// How long the broker may keep the strong addresses of the
    /// subscribers it delivered to before it lets go of them.
    ///
    /// The broker holds subscribers weakly; turning a weak address into
    /// one it can send to costs about as much as a delivery, so it keeps
    /// the strong ones for a while. An actor whose own addresses are all
    /// dropped can stop only once the broker lets go too: about this long
    /// later (10 ms by default), however busy the broker is.
    ///
    /// One case takes longer: an actor that keeps receiving events may be
    /// taken again by the next delivery before actix has stopped it, and
    /// then stops at the end of a later hold (in a test with a thousand
    /// publishes to its topic in flight, 4 to 150 ms after the drop).
    ///
    /// Zero lets go whenever the broker's mailbox is empty: quicker to
    /// release when traffic pauses, slower to deliver when events come in
    /// small bursts, and never under a stream that keeps the mailbox busy.
    pub fn hold(mut self, hold: Duration) -> BrokerConfig {
        self.hold = hold;
        self
    }
}

/// The actor that holds the subscriber lists per topic and hands each
/// published event to every subscriber of its topic.
///
/// # Where it runs
///
/// The default instance, [`TopicBroker::from_registry`], runs on an
/// arbiter (a thread) of its own, shared with the default
/// [`ProjectsNotifier`](crate::ProjectsNotifier): a subscriber that blocks
/// its thread, or panics, cannot stall or stop the broker. Explicit
/// instances run wherever they are started (`TopicBroker::default().start()`
/// runs on the current arbiter), so tests and applications can run several
/// side by side.
///
/// # Delivery
///
/// A publish hands the event, shared behind an `Arc`, to each subscriber
/// with `do_send`: the broker never waits for a subscriber. Events from one
/// sender reach each subscriber in the order they were sent.
///
/// The broker holds subscribers weakly. It caches the strong recipients it
/// delivers to so a stream of events does not re-resolve them per event,
/// and lets go of them at most [`BrokerConfig::hold`] (10 ms by default)
/// after taking them: an actor whose last address is dropped stops then,
/// and its subscriptions are pruned at the next publish, query or sweep.
///
/// # Examples
///
/// ```
/// use actix::prelude::*;
/// use projects_pubsub::{Delivery, Publish, Subscribe, SubscriberCount, Topic, TopicBroker};
/// # use projects_pubsub::{EventName, Payload, ProjectsEvent, TaskPayload};
///
/// struct Library(u32);
///
/// impl Actor for Library {
///     type Context = Context<Self>;
/// }
///
/// impl Handler<Delivery> for Library {
///     type Result = ();
///     fn handle(&mut self, _: Delivery, _: &mut Context<Self>) {
///         self.0 += 1;
///     }
/// }
///
/// # actix::System::new().block_on(async {
/// let broker = TopicBroker::default().start();
/// let library = Library(0).start();
/// // The broker holds subscribers weakly: keep `library` while it should live.
/// let subscribe = Subscribe::new(Topic::tasks(), library.clone().recipient());
/// broker.send(subscribe).await.unwrap().unwrap();
/// assert_eq!(broker.send(SubscriberCount(Topic::tasks())).await.unwrap(), 1);
///
/// # let task = TaskPayload { uuid: uuid::Uuid::nil(), title: "Paint".into() };
/// # let event = ProjectsEvent::new(EventName::TaskCreated, Payload::Task(task));
/// let receipt = broker.send(Publish::new(Topic::tasks(), event)).await.unwrap().unwrap();
/// assert_eq!(receipt.delivered, 1);
/// # });
/// ```
#[derive(Default)]
pub struct TopicBroker {
    config: BrokerConfig,
    registry: Registry,
    relay: Option<Recipient<Relayed>>,
    release_scheduled: bool,
    // When the broker last started caching strong recipients, and how many
    // handlers ran since; see `schedule_release`.
    hot_since: Option<Instant>,
    hot_handlers: u32,
    // Raised by the first refused unscoped fan-out, so the warning is
    // logged once per incident; lowered by the next accepted one.
    refusing_unscoped: bool,
}

impl TopicBroker {
    /// A broker with the given configuration; start it with
    /// [`Actor::start`].
    pub fn new(config: BrokerConfig) -> TopicBroker {
        TopicBroker {
            config,
            ..TopicBroker::default()
        }
    }

    /// Hands a publish that was delivered here to the relay, if one is set.
    fn relay(&self, topics: Targets, event: Arc<ProjectsEvent>) {
        if let Some(relay) = &self.relay {
            relay.do_send(Relayed { topics, event });
        }
    }

    /// Publishes one mutation's event on each of its topics, relays it,
    /// and answers its caller if one waits.
    fn fan_out(&mut self, msg: Fanout) {
        if let Some(topic) = msg.topics.iter().find(|topic| !self.check_scope(topic)) {
            // The notifier checks scopes first; this guards a notifier that
            // runs in global mode in front of a tenant-mode broker.
            if !std::mem::replace(&mut self.refusing_unscoped, true) {
                log::warn!(
                    "refused an unscoped fan-out to {topic}: the broker runs in tenant mode \
                     (a notifier in global mode?); further refusals are logged at debug"
                );
            } else {
                log::debug!("refused an unscoped fan-out to {topic}");
            }
            msg.reply.send(Err(crate::NotifyError::ScopeRequired));
            return;
        }
        self.refusing_unscoped = false;

        let mut receipt = NotifyReceipt::default();
        for topic in &msg.topics {
            receipt += self.registry.publish(topic, &msg.event, msg.exclude).into();
        }
        if !msg.local_only {
            self.relay(msg.topics, msg.event);
        }

        msg.reply.send(Ok(receipt));
    }

    fn check_scope(&self, topic: &Topic) -> bool {
        !self.config.tenant_mode || topic.org().is_some()
    }

    /// Lets go of cached strong recipients once the hold has passed, or,
    /// with no hold, once the mailbox has drained. Every handler calls it.
    ///
    /// actix runs timers and notifications only when the mailbox is empty,
    /// so a stream of messages of any kind that never lets it drain would
    /// hold off the timer for ever; every few handlers the clock is read
    /// here as well.
    fn schedule_release(&mut self, ctx: &mut Context<Self>) {
        if !self.registry.has_hot() {
            return;
        }

        let hold = self.config.hold;
        if hold.is_zero() {
            if !std::mem::replace(&mut self.release_scheduled, true) {
                ctx.notify(Release);
            }
            return;
        }

        match self.hot_since {
            None => {
                self.hot_since = Some(Instant::now());
                self.hot_handlers = 0;
                if !std::mem::replace(&mut self.release_scheduled, true) {
                    ctx.notify_later(Release, hold);
                }
            }
            Some(since) => {
                self.hot_handlers = self.hot_handlers.wrapping_add(1);
                if self.hot_handlers % HOLD_CHECK_EVERY == 0 && since.elapsed() >= hold {
                    log::trace!("hold over while busy: releasing cached recipients");
                    self.release();
                }
            }
        }
    }

    /// Drops every cached strong recipient.
    fn release(&mut self) {
        self.registry.release();
        self.hot_since = None;
    }
}

/// How many busy handlers pass between two readings of the clock for the
/// hold: a reading costs about as much as a quarter of a delivery.
const HOLD_CHECK_EVERY: u32 = 8;

impl Actor for TopicBroker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.registry.wake = Some(ctx.address().downgrade().recipient());
        log::debug!(
            "topic broker started (tenant mode: {})",
            self.config.tenant_mode
        );
        let every = self.config.sweep_interval;
        // A broker that is dropped before it ever ran (its system shutting
        // down) is started while already stopping, when the timer driver
        // may be gone: no sweep then.
        if !every.is_zero() && ctx.state().alive() {
            ctx.run_interval(every, |broker, _| {
                let pruned = broker.registry.sweep();
                if pruned > 0 {
                    log::debug!("sweep pruned {pruned} subscriptions of stopped subscribers");
                }
            });
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        log::debug!("topic broker stopped");
    }
}

impl Supervised for TopicBroker {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The registry lives in the actor value, which a supervisor keeps:
        // every subscription survives the restart.
        self.release_scheduled = false;
        self.hot_since = None;
        log::debug!(
            "topic broker restarting with {} subscriptions",
            self.registry.subscription_count()
        );
    }
}

impl SystemService for TopicBroker {
    fn start_service(_: &ArbiterHandle) -> Addr<TopicBroker> {
        Supervisor::start_in_arbiter(&service_arbiter(), |_| TopicBroker::default())
    }
}

struct Release;

impl Message for Release {
    type Result = ();
}

impl Handler<Release> for TopicBroker {
    type Result = ();

    fn handle(&mut self, _: Release, _: &mut Context<Self>) {
        self.release_scheduled = false;
        self.release();
    }
}

impl Handler<Restart> for TopicBroker {
    type Result = ();

    fn handle(&mut self, _: Restart, ctx: &mut Context<Self>) {
        log::debug!("topic broker restart requested");
        self.release();
        ctx.stop();
    }
}

impl Handler<Refill> for TopicBroker {
    type Result = ();

    fn handle(&mut self, Refill(id): Refill, ctx: &mut Context<Self>) {
        self.registry.refill(id);
        self.schedule_release(ctx);
    }
}

impl Handler<Subscribe> for TopicBroker {
    type Result = Result<crate::SubscriptionId, SubscribeError>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        self.schedule_release(ctx);
        if !self.check_scope(&msg.topic) {
            return Err(SubscribeError::ScopeRequired(msg.topic));
        }
        if !msg.recipient.connected() {
            return Err(SubscribeError::SubscriberGone);
        }

        let topic = msg.topic.clone();
        let id = self
            .registry
            .subscribe(msg.topic, msg.recipient, &msg.options);
        log::debug!("subscription {id} on {topic}");
        Ok(id)
    }
}

impl Handler<Unsubscribe> for TopicBroker {
    type Result = bool;

    fn handle(&mut self, Unsubscribe(id): Unsubscribe, ctx: &mut Context<Self>) -> bool {
        self.schedule_release(ctx);
        let removed = self.registry.unsubscribe(id);
        if removed {
            log::debug!("unsubscribed {id}");
        }
        removed
    }
}

impl Handler<UnsubscribeAll> for TopicBroker {
    type Result = usize;

    fn handle(&mut self, UnsubscribeAll(who): UnsubscribeAll, ctx: &mut Context<Self>) -> usize {
        self.schedule_release(ctx);
        let removed = self.registry.unsubscribe_all(who);
        log::debug!("unsubscribed {who:?} from {removed} topics");
        removed
    }
}

impl Handler<Publish> for TopicBroker {
    type Result = Result<PublishReceipt, PublishError>;

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) -> Self::Result {
        if !self.check_scope(&msg.topic) {
            return Err(PublishError::ScopeRequired(msg.topic));
        }

        let receipt = self.registry.publish(&msg.topic, &msg.event, msg.exclude);
        self.schedule_release(ctx);
        if !msg.local_only {
            self.relay(smallvec::smallvec![msg.topic], msg.event);
        }
        Ok(receipt)
    }
}

impl Handler<Fanout> for TopicBroker {
    type Result = ();

    fn handle(&mut self, msg: Fanout, ctx: &mut Context<Self>) {
        self.fan_out(msg);
        self.schedule_release(ctx);
    }
}

impl Handler<FanoutBatch> for TopicBroker {
    type Result = ();

    fn handle(&mut self, FanoutBatch(batch): FanoutBatch, ctx: &mut Context<Self>) {
        for fanout in batch {
            self.fan_out(fanout);
        }
        self.schedule_release(ctx);
    }
}

impl Handler<SetRelay> for TopicBroker {
    type Result = ();

    fn handle(&mut self, SetRelay(relay): SetRelay, ctx: &mut Context<Self>) {
        self.schedule_release(ctx);
        log::debug!(
            "topic broker relay {}",
            if relay.is_some() { "set" } else { "removed" }
        );
        self.relay = relay;
    }
}

impl Handler<SubscriberCount> for TopicBroker {
    type Result = usize;

    fn handle(
        &mut self,
        SubscriberCount(topic): SubscriberCount,
        ctx: &mut Context<Self>,
    ) -> usize {
        self.schedule_release(ctx);
        self.registry.subscriber_count(&topic)
    }
}

impl Handler<TopicCount> for TopicBroker {
    type Result = usize;

    fn handle(&mut self, _: TopicCount, ctx: &mut Context<Self>) -> usize {
        self.schedule_release(ctx);
        self.registry.sweep();
        self.registry.topic_count()
    }
}

impl Handler<GetStats> for TopicBroker {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, ctx: &mut Context<Self>) -> Self::Result {
        self.schedule_release(ctx);
        let mut stats = self.registry.stats;
        stats.subscriptions = self.registry.subscription_count() as u64;
        stats.topics = self.registry.topic_count() as u64;
        stats.backlog = self.registry.backlog();
        MessageResult(stats)
    }
}
