use serde_json::json;

use super::*;

fn parse(text: &str) -> Node {
    serde_json::from_str(text).expect("valid JSON")
}

fn names(node: &Node) -> Vec<&str> {
    node.as_object()
        .map(|fields| fields.iter().map(|(k, _)| &**k).collect())
        .unwrap_or_default()
}

#[test]
fn every_json_value_reads_and_writes_as_serde_json_does() {
    for text in [
        r#"{"text":"hi","z":1,"a":[1,{"b":null}],"n":-2.5,"u":18446744073709551615}"#,
        r#""a string""#,
        "[1,2,3]",
        "[]",
        "null",
        "true",
        "-7",
        "1.5",
        "1e300",
        "{}",
        r#"{"input":{"command":"ls","x":{},"y":[{"z":[true,false,null,"\u00e9\n"]}]}}"#,
        r#"{"2":"b","1":"a","k":{"10":1,"9":2}}"#,
    ] {
        let node = parse(text);
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&node).unwrap(), value.to_string());
        assert_eq!(node.to_string(), value.to_string());
        assert_eq!(node, value, "{text}");
        assert_eq!(Value::from(node.clone()), value);
        assert_eq!(Node::from(value), node);
    }
}

#[test]
fn a_nested_object_keeps_its_field_order_and_is_read_in_place() {
    let node =
        parse(r#"{"name":"Edit","input":{"old_string":"a","file_path":"/f","new_string":"b"}}"#);
    assert_eq!(
        names(&node["input"]),
        ["old_string", "file_path", "new_string"]
    );
    assert_eq!(node["input"]["file_path"], "/f");
    assert_eq!(node["input"].get("missing"), None);
    assert!(node["missing"]["deeper"].is_null());
    assert_eq!(
        serde_json::to_string(&node["input"]).unwrap(),
        r#"{"old_string":"a","file_path":"/f","new_string":"b"}"#
    );
}

#[test]
fn a_repeated_name_keeps_its_first_place_and_its_last_value_as_json_parse_does() {
    let node = parse(r#"{"a":1,"b":{"x":1,"y":2,"x":3},"a":3}"#);
    assert_eq!(names(&node), ["a", "b"]);
    assert_eq!(node["a"], 3);
    assert_eq!(names(&node["b"]), ["x", "y"]);
    let text = r#"{"a":3,"b":{"x":3,"y":2}}"#;
    assert_eq!(serde_json::to_string(&node).unwrap(), text);
    let value: Value = serde_json::from_str(r#"{"a":1,"b":{"x":1,"y":2,"x":3},"a":3}"#).unwrap();
    assert_eq!(value.to_string(), text);
}

#[test]
fn a_repeated_name_past_the_linear_look_keeps_its_first_place_and_last_value() {
    let many: Vec<String> = (0..LINEAR_FIELDS * 3)
        .map(|i| format!(r#""k{i}":{i}"#))
        .collect();
    let text = format!(r#"{{{},"k1":"last","k70":"late"}}"#, many.join(","));
    let node = parse(&text);
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(node, value);
    assert_eq!(names(&node).len(), LINEAR_FIELDS * 3);
    assert_eq!(names(&node)[1], "k1");
    assert_eq!(node["k1"], "last");
    assert_eq!(node["k70"], "late");
    assert_eq!(serde_json::to_string(&node).unwrap(), value.to_string());
    // Compared field by field through a map past the linear look: same fields equal, one changed not.
    assert_eq!(node, parse(&text));
    assert_ne!(
        node,
        parse(&text.replace(r#""k70":"late""#, r#""k70":"later""#))
    );
}

#[test]
fn equality_ignores_field_order_as_serde_json_maps_do() {
    let a = parse(r#"{"a":1,"b":{"c":2,"d":3}}"#);
    assert_eq!(a, parse(r#"{"b":{"d":3,"c":2},"a":1}"#));
    assert_ne!(a, parse(r#"{"a":1}"#));
    assert_ne!(a, parse(r#"{"a":1,"b":{"c":2,"d":4}}"#));
    assert_ne!(parse("[]"), parse("{}"));
    assert_ne!(parse("{}"), parse("[]"));
    assert_ne!(parse("{}"), json!([]));
    assert_ne!(parse("[1,2]"), parse("[2,1]"));
    assert_ne!(parse("[1]"), json!([1, 2]));
    assert_eq!(parse("1"), 1);
    assert_eq!(parse("false"), false);
    assert_eq!(parse(r#""s""#), "s");
}

#[test]
fn fields_are_read_and_taken_only_from_objects() {
    let mut node = Node::from(json!({"text": "t", "other": 1}));
    assert_eq!(node.get("text"), Some(&Node::String("t".into())));
    assert!(node["missing"].is_null());
    assert_eq!(node.take("text"), Some(Node::String("t".into())));
    assert!(node["text"].is_null());
    let mut string = Node::from(json!("text"));
    assert_eq!(string.get("text"), None);
    assert_eq!(string.take("text"), None);
    assert_eq!(string.as_str(), Some("text"));
    assert_eq!(Node::default(), Value::Null);
}

#[test]
fn a_nested_object_is_a_field_list_whose_known_names_are_not_allocated() {
    let node = parse(r#"{"name":"Bash","input":{"command":"ls","timeout":5}}"#);
    let Some(input) = node["input"].as_object() else {
        panic!("the input is an object");
    };
    assert!(matches!(input[0].0, Cow::Borrowed("command")));
    assert!(matches!(&input[1].0, Cow::Owned(name) if name == "timeout"));
    assert_eq!(input[1].1, 5);
}
