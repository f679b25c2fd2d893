//! Live updates in the browser: an actix-web endpoint that streams topics
//! as Server-Sent Events (feature `web`).
//!
//! [`EventStream`] turns topic subscriptions into a `text/event-stream`
//! response that a page reads with the browser's `EventSource`. It is built
//! for untrusted clients: what they ask for is parsed, counted and
//! authorised before anything is subscribed, and what one client may cost
//! is bounded ([`StreamLimits`]). `docs/web.md` walks through mounting it in
//! an existing application.
//!
//! # Getting started
//!
//! ```no_run
//! use actix::prelude::*;
//! use actix_web::{App, HttpServer};
//! use projects_pubsub::TopicBroker;
//! use projects_pubsub::web::{Denied, EventStream, StreamLimits};
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     // Build it once, outside the factory closure: clones share the
//!     // journal and the counters.
//!     let stream = EventStream::new(
//!         TopicBroker::from_registry(),
//!         StreamLimits::default(),
//!         |request, topic| match request.headers().get("x-user") {
//!             Some(_) => Ok(()),
//!             None => Err(Denied::new(format!("sign in to follow {topic}"))),
//!         },
//!     );
//!     HttpServer::new(move || App::new().service(stream.service("/events")))
//!         .bind(("127.0.0.1", 8080))?
//!         .run()
//!         .await
//! }
//! ```
//!
//! In the page:
//!
//! ```js
//! const source = new EventSource("/events?topic=projects:all");
//! source.onmessage = (frame) => console.log(JSON.parse(frame.data).event);
//! source.addEventListener("reload", () => refetchEverything());
//! ```
//!
//! # The request
//!
//! `GET <path>?topic=<topic>&topic=<topic>...`, one `topic` parameter per
//! topic, in the string form of [`Topic`](crate::Topic) (URL-encoded as
//! usual; `:` may stay as it is). Other parameters are ignored, duplicates
//! count once. The answer is one of:
//!
//! - `400 Bad Request`: no topic, more than [`StreamLimits::max_topics`], a
//!   topic that does not parse, or one the broker refuses (tenant mode). The
//!   body is the reason, a [`RequestError`].
//! - `403 Forbidden`: the authorisation function refused a topic; the body
//!   is `<topic>: <reason>`.
//! - `503 Service Unavailable`: the broker or the journal cannot be reached.
//! - `200 OK`: the stream, `text/event-stream`.
//!
//! Nothing is subscribed unless the answer is `200`.
//!
//! # The stream
//!
//! ```text
//! retry: 2000
//!
//! id: 9f86d081884c7d65-0
//! event: ready
//! data: {"topics":["projects:all"],"reload":[]}
//!
//! id: 9f86d081884c7d65-1
//! data: {"topic":"projects:all","event":"task_created","resource":"task","payload":{...}}
//!
//! : keep-alive
//! ```
//!
//! - The first frame is `ready` (or `reload`, below). It comes once the
//!   connection is subscribed to every topic: every event published after
//!   it is on the stream. Its data lists the topics in canonical form.
//! - Each event is an unnamed frame (the `message` event of
//!   `EventSource`): the event's JSON form, as `docs/wire-format.md`
//!   documents it, with a `topic` key added. A connection subscribed to two
//!   topics an event is published on receives it once per topic.
//! - A comment `: keep-alive` every [`StreamLimits::heartbeat`] keeps
//!   proxies from closing an idle stream, and lets the server notice a
//!   client that went away.
//!
//! # Resume
//!
//! Every frame that carries an event or opens the stream has an `id`: a
//! [`StreamPosition`], the position of the client in each of its topics.
//! `EventSource` sends the last one back as `Last-Event-ID` when it
//! reconnects. The endpoint keeps a journal, one bounded buffer per streamed
//! topic ([`StreamLimits::resume_buffer`] events), and on such a reconnect:
//!
//! - a topic whose missed events are all in the journal gets them replayed,
//!   oldest first, before the live events, with no gap and no duplicate;
//! - a topic whose missed events are not all there any more (pushed out of
//!   the buffer, the topic was let go after [`StreamLimits::resume_window`]
//!   without clients, the server restarted, or the id is not a position)
//!   is named in the first frame, which is then called `reload` instead of
//!   `ready`: the client must re-read the state it shows, since it cannot
//!   know what it missed. The stream then goes on live.
//!
//! Replayed events come topic by topic; their order across topics is not
//! kept.
//!
//! # Limits
//!
//! - One client costs at most [`StreamLimits::connection_bound`] queued
//!   frames. A client that reads too slowly for that is disconnected and
//!   counted in [`StreamStats::slow_disconnects`]; the server never buffers
//!   more for it. Its browser reconnects, and resumes if it can.
//! - The journal keeps at most [`StreamLimits::resume_buffer`] events for
//!   each of at most [`StreamLimits::max_resume_topics`] topics. While it
//!   follows a topic it is one subscriber of that topic in the broker, for
//!   as long as a client streams the topic and for the resume window after.
//! - A client that goes away is noticed when a frame or a heartbeat is
//!   written to its closed connection; its actor then stops and its
//!   subscriptions are removed. The heartbeat period bounds how long that
//!   takes.
//! - A stuck connection's socket (a client that stopped reading) is closed
//!   by actix-web and the operating system, not by this endpoint: the
//!   endpoint stops producing for it at once, and what remains is the
//!   kernel's socket buffers.

mod connection;
mod journal;
mod limits;
mod position;
mod request;
mod service;
mod stats;

pub use limits::StreamLimits;
pub use position::{MAX_POSITION_LEN, PositionError, StreamPosition};
pub use request::{RequestError, TOPIC_PARAM};
pub use service::{Denied, EventStream};
pub use stats::StreamStats;
