//! The subscriber actor behind one open stream.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::prelude::*;
use actix_web_lab::sse;
use bytestring::ByteString;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::journal::Lease;
use super::position::StreamPosition;
use super::service::Shared;
use super::stats::Counters;
use crate::broker::UnsubscribeAll;
use crate::delivery::{Delivery, SubscriberId};
use crate::event::ProjectsEvent;
use crate::topic::Topic;

/// One topic of a stream: where the client stands in it.
pub(crate) struct Lane {
    pub(crate) topic: Topic,
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
    pub(crate) lease: Option<Lease>,
}

/// A subscriber of every topic of one stream, alive exactly as long as the
/// stream: it stops when the HTTP layer drops the response body (the client
/// went away), and it stops the stream when the client reads too slowly.
/// Either way its subscriptions go with it.
pub(crate) struct Connection {
    number: u64,
    shared: Arc<Shared>,
    out: mpsc::Sender<sse::Event>,
    lanes: Vec<Lane>,
    // Deliveries that arrive before `Begin`, while the replay is prepared.
    early: Option<Vec<Delivery>>,
    me: Option<SubscriberId>,
}

impl Connection {
    pub(crate) fn new(
        number: u64,
        shared: Arc<Shared>,
        out: mpsc::Sender<sse::Event>,
    ) -> Connection {
        Connection {
            number,
            shared,
            out,
            lanes: Vec::new(),
            early: Some(Vec::new()),
            me: None,
        }
    }

    fn position(&self) -> String {
        let mut position = StreamPosition::default();
        for lane in &self.lanes {
            position.push(lane.epoch, lane.seq);
        }
        position.to_string()
    }

    /// Queues a frame for the client; a full queue means the client does
    /// not keep up, and the stream ends.
    fn push(&mut self, frame: sse::Event, ctx: &mut Context<Self>) {
        match self.out.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.too_slow("its queue is full", ctx);
            }
            Err(TrySendError::Closed(_)) => ctx.stop(),
        }
    }

    fn too_slow(&mut self, why: &str, ctx: &mut Context<Self>) {
        if ctx.state() != ActorState::Running {
            return;
        }
        Counters::add(&self.shared.counters.slow_disconnects, 1);
        log::warn!(
            "event stream {} disconnected: the client reads too slowly ({why}, bound {})",
            self.number,
            self.shared.limits.connection_bound
        );
        ctx.stop();
    }

    fn forward(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        if delivery.missed() > 0 {
            self.too_slow("a subscription overflowed", ctx);
            return;
        }
        let Some(at) = self
            .lanes
            .iter()
            .position(|lane| lane.topic == *delivery.topic())
        else {
            return;
        };
        // Already sent from the journal's replay.
        if delivery.seq() <= self.lanes[at].seq {
            return;
        }

        self.lanes[at].seq = delivery.seq();
        log::trace!(
            "event stream {} sends #{} of {}",
            self.number,
            delivery.seq(),
            delivery.topic()
        );
        // Every stream of this topic sends the same data: the first one to
        // get here writes it for all of them.
        let published = delivery.published();
        let data = match published.stream_data.get() {
            Some(data) => Some(data.clone()),
            None => self
                .data(&published.topic, &published.event)
                .inspect(|data| {
                    let _ = published.stream_data.set(data.clone());
                }),
        };
        drop(delivery);
        if let Some(data) = data {
            self.push(self.data_frame(data), ctx);
        }
    }

    /// The `data` of the frame of `event`, published on `topic`.
    fn data(&self, topic: &Topic, event: &ProjectsEvent) -> Option<ByteString> {
        let body = EventFrame { topic, event };
        match serde_json::to_string(&body) {
            Ok(json) => Some(ByteString::from(json)),
            Err(err) => {
                log::error!("event stream {} lost an event: {err}", self.number);
                None
            }
        }
    }

    /// An event frame with `data`, marked with the stream's position.
    fn data_frame(&self, data: ByteString) -> sse::Event {
        sse::Data::new(data).id(self.position()).into()
    }
}

/// The `data` of an event frame: the event's documented JSON form with the
/// topic it was published on.
#[derive(Serialize)]
struct EventFrame<'a> {
    topic: &'a Topic,
    #[serde(flatten)]
    event: &'a ProjectsEvent,
}

/// The `data` of the first frame of a stream, `ready` or `reload`.
#[derive(Serialize)]
struct OpeningFrame<'a> {
    topics: Vec<&'a Topic>,
    reload: Vec<&'a Topic>,
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(SubscriberId::of_addr(&ctx.address()));
        Counters::add(&self.shared.counters.open, 1);

        // The body holds the receiver: once the HTTP layer drops it, the
        // client is gone. Until then this future keeps the actor alive.
        let out = self.out.clone();
        ctx.spawn(
            async move { out.closed().await }
                .into_actor(self)
                .map(|(), connection, ctx| {
                    log::debug!("event stream {} closed by its client", connection.number);
                    ctx.stop();
                }),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(me) = self.me {
            self.shared.broker.do_send(UnsubscribeAll(me));
        }
        let released = self.lanes.drain(..).filter_map(|lane| lane.lease).count();
        self.shared.counters.open.fetch_sub(1, Ordering::Relaxed);
        log::debug!(
            "event stream {} ended, releasing {released} journal leases",
            self.number
        );
    }
}

impl Handler<Delivery> for Connection {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        match &mut self.early {
            Some(early) if early.len() < self.shared.limits.connection_bound => {
                early.push(delivery);
            }
            Some(_) => self.too_slow("events piled up before the stream began", ctx),
            None => self.forward(delivery, ctx),
        }
    }
}

/// Everything the stream starts with, once the connection is subscribed.
pub(crate) struct Begin {
    pub(crate) lanes: Vec<Lane>,
    /// Lane index, sequence number and event, oldest first per lane.
    pub(crate) replay: Vec<(usize, u64, Arc<ProjectsEvent>)>,
    /// Lanes whose missed events are gone: the client must reload them.
    pub(crate) reload: Vec<usize>,
}

impl Message for Begin {
    type Result = ();
}

impl Handler<Begin> for Connection {
    type Result = ();

    fn handle(&mut self, begin: Begin, ctx: &mut Context<Self>) {
        self.lanes = begin.lanes;
        let opening = OpeningFrame {
            topics: self.lanes.iter().map(|lane| &lane.topic).collect(),
            reload: begin
                .reload
                .iter()
                .map(|at| &self.lanes[*at].topic)
                .collect(),
        };
        let name = if begin.reload.is_empty() {
            "ready"
        } else {
            "reload"
        };
        let data = serde_json::to_string(&opening).unwrap_or_default();
        let frame = sse::Data::new(data).event(name).id(self.position());
        log::debug!(
            "event stream {} begins with {name} on {} topics, replaying {} events",
            self.number,
            self.lanes.len(),
            begin.replay.len()
        );
        self.push(frame.into(), ctx);

        for (at, seq, event) in begin.replay {
            self.lanes[at].seq = seq;
            if let Some(data) = self.data(&self.lanes[at].topic, &event) {
                self.push(self.data_frame(data), ctx);
            }
        }
        for delivery in self.early.take().unwrap_or_default() {
            self.forward(delivery, ctx);
        }
    }
}
