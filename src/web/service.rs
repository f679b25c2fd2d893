//! [`EventStream`]: the actix-web endpoint that opens streams.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::prelude::*;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, Responder, web};
use actix_web_lab::sse;
use tokio::sync::mpsc;

use super::connection::{Begin, Connection, Lane};
use super::journal::{Journal, Lease, Since, SinceReply, Track};
use super::limits::StreamLimits;
use super::position::StreamPosition;
use super::request::{RequestError, requested_topics};
use super::stats::{Counters, StreamStats};
use crate::broker::{Subscribe, SubscribeError, SubscribeOptions, TopicBroker};
use crate::topic::Topic;

/// Why the authorisation function refused a topic: answered `403
/// Forbidden`, with the reason as the body.
///
/// # Examples
///
/// ```
/// use projects_pubsub::web::Denied;
///
/// let denied = Denied::new("you are not a member of this project");
/// assert_eq!(denied.reason(), "you are not a member of this project");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(String);

impl Denied {
    /// A refusal with a reason the client may read.
    pub fn new(reason: impl Into<String>) -> Denied {
        Denied(reason.into())
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Denied {}

type AuthorizeFn = dyn Fn(&HttpRequest, &Topic) -> Result<(), Denied> + Send + Sync;

/// What every connection of one [`EventStream`] shares.
pub(crate) struct Shared {
    pub(crate) broker: Addr<TopicBroker>,
    pub(crate) journal: Addr<Journal>,
    pub(crate) limits: StreamLimits,
    pub(crate) counters: Counters,
    authorize: Box<AuthorizeFn>,
    unavailable: AtomicBool,
}

/// An actix-web endpoint that streams the events of the requested topics
/// to a browser as Server-Sent Events.
///
/// Mount it with [`EventStream::service`] (a `GET` resource at a path), or
/// call [`EventStream::respond`] from a handler of your own. A client asks
/// for topics with repeated `topic` query parameters:
///
/// ```text
/// GET /events?topic=projects:all&topic=projects:project:6f9619ff-8b86-d011-b42d-00c04fc964ff
/// ```
///
/// Each request is checked before anything is subscribed: every topic is
/// parsed with [`Topic::parse`] (a malformed one, or more than
/// [`StreamLimits::max_topics`], is `400 Bad Request` with the reason), then
/// handed with the request to the authorisation function (a refusal is
/// `403 Forbidden`). Then one subscriber actor is started for the
/// connection; it lives exactly as long as the connection. The module
/// documentation of [`web`](super) describes the frames, resume and limits.
///
/// `EventStream` is cheap to clone: clones share their journal, limits and
/// counters, which is what `HttpServer::new`'s factory closure needs.
///
/// # Examples
///
/// ```no_run
/// use actix::prelude::*;
/// use actix_web::{App, HttpServer};
/// use projects_pubsub::TopicBroker;
/// use projects_pubsub::web::{Denied, EventStream, StreamLimits};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let stream = EventStream::new(
///         TopicBroker::from_registry(),
///         StreamLimits::default(),
///         |_request, topic| {
///             if topic.is_embed() {
///                 return Err(Denied::new("embed topics are not streamed"));
///             }
///             Ok(())
///         },
///     );
///     HttpServer::new(move || App::new().service(stream.service("/events")))
///         .bind(("127.0.0.1", 8080))?
///         .run()
///         .await
/// }
/// ```
#[derive(Clone)]
pub struct EventStream {
    shared: Arc<Shared>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("limits", &self.shared.limits)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// An endpoint streaming the topics of `broker`, within `limits`,
    /// asking `authorize` about every requested topic.
    ///
    /// `authorize` sees the request (its headers, cookies, extensions that a
    /// session middleware set) and one parsed topic; it returns `Ok(())` to
    /// allow the topic, or a [`Denied`] to refuse the whole request with
    /// `403`. It is called for every topic of a request before anything is
    /// subscribed, on the worker thread serving the request: keep it quick,
    /// and do slow lookups in a middleware beforehand.
    ///
    /// Starts the endpoint's resume journal, an actor, on the current
    /// arbiter.
    ///
    /// # Panics
    ///
    /// Outside a running actix system, as starting any actor does.
    pub fn new<F>(broker: Addr<TopicBroker>, limits: StreamLimits, authorize: F) -> EventStream
    where
        F: Fn(&HttpRequest, &Topic) -> Result<(), Denied> + Send + Sync + 'static,
    {
        let limits = limits.sanitized();
        let journal = Journal::new(
            broker.clone(),
            limits.resume_buffer,
            limits.resume_window,
            limits.max_resume_topics,
        )
        .start();
        EventStream {
            shared: Arc::new(Shared {
                broker,
                journal,
                limits,
                counters: Counters::default(),
                authorize: Box::new(authorize),
                unavailable: AtomicBool::new(false),
            }),
        }
    }

    /// A `GET` resource at `path` serving this endpoint, for
    /// `App::service`.
    pub fn service(&self, path: &str) -> actix_web::Resource {
        let stream = self.clone();
        web::resource(path).route(web::get().to(move |request: HttpRequest| {
            let stream = stream.clone();
            async move { stream.respond(request).await }
        }))
    }

    /// Answers one stream request: `400`, `403`, `503` when the broker
    /// cannot be reached, or `200` with a `text/event-stream` body.
    pub async fn respond(&self, request: HttpRequest) -> HttpResponse {
        let shared = &self.shared;
        let topics = match requested_topics(&request, shared.limits.max_topics) {
            Ok(topics) => topics,
            Err(err) => return self.bad_request(err),
        };
        for topic in &topics {
            if let Err(denied) = (shared.authorize)(&request, topic) {
                Counters::add(&shared.counters.denied, 1);
                log::debug!("event stream refused {topic}: {denied}");
                return HttpResponse::Forbidden()
                    .content_type("text/plain; charset=utf-8")
                    .body(format!("{topic}: {denied}"));
            }
        }

        // A value that is not a position resumes nothing: every topic reloads.
        let last_seen = request.headers().get("last-event-id").map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| StreamPosition::parse(text).ok())
                .unwrap_or_default()
        });

