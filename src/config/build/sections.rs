//! `[backends.NAME]` and `[[listeners]]`: several databases behind one process.
//!
//! ```text
//!  top-level keys ─┬─ + [backends.B] ─────────────────► view of backend B  (Upstream)
//!  (file, flags,   └─ + [backends.B] + [[listeners]] i ► view of listener i (sessions)
//!   variables)
//! ```
//!
//! Each view is a whole [`Config`] built by [`super::build_view`], the same checks as for
//! the flat keys: a key set in a section wins over the top-level value (file, flag or
//! variable alike), every other key keeps its top-level value. A section takes only its
//! side's keys ([`keys::BACKEND_SIDE`], [`keys::LISTENER_SIDE`]); a key of the other side
//! or a process-wide key in a section is a problem naming where it belongs. Problems of all
//! views are reported together, once each, under the path where the value was written
//! (`backends.sessions.sentinels`, `listeners[1].listen`); a required key missing from a
//! section is reported under that section.
//!
//! Without any section the flat keys are one `default` listener bound to one `default`
//! backend, exactly as before.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::super::cli::Cli;
use super::super::error::{Origin, Problem};
use super::super::keys::{self, Key};
use super::super::raw::{self, RawConfig};
use super::super::{BackendConfig, Config, DEFAULT_SECTION, ListenerConfig};
use super::build_view;

/// The keys whose meaning depends on `mode` ([`super::mode`]).
const MODE_DEPENDENT: &[Key] = &[
    keys::SEEDS,
    keys::SENTINELS,
    keys::MASTER_NAME,
    keys::SENTINEL_USERNAME,
    keys::SENTINEL_PASSWORD,
    keys::SENTINEL_PASSWORD_FILE,
];

/// Longest backend or listener name: they are metric labels and log fields.
const MAX_NAME: usize = 64;

