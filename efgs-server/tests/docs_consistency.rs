//! Documents and code in step (issue 14 point 8): every `EFGS_*` variable, settings key,
//! `efgs-server` command (with its options) and HTTP route that README.md, CHANGELOG.md and
//! docs/**/*.md name exists in the binary (`--help` of the command) or in the router (a
//! request to the running binary is not answered as an unknown path or a wrong method), and
//! every setting of `--help` is in docs/CONFIGURATION.md.
//!
//! A passage that describes a feature still being built carries `<!-- pending: issue N -->`;
//! the names it uses that do not exist yet are exempt only when [`PENDING`] lists them under
//! that issue, and only in the section (up to the next heading) holding the marker (a marker on
//! a line of its own right before a heading covers that heading's section). An entry
//! of [`PENDING`] that exists by now, or that no document uses any more, fails the test: once
//! the issue is merged, delete its entries (and the markers).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Names documented ahead of their code, by issue. A route covers its sub-paths
/// (`/diagnosiskeys/callback` covers `/diagnosiskeys/callback/{id}`); a command
/// (`efgs-server <command>`) covers its subcommands.
const PENDING: &[(u32, &str)] = &[];

/// Settings of the reference EFGS (Java) that the protocol description quotes, with the one
/// document allowed to name them.
const REFERENCE_NAMES: &[(&str, &str)] = &[
    ("docs/protocol.md", "batching.timeinterval"),
    ("docs/protocol.md", "batching.timelimit"),
    ("docs/protocol.md", "batching.doclimit"),
];

/// Sections of the settings table, plus those of pending settings (so their keys are seen).
const PENDING_SECTIONS: &[&str] = &["callback", "audit", "metrics"];

/// Paths outside `/diagnosiskeys` that documents may name as routes (all but the first on the
/// metrics listener).
const OTHER_ROUTES: &[&str] = &["/healthz", "/livez", "/readyz", "/metrics"];

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ---------------------------------------------------------------------------------------------
// What the documents name
// ---------------------------------------------------------------------------------------------

/// A name found in a document, with where it was found and which issues' pending markers cover
/// that place.
#[derive(Debug, Clone)]
struct Mention {
    kind: Kind,
    name: String,
    file: String,
    line: usize,
    pending: BTreeSet<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Variable,
    Setting,
    /// `efgs-server <command> [<subcommand>]`, with the options given.
    Command {
        path: Vec<String>,
        options: Vec<String>,
    },
    /// Optional method, path with `{}` for parameters.
    Route {
        method: Option<String>,
    },
}

/// Every mention in one Markdown document. `sections` are the known settings sections.
fn mentions(file: &str, text: &str, sections: &BTreeSet<String>) -> Vec<Mention> {
    let mut out = Vec::new();
    let mut pending = BTreeSet::new();
    // Issues of marker lines standing alone right before a heading: they cover that section.
    let mut carry = BTreeSet::new();
    let mut fence: Option<String> = None;
    let mut toml_block = String::new();
    let mut toml_start = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim_start();
        if let Some(lang) = &fence {
            if trimmed.starts_with("```") {
                if lang == "toml" {
                    for key in toml_keys(&toml_block) {
                        out.push(mention(Kind::Setting, key, file, toml_start, &pending));
                    }
                    toml_block.clear();
                }
                fence = None;
                continue;
            }
            if lang == "toml" {
                toml_block.push_str(line);
                toml_block.push('\n');
            }
        } else if let Some(lang) = trimmed.strip_prefix("```") {
            fence = Some(lang.trim().to_owned());
            toml_start = n + 1;
            continue;
        } else if trimmed.starts_with('#') {
            pending = std::mem::take(&mut carry);
        }
        let marker_only = trimmed.starts_with("<!-- pending: issue ") && trimmed.ends_with("-->");
        if !marker_only && !trimmed.is_empty() {
            carry.clear();
        }
        let mut rest = line;
        while let Some(at) = rest.find("<!-- pending: issue ") {
            rest = &rest[at + "<!-- pending: issue ".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            // (`issue N` in a text about the markers is not a marker)
            if let Ok(issue) = digits.parse::<u32>() {
                pending.insert(issue);
                if marker_only {
                    carry.insert(issue);
                }
            }
        }
        let in_code = fence.is_some();
        for var in variables(line) {
            out.push(mention(Kind::Variable, var, file, n, &pending));
        }
        for key in setting_keys(line, sections) {
            out.push(mention(Kind::Setting, key, file, n, &pending));
        }
        let code: Vec<&str> = if in_code {
            // Shell, TOML and nginx comments are prose.
            let code = match line.find(" #") {
                Some(at) => &line[..at],
                None if trimmed.starts_with('#') => "",
                None => line,
            };
            vec![code]
        } else {
            code_spans(line)
        };
        for span in code {
            for (path, options) in commands(span) {
                let name = format!("efgs-server {}", path.join(" ")).trim().to_owned();
                out.push(mention(
                    Kind::Command { path, options },
                    name,
                    file,
                    n,
                    &pending,
                ));
            }
        }
        for (method, path) in routes(line) {
            out.push(mention(Kind::Route { method }, path, file, n, &pending));
        }
    }
    out
}

