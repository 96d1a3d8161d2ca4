//! Where the secrets key comes from: `IDM_SECRETS_KEY` (the base64 of 32 bytes) when set,
//! else a key file, generated on first start as IDM generates its keystore. Every role sharing
//! a database needs the same key; a single host running its roles from one directory shares
//! the file, a deployment across hosts sets `IDM_SECRETS_KEY` everywhere.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};

use super::{Sealer, SecretsError};

pub const KEY_LEN: usize = 32;

/// The key file of a role given neither `IDM_SECRETS_KEY` nor `--secrets-key-file`.
pub const DEFAULT_KEY_FILE: &str = "./data/secrets.key";

/// Where to find the key. Its `Debug` shows the file's path, never a key.
#[derive(Clone)]
pub enum KeySource {
    /// The base64 of the key (`IDM_SECRETS_KEY`).
    Encoded(String),
    /// A file holding the base64 of the key, created with a new key if missing.
    File(PathBuf),
    /// A key given directly (tests, tools).
    Key([u8; KEY_LEN]),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Encoded(_) => f.write_str("Encoded(<redacted>)"),
            KeySource::File(path) => f.debug_tuple("File").field(path).finish(),
            KeySource::Key(_) => f.write_str("Key(<redacted>)"),
        }
    }
}

impl KeySource {
    /// `IDM_SECRETS_KEY` when given (and not empty), else `file`.
    pub fn from_args(encoded: Option<String>, file: PathBuf) -> KeySource {
        match encoded.filter(|k| !k.trim().is_empty()) {
            Some(k) => KeySource::Encoded(k),
            None => KeySource::File(file),
        }
    }
}

/// The sealer for `source`, generating the key file if it is missing.
pub fn load(source: &KeySource) -> Result<Sealer, SecretsError> {
    let key = match source {
        KeySource::Key(k) => *k,
        KeySource::Encoded(text) => decode(text).ok_or(SecretsError::BadKey)?,
        KeySource::File(path) => from_file(path)?,
    };
    Sealer::new(&key)
}

fn decode(text: &str) -> Option<[u8; KEY_LEN]> {
    STANDARD.decode(text.trim()).ok()?.try_into().ok()
}

fn from_file(path: &Path) -> Result<[u8; KEY_LEN], SecretsError> {
    if ensure_file(path)? {
        tracing::warn!(
            path = %path.display(),
            "generated a new secrets key: every role sharing this database needs it (the same file, or its contents in IDM_SECRETS_KEY); back it up, the stored Salesforce secrets cannot be read without it"
        );
    }
    let text = std::fs::read_to_string(path).map_err(|source| SecretsError::KeyFile {
        path: path.display().to_string(),
        source,
    })?;
    decode(&text).ok_or_else(|| SecretsError::BadKeyFile {
        path: path.display().to_string(),
    })
}

/// Creates the key file with a new key if it is missing; true when this call created it.
/// (The demo reports the new file itself instead of a warning in its walk-through.)
pub fn ensure_file(path: &Path) -> Result<bool, SecretsError> {
    let io = |source| SecretsError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(_) => Ok(false),
        // `None`: another process created it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(generate(path).map_err(io)?.is_some())
        }
        Err(e) => Err(io(e)),
    }
}

/// Writes a new key to `path` unless the file appeared meanwhile (`None` then). Written
/// whole to a private temporary file first and linked into place, so a concurrent reader
/// never sees half a key and two starters never overwrite each other.
fn generate(path: &Path) -> std::io::Result<Option<[u8; KEY_LEN]>> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| std::io::Error::other("the system's random source failed"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(STANDARD.encode(key).as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(Some(key)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const WHAT: &str = "salesforce_tokens.refresh_token";

    #[test]
    fn a_generated_key_file_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("idm-secrets-{}", uuid::Uuid::new_v4()));
        let path = dir.join("nested").join("secrets.key");
        let first = load(&KeySource::File(path.clone())).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = first.seal(WHAT, "token").unwrap();
        assert!(!ensure_file(&path).unwrap(), "there already");
        let again = load(&KeySource::File(path.clone())).unwrap();
        assert_eq!(again.open(WHAT, &sealed).unwrap(), "token");
        // The same key given as IDM_SECRETS_KEY opens it too.
        let text = std::fs::read_to_string(&path).unwrap();
        let from_env = load(&KeySource::from_args(
            Some(text),
            PathBuf::from("/nonexistent"),
        ))
        .unwrap();
        assert_eq!(from_env.open(WHAT, &sealed).unwrap(), "token");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_shows_no_key() {
        let encoded = STANDARD.encode([9u8; KEY_LEN]);
        let shown = format!("{:?}", KeySource::Encoded(encoded.clone()));
        assert_eq!(shown, "Encoded(<redacted>)");
        let shown = format!("{:?}", KeySource::Key([9; KEY_LEN]));
        assert_eq!(shown, "Key(<redacted>)");
        assert!(!shown.contains('9'));
        assert_eq!(
            format!("{:?}", KeySource::File(PathBuf::from("/k"))),
            "File(\"/k\")"
        );
    }

    #[test]
    fn bad_keys_are_refused_with_their_source() {
        assert!(matches!(
            load(&KeySource::Encoded("c2hvcnQ=".into())),
            Err(SecretsError::BadKey)
        ));
        let dir = std::env::temp_dir().join(format!("idm-secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secrets.key");
        std::fs::write(&path, "not a key").unwrap();
        let err = load(&KeySource::File(path.clone())).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        // An empty IDM_SECRETS_KEY means "not set".
        assert!(matches!(
            KeySource::from_args(Some(" ".into()), path),
            KeySource::File(_)
        ));
    }
}
