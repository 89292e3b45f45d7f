//! Callbacks (protocol §1.5-§1.7 and §7, decisions items 8-10): the subscription use cases,
//! the retry rule, and the delivery steps a server runs.
//!
//! - `GET /diagnosiskeys/callback` → [`Gateway::subscriptions`]: the caller's country's
//!   subscriptions in creation order, listed as exactly `callbackId` and `url`
//!   ([`SubscriptionView`]).
//! - `PUT /diagnosiskeys/callback/{id}?url=…` → [`Gateway::subscribe`]: id at most
//!   [`MAX_CALLBACK_ID_CHARS`] characters, the URL policy of [`crate::callback_url`] (every
//!   resolved address), then an idempotent upsert that also re-activates a suspended
//!   subscription.
//! - `DELETE /diagnosiskeys/callback/{id}` → [`Gateway::unsubscribe`]: 404 for an unknown id,
//!   and for another country's id (subscriptions are scoped by the caller's country).
//!
//! Delivery ([`Gateway::claim_callbacks`], [`Gateway::finish_callback`]): each subscription
//! gets every batch cut after it was created, in cut order, one at a time. An attempt is
//! `GET <url>?batchTag=<tag>&date=<yyyy-MM-dd>` ([`CallbackUrl::request_url`]) with
//! [`USER_AGENT`], over mutual TLS; the receiver's certificate must be one of
//! [`Gateway::receiver_thumbprints`] of the subscribing country (decisions item 9). Any 2xx is
//! success. A failure is retried after [`RetryPolicy::interval`], up to
//! [`RetryPolicy::max_retries`] times, while later batches of that subscription wait; after the
//! last failure the subscription is suspended, not deleted (decisions item 10), until a PUT.
//!
//! The server does the I/O: it resolves names through a [`Resolver`], connects only to the
//! addresses [`check_callback_url`] returned, and keeps leases on the store so that several
//! instances deliver each task once.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::Error;
use crate::callback_url::{AddressPolicy, CheckedUrl, Resolver, check_callback_url};
use crate::cert::Thumbprint;
use crate::gateway::Gateway;
use crate::identity::ClientIdentity;
use crate::model::CertificateType;
use crate::store::{
    CallbackTask, Subscription, SubscriptionUpsert, TaskClaim, TaskFinish, TaskResult,
};

#[cfg(doc)]
use crate::callback_url::CallbackUrl;

/// The `User-Agent` of every callback request (the reference's, fixed since its #284).
pub const USER_AGENT: &str = "EFGS Callback Engine";

/// Longest `callbackId`, in characters (the reference's `callback_id varchar(32)`).
pub const MAX_CALLBACK_ID_CHARS: usize = 32;

/// The reason text of a DELETE of an unknown subscription (the reference's).
pub const NOT_FOUND_REASON: &str =
    "Could not find any callback subscription for the given callbackId.";

/// A refused callback administration request (the URL policy's refusals are
/// [`crate::callback_url::CallbackUrlError`]s).
///
/// Not `#[non_exhaustive]`: the server's status table matches every variant (ADR 0012).
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The `url` query parameter is missing. Status 400.
    #[error("Required request parameter 'url' is not present")]
    MissingUrl,
    /// The `callbackId` is empty. Status 400.
    #[error("callbackId must not be empty")]
    IdEmpty,
    /// The `callbackId` is longer than [`MAX_CALLBACK_ID_CHARS`]. Status 400.
    #[error("callbackId is longer than {max} characters")]
    IdTooLong {
        /// Its length in characters.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The `callbackId` contains a control character. Status 400.
    #[error("callbackId contains a control character")]
    IdCharacter,
    /// No subscription with this id for the caller's country. Status 404.
    #[error("Could not find any callback subscription for the given callbackId.")]
    NotFound,
}

impl CallbackError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            CallbackError::MissingUrl => "callback-url-missing",
            CallbackError::IdEmpty => "callback-id-empty",
            CallbackError::IdTooLong { .. } => "callback-id-too-long",
            CallbackError::IdCharacter => "callback-id-character",
            CallbackError::NotFound => "callback-not-found",
        }
    }
}

/// Checks a `callbackId`: 1 to [`MAX_CALLBACK_ID_CHARS`] characters, no control characters.
pub fn validate_callback_id(id: &str) -> Result<(), CallbackError> {
    let length = id.chars().count();
    if length == 0 {
        return Err(CallbackError::IdEmpty);
    }
    if length > MAX_CALLBACK_ID_CHARS {
        return Err(CallbackError::IdTooLong {
            length,
            max: MAX_CALLBACK_ID_CHARS,
        });
    }
    if id.chars().any(char::is_control) {
        return Err(CallbackError::IdCharacter);
    }
    Ok(())
}

