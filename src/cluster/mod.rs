//! Across machines: a Redis bridge, so that an event published on any node
//! reaches the subscribers of its topic on every node.
//!
//! Enabled by the `redis` feature. An application that runs several
//! instances behind a load balancer starts one [`RedisBridge`] per
//! instance, next to its [`TopicBroker`](crate::TopicBroker). Nothing else
//! changes: handlers publish and views subscribe on their local broker as
//! before, and the bridge carries every event that is not local-only to
//! the other nodes through Redis pub/sub.
//!
//! ```text
//!  node web-1                          node web-2
//!  handler -> notifier -> broker       broker -> views
//!                           |  relay      ^  local-only publish
//!                           v             |
//!                      RedisBridge    RedisBridge
//!                           |  PUBLISH    ^  PSUBSCRIBE <prefix>:*
//!                           +--> Redis ---+
//! ```
//!
//! # Getting started
//!
//! ```no_run
//! use actix::prelude::*;
//! use projects_pubsub::cluster::{BridgeConfig, NodeId, RedisBridge};
//! use projects_pubsub::{ProjectsNotifier, TopicBroker};
//!
//! # actix::System::new().block_on(async {
//! let broker = TopicBroker::from_registry();
//! let node = NodeId::new("web-1").expect("a valid node id");
//! let config = BridgeConfig::new("redis://127.0.0.1:6379/", node);
//! let bridge = RedisBridge::connect(broker, config).await.expect("Redis is reachable");
//!
//! // From here on, mutations sent to the notifier on this node reach the
//! // subscribers of their topics on every node that runs a bridge.
//! let notifier = ProjectsNotifier::from_registry();
//! # let _ = (bridge, notifier);
//! # });
//! ```
//!
//! # Channels and wire form
//!
//! The events of topic `T` travel on the channel `<prefix>:T` (by default
//! `projects-pubsub:projects:all`, `projects-pubsub:projects:project:<uuid>`,
//! ...), as the event's JSON form with three more keys: `v` (the format
//! version, 1), `origin` (the sender's [`NodeId`]) and `seq` (the sender's
//! message count). Any program can take part; [`wire`] documents the form:
//!
//! ```text
//! redis-cli PUBLISH projects-pubsub:projects:tasks \
//!   '{"v":1,"origin":"php-1","seq":1,"event":"task_created","resource":"task",
//!     "payload":{"uuid":"6f9619ff-8b86-d011-b42d-00c04fc964ff","title":"Paint"}}'
//! ```
//!
//! # Guarantees
//!
//! - An event published on one node reaches each subscription of its topic
//!   on every other linked node once, and never comes back to the node it
//!   was published on (a bridge skips its own messages: an *echo*).
//! - Events of one origin node reach each subscriber in the order they were
//!   published there, across all topics.
//! - Delivery across nodes is **at most once**: Redis pub/sub keeps nothing
//!   for a node that is not listening. The exception is this node's own
//!   outage queue: what is published here while Redis is out of reach is
//!   sent once the link is back.
//! - Every message carries its origin's sequence number, so a node sees
//!   what it missed as a gap ([`BridgeStats::gaps`], [`GapDetected`]).
//! - Exclusion ([`Publish::excluding`](crate::Publish::excluding)) applies
//!   on the publishing node only: the excluded view lives there.
//! - Local-only publishes ([`Publish::local_only`](crate::Publish::local_only),
//!   [`Mutation::local_only`](crate::Mutation::local_only)) and topics kept
//!   local ([`BridgeConfig::keep_local`]) never leave the node; events of
//!   a topic kept local that other nodes send are skipped.
//!
//! # When Redis goes away
//!
//! Local delivery does not depend on Redis and goes on untouched. The
//! bridge logs one `warn`, queues what is published for other nodes in
//! its outage queue (bounded: when it is full the oldest event is dropped
//! and counted in [`BridgeStats::dropped`], with one `error`), and
//! reconnects with a doubling backoff. Once Redis answers, it listens
//! again, reclaims its node id, logs one `info`, waits up to
//! [`BridgeConfig::resync_wait`] for the other nodes to listen again, and
//! sends the queue in order. Messages that were on their way when the link
//! failed are counted in [`BridgeStats::lost`]: Redis may or may not have
//! passed them on.
//!
//! # Bad input
//!
//! A message that is not of the wire form, of another version, or on a
//! channel that names no topic is skipped and counted in
//! [`BridgeStats::malformed`], with at most one `warn` per
//! [`BridgeConfig::warn_interval`]. Nothing that arrives on a channel can
//! stop the bridge or the broker.
//!
//! # Node ids
//!
//! Each node claims the Redis key `<prefix>:node:<id>` when its bridge
//! starts (set only if absent, with a time to live), renews it at every
//! heartbeat and frees it on [`StopBridge`]. A second node that starts
//! with an id in use is refused with [`BridgeError::NodeIdTaken`]. A node
//! that dies without stopping frees its id once the time to live is over.
//!
//! # Limitations
//!
//! - At most once across nodes: a node that is disconnected misses what
//!   is published meanwhile (it sees the gap), and Redis may drop what was
//!   on its way when it fails.
//! - Every node receives every topic's messages, whether or not it has
//!   subscribers for them, and its own messages back from Redis.
//! - The outage queue lives in memory: a node that stops during an outage
//!   loses what it queued.
//! - One Redis server (or a primary with replicas that fail over to a new
//!   address given in the URL); Redis Cluster's sharded pub/sub is not used.
//! - One bridge per broker: a broker has one relay.
//! - A broker in tenant mode refuses unscoped topics, including those that
//!   other nodes send: run every node in the same mode.

mod bridge;
mod config;
mod error;
mod link;
mod messages;
mod outbox;
pub mod wire;

pub use bridge::RedisBridge;
pub use config::{
    BridgeConfig, ConfigError, DEFAULT_CHANNEL_PREFIX, LocalFilter, MAX_NODE_ID_LEN,
    MAX_PREFIX_LEN, NodeId,
};
pub use error::BridgeError;
pub use messages::{BridgeStats, GapDetected, GetBridgeStats, StopBridge};
pub use wire::{WireError, WireMessage};
