//! A raw message's `content`: any JSON value, as a sidecar or an adapter sent it, held as a `Node` (objects
//! as field lists in arrival order, see `json_node`), and shared or not.
//!
//! Every ingested message has one, and the conversion reads at most three fields of it before dropping
//! it, moving the strings it shows out rather than copying them (`take`).
//!
//! A content many messages carry alike (the in-process load generator's templates) can be shared instead
//! of copied per message (`RawContent::shared`): it is read in place, and a field taken out of it is
//! copied, which is what copying the whole content would have cost for that field alone.
//!
//! It reads, writes and compares as the JSON value it holds (see `json_node`).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::json_node::Node;

/// A raw message's content (see the module doc). `Default` is JSON `null`, an absent content.
#[derive(Debug, Clone, Default)]
pub struct RawContent(Held);

#[derive(Debug, Clone)]
enum Held {
    Own(Node),
    /// Held by many messages alike.
    Shared(Arc<Node>),
}

impl Default for Held {
    fn default() -> Held {
        Held::Own(Node::Null)
    }
}

impl RawContent {
    /// This content, to be handed to many messages: each clone of the answer shares it rather than copying
    /// it.
    pub fn shared(self) -> RawContent {
        match self.0 {
            Held::Own(node) => RawContent(Held::Shared(Arc::new(node))),
            shared @ Held::Shared(_) => RawContent(shared),
        }
    }

    /// What the content holds, shared or not.
    fn node(&self) -> &Node {
        match &self.0 {
            Held::Own(node) => node,
            Held::Shared(node) => node,
        }
    }

    /// `content?.[name]`: only an object has fields.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.node().get(name)
    }

    /// Takes field `name` out of an object, leaving `null` in its place (the conversion moves the strings
    /// it shows out of the content rather than copying them); out of a shared content it is copied.
    pub fn take(&mut self, name: &str) -> Option<Node> {
        match &mut self.0 {
            Held::Own(node) => node.take(name),
            Held::Shared(node) => node.get(name).cloned(),
        }
    }

    /// The content when it is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        self.node().as_str()
    }
}

impl From<Value> for RawContent {
    fn from(value: Value) -> RawContent {
        RawContent(Held::Own(Node::from(value)))
    }
}

impl From<RawContent> for Value {
    fn from(content: RawContent) -> Value {
        match content.0 {
            Held::Own(node) => Value::from(node),
            Held::Shared(node) => Value::from(Arc::unwrap_or_clone(node)),
        }
    }
}

/// `content["name"]`, as on a `serde_json::Value`: `null` for a missing field.
impl std::ops::Index<&str> for RawContent {
    type Output = Node;

    fn index(&self, name: &str) -> &Node {
        &self.node()[name]
    }
}

impl PartialEq for RawContent {
    fn eq(&self, other: &RawContent) -> bool {
        self.node() == other.node()
    }
}

impl PartialEq<Value> for RawContent {
    fn eq(&self, other: &Value) -> bool {
        self.node() == other
    }
}

/// The content as compact JSON text, as a `serde_json::Value` prints.
impl fmt::Display for RawContent {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.node().fmt(f)
    }
}

impl Serialize for RawContent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.node().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawContent, D::Error> {
        Node::deserialize(deserializer).map(|node| RawContent(Held::Own(node)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(text: &str) -> RawContent {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn a_content_reads_and_writes_as_the_json_value_it_holds() {
        for text in [
            r#"{"text":"hi","z":1,"a":[1,{"b":null}],"n":-2.5}"#,
            r#""a string""#,
            "null",
            r#"{"input":{"command":"ls","x":{}}}"#,
        ] {
            let content = parse(text);
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&content).unwrap(), value.to_string());
            assert_eq!(content.to_string(), value.to_string());
            assert_eq!(content, value, "{text}");
            assert_eq!(Value::from(content.clone()), value);
            assert_eq!(RawContent::from(value), content);
        }
    }

    #[test]
    fn fields_are_read_and_taken_only_from_objects() {
        let mut content = RawContent::from(json!({"text": "t", "other": 1}));
        assert_eq!(content.get("text"), Some(&Node::String("t".into())));
        assert!(content["missing"].is_null());
        assert_eq!(content.take("text"), Some(Node::String("t".into())));
        assert!(content["text"].is_null());
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
        assert_eq!(copy.take("name"), Some(Node::String("Bash".into())));
        assert_eq!(copy.take("missing"), None);
        assert_eq!(
            shared["name"], "Bash",
            "the shared content is not changed by a take"
        );
        assert_eq!(Value::from(copy), Value::from(own));
        assert_eq!(RawContent::from(json!("s")).shared().as_str(), Some("s"));
    }
}
