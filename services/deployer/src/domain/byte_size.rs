//! Sizes in bytes written with a unit, such as `256MiB` or `2GB`.

/// Units a size may carry: binary (powers of 1024) and decimal (powers of 1000), the way
/// Kubernetes and systemd spell them.
const UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

/// Parses a whole number followed by a unit (`B`, `KiB`, `MiB`, `GiB`, `TiB`, `kB`, `MB`, `GB`
/// or `TB`), with optional spaces between them.
///
/// # Errors
///
/// Returns a message that quotes the value: no number, no unit, an unknown unit, a fraction,
/// or a size that does not fit in 64 bits.
pub fn parse(value: &str) -> Result<u64, String> {
    let text = value.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let unit = unit.trim_start();
    let units = || {
        UNITS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if number.is_empty() {
        return Err(format!(
            "{value:?} does not start with a whole number of bytes, like \"256MiB\""
        ));
    }
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "{value:?} is not a whole number: write a smaller unit instead, like \"1536MiB\""
        ));
    }
    if unit.is_empty() {
        return Err(format!(
            "{value:?} has no unit: add one of {}, like \"256MiB\"",
            units()
        ));
    }
    let Some((_, factor)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!(
            "{value:?} has the unknown unit {unit:?}: expected one of {}",
            units()
        ));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(*factor))
        .ok_or_else(|| format!("{value:?} is too large: at most {} bytes", u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_units_parse() {
        assert_eq!(parse("256MiB"), Ok(256 << 20));
        assert_eq!(parse("1 GiB"), Ok(1 << 30));
        assert_eq!(parse("2GB"), Ok(2_000_000_000));
        assert_eq!(parse("512kB"), Ok(512_000));
        assert_eq!(parse("4096B"), Ok(4096));
        assert_eq!(parse(" 3TiB "), Ok(3 << 40));
    }

    #[test]
    fn number_without_unit_is_rejected() {
        let message = parse("256").expect_err("no unit");
        assert!(message.contains("\"256\" has no unit"), "{message}");
    }

    #[test]
    fn unknown_unit_is_rejected() {
        let message = parse("256mb").expect_err("lowercase mb is no unit");
        assert!(message.contains("unknown unit \"mb\""), "{message}");
    }

    #[test]
    fn fraction_is_rejected() {
        let message = parse("1.5GiB").expect_err("a fraction");
        assert!(message.contains("not a whole number"), "{message}");
    }

    #[test]
    fn missing_number_is_rejected() {
        for value in ["", "MiB", "-1MiB"] {
            let message = parse(value).expect_err("no number");
            assert!(message.contains("whole number of bytes"), "{message}");
        }
    }

    #[test]
    fn overflow_is_rejected() {
        let message = parse("99999999TiB").expect_err("more than 64 bits");
        assert!(message.contains("too large"), "{message}");
        let digits = parse("99999999999999999999B").expect_err("more than 64 bits");
        assert!(digits.contains("too large"), "{digits}");
    }
}
