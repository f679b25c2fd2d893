//! The [`RedisBridge`] actor: joins one local broker to Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use futures_util::{StreamExt, future, stream};
use redis::aio::PubSubStream;
use redis::{Msg, RedisResult};

use super::config::{BridgeConfig, NodeId, redacted};
use super::error::BridgeError;
use super::link::{self, Link, LinkError, Timing};
use super::messages::{BridgeStats, GapDetected, GetBridgeStats, StopBridge};
use super::outbox::{Outbox, Outgoing};
use super::wire::{self, Encoder, Header, MAX_WIRE_LEN, WireError};
use crate::broker::{Publish, Relayed, SetRelay, TopicBroker};

/// Most messages written to Redis in one pipeline.
const MAX_BATCH: usize = 1024;

/// Most other nodes whose sequence a bridge follows; past that it starts
/// afresh rather than grow without bound on a channel flooded with ids.
const MAX_ORIGINS: usize = 4096;

/// How often a reconnected bridge asks whether the other nodes listen
/// again.
const RESYNC_POLL: Duration = Duration::from_millis(25);

/// The actor that joins a local [`TopicBroker`] to the other nodes of a
/// cluster through Redis pub/sub.
///
/// Start one per node with [`RedisBridge::connect`]. From then on, every
/// event published on the broker that is not local-only goes to Redis, on
/// the channel of its topic, and every event another node publishes comes
/// back from Redis into this broker as a local-only publish, so it reaches
/// this node's subscribers and goes no further. The `cluster` module
/// documentation describes the guarantees and the failure behaviour.
///
/// The bridge runs on the arbiter that called `connect`. The broker holds
/// it: it lives as long as it is the broker's relay, or until it is sent
/// [`StopBridge`].
///
/// # Examples
///
/// ```no_run
/// use actix::prelude::*;
/// use projects_pubsub::TopicBroker;
/// use projects_pubsub::cluster::{BridgeConfig, GetBridgeStats, NodeId, RedisBridge, StopBridge};
///
/// # actix::System::new().block_on(async {
/// let broker = TopicBroker::from_registry();
/// let config = BridgeConfig::new("redis://127.0.0.1:6379/", NodeId::new("web-1").unwrap());
/// let bridge = RedisBridge::connect(broker, config).await.expect("Redis is reachable");
///
/// // Publish and subscribe on the broker as usual: events cross on their own.
///
/// let stats = bridge.send(GetBridgeStats).await.unwrap();
/// assert!(stats.connected);
/// bridge.send(StopBridge).await.unwrap();
/// # });
/// ```
pub struct RedisBridge {
    config: BridgeConfig,
    broker: Addr<TopicBroker>,
    client: redis::Client,
    claim_key: Arc<str>,
    token: Arc<str>,
    pattern: String,
    encoder: Encoder,
    link: Option<Link>,
    stream: Option<SpawnHandle>,
    // Bumped whenever the link goes down or comes up: answers of an older
    // link are recognised by their epoch and ignored.
    epoch: u64,
    state: State,
    outbox: Outbox,
    in_flight: usize,
    // Bridges listening, as Redis last counted them: on the presence
    // channel when linking and at each heartbeat, and as the receivers of
    // each message sent.
    listeners: u64,
    origins: HashMap<NodeId, u64>,
    stats: BridgeStats,
    malformed_warning: Limiter,
    gap_warning: Limiter,
    unsendable_warning: Limiter,
    queue_full_reported: bool,
    down_since: Option<Instant>,
    backoff: Duration,
    released: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Linked, and sending.
    Up,
    /// Linked again after an outage, waiting for the other nodes before
    /// sending the outage queue.
    Resyncing,
    /// Not linked; reconnecting.
    Down,
    /// Detached from the broker, on the way out.
    Stopping,
}

/// One item of the subscriber stream, tagged with the link it came on.
/// `None` marks the end of that link's stream.
pub struct Inbound {
    epoch: u64,
    msg: Option<Msg>,
}

