//! The body of a message batch row from schema 7 on, written and read by hand.
//!
//! Schema 6 and older wrote each message through serde and postcard, field by field; postcard's writer
//! appends a string byte by byte through an iterator, which made encoding the largest single cost of a
//! session's flush (stop 24's profile: 3 % of all CPU for ~100 B messages). Here a message is a few
//! varints and its strings copied whole, into a buffer sized once for the batch. Reading borrows the
//! row and allocates only the strings of the messages the caller takes; a message it skips is stepped over
//! without checking its text (the row's checksum already vouches for every byte).
//!
//! Layout, all integers LEB128 varints: the message count, then per message its seqId, its timestamp as
//! the zigzagged difference from the previous message's (from 0 for the first: neighbours are
//! milliseconds apart, so one or two bytes instead of six), its role code and a byte of flags saying
//! which optional strings follow, then the id and the content and each present optional string (tool
//! name, tool input, tool path) as a length and its bytes.

use crate::messages::wire::{AgentMessage, SharedMessage, ToolFields};

use super::codec::{role_code, role_of, Visit};

const TOOL_NAME: u8 = 1;
const TOOL_INPUT: u8 = 2;
const TOOL_PATH: u8 = 4;
/// The most bytes a message takes besides its strings: seqId and timestamp (ten each), role, flags, and
/// five string lengths (five bytes each for lengths below 2^35).
const FIXED: usize = 10 + 10 + 2 + 5 * 5;

/// An upper bound of the body `write` makes of `messages`, to size its buffer once.
pub(super) fn bound(messages: &[SharedMessage]) -> usize {
    10 + messages
        .iter()
        .map(|m| FIXED + m.id.len() + m.content.len() + m.tool_len())
        .sum::<usize>()
}

/// Appends the body of `messages` to `out`.
pub(super) fn write(messages: &[SharedMessage], out: &mut Vec<u8>) {
    varint(out, messages.len() as u64);
    let mut previous = 0i64;
    for m in messages {
        varint(out, m.seq_id);
        varint(out, zigzag(m.timestamp.wrapping_sub(previous)));
        previous = m.timestamp;
        let flag = |present: bool, bit: u8| if present { bit } else { 0 };
        let [tool_name, tool_input, tool_path] = m.tool_fields();
        let flags = flag(tool_name.is_some(), TOOL_NAME)
            | flag(tool_input.is_some(), TOOL_INPUT)
            | flag(tool_path.is_some(), TOOL_PATH);
        out.extend_from_slice(&[role_code(m.role), flags]);
        text(out, &m.id);
        text(out, &m.content);
        for s in [tool_name, tool_input, tool_path].into_iter().flatten() {
            text(out, s);
        }
    }
}

/// Reads the body written by `write`, appending to `out` the messages `visit` takes, in stored order.
pub(super) fn read(
    body: &[u8],
    mut visit: impl FnMut(u64) -> Visit,
    out: &mut Vec<AgentMessage>,
) -> Result<(), String> {
    let mut r = Reader::new(body);
    let count = r.varint("the message count")?;
    let mut previous = 0i64;
    for _ in 0..count {
        let seq_id = r.varint("a seqId")?;
        let timestamp = previous.wrapping_add(unzigzag(r.varint("a timestamp")?));
        previous = timestamp;
        let role = r.byte("a role")?;
        let flags = r.byte("a message's flags")?;
        if flags & !(TOOL_NAME | TOOL_INPUT | TOOL_PATH) != 0 {
            return Err(format!("unknown field flags {flags:#x}"));
        }
        match visit(seq_id) {
            Visit::Stop => break,
            Visit::Skip => {
                for _ in 0..2 + flags.count_ones() {
                    r.field()?;
                }
            }
            Visit::Take => {
                let id = r.text()?;
                let content = r.text()?;
                let mut optional = |bit: u8| (flags & bit != 0).then(|| r.text()).transpose();
                let tool_name = optional(TOOL_NAME)?;
                let tool_input = optional(TOOL_INPUT)?;
                let tool_path = optional(TOOL_PATH)?;
                out.push(AgentMessage {
                    id,
                    seq_id,
                    role: role_of(role)?,
                    content,
                    tool: ToolFields::boxed(tool_name, tool_input, tool_path),
                    timestamp,
                });
            }
        }
    }
    Ok(())
}