/// Merges `cli` over `raw` (and each section over both) and checks every key.
pub fn build(cli: &Cli, mut raw: RawConfig) -> Result<Config, Vec<Problem>> {
    let backends = raw.backends.take();
    let listeners = raw.listeners.take();
    if backends.is_none() && listeners.is_none() {
        let config = build_view(cli, raw)?;
        let (backends, listeners) = config.sections();
        return Ok(Config {
            backends,
            listeners,
            ..config
        });
    }
    let mut out = Problems::default();
    let top = std::mem::take(&mut raw.table).0;

    // The backends: named sections, or the flat keys as `default`.
    let mut backend_sections: Vec<(String, Option<Section>, bool)> = Vec::new();
    match backends {
        Some(tables) if !tables.is_empty() => {
            for (name, raw::RawTable(table)) in tables {
                let path = format!("backends.{name}");
                check_name(&mut out, &name, &path, keys::BACKENDS);
                let (section, mut extras) = Section::check(&mut out, path, table, Side::Backend);
                let required = match extras.remove(keys::REQUIRED.name) {
                    None => true,
                    Some(toml::Value::Boolean(required)) => required,
                    Some(_) => {
                        out.push(section.problem(
                            keys::REQUIRED,
                            Origin::File,
                            "must be true or false",
                        ));
                        true
                    }
                };
                backend_sections.push((name, Some(section), required));
            }
        }
        Some(_) => out.push(Problem {
            key: keys::BACKENDS,
            origin: Origin::File,
            message: "is empty: define [backends.NAME] tables, or remove it".to_owned(),
            section: None,
        }),
        None => backend_sections.push((DEFAULT_SECTION.to_owned(), None, true)),
    }

    let mut backend_views = Vec::new();
    for (name, section, required) in &backend_sections {
        let layers: Vec<&Section> = section.iter().collect();
        if let Some(config) = view(&mut out, cli, &top, &layers) {
            backend_views.push(BackendConfig {
                name: name.clone(),
                required: *required,
                config: Arc::new(config),
            });
        }
    }

    // The listeners: entries, or the flat keys as `default`.
    let entries: Vec<Option<toml::Table>> = match listeners {
        Some(list) if !list.is_empty() => list.into_iter().map(|t| Some(t.0)).collect(),
        Some(_) => {
            out.push(Problem {
                key: keys::LISTENERS,
                origin: Origin::File,
                message: "is empty: add [[listeners]] entries, or remove it".to_owned(),
                section: None,
            });
            Vec::new()
        }
        None => vec![None],
    };
    let mut bound: Vec<(Option<Section>, usize, Option<String>)> = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let Some(table) = entry else {
            // The flat listener: bound to the one backend there must be.
            if backend_sections.len() > 1 {
                out.push(Problem {
                    key: keys::LISTENERS,
                    origin: Origin::Default,
                    message: format!(
                        "required with several backends ({}): add one [[listeners]] entry \
                         per port, each with backend = \"NAME\"",
                        names(&backend_sections)
                    ),
                    section: None,
                });
                continue;
            }
            bound.push((None, 0, Some(backend_sections[0].0.clone())));
            continue;
        };
        let path = format!("listeners[{index}]");
        let (section, mut extras) = Section::check(&mut out, path, table, Side::Listener);
        let name = match extras.remove(keys::NAME.name) {
            None => None,
            Some(toml::Value::String(name)) => {
                check_name(&mut out, &name, &section.path, keys::NAME);
                Some(name)
            }
            Some(_) => {
                out.push(section.problem(keys::NAME, Origin::File, "must be a string"));
                None
            }
        };
        let backend = match extras.remove(keys::BACKEND.name) {
            None if backend_sections.len() == 1 => Some(0),
            None => {
                let message = format!(
                    "required with several backends: one of {}",
                    names(&backend_sections)
                );
                out.push(section.problem(keys::BACKEND, Origin::Default, message));
                None
            }
            Some(toml::Value::String(wanted)) => {
                let found = backend_sections
                    .iter()
                    .position(|(name, ..)| *name == wanted);
                if found.is_none() {
                    let message = format!(
                        "{wanted:?} is not a backend: define [backends.{wanted}], or use one \
                         of {}",
                        names(&backend_sections)
                    );
                    out.push(section.problem(keys::BACKEND, Origin::File, message));
                }
                found
            }
            Some(_) => {
                let message = "must be a string naming a [backends.NAME] table";
                out.push(section.problem(keys::BACKEND, Origin::File, message));
                None
            }
        };
        if let Some(backend) = backend {
            bound.push((Some(section), backend, name));
        }
    }

    // Default names, then the views.
    let mut listener_views = Vec::new();
    let mut sockets: Vec<(SocketAddr, String)> = Vec::new();
    for (index, (section, backend, name)) in bound.iter().enumerate() {
        let backend_name = &backend_sections[*backend].0;
        let shared = bound.iter().filter(|(_, b, _)| b == backend).count() > 1;
        let name = match name {
            Some(name) => name.clone(),
            None if !shared => backend_name.clone(),
            None => {
                if let Some(section) = section {
                    let message = format!(
                        "required: backend `{backend_name}` has several listeners; give each \
                         a name (it labels their metrics)"
                    );
                    out.push(section.problem(keys::NAME, Origin::Default, message));
                }
                // Checked on, so that its other problems are reported too.
                format!("{backend_name}-{index}")
            }
        };
        if listener_views
            .iter()
            .any(|l: &ListenerConfig| l.name == name)
        {
            let path = section.as_ref().map(|s| s.path.clone());
            out.push(Problem {
                key: keys::NAME,
                origin: Origin::File,
                message: format!("{name:?} names two listeners; names must be unique"),
                section: path,
            });
            continue;
        }
        let mut layers: Vec<&Section> = backend_sections[*backend].1.iter().collect();
        layers.extend(section.iter());
        let Some(config) = view(&mut out, cli, &top, &layers) else {
            continue;
        };
        // Two listeners on one socket: the second bind would silently share the first's
        // port (SO_REUSEPORT), so clients would land on either backend at random.
        let mut own = vec![config.listen];
        own.extend(
            config
                .tls
                .as_ref()
                .map(|tls| SocketAddr::new(config.listen.ip(), tls.port)),
        );
        for addr in own {
            if let Some((_, other)) = sockets.iter().find(|(taken, _)| overlaps(*taken, addr)) {
                out.push(Problem {
                    key: if addr == config.listen {
                        keys::LISTEN
                    } else {
                        keys::TLS_PORT
                    },
                    origin: Origin::File,
                    message: format!("{addr} is already the port of listener `{other}`"),
                    section: section.as_ref().map(|s| s.path.clone()),
                });
            }
            sockets.push((addr, name.clone()));
        }
        listener_views.push(ListenerConfig {
            name,
            backend: *backend,
            config: Arc::new(config),
        });
    }

    if !out.list.is_empty() || listener_views.is_empty() {
        debug_assert!(!out.list.is_empty(), "no listener and no problem");
        return Err(out.list);
    }
    // Process-wide keys are the same in every view: the first listener's stands for all.
    let first = listener_views[0].config.view();
    Ok(Config {
        backends: backend_views,
        listeners: listener_views,
        ..first
    })
}

/// True when binding `a` and `b` would take the same port on some address.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn names(backends: &[(String, Option<Section>, bool)]) -> String {
    backends
        .iter()
        .map(|(name, ..)| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names are metric label values and log fields: short, plain words.
fn check_name(out: &mut Problems, name: &str, path: &str, key: Key) {
    let plain = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain {
        let (key, section) = if key == keys::BACKENDS {
            (Key { name: "", ..key }, path.to_owned())
        } else {
            (key, path.to_owned())
        };
        out.push(Problem {
            key,
            origin: Origin::File,
            message: format!(
                "{name:?} is not a name: 1 to {MAX_NAME} letters, digits, `-` or `_` (it \
                 labels metrics)"
            ),
            section: Some(section),
        });
    }
}

/// Which kind of section.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Backend,
    Listener,
}

