//! How a bridge is set up: who this node is, where Redis is, which topics
//! stay local, and the bounds and timings of the link.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;

use super::messages::GapDetected;
use crate::topic::Topic;

/// Longest node id accepted by [`NodeId::new`], in bytes.
pub const MAX_NODE_ID_LEN: usize = 64;

/// Longest channel prefix accepted by [`BridgeConfig::channel_prefix`], in
/// bytes.
pub const MAX_PREFIX_LEN: usize = 64;

/// The channel prefix a bridge uses unless told otherwise.
pub const DEFAULT_CHANNEL_PREFIX: &str = "projects-pubsub";

/// The name of one node of a cluster, unique among the nodes that share a
/// Redis server and a channel prefix.
///
/// One to [`MAX_NODE_ID_LEN`] bytes of ASCII letters, digits, `-`, `_` and
/// `.`: safe in a Redis key, a JSON string and a log line without escaping.
/// A bridge claims its id in Redis when it starts, and refuses to start
/// when another live node holds it (see
/// [`BridgeError::NodeIdTaken`](super::BridgeError::NodeIdTaken)).
///
/// # Examples
///
/// ```
/// use projects_pubsub::cluster::NodeId;
///
/// let node = NodeId::new("web-1").unwrap();
/// assert_eq!(node.as_str(), "web-1");
/// assert!(NodeId::new("web 1").is_err());
/// assert!(NodeId::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Validates a node id.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidNodeId`] unless `id` is 1 to
    /// [`MAX_NODE_ID_LEN`] ASCII letters, digits, `-`, `_` or `.`.
    pub fn new(id: &str) -> Result<NodeId, ConfigError> {
        let valid = !id.is_empty()
            && id.len() <= MAX_NODE_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(ConfigError::InvalidNodeId(shorten(id)));
        }
        Ok(NodeId(Arc::from(id)))
    }

    /// A fresh id of the form `node-<12 hex digits>`, for a node that does
    /// not need a stable name.
    ///
    /// # Examples
    ///
    /// ```
    /// use projects_pubsub::cluster::NodeId;
    ///
    /// assert_ne!(NodeId::random(), NodeId::random());
    /// ```
    pub fn random() -> NodeId {
        let simple = uuid::Uuid::new_v4().simple().to_string();
        NodeId(Arc::from(format!("node-{}", &simple[..12])))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for NodeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", &*self.0)
    }
}

impl std::str::FromStr for NodeId {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<NodeId, ConfigError> {
        NodeId::new(text)
    }
}