/// Appends `v` as a LEB128 varint.
pub(super) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `bytes` as their length (a varint) and the bytes: a string here, an entry of the event journal's
/// runs (src/storage/journal.rs).
pub(super) fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(super) fn text(out: &mut Vec<u8>, s: &str) {
    field(out, s.as_bytes());
}

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// A cursor over a body; every read checks the bytes are there.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(super) fn varint(&mut self, what: &str) -> Result<u64, String> {
        let mut v = 0u64;
        for (i, &b) in self.rest.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(v);
            }
        }
        Err(format!("{what} is cut short or too long"))
    }

    pub(super) fn byte(&mut self, what: &str) -> Result<u8, String> {
        let (&b, rest) = self
            .rest
            .split_first()
            .ok_or_else(|| format!("{what} is cut short"))?;
        self.rest = rest;
        Ok(b)
    }

    pub(super) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!("{what} is cut short"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// A field `field` wrote: a string, or a journal entry.
    pub(super) fn field(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint("a field's length")?;
        let len = usize::try_from(len).map_err(|_| format!("a field of {len} bytes"))?;
        self.bytes(len, "a field")
    }

    fn text(&mut self) -> Result<String, String> {
        self.str().map(str::to_owned)
    }

    /// A string `text` wrote, borrowed from the body.
    pub(super) fn str(&mut self) -> Result<&'a str, String> {
        let bytes = self.field()?;
        std::str::from_utf8(bytes).map_err(|e| format!("a string is not UTF-8: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::messages::wire::MsgRole;

    fn message(seq: u64, timestamp: i64, tool: bool) -> SharedMessage {
        Arc::new(AgentMessage {
            id: format!("m{seq}"),
            seq_id: seq,
            role: if tool {
                MsgRole::Assistant
            } else {
                MsgRole::User
            },
            content: "é".repeat(seq as usize),
            tool: ToolFields::boxed(
                tool.then(|| "Bash".to_owned()),
                None,
                tool.then(String::new),
            ),
            timestamp,
        })
    }

    #[test]
    fn a_body_round_trips_with_timestamps_going_back_and_absent_fields() {
        let batch = vec![
            message(1, 1_700_000_000_000, false),
            message(2, 1_700_000_000_500, true),
            message(300, 5, false),
            message(301, i64::MIN, true),
            message(u64::MAX >> 40, i64::MAX, false),
        ];
        let mut body = Vec::new();
        write(&batch, &mut body);
        assert!(body.len() <= bound(&batch));
        let mut out = Vec::new();
        read(&body, |_| Visit::Take, &mut out).unwrap();
        let expected: Vec<AgentMessage> = batch.iter().map(|m| (**m).clone()).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn skipped_messages_are_stepped_over_and_stop_ends_the_read() {
        let batch: Vec<_> = (1..=5).map(|s| message(s, s as i64, s % 2 == 0)).collect();
        let mut body = Vec::new();
        write(&batch, &mut body);
        let mut out = Vec::new();
        let visit = |seq| match seq {
            2 => Visit::Skip,
            5 => Visit::Stop,
            _ => Visit::Take,
        };
        read(&body, visit, &mut out).unwrap();
        assert_eq!(out.iter().map(|m| m.seq_id).collect::<Vec<_>>(), [1, 3, 4]);
    }

    #[test]
    fn a_cut_or_garbled_body_is_an_error_not_a_panic() {
        let batch: Vec<_> = (1..=3).map(|s| message(s, 7, true)).collect();
        let mut body = Vec::new();
        write(&batch, &mut body);
        for end in 0..body.len() {
            assert!(read(&body[..end], |_| Visit::Take, &mut Vec::new()).is_err());
        }
        let mut flags = body.clone();
        // The first message's flags byte: after the count, its seqId and its timestamp (one byte each
        // here, then role).
        let at = 1 + 1 + 1 + 1;
        flags[at] = 0x80;
        let err = read(&flags, |_| Visit::Take, &mut Vec::new()).unwrap_err();
        assert!(err.contains("flags"), "{err}");
        let mut count = body.clone();
        count[0] = 0xff;
        assert!(read(&count, |_| Visit::Take, &mut Vec::new()).is_err());
        assert!(read(&[0xff; 11], |_| Visit::Take, &mut Vec::new()).is_err());
    }
}