/// Allows one warning per interval and counts the rest.
#[derive(Debug)]
struct Limiter {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Limiter {
    fn new(every: Duration) -> Limiter {
        Limiter {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a warning may go out now, `n` being how many were
    /// held back since the last one.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

fn held_back(count: u64) -> String {
    if count == 0 {
        String::new()
    } else {
        format!(" ({count} more since the last warning)")
    }
}

/// `base`, give or take a quarter, so that nodes do not retry in step.
fn jitter(base: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| now.subsec_nanos());
    let spread = base / 4;
    let share = f64::from(nanos % 1024) / 1024.0;
    base - spread + spread.mul_f64(2.0 * share)
}

impl RedisBridge {
    /// Connects to Redis, claims this node's id, and attaches a new bridge
    /// to `broker` as its relay.
    ///
    /// When this returns `Ok`, the bridge listens to every other node, and
    /// every publish made on `broker` from then on is sent to them. Call it
    /// from inside a running actix system; the bridge runs on the current
    /// arbiter.
    ///
    /// A broker has one relay, so one bridge: stop a bridge with
    /// [`StopBridge`] before connecting another to the same broker (two
    /// bridges would each bring every remote event in).
    ///
    /// # Errors
    ///
    /// - [`BridgeError::Config`] for an inconsistent configuration;
    /// - [`BridgeError::InvalidUrl`] when the address does not parse;
    /// - [`BridgeError::Redis`] or [`BridgeError::Timeout`] when Redis
    ///   cannot be reached;
    /// - [`BridgeError::NodeIdTaken`] when another live node holds this
    ///   node's id under the same prefix;
    /// - [`BridgeError::BrokerGone`] when the broker has stopped.
    ///
    /// Nothing is left behind on an error: the node id is not held.
    pub async fn connect(
        broker: Addr<TopicBroker>,
        config: BridgeConfig,
    ) -> Result<Addr<RedisBridge>, BridgeError> {
        config.validate()?;
        let client = redis::Client::open(config.url.as_str()).map_err(BridgeError::InvalidUrl)?;
        let pattern = wire::pattern(&config.prefix);
        let timing = Timing::of(&config);

        let presence = wire::presence(&config.prefix);
        let (link, stream) =
            link::open(client.clone(), timing, pattern.clone(), presence.clone()).await?;
        let claim_key: Arc<str> = Arc::from(format!("{}:node:{}", config.prefix, config.node));
        let token: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
        if !link::claim(link.conn.clone(), &claim_key, &token, config.node_ttl).await? {
            log::debug!("node id {} is held by another node", config.node);
            return Err(BridgeError::NodeIdTaken(config.node.clone()));
        }
        let listeners = match link::listeners(link.conn.clone(), &presence).await {
            Ok(count) => count,
            Err(err) => {
                let _ = link::release(link.conn.clone(), &claim_key, &token).await;
                return Err(err.into());
            }
        };
        log::debug!(
            "node {} linked to {} on {pattern} ({listeners} bridges listening)",
            config.node,
            redacted(&config.url)
        );

        let mut bridge = RedisBridge {
            broker: broker.clone(),
            client,
            claim_key,
            token,
            pattern,
            encoder: Encoder::new(&config.node),
            link: Some(link),
            stream: None,
            epoch: 0,
            state: State::Up,
            outbox: Outbox::new(config.outage_queue),
            in_flight: 0,
            listeners,
            origins: HashMap::new(),
            stats: BridgeStats::default(),
            malformed_warning: Limiter::new(config.warn_interval),
            gap_warning: Limiter::new(config.warn_interval),
            unsendable_warning: Limiter::new(config.warn_interval),
            queue_full_reported: false,
            down_since: None,
            backoff: config.backoff_min,
            released: false,
            config,
        };
        let addr = RedisBridge::create(move |ctx| {
            bridge.attach(stream, ctx);
            bridge
        });

        if broker
            .send(SetRelay(Some(addr.clone().recipient())))
            .await
            .is_err()
        {
            addr.do_send(StopBridge);
            return Err(BridgeError::BrokerGone);
        }
        Ok(addr)
    }

    /// Feeds the subscriber stream of the current link to the actor.
    fn attach(&mut self, stream: PubSubStream, ctx: &mut Context<Self>) {
        let epoch = self.epoch;
        let tagged = stream
            .map(move |msg| Inbound {
                epoch,
                msg: Some(msg),
            })
            .chain(stream::once(future::ready(Inbound { epoch, msg: None })));
        if let Some(old) = self.stream.replace(ctx.add_stream(tagged)) {
            ctx.cancel_future(old);
        }
    }

    fn linked(&self) -> bool {
        matches!(self.state, State::Up | State::Resyncing)
    }

    fn snapshot(&self) -> BridgeStats {
        BridgeStats {
            queued: self.outbox.len(),
            in_flight: self.in_flight,
            connected: self.linked(),
            ..self.stats
        }
    }

    /// Numbers and queues the message of `event_json` for `topic`.
    fn enqueue(&mut self, topic: &crate::Topic, event_json: &str) {
        let seq = self.stats.sequenced + 1;
        let body = self.encoder.encode(seq, event_json);
        if body.len() > MAX_WIRE_LEN {
            self.stats.unsendable += 1;
            if let Some(held) = self.unsendable_warning.allow() {
                log::warn!(
                    "node {}: an event for {topic} is {} bytes on the wire, over the limit of \
                     {MAX_WIRE_LEN}; it stays on this node{}",
                    self.config.node,
                    body.len(),
                    held_back(held)
                );
            }
            return;
        }

        self.stats.sequenced = seq;
        let item = Outgoing {
            channel: wire::channel(&self.config.prefix, topic),
            body,
        };
        if self.outbox.push(item).is_some() {
            self.stats.dropped += 1;
            if !self.queue_full_reported {
                self.queue_full_reported = true;
                log::error!(
                    "node {}: the outage queue is full ({} events); dropping the oldest, \
                     which other nodes will see as a gap",
                    self.config.node,
                    self.config.outage_queue
                );
            }
        }
    }

    /// Writes the next batch of the outage queue, one batch at a time so
    /// that Redis receives this node's messages in order.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.state != State::Up || self.in_flight > 0 || self.outbox.is_empty() {
            return;
        }
        let Some(link) = &self.link else {
            return;
        };

        let batch = self.outbox.take(MAX_BATCH);
        let count = batch.len();
        let pipe = link::publish_pipe(&batch);
        let mut conn = link.conn.clone();
        let epoch = self.epoch;
        self.in_flight = count;
        let send = async move { pipe.query_async::<Vec<u64>>(&mut conn).await };
        ctx.spawn(
            send.into_actor(self)
                .map(move |result, bridge, ctx| bridge.sent(result, count, epoch, ctx)),
        );
    }

