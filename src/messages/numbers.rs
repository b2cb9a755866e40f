//! Numbers and texts as they come from outside: JSON integers as JSON Schema reads them (`5.0` is the
//! integer 5, `5.5` is refused), amounts that must be finite and not negative, and free texts from agents
//! cut to a bound rather than refused (an agent's error message is worth keeping, but not a megabyte of it).
//!
//! The integer deserializers read any serde_json number; use them on JSON-only types (never on what
//! storage encodes with postcard, which cannot ask for "any number").

use serde::{Deserialize, Deserializer};

/// The marker that ends a text cut by `bounded`.
pub const TRUNCATED: &str = "… [truncated]";

/// An integer field: a JSON integer, or a float with no fractional part, within the target's range.
pub fn integer<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    let n = serde_json::Number::deserialize(de)?;
    whole(&n)
        .and_then(|i| T::try_from(i).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("must be an integer in range, got {n}")))
}

/// As `integer`, for an optional field (`null` is none); pair with `#[serde(default)]`.
pub fn opt_integer<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    match Option::<serde_json::Number>::deserialize(de)? {
        None => Ok(None),
        Some(n) => whole(&n)
            .and_then(|i| T::try_from(i).ok())
            .map(Some)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("must be an integer in range, got {n}"))
            }),
    }
}

/// The integer a JSON number stands for, if it stands for one.
pub fn whole(n: &serde_json::Number) -> Option<i128> {
    if let Some(u) = n.as_u64() {
        return Some(u.into());
    }
    if let Some(i) = n.as_i64() {
        return Some(i.into());
    }
    // 2^64 and beyond are out of every target's range; bounding here keeps the cast exact.
    let f = n.as_f64()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 1.9e19).then_some(f as i128)
}

/// An amount (a cost in USD): a finite number, not negative.
pub fn amount<'de, D: Deserializer<'de>>(de: D) -> Result<f64, D::Error> {
    let f = f64::deserialize(de)?;
    if f.is_finite() && f >= 0.0 {
        Ok(f)
    } else {
        Err(serde::de::Error::custom(format!(
            "must be a finite number of at least 0, got {f}"
        )))
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), ending with `TRUNCATED` when cut.
pub fn bounded(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(TRUNCATED.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = text;
    cut.truncate(end);
    cut.push_str(TRUNCATED);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Counts {
        #[serde(deserialize_with = "integer")]
        n: u32,
        #[serde(default, deserialize_with = "opt_integer")]
        m: Option<u64>,
        #[serde(deserialize_with = "amount")]
        usd: f64,
    }

    fn parse(text: &str) -> Result<Counts, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_refused_naming_the_field() {
        let c = parse(r#"{"n": 5.0, "m": 7, "usd": 0}"#).unwrap();
        assert_eq!((c.n, c.m), (5, Some(7)));
        let c = parse(r#"{"n": 5, "m": null, "usd": 1.5}"#).unwrap();
        assert_eq!((c.n, c.m, c.usd), (5, None, 1.5));
        let e = parse(r#"{"n": 5.5, "usd": 0}"#).unwrap_err();
        assert!(e.starts_with("n: must be an integer"), "{e}");
        let e = parse(r#"{"n": 1, "m": 2.25, "usd": 0}"#).unwrap_err();
        assert!(e.starts_with("m: must be an integer"), "{e}");
        let e = parse(r#"{"n": -1, "usd": 0}"#).unwrap_err();
        assert!(e.starts_with("n: must be an integer in range"), "{e}");
        let e = parse(r#"{"n": 1e30, "usd": 0}"#).unwrap_err();
        assert!(e.starts_with("n: "), "{e}");
        let e = parse(r#"{"n": "5", "usd": 0}"#).unwrap_err();
        assert!(e.starts_with("n: "), "{e}");
        let c = parse(r#"{"n": 1, "m": 18446744073709551615, "usd": 0}"#).unwrap();
        assert_eq!(c.m, Some(u64::MAX));
    }

    #[test]
    fn amounts_are_finite_and_not_negative() {
        let e = parse(r#"{"n": 1, "usd": -0.01}"#).unwrap_err();
        assert!(e.starts_with("usd: must be a finite number"), "{e}");
        // JSON has no infinity; serde_json refuses an overflowing literal itself.
        assert!(parse(r#"{"n": 1, "usd": 1e999}"#).is_err());
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary_with_a_marker() {
        assert_eq!(bounded("short".into(), 100), "short");
        let cut = bounded("é".repeat(1000), 101);
        assert!(cut.len() <= 101, "{}", cut.len());
        assert!(cut.ends_with(TRUNCATED));
        assert!(cut.starts_with("éé"));
    }
}
