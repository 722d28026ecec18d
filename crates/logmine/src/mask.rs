//! Masking of the variable parts of one token.
//!
//! Numbers, hexadecimal ids, UUIDs, IPv4 and IPv6 addresses with their ports, MAC addresses,
//! paths, block ids (`blk_-123` becomes `blk_<*>`) and timestamps become [`WILDCARD`]. The scan
//! is hand-written over bytes: a token is split into segments of letters and digits, and each
//! segment is classified. A wildcard that follows another wildcard across one or two joining
//! characters (`.:,-/_+`) merges with it, so `10.0.0.1:80` and `2005-06-03-15.42.50.675872` each
//! become one `<*>`.

/// The text that stands for a variable part of a line in a template.
pub const WILDCARD: &str = "<*>";

/// Masks `token`, which contains no whitespace, and appends the result to `out`.
///
/// Returns whether any part of the token was masked.
pub(crate) fn mask_token(token: &str, out: &mut String) -> bool {
    let bytes = token.as_bytes();
    let has_colon = bytes.contains(&b':');
    // Addresses are not tried again inside a run of colons and hexadecimal digits that already
    // failed, so that a long run is scanned once rather than from each of its groups.
    let mut scanned_for_address = 0;
    let token_start = out.len();
    let mut masked = false;
    let mut i = 0;
    while i < bytes.len() {
        let at_boundary = i == 0 || !is_segment_byte(bytes[i - 1]);
        if at_boundary {
            let mut whole = match_path(bytes, i).or_else(|| match_uuid(bytes, i));
            if whole.is_none() && has_colon && i >= scanned_for_address {
                match match_colon_hex(bytes, i) {
                    Ok(end) => whole = Some(end),
                    Err(scanned) => scanned_for_address = scanned,
                }
            }
            if let Some(end) = whole {
                push_wildcard(out, token_start);
                masked = true;
                i = end;
                continue;
            }
        }
        let c = bytes[i];
        let signed = at_boundary
            && (c == b'-' || c == b'+')
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        if !is_segment_byte(c) && !signed {
            out.push(char::from(c));
            i += 1;
            continue;
        }
        let segment_start = if signed { i + 1 } else { i };
        let mut end = segment_start;
        while end < bytes.len() && is_segment_byte(bytes[end]) {
            end += 1;
        }
        match classify(&bytes[segment_start..end]) {
            Segment::Word => out.push_str(&token[segment_start..end]),
            Segment::Value => {
                push_wildcard(out, token_start);
                masked = true;
            }
            Segment::Mixed => {
                if signed {
                    out.push(char::from(c));
                }
                push_mixed(&token[segment_start..end], out, token_start);
                masked = true;
            }
        }
        i = end;
    }
    masked
}

/// Bytes that make up a segment: ASCII letters and digits, and every byte of a non-ASCII
/// character, so that the scan cuts only at ASCII bytes, which are always character boundaries.
fn is_segment_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80
}

/// Characters that join the parts of one value, as in `10.0.0.1:80` or `appattempt_1445_0020`.
fn is_joiner(c: u8) -> bool {
    matches!(c, b'.' | b':' | b',' | b'-' | b'/' | b'_' | b'+')
}

/// Shortest run of hexadecimal digits taken for an id as a whole. The run must contain a decimal
/// digit, and shorter runs such as `ee0` or `e820` keep their letters.
const MIN_HEX_ID_LEN: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// No digit: kept as it is.
    Word,
    /// A whole value: a number, a hexadecimal id or an id of mixed letters and digits.
    Value,
    /// Letters with a number attached (`t761`, `workers2`, `10ms`): only the digits are masked.
    Mixed,
}

/// Classifies a segment of letters and digits.
fn classify(segment: &[u8]) -> Segment {
    let mut digits = 0usize;
    let mut letters = 0usize;
    let mut all_hex = true;
    let mut non_ascii = false;
    let mut transitions = 0usize;
    let mut previous_digit = None;
    for &c in segment {
        let digit = c.is_ascii_digit();
        if digit {
            digits += 1;
        } else if c.is_ascii_alphabetic() {
            letters += 1;
            all_hex &= c.is_ascii_hexdigit();
        } else {
            non_ascii = true;
            all_hex = false;
        }
        if previous_digit.is_some_and(|previous| previous != digit) {
            transitions += 1;
        }
        previous_digit = Some(digit);
    }

    if digits == 0 {
        return Segment::Word;
    }
    if letters == 0 && !non_ascii {
        return Segment::Value;
    }

    let hex_literal = segment.len() > 2
        && segment[0] == b'0'
        && segment[1].eq_ignore_ascii_case(&b'x')
        && segment[2..].iter().all(u8::is_ascii_hexdigit);
    if hex_literal || (all_hex && segment.len() >= MIN_HEX_ID_LEN) {
        return Segment::Value;
    }
    if non_ascii {
        return Segment::Mixed;
    }

    let digit_ends = segment[0].is_ascii_digit() && segment[segment.len() - 1].is_ascii_digit();
    if transitions >= 3 || digit_ends {
        Segment::Value
    } else {
        Segment::Mixed
    }
}

