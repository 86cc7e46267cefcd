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

/// The stream rules under generated and random bytes, for OpenAI's and Anthropic's
/// parsers: whatever the provider sends, split wherever the network splits it, the
/// stream ends; at most one error item, and only last; a clean end only after the
/// provider's terminator; every error of a class a router can act on. Run time-boxed by
/// `cargo xtask fuzz`.
#[cfg(test)]
mod fuzz {
    use eventsource_stream::Eventsource;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseResult;
    use serde_json::json;

    use super::*;

    /// One piece of a provider's body.
    fn piece(terminator: &'static str) -> impl Strategy<Value = Vec<u8>> {
        let chunk = ("[a-z ]{0,12}", proptest::option::of("stop|length|content_filter|tool_calls"))
            .prop_map(|(text, finish)| {
                let c = json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]});
                format!("data: {c}\n\n").into_bytes()
            });
        let anthropic = prop_oneof![
            Just("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n\n".to_owned()),
            "[a-z ]{0,12}".prop_map(|t| format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{t}\"}}}}\n\n")),
            Just("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n".to_owned()),
            Just("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n".to_owned()),
        ]
        .prop_map(String::into_bytes);
        prop_oneof![
            4 => chunk,
            3 => anthropic,
            1 => Just(terminator.as_bytes().to_vec()),
            1 => Just(b": keep-alive\n\n".to_vec()),
            1 => Just(b"event: error\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n".to_vec()),
            1 => Just(b"data: {\"choices\": [{\"delta\": {\"content\": 5}}]}\n\n".to_vec()),
            1 => Just(b"data: {\"id\": \"c\", \"choi".to_vec()),
            1 => Just(b"\r\n\r\n".to_vec()),
            1 => proptest::collection::vec(any::<u8>(), 0..64),
        ]
    }

    /// A body of pieces, cut into the reads the network delivers.
    fn body(terminator: &'static str) -> impl Strategy<Value = Vec<Vec<u8>>> {
        (
            proptest::collection::vec(piece(terminator), 0..12),
            proptest::collection::vec(1usize..40, 1..8),
        )
            .prop_map(|(pieces, cuts)| {
                let bytes = pieces.concat();
                let mut reads = Vec::new();
                let mut at = 0;
                for cut in cuts.iter().cycle() {
                    if at >= bytes.len() {
                        break;
                    }
                    let end = (at + cut).min(bytes.len());
                    reads.push(bytes[at..end].to_vec());
                    at = end;
                }
                reads
            })
    }

    fn holds<F>(
        rt: &tokio::runtime::Runtime,
        reads: Vec<Vec<u8>>,
        terminator: &str,
        parse: F,
    ) -> TestCaseResult
    where
        F: FnMut(&Event) -> Step + Send + 'static,
    {
        let whole = reads.concat();
        let events = futures_util::stream::iter(reads.into_iter().map(Ok::<_, std::io::Error>))
            .eventsource();
        let items: Vec<Result<ChatChunk, Error>> =
            rt.block_on(chunks(events, WorkflowContext::new(), true, parse).collect());
        let errors = items.iter().filter(|i| i.is_err()).count();
        prop_assert!(errors <= 1, "{errors} error items");
        if let Some(Err(e)) = items.last() {
            prop_assert!(
                matches!(
                    e.class(),
                    ErrorClass::Unavailable | ErrorClass::ContentFilter
                ),
                "class {:?}: {e}",
                e.class()
            );
        } else {
            let needle = terminator.as_bytes();
            prop_assert!(
                whole.windows(needle.len()).any(|w| w == needle),
                "a clean end without the terminator"
            );
        }
        if errors == 1 {
            prop_assert!(
                items.last().is_some_and(Result::is_err),
                "the error item is not last"
            );
        }
        Ok(())
    }

    #[test]
    fn openai_streams_end_once_and_cleanly_only_after_done() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tta_tests::fuzz::check("sse/openai", 512, body("data: [DONE]\n\n"), |reads| {
            holds(&rt, reads, "[DONE]", crate::openai::parse_event)
        });
    }

    #[test]
    fn anthropic_streams_end_once_and_cleanly_only_after_message_stop() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tta_tests::fuzz::check(
            "sse/anthropic",
            512,
            body("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            |reads| holds(&rt, reads, "message_stop", crate::anthropic::parser()),
        );
    }
}
