//! The per-workflow context every primitive receives.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ledger::CostLedger;

/// Who owns a context's deadline; see [`crate::deadline`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeadlineClaim(NonZeroU64);

impl DeadlineClaim {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        // 2^64 claims are not reached; should they be, `1` only makes two claims equal.
        Self(NonZeroU64::new(id).unwrap_or(NonZeroU64::MIN))
    }
}

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
///     .build()
///     .unwrap();
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
    /// Who reports the deadline (see [`crate::deadline`]); `None` when the caller set it.
    deadline_claim: Option<DeadlineClaim>,
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
/// let err = WorkflowContext::builder().metadata("bad key", "v").build().unwrap_err();
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
        /// The rule of [`PrimitiveName`](crate::PrimitiveName) the key breaks.
        reason: crate::InvalidName,
    },
    /// A metadata value is too long or holds a control character.
    #[error("metadata value for {key:?} is invalid: {reason}")]
    MetadataValue {
        /// The key whose value was rejected.
        key: String,
        /// The rule the value breaks (too long, or a control character).
        reason: &'static str,
    },
    /// More metadata entries than [`WorkflowContext::MAX_METADATA_ENTRIES`].
    #[error("at most {max} metadata entries are allowed")]
    TooManyEntries {
        /// [`WorkflowContext::MAX_METADATA_ENTRIES`], the number of distinct keys allowed.
        max: usize,
    },
    /// An id is empty, too long or holds a control character.
    #[error("{field} is invalid: {reason}")]
    Id {
        /// The id's name: `workflow id`, `session id` or `correlation id`.
        field: &'static str,
        /// The rule the id breaks (empty, too long, or a control character).
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
        Self::root(Shared::default(), None, None, None)
    }

    /// Starts a root context with ids and metadata.
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = tta_core::WorkflowContext::builder().session_id("s-1").build().unwrap();
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
        if self.deadline.is_none_or(|current| deadline < current) {
            child.deadline = Some(deadline);
            child.deadline_claim = None;
        }
        child
    }

    /// A child whose deadline is the earlier of this one and `deadline`, owned by
    /// `claim` (only [`claim_deadline`](Self::claim_deadline) makes these).
    pub(crate) fn with_deadline_claimed(&self, deadline: Instant, claim: DeadlineClaim) -> Self {
        let mut child = self.with_deadline(deadline);
        child.deadline_claim = Some(claim);
        child
    }

    /// Who owns the deadline: `None` when there is none, or when the caller set it.
    pub(crate) fn deadline_claim(&self) -> Option<DeadlineClaim> {
        self.deadline_claim
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

/// Builds a root [`WorkflowContext`]. Setters only store; [`build`](Self::build) checks
/// every setting once.
///
/// Ids and metadata values must be at most [`WorkflowContext::MAX_VALUE_LEN`] bytes with
/// no control characters; metadata keys follow the [`PrimitiveName`](crate::PrimitiveName)
/// rules; at most [`WorkflowContext::MAX_METADATA_ENTRIES`] entries.
///
/// # Examples
///
/// ```
/// use tta_core::{ContextError, WorkflowContext};
///
/// let cx = WorkflowContext::builder()
///     .workflow_id("wf-1")
///     .correlation_id("req-9")
///     .metadata("user_tier", "pro")
///     .ledger_capacity(16)
///     .build()?;
/// assert_eq!(cx.correlation_id(), Some("req-9"));
/// assert_eq!(cx.ledger().capacity(), 16);
///
/// // A bad value is reported by `build`, naming the setting; nothing is replaced silently.
/// let err = WorkflowContext::builder().workflow_id("").build().unwrap_err();
/// assert!(matches!(err, ContextError::Id { field: "workflow id", .. }));
/// # Ok::<(), ContextError>(())
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct WorkflowContextBuilder {
    workflow_id: Option<String>,
    session_id: Option<String>,
    correlation_id: Option<String>,
    metadata: Vec<(String, String)>,
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

fn check_id(field: &'static str, value: Option<String>) -> Result<Option<Arc<str>>, ContextError> {
    let Some(value) = value else { return Ok(None) };
    if value.is_empty() {
        return Err(ContextError::Id {
            field,
            reason: "empty",
        });
    }
    check_value(&value).map_err(|reason| ContextError::Id { field, reason })?;
    Ok(Some(Arc::from(value)))
}

impl WorkflowContextBuilder {
    /// The workflow id (default: a random `wf-` id).
    pub fn workflow_id(mut self, id: &str) -> Self {
        self.workflow_id = Some(id.to_owned());
        self
    }

    /// The session id.
    pub fn session_id(mut self, id: &str) -> Self {
        self.session_id = Some(id.to_owned());
        self
    }

    /// The correlation id.
    pub fn correlation_id(mut self, id: &str) -> Self {
        self.correlation_id = Some(id.to_owned());
        self
    }

    /// Adds one metadata entry (a later value for the same key replaces an earlier one).
    pub fn metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata.push((key.to_owned(), value.to_owned()));
        self
    }

    /// How many ledger entries to keep (totals are always complete).
    pub fn ledger_capacity(mut self, capacity: usize) -> Self {
        self.ledger_capacity = Some(capacity);
        self
    }

    /// The OpenTelemetry parent (for example the server span of an incoming request).
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
    /// let cx = tta_core::WorkflowContext::builder().cancellation_token(token.clone()).build().unwrap();
    /// token.cancel();
    /// assert!(cx.is_cancelled());
    /// ```
    pub fn cancellation_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Checks the settings and builds the root context.
    ///
    /// # Errors
    ///
    /// [`ContextError`] for the first invalid id, metadata key or value, or for more
    /// than [`WorkflowContext::MAX_METADATA_ENTRIES`] distinct keys.
    pub fn build(self) -> Result<WorkflowContext, ContextError> {
        let workflow_id = check_id("workflow id", self.workflow_id)?;
        let session_id = check_id("session id", self.session_id)?;
        let correlation_id = check_id("correlation id", self.correlation_id)?;
        let mut metadata = BTreeMap::new();
        for (key, value) in self.metadata {
            crate::PrimitiveName::new(&key).map_err(|reason| ContextError::MetadataKey {
                key: key.escape_debug().to_string(),
                reason,
            })?;
            check_value(&value).map_err(|reason| ContextError::MetadataValue {
                key: key.clone(),
                reason,
            })?;
            metadata.insert(Arc::<str>::from(key), Arc::<str>::from(value));
            if metadata.len() > WorkflowContext::MAX_METADATA_ENTRIES {
                return Err(ContextError::TooManyEntries {
                    max: WorkflowContext::MAX_METADATA_ENTRIES,
                });
            }
        }
        Ok(WorkflowContext::root(
            Shared {
                workflow_id: workflow_id.unwrap_or_else(random_workflow_id),
                session_id,
                correlation_id,
                metadata,
            },
            self.ledger_capacity,
            self.otel,
            self.cancel,
        ))
    }
}

/// `wf-` and 16 lowercase hex digits, written without the formatting machinery (each
/// request's context makes one; `format!` and its `String` cost about 800 instructions
/// more).
fn random_workflow_id() -> Arc<str> {
    workflow_id_from(crate::random_seed())
}

fn workflow_id_from(seed: u64) -> Arc<str> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = *b"wf-0000000000000000";
    for (i, digit) in id[3..].iter_mut().enumerate() {
        *digit = HEX[((seed >> (60 - 4 * i)) & 0xf) as usize];
    }
    // Only ASCII was written.
    Arc::from(std::str::from_utf8(&id).unwrap_or("wf-0000000000000000"))
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            workflow_id: random_workflow_id(),
            session_id: None,
            correlation_id: None,
            metadata: BTreeMap::new(),
        }
    }
}

impl WorkflowContext {
    fn root(
        shared: Shared,
        ledger_capacity: Option<usize>,
        otel: Option<opentelemetry::Context>,
        cancel: Option<CancellationToken>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared: Arc::new(shared),
                ledger: Arc::new(CostLedger::with_capacity(
                    ledger_capacity.unwrap_or(CostLedger::DEFAULT_CAPACITY),
                )),
                cancel: Arc::new(cancel.unwrap_or_default()),
                otel: otel.unwrap_or_default(),
                own_span: false,
            }),
            deadline: None,
            deadline_claim: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_workflow_id_is_its_seed_in_sixteen_hex_digits() {
        for seed in [0, 1, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, u64::MAX] {
            assert_eq!(
                &*super::workflow_id_from(seed),
                format!("wf-{seed:016x}").as_str()
            );
        }
    }
}
