//! Helpers shared by the `web_*` tests: a server on a free loopback port,
//! and a small Server-Sent Events reader over awc.

// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

use std::pin::Pin;
use std::time::Duration;

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_web::{App, HttpRequest, HttpServer};
use awc::error::PayloadError;
use futures_util::{Stream, StreamExt};
use projects_pubsub::web::{Denied, EventStream, StreamLimits};
use projects_pubsub::{EventName, Payload, ProjectsEvent, TaskPayload, Topic, TopicBroker};

/// How long any single wait of a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A broker and an event stream served on `127.0.0.1` at a free port.
pub struct Served {
    pub broker: Addr<TopicBroker>,
    pub stream: EventStream,
    pub base: String,
    server: actix_web::dev::ServerHandle,
}

impl Served {
    pub async fn start<F>(limits: StreamLimits, authorize: F) -> Served
    where
        F: Fn(&HttpRequest, &Topic) -> Result<(), Denied> + Send + Sync + 'static,
    {
        Served::with_broker(TopicBroker::default().start(), limits, authorize).await
    }

    pub async fn with_broker<F>(
        broker: Addr<TopicBroker>,
        limits: StreamLimits,
        authorize: F,
    ) -> Served
    where
        F: Fn(&HttpRequest, &Topic) -> Result<(), Denied> + Send + Sync + 'static,
    {
        let stream = EventStream::new(broker.clone(), limits, authorize);
        let service = stream.clone();
        let server = HttpServer::new(move || App::new().service(service.service("/events")))
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("bind a loopback port");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Served {
            broker,
            stream,
            base: format!("http://{addr}"),
            server: handle,
        }
    }

    pub async fn allow_all(limits: StreamLimits) -> Served {
        Served::start(limits, |_: &HttpRequest, _: &Topic| Ok(())).await
    }

    pub fn url(&self, topics: &[&Topic]) -> String {
        let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
        format!("{}/events?{}", self.base, query.join("&"))
    }

    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

pub fn client() -> awc::Client {
    awc::Client::builder().disable_timeout().finish()
}

pub fn task_event(title: &str) -> ProjectsEvent {
    let task = TaskPayload {
        uuid: uuid::Uuid::new_v4(),
        title: title.into(),
    };
    ProjectsEvent::new(EventName::TaskCreated, Payload::Task(task))
}

/// Polls `check` until it holds, failing the test after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One frame of an event stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub raw: String,
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comment: Option<String>,
    pub retry: Option<String>,
}

impl Frame {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("frame data is JSON")
    }

    fn parse(raw: &str) -> Frame {
        let mut frame = Frame {
            raw: raw.to_owned(),
            ..Frame::default()
        };
        let mut data: Vec<&str> = Vec::new();
        for line in raw.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "" => frame.comment = Some(value.to_owned()),
                "id" => frame.id = Some(value.to_owned()),
                "event" => frame.event = Some(value.to_owned()),
                "data" => data.push(value),
                "retry" => frame.retry = Some(value.to_owned()),
                other => panic!("unknown field {other:?} in frame {raw:?}"),
            }
        }
        frame.data = data.join("\n");
        frame
    }
}

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// Reads frames off a streaming response.
pub struct SseReader {
    body: Body,
    buffer: String,
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
}

impl SseReader {
    /// Opens a stream, sending `last_event_id` if given.
    pub async fn open(url: &str, last_event_id: Option<&str>) -> SseReader {
        let mut request = client().get(url);
        if let Some(id) = last_event_id {
            request = request.insert_header(("Last-Event-ID", id));
        }
        let response = request.send().await.expect("the server answers");
        SseReader {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: Box::pin(response),
            buffer: String::new(),
        }
    }

    /// The next frame, or `None` once the server ended the stream.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                return Some(Frame::parse(raw.trim_end_matches('\n')));
            }
            let chunk = tokio::time::timeout(PATIENCE, self.body.next())
                .await
                .expect("a frame within the test's patience");
            match chunk {
                Some(Ok(bytes)) => {
                    self.buffer
                        .push_str(std::str::from_utf8(&bytes).expect("UTF-8 stream"));
                }
                Some(Err(err)) => panic!("stream failed: {err}"),
                None => return None,
            }
        }
    }

    /// The next frame that is not a comment or a `retry`.
    pub async fn next_data(&mut self) -> Frame {
        loop {
            let frame = self.next_frame().await.expect("the stream goes on");
            if frame.comment.is_none() && frame.retry.is_none() {
                return frame;
            }
        }
    }

    /// The whole body of a refused request, as text.
    pub async fn text(mut self) -> String {
        let mut text = std::mem::take(&mut self.buffer);
        while let Some(Ok(bytes)) = self.body.next().await {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
        text
    }
}