        match self.open(topics, last_seen).await {
            Ok(rx) => {
                let mut response = sse::Sse::from_infallible_receiver(rx)
                    .with_keep_alive(shared.limits.heartbeat)
                    .with_retry_duration(shared.limits.retry)
                    .respond_to(&request);
                // Asks buffering reverse proxies to pass frames on at once.
                response.headers_mut().insert(
                    header::HeaderName::from_static("x-accel-buffering"),
                    HeaderValue::from_static("no"),
                );
                response
            }
            Err(Opening::Refused(err)) => self.bad_request(err),
            Err(Opening::Unavailable(reason)) => {
                // Once per outage, not once per request.
                if shared.unavailable.swap(true, Ordering::Relaxed) {
                    log::debug!("event stream unavailable: {reason}");
                } else {
                    log::warn!("event stream unavailable: {reason}");
                }
                HttpResponse::ServiceUnavailable()
                    .content_type("text/plain; charset=utf-8")
                    .body("event stream unavailable, try again")
            }
        }
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> StreamStats {
        self.shared.counters.snapshot()
    }

    /// The limits the endpoint was built with.
    pub fn limits(&self) -> &StreamLimits {
        &self.shared.limits
    }

    fn bad_request(&self, err: RequestError) -> HttpResponse {
        Counters::add(&self.shared.counters.malformed, 1);
        log::debug!("event stream request refused: {err}");
        HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body(err.to_string())
    }

    /// Starts the connection's actor, subscribes it, and hands it what it
    /// starts with. The order matters for resume: the journal follows each
    /// topic before the connection subscribes, and is asked for the replay
    /// after, so the replay and the live events overlap rather than leave
    /// a gap; the connection drops the overlap by sequence number.
    async fn open(
        &self,
        topics: Vec<Topic>,
        last_seen: Option<StreamPosition>,
    ) -> Result<mpsc::Receiver<sse::Event>, Opening> {
        let shared = &self.shared;
        let bound = shared.limits.connection_bound;
        let (tx, rx) = mpsc::channel(bound);
        let number = shared.counters.opened.fetch_add(1, Ordering::Relaxed) + 1;
        let connection = Connection::new(number, Arc::clone(shared), tx).start();
        log::debug!("event stream {number} opens on {} topics", topics.len());

        let mut lanes = Vec::with_capacity(topics.len());
        for topic in topics {
            let tracked = shared
                .journal
                .send(Track(topic.clone()))
                .await
                .map_err(|err| Opening::Unavailable(err.to_string()))?
                .map_err(|err| Opening::refused(&topic, err))?;
            let lease = tracked
                .journaled
                .then(|| Lease::new(shared.journal.clone(), topic.clone(), tracked.epoch));
            lanes.push(Lane {
                topic,
                epoch: tracked.epoch,
                seq: tracked.head,
                lease,
            });
        }

        let options = SubscribeOptions::bounded(NonZeroUsize::MIN.saturating_add(bound - 1));
        for lane in &lanes {
            let subscribe = Subscribe::new(lane.topic.clone(), connection.clone().recipient())
                .with_options(options);
            shared
                .broker
                .send(subscribe)
                .await
                .map_err(|err| Opening::Unavailable(err.to_string()))?
                .map_err(|err| Opening::refused(&lane.topic, err))?;
        }

        // Room for the opening frame and a few live events beside the replay.
        let budget = bound.saturating_sub(2).max(1);
        let mut replay = Vec::new();
        let mut reload = Vec::new();
        for (at, lane) in lanes.iter_mut().enumerate() {
            let after = match &last_seen {
                None => Some(lane.seq),
                Some(position) => position.seq_of(lane.epoch),
            };
            let since = Since {
                topic: lane.topic.clone(),
                epoch: lane.epoch,
                after,
            };
            let reply = shared
                .journal
                .send(since)
                .await
                .map_err(|err| Opening::Unavailable(err.to_string()))?;
            let continuous = match (reply, after) {
                (SinceReply::Replay(events), Some(after))
                    if replay.len() + events.len() <= budget =>
                {
                    lane.seq = after;
                    replay.extend(events.into_iter().map(|(seq, event)| (at, seq, event)));
                    true
                }
                (SinceReply::Gone { head }, _) => {
                    lane.seq = head;
                    false
                }
                (SinceReply::Replay(events), _) => {
                    lane.seq = events.last().map_or(lane.seq, |(seq, _)| *seq);
                    false
                }
            };
            // A new client has nothing to reload: it is about to load.
            if last_seen.is_some() && !continuous {
                reload.push(at);
            }
        }

        if last_seen.is_some() {
            if reload.is_empty() {
                Counters::add(&shared.counters.resumed, 1);
            }
            Counters::add(&shared.counters.replayed, replay.len() as u64);
        }
        if !reload.is_empty() {
            Counters::add(&shared.counters.reloads, 1);
        }
        shared.unavailable.store(false, Ordering::Relaxed);
        connection.do_send(Begin {
            lanes,
            replay,
            reload,
        });
        Ok(rx)
    }
}

enum Opening {
    Refused(RequestError),
    Unavailable(String),
}

impl Opening {
    fn refused(topic: &Topic, err: SubscribeError) -> Opening {
        Opening::Refused(RequestError::Refused {
            topic: topic.clone(),
            reason: err.to_string(),
        })
    }
}
