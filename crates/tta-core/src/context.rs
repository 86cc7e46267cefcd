//! The per-workflow context every primitive receives.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ledger::CostLedger;

/// What a workflow carries through every primitive: ids, metadata, a deadline, a
/// cancellation token, the OpenTelemetry parent context and the shared [`CostLedger`].
///
/// Cloning is cheap: one reference count and a copied deadline (the ids, metadata,
/// ledger, token and OpenTelemetry `Context` are behind one `Arc`). Children made
/// with [`WorkflowContext::with_deadline`], [`WorkflowContext::with_timeout`] or
/// [`WorkflowContext::child_scope`] can only tighten the deadline and are cancelled with
/// their parent. Nothing in it grows while a workflow runs, except the ledger, whose
/// entry list is bounded.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_core::WorkflowContext;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cx = WorkflowContext::builder()
///     .workflow_id("order-42")
///     .metadata("tenant", "acme")
///     .unwrap()
///     .build();
/// let child = cx.with_timeout(Duration::from_secs(2));
/// assert_eq!(child.workflow_id(), "order-42");
/// assert!(child.remaining().unwrap() <= Duration::from_secs(2));
/// assert_eq!(child.metadata("tenant"), Some("acme"));
/// # }
/// ```
#[derive(Clone)]
pub struct WorkflowContext {
    /// One `Arc`: cloning or dropping a context is one atomic operation; a child with
    /// a new scope or span is one allocation.
    inner: Arc<Inner>,
    /// Outside the `Arc`: a child with a tighter deadline (what every timeout makes) is
    /// a clone, not an allocation.
    deadline: Option<Instant>,
}

#[derive(Clone)]
struct Inner {
    shared: Arc<Shared>,
    ledger: Arc<CostLedger>,
    /// In an `Arc`: cloning a `CancellationToken` takes a lock, cloning an `Arc` does not.
    cancel: Arc<CancellationToken>,
    otel: opentelemetry::Context,
    /// Whether `otel`'s span is the recording span of the primitive execution this
    /// context was made for (see [`WorkflowContext::primitive_span`]).
    own_span: bool,
}

struct Shared {
    workflow_id: Arc<str>,
    session_id: Option<Arc<str>>,
    correlation_id: Option<Arc<str>>,
    metadata: BTreeMap<Arc<str>, Arc<str>>,
}

