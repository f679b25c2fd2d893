//! A topic broker for actix applications: subscribe actors to what changes
//! in a projects workspace, and announce each committed change once to
//! everyone who should hear it.
//!
//! This crate is the actix counterpart of the real-time layer of an Elixir
//! projects module. It has two actors:
//!
//! - [`TopicBroker`] holds the subscribers of each [`Topic`] and hands every
//!   published event to each of them as a [`Delivery`];
//! - [`ProjectsNotifier`] receives a [`Mutation`] from a request handler,
//!   routes it to its topics (`projects:all`, `projects:tasks`,
//!   `projects:templates`, `projects:project:<uuid>`, or an embed topic) and
//!   publishes one shared [`ProjectsEvent`] to all of them.
//!
//! # Quick start
//!
//! ```
//! use actix::prelude::*;
//! use projects_pubsub::{
//!     Delivery, EventName, Mutation, ProjectPayload, ProjectsNotifier, Subscribe, Topic,
//!     TopicBroker,
//! };
//! use uuid::Uuid;
//!
//! /// A live view of the workspace overview.
//! struct Overview;
//!
//! impl Actor for Overview {
//!     type Context = Context<Self>;
//! }
//!
//! impl Handler<Delivery> for Overview {
//!     type Result = ();
//!
//!     fn handle(&mut self, delivery: Delivery, _: &mut Context<Self>) {
//!         println!("{} on {}", delivery.event().name, delivery.topic());
//!     }
//! }
//!
//! # actix::System::new().block_on(async {
//! let broker = TopicBroker::from_registry();
//! let notifier = ProjectsNotifier::from_registry();
//!
//! let overview = Overview.start();
//! // The broker holds subscribers weakly: keep `overview` while it should live.
//! let subscribe = Subscribe::new(Topic::all(), overview.clone().recipient());
//! broker.send(subscribe).await.unwrap().unwrap();
//!
//! let project = ProjectPayload::new(Uuid::new_v4(), "Kitchen refit", false);
//! let receipt = notifier
//!     .send(Mutation::project(EventName::ProjectCreated, project).unwrap())
//!     .await
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(receipt.delivered, 1);
//! # });
//! ```
//!
//! # Limitations
//!
//! - Delivery is at most once and in memory: a subscriber that stops loses
//!   what was queued for it, and nothing is stored for one that subscribes
//!   later.
//! - A subscriber whose last address is dropped stops about one broker
//!   hold later (10 ms by default, [`BrokerConfig::hold`]), not at once:
//!   the broker keeps the addresses it delivered to for that long; one that
//!   keeps receiving events may take a few holds.
//! - A subscriber excluded from a publish ([`Publish::excluding`],
//!   [`Mutation::excluding`]) sees the skipped sequence number as a gap: a
//!   gap means "not delivered to you", not necessarily "lost".
//! - An actor subscribed to two topics of one mutation (`projects:all` and
//!   its project's topic) receives the event once per topic; the two
//!   deliveries share one event ([`Delivery::shared_event`]).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod batch;
mod broker;
mod delivery;
mod event;
mod mutation;
mod notifier;
mod payload;
mod service;
mod topic;
#[cfg(feature = "web")]
pub mod web;
pub mod workload;

pub use batch::{
    Batch, BatchError, BatchFailure, BatchReceipt, Committed, publish_after_commit,
    publish_after_commit_and_wait,
};
pub use broker::{
    BrokerConfig, BrokerStats, GetStats, Overflow, Publish, PublishError, PublishReceipt, Relayed,
    Restart, SetRelay, Subscribe, SubscribeError, SubscribeOptions, SubscriberCount, TopicBroker,
    TopicCount, Unsubscribe, UnsubscribeAll,
};
pub use delivery::{Delivery, SubscriberId, SubscriptionId};
pub use event::{
    CustomName, DecodeError, EventName, EventNameError, MAX_EVENT_JSON_LEN, MAX_EVENT_NAME_LEN,
    ProjectsEvent, Resource,
};
pub use mutation::{Mutation, MutationError, Targets};
pub use notifier::{
    Forward, NotifierConfig, NotifyError, NotifyReceipt, ProjectsNotifier, SetBroadcasting,
};
pub use payload::{
    AssignmentPayload, DependencyPayload, Payload, ProjectPayload, ProjectRef, TaskPayload,
};
pub use topic::{EmbedName, MAX_ORG_ID_LEN, MAX_TOPIC_LEN, OrgId, Topic, TopicError, TopicKind};

#[cfg(feature = "redis")]
pub mod cluster;
#[cfg(feature = "redis")]
pub use cluster::{BridgeConfig, BridgeError, NodeId, RedisBridge};
