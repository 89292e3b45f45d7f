//! The operator's audit trail: tamper-evident, human-readable events of every security- and
//! data-relevant action (ADR 0017).
//!
//! An [`Event`] is a name from [`names`], a [`Level`], an instant and `key=value` fields. It
//! renders as one line ([`Event::line`]):
//!
//! ```text
//! 2026-12-06T05:30:00.123456Z INFO upload country=DE batch_tag=b-1 keys=5000 status=201
//! ```
//!
//! Values are printable ASCII; a value with a space, `"`, `=`, `\` or any other character is
//! quoted with backslash escapes ([`parse_line`] reads a line back). The fields never carry key
//! data, signatures, private keys or secrets: events are built from identities, tags, counts
//! and outcome codes only.
//!
//! The store keeps each line as a [`Record`]: a dense sequence number and the SHA-256 chain
//! hash over the previous record's hash, the sequence number and the line ([`chain_hash`]). A
//! [`ChainVerifier`] fed the records in order names the first broken link ([`ChainBreak`]):
//! an altered line, a removed or reordered record. Retention removes the oldest records; the
//! chain is then checked from the oldest record kept.
//!
//! Pure: no clock, no I/O. The server emits events and the stores chain them
//! (`AuditTrailStore` in [`crate::store`]).

use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The event names of the trail (docs/operations.md lists their fields).
pub mod names {
    /// A caller authenticated (`thumbprint`, `country`, `route`).
    pub const AUTH_SUCCESS: &str = "auth.success";
    /// A caller was refused (`reason`, `thumbprint`, `subject`, `route`, `status`).
    pub const AUTH_FAILURE: &str = "auth.failure";
    /// An upload was answered (`country`, `batch_tag`, `keys`, `signer`, `outcome`, `status`).
    pub const UPLOAD: &str = "upload";
    /// A download was answered (`country`, `date`, `batch_tag`, `keys`, `status`).
    pub const DOWNLOAD: &str = "download";
    /// An audit query was answered (`country`, `date`, `batch_tag`, `entries`, `status`).
    pub const AUDIT_QUERY: &str = "audit.query";
    /// A download batch was cut (`batch_tag`, `keys`, `uploads`... see docs/operations.md).
    pub const BATCH_CUT: &str = "batch.cut";
    /// A retention run finished (`keys_deleted`, `batches_deleted`, `trail_deleted`).
    pub const RETENTION_RUN: &str = "retention.run";
    /// Trust-list entries were imported (`source`, `os_user`, counts).
    pub const TRUST_IMPORT: &str = "trust.import";
    /// A trust-list entry was revoked (`thumbprint`, `os_user`).
    pub const TRUST_REVOKE: &str = "trust.revoke";
    /// A revoked trust-list entry was re-admitted (`thumbprint`, `os_user`).
    pub const TRUST_READMIT: &str = "trust.readmit";
    /// The server started with a configuration (`version`, `revision`, every setting
    /// redacted as `--check` prints it).
    pub const CONFIG_LOADED: &str = "config.loaded";
    /// Prefix of the callback events ([`CALLBACK_SUBSCRIPTION`], [`CALLBACK_DELIVERY`]), added
    /// by the callback feature through the server's trail hook.
    pub const CALLBACK_PREFIX: &str = "callback.";
    /// A country created, changed or deleted a callback subscription (`country`,
    /// `thumbprint`, `action`, `callback_id`, `host`, `port`, `outcome`, `status`).
    pub const CALLBACK_SUBSCRIPTION: &str = "callback.subscription";
    /// The outcome of one callback delivery attempt (`country`, `callback_id`, `host`,
    /// `port`, `batch_tag`, `attempt`, `outcome`, `reason`); `outcome=suspended` is the
    /// operator's warning.
    pub const CALLBACK_DELIVERY: &str = "callback.delivery";
}

/// The severity of an event (syslog severities: informational and warning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// A normal action.
    Info,
    /// A refused or operator-overridden action.
    Warn,
}

