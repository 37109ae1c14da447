//! The config file as a whole: which format it is, its `"aegis"` settings, and its server
//! entries, each checked by [`super::entry`].
//!
//! Owns: [`Document`], the file read and parsed once: `{"mcpServers": {…}}` (Claude Desktop,
//! Cursor, Cline, …) or VS Code's `{"servers": {…}, "inputs": […]}` ([`Format`]), both in one
//! file refused, neither refused; other top-level keys ignored (clients keep settings of their
//! own there); the `"aegis"` object checked by [`super::settings`] (unknown keys refused).
//! Never: expands `${…}` in the `"aegis"` object (settings are taken as written, in stdio and in
//! serve); logs (the caller logs or prints the entries' warnings).

use super::entry::{self, Checked, Context};
use super::error::Error;
use super::settings::{settings_from, SettingsFile};
use super::Settings;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Which of the two shapes a config file has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `{"mcpServers": {…}}`, the form most MCP clients write.
    McpServers,
    /// VS Code's `{"servers": {…}}` (its `"inputs"` are accepted; `${input:…}` is refused where
    /// it is used).
    VsCode,
}

impl Format {
    /// How a person would name it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Format::McpServers => "\"mcpServers\"",
            Format::VsCode => "VS Code's \"servers\"",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileShape {
    mcp_servers: Option<Entries>,
    servers: Option<Entries>,
    aegis: Option<SettingsFile>,
}

/// The server entries in the order the file writes them (the first of two servers listing one
/// resource URI serves it); a name written twice keeps its last entry, in its first place.
#[derive(Debug, Default)]
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of server entries")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entries, A::Error> {
                let mut entries: Vec<(String, Value)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    match entries.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = value,
                        None => entries.push((name, value)),
                    }
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// A config file, parsed, its settings checked; its server entries not yet checked.
#[derive(Debug)]
pub(crate) struct Document {
    path: PathBuf,
    format: Format,
    entries: Entries,
    settings: Settings,
}

impl Document {
    /// Reads and parses `path`, and checks its `"aegis"` settings.
    pub(crate) fn read(path: &Path) -> Result<Document, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: FileShape = serde_json::from_slice(&bytes).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source,
        })?;
        let (format, entries) = match (file.mcp_servers, file.servers) {
            (Some(entries), None) => (Format::McpServers, entries),
            (None, Some(entries)) => (Format::VsCode, entries),
            (Some(_), Some(_)) => {
                return Err(Error::TwoFormats {
                    path: path.to_owned(),
                })
            }
            (None, None) => {
                return Err(Error::NoServers {
                    path: path.to_owned(),
                })
            }
        };
        let settings = settings_from(file.aegis.unwrap_or_default())?;
        Ok(Document {
            path: path.to_owned(),
            format,
            entries,
            settings,
        })
    }

    /// The file's format.
    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// How many server entries the file has, disabled ones included.
    pub(crate) fn n_entries(&self) -> usize {
        self.entries.0.len()
    }

    /// The settings, the document consumed.
    pub(crate) fn into_settings(self) -> Settings {
        self.settings
    }

    /// Every server entry checked, in the file's order, `${…}` expanded from the gate's
    /// environment.
    pub(crate) fn check_servers(&self) -> Vec<Checked> {
        let lookup = |name: &str| std::env::var_os(name);
        let ctx = Context {
            separator: self.settings.separator,
            allow_env: &self.settings.allow_env,
            base_dir: self.path.parent().unwrap_or(Path::new("")),
            lookup: &lookup,
        };
        self.entries
            .0
            .iter()
            .map(|(name, value)| entry::check(name.clone(), value.clone(), &ctx))
            .collect()
    }
}
