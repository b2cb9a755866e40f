//! Reading a provider's stdout: one line, one JSON value. A line that is not JSON (a CLI's warning, a
//! truncated last line) is not an error of the run; the caller skips it and counts it.

use serde_json::Value;

/// Why a line gave no JSON value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotJson {
    /// Only whitespace: nothing was said, callers usually do not count it.
    #[error("blank line")]
    Blank,
    /// Something that is not one JSON value (or not UTF-8); the reason is serde_json's.
    #[error("not JSON: {0}")]
    Invalid(String),
}

/// Parses one line of a provider's stdout (with or without its line ending) into one JSON value.
///
/// Surrounding whitespace, a `\r` before the newline and a UTF-8 byte order mark are ignored.
pub fn parse_line(line: impl AsRef<[u8]>) -> Result<Value, NotJson> {
    let bytes = line.as_ref();
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(NotJson::Blank);
    }
    serde_json::from_slice(bytes).map_err(|e| NotJson::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_parses_with_or_without_its_line_ending() {
        assert_eq!(parse_line("{\"a\":1}\r\n"), Ok(serde_json::json!({"a": 1})));
        assert_eq!(
            parse_line(b"  [1]  ".as_slice()),
            Ok(serde_json::json!([1]))
        );
        assert_eq!(parse_line("\u{feff}{}"), Ok(serde_json::json!({})));
    }

    #[test]
    fn blank_lines_are_blank_not_invalid() {
        assert_eq!(parse_line(""), Err(NotJson::Blank));
        assert_eq!(parse_line(" \t\r\n"), Err(NotJson::Blank));
    }

    #[test]
    fn non_json_and_truncated_lines_are_invalid() {
        for line in [
            "Warning: something",
            "{\"type\":\"assistant\",\"mess",
            "{} {}",
        ] {
            assert!(
                matches!(parse_line(line), Err(NotJson::Invalid(_))),
                "{line}"
            );
        }
        assert!(matches!(
            parse_line(b"\xff\xfe".as_slice()),
            Err(NotJson::Invalid(_))
        ));
    }
}
