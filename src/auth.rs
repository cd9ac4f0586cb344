//! Shared-secret tokens of the listeners that may face a network: the live fan-out (`[publish]
//! token_file`) and the metrics listener's status page and `/metrics` (`[metrics]
//! token_file`).
//!
//! A token is the first line of a file, kept out of the configuration so that the
//! configuration can be shared and the secret cannot. It authenticates a peer; it encrypts
//! nothing, so it keeps the unauthorised off a trusted network, and an untrusted one still
//! needs an SSH tunnel or a TLS proxy.
//!
//! * **Rotation without a restart.** The file is looked at (`stat`) on every check and read
//!   again when it changed, so a new token is asked from the next connection or request on,
//!   while a recorder keeps its FIX sessions. Connections already let in stay. A file that
//!   changed into one without a usable token (emptied, removed, too short) lets no one in
//!   until it holds one again: a listener fails closed. Write a new token with a rename
//!   (`mv`) so that no check sees it half written.
//! * **Timing tells nothing.** What a peer sends and the token are each hashed (BLAKE3) and
//!   the two digests compared in constant time, so neither where they differ nor the token's
//!   length can be learnt from how long a refusal takes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

/// A token shorter than this is refused: a guessable secret is no secret.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The longest first line read from a token file.
const MAX_TOKEN_FILE_LINE: u64 = 4096;

/// A shared secret read from a file, and read again when the file changes. Clones share it.
/// Its `Debug` never shows it.
#[derive(Clone)]
pub struct Token(Arc<Inner>);

struct Inner {
    /// The file it comes from; `None`: bytes given once ([`Token::new`]).
    path: Option<PathBuf>,
    state: Mutex<State>,
}

struct State {
    /// BLAKE3 of the token; `None` while the file holds no usable token.
    digest: Option<[u8; 32]>,
    /// The file as it was when `digest` was read from it; `None`: read it on the next check.
    stamp: Option<Stamp>,
    /// Whether every user of the host may read the file.
    readable_by_all: bool,
}

/// What tells that a file changed: which file (a rename puts another there), its size, and its
/// change and modification times.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    #[cfg(unix)]
    id: (u64, u64, i64, i64, i64, i64),
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        let meta = std::fs::metadata(path)?;
        Ok(Stamp {
            #[cfg(unix)]
            id: {
                use std::os::unix::fs::MetadataExt as _;
                (
                    meta.dev(),
                    meta.ino(),
                    meta.ctime(),
                    meta.ctime_nsec(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                )
            },
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Two tokens are equal when they come from the same file (or none) and ask the same secret now.
impl PartialEq for Token {
    fn eq(&self, other: &Token) -> bool {
        let digest = |t: &Token| t.0.state.lock().unwrap_or_else(|e| e.into_inner()).digest;
        self.0.path == other.0.path && digest(self) == digest(other)
    }
}

impl Eq for Token {}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// The token in `path` as [`read_token`] reads it, and the file's stamp when the file did not
/// change while it was read (otherwise `None`: it is read again at the next check).
fn read_stamped(path: &Path) -> (Option<Stamp>, Result<Read, TokenError>) {
    let before = Stamp::of(path).ok();
    let read = read_token(path);
    let stamp = before.filter(|b| Stamp::of(path).ok().as_ref() == Some(b));
    (stamp, read)
}

/// A token file as read: the token's digest, and whether every user may read the file.
type Read = ([u8; 32], bool);

/// The token in `path` (its digest) and whether every user may read the file.
fn read_token(path: &Path) -> Result<Read, TokenError> {
    let (secret, file) = first_line(path)?;
    #[cfg(unix)]
    let readable_by_all = {
        use std::os::unix::fs::PermissionsExt as _;
        file.metadata()
            .is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
    };
    #[cfg(not(unix))]
    let readable_by_all = {
        let _ = file;
        false
    };
    Ok((digest(secret.as_bytes()), readable_by_all))
}

/// The token in `path` as text, for a client that sends it (`tickrec subscribe --token-file`):
/// the same first line, under the same rules, as a listener reads.
pub fn read_secret(path: &Path) -> Result<String, TokenError> {
    first_line(path).map(|(secret, _)| secret)
}

/// The first line of `path` (within its first 4 KiB), trimmed and checked as a token, and the
/// open file.
fn first_line(path: &Path) -> Result<(String, std::fs::File), TokenError> {
    let invalid = |why: String| TokenError::Invalid {
        path: path.to_owned(),
        why,
    };
    let read = |source| TokenError::Read {
        path: path.to_owned(),
        source,
    };
    // Its first line only: a file given by mistake (a key, a log) is not read whole.
    let mut text = Vec::new();
    let file = std::fs::File::open(path).map_err(read)?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&file, MAX_TOKEN_FILE_LINE),
        &mut text,
    )
    .map_err(read)?;
    if text.len() as u64 == MAX_TOKEN_FILE_LINE && !text.contains(&b'\n') {
        return Err(invalid("the file's first line is longer than 4 KiB".into()));
    }
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let secret = line.trim_ascii();
    check(secret).map_err(invalid)?;
    // Printable ASCII, checked above.
    let secret = String::from_utf8_lossy(secret).into_owned();
    Ok((secret, file))
}

/// Whether `secret` may be a token: at least [`MIN_TOKEN_BYTES`] of printable ASCII without
/// spaces.
fn check(secret: &[u8]) -> Result<(), String> {
    if secret.len() < MIN_TOKEN_BYTES {
        return Err(format!(
            "the token is {} bytes; at least {MIN_TOKEN_BYTES} are needed (`openssl rand -hex 32` \
             makes one)",
            secret.len()
        ));
    }
    if let Some(b) = secret.iter().find(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "the token holds byte {b:#04x}: only printable ASCII without spaces can be sent in a \
             JSON line and an HTTP header alike"
        ));
    }
    Ok(())
}

