//! The few JavaScript semantics that `convertRawMessage` leans on, for JSON values: `String(x)`,
//! `JSON.stringify(x, null, 2)`, truthiness (`!x`) and UTF-16 string lengths.
//!
//! They live apart from the conversion rules because each differs from Rust's nearest equivalent in ways
//! a user can see: serde_json prints `1.0` where JavaScript prints `1`, `str::len` counts bytes where
//! JavaScript counts UTF-16 code units, and JavaScript orders integer-like object keys first.

use std::cell::RefCell;

use serde_json::Number;

use crate::messages::json_node::{Key, Node};

use crate::messages::json_text::write_str;

/// JavaScript's `String(v)` for a JSON value: strings as they are, numbers as JavaScript formats them,
/// arrays comma-joined (a `null` element joins as an empty string), objects as `"[object Object]"`.
pub(crate) fn string_of(v: &Node) -> String {
    match v {
        Node::Null => "null".to_owned(),
        Node::Bool(b) => b.to_string(),
        Node::Number(n) => number_to_string(n),
        Node::String(s) => s.clone(),
        Node::Array(items) => items
            .iter()
            .map(|item| match item {
                Node::Null => String::new(),
                other => string_of(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Node::Object(_) => "[object Object]".to_owned(),
    }
}

/// JavaScript's `!v` negated: everything is truthy except an absent value, `null`, `false`, `0` and `""`.
/// Empty objects and arrays are truthy.
pub(crate) fn truthy(v: Option<&Node>) -> bool {
    match v {
        None | Some(Node::Null) => false,
        Some(Node::Bool(b)) => *b,
        Some(Node::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Node::String(s)) => !s.is_empty(),
        Some(Node::Array(_) | Node::Object(_)) => true,
    }
}

/// JavaScript's `s.length`: UTF-16 code units, not bytes or chars.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// JavaScript's `s.slice(0, units)`, except that a character is never split: where JavaScript would cut a
/// surrogate pair in half, this stops before the pair.
pub(crate) fn utf16_prefix(s: &str, units: usize) -> &str {
    let mut used = 0;
    for (at, c) in s.char_indices() {
        used += c.len_utf16();
        if used > units {
            return &s[..at];
        }
    }
    s
}

/// `JSON.stringify(v, null, 2)`: two-space indentation, `": "` after keys, `{}` and `[]` for empty
/// containers, JavaScript number formatting and JavaScript property order.
///
/// Every tool call's input passes here. It is written as bytes with the live frame's string writer
/// (`json_text::write_str`: JSON.stringify's QuoteJSONString escapes exactly what serde_json escapes, and
/// it copies the unescaped runs eight bytes at a time) and checked as UTF-8 once at the end.
///
/// The text is written into this thread's scratch buffer and copied out at its exact length: the answer
/// lives in a message for as long as the session's window keeps it, and a buffer grown by doubling would
/// keep up to half its bytes spare there (a load-test tool input of ~60 bytes held a 128-byte buffer).
pub(crate) fn stringify_pretty(v: &Node) -> String {
    SCRATCH.with_borrow_mut(|out| {
        out.clear();
        write_value(out, v, 0);
        let text = std::str::from_utf8(out)
            .expect("only str slices and ASCII were written")
            .to_owned();
        // One very large input must not pin its buffer to the thread.
        if out.capacity() > SCRATCH_KEPT {
            *out = Vec::new();
        }
        text
    })
}

/// The most a thread's scratch buffer keeps between inputs.
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    /// Where `stringify_pretty` writes (see there).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn write_value(out: &mut Vec<u8>, v: &Node, depth: usize) {
    match v {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Node::Number(n) => match exact_integer(n) {
            Some(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
            None => out.extend_from_slice(number_to_string(n).as_bytes()),
        },
        Node::String(s) => write_str(out, s),
        Node::Array(items) if items.is_empty() => out.extend_from_slice(b"[]"),
        Node::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                newline_indent(out, depth + 1);
                write_value(out, item, depth + 1);
            }
            newline_indent(out, depth);
            out.push(b']');
        }
        Node::Object(map) if map.is_empty() => out.extend_from_slice(b"{}"),
        Node::Object(map) => {
            out.push(b'{');
            // Objects with array-index keys are rare: the others are written in their own order, without
            // sorting into a list first.
            if map.iter().any(|(key, _)| array_index(key).is_some()) {
                write_entries(out, property_order(map), depth);
            } else {
                write_entries(out, map, depth);
            }
            newline_indent(out, depth);
            out.push(b'}');
        }
    }
}

fn write_entries<'a>(
    out: &mut Vec<u8>,
    entries: impl IntoIterator<Item = &'a (Key, Node)>,
    depth: usize,
) {
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        newline_indent(out, depth + 1);
        write_str(out, key);
        out.extend_from_slice(b": ");
        write_value(out, item, depth + 1);
    }
}

fn newline_indent(out: &mut Vec<u8>, depth: usize) {
    out.push(b'\n');
    for _ in 0..depth {
        out.extend_from_slice(b"  ");
    }
}