impl Level {
    /// The spelling in a line: `INFO` or `WARN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
        }
    }

    /// The RFC 5424 severity number (6 informational, 4 warning).
    pub fn syslog_severity(self) -> u8 {
        match self {
            Level::Info => 6,
            Level::Warn => 4,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "INFO" => Some(Level::Info),
            "WARN" => Some(Level::Warn),
            _ => None,
        }
    }
}

/// One audit event before it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When it happened (rendered in UTC, microseconds).
    pub at: OffsetDateTime,
    /// Its severity.
    pub level: Level,
    /// Its name (one of [`names`], or `callback.*`): lowercase ASCII letters, digits, `.`,
    /// `_` and `-`.
    pub name: String,
    /// Its fields in order; keys are lowercase ASCII letters, digits, `_` and `.`.
    pub fields: Vec<(String, String)>,
}

impl Event {
    /// An event without fields. Characters outside the name alphabet are replaced by `_`.
    pub fn new(at: OffsetDateTime, level: Level, name: &str) -> Self {
        Event {
            at,
            level,
            name: sanitise_name(name, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            }),
            fields: Vec::new(),
        }
    }

    /// Adds a field (a key outside the key alphabet has those characters replaced by `_`).
    #[must_use]
    pub fn field(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.push(key, value);
        self
    }

    /// Adds a field in place.
    pub fn push(&mut self, key: &str, value: impl std::fmt::Display) {
        let key = sanitise_name(key, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.')
        });
        self.fields.push((key, value.to_string()));
    }

    /// The value of the first field named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The event as one line: timestamp, level, name, then `key=value` fields.
    pub fn line(&self) -> String {
        let mut out = String::with_capacity(64 + self.fields.len() * 24);
        out.push_str(&timestamp(self.at));
        out.push(' ');
        out.push_str(self.level.as_str());
        out.push(' ');
        out.push_str(&self.name);
        for (k, v) in &self.fields {
            out.push(' ');
            out.push_str(k);
            out.push('=');
            push_value(&mut out, v);
        }
        out
    }
}

fn sanitise_name(s: &str, ok: impl Fn(char) -> bool) -> String {
    let out: String = s.chars().map(|c| if ok(c) { c } else { '_' }).collect();
    if out.is_empty() { "_".to_owned() } else { out }
}

/// `2026-12-06T05:30:00.123456Z`: UTC, always six fractional digits.
pub fn timestamp(at: OffsetDateTime) -> String {
    let t = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn bare(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'=' | b'\\'))
}

fn push_value(out: &mut String, v: &str) {
    if bare(v) {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    out.push('"');
}

/// A line that does not read as an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an audit line: {0}")]
pub struct LineError(&'static str);

/// Reads a line written by [`Event::line`] back into its event (the inverse of `line`).
pub fn parse_line(line: &str) -> Result<Event, LineError> {
    let mut parts = line.splitn(4, ' ');
    let at = parts.next().ok_or(LineError("no timestamp"))?;
    let at = OffsetDateTime::parse(at, &Rfc3339).map_err(|_| LineError("timestamp"))?;
    let level =
        Level::parse(parts.next().ok_or(LineError("no level"))?).ok_or(LineError("level"))?;
    let name = parts.next().ok_or(LineError("no name"))?.to_owned();
    let mut fields = Vec::new();
    let mut rest = parts.next().unwrap_or("");
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').ok_or(LineError("field without ="))?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            read_quoted(quoted)?
        } else {
            match after.split_once(' ') {
                Some((v, a)) => (v.to_owned(), a),
                None => (after.to_owned(), ""),
            }
        };
        fields.push((key.to_owned(), value));
        rest = after.strip_prefix(' ').unwrap_or(after);
    }
    Ok(Event {
        at,
        level,
        name,
        fields,
    })
}

fn read_quoted(s: &str) -> Result<(String, &str), LineError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('u') => {
                    let rest = &s[i + 2..];
                    let end = rest.find('}').ok_or(LineError("escape"))?;
                    let hex = rest.get(1..end).ok_or(LineError("escape"))?;
                    let c = u32::from_str_radix(hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or(LineError("escape"))?;
                    out.push(c);
                    for _ in 0..=end {
                        chars.next();
                    }
                }
                _ => return Err(LineError("escape")),
            },
            c => out.push(c),
        }
    }
    Err(LineError("unterminated quote"))
}