    fn sent(
        &mut self,
        result: RedisResult<Vec<u64>>,
        count: usize,
        epoch: u64,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight = 0;
        match result {
            Ok(receivers) => {
                self.stats.published += count as u64;
                // Fresher than the last heartbeat: every bridge of the
                // prefix, this one included, receives each message once.
                if let Some(&last) = receivers.last() {
                    self.listeners = last;
                }
                log::trace!("node {}: sent {count} messages", self.config.node);
                if self.outbox.is_empty() {
                    self.queue_full_reported = false;
                }
            }
            Err(err) => {
                self.stats.lost += count as u64;
                if epoch == self.epoch && self.linked() {
                    self.link_lost(
                        ctx,
                        &format!("{err}; {count} messages on their way may be lost"),
                    );
                } else {
                    log::debug!(
                        "node {}: {count} messages on their way when the link failed may be \
                         lost",
                        self.config.node
                    );
                }
            }
        }
        self.pump(ctx);
    }

    /// Takes the link down and starts reconnecting. Warns once per outage.
    fn link_lost(&mut self, ctx: &mut Context<Self>, reason: &str) {
        if !self.linked() {
            return;
        }

        self.epoch += 1;
        self.link = None;
        if let Some(stream) = self.stream.take() {
            ctx.cancel_future(stream);
        }
        self.state = State::Down;
        self.down_since = Some(Instant::now());
        self.backoff = self.config.backoff_min;
        log::warn!(
            "node {}: the Redis link to {} is down ({reason}); local delivery goes on, and up \
             to {} events for other nodes wait while it reconnects",
            self.config.node,
            redacted(&self.config.url),
            self.config.outage_queue
        );
        self.schedule_reconnect(ctx);
    }