/// JavaScript enumerates an object's array-index keys ("0", "7", "42": canonical integers below 2³²−1)
/// first, in ascending numeric order, then the other keys in insertion order. serde_json keeps insertion
/// order (the `preserve_order` feature), which is what `JSON.parse` produced in the original.
fn property_order(fields: &[(Key, Node)]) -> Vec<&(Key, Node)> {
    let mut indexed: Vec<(u32, &(Key, Node))> = Vec::new();
    let mut named: Vec<&(Key, Node)> = Vec::new();
    for field in fields {
        match array_index(&field.0) {
            Some(i) => indexed.push((i, field)),
            None => named.push(field),
        }
    }
    indexed.sort_by_key(|(i, _)| *i);
    indexed
        .into_iter()
        .map(|(_, field)| field)
        .chain(named)
        .collect()
}

fn array_index(key: &str) -> Option<u32> {
    let canonical =
        key == "0" || (!key.starts_with('0') && key.bytes().all(|b| b.is_ascii_digit()));
    if !canonical {
        return None;
    }
    key.parse::<u32>().ok().filter(|&i| i != u32::MAX)
}

/// JavaScript's Number::toString for a JSON number. JavaScript holds every number as an f64, so a large
/// integer loses precision exactly as `JSON.parse` would lose it.
pub(crate) fn number_to_string(n: &Number) -> String {
    match (exact_integer(n), n.as_f64()) {
        (Some(i), _) => i.to_string(),
        (_, Some(f)) => f64_to_string(f),
        // Only with serde_json's arbitrary_precision, which this crate does not enable.
        _ => n.to_string(),
    }
}

/// An integer JavaScript holds exactly (below 2^53), which it prints without a fraction or exponent.
fn exact_integer(n: &Number) -> Option<i64> {
    n.as_i64().filter(|i| i.unsigned_abs() < (1 << 53))
}

/// ECMAScript Number::toString(10) for a finite f64 (JSON has no NaN or Infinity): the shortest digits
/// that round-trip, in plain notation for decimal exponents -7 < n <= 21 and exponential beyond.
fn f64_to_string(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned(); // also -0, which JavaScript prints as "0"
    }
    let sign = if f < 0.0 { "-" } else { "" };
    let (digits, exp) = shortest_digits(f.abs());
    let k = digits.len() as i64;
    let n = exp + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        if k == 1 {
            format!("{digits}e{e_sign}{}", e.abs())
        } else {
            format!("{}.{}e{e_sign}{}", &digits[..1], &digits[1..], e.abs())
        }
    };
    format!("{sign}{body}")
}

/// The shortest decimal digits that round-trip to `f` (> 0) and the decimal exponent of the first digit.
///
/// Rust's `{:e}` finds the same shortest digits as JavaScript, but where two candidates of that length are
/// equally close to `f` it rounds the tie up, while ECMAScript picks the even one (V8 prints
/// 1140539551352737.2 where Rust prints ...737.3). A tie means `f` is exactly the midpoint: its exact
/// decimal expansion is one digit longer and ends in 5.
fn shortest_digits(f: f64) -> (String, i64) {
    let (digits, exp) = split_sci(&format!("{f:e}"));
    let last = digits.as_bytes()[digits.len() - 1] - b'0';
    if last % 2 == 0 {
        return (digits, exp);
    }
    // Every f64 has an exact decimal expansion of at most 767 significant digits.
    let (exact, exact_exp) = split_sci(&format!("{f:.800e}"));
    let exact = exact.trim_end_matches('0');
    if exact_exp != exp || exact.len() != digits.len() + 1 || !exact.ends_with('5') {
        return (digits, exp);
    }
    let below = &exact[..digits.len()];
    let even = if below == digits {
        // Rust kept the lower neighbour; the upper one is even unless it carries (then it is shorter,
        // and the shortest search would have found it).
        let (head, last) = below.split_at(below.len() - 1);
        match last.as_bytes() {
            [d @ b'0'..=b'8'] => format!("{head}{}", char::from(d + 1)),
            _ => return (digits, exp),
        }
    } else {
        below.to_owned()
    };
    let round_trips = format!("{}.{}e{exp}", &even[..1], &even[1..])
        .parse::<f64>()
        .is_ok_and(|back| back == f);
    if round_trips {
        (even, exp)
    } else {
        (digits, exp)
    }
}

