//! A JSON value as a raw message's content holds it: `serde_json::Value`, except that an object is a
//! short list of fields in arrival order rather than an insertion-ordered hash map.
//!
//! Contents are parsed on every ingested message and mostly dropped after the conversion reads a few
//! fields. A `Value` object (serde_json's `preserve_order` map) costs a hash table, an entry list and a
//! `String` per key, each key hashed with SipHash as it is parsed; a tool call's `input` is one on two
//! messages in five. Here an object is one allocation for its list, its fields are found by a linear look
//! (contents have a few fields), and the field names the store reads (`text`, `input`, `command`, ...)
//! are kept without an allocation.
//!
//! It reads, writes and compares as the `Value` it stands for: field order is kept (the original's
//! `JSON.stringify` of a tool input shows it), a repeated name keeps its first place and its last value
//! (as `JSON.parse` does), numbers are serde_json's `Number`, and equality ignores field order, as
//! `serde_json::Map`'s does.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

/// A field name: one the store reads, without an allocation, or any other, owned.
pub type Key = Cow<'static, str>;

/// An object's fields, in arrival order, names unique.
pub type Fields = Vec<(Key, Node)>;

/// Up to this many fields a parse finds a repeated name, and a comparison a field, by a linear look;
/// past it, through a hash index, so an object of many keys (a hostile body) is handled in linear time,
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

/// `name` as the binary holds it, if it is one of `known`: such a name needs no allocation.
pub(crate) fn known_name(known: &'static [&'static str], name: &str) -> Option<&'static str> {
    known.iter().copied().find(|k| *k == name)
}

fn key(name: &str) -> Key {
    known_name(&KNOWN_KEYS, name).map_or_else(|| Cow::Owned(name.to_owned()), Cow::Borrowed)
}

/// A JSON value (see the module doc). `Default` is `null`.
#[derive(Debug, Clone, Default)]
pub enum Node {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    Object(Fields),
}

static NULL: Node = Node::Null;

impl Node {
    /// `value?.[name]`: only an object has fields.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Takes field `name` out of an object, leaving `null` in its place.
    pub fn take(&mut self, name: &str) -> Option<Node> {
        match self {
            Node::Object(fields) => fields
                .iter_mut()
                .find(|(k, _)| k == name)
                .map(|(_, v)| std::mem::take(v)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Fields> {
        match self {
            Node::Object(fields) => Some(fields),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// Inserts or replaces a field, keeping a replaced field's place.
    fn insert(fields: &mut Fields, name: Key, value: Node) {
        match fields.iter_mut().find(|(k, _)| *k == name) {
            Some((_, slot)) => *slot = value,
            None => fields.push((name, value)),
        }
    }
}

impl From<Value> for Node {
    fn from(value: Value) -> Node {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => Node::Number(n),
            Value::String(s) => Node::String(s),
            Value::Array(items) => Node::Array(items.into_iter().map(Node::from).collect()),
            // A Map's names are unique already.
            Value::Object(map) => Node::Object(
                map.into_iter()
                    .map(|(name, value)| (key(&name), Node::from(value)))
                    .collect(),
            ),
        }
    }
}

impl From<Node> for Value {
    fn from(node: Node) -> Value {
        match node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Number(n) => Value::Number(n),
            Node::String(s) => Value::String(s),
            Node::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            Node::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), Value::from(v)))
                    .collect(),
            ),
        }
    }
}

/// `value["name"]`, as on a `serde_json::Value`: `null` for a missing field.
impl std::ops::Index<&str> for Node {
    type Output = Node;

    fn index(&self, name: &str) -> &Node {
        self.get(name).unwrap_or(&NULL)
    }
}

/// `value[i]`, as on a `serde_json::Value`: `null` past the end or for anything but an array.
impl std::ops::Index<usize> for Node {
    type Output = Node;

    fn index(&self, i: usize) -> &Node {
        match self {
            Node::Array(items) => items.get(i).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        match (self, other) {
            (Node::Null, Node::Null) => true,
            (Node::Bool(a), Node::Bool(b)) => a == b,
            (Node::Number(a), Node::Number(b)) => a == b,
            (Node::String(a), Node::String(b)) => a == b,
            (Node::Array(a), Node::Array(b)) => a == b,
            (Node::Object(a), Node::Object(b)) if a.len() != b.len() => false,
            (Node::Object(a), Node::Object(_)) if a.len() <= LINEAR_FIELDS => {
                a.iter().all(|(k, v)| other.get(k) == Some(v))
            }
            // Many fields: looked up through a map, so the comparison stays linear.
            (Node::Object(a), Node::Object(b)) => {
                let b: HashMap<&str, &Node> = b.iter().map(|(k, v)| (&**k, v)).collect();
                a.iter().all(|(k, v)| b.get(&**k) == Some(&v))
            }
            _ => false,
        }
    }
}

impl PartialEq<Value> for Node {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Node::Null, Value::Null) => true,
            (Node::Bool(a), Value::Bool(b)) => a == b,
            (Node::Number(a), Value::Number(b)) => a == b,
            (Node::String(a), Value::String(b)) => a == b,
            (Node::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a == b)
            }
            (Node::Object(fields), Value::Object(map)) => {
                fields.len() == map.len()
                    && fields
                        .iter()
                        .all(|(k, v)| map.get(&**k).is_some_and(|w| v == w))
            }
            _ => false,
        }
    }
}

impl PartialEq<str> for Node {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Node {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<bool> for Node {
    fn eq(&self, other: &bool) -> bool {
        matches!(self, Node::Bool(b) if b == other)
    }
}

/// Comparisons with plain numbers, as `Value` has them (`content["inputTokens"] == 100`).
macro_rules! eq_number {
    ($($t:ty => $as:ident as $wide:ty),*) => {$(
        impl PartialEq<$t> for Node {
            fn eq(&self, other: &$t) -> bool {
                matches!(self, Node::Number(n) if n.$as() == Some(*other as $wide))
            }
        }
    )*};
}

eq_number!(i32 => as_i64 as i64, i64 => as_i64 as i64, u32 => as_u64 as u64, u64 => as_u64 as u64, f64 => as_f64 as f64);

/// Compact JSON text, as a `serde_json::Value` prints.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => serializer.serialize_unit(),
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::Number(n) => n.serialize(serializer),
            Node::String(s) => serializer.serialize_str(s),
            Node::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (name, value) in fields {
                    map.serialize_entry(&**name, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

/// What serde_json's own `Value` visitor does, except that an object becomes a field list.
impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Number::from_f64(v).map_or(Node::Null, Node::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut fields: Fields = Vec::with_capacity(map.size_hint().unwrap_or(2).min(16));
        let mut index: Option<HashMap<Key, usize>> = None;
        while let Some(name) = map.next_key_seed(KeySeed)? {
            let value: Node = map.next_value()?;
            if index.is_none() && fields.len() >= LINEAR_FIELDS {
                let places = fields.iter().enumerate().map(|(i, (k, _))| (k.clone(), i));
                index = Some(places.collect());
            }
            let Some(index) = &mut index else {
                Node::insert(&mut fields, name, value);
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
        Ok(Node::Object(fields))
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
        Ok(known_name(&KNOWN_KEYS, &v).map_or(Cow::Owned(v), Cow::Borrowed))
    }
}

#[cfg(test)]
mod tests;