/// Why a context setting was rejected.
///
/// # Examples
///
/// ```
/// use tta_core::{ContextError, WorkflowContext};
///
/// let err = WorkflowContext::builder().metadata("bad key", "v").unwrap_err();
/// assert!(matches!(err, ContextError::MetadataKey { .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// A metadata key is empty, too long or outside `[A-Za-z0-9_.-]`.
    #[error("metadata key {key:?} is invalid: {reason}")]
    MetadataKey {
        /// The key, with control characters escaped.
        key: String,
        /// Why.
        reason: crate::InvalidName,
    },
    /// A metadata value is too long or holds a control character.
    #[error("metadata value for {key:?} is invalid: {reason}")]
    MetadataValue {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// More metadata entries than [`WorkflowContext::MAX_METADATA_ENTRIES`].
    #[error("at most {max} metadata entries are allowed")]
    TooManyEntries {
        /// The maximum.
        max: usize,
    },
    /// An id is empty, too long or holds a control character.
    #[error("{field} is invalid: {reason}")]
    Id {
        /// Which id.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

impl WorkflowContext {
    /// The most metadata entries a context holds.
    pub const MAX_METADATA_ENTRIES: usize = 64;
    /// The longest metadata value or id, in bytes.
    pub const MAX_VALUE_LEN: usize = 1024;

    /// A root context with a random workflow id, no deadline and a fresh ledger.
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = tta_core::WorkflowContext::new();
    /// assert!(cx.deadline().is_none());
    /// assert!(!cx.is_cancelled());
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts a root context with ids and metadata.
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = tta_core::WorkflowContext::builder().session_id("s-1").unwrap().build();
    /// assert_eq!(cx.session_id(), Some("s-1"));
    /// ```
    pub fn builder() -> WorkflowContextBuilder {
        WorkflowContextBuilder::default()
    }

    /// The workflow id.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::WorkflowContext::new().workflow_id().starts_with("wf-"));
    /// ```
    pub fn workflow_id(&self) -> &str {
        &self.inner.shared.workflow_id
    }

    pub(crate) fn workflow_id_shared(&self) -> Arc<str> {
        Arc::clone(&self.inner.shared.workflow_id)
    }

    /// The session id, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::WorkflowContext::new().session_id(), None);
    /// ```
    pub fn session_id(&self) -> Option<&str> {
        self.inner.shared.session_id.as_deref()
    }

    /// The correlation id, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::WorkflowContext::new().correlation_id(), None);
    /// ```
    pub fn correlation_id(&self) -> Option<&str> {
        self.inner.shared.correlation_id.as_deref()
    }

    /// One metadata value.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::WorkflowContext::new().metadata("x"), None);
    /// ```
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.inner.shared.metadata.get(key).map(|v| &**v)
    }

    /// Every metadata entry, sorted by key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::WorkflowContext::new().metadata_iter().count(), 0);
    /// ```
    pub fn metadata_iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner.shared.metadata.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The workflow's shared cost ledger.
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = tta_core::WorkflowContext::new();
    /// assert_eq!(cx.ledger().totals().entries, 0);
    /// ```
    pub fn ledger(&self) -> &CostLedger {
        &self.inner.ledger
    }

    /// A child whose ledger is a [scope](CostLedger::scoped) of this one: what is recorded
    /// through the child lands in both, so the returned scope's totals are what the
    /// child's work cost. Caches use it to learn what a fill cost.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{AttemptKind, CostEntry, TokenUsage, Usd, WorkflowContext};
    ///
    /// let cx = WorkflowContext::new();
    /// let (child, scope) = cx.with_ledger_scope();
    /// child.ledger().record(CostEntry::spent(AttemptKind::RouteCall, "r", TokenUsage::new(1, 1), Usd::from_picos(7)));
    /// assert_eq!(scope.totals().spent, Usd::from_picos(7));
    /// assert_eq!(cx.ledger().totals().spent, Usd::from_picos(7));
    /// ```
    pub fn with_ledger_scope(&self) -> (Self, Arc<CostLedger>) {
        let scope = Arc::new(CostLedger::scoped(Arc::clone(&self.inner.ledger)));
        let mut child = self.clone();
        Arc::make_mut(&mut child.inner).ledger = Arc::clone(&scope);
        (child, scope)
    }

    /// The deadline, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cx = tta_core::WorkflowContext::new().with_timeout(std::time::Duration::from_secs(1));
    /// assert!(cx.deadline().is_some());
    /// # }
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (zero once it has passed); `None` without a deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// let cx = tta_core::WorkflowContext::new().with_timeout(Duration::from_secs(3));
    /// tokio::time::advance(Duration::from_secs(1)).await;
    /// assert_eq!(cx.remaining(), Some(Duration::from_secs(2)));
    /// # }
    /// ```
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// A child whose deadline is the earlier of this one and `deadline`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// let near = Instant::now() + Duration::from_secs(1);
    /// let cx = tta_core::WorkflowContext::new().with_deadline(near);
    /// // A child cannot loosen its parent's deadline.
    /// assert_eq!(cx.with_deadline(near + Duration::from_secs(60)).deadline(), Some(near));
    /// # }
    /// ```
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        let mut child = self.clone();
        child.deadline = Some(match self.deadline {
            Some(current) => current.min(deadline),
            None => deadline,
        });
        child
    }

    /// A child whose deadline is at most `timeout` from now.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let cx = tta_core::WorkflowContext::new().with_timeout(Duration::from_millis(10));
    /// assert!(cx.remaining().unwrap() <= Duration::from_millis(10));
    /// # }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.with_deadline(deadline),
            // Too far in the future to represent: no tighter than the current deadline.
            None => self.clone(),
        }
    }

    /// A child with its own cancellation scope: cancelling it leaves this context
    /// running, cancelling this context cancels it.
    ///
    /// # Examples
    ///
    /// ```
    /// let parent = tta_core::WorkflowContext::new();
    /// let child = parent.child_scope();
    /// child.cancel();
    /// assert!(child.is_cancelled() && !parent.is_cancelled());
    /// let child = parent.child_scope();
    /// parent.cancel();
    /// assert!(child.is_cancelled());
    /// ```
    pub fn child_scope(&self) -> Self {
        let mut child = self.clone();
        Arc::make_mut(&mut child.inner).cancel = Arc::new(self.inner.cancel.child_token());
        child
    }

    /// Cancels this scope and every child scope.
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = tta_core::WorkflowContext::new();
    /// cx.cancel();
    /// assert!(cx.is_cancelled());
    /// ```
    pub fn cancel(&self) {
        self.inner.cancel.cancel();
    }

    /// `true` once this scope or an ancestor was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!tta_core::WorkflowContext::new().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// The cancellation token, to await cancellation or hand to other code.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cx = tta_core::WorkflowContext::new();
    /// cx.cancel();
    /// cx.cancellation_token().cancelled().await;
    /// # }
    /// ```
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// The OpenTelemetry context: spans started by primitives are children of its span.
    ///
    /// # Examples
    ///
    /// ```
    /// use opentelemetry::trace::TraceContextExt;
    /// assert!(!tta_core::WorkflowContext::new().otel_context().has_active_span());
    /// ```
    pub fn otel_context(&self) -> &opentelemetry::Context {
        &self.inner.otel
    }

    /// A child whose OpenTelemetry parent is `otel` (everything else shared).
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = tta_core::WorkflowContext::new().with_otel_context(opentelemetry::Context::current());
    /// assert!(!cx.is_cancelled());
    /// ```
    pub fn with_otel_context(&self, otel: opentelemetry::Context) -> Self {
        let mut child = self.clone();
        Arc::make_mut(&mut child.inner).otel = otel;
        Arc::make_mut(&mut child.inner).own_span = false;
        child
    }

    /// A child whose OpenTelemetry parent is `otel`, whose span is the recording span of
    /// a primitive execution (for primitives' own instrumentation).
    pub(crate) fn with_primitive_span(&self, otel: opentelemetry::Context) -> Self {
        let mut child = self.clone();
        Arc::make_mut(&mut child.inner).otel = otel;
        Arc::make_mut(&mut child.inner).own_span = true;
        child
    }

    /// The recording span of the primitive execution this context belongs to, for that
    /// primitive's own attributes and events; `None` when its span does not record (no
    /// tracer installed, or not sampled), so attributes never land on a caller's span.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::WorkflowContext::new().primitive_span().is_none());
    /// ```
    pub fn primitive_span(&self) -> Option<opentelemetry::trace::SpanRef<'_>> {
        use opentelemetry::trace::TraceContextExt;
        self.inner.own_span.then(|| self.inner.otel.span())
    }
}

