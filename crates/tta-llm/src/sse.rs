//! A provider's server-sent events as a stream of chunks. The provider's parser says
//! what each event is; this module owns the rules every provider shares: only the
//! provider's terminator is a clean end, and a body that ends without it, a cut
//! connection or an event the parser rejects is one error item that ends the stream, as
//! is a terminator after a `content_filter` finish.

use std::pin::Pin;

use eventsource_stream::{Event, EventStreamError};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tta_core::{Error, ErrorClass, WorkflowContext};

use crate::error::malformed;
use crate::http::annotate_response;
use crate::types::{ChatChunk, ChatResponse, FinishReason};

/// What one event of a stream is, as the provider's parser reads it.
pub(crate) enum Step {
    /// Nothing to hand on (a preamble, a keep-alive, an event this client ignores).
    Skip,
    /// A chunk for the caller.
    Chunk(ChatChunk),
    /// The provider's terminator: the stream ended cleanly.
    Done,
    /// The stream failed (a malformed chunk, an error event).
    Fail(Error),
}

/// The data of an event as JSON; data that is not JSON is the provider's fault.
pub(crate) fn json(event: &Event) -> Result<Value, Error> {
    serde_json::from_str(&event.data).map_err(|_| malformed("a chunk of the stream is not JSON"))
}

/// The error of an `error` event or an error body in a stream: the provider's message,
/// bounded; the class `unavailable` (the stream had started, a retry may succeed).
pub(crate) fn provider_error(value: &Value) -> Error {
    let message = value
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("an error event");
    Error::msg(format!(
        "the provider reported: {}",
        message.chars().take(300).collect::<String>()
    ))
    .with_class(ErrorClass::Unavailable)
}

struct State<S, F> {
    events: Pin<Box<S>>,
    parse: F,
    cx: WorkflowContext,
    ended: bool,
    /// What the stream has said of the answer so far, for the span when it ends: the
    /// text too when content is captured.
    seen: ChatResponse,
    capture: bool,
}

/// The chunks of `events`, each event read by `parse`; with `capture`, the answer's
/// text is recorded on the span when the stream ends.
pub(crate) fn chunks<S, E, F>(
    events: S,
    cx: WorkflowContext,
    capture: bool,
    parse: F,
) -> impl Stream<Item = Result<ChatChunk, Error>> + Send + 'static
where
    S: Stream<Item = Result<Event, EventStreamError<E>>> + Send + 'static,
    E: std::fmt::Display,
    F: FnMut(&Event) -> Step + Send + 'static,
{
    let state = State {
        events: Box::pin(events),
        parse,
        cx,
        ended: false,
        seen: ChatResponse::default(),
        capture,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.ended {
            return None;
        }
        loop {
            let step = match state.events.next().await {
                None => Step::Fail(malformed("the stream ended without its terminator")),
                Some(Err(e)) => Step::Fail(
                    Error::msg(format!("the stream was cut: {e}"))
                        .with_class(ErrorClass::Unavailable),
                ),
                Some(Ok(event)) => (state.parse)(&event),
            };
            match step {
                Step::Skip => {}
                Step::Chunk(chunk) => {
                    if state.capture {
                        state.seen.append(&chunk);
                    } else {
                        state.seen.append_meta(&chunk);
                    }
                    return Some((Ok(chunk), state));
                }
                Step::Done => {
                    state.ended = true;
                    annotate_response(&state.cx, &state.seen, state.capture);
                    // A filtered answer is an error, as a filtered call is: its chunks
                    // were handed on, and the stream ends in one error item of class
                    // `content_filter`, billed with the usage the provider reported.
                    if state.seen.finish_reason == Some(FinishReason::ContentFilter) {
                        let err = Error::msg("the provider filtered the answer")
                            .with_class(ErrorClass::ContentFilter);
                        let err = match state.seen.usage {
                            Some(usage) => err.with_billed_usage(usage.tokens()),
                            None => err,
                        };
                        return Some((Err(err), state));
                    }
                    return None;
                }
                Step::Fail(err) => {
                    state.ended = true;
                    return Some((Err(err), state));
                }
            }
        }
    })
}
