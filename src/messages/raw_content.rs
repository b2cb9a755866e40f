//! A raw message's `content`: any JSON value, as a sidecar or an adapter sent it, held in the shape the
//! conversion reads.
//!
//! Every ingested message has one, and the conversion reads at most three fields of it before dropping
//! it. As a `serde_json::Value` an object was an insertion-ordered hash map (a hash table, an entry list
//! and a `String` per key, each key hashed with SipHash when parsed); here an object is a short list of
//! fields in arrival order, found by a linear look, and the field names the store reads (`text`,
//! `output`, `name`, `input`, ...) are kept without an allocation. So a parse, a copy (the in-process load
//! generator makes one per message) and a drop cost one allocation for the list where they cost three
//! plus one per key. Field values, and contents that are not objects, stay `serde_json::Value`s.
//!
//! A content many messages carry alike (the in-process load generator's templates) can be shared instead
//! of copied per message (`RawContent::shared`): it is read in place, and a field taken out of it is
//! copied, which is what copying the whole content would have cost for that field alone.
//!
//! It reads, writes and compares as the JSON value it holds: an object's field order is kept (the
//! original's `JSON.stringify` of a tool input shows it), a repeated name keeps its first place and its
//! last value (as `JSON.parse` does), and equality ignores field order, as `serde_json::Map`'s does.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

/// A field name: one the store reads, without an allocation, or any other, owned.
type Key = Cow<'static, str>;

/// Up to this many fields a parse finds a repeated name by a linear look; past it, through a hash index
/// built for the rest of that object, so an object of many keys (a hostile body) parses in linear time,
/// not quadratic.
const LINEAR_FIELDS: usize = 32;

/// Field names kept without an allocation: those the conversion and the progress signals read.
const KNOWN_KEYS: [&str; 13] = [
    "text",
    "output",
    "name",
    "input",
    "message",
    "model",
    "reason",
    "sessionId",
    "conversationId",
    "command",
    "file_path",
    "path",
    "isError",
];

fn key(name: &str) -> Key {
    match KNOWN_KEYS.iter().find(|known| **known == name) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(name.to_owned()),
    }
}

/// A raw message's content (see the module doc). `Default` is JSON `null`, an absent content.
#[derive(Debug, Clone, Default)]
pub struct RawContent(Held);

#[derive(Debug, Clone)]
enum Held {
    Own(Repr),
    /// Held by many messages alike.
    Shared(Arc<Repr>),
}

impl Default for Held {
    fn default() -> Held {
        Held::Own(Repr::default())
    }
}

#[derive(Debug, Clone)]
enum Repr {
    /// A JSON object's fields, in arrival order, names unique.
    Object(Vec<(Key, Value)>),
    /// Anything but an object.
    Other(Value),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Other(Value::Null)
    }
}

static NULL: Value = Value::Null;

impl RawContent {
    fn own(repr: Repr) -> RawContent {
        RawContent(Held::Own(repr))
    }

    /// This content, to be handed to many messages: each clone of the answer shares it rather than copying
    /// it.
    pub fn shared(self) -> RawContent {
        match self.0 {
            Held::Own(repr) => RawContent(Held::Shared(Arc::new(repr))),
            shared @ Held::Shared(_) => RawContent(shared),
        }
    }

    /// What the content holds, shared or not.
    fn repr(&self) -> &Repr {
        match &self.0 {
            Held::Own(repr) => repr,
            Held::Shared(repr) => repr,
        }
    }

    /// `content?.[name]`: only an object has fields.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self.repr() {
            Repr::Object(fields) => fields.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            Repr::Other(_) => None,
        }
    }

    /// Takes field `name` out of an object, leaving `null` in its place (the conversion moves the strings
    /// it shows out of the content rather than copying them); out of a shared content it is copied.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        match &mut self.0 {
            Held::Own(Repr::Object(fields)) => fields
                .iter_mut()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.take()),
            Held::Own(Repr::Other(_)) => None,
            Held::Shared(_) => self.get(name).cloned(),
        }
    }

    /// The content when it is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match self.repr() {
            Repr::Other(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Inserts or replaces a field, keeping a replaced field's place.
    fn insert(fields: &mut Vec<(Key, Value)>, name: Key, value: Value) {
        match fields.iter_mut().find(|(k, _)| *k == name) {
            Some((_, slot)) => *slot = value,
            None => fields.push((name, value)),
        }
    }
}