impl Default for WorkflowContext {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for WorkflowContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowContext")
            .field("workflow_id", &self.inner.shared.workflow_id)
            .field("session_id", &self.inner.shared.session_id)
            .field("correlation_id", &self.inner.shared.correlation_id)
            .field("metadata", &self.inner.shared.metadata)
            .field("deadline", &self.deadline)
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Builds a root [`WorkflowContext`].
///
/// Ids and metadata values must be at most [`WorkflowContext::MAX_VALUE_LEN`] bytes with
/// no control characters; metadata keys follow the [`PrimitiveName`](crate::PrimitiveName)
/// rules; at most [`WorkflowContext::MAX_METADATA_ENTRIES`] entries.
///
/// # Examples
///
/// ```
/// use tta_core::WorkflowContext;
///
/// let cx = WorkflowContext::builder()
///     .workflow_id("wf-1")
///     .correlation_id("req-9").unwrap()
///     .metadata("user_tier", "pro").unwrap()
///     .ledger_capacity(16)
///     .build();
/// assert_eq!(cx.correlation_id(), Some("req-9"));
/// assert_eq!(cx.ledger().capacity(), 16);
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct WorkflowContextBuilder {
    workflow_id: Option<Arc<str>>,
    session_id: Option<Arc<str>>,
    correlation_id: Option<Arc<str>>,
    metadata: BTreeMap<Arc<str>, Arc<str>>,
    ledger_capacity: Option<usize>,
    otel: Option<opentelemetry::Context>,
    cancel: Option<CancellationToken>,
}

fn check_value(value: &str) -> Result<(), &'static str> {
    if value.len() > WorkflowContext::MAX_VALUE_LEN {
        Err("longer than 1024 bytes")
    } else if value.chars().any(char::is_control) {
        Err("holds a control character")
    } else {
        Ok(())
    }
}

fn check_id(field: &'static str, value: &str) -> Result<Arc<str>, ContextError> {
    if value.is_empty() {
        return Err(ContextError::Id {
            field,
            reason: "empty",
        });
    }
    check_value(value).map_err(|reason| ContextError::Id { field, reason })?;
    Ok(Arc::from(value))
}

impl WorkflowContextBuilder {
    /// Sets the workflow id. An invalid id is replaced by a generated one, since the
    /// workflow id is always present; use [`Self::try_workflow_id`] to be told instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = tta_core::WorkflowContext::builder().workflow_id("").build();
    /// assert!(cx.workflow_id().starts_with("wf-"));
    /// ```
    pub fn workflow_id(mut self, id: &str) -> Self {
        self.workflow_id = check_id("workflow id", id).ok();
        self
    }