impl Token {
    /// The token in `path`: its first line (within the file's first 4 KiB), without surrounding
    /// spaces. A file that cannot be read or holds no usable token is an error here, when a
    /// command starts; later, when the file changes, it is read again (see the module's
    /// documentation).
    pub fn load(path: &Path) -> Result<Token, TokenError> {
        let (stamp, read) = read_stamped(path);
        let (digest, readable_by_all) = read?;
        Ok(Token(Arc::new(Inner {
            path: Some(path.to_owned()),
            state: Mutex::new(State {
                digest: Some(digest),
                stamp,
                readable_by_all,
            }),
        })))
    }

    /// A token of these bytes, never read again: at least [`MIN_TOKEN_BYTES`] of printable
    /// ASCII without spaces.
    pub fn new(secret: &[u8]) -> Result<Token, String> {
        check(secret)?;
        Ok(Token(Arc::new(Inner {
            path: None,
            state: Mutex::new(State {
                digest: Some(digest(secret)),
                stamp: None,
                readable_by_all: false,
            }),
        })))
    }

    /// The digest of the token now asked, after reading the file again if it changed since
    /// (`None`: the file holds no usable token, and no one is let in).
    fn current(&self) -> Option<[u8; 32]> {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = &self.0.path else {
            return state.digest;
        };
        let now = Stamp::of(path).ok();
        if now.is_some() && now == state.stamp {
            return state.digest;
        }
        if now.is_none() && state.stamp.is_none() && state.digest.is_none() {
            // Still absent, and already told.
            return None;
        }
        let (stamp, read) = read_stamped(path);
        match read {
            Ok((digest, readable_by_all)) => {
                if state.digest != Some(digest) {
                    tracing::info!(path = %path.display(), "token file changed: its new token is asked from now on");
                }
                state.digest = Some(digest);
                state.readable_by_all = readable_by_all;
                if readable_by_all {
                    tracing::warn!(path = %path.display(), "a token file can be read by every user of this host; `chmod 600` it");
                }
            }
            Err(e) => {
                if state.digest.is_some() || state.stamp != now {
                    tracing::error!(error = %e, "token file changed and holds no usable token: no one is let in until it does");
                }
                state.digest = None;
            }
        }
        state.stamp = stamp;
        state.digest
    }

    /// Whether a token is asked now (`false`: the file changed into one without a usable
    /// token, and no one is let in until it holds one again).
    pub fn usable(&self) -> bool {
        self.current().is_some()
    }

    /// Whether `given` is the token now asked, in time that depends neither on where they
    /// differ nor on the token's length.
    pub fn matches(&self, given: &[u8]) -> bool {
        let Some(want) = self.current() else {
            // Hashed anyway: a refusal takes as long with a file to fix as without.
            let _ = std::hint::black_box(digest(given));
            return false;
        };
        constant_time_eq::constant_time_eq_32(&want, &digest(given))
    }

    /// Logs a warning when the file this token came from may be read by every user of the
    /// host (called as the listener of `what` starts, once logging is set up).
    pub fn warn_if_readable_by_all(&self, what: &str) {
        let state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        if let (true, Some(path)) = (state.readable_by_all, &self.0.path) {
            tracing::warn!(
                path = %path.display(),
                "{what}: its token file can be read by every user of this host; `chmod 600` it"
            );
        }
    }