    fn schedule_reconnect(&mut self, ctx: &mut Context<Self>) {
        let delay = jitter(self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
        ctx.run_later(delay, |bridge, ctx| bridge.reconnect(ctx));
    }

    fn reconnect(&mut self, ctx: &mut Context<Self>) {
        if self.state != State::Down {
            return;
        }

        let client = self.client.clone();
        let timing = Timing::of(&self.config);
        let pattern = self.pattern.clone();
        let presence = wire::presence(&self.config.prefix);
        let key = Arc::clone(&self.claim_key);
        let token = Arc::clone(&self.token);
        let ttl = self.config.node_ttl;
        let attempt = async move {
            let (link, stream) = link::open(client, timing, pattern, presence).await?;
            let held = link::claim(link.conn.clone(), &key, &token, ttl).await?;
            Ok::<_, LinkError>((link, stream, held))
        };
        ctx.spawn(attempt.into_actor(self).map(|result, bridge, ctx| {
            if bridge.state != State::Down {
                return;
            }
            match result {
                Ok((link, stream, true)) => bridge.link_up(link, stream, ctx),
                Ok((_, _, false)) => bridge.id_lost(ctx),
                Err(err) => {
                    log::debug!(
                        "node {}: reconnect failed ({err}); next try in about {:?}",
                        bridge.config.node,
                        bridge.backoff
                    );
                    bridge.schedule_reconnect(ctx);
                }
            }
        }));
    }

    fn link_up(&mut self, link: Link, stream: PubSubStream, ctx: &mut Context<Self>) {
        self.epoch += 1;
        self.attach(stream, ctx);
        self.link = Some(link);
        self.state = State::Resyncing;
        self.stats.reconnects += 1;
        let outage = self.down_since.take().map(|since| since.elapsed());
        log::info!(
            "node {}: the Redis link is back after {:.1?}; listening again, {} queued events \
             to send",
            self.config.node,
            outage.unwrap_or_default(),
            self.outbox.len()
        );
        self.resync(ctx);
    }

    /// Holds the outage queue back until as many bridges listen as before
    /// the outage, or the resync wait is over, then sends it.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        let Some(link) = &self.link else {
            return;
        };

        let conn = link.conn.clone();
        let want = self.listeners;
        let presence = wire::presence(&self.config.prefix);
        let wait = self.config.resync_wait;
        let epoch = self.epoch;
        let check = async move {
            let deadline = Instant::now() + wait;
            loop {
                let now = link::listeners(conn.clone(), &presence).await?;
                if now >= want {
                    return Ok::<_, LinkError>((true, now));
                }
                if Instant::now() >= deadline {
                    return Ok((false, now));
                }
                actix_rt::time::sleep(RESYNC_POLL).await;
            }
        };
        ctx.spawn(check.into_actor(self).map(move |result, bridge, ctx| {
            if bridge.epoch != epoch || bridge.state != State::Resyncing {
                return;
            }
            match result {
                Ok((all_back, now)) => {
                    if !all_back {
                        log::debug!(
                            "node {}: {now} of {want} bridges listen again after {wait:?}; \
                             sending the outage queue anyway",
                            bridge.config.node
                        );
                    }
                    bridge.state = State::Up;
                    bridge.pump(ctx);
                }
                Err(err) => bridge.link_lost(ctx, &err.to_string()),
            }
        }));
    }

    /// Another node took this node's id while the link was down: two nodes
    /// with one id would skip each other's events, so this one stops.
    fn id_lost(&mut self, ctx: &mut Context<Self>) {
        let stranded = self.outbox.len();
        self.stats.dropped += stranded as u64;
        self.outbox.clear();
        log::error!(
            "node {}: another node now holds this node id; the bridge stops, {stranded} queued \
             events are dropped and events stay on this node from now on",
            self.config.node
        );
        self.detach();
        self.released = true;
        ctx.stop();
    }

    /// Stops being the broker's relay.
    fn detach(&mut self) {
        self.state = State::Stopping;
        self.broker.do_send(SetRelay(None));
    }

