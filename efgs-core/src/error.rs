//! The crate's top-level error, wrapping the error of each concern.

/// A boxed error kept as the `source` of another error (a backend's error inside a
/// [`crate::store::StoreError`], for example). The one boxed-error type of efgs-core.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Any efgs-core error. Each concern has its own enum; this one wraps them so the server's
/// single status table can match on the kind.
///
/// Not `#[non_exhaustive]`: the server's status table matches every variant without a
/// wildcard, so a new concern cannot compile without a status (ADR 0012). Expected protocol
/// outcomes are not errors ([`crate::store::UploadOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Protobuf body could not be decoded.
    #[error(transparent)]
    Proto(#[from] crate::proto::ProtoError),
    /// JSON body could not be decoded.
    #[error(transparent)]
    Json(#[from] crate::json::JsonError),
    /// Content-Type or Accept not acceptable.
    #[error(transparent)]
    MediaType(#[from] crate::media::MediaTypeError),
    /// An uploaded key failed validation.
    #[error(transparent)]
    Validation(#[from] crate::validate::ValidationError),
    /// The batch signature did not verify.
    #[error(transparent)]
    Signature(#[from] crate::batch_signature::SignatureError),
    /// A trust-list entry did not check out.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// The client could not be identified or is not authorised.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// A callback URL was refused.
    #[error(transparent)]
    CallbackUrl(#[from] crate::callback_url::CallbackUrlError),
    /// A callback administration request was refused (id, missing URL, unknown subscription).
    #[error(transparent)]
    Callback(#[from] crate::callback::CallbackError),
    /// A download batch tag was malformed.
    #[error(transparent)]
    Tag(#[from] crate::tag::TagError),
    /// Download rules (date window, unknown batch, ...).
    #[error(transparent)]
    Download(#[from] crate::download::DownloadError),
    /// Audit rules.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// A request-level problem of the use cases (missing header, untrusted signer).
    #[error(transparent)]
    Request(#[from] crate::gateway::RequestError),
    /// The storage backend failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
