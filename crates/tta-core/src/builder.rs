//! The builder of the primitives tta-core wraps around user code.

use std::borrow::Cow;

use crate::{Instrumentation, InvalidName, PrimitiveName, Telemetry};

/// Names a primitive and picks its telemetry, for the primitives that only need those
/// two settings ([`FnPrimitive`](crate::FnPrimitive), [`Join`](crate::Join),
/// [`Parallel`](crate::Parallel), `ServicePrimitive`) and for your own.
///
/// Setters only store; [`build`](Self::build) validates the name once. `T` is what the
/// primitive is made of (a closure, two branches...); `P` is the primitive.
///
/// # Examples
///
/// Renaming keeps the telemetry, and the order of the settings does not matter:
///
/// ```
/// use tta_core::{Error, FnPrimitive, Telemetry, WorkflowPrimitive};
///
/// let telemetry = Telemetry::global();
/// let count = FnPrimitive::builder(|text: String, _| async move {
///     Ok::<_, Error>(text.split_whitespace().count())
/// })
/// .telemetry(&telemetry)
/// .name("count_words")
/// .build()?;
/// assert_eq!(count.name(), "count_words");
///
/// assert!(FnPrimitive::builder(|(), _| async { Ok::<_, Error>(()) }).name("bad name").build().is_err());
/// # Ok::<(), tta_core::InvalidName>(())
/// ```
#[must_use]
pub struct PrimitiveBuilder<T, P> {
    parts: T,
    assemble: fn(T, Instrumentation) -> P,
    kind: &'static str,
    name: Cow<'static, str>,
    telemetry: Option<Telemetry>,
}

impl<T, P> PrimitiveBuilder<T, P> {
    /// A builder for a primitive of `kind`, named `kind` unless renamed, that `assemble`
    /// makes from `parts` and its [`Instrumentation`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{Error, Instrumentation, PrimitiveBuilder, WorkflowContext, WorkflowPrimitive};
    ///
    /// struct Echo { inst: Instrumentation }
    /// impl WorkflowPrimitive<String> for Echo {
    ///     type Output = String;
    ///     fn name(&self) -> &str { self.inst.name().as_str() }
    ///     async fn execute(&self, s: String, cx: &WorkflowContext) -> Result<String, Error> {
    ///         self.inst.run(cx, |_| async move { Ok(s) }).await
    ///     }
    /// }
    ///
    /// let echo = PrimitiveBuilder::new("echo", (), |(), inst| Echo { inst }).name("echo_1").build()?;
    /// assert_eq!(echo.name(), "echo_1");
    /// # Ok::<(), tta_core::InvalidName>(())
    /// ```
    pub fn new(kind: &'static str, parts: T, assemble: fn(T, Instrumentation) -> P) -> Self {
        Self {
            parts,
            assemble,
            kind,
            name: Cow::Borrowed(kind),
            telemetry: None,
        }
    }

    /// The primitive's name (a metric label); default: its kind.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Cow::Owned(name.to_owned());
        self
    }

    /// Explicit telemetry providers instead of [`Telemetry::global`].
    pub fn telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.telemetry = Some(telemetry.clone());
        self
    }

    /// Validates the name and builds the primitive.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when the name is not a valid [`PrimitiveName`].
    pub fn build(self) -> Result<P, InvalidName> {
        let name = PrimitiveName::new(&self.name)?;
        let telemetry = self.telemetry.unwrap_or_default();
        Ok((self.assemble)(
            self.parts,
            Instrumentation::new(self.kind, name, &telemetry),
        ))
    }

    /// Builds with the default name, which cannot be invalid: for the constructors
    /// that cannot fail (`from_fn`, `a | b`).
    pub(crate) fn build_default(self) -> P {
        let name = PrimitiveName::from_static(self.kind);
        let telemetry = self.telemetry.unwrap_or_default();
        (self.assemble)(
            self.parts,
            Instrumentation::new(self.kind, name, &telemetry),
        )
    }
}

impl<T, P> std::fmt::Debug for PrimitiveBuilder<T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimitiveBuilder")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