    /// Renews the node id claim and checks both connections.
    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if !self.linked() {
            return;
        }
        let Some(link) = &self.link else {
            return;
        };

        let conn = link.conn.clone();
        let sink = link.sink.clone();
        let key = Arc::clone(&self.claim_key);
        let token = Arc::clone(&self.token);
        let ttl = self.config.node_ttl;
        let limit = self.config.response_timeout;
        let epoch = self.epoch;
        let presence = wire::presence(&self.config.prefix);
        let beat = async move {
            link::ping(sink, limit).await?;
            let held = link::claim(conn.clone(), &key, &token, ttl).await?;
            let listeners = link::listeners(conn, &presence).await?;
            Ok::<_, LinkError>((held, listeners))
        };
        ctx.spawn(beat.into_actor(self).map(move |result, bridge, ctx| {
            if bridge.epoch != epoch || !bridge.linked() {
                return;
            }
            match result {
                Ok((true, listeners)) => {
                    // Kept fresh for a node that publishes rarely: after an
                    // outage it waits for this many bridges (see `resync`).
                    bridge.listeners = listeners;
                    log::trace!("node {}: heartbeat", bridge.config.node);
                }
                Ok((false, _)) => bridge.id_lost(ctx),
                Err(err) => bridge.link_lost(ctx, &format!("heartbeat: {err}")),
            }
        }));
    }

    /// Takes one message from Redis.
    fn receive(&mut self, msg: &Msg) {
        // Cheapest checks first: every node hears each of its own messages
        // back, and a message kept local needs no event decoded.
        let bytes = msg.get_payload_bytes();
        if self.encoder.is_own(bytes) {
            // The common echo, written by this very bridge: no need to
            // parse it to know.
            self.stats.echoes += 1;
            return;
        }
        let channel = msg.get_channel_name();
        let Header { origin, seq } = match wire::read_header(bytes) {
            Ok(header) => header,
            Err(err) => return self.skip(channel, &err),
        };
        if origin == self.config.node {
            self.stats.echoes += 1;
            log::trace!("node {}: skipped its own message #{seq}", self.config.node);
            return;
        }
        let topic = match wire::topic_of(&self.config.prefix, channel) {
            Ok(topic) => topic,
            Err(err) => return self.skip(channel, &err),
        };
        if self.config.is_local(&topic) {
            self.follow(origin, seq);
            self.stats.kept_local += 1;
            log::trace!("node {}: {topic} stays local, skipped", self.config.node);
            return;
        }
        let event = match wire::read_event(bytes) {
            Ok(event) => event,
            Err(err) => return self.skip(channel, &err),
        };

        self.follow(origin, seq);
        log::trace!(
            "node {}: {} on {topic} from another node, #{seq}",
            self.config.node,
            event.name
        );
        self.stats.received += 1;
        self.broker.do_send(Publish::new(topic, event).local_only());
    }

    fn skip(&mut self, channel: &str, err: &WireError) {
        self.stats.malformed += 1;
        match self.malformed_warning.allow() {
            Some(held) => log::warn!(
                "node {}: skipped a malformed message on {channel:?}: {err}{}",
                self.config.node,
                held_back(held)
            ),
            None => log::trace!(
                "node {}: skipped a malformed message: {err}",
                self.config.node
            ),
        }
    }

    /// Follows the sequence of `origin`, and reports a jump in it.
    fn follow(&mut self, origin: NodeId, seq: u64) {
        let Some(last) = self.origins.get_mut(&origin) else {
            if self.origins.len() >= MAX_ORIGINS {
                log::debug!(
                    "node {}: following more than {MAX_ORIGINS} nodes; starting afresh",
                    self.config.node
                );
                self.origins.clear();
            }
            self.origins.insert(origin, seq);
            return;
        };

        let previous = std::mem::replace(last, seq);
        if seq <= previous {
            log::debug!(
                "node {}: node {origin} started its sequence again ({seq} after {previous})",
                self.config.node
            );
            return;
        }
        let missed = seq - previous - 1;
        if missed == 0 {
            return;
        }

        self.stats.gaps += missed;
        if let Some(held) = self.gap_warning.allow() {
            log::warn!(
                "node {}: missed {missed} messages of node {origin} (#{previous} then #{seq}){}",
                self.config.node,
                held_back(held)
            );
        }
        if let Some(recipient) = &self.config.gaps {
            recipient.do_send(GapDetected {
                origin,
                last: previous,
                seq,
                missed,
            });
        }
    }
}

