//! The token store: one file per (credential, tenant) holding the refresh
//! token of a delegated sign-in.
//!
//! Files live in `<storage.path>/tokens/` (mode 0700), are mode 0600, and
//! are replaced atomically: written to a temporary file, fsynced, renamed
//! over the old one, then the directory is fsynced. Writers take an
//! exclusive lock on `tokens/.lock` so that `m365mon login` and a serving
//! exporter never interleave. A file that is not valid JSON (corrupt) or
//! not m365mon's (foreign) is reported and never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// The default `--storage.path`, relative to the working directory (as
/// Prometheus' `--storage.tsdb.path` is).
pub const DEFAULT_STORAGE_PATH: &str = "data";

/// The `format` field of every token file.
const FORMAT: &str = "m365mon-token-v1";
/// Larger files are not ours.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A stored delegated sign-in.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    /// The credential's name in the config.
    pub credential: String,
    /// The tenant as configured, lowercased.
    pub tenant: String,
    /// The app the refresh token was issued to.
    pub client_id: String,
    /// The refresh token.
    pub refresh_token: Secret,
    /// The scopes Entra granted, space-separated.
    pub scope: String,
    /// Who signed in (`preferred_username` of the ID token), when known.
    pub account: Option<String>,
    /// When this file was written, seconds since the Unix epoch.
    pub saved_at: u64,
}

/// On-disk form; the refresh token is only ever exposed here.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    format: String,
    credential: String,
    tenant: String,
    client_id: String,
    refresh_token: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    account: Option<String>,
    saved_at: u64,
}

/// A token store failure; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("token store: cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is m365mon's kind of file but cannot be read.
    #[error(
        "token file {path} is corrupt ({detail}); it was left in place: inspect it, then remove it (m365mon logout) and sign in again (m365mon login)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the file's content).
        detail: String,
    },
    /// The file is not an m365mon token file, or belongs to another (credential, tenant).
    #[error(
        "token file {path} is not m365mon's token for this credential and tenant ({detail}); it was left in place and not used: move it away, then sign in again (m365mon login)"
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Why it is not ours.
        detail: String,
    },
}

/// The result of [`TokenStore::save_rotated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The new refresh token is on disk.
    Saved,
    /// The file changed since it was read (a new `m365mon login`); it was kept.
    Superseded,
    /// The file is gone (`m365mon logout` meanwhile); nothing was written.
    Removed,
}

/// The token directory.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
}

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> StoreError + 'p {
    move |source| StoreError::Io { action, path: path.to_path_buf(), source }
}

impl TokenStore {
    /// The store under `storage_path` (`<storage_path>/tokens`). Nothing is
    /// created until the first write.
    pub fn new(storage_path: &Path) -> Self {
        TokenStore { dir: storage_path.join("tokens") }
    }

    /// The token directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for (credential, tenant): `<credential>@<tenant>.json`, with
    /// anything but `[a-z0-9._-]` percent-encoded.
    pub fn file_for(&self, credential: &str, tenant: &str) -> PathBuf {
        let mut name = String::new();
        for (i, part) in [credential, &tenant.to_ascii_lowercase()].into_iter().enumerate() {
            if i == 1 {
                name.push('@');
            }
            for b in part.bytes() {
                match b {
                    b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => name.push(b as char),
                    // A leading dot would hide the file; `..` must never appear.
                    b'.' if !name.is_empty() && !name.ends_with('.') && !name.ends_with('@') => name.push('.'),
                    _ => name.push_str(&format!("%{b:02X}")),
                }
            }
        }
        self.dir.join(format!("{name}.json"))
    }

    /// The stored sign-in, `None` when there is none. Corrupt and foreign
    /// files are errors and stay untouched.
    pub fn load(&self, credential: &str, tenant: &str) -> Result<Option<StoredToken>, StoreError> {
        let path = self.file_for(credential, tenant);
        read_file(&path, credential, tenant)
    }

    /// Stores a new sign-in (after `m365mon login`), replacing a valid
    /// earlier one; refuses to replace a corrupt or foreign file.
    pub fn save(&self, token: &StoredToken) -> Result<PathBuf, StoreError> {
        let path = self.file_for(&token.credential, &token.tenant);
        let _lock = self.lock()?;
        read_file(&path, &token.credential, &token.tenant)?;
        write_atomically(&self.dir, &path, token)?;
        Ok(path)
    }

    /// Stores a rotated refresh token, but only if the file still holds
    /// `used` (the token that was redeemed): a sign-in stored meanwhile by
    /// `m365mon login` wins.
    pub fn save_rotated(&self, used: &Secret, token: &StoredToken) -> Result<Rotation, StoreError> {
        let path = self.file_for(&token.credential, &token.tenant);
        let _lock = self.lock()?;
        match read_file(&path, &token.credential, &token.tenant)? {
            Some(current) if current.refresh_token == *used => {}
            Some(_) => return Ok(Rotation::Superseded),
            None => return Ok(Rotation::Removed),
        }
        write_atomically(&self.dir, &path, token)?;
        Ok(Rotation::Saved)
    }

