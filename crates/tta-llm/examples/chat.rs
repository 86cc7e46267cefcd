//! Asks an OpenAI-compatible server (or, with `--anthropic`, the Anthropic Messages API) one question and prints the answer, then one line of
//! usage and timings.
//!
//! ```text
//! cargo run -p tta-llm --example chat -- --base-url URL --model MODEL [--api-key-env VAR] [--anthropic] [--stream] PROMPT
//! ```
//!
//! The last line is `usage: input=N output=M ttft_ms=T total_ms=D` (`ttft_ms` is the time
//! to the first chunk when streaming, to the whole answer otherwise). Any failure is one
//! line on standard error and a non-zero exit.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use futures_util::StreamExt;
use tta_core::{StreamPrimitive, WorkflowContext, WorkflowPrimitive};
use tta_llm::{Anthropic, ChatChunk, ChatRequest, ChatResponse, Message, OpenAiCompatible, Usage};

/// One question to an OpenAI-compatible chat completions API, or to Anthropic's.
#[derive(Parser)]
struct Args {
    /// The API's base URL, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`.
    #[arg(long)]
    base_url: String,
    /// The model to ask.
    #[arg(long)]
    model: String,
    /// The environment variable that holds the API key (none is sent without it).
    #[arg(long)]
    api_key_env: Option<String>,
    /// Speak the Anthropic Messages API (`x-api-key`, `/messages`).
    #[arg(long)]
    anthropic: bool,
    /// Print the answer as it arrives.
    #[arg(long)]
    stream: bool,
    /// The question.
    prompt: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let request = ChatRequest::new(vec![Message::user(&args.prompt)]);
    if args.anthropic {
        let mut builder = Anthropic::builder(&args.base_url).model(&args.model);
        if let Some(var) = &args.api_key_env {
            builder = builder.api_key_env(var);
        }
        ask(&builder.build()?, request, args.stream).await
    } else {
        let mut builder = OpenAiCompatible::builder(&args.base_url).model(&args.model);
        if let Some(var) = &args.api_key_env {
            builder = builder.api_key_env(var);
        }
        ask(&builder.build()?, request, args.stream).await
    }
}

async fn ask<C>(
    client: &C,
    request: ChatRequest,
    stream: bool,
) -> Result<(), Box<dyn std::error::Error>>
where
    C: WorkflowPrimitive<ChatRequest, Output = ChatResponse>
        + StreamPrimitive<ChatRequest, Chunk = ChatChunk>,
{
    let cx = WorkflowContext::new();
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    let (usage, ttft) = if stream {
        let mut body = client.stream(request, &cx).await?;
        let ttft = start.elapsed();
        let mut usage = None;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            write!(out, "{}", chunk.delta)?;
            out.flush()?;
            usage = chunk.usage.or(usage);
        }
        writeln!(out)?;
        (usage, ttft)
    } else {
        let answer = client.execute(request, &cx).await?;
        writeln!(out, "{}", answer.content)?;
        (answer.usage, start.elapsed())
    };
    let Usage {
        input_tokens,
        output_tokens,
        ..
    } = usage.unwrap_or_default();
    writeln!(
        out,
        "usage: input={input_tokens} output={output_tokens} ttft_ms={} total_ms={}",
        ttft.as_millis(),
        start.elapsed().as_millis()
    )?;
    Ok(())
}