    /// Whether an HTTP `Authorization` header's value carries this token: `Bearer TOKEN` (as
    /// Prometheus's `authorization: credentials_file` sends it) or `Basic` with the token as
    /// the password and any user name (as a browser asks for it).
    pub fn allows_http(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization.map(str::trim) else {
            return false;
        };
        let Some((scheme, credentials)) = value.split_once(' ') else {
            return false;
        };
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.matches(credentials.as_bytes());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
                return false;
            };
            return match decoded.iter().position(|&b| b == b':') {
                Some(colon) => self.matches(&decoded[colon + 1..]),
                None => false,
            };
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123";

    #[test]
    fn a_token_file_gives_its_first_line_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("  {SECRET}\r\nsecond line\n")).unwrap();
        let token = Token::load(&path).unwrap();
        assert_eq!(read_secret(&path).unwrap(), SECRET);
        assert!(token.matches(SECRET.as_bytes()));
        assert!(!token.matches(b"0123456789abcdef0124"));
        assert!(!token.matches(b"0123456789abcdef012"));
        assert_eq!(format!("{token:?}"), "Token(…)");
    }

    #[test]
    fn short_missing_or_unprintable_tokens_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "short\n").unwrap();
        let e = Token::load(&path).unwrap_err().to_string();
        assert!(e.contains("token is 5 bytes"), "{e}");
        std::fs::write(&path, "0123456789 abcdef0123\n").unwrap();
        let e = Token::load(&path).unwrap_err().to_string();
        assert!(e.contains("0x20"), "{e}");
        std::fs::write(&path, "x".repeat(5000)).unwrap();
        let e = Token::load(&path).unwrap_err().to_string();
        assert!(e.contains("4 KiB"), "{e}");
        let e = Token::load(&dir.path().join("absent"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absent"), "{e}");
        assert!(Token::new(b"short").is_err());
    }

    /// A new token written to the file (renamed in place, or rewritten) is asked from the
    /// next check on; a file emptied or removed lets no one in until it holds a token again.
    #[test]
    fn a_changed_token_file_is_read_again_and_a_broken_one_lets_no_one_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{SECRET}\n")).unwrap();
        let token = Token::load(&path).unwrap();
        let shared = token.clone();
        assert!(token.matches(SECRET.as_bytes()));

        let next = "fedcba9876543210fedcba";
        let staged = dir.path().join("token.new");
        std::fs::write(&staged, format!("{next}\n")).unwrap();
        std::fs::rename(&staged, &path).unwrap();
        assert!(
            shared.matches(next.as_bytes()),
            "a clone sees the new token"
        );
        assert!(!token.matches(SECRET.as_bytes()));

        std::fs::write(&path, "").unwrap();
        assert!(
            !token.matches(next.as_bytes()),
            "an emptied file lets no one in"
        );
        assert!(!token.matches(b""));
        std::fs::write(&path, format!("{SECRET}\n")).unwrap();
        assert!(token.matches(SECRET.as_bytes()));

        std::fs::remove_file(&path).unwrap();
        assert!(
            !token.matches(SECRET.as_bytes()),
            "a removed file lets no one in"
        );
        assert!(!token.matches(SECRET.as_bytes()));
        std::fs::write(&path, format!("{next}\n")).unwrap();
        assert!(token.matches(next.as_bytes()));
        assert!(token.allows_http(Some(&format!("Bearer {next}"))));
    }

    #[test]
    fn http_takes_a_bearer_or_a_basic_password() {
        let token = Token::new(SECRET.as_bytes()).unwrap();
        assert!(token.allows_http(Some(&format!("Bearer {SECRET}"))));
        assert!(token.allows_http(Some(&format!("bearer  {SECRET} "))));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("desk:{SECRET}"));
        assert!(token.allows_http(Some(&format!("Basic {basic}"))));
        let no_user = base64::engine::general_purpose::STANDARD.encode(format!(":{SECRET}"));
        assert!(token.allows_http(Some(&format!("Basic {no_user}"))));
        let wrong = base64::engine::general_purpose::STANDARD.encode("desk:wrong");
        assert!(!token.allows_http(Some(&format!("Basic {wrong}"))));
        let no_colon = base64::engine::general_purpose::STANDARD.encode(SECRET);
        assert!(!token.allows_http(Some(&format!("Basic {no_colon}"))));
        assert!(!token.allows_http(Some("Basic !!!")));
        assert!(!token.allows_http(Some(SECRET)));
        assert!(!token.allows_http(Some(&format!("Digest {SECRET}"))));
        assert!(!token.allows_http(None));
    }
}