    /// Forgets the sign-in of (credential, tenant), whatever the file holds.
    /// Returns the file when there was one.
    pub fn remove(&self, credential: &str, tenant: &str) -> Result<Option<PathBuf>, StoreError> {
        let path = self.file_for(credential, tenant);
        if !self.dir.exists() {
            return Ok(None);
        }
        let _lock = self.lock()?;
        let _ = fs::remove_file(tmp_path(&path));
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.dir)?;
                Ok(Some(path))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    /// Creates the directory (0700) and takes the writers' lock.
    fn lock(&self) -> Result<File, StoreError> {
        ensure_dir(&self.dir)?;
        let lock_path = self.dir.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        f.lock().map_err(io_err("lock", &lock_path))?;
        Ok(f)
    }
}

fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err("create directory", dir))?;
    let meta = fs::metadata(dir).map_err(io_err("read", dir))?;
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err("set mode 0700 on", dir))?;
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync directory", dir))
}

fn write_atomically(dir: &Path, path: &Path, token: &StoredToken) -> Result<(), StoreError> {
    let body = FileV1 {
        format: FORMAT.into(),
        credential: token.credential.clone(),
        tenant: token.tenant.to_ascii_lowercase(),
        client_id: token.client_id.clone(),
        refresh_token: token.refresh_token.expose().to_string(),
        scope: token.scope.clone(),
        account: token.account.clone(),
        saved_at: token.saved_at,
    };
    let mut json = serde_json::to_vec_pretty(&body).map_err(|e| StoreError::Io {
        action: "encode",
        path: path.to_path_buf(),
        source: io::Error::other(e.to_string()),
    })?;
    json.push(b'\n');
    let tmp = tmp_path(path);
    // The lock is held, so the fixed temporary name is ours; a leftover from
    // a killed writer is simply overwritten.
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_err("set mode 0600 on", &tmp))?;
    f.write_all(&json).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("sync", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
    sync_dir(dir)
}

fn read_file(path: &Path, credential: &str, tenant: &str) -> Result<Option<StoredToken>, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { path: path.to_path_buf(), detail };
    let foreign = |detail: String| StoreError::Foreign { path: path.to_path_buf(), detail };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    if !meta.is_file() {
        return Err(foreign("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(foreign(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let mut bytes = Vec::new();
    File::open(path).and_then(|f| f.take(MAX_FILE_BYTES).read_to_end(&mut bytes)).map_err(io_err("read", path))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        // serde_json's messages give line and column, never content.
        corrupt(if bytes.is_empty() { "empty file".into() } else { format!("not JSON: {e}") })
    })?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => return Err(foreign(format!("format {other:?}, expected {FORMAT:?}"))),
        None => return Err(foreign(format!("no \"format\": \"{FORMAT}\" field"))),
    }
    let file: FileV1 = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
    if file.credential != credential || !file.tenant.eq_ignore_ascii_case(tenant) {
        return Err(foreign(format!("it belongs to credential {:?} and tenant {:?}", file.credential, file.tenant)));
    }
    if file.refresh_token.is_empty() {
        return Err(corrupt("empty refresh_token".into()));
    }
    Ok(Some(StoredToken {
        credential: file.credential,
        tenant: file.tenant,
        client_id: file.client_id,
        refresh_token: Secret::new(file.refresh_token),
        scope: file.scope,
        account: file.account,
        saved_at: file.saved_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe() {
        let s = TokenStore::new(Path::new("/x"));
        assert_eq!(
            s.file_for("app", "Contoso.onmicrosoft.com"),
            Path::new("/x/tokens/app@contoso.onmicrosoft.com.json")
        );
        assert_eq!(s.file_for("a.b", "../etc"), Path::new("/x/tokens/a.b@%2E.%2Fetc.json"));
        assert_eq!(s.file_for(".", "t"), Path::new("/x/tokens/%2E@t.json"));
    }

    #[test]
    fn rotation_is_saved_kept_or_refused_by_what_the_file_holds() {
        let dir = std::env::temp_dir().join(format!("m365mon-store-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = TokenStore::new(&dir);
        let token = |rt: &str| StoredToken {
            credential: "app".into(),
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "c".into(),
            refresh_token: Secret::new(rt),
            scope: String::new(),
            account: None,
            saved_at: 0,
        };
        store.save(&token("rt1")).expect("saved");
        assert!(matches!(store.save_rotated(&Secret::new("rt1"), &token("rt2")), Ok(Rotation::Saved)));
        // A login replaced rt2 meanwhile: kept.
        store.save(&token("rt-login")).expect("saved");
        assert!(matches!(store.save_rotated(&Secret::new("rt2"), &token("rt3")), Ok(Rotation::Superseded)));
        // A logout removed it meanwhile: nothing is written back.
        store.remove("app", "contoso.onmicrosoft.com").expect("removed");
        assert!(matches!(store.save_rotated(&Secret::new("rt-login"), &token("rt4")), Ok(Rotation::Removed)));
        assert!(!store.file_for("app", "contoso.onmicrosoft.com").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