impl From<Value> for RawContent {
    fn from(value: Value) -> RawContent {
        match value {
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                for (name, value) in map {
                    // A Map's names are unique already.
                    fields.push((key(&name), value));
                }
                RawContent::own(Repr::Object(fields))
            }
            other => RawContent::own(Repr::Other(other)),
        }
    }
}

impl From<RawContent> for Value {
    fn from(content: RawContent) -> Value {
        let repr = match content.0 {
            Held::Own(repr) => repr,
            Held::Shared(repr) => Arc::unwrap_or_clone(repr),
        };
        match repr {
            Repr::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v))
                    .collect(),
            ),
            Repr::Other(value) => value,
        }
    }
}

/// `content["name"]`, as on a `serde_json::Value`: `null` for a missing field.
impl std::ops::Index<&str> for RawContent {
    type Output = Value;

    fn index(&self, name: &str) -> &Value {
        self.get(name).unwrap_or(&NULL)
    }
}

impl PartialEq for RawContent {
    fn eq(&self, other: &RawContent) -> bool {
        match (self.repr(), other.repr()) {
            (Repr::Object(a), Repr::Object(b)) if a.len() <= LINEAR_FIELDS => {
                a.len() == b.len() && a.iter().all(|(k, v)| other.get(k) == Some(v))
            }
            // Many fields: looked up through a map, so the comparison stays linear.
            (Repr::Object(a), Repr::Object(b)) => {
                let b: HashMap<&str, &Value> = b.iter().map(|(k, v)| (&**k, v)).collect();
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(&**k) == Some(&v))
            }
            (Repr::Other(a), Repr::Other(b)) => a == b,
            _ => false,
        }
    }
}

impl PartialEq<Value> for RawContent {
    fn eq(&self, other: &Value) -> bool {
        match (self.repr(), other) {
            (Repr::Object(fields), Value::Object(map)) => {
                fields.len() == map.len() && fields.iter().all(|(k, v)| map.get(&**k) == Some(v))
            }
            (Repr::Other(a), b) => a == b,
            _ => false,
        }
    }
}