/// Appends a segment of letters and digits with each run of digits masked.
fn push_mixed(segment: &str, out: &mut String, token_start: usize) {
    let bytes = segment.as_bytes();
    let mut run_start = 0;
    while run_start < bytes.len() {
        let digit = bytes[run_start].is_ascii_digit();
        let mut run_end = run_start + 1;
        while run_end < bytes.len() && bytes[run_end].is_ascii_digit() == digit {
            run_end += 1;
        }
        if digit {
            push_wildcard(out, token_start);
        } else {
            out.push_str(&segment[run_start..run_end]);
        }
        run_start = run_end;
    }
}

/// Appends a wildcard, merging it with a wildcard of the same token that precedes it directly or
/// across one or two joining characters.
fn push_wildcard(out: &mut String, token_start: usize) {
    let len = out.len();
    let bytes = out.as_bytes();
    for joiners in 0..=2 {
        if len < token_start + WILDCARD.len() + joiners {
            break;
        }
        let tail = &bytes[len - joiners..];
        if !tail.iter().all(|&c| is_joiner(c)) {
            break;
        }
        if bytes[..len - joiners].ends_with(WILDCARD.as_bytes()) {
            out.truncate(len - joiners);
            return;
        }
    }
    out.push_str(WILDCARD);
}

/// Matches a path at `start`: `/a/b`, `C:\a\b` or `\\host\share`, with at least two separators.
///
/// Returns the end of the path, which stops before closing punctuation and trailing `.:,`.
fn match_path(bytes: &[u8], start: usize) -> Option<usize> {
    let first = bytes[start];
    let drive = first.is_ascii_alphabetic()
        && bytes.get(start + 1) == Some(&b':')
        && bytes
            .get(start + 2)
            .is_some_and(|&c| c == b'\\' || c == b'/');
    if first != b'/' && first != b'\\' && !drive {
        return None;
    }
    let mut end = start;
    let mut separators = 0;
    while end < bytes.len()
        && !matches!(
            bytes[end],
            b'"' | b'\'' | b')' | b']' | b'}' | b'>' | b',' | b';'
        )
    {
        separators += usize::from(bytes[end] == b'/' || bytes[end] == b'\\');
        end += 1;
    }
    while end > start && matches!(bytes[end - 1], b'.' | b':' | b',') {
        end -= 1;
    }
    (separators >= 2).then_some(end)
}

/// Matches a UUID (`8-4-4-4-12` hexadecimal digits) at `start`.
fn match_uuid(bytes: &[u8], start: usize) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    if bytes.get(start + 8) != Some(&b'-') {
        return None;
    }
    let mut at = start;
    for (index, &width) in GROUPS.iter().enumerate() {
        let group = bytes.get(at..at + width)?;
        if !group.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        at += width;
        if index + 1 < GROUPS.len() {
            if bytes.get(at) != Some(&b'-') {
                return None;
            }
            at += 1;
        }
    }
    match bytes.get(at) {
        Some(&c) if is_segment_byte(c) => None,
        _ => Some(at),
    }
}