    /// Sets the workflow id.
    ///
    /// # Errors
    ///
    /// [`ContextError::Id`] for an empty, too long or control-character id.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::WorkflowContext::builder().try_workflow_id("a\nb").is_err());
    /// ```
    pub fn try_workflow_id(mut self, id: &str) -> Result<Self, ContextError> {
        self.workflow_id = Some(check_id("workflow id", id)?);
        Ok(self)
    }

    /// Sets the session id.
    ///
    /// # Errors
    ///
    /// [`ContextError::Id`] for an empty, too long or control-character id.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::WorkflowContext::builder().session_id("s").is_ok());
    /// ```
    pub fn session_id(mut self, id: &str) -> Result<Self, ContextError> {
        self.session_id = Some(check_id("session id", id)?);
        Ok(self)
    }

    /// Sets the correlation id.
    ///
    /// # Errors
    ///
    /// [`ContextError::Id`] for an empty, too long or control-character id.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::WorkflowContext::builder().correlation_id("\u{7}").is_err());
    /// ```
    pub fn correlation_id(mut self, id: &str) -> Result<Self, ContextError> {
        self.correlation_id = Some(check_id("correlation id", id)?);
        Ok(self)
    }

    /// Adds one metadata entry (replacing an earlier value of the same key).
    ///
    /// # Errors
    ///
    /// [`ContextError`] for an invalid key or value, or too many entries.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = tta_core::WorkflowContext::builder();
    /// assert!(b.metadata("tenant", "bad\u{0}value").is_err());
    /// ```
    pub fn metadata(mut self, key: &str, value: &str) -> Result<Self, ContextError> {
        crate::PrimitiveName::new(key).map_err(|reason| ContextError::MetadataKey {
            key: key.escape_debug().to_string(),
            reason,
        })?;
        check_value(value).map_err(|reason| ContextError::MetadataValue {
            key: key.to_owned(),
            reason,
        })?;
        if !self.metadata.contains_key(key)
            && self.metadata.len() >= WorkflowContext::MAX_METADATA_ENTRIES
        {
            return Err(ContextError::TooManyEntries {
                max: WorkflowContext::MAX_METADATA_ENTRIES,
            });
        }
        self.metadata.insert(Arc::from(key), Arc::from(value));
        Ok(self)
    }

    /// How many ledger entries to keep (totals are always complete).
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = tta_core::WorkflowContext::builder().ledger_capacity(0).build();
    /// assert_eq!(cx.ledger().capacity(), 0);
    /// ```
    pub fn ledger_capacity(mut self, capacity: usize) -> Self {
        self.ledger_capacity = Some(capacity);
        self
    }

    /// The OpenTelemetry parent (for example the server span of an incoming request).
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = tta_core::WorkflowContext::builder().otel_context(opentelemetry::Context::new()).build();
    /// # let _ = cx;
    /// ```
    pub fn otel_context(mut self, otel: opentelemetry::Context) -> Self {
        self.otel = Some(otel);
        self
    }

    /// Uses `token` for cancellation, so an outside owner can cancel the workflow.
    ///
    /// # Examples
    ///
    /// ```
    /// let token = tokio_util::sync::CancellationToken::new();
    /// let cx = tta_core::WorkflowContext::builder().cancellation_token(token.clone()).build();
    /// token.cancel();
    /// assert!(cx.is_cancelled());
    /// ```
    pub fn cancellation_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Builds the root context.
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = tta_core::WorkflowContext::builder().build();
    /// assert!(cx.deadline().is_none());
    /// ```
    pub fn build(self) -> WorkflowContext {
        let workflow_id = self.workflow_id.unwrap_or_else(|| {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(0);
            Arc::from(format!("wf-{:016x}", hasher.finish()))
        });
        WorkflowContext {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    workflow_id,
                    session_id: self.session_id,
                    correlation_id: self.correlation_id,
                    metadata: self.metadata,
                }),
                ledger: Arc::new(CostLedger::with_capacity(
                    self.ledger_capacity.unwrap_or(CostLedger::DEFAULT_CAPACITY),
                )),
                cancel: Arc::new(self.cancel.unwrap_or_default()),
                otel: self.otel.unwrap_or_default(),
                own_span: false,
            }),
            deadline: None,
        }
    }
}
