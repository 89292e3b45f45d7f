//! Callback delivery (protocol §7 with decisions items 8-10; docs/protocol.md §1.5-§1.7,
//! docs/decisions.md): the worker that leases due tasks from the store and announces each
//! batch to its subscriber over mutual TLS.
//!
//! - **When.** A batch cut by this instance wakes the worker at once (the gateway's batch
//!   listener); batches cut by other instances and retries that became due are found by a poll
//!   every `callback.poll_millis`.
//! - **Once, in order, across instances.** Tasks are leased in the store
//!   (`CallbackStore::claim_callback_tasks`, `FOR UPDATE SKIP LOCKED` on PostgreSQL) for
//!   `callback.lease_secs`; a subscription has at most one task in flight and its batches go
//!   out in cut order. A lease of an instance that died expires and another instance takes the
//!   task over.
//! - **Where.** Before every attempt the URL policy runs again ([`Gateway::check_delivery_url`]):
//!   the host is resolved once by the injected [`Resolver`], every address is checked, and the
//!   connection goes only to one of the checked addresses (no second resolution, so no DNS
//!   rebinding).
//! - **Whom.** The receiver's certificate must name the URL's host and be a registered,
//!   non-revoked CALLBACK or AUTHENTICATION certificate of the subscribing country
//!   ([`ReceiverVerifier`]); the gateway presents `callback.client_cert`.
//! - **What.** `GET <url>?batchTag=<tag>&date=<yyyy-MM-dd>` with `User-Agent: EFGS Callback
//!   Engine`, HTTP/1.1, no redirects followed; any 2xx is success; at most
//!   [`MAX_RESPONSE_BYTES`] of the answer are read and discarded; the whole attempt is bounded
//!   by `callback.timeout_secs`.
//! - **Failures** are retried `callback.max_retries` times, `callback.retry_interval_secs`
//!   apart; then the subscription is suspended and the warning event `callback.suspended` is
//!   logged for the operator.
//! - **Trail.** Each attempt whose outcome the worker learnt is recorded as a
//!   `callback.delivery` event (`outcome=suspended` at WARN for the operator) and counted in
//!   `efgs_callback_events_total` ([`crate::ops::callback`]).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use efgs_core::callback::{DeliveryError, USER_AGENT};
use efgs_core::callback_url::{CallbackHost, Resolver};
use efgs_core::cert::Thumbprint;
use efgs_core::gateway::Gateway;
use efgs_core::store::{CallbackTask, TaskClaim, TaskFinish, TaskResult};
use http_body_util::BodyExt as _;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ops::Ops;
use crate::server::Clock;