/// The `url` parameter of a `PUT /diagnosiskeys/callback/{id}` query string, percent-decoded
/// (`+` as a space, as form decoding does); `None` when absent. The URL may arrive not
/// URL-encoded (clients.md: MT): everything after `url=` up to the next `&` is taken as is.
pub fn url_parameter(raw_query: &str) -> Option<String> {
    raw_query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == "url")
        .map(|(_, v)| form_decode(v))
}

/// A path segment percent-decoded (the `{id}` of the callback routes); invalid UTF-8 is
/// replaced, so it then fails no check but names no subscription either.
pub fn decode_path_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn form_decode(v: &str) -> String {
    percent_encoding::percent_decode_str(&v.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// One entry of `GET /diagnosiskeys/callback`: exactly `callbackId` and `url` (decisions
/// item 10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubscriptionView {
    /// The subscription's id.
    #[serde(rename = "callbackId")]
    pub callback_id: String,
    /// The URL as the caller sent it.
    pub url: String,
}

/// How failed deliveries are retried (decisions item 10: the reference's cadence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first failed attempt (so `max_retries + 1` attempts) before the
    /// subscription is suspended. Reference: 5.
    pub max_retries: u32,
    /// Wait after a failed attempt. Reference: 300 s.
    pub interval: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            interval: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The rule after a failed attempt, when `retries` failures were counted before it: retry
    /// after [`Self::interval`] while fewer than [`Self::max_retries`] retries were made,
    /// otherwise suspend.
    pub fn after_failure(&self, retries: u32, now: OffsetDateTime) -> TaskResult {
        let retries = retries.saturating_add(1);
        if retries > self.max_retries {
            TaskResult::Suspend { retries, at: now }
        } else {
            TaskResult::Retry {
                retries,
                not_before: now + self.interval,
            }
        }
    }
}

/// The callback policies of a gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallbackPolicy {
    /// Which non-public addresses callbacks may nevertheless reach (`callback.allow_cidrs`).
    pub addresses: AddressPolicy,
    /// Retries and suspension.
    pub retry: RetryPolicy,
}

/// Why a delivery attempt failed (for the log and the retry rule; every failure counts the
/// same).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The URL failed the policy at delivery (for example its name now resolves to a refused
    /// address).
    #[error(transparent)]
    Url(#[from] crate::callback_url::CallbackUrlError),
    /// No checked address accepted a connection.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The TLS handshake failed (the receiver's certificate is not registered for the
    /// subscribing country, is revoked, or does not name the host).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The request failed or timed out.
    #[error("request failed: {0}")]
    Request(String),
    /// The receiver answered with a status other than 2xx (redirects are not followed).
    #[error("receiver answered {0}")]
    Status(u16),
}

impl DeliveryError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryError::Url(e) => e.code(),
            DeliveryError::Connect(_) => "callback-connect",
            DeliveryError::Tls(_) => "callback-tls",
            DeliveryError::Request(_) => "callback-request",
            DeliveryError::Status(_) => "callback-status",
        }
    }
}

impl Gateway {
    /// `GET /diagnosiskeys/callback`: the caller's country's subscriptions, in creation order.
    pub async fn subscriptions(
        &self,
        who: &ClientIdentity,
    ) -> Result<Vec<SubscriptionView>, Error> {
        Ok(self
            .store()
            .list_subscriptions(&who.country)
            .await?
            .into_iter()
            .map(|s| SubscriptionView {
                callback_id: s.callback_id,
                url: s.url,
            })
            .collect())
    }

    /// `PUT /diagnosiskeys/callback/{id}?url=…`: checks the id and the URL policy (resolving
    /// the host once with `resolver`), then creates the subscription or replaces its URL;
    /// re-activates a suspended one.
    pub async fn subscribe(
        &self,
        who: &ClientIdentity,
        callback_id: &str,
        url: Option<&str>,
        resolver: &dyn Resolver,
        now: OffsetDateTime,
    ) -> Result<SubscriptionUpsert, Error> {
        validate_callback_id(callback_id)?;
        let url = url.ok_or(CallbackError::MissingUrl)?;
        check_callback_url(url, resolver, &self.policy().callback.addresses).await?;
        Ok(self
            .store()
            .upsert_subscription(&who.country, callback_id, url, now)
            .await?)
    }

    /// `DELETE /diagnosiskeys/callback/{id}`: deletes the caller's country's subscription;
    /// [`CallbackError::NotFound`] when it has none with this id.
    pub async fn unsubscribe(&self, who: &ClientIdentity, callback_id: &str) -> Result<(), Error> {
        if self
            .store()
            .delete_subscription(&who.country, callback_id)
            .await?
        {
            Ok(())
        } else {
            Err(CallbackError::NotFound.into())
        }
    }

