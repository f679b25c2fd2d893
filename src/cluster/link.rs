//! The Redis side of a bridge: its two connections, and the commands that
//! claim, renew and free a node id.
//!
//! A bridge holds two connections: a multiplexed one for commands
//! (`PUBLISH`, the node id claim, `PUBSUB NUMSUB`) and a subscriber one
//! that listens on the bridge's pattern and its presence channel. Either failing takes the whole
//! link down; the bridge then opens both again.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{AsyncConnectionConfig, Client, RedisError, Value};

use super::config::BridgeConfig;
use super::error::BridgeError;
use super::outbox::Outgoing;

/// Claims the key for this node, or renews it when this node holds it.
/// Replies 1 when the node holds the key afterwards, 0 when another does.
const CLAIM: &str = "\
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not held then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0";

/// Frees the key when this node holds it.
const RELEASE: &str = "\
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Why one operation on the link failed.
#[derive(Debug)]
pub(crate) enum LinkError {
    Redis(RedisError),
    Timeout(&'static str),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Redis(err) => write!(f, "{err}"),
            LinkError::Timeout(what) => write!(f, "no answer in time ({what})"),
        }
    }
}

impl From<RedisError> for LinkError {
    fn from(err: RedisError) -> LinkError {
        LinkError::Redis(err)
    }
}

impl From<LinkError> for BridgeError {
    fn from(err: LinkError) -> BridgeError {
        match err {
            LinkError::Redis(err) => BridgeError::Redis(err),
            LinkError::Timeout(what) => BridgeError::Timeout(what),
        }
    }
}

/// The timeouts of one link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) connect: Duration,
    pub(crate) response: Duration,
}

impl Timing {
    /// The timeouts `config` asks for.
    pub(crate) fn of(config: &BridgeConfig) -> Timing {
        Timing {
            connect: config.connect_timeout,
            response: config.response_timeout,
        }
    }
}

/// One `PUBLISH` per message, sent together.
pub(crate) fn publish_pipe(messages: &[Outgoing]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for message in messages {
        pipe.cmd("PUBLISH").arg(&message.channel).arg(&message.body);
    }
    pipe
}

/// Both connections of a link that is up.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) conn: MultiplexedConnection,
    pub(crate) sink: PubSubSink,
}

async fn within<T>(
    limit: Duration,
    what: &'static str,
    work: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, LinkError> {
    match actix_rt::time::timeout(limit, work).await {
        Ok(result) => result.map_err(LinkError::Redis),
        Err(_) => Err(LinkError::Timeout(what)),
    }
}

/// Opens both connections, listens on `pattern`, and joins the `presence`
/// channel (see [`listeners`]).
pub(crate) async fn open(
    client: Client,
    timing: Timing,
    pattern: String,
    presence: String,
) -> Result<(Link, PubSubStream), LinkError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timing.connect))
        .set_response_timeout(Some(timing.response));
    let conn = within(
        timing.connect + timing.response,
        "opening the command connection",
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await?;

    let pubsub = within(
        timing.connect + timing.response,
        "opening the subscriber connection",
        client.get_async_pubsub(),
    )
    .await?;
    let (mut sink, stream) = pubsub.split();
    within(timing.response, "subscribing", sink.psubscribe(&pattern)).await?;
    within(timing.response, "joining", sink.subscribe(&presence)).await?;
    Ok((Link { conn, sink }, stream))
}

/// Claims `key` for `token`, or renews the claim; `false` when another
/// token holds it.
pub(crate) async fn claim(
    mut conn: MultiplexedConnection,
    key: &str,
    token: &str,
    ttl: Duration,
) -> Result<bool, LinkError> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let held: i64 = redis::cmd("EVAL")
        .arg(CLAIM)
        .arg(1)
        .arg(key)
        .arg(token)
        .arg(ttl_ms)
        .query_async(&mut conn)
        .await?;
    Ok(held == 1)
}

/// Frees `key` if `token` holds it; `true` when it did.
pub(crate) async fn release(
    mut conn: MultiplexedConnection,
    key: &str,
    token: &str,
) -> Result<bool, LinkError> {
    let freed: i64 = redis::cmd("EVAL")
        .arg(RELEASE)
        .arg(1)
        .arg(key)
        .arg(token)
        .query_async(&mut conn)
        .await?;
    Ok(freed == 1)
}

/// How many bridges listen under a prefix: the subscribers of its
/// `presence` channel, which every bridge joins and nobody publishes to.
///
/// Not `PUBSUB NUMPAT`: since Redis 6.2 it counts distinct patterns, and
/// every bridge of a prefix listens on the same one.
pub(crate) async fn listeners(
    mut conn: MultiplexedConnection,
    presence: &str,
) -> Result<u64, LinkError> {
    let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(presence)
        .query_async(&mut conn)
        .await?;
    let count = counts.first().map_or(0, |(_, count)| *count);
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Checks that the subscriber connection still answers.
pub(crate) async fn ping(mut sink: PubSubSink, limit: Duration) -> Result<(), LinkError> {
    within(
        limit,
        "pinging the subscriber connection",
        sink.ping::<Value>(),
    )
    .await
    .map(drop)
}
