//! SQL migrations, embedded in the crate and applied when a store connects.
//!
//! Migrations are forward-only: each one runs once, in version order, in the same transaction
//! as its row in `schema_migrations`. Connecting instances serialise on an advisory lock, so
//! several servers starting at once migrate exactly once. A database that records a migration
//! this build does not know (a newer build migrated it), or whose recorded checksum differs from
//! the embedded SQL (a released migration was edited), is refused.

use crate::error::PgError;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub(crate) version: i32,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Every migration, in version order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "audit_trail",
        sql: include_str!("../migrations/0002_audit_trail.sql"),
    },
    Migration {
        version: 3,
        name: "callbacks",
        sql: include_str!("../migrations/0003_callbacks.sql"),
    },
    Migration {
        version: 4,
        name: "change_stamps",
        sql: include_str!("../migrations/0004_change_stamps.sql"),
    },
];

/// First key of the two-key advisory locks this crate takes (ASCII "EFGS").
pub(crate) const LOCK_CLASS: i32 = 0x4546_4753;
/// Second-key salts for the different locks, combined with the schema name.
pub(crate) const LOCK_MIGRATE: &str = "migrate";

fn checksum(sql: &str) -> Vec<u8> {
    Sha256::digest(sql.as_bytes()).to_vec()
}

/// Applies the missing migrations to `schema` (or to the current `search_path` schema).
/// Returns the versions applied by this call.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: Option<&str>,
) -> Result<Vec<i32>, PgError> {
    let tx = client.transaction().await?;
    // Serialise concurrent migrations of the same schema.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2 || ':' || coalesce($3, current_schema(), '')))",
        &[&LOCK_CLASS, &LOCK_MIGRATE, &schema],
    )
    .await?;
    if let Some(schema) = schema {
        // The name was validated (lowercase letters, digits, underscore) before.
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             checksum   bytea NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let rows = tx
        .query(
            "SELECT version, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    let mut applied = std::collections::BTreeMap::new();
    for row in rows {
        let version: i32 = row.try_get(0)?;
        let sum: Vec<u8> = row.try_get(1)?;
        applied.insert(version, sum);
    }
    for (version, sum) in &applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            None => {
                return Err(PgError::Schema(format!(
                    "the database has migration {version}, which this build does not know \
                     (it was migrated by a newer version)"
                )));
            }
            Some(m) if checksum(m.sql) != *sum => {
                return Err(PgError::Schema(format!(
                    "migration {version} ({}) differs from the one applied to the database",
                    m.name
                )));
            }
            Some(_) => {}
        }
    }
    let mut done = Vec::new();
    for m in MIGRATIONS {
        if applied.contains_key(&m.version) {
            continue;
        }
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &checksum(m.sql)],
        )
        .await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        done.push(m.version);
    }
    tx.commit().await?;
    Ok(done)
}

/// Whether `name` is an acceptable schema name: 1..=63 bytes of lowercase ASCII letters,
/// digits and `_`, not starting with a digit and not starting with `pg_`.
pub(crate) fn valid_schema_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with("pg_")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_ascending_and_unique() {
        for w in MIGRATIONS.windows(2) {
            assert!(w[0].version < w[1].version);
        }
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
    }

    #[test]
    fn schema_names() {
        assert!(valid_schema_name("efgs"));
        assert!(valid_schema_name("t_0a1b"));
        for bad in [
            "",
            "1abc",
            "Efgs",
            "a-b",
            "a b",
            "pg_catalog",
            "x;drop",
            &"a".repeat(64),
        ] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }
}