/// The most of a receiver's answer body that is read (and discarded).
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The delivery settings (`callback.*` except the policy values, which are in the gateway's
/// `CallbackPolicy`).
#[derive(Clone)]
pub(crate) struct DeliverySettings {
    /// The certificate chain and key presented to receivers; `None`: no delivery.
    pub(crate) client: Option<ClientCredentials>,
    /// Bound on one attempt.
    pub(crate) timeout: Duration,
    /// Poll interval.
    pub(crate) poll: Duration,
    /// Lease duration.
    pub(crate) lease: Duration,
    /// Attempts in flight at once.
    pub(crate) concurrency: usize,
}

impl std::fmt::Debug for DeliverySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliverySettings")
            .field(
                "client_cert",
                &self
                    .client
                    .as_ref()
                    .and_then(|c| c.chain.first())
                    .map(|c| Thumbprint::of_der(c.as_ref())),
            )
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .field("lease", &self.lease)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// The gateway's callback client certificate chain (leaf first) and its key.
pub(crate) struct ClientCredentials {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl Clone for ClientCredentials {
    fn clone(&self) -> Self {
        ClientCredentials {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// The system resolver (`getaddrinfo` through Tokio): what `efgs-server serve` uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl Resolver for SystemResolver {
    async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<std::net::IpAddr>, efgs_core::BoxError> {
        let addrs = tokio::net::lookup_host((host, port)).await?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// The delivery worker of one server instance.
pub(crate) struct Delivery {
    pub(crate) gateway: Gateway,
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) clock: Clock,
    pub(crate) settings: DeliverySettings,
    /// This instance's lease-holder id.
    pub(crate) holder: String,
    /// Woken when this instance cut a batch.
    pub(crate) wake: Arc<Notify>,
    /// The audit trail and metrics the outcomes go to.
    pub(crate) ops: Ops,
}

/// A lease-holder id unique to this process start.
pub(crate) fn holder_id() -> String {
    let mut r = [0u8; 8];
    // Without randomness the process id still tells instances on one host apart.
    let _ = getrandom::fill(&mut r);
    format!("{}-{}", std::process::id(), hex::encode(r))
}

impl Delivery {
    /// Runs until `stop` is cancelled; attempts in flight are then dropped (their leases
    /// expire and the tasks are delivered again later, by this or another instance).
    pub(crate) async fn run(self, stop: CancellationToken) {
        let Some(client) = self.settings.client.clone() else {
            tracing::warn!(
                "callback delivery disabled: callback.client_cert / callback.client_key not set"
            );
            return;
        };
        let this = Arc::new(self);
        let client = Arc::new(client);
        let mut in_flight: JoinSet<()> = JoinSet::new();
        loop {
            let free = this.settings.concurrency.saturating_sub(in_flight.len());
            let mut claimed_any = false;
            if free > 0 {
                let now = (this.clock)();
                let claim = TaskClaim {
                    holder: this.holder.clone(),
                    now,
                    lease_until: now + this.settings.lease,
                    limit: free,
                };
                match this.gateway.claim_callbacks(&claim).await {
                    Ok(tasks) => {
                        claimed_any = !tasks.is_empty();
                        for task in tasks {
                            let this = Arc::clone(&this);
                            let client = Arc::clone(&client);
                            in_flight.spawn(async move { this.attempt(&client, task).await });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "callback claim failed; retrying at the next poll");
                    }
                }
            }
            if claimed_any && in_flight.len() < this.settings.concurrency {
                // More may be due right away (another subscription, or the next batch).
                continue;
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                () = this.wake.notified() => {}
                () = tokio::time::sleep(this.settings.poll) => {}
            }
        }
        in_flight.shutdown().await;
    }

    /// One attempt at `task`, then its result recorded.
    async fn attempt(&self, client: &ClientCredentials, task: CallbackTask) {
        let outcome = tokio::time::timeout(self.settings.timeout, self.send(client, &task))
            .await
            .unwrap_or_else(|_| Err(DeliveryError::Request("timed out".to_owned())));
        let delivered = outcome.is_ok();
        let now = (self.clock)();
        let finished = self
            .gateway
            .finish_callback(&task, &self.holder, delivered, now)
            .await;
        let event = crate::ops::callback::delivery_event(
            &self.ops,
            &task,
            finished.as_ref().copied().map_err(|_| ()),
            outcome.as_ref().err(),
        );
        if self.ops.trail.record(vec![event]).await.is_err() {
            // The writer logs the store's failure once; the delivery itself stands.
            tracing::debug!(
                country = %task.country,
                callback_id = %task.callback_id,
                "callback.delivery event not stored"
            );
        }
        match finished {
            Ok((_, TaskFinish::LeaseLost)) => {
                tracing::info!(
                    country = %task.country,
                    callback_id = %task.callback_id,
                    "callback lease lost before the result was recorded"
                );
            }
            Ok((TaskResult::Delivered, TaskFinish::Recorded)) => {
                tracing::debug!(
                    country = %task.country,
                    callback_id = %task.callback_id,
                    batch = %task.batch.tag,
                    "callback delivered"
                );
            }
            Ok((TaskResult::Retry { retries, .. }, TaskFinish::Recorded)) => {
                let e = outcome.err();
                tracing::info!(
                    country = %task.country,
                    callback_id = %task.callback_id,
                    batch = %task.batch.tag,
                    retries,
                    code = e.as_ref().map_or("", DeliveryError::code),
                    error = %e.map(|e| e.to_string()).unwrap_or_default(),
                    "callback failed; will retry"
                );
            }
            Ok((TaskResult::Suspend { retries, .. }, TaskFinish::Recorded)) => {
                let e = outcome.err();
                tracing::warn!(
                    event = "callback.suspended",
                    country = %task.country,
                    callback_id = %task.callback_id,
                    batch = %task.batch.tag,
                    retries,
                    code = e.as_ref().map_or("", DeliveryError::code),
                    error = %e.map(|e| e.to_string()).unwrap_or_default(),
                    "callback subscription suspended after its last retry; a PUT re-activates it"
                );
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    country = %task.country,
                    callback_id = %task.callback_id,
                    "callback result not recorded; the task is attempted again after its lease"
                );
            }
        }
    }

    /// The attempt itself: policy, connect, TLS, request, answer.
    async fn send(
        &self,
        client: &ClientCredentials,
        task: &CallbackTask,
    ) -> Result<(), DeliveryError> {
        let checked = self
            .gateway
            .check_delivery_url(task, self.resolver.as_ref())
            .await?;
        let allowed = self
            .gateway
            .receiver_thumbprints(&task.country, (self.clock)())
            .await
            .map_err(|e| DeliveryError::Tls(format!("trust list unavailable: {e}")))?;
        let stream = connect(&checked.addrs).await?;
        let server_name = match checked.url.host() {
            CallbackHost::Ip(ip) => ServerName::IpAddress((*ip).into()),
            CallbackHost::Domain(d) => {
                ServerName::try_from(d.clone()).map_err(|e| DeliveryError::Tls(e.to_string()))?
            }
        };
        let config = client_config(client, allowed)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(server_name, stream)
            .await
            .map_err(|e| DeliveryError::Tls(e.to_string()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| DeliveryError::Request(e.to_string()))?;
        let conn = tokio::spawn(conn);
        let target = checked.url.request_url(
            &task.batch.tag.to_string(),
            task.batch.created_at.to_offset(time::UtcOffset::UTC).date(),
        );
        let path = match target.query() {
            Some(q) => format!("{}?{q}", target.path()),
            None => target.path().to_owned(),
        };
        let host = match (target.host_str(), target.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        let request = http::Request::get(path)
            .header(http::header::HOST, host)
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| DeliveryError::Request(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| DeliveryError::Request(e.to_string()))?;
        let status = response.status();
        // Read (and discard) at most a small part of the answer.
        let mut body = response.into_body();
        let mut read = 0usize;
        while read < MAX_RESPONSE_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
        drop(body);
        drop(sender);
        conn.abort();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status.as_u16()))
        }
    }
}

/// Connects to the first of `addrs` (all checked by the policy) that accepts.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, DeliveryError> {
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(DeliveryError::Connect(last))
}

/// The TLS client configuration of one attempt: the gateway's certificate, and a verifier
/// admitting exactly `allowed` for the URL's host.
pub(crate) fn client_config(
    client: &ClientCredentials,
    allowed: HashSet<Thumbprint>,
) -> Result<Arc<rustls::ClientConfig>, DeliveryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(ReceiverVerifier {
        allowed,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DeliveryError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(client.chain.clone(), client.key.clone_key())
        .map_err(|e| DeliveryError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Checks a callback receiver (decisions item 9): its certificate names the URL's host (DNS
/// name or IP address in the subject alternative names) and its SHA-256 thumbprint is one of
/// the subscribing country's registered, non-revoked CALLBACK or AUTHENTICATION certificates
/// (valid now). The handshake signature is verified with the certificate's key. No chain to a
/// CA is required: the trust list pins exact certificates.
#[derive(Debug)]
pub(crate) struct ReceiverVerifier {
    pub(crate) allowed: HashSet<Thumbprint>,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ReceiverVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        if !self
            .allowed
            .contains(&Thumbprint::of_der(end_entity.as_ref()))
        {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
