//! The messages a [`RedisBridge`](super::RedisBridge) handles and sends.

use actix::Message;

use super::config::NodeId;

/// Asks a bridge for its counters. Replies with [`BridgeStats`].
///
/// # Examples
///
/// ```no_run
/// use actix::Addr;
/// use projects_pubsub::cluster::{GetBridgeStats, RedisBridge};
///
/// async fn report(bridge: Addr<RedisBridge>) {
///     let stats = bridge.send(GetBridgeStats).await.unwrap();
///     println!("sent {} received {} queued {}", stats.published, stats.received, stats.queued);
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GetBridgeStats;

impl Message for GetBridgeStats {
    type Result = BridgeStats;
}

/// Counters of one bridge since it started.
///
/// Every message this node numbers ends up in exactly one of `published`,
/// `lost`, `dropped`, `queued` and `in_flight`, so
/// `sequenced == published + lost + dropped + queued + in_flight` holds
/// at every moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Messages this node numbered for Redis: one per topic of each
    /// publish that is neither local-only nor kept local. The last
    /// sequence number sent.
    pub sequenced: u64,
    /// Messages Redis accepted from this node.
    pub published: u64,
    /// Messages that were on their way to Redis when the link failed:
    /// Redis may or may not have passed them on.
    pub lost: u64,
    /// Messages dropped, oldest first, because the outage queue was full.
    pub dropped: u64,
    /// Messages waiting in the outage queue now.
    pub queued: usize,
    /// Messages written to Redis and not yet acknowledged, now.
    pub in_flight: usize,
    /// Messages of other nodes handed to the local broker.
    pub received: u64,
    /// Messages of this node heard back from Redis and skipped.
    pub echoes: u64,
    /// Messages skipped because they were malformed, of an unknown
    /// version or on a channel that names no topic.
    pub malformed: u64,
    /// Messages of other nodes this node never got, seen as jumps in their
    /// sequence numbers.
    pub gaps: u64,
    /// Topic publishes kept on this node by [`BridgeConfig::keep_local`],
    /// outgoing or incoming.
    ///
    /// [`BridgeConfig::keep_local`]: super::BridgeConfig::keep_local
    pub kept_local: u64,
    /// Events kept on this node because their wire form would exceed
    /// [`MAX_WIRE_LEN`](super::wire::MAX_WIRE_LEN).
    pub unsendable: u64,
    /// Times the link came back after an outage.
    pub reconnects: u64,
    /// Whether the link to Redis is up now.
    pub connected: bool,
}

/// Stops a bridge cleanly. Replies with its final [`BridgeStats`].
///
/// The bridge detaches from its broker (publishes stay local from then
/// on), sends what its outage queue holds if Redis is reachable, frees its
/// node id so another node may take it at once, and stops.
#[derive(Debug, Clone, Copy)]
pub struct StopBridge;

impl Message for StopBridge {
    type Result = BridgeStats;
}

/// Sent to the recipient given to
/// [`BridgeConfig::on_gap`](super::BridgeConfig::on_gap) when another
/// node's sequence jumps: this node missed `missed` of its messages.
///
/// A gap means events were lost on the way (an outage queue that
/// overflowed, a Redis restart, a subscriber connection that was down);
/// a view that must not miss anything reloads its state when it sees one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapDetected {
    /// The node whose messages were missed.
    pub origin: NodeId,
    /// The last sequence number received from it before the gap.
    pub last: u64,
    /// The sequence number that arrived after the gap.
    pub seq: u64,
    /// How many messages are missing: `seq - last - 1`.
    pub missed: u64,
}

impl Message for GapDetected {
    type Result = ();
}
