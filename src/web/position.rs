//! The SSE id of every frame: where a stream stands in each of its topics.

use std::fmt;

use smallvec::SmallVec;

/// Longest `Last-Event-ID` value [`StreamPosition::parse`] reads, in bytes.
pub const MAX_POSITION_LEN: usize = 1024;

/// Where a stream stands in each of its topics: the `id` of every frame.
///
/// A browser's `EventSource` remembers the id of the last frame it received
/// and sends it back as `Last-Event-ID` when it reconnects; the service reads
/// it with [`StreamPosition::parse`] to replay what the client missed.
///
/// # Format
///
/// One mark per topic of the stream, joined with `.`; a mark is
/// `<epoch>-<seq>`:
///
/// ```text
/// 9f86d081884c7d65-12.0b1c2d3e4f5a6978-0
/// ```
///
/// - `epoch`, 16 lowercase hex digits, names one run of one topic's
///   history on one server: the service draws a new random epoch each time
///   its resume journal starts following a topic. An epoch therefore says
///   which topic a mark is about, and an epoch the server does not know
///   (the server restarted, or the journal let the topic go) can never be
///   mistaken for a position in the current history.
/// - `seq`, decimal, is the broker's sequence number (see
///   [`Delivery::seq`](crate::Delivery::seq)) of the last event of that
///   topic the client was sent; `0` means none since the epoch began.
///   Within an epoch the journal follows the topic without interruption,
///   so the broker's numbers only grow.
///
/// So `(epoch, seq)` names one position in one topic unambiguously, and the
/// order of the marks does not matter.
///
/// # Examples
///
/// ```
/// use projects_pubsub::web::StreamPosition;
///
/// let position = StreamPosition::parse("9f86d081884c7d65-12.0b1c2d3e4f5a6978-0").unwrap();
/// assert_eq!(position.seq_of(0x9f86d081884c7d65), Some(12));
/// assert_eq!(position.seq_of(0x0b1c2d3e4f5a6978), Some(0));
/// assert_eq!(position.seq_of(1), None);
/// assert_eq!(position.to_string(), "9f86d081884c7d65-12.0b1c2d3e4f5a6978-0");
///
/// assert!(StreamPosition::parse("12").is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamPosition {
    marks: SmallVec<[(u64, u64); 4]>,
}

/// Why a `Last-Event-ID` value is not a [`StreamPosition`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PositionError {
    /// Longer than [`MAX_POSITION_LEN`] bytes.
    TooLong(usize),
    /// A mark is not `<16 hex digits>-<decimal>`.
    BadMark(String),
}

impl fmt::Display for PositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PositionError::TooLong(len) => write!(
                f,
                "stream position is {len} bytes long, the limit is {MAX_POSITION_LEN}"
            ),
            PositionError::BadMark(mark) => write!(
                f,
                "stream position mark {:?} is not <16 hex digits>-<number>",
                mark.chars().take(40).collect::<String>()
            ),
        }
    }
}

impl std::error::Error for PositionError {}

impl StreamPosition {
    /// Reads the text of a `Last-Event-ID` header.
    ///
    /// # Errors
    ///
    /// [`PositionError`] when the text is longer than [`MAX_POSITION_LEN`]
    /// or a mark is not of the documented form. An empty text is an empty
    /// position, not an error.
    pub fn parse(text: &str) -> Result<StreamPosition, PositionError> {
        if text.len() > MAX_POSITION_LEN {
            return Err(PositionError::TooLong(text.len()));
        }

        let mut position = StreamPosition::default();
        for mark in text.split('.').filter(|mark| !mark.is_empty()) {
            let parsed = mark.split_once('-').and_then(|(epoch, seq)| {
                let epoch_ok = epoch.len() == 16 && epoch.bytes().all(|b| b.is_ascii_hexdigit());
                let seq_ok = !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit());
                if !(epoch_ok && seq_ok) {
                    return None;
                }
                Some((u64::from_str_radix(epoch, 16).ok()?, seq.parse().ok()?))
            });
            match parsed {
                Some(parsed) => position.marks.push(parsed),
                None => return Err(PositionError::BadMark(mark.to_owned())),
            }
        }
        Ok(position)
    }

    /// The sequence number this position holds for `epoch`, if any.
    pub fn seq_of(&self, epoch: u64) -> Option<u64> {
        self.marks
            .iter()
            .find(|(known, _)| *known == epoch)
            .map(|(_, seq)| *seq)
    }

    /// Whether the position has no mark at all.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    pub(crate) fn push(&mut self, epoch: u64, seq: u64) {
        self.marks.push((epoch, seq));
    }
}

impl fmt::Display for StreamPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, (epoch, seq)) in self.marks.iter().enumerate() {
            if at > 0 {
                f.write_str(".")?;
            }
            write!(f, "{epoch:016x}-{seq}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_it_parses() {
        let mut position = StreamPosition::default();
        position.push(1, 0);
        position.push(u64::MAX, 42);
        let text = position.to_string();
        assert_eq!(text, "0000000000000001-0.ffffffffffffffff-42");
        assert_eq!(StreamPosition::parse(&text), Ok(position));
    }

    #[test]
    fn refuses_malformed_marks() {
        for bad in [
            "x",
            "1-2",
            "0000000000000001-",
            "000000000000000g-1",
            "0000000000000001-+1",
        ] {
            assert!(StreamPosition::parse(bad).is_err(), "{bad}");
        }
        let long = "0000000000000001-1.".repeat(60);
        assert!(matches!(
            StreamPosition::parse(&long),
            Err(PositionError::TooLong(_))
        ));
    }
}
