//! The JSON of a live `session.messages` frame, written by hand: the one place where the store writes
//! every byte of every message's content as JSON while ingesting. serde_json escapes a string one byte at
//! a time; a message's content is mostly long runs that need no escape (tool output, code, prose), so this
//! writer looks at eight bytes at once and copies whole runs. The output is byte for byte what serde_json
//! writes for the same values (the tests compare the two), so readers cannot tell which wrote it.

use crate::messages::wire::AgentMessage;

/// `{"sessionId":…,"projectId":…,"messages":[…]}`, as serde_json writes `sse::MessagesData`.
pub fn write_messages_data(
    out: &mut Vec<u8>,
    session_id: &str,
    project_id: &str,
    messages: &[impl AsRef<AgentMessage>],
) {
    out.extend_from_slice(b"{\"sessionId\":");
    write_str(out, session_id);
    out.extend_from_slice(b",\"projectId\":");
    write_str(out, project_id);
    out.extend_from_slice(b",\"messages\":[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_message(out, m.as_ref());
    }
    out.extend_from_slice(b"]}");
}

/// One `AgentMessage` as its `Serialize` writes it: fields in declaration order, camelCase, `None` left out.
fn write_message(out: &mut Vec<u8>, m: &AgentMessage) {
    let AgentMessage {
        id,
        seq_id,
        role,
        content,
        tool: _,
        timestamp,
    } = m;
    let [tool_name, tool_input, tool_path] = m.tool_fields();
    out.extend_from_slice(b"{\"id\":");
    write_str(out, id);
    out.extend_from_slice(b",\"seqId\":");
    out.extend_from_slice(itoa::Buffer::new().format(*seq_id).as_bytes());
    out.extend_from_slice(b",\"role\":\"");
    out.extend_from_slice(role.as_str().as_bytes());
    out.extend_from_slice(b"\",\"content\":");
    write_str(out, content);
    for (name, value) in [
        (&b",\"toolName\":"[..], tool_name),
        (b",\"toolInput\":", tool_input),
        (b",\"toolPath\":", tool_path),
    ] {
        if let Some(value) = value {
            out.extend_from_slice(name);
            write_str(out, value);
        }
    }
    out.extend_from_slice(b",\"timestamp\":");
    out.extend_from_slice(itoa::Buffer::new().format(*timestamp).as_bytes());
    out.push(b'}');
}

/// Appends `s` as a JSON string, quotes included, escaped as serde_json escapes it: `"` and `\`, the
/// control characters below 0x20 (the usual five by name, the rest as `\u00xx`), nothing else.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // `copied`: where the run not yet copied starts.
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        while let Some(word) = bytes.get(i..i + 8) {
            if needs_escape(u64::from_le_bytes(word.try_into().expect("eight bytes"))) {
                break;
            }
            i += 8;
        }
        // Within eight bytes of an escape (the word above had one), or in the last few bytes.
        while i < bytes.len() && !is_escaped(bytes[i]) {
            i += 1;
        }
        let Some(&byte) = bytes.get(i) else { break };
        out.extend_from_slice(&bytes[copied..i]);
        write_escape(out, byte);
        i += 1;
        copied = i;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of the word is zero (exact as a yes/no: a borrow only flags bytes above a zero one).
fn has_zero_byte(word: u64) -> bool {
    word.wrapping_sub(ONES) & !word & HIGHS != 0
}

/// Whether any of the eight bytes needs an escape: below 0x20 (its top three bits clear), `"` or `\`.
fn needs_escape(word: u64) -> bool {
    has_zero_byte(word & (0xE0 * ONES))
        || has_zero_byte(word ^ (u64::from(b'"') * ONES))
        || has_zero_byte(word ^ (u64::from(b'\\') * ONES))
}

fn is_escaped(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

fn write_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0C => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xF)]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::messages::wire::{MsgRole, SharedMessage, ToolFields};

    fn serde_str(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_character_below_0x80_is_written_as_serde_json_writes_it() {
        for byte in 0u8..0x80 {
            let c = char::from(byte);
            // Alone, at every offset within a word, and between long clean runs.
            for pad in 0..10 {
                let s = format!("{}{c}{}", "a".repeat(pad), "b".repeat(17 - pad));
                assert_eq!(ours(&s), serde_str(&s), "byte {byte:#04x} at {pad}");
            }
        }
    }

    #[test]
    fn texts_of_every_length_and_mix_match_serde_json() {
        let pieces = [
            "plain ascii text ",
            "line\n",
            "\t tab",
            "quote \" and \\ backslash",
            "é ü ñ 漢字 🦀",
            "\u{1}\u{1f}\u{7f}",
            "",
            "</script>",
        ];
        let mut s = String::new();
        for round in 0..200 {
            s.push_str(pieces[round % pieces.len()]);
            for cut in [0, 1, 7, 8, 9, s.len() / 2] {
                let t: String = s.chars().skip(cut).collect();
                assert_eq!(ours(&t), serde_str(&t));
            }
        }
        assert_eq!(ours(""), "\"\"");
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_written_as_serde_json_writes_it(s in proptest::prelude::any::<String>()) {
            proptest::prop_assert_eq!(ours(&s), serde_str(&s));
        }
    }

    fn message(seq: u64, content: &str, tools: bool) -> SharedMessage {
        Arc::new(AgentMessage {
            id: format!("m-{seq}\"x"),
            seq_id: seq,
            role: if tools {
                MsgRole::ToolCall
            } else {
                MsgRole::Assistant
            },
            content: content.into(),
            tool: ToolFields::boxed(
                tools.then(|| "Bash".into()),
                tools.then(|| "{\"command\":\"ls\\n\"}".into()),
                tools.then(|| "/tmp/a b".into()),
            ),
            timestamp: -5 + seq as i64 * 1_000_000_000_000,
        })
    }

    #[test]
    fn a_messages_payload_is_byte_for_byte_what_serde_json_writes() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Data<'a> {
            session_id: &'a str,
            project_id: &'a str,
            messages: &'a [SharedMessage],
        }
        for batch in [
            vec![],
            vec![message(1, "hello\nworld", false)],
            vec![
                message(2, "a \"b\" \\ c\r\n", true),
                message(u64::MAX, "漢字\u{0}", false),
                message(0, "", true),
            ],
        ] {
            let mut out = Vec::new();
            write_messages_data(&mut out, "s-\n1", "proj", &batch);
            let expected = serde_json::to_vec(&Data {
                session_id: "s-\n1",
                project_id: "proj",
                messages: &batch,
            })
            .unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
}