/// "d.ddde<exp>" → ("dddd", exp).
fn split_sci(sci: &str) -> (String, i64) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits = mantissa.chars().filter(|c| *c != '.').collect();
    (digits, exp.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn node(v: Value) -> Node {
        Node::from(v)
    }

    fn num(text: &str) -> String {
        let v: Node = serde_json::from_str(text).unwrap();
        string_of(&v)
    }

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        assert_eq!(num("1.0"), "1");
        assert_eq!(num("-0"), "0");
        assert_eq!(num("-0.0"), "0");
        assert_eq!(num("0.1"), "0.1");
        assert_eq!(num("1.5e3"), "1500");
        assert_eq!(num("123456789012345680000"), "123456789012345680000");
        assert_eq!(num("1e21"), "1e+21");
        assert_eq!(num("1.25e21"), "1.25e+21");
        assert_eq!(num("0.000001"), "0.000001");
        assert_eq!(num("0.0000001"), "1e-7");
        assert_eq!(num("-2.5e-8"), "-2.5e-8");
        assert_eq!(num("0.20190135000000002"), "0.20190135");
        assert_eq!(num("0.30000000000000004"), "0.30000000000000004");
        assert_eq!(num("5e-324"), "5e-324");
        assert_eq!(num("1.7976931348623157e308"), "1.7976931348623157e+308");
        assert_eq!(num("42"), "42");
        assert_eq!(num("-42"), "-42");
    }

    #[test]
    fn shortest_digit_ties_round_to_even_like_v8() {
        // Exactly halfway between two 17-digit candidates; V8 prints the even one, Rust's `{}` the odd.
        assert_eq!(num("1140539551352737.25"), "1140539551352737.2");
        assert_eq!(num("234334754098448.625"), "234334754098448.62");
        assert_eq!(num("-633733238011400.25"), "-633733238011400.2");
    }

    #[test]
    fn integers_beyond_2_pow_53_lose_precision_like_json_parse() {
        assert_eq!(num("9007199254740993"), "9007199254740992");
        assert_eq!(num("18446744073709551615"), "18446744073709552000");
    }

    #[test]
    fn string_of_follows_javascript_string() {
        assert_eq!(string_of(&node(json!("x"))), "x");
        assert_eq!(string_of(&node(json!(true))), "true");
        assert_eq!(string_of(&node(json!({"a": 1}))), "[object Object]");
        assert_eq!(string_of(&node(json!([1, null, "b", [2, 3]]))), "1,,b,2,3");
        assert_eq!(string_of(&node(json!([]))), "");
    }

    #[test]
    fn truthiness_follows_javascript() {
        for falsy in [json!(null), json!(false), json!(0), json!(0.0), json!("")] {
            assert!(
                !truthy(Some(&node(falsy.clone()))),
                "{falsy} should be falsy"
            );
        }
        assert!(!truthy(None));
        for truthy_value in [json!({}), json!([]), json!("0"), json!(-1), json!(true)] {
            assert!(
                truthy(Some(&node(truthy_value.clone()))),
                "{truthy_value} should be truthy"
            );
        }
    }

    #[test]
    fn stringify_matches_json_stringify_with_two_spaces() {
        let v = node(
            json!({"b": [1, {"c": null}], "a": {}, "e": [], "f": 1.0, "s": "q\"\\\n\u{1}\u{7f}é"}),
        );
        assert_eq!(
            stringify_pretty(&v),
            "{\n  \"b\": [\n    1,\n    {\n      \"c\": null\n    }\n  ],\n  \"a\": {},\n  \"e\": [],\n  \
             \"f\": 1,\n  \"s\": \"q\\\"\\\\\\n\\u0001\u{7f}é\"\n}"
        );
        assert_eq!(stringify_pretty(&node(json!("x"))), "\"x\"");
        assert_eq!(stringify_pretty(&node(json!(null))), "null");
    }

    #[test]
    fn a_pretty_text_holds_no_spare_bytes() {
        let v = node(json!({"command": "cargo test --all-targets -- --nocapture"}));
        let text = stringify_pretty(&v);
        assert_eq!(
            text,
            "{\n  \"command\": \"cargo test --all-targets -- --nocapture\"\n}"
        );
        assert_eq!(text.capacity(), text.len());
    }

    #[test]
    fn each_text_is_written_afresh_whatever_came_before() {
        let large = "x".repeat(SCRATCH_KEPT * 2);
        assert_eq!(
            stringify_pretty(&node(json!(large))),
            format!("\"{large}\"")
        );
        assert_eq!(stringify_pretty(&node(json!([1]))), "[\n  1\n]");
        assert_eq!(stringify_pretty(&node(json!({}))), "{}");
    }

    #[test]
    fn stringify_puts_integer_keys_first_like_javascript() {
        let v: Node =
            serde_json::from_str(r#"{"z": 1, "10": 2, "2": 3, "01": 4, "a": 5}"#).unwrap();
        assert_eq!(
            stringify_pretty(&v),
            "{\n  \"2\": 3,\n  \"10\": 2,\n  \"z\": 1,\n  \"01\": 4,\n  \"a\": 5\n}"
        );
    }

    #[test]
    fn utf16_lengths_count_surrogate_pairs_twice() {
        assert_eq!(utf16_len("aé😀"), 4);
        assert_eq!(utf16_prefix("ab😀c", 3), "ab");
        assert_eq!(utf16_prefix("ab😀c", 4), "ab😀");
        assert_eq!(utf16_prefix("abc", 80), "abc");
    }
}