impl Side {
    fn keys(self) -> &'static [Key] {
        match self {
            Side::Backend => keys::BACKEND_SIDE,
            Side::Listener => keys::LISTENER_SIDE,
        }
    }

    /// Whether a section of this side may set `key`.
    fn takes(self, key: &Key) -> bool {
        self.keys().contains(key)
            || (self == Side::Listener && keys::LISTENER_OVERRIDES.contains(key))
    }

    /// The keys only a section of this side takes.
    fn extras(self) -> &'static [Key] {
        match self {
            Side::Backend => &[keys::REQUIRED],
            Side::Listener => &[keys::NAME, keys::BACKEND],
        }
    }
}

/// One section's valid keys, as TOML.
struct Section {
    /// `backends.orders`, `listeners[1]`.
    path: String,
    side: Side,
    table: toml::Table,
}

impl Section {
    /// Splits `table` into its side's keys (each type-checked alone, so a problem names its
    /// key), its extras (`required`, `name`, `backend`) and problems for everything else.
    fn check(
        out: &mut Problems,
        path: String,
        table: toml::Table,
        side: Side,
    ) -> (Section, BTreeMap<&'static str, toml::Value>) {
        let mut section = Section {
            path,
            side,
            table: toml::Table::new(),
        };
        let mut extras = BTreeMap::new();
        for (name, value) in table {
            if let Some(extra) = side.extras().iter().find(|key| key.name == name) {
                extras.insert(extra.name, value);
                continue;
            }
            let Some(key) = keys::by_name(&name) else {
                out.push(Problem {
                    key: Key {
                        name: "",
                        flag: "",
                        env: "",
                    },
                    origin: Origin::File,
                    message: raw::suggestion(&name),
                    section: Some(format!("{}.{name}", section.path)),
                });
                continue;
            };
            if !side.takes(&key) {
                let message = if keys::LISTENER_SIDE.contains(&key) {
                    "a listener key: set it in a [[listeners]] entry (or at top level, for \
                     every listener)"
                } else if keys::BACKEND_SIDE.contains(&key) {
                    "a backend key: set it in a [backends.NAME] table (or at top level, for \
                     every backend)"
                } else {
                    "process-wide: set it at top level"
                };
                out.push(section.problem(key, Origin::File, message));
                continue;
            }
            let mut alone = toml::Table::new();
            alone.insert(name.clone(), value.clone());
            match raw::section(alone) {
                Ok(_) => {
                    section.table.insert(name, value);
                }
                Err(message) => out.push(section.problem(key, Origin::File, message)),
            }
        }
        (section, extras)
    }

    fn problem(&self, key: Key, origin: Origin, message: impl Into<String>) -> Problem {
        Problem {
            key,
            origin,
            message: message.into(),
            section: Some(self.path.clone()),
        }
    }
}

/// Every problem once, in the order found (views repeat the top-level ones).
#[derive(Default)]
struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    fn push(&mut self, problem: Problem) {
        if !self.list.contains(&problem) {
            self.list.push(problem);
        }
    }
}

/// One view: the top-level keys with `layers` (a backend's section, then a listener's)
/// over them. Problems are filed under the section that set the key, or, for a required
/// key nobody set, under the section of its side.
fn view(out: &mut Problems, cli: &Cli, top: &toml::Table, layers: &[&Section]) -> Option<Config> {
    let mut merged = top.clone();
    let mut names = Vec::new();
    // The keys of one mode are no default for a backend of another mode: top-level `seeds`
    // mean nothing to a Sentinel backend, and would be refused there.
    let top_mode = cli
        .mode
        .clone()
        .filter(|mode| !mode.trim().is_empty())
        .or_else(|| {
            top.get(keys::MODE.name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "cluster".to_owned());
    for layer in layers {
        let mode = layer.table.get(keys::MODE.name).and_then(|v| v.as_str());
        if mode.is_some_and(|mode| !mode.trim().eq_ignore_ascii_case(top_mode.trim())) {
            for key in MODE_DEPENDENT {
                merged.remove(key.name);
                names.push(key.name.to_owned());
            }
        }
    }
    for layer in layers {
        for (name, value) in &layer.table {
            merged.insert(name.clone(), value.clone());
            names.push(name.clone());
        }
    }
    // Both steps were checked key by key already; a failure here is a bug, said as one.
    let raw = match raw::section(merged) {
        Ok(raw) => raw,
        Err(message) => {
            out.push(Problem {
                key: keys::LISTENERS,
                origin: Origin::File,
                message: format!("internal: a checked section did not merge: {message}"),
                section: None,
            });
            return None;
        }
    };
    let cli = cli.without(&names).ok()?;
    match build_view(&cli, raw) {
        Ok(config) => Some(config),
        Err(problems) => {
            for mut problem in problems {
                let setter = layers
                    .iter()
                    .rev()
                    .find(|layer| layer.table.contains_key(problem.key.name));
                let owner = setter.or_else(|| {
                    let unset = problem.origin == Origin::Default;
                    layers
                        .iter()
                        .rev()
                        .find(|layer| unset && layer.side.keys().contains(&problem.key))
                });
                problem.section = owner.map(|layer| layer.path.clone());
                out.push(problem);
            }
            None
        }
    }
}
