//! Shared-secret tokens of the listeners that may face a network: the live fan-out (`[publish]
//! token_file`) and the metrics listener's status page and `/metrics` (`[metrics]
//! token_file`).
//!
//! A token is the first line of a file, kept out of the configuration so that the
//! configuration can be shared and the secret cannot. It authenticates a peer; it encrypts
//! nothing, so it keeps the unauthorised off a trusted network, and an untrusted one still
//! needs an SSH tunnel or a TLS proxy. Comparison takes the same time whatever the bytes
//! (only a token's length can be learnt from timing).

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// A token shorter than this is refused: a guessable secret is no secret.
pub const MIN_TOKEN_BYTES: usize = 16;

/// A shared secret read from a file. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    secret: Vec<u8>,
    /// The file it was read from, when every user of the host may read that file too.
    readable_by_all: Option<PathBuf>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

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

impl Token {
    /// The token in `path`: its first line (within the file's first 4 KiB), without surrounding
    /// spaces. Read once, when a command starts: a new token takes a restart. A file whose mode
    /// lets every user read it is remembered for [`Token::warn_if_readable_by_all`].
    pub fn load(path: &Path) -> Result<Token, TokenError> {
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
        std::fs::File::open(path)
            .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 4096), &mut text))
            .map_err(read)?;
        if text.len() == 4096 && !text.contains(&b'\n') {
            return Err(invalid("the file's first line is longer than 4 KiB".into()));
        }
        let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let mut token = Token::new(line.trim_ascii()).map_err(invalid)?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o004 != 0 {
                token.readable_by_all = Some(path.to_owned());
            }
        }
        Ok(token)
    }

    /// A token of these bytes: at least [`MIN_TOKEN_BYTES`] of printable ASCII without spaces.
    pub fn new(secret: &[u8]) -> Result<Token, String> {
        if secret.len() < MIN_TOKEN_BYTES {
            return Err(format!(
                "the token is {} bytes; at least {MIN_TOKEN_BYTES} are needed (`openssl rand -hex \
                 32` makes one)",
                secret.len()
            ));
        }
        if let Some(b) = secret.iter().find(|b| !b.is_ascii_graphic()) {
            return Err(format!(
                "the token holds byte {b:#04x}: only printable ASCII without spaces can be sent \
                 in a JSON line and an HTTP header alike"
            ));
        }
        Ok(Token {
            secret: secret.to_vec(),
            readable_by_all: None,
        })
    }

    /// Whether `given` is this token, in time independent of where they differ.
    pub fn matches(&self, given: &[u8]) -> bool {
        constant_time_eq::constant_time_eq(&self.secret, given)
    }

    /// Logs a warning when the file this token came from may be read by every user of the
    /// host (called as the listener of `what` starts, once logging is set up).
    pub fn warn_if_readable_by_all(&self, what: &str) {
        if let Some(path) = &self.readable_by_all {
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