    /// Leases due delivery tasks (see [`crate::store::CallbackStore::claim_callback_tasks`]).
    pub async fn claim_callbacks(&self, claim: &TaskClaim) -> Result<Vec<CallbackTask>, Error> {
        Ok(self.store().claim_callback_tasks(claim).await?)
    }

    /// The policy check before a delivery: the task's URL, its host resolved once, every
    /// address checked. Connect only to the returned addresses.
    pub async fn check_delivery_url(
        &self,
        task: &CallbackTask,
        resolver: &dyn Resolver,
    ) -> Result<CheckedUrl, DeliveryError> {
        Ok(check_callback_url(&task.url, resolver, &self.policy().callback.addresses).await?)
    }

    /// Records the outcome of an attempt: delivered, or (by [`RetryPolicy::after_failure`])
    /// retried later or suspended. Returns the result recorded and whether the lease was
    /// still held.
    pub async fn finish_callback(
        &self,
        task: &CallbackTask,
        holder: &str,
        delivered: bool,
        now: OffsetDateTime,
    ) -> Result<(TaskResult, TaskFinish), Error> {
        let result = if delivered {
            TaskResult::Delivered
        } else {
            self.policy()
                .callback
                .retry
                .after_failure(task.retries, now)
        };
        let finish = self
            .store()
            .finish_callback_task(task, holder, result)
            .await?;
        Ok((result, finish))
    }

    /// The thumbprints a receiver of `country`'s callbacks may present (decisions item 9):
    /// its non-revoked CALLBACK and AUTHENTICATION trust-list entries that pass their
    /// trust-anchor check and whose certificate is valid at `now`.
    pub async fn receiver_thumbprints(
        &self,
        country: &str,
        now: OffsetDateTime,
    ) -> Result<HashSet<Thumbprint>, Error> {
        let entries = self.store().list_trust_entries().await?;
        Ok(entries
            .into_iter()
            .filter(|e| {
                e.country == country
                    && !e.revoked
                    && matches!(
                        e.cert_type,
                        CertificateType::Callback | CertificateType::Authentication
                    )
            })
            .filter(|e| {
                self.intact_validity(e)
                    .is_some_and(|validity| validity.check(now).is_ok())
            })
            .map(|e| e.thumbprint)
            .collect())
    }
}

/// The subscription as the operator sees it (for logs): country and id.
pub fn describe(s: &Subscription) -> String {
    format!("{}/{}", s.country, s.callback_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ids() {
        assert!(validate_callback_id("1").is_ok());
        assert!(validate_callback_id(&"a".repeat(32)).is_ok());
        assert!(validate_callback_id(&"ü".repeat(32)).is_ok());
        assert_eq!(
            validate_callback_id(&"a".repeat(33)).unwrap_err().code(),
            "callback-id-too-long"
        );
        assert_eq!(
            validate_callback_id("").unwrap_err().code(),
            "callback-id-empty"
        );
        assert_eq!(
            validate_callback_id("a\nb").unwrap_err().code(),
            "callback-id-character"
        );
    }

    #[test]
    fn url_parameter_encoded_or_not() {
        assert_eq!(
            url_parameter("url=https%3A%2F%2Fexample.org%2Fcb").as_deref(),
            Some("https://example.org/cb")
        );
        assert_eq!(
            url_parameter("x=1&url=https://example.org/cb").as_deref(),
            Some("https://example.org/cb")
        );
        assert_eq!(url_parameter("x=1"), None);
        assert_eq!(url_parameter(""), None);
        assert_eq!(url_parameter("url").as_deref(), Some(""));
        assert_eq!(decode_path_segment("a%20b"), "a b");
    }

    #[test]
    fn retry_rule_suspends_after_the_last_retry() {
        let p = RetryPolicy {
            max_retries: 2,
            interval: Duration::from_secs(300),
        };
        let now = datetime!(2026-12-01 10:00 UTC);
        assert_eq!(
            p.after_failure(0, now),
            TaskResult::Retry {
                retries: 1,
                not_before: datetime!(2026-12-01 10:05 UTC)
            }
        );
        assert_eq!(
            p.after_failure(1, now),
            TaskResult::Retry {
                retries: 2,
                not_before: datetime!(2026-12-01 10:05 UTC)
            }
        );
        assert_eq!(
            p.after_failure(2, now),
            TaskResult::Suspend {
                retries: 3,
                at: now
            }
        );
        let reference = RetryPolicy::default();
        assert_eq!(reference.max_retries, 5);
        assert_eq!(reference.interval, Duration::from_secs(300));
    }

    #[test]
    fn list_entries_have_exactly_two_fields() {
        let v = SubscriptionView {
            callback_id: "a".into(),
            url: "https://example.org/cb".into(),
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"callbackId":"a","url":"https://example.org/cb"}"#
        );
    }
}