/// The chain hash of the first record's predecessor.
pub const GENESIS: [u8; 32] = [0; 32];

/// The chain hash of the record `seq` with `line`, following the record whose hash is `prev`:
/// SHA-256 over `prev`, `seq` (8 bytes big-endian) and the line's bytes.
pub fn chain_hash(prev: &[u8; 32], seq: u64, line: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(line.as_bytes());
    h.finalize().into()
}

/// A stored event: its place in the chain, its instant and its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Dense sequence number, from 1.
    pub seq: u64,
    /// The event's instant (the line's timestamp), for range queries.
    pub at: OffsetDateTime,
    /// The rendered event.
    pub line: String,
    /// The previous record's hash ([`GENESIS`] for record 1).
    pub prev_hash: [u8; 32],
    /// [`chain_hash`] of `prev_hash`, `seq` and `line`.
    pub hash: [u8; 32],
}

impl Record {
    /// Chains `event` after the record `(seq - 1, prev)`; what every store calls to append.
    pub fn chain(prev_seq: u64, prev: [u8; 32], event: &Event) -> Record {
        let seq = prev_seq + 1;
        let line = event.line();
        Record {
            seq,
            at: crate::store::to_store_precision(event.at),
            hash: chain_hash(&prev, seq, &line),
            line,
            prev_hash: prev,
        }
    }

    /// The record as one JSON object (what the HTTP push sends, one per line): `seq`, `time`,
    /// `level`, `event`, `fields` (an object, in order), `hash`, `prev_hash` and the `line`
    /// itself.
    pub fn to_json(&self) -> String {
        let mut obj = serde_json::Map::new();
        obj.insert("seq".into(), self.seq.into());
        if let Ok(e) = parse_line(&self.line) {
            obj.insert("time".into(), timestamp(e.at).into());
            obj.insert("level".into(), e.level.as_str().into());
            obj.insert("event".into(), e.name.into());
            let fields: serde_json::Map<String, serde_json::Value> = e
                .fields
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            obj.insert("fields".into(), fields.into());
        }
        obj.insert("hash".into(), hex::encode(self.hash).into());
        obj.insert("prev_hash".into(), hex::encode(self.prev_hash).into());
        obj.insert("line".into(), self.line.clone().into());
        serde_json::Value::Object(obj).to_string()
    }
}

/// The first broken link of a chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The record's line or hash was changed: its hash is not the chain hash of its content.
    #[error("event {seq} was altered: its hash does not match its content")]
    Altered {
        /// The record.
        seq: u64,
    },
    /// The record does not follow the one before it (that one, or records between them, were
    /// removed, inserted or replaced).
    #[error("event {seq} does not follow event {previous}: the chain is broken before it")]
    Unlinked {
        /// The record.
        seq: u64,
        /// The record read before it.
        previous: u64,
    },
}

impl ChainBreak {
    /// The sequence number of the record where the chain breaks.
    pub fn seq(&self) -> u64 {
        match self {
            ChainBreak::Altered { seq } | ChainBreak::Unlinked { seq, .. } => *seq,
        }
    }
}

/// Checks records fed in sequence order, one page at a time.
#[derive(Clone, Debug, Default)]
pub struct ChainVerifier {
    last: Option<(u64, [u8; 32])>,
    first: Option<u64>,
    count: u64,
}

impl ChainVerifier {
    /// A verifier before the first record. The first record fed is the anchor: record 1 must
    /// follow [`GENESIS`]; a later first record (the older ones removed by retention) is
    /// taken as it is linked.
    pub fn new() -> Self {
        ChainVerifier::default()
    }

    /// Checks the next record.
    pub fn push(&mut self, r: &Record) -> Result<(), ChainBreak> {
        if chain_hash(&r.prev_hash, r.seq, &r.line) != r.hash {
            return Err(ChainBreak::Altered { seq: r.seq });
        }
        match self.last {
            None if r.seq == 1 && r.prev_hash != GENESIS => {
                return Err(ChainBreak::Unlinked {
                    seq: r.seq,
                    previous: 0,
                });
            }
            None => self.first = Some(r.seq),
            Some((seq, hash)) if r.seq != seq + 1 || r.prev_hash != hash => {
                return Err(ChainBreak::Unlinked {
                    seq: r.seq,
                    previous: seq,
                });
            }
            Some(_) => {}
        }
        self.last = Some((r.seq, r.hash));
        self.count += 1;
        Ok(())
    }

