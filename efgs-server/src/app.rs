//! Assembling the gateway from its configuration: the store, the trust anchors, the use cases,
//! the background jobs, and the operator commands that work on the trust list.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use efgs_core::batch_signature::SignaturePolicy;
use efgs_core::batching::BatchingPolicy;
use efgs_core::canonical::DuplicateHasher;
use efgs_core::download::DownloadPolicy;
use efgs_core::download_cache::DownloadCachePolicy;
use efgs_core::gateway::{Gateway, GatewayPolicy};
use efgs_core::retention::RetentionPolicy;
use efgs_core::store::{DynStore, StoreError, TrustEntry, Upserted};
use efgs_core::trust::{TrustAnchor, TrustAnchors, TrustListEntry};
use efgs_core::validate::ValidationPolicy;
use efgs_store_memory::MemoryStore;
use efgs_store_postgres::{EncryptionKeys, PgConfig, PgStore};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::api::{AppState, ClientAuth, Clock, api, system_clock};
use crate::config::{AuthMode, Config, ConfigError, StorageKind};
use crate::jobs::Jobs;
use crate::{ServeError, serve_with};

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

/// The trust anchors named by `trust.anchors`.
pub fn trust_anchors(cfg: &Config) -> Result<TrustAnchors, ConfigError> {
    let mut anchors = Vec::new();
    for der in cfg.trust_anchors_der()? {
        anchors.push(
            TrustAnchor::from_der(&der).map_err(|e| invalid("trust.anchors", e.to_string()))?,
        );
    }
    TrustAnchors::new(anchors).map_err(|e| invalid("trust.anchors", e.to_string()))
}

/// The gateway policies from the configuration.
pub fn policy(cfg: &Config) -> GatewayPolicy {
    GatewayPolicy {
        validation: ValidationPolicy {
            max_keys: cfg.upload.max_keys,
        },
        signature: SignaturePolicy {
            allow_sha1: cfg.signature.allow_sha1,
            ..SignaturePolicy::default()
        },
        download: DownloadPolicy {
            max_age_days: cfg.download.max_age_days,
        },
        download_cache: DownloadCachePolicy {
            max_bytes: usize::try_from(cfg.download.cache_max_bytes).unwrap_or(usize::MAX),
            ttl: time::Duration::seconds(
                i64::try_from(cfg.download.cache_ttl_secs).unwrap_or(i64::MAX),
            ),
        },
        batching: BatchingPolicy {
            max_keys: cfg.batching.max_keys,
            interval: time::Duration::seconds(
                i64::try_from(cfg.batching.interval_secs).unwrap_or(i64::MAX),
            ),
        },
        retention: RetentionPolicy {
            key_max_age_days: cfg.retention.key_days,
            metadata_max_age_days: cfg.retention.metadata_days,
        },
    }
}

/// Opens the configured store (applying PostgreSQL migrations).
pub async fn open_store(cfg: &Config) -> Result<Arc<DynStore>, ServeError> {
    match cfg.storage {
        StorageKind::Postgres => {
            let url = cfg
                .database
                .url
                .as_ref()
                .ok_or_else(|| invalid("database.url", "required with storage = postgres"))?;
            let ring = cfg
                .encryption_keys()?
                .ok_or_else(|| invalid("encryption.keys", "required with storage = postgres"))?;
            let parse_id = |id: &str| {
                id.parse::<i16>().map_err(|_| {
                    invalid(
                        "encryption.keys",
                        format!("key id {id:?} must be a number 0..32767"),
                    )
                })
            };
            let mut keys = Vec::new();
            for (id, key) in &ring.keys {
                keys.push((parse_id(id)?, *key));
            }
            let active = parse_id(&ring.active)?;
            let keys = EncryptionKeys::new(active, keys)
                .map_err(|e| invalid("encryption.keys", e.to_string()))?;
            let pg = PgConfig::new(url.expose(), keys)
                .with_pool_size(usize::try_from(cfg.database.pool_size).unwrap_or(16));
            let store = PgStore::connect(&pg).await.map_err(ServeError::Store)?;
            Ok(Arc::new(store))
        }
        _ => Ok(Arc::new(MemoryStore::new())),
    }
}

/// The duplicate-hash secret: the configured one, or (memory store only) a random one.
fn hasher(cfg: &Config) -> Result<DuplicateHasher, ConfigError> {
    match cfg.duplicate_hash_secret() {
        Some(secret) => Ok(DuplicateHasher::new(secret)),
        None if cfg.storage != StorageKind::Postgres => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| invalid("duplicate_hash.secret", e.to_string()))?;
            Ok(DuplicateHasher::new(&secret))
        }
        None => Err(invalid(
            "duplicate_hash.secret",
            "required with storage = postgres (keep it stable for the database)",
        )),
    }
}

