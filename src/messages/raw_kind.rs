//! A raw message's `type` ("text", "tool_call", ...): one of a dozen names on nearly every message, held
//! without an allocation when it is one the store or its adapters know, owned otherwise.
//!
//! Every ingested message has one and the conversion only matches on it before dropping it, so a `String`
//! cost an allocation, a copy and a free per message for a name the binary already holds.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::json_node::known_name;

/// The kinds the conversion, the progress signals and the adapters name.
const KNOWN: [&str; 12] = [
    "text",
    "thinking",
    "tool_call",
    "tool_result",
    "init",
    "error",
    "retry",
    "notice",
    "cost",
    "status",
    "compaction",
    "unknown",
];

/// A raw message's kind (see the module doc). Reads, writes and compares as the string it is.
#[derive(Clone, PartialEq, Eq)]
pub struct RawKind(Cow<'static, str>);

impl RawKind {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn known(name: &str) -> Option<RawKind> {
        known_name(&KNOWN, name).map(|known| RawKind(Cow::Borrowed(known)))
    }
}

impl From<&str> for RawKind {
    fn from(name: &str) -> RawKind {
        RawKind::known(name).unwrap_or_else(|| RawKind(Cow::Owned(name.to_owned())))
    }
}

impl From<String> for RawKind {
    fn from(name: String) -> RawKind {
        RawKind::known(&name).unwrap_or(RawKind(Cow::Owned(name)))
    }
}

impl Deref for RawKind {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for RawKind {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for RawKind {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for RawKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for RawKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RawKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RawKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawKind, D::Error> {
        deserializer.deserialize_str(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = RawKind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E>(self, v: &str) -> Result<RawKind, E> {
        Ok(RawKind::from(v))
    }

    fn visit_string<E>(self, v: String) -> Result<RawKind, E> {
        Ok(RawKind::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_kind_is_not_allocated_and_any_other_is_kept_as_sent() {
        let known: RawKind = serde_json::from_str(r#""tool_call""#).unwrap();
        assert!(matches!(known.0, Cow::Borrowed("tool_call")));
        let escaped: RawKind = serde_json::from_str(r#""te\u0078t""#).unwrap();
        assert!(matches!(escaped.0, Cow::Borrowed("text")));
        let other: RawKind = serde_json::from_str(r#""custom""#).unwrap();
        assert!(matches!(&other.0, Cow::Owned(name) if name == "custom"));
        assert_eq!(other, "custom");
        assert_eq!(serde_json::to_string(&known).unwrap(), r#""tool_call""#);
        assert_eq!(format!("{known:?}"), r#""tool_call""#);
        assert!(serde_json::from_str::<RawKind>("1").is_err());
    }
}
