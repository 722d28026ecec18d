//! Recognition of error-like template text.

/// Word stems that mark a template as error-like, matched case-insensitively against the start
/// of each word.
pub const DEFAULT_ERROR_STEMS: &[&str] = &[
    "abort",
    "cannot",
    "crash",
    "critical",
    "corrupt",
    "denied",
    "error",
    "exception",
    "fail",
    "fatal",
    "killed",
    "oom",
    "panic",
    "refused",
    "segfault",
    "segmentation",
    "severe",
    "terminated",
    "timed",
    "timeout",
    "traceback",
    "unable",
    "unreachable",
];

/// Returns whether one of the words of `text` starts with one of `stems`.
///
/// Words are runs of ASCII letters. A run is split again where a lowercase letter is followed by
/// an uppercase one, and before the last capital of a capital run that goes on in lowercase. So
/// `NullPointerException` and `IOError` yield `Exception` and `Error`.
pub(crate) fn is_error_like(text: &str, stems: &[String]) -> bool {
    words(text).any(|word| {
        stems.iter().any(|stem| {
            word.len() >= stem.len() && word[..stem.len()].eq_ignore_ascii_case(stem.as_bytes())
        })
    })
}

/// Splits `text` into words as [`is_error_like`] describes.
fn words(text: &str) -> impl Iterator<Item = &[u8]> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < bytes.len() && !bytes[at].is_ascii_alphabetic() {
            at += 1;
        }
        if at == bytes.len() {
            return None;
        }
        let start = at;
        at += 1;
        while at < bytes.len() && bytes[at].is_ascii_alphabetic() {
            let previous = bytes[at - 1];
            let current = bytes[at];
            let next_lower = bytes.get(at + 1).is_some_and(u8::is_ascii_lowercase);
            let camel_step = previous.is_ascii_lowercase() && current.is_ascii_uppercase();
            let acronym_end =
                previous.is_ascii_uppercase() && current.is_ascii_uppercase() && next_lower;
            if camel_step || acronym_end {
                break;
            }
            at += 1;
        }
        Some(&bytes[start..at])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stems() -> Vec<String> {
        DEFAULT_ERROR_STEMS
            .iter()
            .map(|stem| (*stem).to_owned())
            .collect()
    }

    #[test]
    fn words_split_camel_case() {
        let words: Vec<&[u8]> = words("NullPointerException at IOError, x=1").collect();
        let expected: [&[u8]; 7] = [
            b"Null",
            b"Pointer",
            b"Exception",
            b"at",
            b"IO",
            b"Error",
            b"x",
        ];
        assert_eq!(words, expected);
    }

    #[test]
    fn error_words_are_recognised() {
        let stems = stems();
        for text in [
            "Connection refused",
            "java.lang.NullPointerException",
            "Request timed out after <*> ms",
            "task FAILED",
            "kernel panic - not syncing",
        ] {
            assert!(is_error_like(text, &stems), "{text} is error-like");
        }
    }

    #[test]
    fn ordinary_text_is_not_error_like() {
        let stems = stems();
        for text in [
            "PacketResponder <*> for block blk_<*> terminating",
            "user logged in",
            "terror",
        ] {
            assert!(!is_error_like(text, &stems), "{text} is not error-like");
        }
    }
}