/// Store, anchors, policies and hasher as a [`Gateway`].
pub async fn build_gateway(cfg: &Config) -> Result<Gateway, ServeError> {
    let anchors = trust_anchors(cfg)?;
    let store = open_store(cfg).await?;
    Ok(Gateway::new(store, anchors, hasher(cfg)?, policy(cfg)))
}

/// The API state for a gateway under `cfg`.
pub fn app_state(cfg: &Config, gateway: Gateway, clock: Clock) -> AppState {
    let auth = match cfg.auth.mode {
        AuthMode::Mtls => ClientAuth::MutualTls,
        _ => ClientAuth::ProxyHeaders {
            trusted: cfg.auth.trusted_proxies.clone(),
        },
    };
    AppState {
        gateway,
        auth,
        body_limit: cfg.upload.max_body_bytes,
        clock,
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Entries inserted.
    pub inserted: usize,
    /// Entries replaced (already present).
    pub replaced: usize,
    /// Entries refused, with the file and reason.
    pub refused: Vec<(String, String)>,
}

/// Imports signed trust-list entries from a JSON file or every `*.json` file of a directory.
/// Entries whose signature, thumbprint or subject country do not check are refused with the
/// reason; importing the same entries again is idempotent.
pub async fn import_trust_entries(
    store: &DynStore,
    anchors: &TrustAnchors,
    path: &Path,
    now: OffsetDateTime,
) -> Result<ImportReport, ServeError> {
    let mut files = Vec::new();
    if path.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|e| ServeError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        for entry in rd.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_owned());
    }
    let mut report = ImportReport::default();
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(|e| ServeError::Io {
            path: name.clone(),
            source: e,
        })?;
        let entries = match TrustListEntry::parse_json(&text) {
            Ok(e) => e,
            Err(e) => {
                report.refused.push((name, e.to_string()));
                continue;
            }
        };
        for entry in entries {
            if let Err(e) = entry.verify_for_import(anchors) {
                report
                    .refused
                    .push((format!("{name} ({})", entry.thumbprint), e.to_string()));
                continue;
            }
            let row = TrustEntry::from_entry(&entry, now);
            match store
                .upsert_trust_entry(row)
                .await
                .map_err(ServeError::Store)?
            {
                Upserted::Inserted => report.inserted += 1,
                _ => report.replaced += 1,
            }
        }
    }
    Ok(report)
}

/// Starts the batching and retention jobs for `gateway`.
pub fn spawn_jobs(cfg: &Config, gateway: &Gateway, clock: Clock) -> Jobs {
    let mut jobs = Jobs::new();
    let g = gateway.clone();
    let c = clock.clone();
    jobs.spawn(cfg.batching_schedule(), move |ctx| {
        let g = g.clone();
        let c = c.clone();
        async move {
            while !ctx.should_stop(Duration::from_secs(1)) {
                match g.batch_step(c()).await {
                    Ok(Some(b)) => tracing::info!(tag = %b.batch.tag, keys = b.batch.number_of_keys, "batch created"),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "batching failed; retrying at the next run");
                        return Err(e);
                    }
                }
            }
            Ok(())
        }
    });
    let g = gateway.clone();
    jobs.spawn(cfg.retention_schedule(), move |_ctx| {
        let g = g.clone();
        let c = clock.clone();
        async move {
            match g.cleanup(c()).await {
                Ok(r) => {
                    tracing::info!(deleted = r.deleted, "retention cleanup done");
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention cleanup failed; retrying at the next run");
                    Err(e)
                }
            }
        }
    });
    jobs
}

/// Runs the gateway under `cfg` on `listener` until `shutdown` completes: opens the store,
/// imports `trust.import_dir` if set, starts the jobs, serves the API, then stops the jobs.
pub async fn serve(
    cfg: &Config,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let gateway = build_gateway(cfg).await?;
    if let Some(dir) = &cfg.trust.import_dir {
        let report = import_trust_entries(
            gateway.store().as_ref(),
            gateway.anchors(),
            dir,
            OffsetDateTime::now_utc(),
        )
        .await?;
        tracing::info!(
            inserted = report.inserted,
            replaced = report.replaced,
            refused = report.refused.len(),
            "trust list imported"
        );
        for (what, why) in &report.refused {
            tracing::warn!(entry = %what, reason = %why, "trust-list entry refused");
        }
    }
    let clock = system_clock();
    let jobs = spawn_jobs(cfg, &gateway, clock.clone());
    let state = app_state(cfg, gateway, clock);
    let result = serve_with(cfg, listener, api(state), shutdown).await;
    jobs.shutdown(Duration::from_secs(cfg.http.shutdown_grace_secs))
        .await;
    result
}

/// Whether a store error is worth retrying (for operator commands' exit codes).
pub fn is_transient(e: &StoreError) -> bool {
    e.is_transient()
}