    /// The first and last sequence numbers checked, and how many records.
    pub fn checked(&self) -> Option<(u64, u64, u64)> {
        Some((self.first?, self.last?.0, self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ev() -> Event {
        Event::new(
            datetime!(2026-12-06 05:30:00.1234567 UTC),
            Level::Info,
            "upload",
        )
        .field("country", "DE")
        .field("batch_tag", "tag with \"quotes\" and = and \\")
        .field("keys", 5000)
        .field("subject", "CN=Zoë, C=DE\n")
        .field("empty", "")
    }

    #[test]
    fn line_renders_and_reads_back() {
        let e = ev();
        let line = e.line();
        assert_eq!(
            line,
            "2026-12-06T05:30:00.123456Z INFO upload country=DE \
             batch_tag=\"tag with \\\"quotes\\\" and = and \\\\\" keys=5000 \
             subject=\"CN=Zo\\u{eb}, C=DE\\n\" empty=\"\""
        );
        assert!(line.is_ascii());
        let back = parse_line(&line).unwrap();
        assert_eq!(back.name, "upload");
        assert_eq!(back.fields, e.fields);
        assert_eq!(back.at, datetime!(2026-12-06 05:30:00.123456 UTC));
        assert_eq!(back.line(), line);
    }

    #[test]
    fn names_and_keys_are_sanitised() {
        let e = Event::new(datetime!(2026-01-01 0:00 UTC), Level::Warn, "Bad Name\n")
            .field("a key=", "v");
        assert_eq!(
            e.line(),
            "2026-01-01T00:00:00.000000Z WARN _ad__ame_ a_key_=v"
        );
    }

    fn chain(n: u64) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for i in 0..n {
            let (seq, prev) = out.last().map_or((0, GENESIS), |r| (r.seq, r.hash));
            out.push(Record::chain(seq, prev, &ev().field("i", i)));
        }
        out
    }

    fn verify(records: &[Record]) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::new();
        records.iter().try_for_each(|r| v.push(r))
    }

    #[test]
    fn an_intact_chain_verifies_also_after_retention() {
        let c = chain(5);
        assert_eq!(verify(&c), Ok(()));
        assert_eq!(verify(&c[2..]), Ok(()));
        let mut v = ChainVerifier::new();
        c.iter().for_each(|r| v.push(r).unwrap());
        assert_eq!(v.checked(), Some((1, 5, 5)));
    }

    #[test]
    fn verification_names_the_first_broken_link() {
        let mut c = chain(5);
        c[2].line = c[2].line.replace("keys=5000", "keys=4000");
        assert_eq!(verify(&c), Err(ChainBreak::Altered { seq: 3 }));
        // Rehashing the altered record breaks the link to the next one.
        c[2].hash = chain_hash(&c[2].prev_hash, 3, &c[2].line);
        assert_eq!(
            verify(&c),
            Err(ChainBreak::Unlinked {
                seq: 4,
                previous: 3
            })
        );
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c).unwrap_err().seq(), 3);
        let mut c = chain(3);
        c.swap(1, 2);
        assert_eq!(verify(&c).unwrap_err().seq(), 3);
        // Record 1 must follow the genesis hash.
        let mut c = chain(2);
        c[0].prev_hash = [1; 32];
        c[0].hash = chain_hash(&c[0].prev_hash, 1, &c[0].line);
        assert_eq!(verify(&c).unwrap_err().seq(), 1);
    }

    #[test]
    fn json_carries_the_fields_and_the_chain() {
        let r = &chain(1)[0];
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["seq"], 1);
        assert_eq!(v["event"], "upload");
        assert_eq!(v["fields"]["keys"], "5000");
        assert_eq!(v["hash"], hex::encode(r.hash));
        assert_eq!(v["line"], r.line);
    }
}