fn mention(kind: Kind, name: String, file: &str, line: usize, pending: &BTreeSet<u32>) -> Mention {
    Mention {
        kind,
        name,
        file: file.to_owned(),
        line,
        pending: pending.clone(),
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `EFGS_*` names (a bare `EFGS_` prefix or `EFGS_*` is not a name).
fn variables(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find("EFGS_") {
        let start = from + at;
        let before = line[..start].chars().next_back();
        let end = line[start..]
            .find(|c: char| !c.is_ascii_uppercase() && !c.is_ascii_digit() && c != '_')
            .map_or(line.len(), |e| start + e);
        from = end.max(start + 1);
        if before.is_some_and(is_word) {
            continue;
        }
        let name = line[start..end].trim_end_matches('_');
        if name.len() > "EFGS_".len() {
            // `EFGS_TEST_*` names a family: kept with its `_*`, matched as a prefix.
            if line[end..].starts_with('*') && line[start..end].ends_with('_') {
                out.push(format!("{name}_*"));
            } else {
                out.push(name.to_owned());
            }
        }
    }
    out
}

/// `section.key` tokens whose section is a settings section (file names such as `http.rs`
/// excluded).
fn setting_keys(line: &str, sections: &BTreeSet<String>) -> Vec<String> {
    const NOT_KEYS: &[&str] = &[
        "rs", "md", "toml", "sh", "json", "yaml", "pem", "key", "txt",
    ];
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let prev = i.checked_sub(1).map(|p| chars[p].1);
        let starts_token =
            c.is_ascii_lowercase() && prev.is_none_or(|p| !is_word(p) && !"./-:".contains(p));
        if !starts_token {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && (is_word(chars[j].1) || chars[j].1 == '.') {
            j += 1;
        }
        let end = chars.get(j).map_or(line.len(), |&(e, _)| e);
        let next = chars.get(j).map(|&(_, c)| c);
        let token = line[start..end].trim_end_matches('.');
        i = j.max(i + 1);
        if next.is_some_and(|c| c == '/' || c == '-' || c == '(') {
            continue;
        }
        let mut parts = token.split('.');
        let (Some(section), Some(key)) = (parts.next(), parts.next()) else {
            continue;
        };
        if parts.next().is_some() || key.is_empty() || NOT_KEYS.contains(&key) {
            continue;
        }
        if sections.contains(section) && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            out.push(token.to_owned());
        }
    }
    out
}

/// The dotted keys a TOML example sets (a key holding a table that is itself a map setting,
/// such as `encryption.key_files`, is reported as that setting).
fn toml_keys(block: &str) -> Vec<String> {
    let Ok(value) = block.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in &value {
        match v {
            toml::Value::Table(t) => {
                for inner in t.keys() {
                    out.push(format!("{k}.{inner}"));
                }
            }
            _ => out.push(k.clone()),
        }
    }
    out
}

/// The contents of the inline code spans of a line.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect()
}