/// Matches an IPv6 address at `start`, bare (`fe80::1`) or bracketed with an optional port
/// (`[::1]:8080`), or another id of colon-separated hexadecimal groups such as a MAC address.
/// Groups hold at most four digits, at least one digit is decimal, and there are at least four
/// groups or one `::`.
///
/// Returns the end of the match, or else the end of the run of colons and hexadecimal digits
/// that was scanned.
fn match_colon_hex(bytes: &[u8], start: usize) -> Result<usize, usize> {
    let bracketed = bytes[start] == b'[';
    let begin = start + usize::from(bracketed);
    let mut end = begin;
    let mut colons = 0;
    let mut double_colons = 0;
    let mut group_len = 0;
    let mut digits = 0;
    while end < bytes.len() {
        let c = bytes[end];
        if c == b':' {
            colons += 1;
            if end > begin && bytes[end - 1] == b':' {
                double_colons += 1;
            }
            group_len = 0;
        } else if c.is_ascii_hexdigit() {
            group_len += 1;
            digits += usize::from(c.is_ascii_digit());
            if group_len > 4 {
                return Err(end + 1);
            }
        } else {
            break;
        }
        end += 1;
    }

    // A single trailing colon belongs to the text after the id, as in `at 0a:1b:2c:3d:`.
    let trailing_colon = end > begin + 1 && bytes[end - 1] == b':' && bytes[end - 2] != b':';
    if trailing_colon {
        end -= 1;
        colons -= 1;
    }
    let leading_colon = end > begin && bytes[begin] == b':' && double_colons == 0;
    let shaped = match double_colons {
        0 => colons >= 3 && !leading_colon,
        1 => colons >= 2,
        _ => false,
    };
    if !shaped || digits == 0 {
        return Err(end);
    }

    if bracketed {
        if bytes.get(end) != Some(&b']') {
            return Err(end);
        }
        end += 1;
        if bytes.get(end) == Some(&b':') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end += 1;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
        }
    }
    match bytes.get(end) {
        Some(&c) if is_segment_byte(c) => Err(end),
        _ => Ok(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(token: &str) -> String {
        let mut out = String::new();
        mask_token(token, &mut out);
        out
    }

    #[test]
    fn mask_keeps_words() {
        assert_eq!(masked("PacketResponder"), "PacketResponder");
        assert_eq!(
            masked("dfs.DataNode$PacketResponder:"),
            "dfs.DataNode$PacketResponder:"
        );
        assert_eq!(masked("Größe"), "Größe");
    }

    #[test]
    fn mask_replaces_numbers() {
        assert_eq!(masked("42"), "<*>");
        assert_eq!(masked("-127633188"), "<*>");
        assert_eq!(masked("(HWID=1973)"), "(HWID=<*>)");
        assert_eq!(masked("0.2477829"), "<*>");
        assert_eq!(masked("size=-1,"), "size=<*>,");
    }

    #[test]
    fn mask_replaces_block_ids() {
        assert_eq!(masked("blk_-6952295868487656571"), "blk_<*>");
        assert_eq!(masked("blk_38865049064139660"), "blk_<*>");
        assert_eq!(
            masked("appattempt_1445144423722_0020_000001"),
            "appattempt_<*>"
        );
    }

    #[test]
    fn mask_replaces_hex_ids() {
        assert_eq!(masked("0x7fed806eb5d"), "<*>");
        assert_eq!(masked("AppWindowToken{9f4ef63"), "AppWindowToken{<*>");
        assert_eq!(masked("113d3a99c3da401fbd62cc2caa5b96d2"), "<*>");
        assert_eq!(
            masked("IOThunderboltSwitch<0>(0x0)::listenerCallback"),
            "IOThunderboltSwitch<<*>>(<*>)::listenerCallback"
        );
    }

    #[test]
    fn mask_replaces_uuids() {
        assert_eq!(
            masked("req-38101a0b-2096-447d-96ea-a692162415ae"),
            "req-<*>"
        );
        assert_eq!(masked("[deadbeef-abcd-ef01-abcd-abcdefabcdef]"), "[<*>]");
    }

    #[test]
    fn mask_replaces_ip_addresses() {
        assert_eq!(masked("10.251.73.220:50010"), "<*>");
        assert_eq!(masked("/10.251.73.220:50010"), "/<*>");
        assert_eq!(masked("rhost=218.188.2.4"), "rhost=<*>");
        assert_eq!(masked("fe80::1ff:fe23:4567:890a"), "<*>");
        assert_eq!(masked("[2001:db8::1]:8080"), "<*>");
        assert_eq!(masked("::1"), "<*>");
        assert_eq!(masked("2001:0db8:0000:0000:0000:ff00:0042:8329,"), "<*>,");
        assert_eq!(
            masked("v6(en0:2607:f140:6000:8:c6b3:1ff:fecd:467f)"),
            "v<*>(en<*>)"
        );
        assert_eq!(masked("(mac=5c:50:15:4c:18:13)"), "(mac=<*>)");
        assert_eq!(masked("FF:F2:9F:16:E5:8D:00:0D:60:C9:24:DC:"), "<*>:");
        assert_eq!(masked("a:b:c:d"), "a:b:c:d");
    }

    #[test]
    fn mask_replaces_paths() {
        assert_eq!(masked("/etc/httpd/conf/workers2.properties"), "<*>");
        assert_eq!(masked("chdir(/p/gb1/stella/RAPTOR/2183)"), "chdir(<*>)");
        assert_eq!(masked("/bgl/apps/allreduce.rts:"), "<*>:");
        assert_eq!(masked(r"C:\Windows\winsxs\cbscore.dll"), "<*>");
        assert_eq!(masked("http://example.org/a/b"), "http:<*>");
        assert_eq!(masked("/"), "/");
    }

    #[test]
    fn mask_replaces_timestamps() {
        assert_eq!(masked("2005-06-03-15.42.50.675872"), "<*>");
        assert_eq!(masked("00000001@2016/9/27:20:30:31.455"), "<*>@<*>");
        assert_eq!(masked("18:01:47,978"), "<*>");
        assert_eq!(masked("2024-05-01T12:00:00.123Z"), "<*>Z");
    }

    #[test]
    fn mask_keeps_letters_around_attached_numbers() {
        assert_eq!(masked("t761"), "t<*>");
        assert_eq!(masked("ee0"), "ee<*>");
        assert_eq!(masked("10ms"), "<*>ms");
        assert_eq!(masked("R02-M1-N0-C:J12-U11"), "R<*>-M<*>-N<*>-C:J<*>-U<*>");
        assert_eq!(masked("HTTP/1.1"), "HTTP/<*>");
    }

    #[test]
    fn mask_replaces_ids_of_interleaved_letters_and_digits() {
        assert_eq!(masked("a3kf9s2lq"), "<*>");
        assert_eq!(masked("18T18"), "<*>");
    }

    #[test]
    fn mask_reports_whether_it_masked() {
        let mut out = String::new();
        assert!(!mask_token("word", &mut out));
        assert!(mask_token("7", &mut out));
        assert!(!mask_token("a/b", &mut out));
    }
}
