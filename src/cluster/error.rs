//! Why a bridge could not start.

use std::fmt;

use super::config::{ConfigError, NodeId};

/// Why [`RedisBridge::connect`](super::RedisBridge::connect) failed.
///
/// Once a bridge runs, nothing fails outward: a lost link is retried, and
/// bad input is counted and skipped (see
/// [`BridgeStats`](super::BridgeStats)).
#[derive(Debug)]
#[non_exhaustive]
pub enum BridgeError {
    /// The configuration is inconsistent.
    Config(ConfigError),
    /// The Redis address does not parse.
    InvalidUrl(redis::RedisError),
    /// Redis could not be reached, or refused a command.
    Redis(redis::RedisError),
    /// Redis did not answer in time.
    Timeout(&'static str),
    /// Another live node already holds this node id under the same channel
    /// prefix. Two nodes with one id would take each other's events for
    /// echoes; give each node its own id.
    NodeIdTaken(NodeId),
    /// The broker stopped before the bridge could attach to it.
    BrokerGone,
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Config(err) => write!(f, "invalid bridge configuration: {err}"),
            BridgeError::InvalidUrl(err) => write!(f, "invalid Redis address: {err}"),
            BridgeError::Redis(err) => write!(f, "Redis failed: {err}"),
            BridgeError::Timeout(what) => write!(f, "Redis did not answer in time ({what})"),
            BridgeError::NodeIdTaken(node) => write!(
                f,
                "node id {node} is held by another live node: give every node its own id"
            ),
            BridgeError::BrokerGone => f.write_str("the broker stopped before the bridge started"),
        }
    }
}

impl std::error::Error for BridgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BridgeError::Config(err) => Some(err),
            BridgeError::InvalidUrl(err) | BridgeError::Redis(err) => Some(err),
            _ => None,
        }
    }
}

impl From<ConfigError> for BridgeError {
    fn from(err: ConfigError) -> BridgeError {
        BridgeError::Config(err)
    }
}
