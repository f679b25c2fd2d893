//! Counters of one [`EventStream`](super::EventStream).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one [`EventStream`](super::EventStream) since it was built,
/// read with [`EventStream::stats`](super::EventStream::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Streams open now.
    pub open: u64,
    /// Streams opened.
    pub opened: u64,
    /// Requests answered `400`: a malformed query or topic, too many
    /// topics, or a topic the broker refused.
    pub malformed: u64,
    /// Requests answered `403` by the authorisation function.
    pub denied: u64,
    /// Streams closed because the client read too slowly (its queue
    /// reached [`StreamLimits::connection_bound`](super::StreamLimits)) or
    /// a broker subscription of it overflowed.
    pub slow_disconnects: u64,
    /// Reconnections (with `Last-Event-ID`) that resumed every topic
    /// without a gap.
    pub resumed: u64,
    /// `reload` frames sent: a reconnecting client whose missed events were
    /// no longer all in the journal.
    pub reloads: u64,
    /// Events sent again from the journal to reconnecting clients.
    pub replayed: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) open: AtomicU64,
    // Also numbers the streams: a stream's number is its count here.
    pub(crate) opened: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) denied: AtomicU64,
    pub(crate) slow_disconnects: AtomicU64,
    pub(crate) resumed: AtomicU64,
    pub(crate) reloads: AtomicU64,
    pub(crate) replayed: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StreamStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StreamStats {
            open: read(&self.open),
            opened: read(&self.opened),
            malformed: read(&self.malformed),
            denied: read(&self.denied),
            slow_disconnects: read(&self.slow_disconnects),
            resumed: read(&self.resumed),
            reloads: read(&self.reloads),
            replayed: read(&self.replayed),
        }
    }
}