/// `efgs-server ...` invocations in a piece of code: the command path (up to two words) and the
/// `--options` given. `cargo ... -p efgs-server` and paths such as `efgs-server/src` are not
/// invocations.
fn commands(code: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    let words: Vec<&str> = code.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let program = w.trim_start_matches(['(', '$']);
        let is_program = program == "efgs-server" || program.ends_with("/efgs-server");
        if !is_program {
            continue;
        }
        // An invocation starts a command: first word, after a shell operator, an environment
        // assignment or `sudo -u <user>`; not `cargo -p efgs-server`, `systemctl stop
        // efgs-server`, `journalctl -u efgs-server` or prose.
        let starts_command = i == 0
            || words[i - 1].contains('=')
            || [
                "|", "&&", "||", ";", "(", "$(", "exec", "time", "then", "do",
            ]
            .contains(&words[i - 1])
            || (i >= 3 && words[i - 2] == "-u" && words[i - 3] == "sudo");
        if !starts_command {
            continue;
        }
        let mut path = Vec::new();
        let mut options = Vec::new();
        let mut k = i + 1;
        while let Some(&w) = words.get(k) {
            if w.starts_with('#') || ["|", "&&", "||", ";", ">", "\\", "or", "and"].contains(&w) {
                break;
            }
            let w = w.trim_end_matches(['`', ',', ')', ';', ':', '.']);
            k += 1;
            if w == "--config" || w == "-c" {
                k += 1;
                continue;
            }
            if let Some(opt) = w.strip_prefix("--") {
                if !opt.is_empty() {
                    options.push(format!("--{}", opt.split('=').next().unwrap_or(opt)));
                }
            } else if path.len() < 2
                && options.is_empty()
                && !w.is_empty()
                && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            {
                path.push(w.to_owned());
            } else if path.is_empty() {
                break;
            }
        }
        if !path.is_empty() || !options.is_empty() {
            out.push((path, options));
        }
    }
    out
}

/// Routes named on a line: `/diagnosiskeys...` and [`OTHER_ROUTES`], with the method written
/// before them, if any; path parameters (`{date}`, `<date>`, `:date`) as `{}`.
fn routes(line: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find('/') {
        let start = from + at;
        from = start + 1;
        let prev = line[..start].chars().next_back();
        if prev.is_some_and(|p| is_word(p) || p == '/' || p == '.' || p == '-' || p == ':') {
            continue;
        }
        let end = line[start..]
            .find(|c: char| c.is_whitespace() || "`)|\"',;?*".contains(c))
            .map_or(line.len(), |e| start + e);
        let raw = line[start..end].trim_end_matches(['.', ':']);
        let is_route = raw == "/diagnosiskeys"
            || raw.starts_with("/diagnosiskeys/")
            || OTHER_ROUTES.contains(&raw);
        if !is_route || raw.contains("...") || raw.contains('…') {
            continue;
        }
        let path: Vec<String> = raw
            .split('/')
            .map(|seg| {
                let param = (seg.starts_with('{') && seg.ends_with('}'))
                    || (seg.starts_with('<') && seg.ends_with('>'))
                    || seg.starts_with(':');
                if param {
                    "{}".to_owned()
                } else {
                    seg.to_owned()
                }
            })
            .collect();
        let before = line[..start].trim_end();
        let method = METHODS
            .iter()
            .find(|m| {
                before.ends_with(*m)
                    && !before[..before.len() - m.len()]
                        .chars()
                        .next_back()
                        .is_some_and(is_word)
            })
            .map(|m| (*m).to_owned());
        out.push((method, path.join("/")));
        from = end.max(from);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What the binary has
// ---------------------------------------------------------------------------------------------

/// The binary, without the `EFGS_*` variables of the test environment (CI sets some).
fn efgs_server() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_efgs-server"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("EFGS_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn help(path: &[&str]) -> Option<String> {
    let out = efgs_server().args(path).arg("--help").output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

/// The subcommands a `--help` text lists under `Commands:`.
fn subcommands(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // Wrapped descriptions are indented further than the names.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

/// `(key, variable)` of every setting in `--help` ("  key / EFGS_VAR [default: ...]").
fn help_settings(help: &str) -> Vec<(String, String)> {
    help.lines()
        .filter_map(|l| {
            let l = l.strip_prefix("  ")?;
            let (key, rest) = l.split_once(" / ")?;
            let var = rest.split_whitespace().next()?;
            (var.starts_with("EFGS_") && !key.contains(' '))
                .then(|| (key.to_owned(), var.to_owned()))
        })
        .collect()
}

/// What exists: the settings and variables of `--help`, the command tree with each command's
/// options, and variables the repository's scripts and tests read.
struct Known {
    settings: BTreeSet<String>,
    variables: BTreeSet<String>,
    commands: BTreeMap<Vec<String>, String>,
}

impl Known {
    fn from_binary() -> Known {
        let top = help(&[]).unwrap();
        let pairs = help_settings(&top);
        assert!(pairs.len() > 30, "--help lists {} settings", pairs.len());
        let mut commands = BTreeMap::new();
        commands.insert(Vec::new(), top.clone());
        for sub in subcommands(&top) {
            let sub_help = help(&[&sub]).unwrap();
            for subsub in subcommands(&sub_help) {
                let h = help(&[&sub, &subsub]).unwrap();
                commands.insert(vec![sub.clone(), subsub], h);
            }
            commands.insert(vec![sub], sub_help);
        }
        let mut vars: BTreeSet<String> = pairs.iter().map(|(_, v)| v.clone()).collect();
        vars.extend(variables(&top));
        vars.extend(repo_variables());
        Known {
            settings: pairs.into_iter().map(|(k, _)| k).collect(),
            variables: vars,
            commands,
        }
    }

    fn sections(&self) -> BTreeSet<String> {
        let mut s: BTreeSet<String> = self
            .settings
            .iter()
            .filter_map(|k| k.split_once('.').map(|(s, _)| s.to_owned()))
            .collect();
        s.extend(PENDING_SECTIONS.iter().map(|s| (*s).to_owned()));
        s
    }

    /// Why a mention (other than a route) does not exist, or `None` when it does.
    fn problem(&self, m: &Mention) -> Option<String> {
        match &m.kind {
            Kind::Variable => (!match m.name.strip_suffix('*') {
                Some(prefix) => self.variables.iter().any(|v| v.starts_with(prefix)),
                None => self.variables.contains(&m.name),
            })
            .then(|| "no such setting variable, nor read by any script or test".to_owned()),
            Kind::Setting => (!self.settings.contains(&m.name)
                && !["listen", "storage"].contains(&m.name.as_str()))
            .then(|| "no such setting in `efgs-server --help`".to_owned()),
            Kind::Command { path, options } => {
                // The longest known command prefix of the path.
                let known_len = (0..=path.len())
                    .rev()
                    .find(|&n| self.commands.contains_key(&path[..n]))
                    .unwrap_or(0);
                let help = &self.commands[&path[..known_len]];
                let has_subcommands = !subcommands(help).is_empty();
                if known_len < path.len() && (known_len == 0 || has_subcommands) {
                    return Some(format!("`{}` is not a command", path[known_len]));
                }
                if has_subcommands && known_len > 0 && known_len == path.len() {
                    return None; // `efgs-server trust-list` alone names the group
                }
                options
                    .iter()
                    .find(|o| !help.contains(&format!("{o} ")) && !help.contains(&format!("{o}\n")))
                    .map(|o| format!("option {o} is not in its --help"))
            }
            Kind::Route { .. } => None,
        }
    }
}

/// `EFGS_*` names read by the repository's scripts and Rust sources (test harness variables such
/// as `EFGS_TEST_DATABASE_URL`), this file excluded.
fn repo_variables() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![repo()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "docs" {
                    dirs.push(path);
                }
            } else if (name.ends_with(".rs") || name.ends_with(".sh") || name == "run")
                && name != "docs_consistency.rs"
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                for line in text.lines() {
                    out.extend(variables(line));
                }
            }
        }
    }
    out
}

