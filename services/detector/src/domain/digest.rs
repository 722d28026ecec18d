//! sha256 digests in the `sha256:<hex>` form that registry entries and heartbeats carry.

use std::fmt;

/// Characters of an invalid value that an error message quotes, so a huge value does not make
/// a huge message.
const QUOTED_CHARS: usize = 80;

/// Errors in a digest's text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("invalid digest {value:?}: expected sha256:<64 hex digits>")]
    Invalid { value: String },
}

/// A sha256 digest, kept as `sha256:<64 lowercase hex digits>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 hex digits>`; upper-case digits are accepted and stored lower-case.
    ///
    /// # Errors
    ///
    /// Returns [`DigestError::Invalid`] quoting the start of the value when it has another
    /// algorithm, length or character.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let valid = value
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !valid {
            return Err(DigestError::Invalid {
                value: quote(value),
            });
        }
        Ok(Self(value.to_ascii_lowercase()))
    }

    /// Returns the digest of 32 raw sha256 bytes.
    pub fn from_sha256(bytes: &[u8; 32]) -> Self {
        let mut text = String::with_capacity(71);
        text.push_str("sha256:");
        for byte in bytes {
            text.push_str(&format!("{byte:02x}"));
        }
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Returns the first `QUOTED_CHARS` characters of `value`, with `…` when it was longer.
pub(crate) fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn digest_parses_and_lowercases() {
        let upper = format!("sha256:{}", HEX.to_ascii_uppercase());
        let digest = Digest::parse(&upper).expect("a valid digest");
        assert_eq!(digest.as_str(), format!("sha256:{HEX}"));
    }

    #[test]
    fn digest_rejects_other_forms() {
        for value in [
            "",
            HEX,
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256:abc",
            &format!("sha256:{HEX}0"),
            &format!("sha256:{}g", &HEX[..63]),
        ] {
            assert!(Digest::parse(value).is_err(), "{value:?} is accepted");
        }
    }

    #[test]
    fn digest_error_quotes_value() {
        let error = Digest::parse("md5:abc").expect_err("md5 is rejected");
        assert_eq!(
            error.to_string(),
            "invalid digest \"md5:abc\": expected sha256:<64 hex digits>"
        );
    }

    #[test]
    fn long_value_is_quoted_in_part() {
        let value = "x".repeat(1_000_000);
        let DigestError::Invalid { value: quoted } =
            Digest::parse(&value).expect_err("garbage is rejected");
        assert_eq!(quoted.chars().count(), QUOTED_CHARS + 1);
    }

    #[test]
    fn raw_bytes_become_hex() {
        let digest = Digest::from_sha256(&[0xab; 32]);
        assert_eq!(digest.as_str(), format!("sha256:{}", "ab".repeat(32)));
    }
}
