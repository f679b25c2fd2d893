//! The bounds every stream of an [`EventStream`](super::EventStream) keeps.

use std::time::Duration;

/// The bounds of an [`EventStream`](super::EventStream): what one client may
/// ask for and cost, and how long the server remembers for resuming.
///
/// Every field has a builder method of the same name; the defaults suit a
/// browser page that watches a handful of topics.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use projects_pubsub::web::StreamLimits;
///
/// let limits = StreamLimits::default()
///     .max_topics(4)
///     .heartbeat(Duration::from_secs(20))
///     .resume_buffer(0); // no resume: a reconnecting client always reloads
/// assert_eq!(limits.max_topics, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamLimits {
    /// Most `topic` parameters one request may carry; more is a `400`.
    /// Default 8.
    pub max_topics: usize,
    /// Most frames queued for one client and not yet taken by the HTTP
    /// layer; a client that lets this many pile up is too slow and is
    /// disconnected. It also bounds each of the connection's broker
    /// subscriptions (see
    /// [`SubscribeOptions::bounded`](crate::SubscribeOptions::bounded)).
    /// At least 2. Default 256.
    pub connection_bound: usize,
    /// How often a comment line (`: keep-alive`) is written, so that
    /// proxies keep an idle stream open and a closed connection is noticed.
    /// Default 15 seconds.
    pub heartbeat: Duration,
    /// The reconnection delay the stream asks browsers to wait (`retry:`).
    /// Default 2 seconds.
    pub retry: Duration,
    /// Events the resume journal keeps per topic; `0` turns resume off.
    /// Default 256.
    pub resume_buffer: usize,
    /// How long the journal keeps following a topic after its last client
    /// left, so that a client reconnecting within it can resume. Default
    /// 2 minutes.
    pub resume_window: Duration,
    /// Most topics the journal follows at once; past it, the topic idle the
    /// longest is let go, and when none is idle a new topic is streamed
    /// without resume. Default 10,000.
    pub max_resume_topics: usize,
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            max_topics: 8,
            connection_bound: 256,
            heartbeat: Duration::from_secs(15),
            retry: Duration::from_secs(2),
            resume_buffer: 256,
            resume_window: Duration::from_secs(120),
            max_resume_topics: 10_000,
        }
    }
}

impl StreamLimits {
    /// Sets [`StreamLimits::max_topics`] (at least 1).
    pub fn max_topics(mut self, max: usize) -> StreamLimits {
        self.max_topics = max.max(1);
        self
    }

    /// Sets [`StreamLimits::connection_bound`] (at least 2).
    pub fn connection_bound(mut self, frames: usize) -> StreamLimits {
        self.connection_bound = frames.max(2);
        self
    }

    /// Sets [`StreamLimits::heartbeat`] (at least one millisecond).
    pub fn heartbeat(mut self, every: Duration) -> StreamLimits {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// Sets [`StreamLimits::retry`].
    pub fn retry(mut self, delay: Duration) -> StreamLimits {
        self.retry = delay;
        self
    }

    /// Sets [`StreamLimits::resume_buffer`]; `0` turns resume off.
    pub fn resume_buffer(mut self, events: usize) -> StreamLimits {
        self.resume_buffer = events;
        self
    }

    /// Sets [`StreamLimits::resume_window`].
    pub fn resume_window(mut self, window: Duration) -> StreamLimits {
        self.resume_window = window;
        self
    }

    /// The same limits with every field within its documented minimum,
    /// for fields set directly.
    pub(crate) fn sanitized(self) -> StreamLimits {
        let StreamLimits {
            max_topics,
            connection_bound,
            heartbeat,
            retry,
            resume_buffer,
            resume_window,
            max_resume_topics,
        } = self;
        StreamLimits::default()
            .max_topics(max_topics)
            .connection_bound(connection_bound)
            .heartbeat(heartbeat)
            .retry(retry)
            .resume_buffer(resume_buffer)
            .resume_window(resume_window)
            .max_resume_topics(max_resume_topics)
    }

    /// Sets [`StreamLimits::max_resume_topics`] (at least 1).
    pub fn max_resume_topics(mut self, topics: usize) -> StreamLimits {
        self.max_resume_topics = topics.max(1);
        self
    }
}