/// The documents checked: README.md, CHANGELOG.md and every `.md` under docs/.
fn documents() -> Vec<(String, String)> {
    let root = repo();
    let mut files = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
        .into_iter()
        .filter(|p| p.exists())
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        // A superseded ADR records what was decided then; its successor describes what is.
        .filter(|(rel, text)| {
            !(rel.starts_with("docs/adr/")
                && text
                    .lines()
                    .take(5)
                    .any(|l| l.starts_with("Status: superseded")))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The router: the binary, serving on loopback
// ---------------------------------------------------------------------------------------------

struct Serving {
    child: Child,
    port: u16,
    /// The port of `metrics.listen`, once the binary has that setting (issue 11): /metrics,
    /// /livez and /readyz are probed there.
    metrics_port: Option<u16>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    /// `efgs-server serve` on the memory store with the guide's trust anchor.
    fn start(known: &Known) -> Serving {
        let free_port = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let port = free_port();
        let metrics_port = known.settings.contains("metrics.listen").then(free_port);
        let anchor = repo().join("efgs-core/tests/data/guide/trust_anchor.pem");
        let mut cmd = efgs_server();
        if let Some(m) = metrics_port {
            cmd.env("EFGS_METRICS_LISTEN", format!("127.0.0.1:{m}"));
        }
        let child = cmd
            .arg("serve")
            .env("EFGS_LISTEN", format!("127.0.0.1:{port}"))
            .env("EFGS_TRUST_ANCHORS", anchor)
            .env("EFGS_LOG_FILTER", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let serving = Serving {
            child,
            port,
            metrics_port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while serving.request("GET", "/healthz").is_none() {
            assert!(Instant::now() < deadline, "efgs-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        serving
    }

    /// Status and body of one HTTP/1.1 request without credentials.
    fn request(&self, method: &str, path: &str) -> Option<(u16, String)> {
        let port = match self.metrics_port {
            Some(m) if OTHER_ROUTES[1..].contains(&path) => m,
            _ => self.port,
        };
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        Some((status, body))
    }

    /// Why the router does not serve `method path`, or `None` when it does. Without a method,
    /// the path must exist for some method (a known path with a wrong method is 405).
    fn route_problem(&self, method: Option<&str>, path: &str) -> Option<String> {
        let concrete = path.replace("{}", "20260101");
        let (status, body) = self.request(method.unwrap_or("GET"), &concrete)?;
        if status == 404 && body.contains("\"not-found\"") {
            Some("unknown path (404 not-found)".to_owned())
        } else if status == 405 && method.is_some() {
            Some("the path exists, not with this method (405)".to_owned())
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------------------------

/// The problems of `docs` with the exemptions of `pending` (the test's [`PENDING`]); also the
/// pending entries that are used (to find stale ones).
fn check(
    docs: &[(String, String)],
    known: &Known,
    route_problem: &dyn Fn(Option<&str>, &str) -> Option<String>,
    pending: &[(u32, &str)],
    used_pending: &mut BTreeSet<(u32, String)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let sections = known.sections();
    for (file, text) in docs {
        for m in mentions(file, text, &sections) {
            if event_name(&m.name) {
                continue;
            }
            let problem = match &m.kind {
                // Without a method, a route may be named without its trailing path parameters
                // (`/diagnosiskeys/download`).
                Kind::Route { method: None } => ["", "/{}", "/{}/{}"]
                    .iter()
                    .map(|params| route_problem(None, &format!("{}{params}", m.name)))
                    .reduce(|a, b| a.and(b))
                    .flatten(),
                Kind::Route { method } => route_problem(method.as_deref(), &m.name),
                _ => known.problem(&m),
            };
            let Some(problem) = problem else { continue };
            if REFERENCE_NAMES.contains(&(m.file.as_str(), m.name.as_str())) {
                continue;
            }
            let exempt = pending
                .iter()
                .find(|(issue, name)| pending_names(name, &m.name) && m.pending.contains(issue));
            match exempt {
                Some((issue, name)) => {
                    used_pending.insert((*issue, (*name).to_owned()));
                }
                None => problems.push(format!(
                    "{}:{}: `{}`: {problem}{}",
                    m.file,
                    m.line,
                    m.name,
                    if pending.iter().any(|(_, n)| pending_names(n, &m.name)) {
                        " (listed as pending, but this section has no matching `<!-- pending: issue N -->`)"
                    } else {
                        ""
                    }
                )),
            }
        }
    }
    problems
}

/// Audit-trail and log event names (`auth.success`, `callback.suspended`) look like settings
/// keys; they are the event names the code defines, not settings.
fn event_name(name: &str) -> bool {
    use efgs_core::trail::names;
    [
        names::AUTH_SUCCESS,
        names::AUTH_FAILURE,
        names::AUDIT_QUERY,
        names::BATCH_CUT,
        names::RETENTION_RUN,
        names::TRUST_IMPORT,
        names::TRUST_REVOKE,
        names::TRUST_READMIT,
        names::CONFIG_LOADED,
        names::CALLBACK_SUBSCRIPTION,
        names::CALLBACK_DELIVERY,
        // The warning the callback worker logs (efgs-server/src/callback.rs).
        "callback.suspended",
    ]
    .contains(&name)
}

/// Whether the pending entry `entry` covers the mention `name` (a pending command covers its
/// subcommands, a pending route its sub-paths).
fn pending_names(entry: &str, name: &str) -> bool {
    name == entry
        || (entry.starts_with("efgs-server ") && name.starts_with(&format!("{entry} ")))
        || (entry.starts_with('/') && name.starts_with(&format!("{entry}/")))
}

#[test]
fn documents_name_only_what_exists() {
    let known = Known::from_binary();
    let server = Serving::start(&known);
    let docs = documents();
    assert!(docs.len() > 15, "{} documents found", docs.len());
    let mut used = BTreeSet::new();
    let problems = check(
        &docs,
        &known,
        &|m, p| server.route_problem(m, p),
        PENDING,
        &mut used,
    );
    assert!(
        problems.is_empty(),
        "documents name what does not exist:\n{}",
        problems.join("\n")
    );
    // Pending entries that have become real, or that no document needs any more.
    let stale: Vec<String> = PENDING
        .iter()
        .filter(|(issue, name)| !used.contains(&(*issue, (*name).to_owned())))
        .map(|(issue, name)| format!("issue {issue}: {name}"))
        .collect();
    assert!(
        stale.is_empty(),
        "PENDING entries that now exist or are no longer used: delete them (and their markers):\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_setting_of_help_is_in_configuration_md() {
    let help = help(&[]).unwrap();
    let doc = std::fs::read_to_string(repo().join("docs/CONFIGURATION.md")).unwrap();
    let settings = help_settings(&help);
    assert!(settings.len() > 30);
    for (key, var) in settings {
        assert!(
            doc.contains(&format!("| `{key}` | `{var}` |")),
            "docs/CONFIGURATION.md has no row for {key} / {var}"
        );
    }
}

/// The check finds wrong names of every kind, and honours markers only with the allow-list.
#[test]
fn wrong_names_are_reported() {
    let known = Known::from_binary();
    let routes = |method: Option<&str>, path: &str| -> Option<String> {
        let ok = [
            "/healthz",
            "/diagnosiskeys/upload",
            "/diagnosiskeys/download/{}",
        ]
        .contains(&path)
            && method.is_none_or(|m| m != "DELETE");
        (!ok).then(|| "unknown".to_owned())
    };
    let doc = "\
# Good
Set `database.url` (`EFGS_DATABASE_URL`), run `efgs-server serve --check` and
`efgs-server trust-list revoke <thumbprint>`; `GET /healthz`, POST /diagnosiskeys/upload.
```toml
[upload]
max_keys = 5000
```
```sh
efgs-server --config /etc/efgs/efgs-server.toml trust-list import entries/
cargo run -p efgs-server -- --help
journalctl -u efgs-server -f     # efgs-server answers
sudo -u efgs efgs-server trust-list list
```
`EFGS_TEST_*` variables; `/diagnosiskeys/download` without its date.
# Bad
Set `database.urll` or EFGS_DATABASE_URLL, run `efgs-server serve --chek`, `efgs-server trust-list revok`,
`efgs-server frobnicate`, DELETE /diagnosiskeys/upload, `/diagnosiskeys/nowhere`, `EFGS_NOPE_*`.
```toml
[upload]
max_keyz = 1
```
Pending without marker: `callback.imagined`.
# Marked <!-- pending: issue 11 -->
`callback.imagined`, `metrics.listen`, `efgs-server audit-log verify`; but not `audit.sislog`.
# Marked with the wrong issue <!-- pending: issue 10 -->
`callback.imagined`.

<!-- pending: issue 11 -->
# `callback.dreamt_of` in a heading after a marker line
`callback.imagined`
# The next section is not covered
`callback.dreamt_of`
";
    let mut used = BTreeSet::new();
    // Names that will never exist, pending under issue 11 for this check only.
    let pending = [(11, "callback.imagined"), (11, "callback.dreamt_of")];
    let problems = check(
        &[("x.md".to_owned(), doc.to_owned())],
        &known,
        &routes,
        &pending,
        &mut used,
    );
    let named: Vec<&str> = problems
        .iter()
        .map(|p| p.split('`').nth(1).unwrap())
        .collect();
    assert_eq!(
        named,
        [
            "EFGS_DATABASE_URLL",
            "database.urll",
            "efgs-server serve",
            "efgs-server trust-list revok",
            "EFGS_NOPE_*",
            "efgs-server frobnicate",
            "/diagnosiskeys/upload",
            "/diagnosiskeys/nowhere",
            "upload.max_keyz",
            "callback.imagined",
            "audit.sislog",
            "callback.imagined",
            "callback.dreamt_of",
        ],
        "{problems:#?}"
    );
    assert!(used.contains(&(11, "callback.imagined".to_owned())));
    assert!(used.contains(&(11, "callback.dreamt_of".to_owned())));
}
