//! Reading what a client asks to stream: its topics, untrusted.

use std::fmt;

use actix_web::HttpRequest;
use actix_web::web::Query;

use crate::topic::{Topic, TopicError};

/// The query parameter that names one topic; repeat it for several.
pub const TOPIC_PARAM: &str = "topic";

/// Why a stream request was answered `400 Bad Request`.
///
/// Its [`Display`](fmt::Display) text is the body of the answer, so a
/// developer looking at the network tab reads what to fix. Nothing is
/// subscribed when a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The query string is not `application/x-www-form-urlencoded`.
    MalformedQuery(String),
    /// No `topic` parameter.
    NoTopic,
    /// More `topic` parameters than the limit allows.
    TooManyTopics {
        /// Topics requested.
        requested: usize,
        /// The limit, [`StreamLimits::max_topics`](super::StreamLimits::max_topics).
        max: usize,
    },
    /// A topic does not parse.
    MalformedTopic {
        /// Its position among the `topic` parameters, from 1.
        position: usize,
        /// The topic as sent, shortened to 80 characters.
        text: String,
        /// What is wrong with it.
        error: TopicError,
    },
    /// The broker refused the topic, for example an unscoped topic on a
    /// broker in tenant mode.
    Refused {
        /// The topic.
        topic: Topic,
        /// The broker's reason.
        reason: String,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::MalformedQuery(reason) => write!(f, "malformed query string: {reason}"),
            RequestError::NoTopic => write!(
                f,
                "no topic requested: add ?{TOPIC_PARAM}=<topic>, once per topic"
            ),
            RequestError::TooManyTopics { requested, max } => write!(
                f,
                "{requested} topics requested, a stream may carry at most {max}"
            ),
            RequestError::MalformedTopic {
                position,
                text,
                error,
            } => write!(f, "topic {position} ({text:?}): {error}"),
            RequestError::Refused { topic, reason } => write!(f, "{topic}: {reason}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// The topics of a request, parsed with [`Topic::parse`], duplicates
/// removed, in the order given. Counts the parameters before parsing any,
/// so an oversized request costs nothing.
pub(crate) fn requested_topics(
    request: &HttpRequest,
    max: usize,
) -> Result<Vec<Topic>, RequestError> {
    let pairs = Query::<Vec<(String, String)>>::from_query(request.query_string())
        .map_err(|err| RequestError::MalformedQuery(err.to_string()))?
        .into_inner();

    let texts: Vec<&str> = pairs
        .iter()
        .filter(|(key, _)| key == TOPIC_PARAM)
        .map(|(_, value)| value.as_str())
        .collect();
    if texts.is_empty() {
        return Err(RequestError::NoTopic);
    }
    if texts.len() > max {
        return Err(RequestError::TooManyTopics {
            requested: texts.len(),
            max,
        });
    }

    let mut topics: Vec<Topic> = Vec::with_capacity(texts.len());
    for (at, text) in texts.into_iter().enumerate() {
        let topic = Topic::parse(text).map_err(|error| RequestError::MalformedTopic {
            position: at + 1,
            text: text.chars().take(80).collect(),
            error,
        })?;
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    Ok(topics)
}
