//! Loading a service's TOML config. Unknown keys are tolerated, so that a
//! config written for a newer version still starts an older binary during a
//! rollback, but each one is reported with a warning naming it: a misspelt
//! key must not silently fall back to a default.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Parses a config, returning it and the dotted paths of the keys it did
/// not use.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<(T, Vec<String>), toml::de::Error> {
    let mut unknown = Vec::new();
    let deserializer = toml::Deserializer::parse(text)?;
    let value = serde_ignored::deserialize(deserializer, |path| unknown.push(path.to_string()))?;
    Ok((value, unknown))
}

/// Reads and parses the config at `path`, warning once per unknown key.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let (config, unknown) = parse(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })?;
    for key in unknown {
        tracing::warn!(config = %path.display(), key, "unknown config key ignored");
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Example {
        listen: String,
        #[serde(default)]
        nested: Nested,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    struct Nested {
        #[serde(default)]
        depth: u32,
    }

    #[test]
    fn unknown_keys_are_named_and_known_ones_parse() {
        let (config, unknown) = parse::<Example>(
            "listen = 'a'\nlisten_adress = 'typo'\n[nested]\ndepth = 2\ncolour = 'x'\n",
        )
        .expect("parse");
        assert_eq!(config.listen, "a");
        assert_eq!(config.nested.depth, 2);
        assert_eq!(unknown, ["listen_adress", "nested.colour"]);
        assert!(parse::<Example>("nested = 1").is_err());
    }
}