/// The content as compact JSON text, as a `serde_json::Value` prints.
impl fmt::Display for RawContent {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for RawContent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.repr() {
            Repr::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (name, value) in fields {
                    map.serialize_entry(&**name, value)?;
                }
                map.end()
            }
            Repr::Other(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RawContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawContent, D::Error> {
        deserializer.deserialize_any(ContentVisitor)
    }
}

struct ContentVisitor;

impl ContentVisitor {
    fn other<E>(value: Value) -> Result<RawContent, E> {
        Ok(RawContent::own(Repr::Other(value)))
    }
}

/// What serde_json's own `Value` visitor does, except that an object becomes a field list.
impl<'de> Visitor<'de> for ContentVisitor {
    type Value = RawContent;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<RawContent, E> {
        Self::other(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<RawContent, E> {
        Self::other(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<RawContent, E> {
        Self::other(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<RawContent, E> {
        Self::other(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<RawContent, E> {
        Self::other(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<RawContent, E> {
        Self::other(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<RawContent, E> {
        Self::other(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<RawContent, E> {
        Self::other(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawContent, D::Error> {
        RawContent::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawContent, A::Error> {
        let value = Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Self::other(value)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawContent, A::Error> {
        let mut fields: Vec<(Key, Value)> =
            Vec::with_capacity(map.size_hint().unwrap_or(2).min(16));
        let mut index: Option<HashMap<Key, usize>> = None;
        while let Some(name) = map.next_key_seed(KeySeed)? {
            let value: Value = map.next_value()?;
            if index.is_none() && fields.len() >= LINEAR_FIELDS {
                let places = fields.iter().enumerate().map(|(i, (k, _))| (k.clone(), i));
                index = Some(places.collect());
            }
            let Some(index) = &mut index else {
                RawContent::insert(&mut fields, name, value);
                continue;
            };
            match index.get(&name) {
                Some(&place) => fields[place].1 = value,
                None => {
                    index.insert(name.clone(), fields.len());
                    fields.push((name, value));
                }
            }
        }
        Ok(RawContent::own(Repr::Object(fields)))
    }
}

/// Reads a field name, without an allocation for the names the store reads.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(key(v))
    }

    fn visit_string<E>(self, v: String) -> Result<Key, E> {
        Ok(match key(&v) {
            Cow::Borrowed(known) => Cow::Borrowed(known),
            Cow::Owned(_) => Cow::Owned(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(text: &str) -> RawContent {
        serde_json::from_str(text).expect("valid JSON")
    }

    fn names(content: &RawContent) -> Vec<&str> {
        match content.repr() {
            Repr::Object(fields) => fields.iter().map(|(k, _)| &**k).collect(),
            Repr::Other(_) => Vec::new(),
        }
    }

    #[test]
    fn a_repeated_name_past_the_linear_look_keeps_its_first_place_and_last_value() {
        let many: Vec<String> = (0..LINEAR_FIELDS * 3)
            .map(|i| format!(r#""k{i}":{i}"#))
            .collect();
        let text = format!(r#"{{{},"k1":"last","k70":"late"}}"#, many.join(","));
        let content = parse(&text);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(content, value);
        assert_eq!(names(&content).len(), LINEAR_FIELDS * 3);
        assert_eq!(names(&content)[1], "k1");
        assert_eq!(content["k1"], "last");
        assert_eq!(content["k70"], "late");
        assert_eq!(serde_json::to_string(&content).unwrap(), value.to_string());
        // Compared field by field through a map past the linear look: same fields equal, one changed not.
        assert_eq!(content, parse(&text));
        assert_ne!(
            content,
            parse(&text.replace(r#""k70":"late""#, r#""k70":"later""#))
        );
    }

    #[test]
    fn every_json_value_reads_and_writes_as_serde_json_does() {
        for text in [
            r#"{"text":"hi","z":1,"a":[1,{"b":null}],"n":-2.5,"u":18446744073709551615}"#,
            r#""a string""#,
            "[1,2,3]",
            "null",
            "true",
            "-7",
            "1.5",
            "{}",
            r#"{"input":{"command":"ls","x":{}}}"#,
        ] {
            let content = parse(text);
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&content).unwrap(), value.to_string());
            assert_eq!(content, value, "{text}");
            assert_eq!(Value::from(content.clone()), value);
            assert_eq!(RawContent::from(value), content);
        }
    }

    #[test]
    fn a_repeated_name_keeps_its_first_place_and_its_last_value_as_json_parse_does() {
        let content = parse(r#"{"a":1,"b":2,"a":3}"#);
        assert_eq!(names(&content), ["a", "b"]);
        assert_eq!(content["a"], 3);
        assert_eq!(serde_json::to_string(&content).unwrap(), r#"{"a":3,"b":2}"#);
        let value: Value = serde_json::from_str(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(value.to_string(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn fields_are_read_and_taken_only_from_objects() {
        let mut content = RawContent::from(json!({"text": "t", "other": 1}));
        assert_eq!(content.get("text"), Some(&json!("t")));
        assert_eq!(content["missing"], Value::Null);
        assert_eq!(content.take("text"), Some(json!("t")));
        assert_eq!(content["text"], Value::Null);
        let mut string = RawContent::from(json!("text"));
        assert_eq!(string.get("text"), None);
        assert_eq!(string.take("text"), None);
        assert_eq!(string.as_str(), Some("text"));
        assert_eq!(RawContent::default(), Value::Null);
    }

    #[test]
    fn a_shared_content_reads_writes_and_compares_as_its_own_copy_and_gives_copies_of_its_fields() {
        let text = r#"{"name":"Bash","input":{"command":"ls"}}"#;
        let own = parse(text);
        let shared = own.clone().shared();
        let mut copy = shared.clone();
        assert_eq!(copy, own);
        assert_eq!(copy, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(serde_json::to_string(&copy).unwrap(), text);
        assert_eq!(copy.get("input"), own.get("input"));
        assert_eq!(copy.take("name"), Some(json!("Bash")));
        assert_eq!(copy.take("missing"), None);
        assert_eq!(
            shared["name"], "Bash",
            "the shared content is not changed by a take"
        );
        assert_eq!(Value::from(copy), Value::from(own));
        assert_eq!(RawContent::from(json!("s")).shared().as_str(), Some("s"));
    }

    #[test]
    fn equality_ignores_field_order_as_serde_json_maps_do() {
        let a = parse(r#"{"a":1,"b":2}"#);
        let b = parse(r#"{"b":2,"a":1}"#);
        assert_eq!(a, b);
        assert_ne!(a, parse(r#"{"a":1}"#));
        assert_ne!(a, parse(r#"{"a":1,"b":3}"#));
        assert_ne!(parse("[]"), parse("{}"));
    }
}