impl Actor for RedisBridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::debug!("redis bridge of node {} started", self.config.node);
        ctx.run_interval(self.config.heartbeat, |bridge, ctx| bridge.heartbeat(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.state != State::Stopping {
            self.broker.do_send(SetRelay(None));
        }
        if !self.released {
            if let Some(link) = self.link.take() {
                // Best effort: the claim expires on its own otherwise.
                let key = Arc::clone(&self.claim_key);
                let token = Arc::clone(&self.token);
                if let Some(arbiter) = Arbiter::try_current() {
                    arbiter.spawn(async move {
                        let _ = link::release(link.conn, &key, &token).await;
                    });
                }
            }
        }
        log::debug!("redis bridge of node {} stopped", self.config.node);
    }
}

impl StreamHandler<Inbound> for RedisBridge {
    fn handle(&mut self, item: Inbound, ctx: &mut Context<Self>) {
        if item.epoch != self.epoch {
            return;
        }
        match item.msg {
            Some(msg) => self.receive(&msg),
            None => self.link_lost(ctx, "the subscriber connection closed"),
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The end of a link's stream is an item of its own (see `attach`);
        // the bridge outlives its links.
    }
}

impl Handler<Relayed> for RedisBridge {
    type Result = ();

    fn handle(&mut self, msg: Relayed, ctx: &mut Context<Self>) {
        if self.state == State::Stopping {
            log::trace!(
                "node {}: stopping; {} stays local",
                self.config.node,
                msg.event.name
            );
            return;
        }

        let mut json: Option<String> = None;
        for topic in &msg.topics {
            if self.config.is_local(topic) {
                self.stats.kept_local += 1;
                continue;
            }
            let event_json = json.get_or_insert_with(|| msg.event.to_json());
            self.enqueue(topic, event_json);
        }
        self.pump(ctx);
    }
}

impl Handler<GetBridgeStats> for RedisBridge {
    type Result = MessageResult<GetBridgeStats>;

    fn handle(&mut self, _: GetBridgeStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

impl Handler<StopBridge> for RedisBridge {
    type Result = ResponseActFuture<Self, BridgeStats>;

    fn handle(&mut self, _: StopBridge, _: &mut Context<Self>) -> Self::Result {
        let link = if self.linked() {
            self.link.clone()
        } else {
            None
        };
        self.detach();
        log::debug!(
            "node {}: stopping the bridge, {} queued events to send",
            self.config.node,
            self.outbox.len()
        );

        let batch = self.outbox.take(usize::MAX);
        let count = batch.len();
        let key = Arc::clone(&self.claim_key);
        let token = Arc::clone(&self.token);
        let work = async move {
            let Some(link) = link else {
                return (0, 0, false);
            };
            let mut sent = 0;
            let mut lost = 0;
            for chunk in batch.chunks(MAX_BATCH) {
                let pipe = link::publish_pipe(chunk);
                let mut conn = link.conn.clone();
                if pipe.query_async::<Vec<u64>>(&mut conn).await.is_err() {
                    lost = chunk.len();
                    break;
                }
                sent += chunk.len();
            }
            let freed = link::release(link.conn, &key, &token).await.is_ok();
            (sent, lost, freed)
        };
        Box::pin(
            work.into_actor(self)
                .map(move |(sent, lost, freed), bridge, ctx| {
                    bridge.stats.published += sent as u64;
                    bridge.stats.lost += lost as u64;
                    bridge.stats.dropped += (count - sent - lost) as u64;
                    bridge.released = freed;
                    if !freed {
                        log::debug!(
                            "node {}: could not free the node id; it expires on its own",
                            bridge.config.node
                        );
                    }
                    ctx.stop();
                    bridge.snapshot()
                }),
        )
    }
}