/// Why a bridge configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The node id is not 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
    InvalidNodeId(String),
    /// The channel prefix is not 1 to 64 ASCII letters, digits, `-`, `_`,
    /// `.` or `:` (Redis glob characters would change what the bridge
    /// listens to).
    InvalidPrefix(String),
    /// The outage queue must hold at least one event.
    EmptyOutageQueue,
    /// A duration that must be positive is zero.
    ZeroDuration(&'static str),
    /// The heartbeat must come well within the node id's time to live,
    /// or the claim would lapse between two heartbeats.
    HeartbeatTooSlow {
        /// The heartbeat interval.
        heartbeat: Duration,
        /// The node id's time to live.
        ttl: Duration,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidNodeId(id) => write!(
                f,
                "invalid node id {id:?}: expected 1 to {MAX_NODE_ID_LEN} ASCII letters, \
                 digits, '-', '_' or '.'"
            ),
            ConfigError::InvalidPrefix(prefix) => write!(
                f,
                "invalid channel prefix {prefix:?}: expected 1 to {MAX_PREFIX_LEN} ASCII \
                 letters, digits, '-', '_', '.' or ':'"
            ),
            ConfigError::EmptyOutageQueue => {
                f.write_str("the outage queue must hold at least one event")
            }
            ConfigError::ZeroDuration(what) => write!(f, "{what} must be longer than zero"),
            ConfigError::HeartbeatTooSlow { heartbeat, ttl } => write!(
                f,
                "a heartbeat every {heartbeat:?} cannot keep a node id alive for {ttl:?}: \
                 make the heartbeat at most half the time to live"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The Redis address without its password, for logs and `Debug`.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// A refused value as an error shows it: its first 80 characters.
pub(crate) fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Decides whether a topic stays on this node; see
/// [`BridgeConfig::keep_local_where`].
pub type LocalFilter = Arc<dyn Fn(&Topic) -> bool + Send + Sync>;

/// How a [`RedisBridge`](super::RedisBridge) joins its broker to Redis.
///
/// Built from the Redis address and this node's id; every other setting
/// has a default that suits a handful of application nodes on one Redis:
///
/// | setting                    | default            |
/// |----------------------------|--------------------|
/// | channel prefix             | `projects-pubsub`  |
/// | outage queue               | 10,000 events      |
/// | reconnect backoff          | 100 ms doubling to 5 s |
/// | node id time to live       | 15 s               |
/// | heartbeat                  | 5 s                |
/// | connect / response timeout | 2 s / 2 s          |
/// | resync wait                | 2 s                |
/// | malformed-message warning  | at most one per 60 s |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use projects_pubsub::Topic;
/// use projects_pubsub::cluster::{BridgeConfig, NodeId};
///
/// let config = BridgeConfig::new("redis://127.0.0.1:6379/", NodeId::new("web-1").unwrap())
///     .channel_prefix("acme-projects")
///     .unwrap()
///     .outage_queue(50_000)
///     .backoff(Duration::from_millis(50), Duration::from_secs(2))
///     .keep_local(Topic::embed("editor:cursor").unwrap())
///     .keep_local_where(|topic| topic.is_embed());
/// assert_eq!(config.node().as_str(), "web-1");
/// assert!(config.is_local(&Topic::embed("chat").unwrap()));
/// assert!(!config.is_local(&Topic::all()));
/// ```
#[derive(Clone)]
pub struct BridgeConfig {
    pub(crate) url: String,
    pub(crate) node: NodeId,
    pub(crate) prefix: Arc<str>,
    pub(crate) outage_queue: usize,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) node_ttl: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) resync_wait: Duration,
    pub(crate) warn_interval: Duration,
    pub(crate) local_topics: HashSet<Topic>,
    pub(crate) local_filter: Option<LocalFilter>,
    pub(crate) gaps: Option<Recipient<GapDetected>>,
}

impl BridgeConfig {
    /// A configuration for node `node` on the Redis server at `url`
    /// (`redis://host:port/db`, as the `redis` crate reads it), with the
    /// defaults listed above.
    pub fn new(url: impl Into<String>, node: NodeId) -> BridgeConfig {
        BridgeConfig {
            url: url.into(),
            node,
            prefix: Arc::from(DEFAULT_CHANNEL_PREFIX),
            outage_queue: 10_000,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            node_ttl: Duration::from_secs(15),
            heartbeat: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            resync_wait: Duration::from_secs(2),
            warn_interval: Duration::from_secs(60),
            local_topics: HashSet::new(),
            local_filter: None,
            gaps: None,
        }
    }

    /// The prefix of every channel and key the bridge uses. Nodes talk to
    /// each other only when they share it, so one Redis can serve several
    /// separate clusters (or test runs).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidPrefix`] unless `prefix` is 1 to
    /// [`MAX_PREFIX_LEN`] ASCII letters, digits, `-`, `_`, `.` or `:`.
    pub fn channel_prefix(mut self, prefix: &str) -> Result<BridgeConfig, ConfigError> {
        let valid = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !valid {
            return Err(ConfigError::InvalidPrefix(shorten(prefix)));
        }
        self.prefix = Arc::from(prefix);
        Ok(self)
    }

    /// How many events published here the bridge keeps while Redis is out
    /// of reach (or slower than the publishers), to send once it is back.
    /// When the queue is full the oldest event is dropped and counted in
    /// [`BridgeStats::dropped`](super::BridgeStats::dropped). At least 1.
    pub fn outage_queue(mut self, capacity: usize) -> BridgeConfig {
        self.outage_queue = capacity;
        self
    }

    /// The wait before the first reconnect attempt, doubled after each
    /// failed attempt up to `max` (each wait varies by up to a quarter, so
    /// that many nodes do not retry in step).
    pub fn backoff(mut self, min: Duration, max: Duration) -> BridgeConfig {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// How long the claim on this node's id outlives the node: a node that
    /// dies without stopping its bridge frees its id after this long.
    pub fn node_ttl(mut self, ttl: Duration) -> BridgeConfig {
        self.node_ttl = ttl;
        self
    }

    /// How often the bridge renews its node id claim and checks that both
    /// of its Redis connections answer; a link that stops answering is
    /// found within one heartbeat plus the response timeout. At most half
    /// the node id's time to live.
    pub fn heartbeat(mut self, every: Duration) -> BridgeConfig {
        self.heartbeat = every;
        self
    }

    /// How long one connection attempt may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> BridgeConfig {
        self.connect_timeout = timeout;
        self
    }

    /// How long Redis may take to answer one command or batch.
    pub fn response_timeout(mut self, timeout: Duration) -> BridgeConfig {
        self.response_timeout = timeout;
        self
    }

    /// After a reconnect, how long the bridge at most holds back its
    /// outage queue while waiting for the other nodes to listen again. It
    /// sends as soon as as many bridges listen as received its last event
    /// before the outage.
    pub fn resync_wait(mut self, wait: Duration) -> BridgeConfig {
        self.resync_wait = wait;
        self
    }

    /// The shortest time between two warnings about malformed messages or
    /// sequence gaps; the skipped messages are counted all the same.
    pub fn warn_interval(mut self, every: Duration) -> BridgeConfig {
        self.warn_interval = every;
        self
    }

    /// Keeps `topic` on this node: its events are neither sent to Redis
    /// nor taken from it.
    pub fn keep_local(mut self, topic: Topic) -> BridgeConfig {
        self.local_topics.insert(topic);
        self
    }

    /// Keeps on this node every topic for which `filter` returns `true`,
    /// in addition to those given to [`BridgeConfig::keep_local`].
    pub fn keep_local_where(
        mut self,
        filter: impl Fn(&Topic) -> bool + Send + Sync + 'static,
    ) -> BridgeConfig {
        self.local_filter = Some(Arc::new(filter));
        self
    }

    /// Tells `recipient` about every gap the bridge sees in the sequence
    /// of another node: events that node sent and this one never got.
    pub fn on_gap(mut self, recipient: Recipient<GapDetected>) -> BridgeConfig {
        self.gaps = Some(recipient);
        self
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The Redis address.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The channel prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `topic` stays on this node.
    pub fn is_local(&self, topic: &Topic) -> bool {
        self.local_topics.contains(topic)
            || self.local_filter.as_ref().is_some_and(|keep| keep(topic))
    }

    /// Checks the settings that only make sense together.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.outage_queue == 0 {
            return Err(ConfigError::EmptyOutageQueue);
        }
        let durations = [
            ("the reconnect backoff", self.backoff_min),
            ("the node id time to live", self.node_ttl),
            ("the heartbeat", self.heartbeat),
            ("the connect timeout", self.connect_timeout),
            ("the response timeout", self.response_timeout),
        ];
        if let Some((what, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::ZeroDuration(what));
        }
        if self.heartbeat * 2 > self.node_ttl {
            return Err(ConfigError::HeartbeatTooSlow {
                heartbeat: self.heartbeat,
                ttl: self.node_ttl,
            });
        }
        Ok(())
    }
}

impl fmt::Debug for BridgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeConfig")
            .field("url", &redacted(&self.url))
            .field("node", &self.node)
            .field("prefix", &self.prefix)
            .field("outage_queue", &self.outage_queue)
            .field("backoff", &(self.backoff_min, self.backoff_max))
            .field("node_ttl", &self.node_ttl)
            .field("heartbeat", &self.heartbeat)
            .field("local_topics", &self.local_topics)
            .field("local_filter", &self.local_filter.is_some())
            .finish_non_exhaustive()
    }
}
