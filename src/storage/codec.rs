//! How session records and message batches are laid out as bytes in redb.
//!
//! Values are postcard, which is compact and fast but not self-describing: every field is always written,
//! in declaration order. The wire types cannot be used for that (their `skip_serializing_if` attributes
//! would make a field vanish and shift everything after it), so this file mirrors them in storage structs
//! that borrow their strings. Encoding a batch copies nothing but bytes; decoding borrows from the stored
//! value and allocates only the strings of the messages the caller keeps.
//!
//! Every value starts with a format byte so that a migration can tell old layouts from new ones, then (from
//! format 2) a CRC-32 of the row's key and body: a flipped bit that still decodes would otherwise be served
//! as if true. The key is in the checksum so that a value that lands under another key is caught as well.
//! Enums are stored as explicit codes, not serde variant indexes, so reordering a wire enum cannot silently
//! change what stored bytes mean.
//!
//! A batch whose body shrinks under LZ4 is stored packed (format 3, from schema 5): the format byte, the
//! checksum of the key and the packed bytes, the body's length (u32, little endian), then the LZ4 block.
//! Agent output (prose, code, JSON) packs several-fold, and every byte not written is a byte redb need not
//! copy into a page, checksum and fsync. The checksum covers what is stored, so a damaged row is caught
//! before it is unpacked. Small or incompressible batches stay plain (format 2).
//!
//! From schema 7 a batch's body is written by hand (src/storage/frame.rs) instead of through postcard:
//! format 4 plain, format 5 packed, laid out around the body as formats 2 and 3. From schema 8 so is a
//! record's (src/storage/record.rs, format 3). Rows of the older formats stay as they are and read as
//! before.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::record::{self, status_code, status_of};
use super::{frame, SessionRecord, StorageError};
use crate::messages::wire::{AgentMessage, AgentStatus, MsgRole, SharedMessage, ToolFields};

/// The layout of a `sessions` value through postcard (schema 2 to 7): the format byte, the checksum (u32,
/// little endian), the record.
const RECORD_FORMAT: u8 = 2;
/// Format 2's header with the hand-written body of src/storage/record.rs: what this build writes.
const FRAMED_RECORD_FORMAT: u8 = 3;
/// The layout of a `messages` value: the format byte, the checksum, the message count, the messages.
const BATCH_FORMAT: u8 = 2;
/// A `messages` value packed with LZ4: the format byte, the checksum, the body's length, the LZ4 block.
const PACKED_BATCH_FORMAT: u8 = 3;
/// Formats 2 and 3 with the hand-written body of src/storage/frame.rs: what this build writes.
const FRAMED_BATCH_FORMAT: u8 = 4;
const PACKED_FRAMED_FORMAT: u8 = 5;
/// Schema 1's layout of both: the format byte, then the body, without a checksum.
const UNCHECKED_FORMAT: u8 = 1;
const HEADER: usize = 5;
/// Bodies shorter than this are stored plain: too little to gain for the work of packing.
const PACK_FROM: usize = 256;
/// LZ4 never expands a byte into more than 255; a stated length past that is a damaged row, refused
/// before anything is allocated for it.
const MAX_PACK_RATIO: usize = 255;

#[derive(Serialize, Deserialize)]
struct StoredRecord<'a> {
    session_id: &'a str,
    project_id: &'a str,
    provider: &'a str,
    status: u8,
    cost_usd: f64,
    input_tokens: u64,
    output_tokens: u64,
    model: &'a str,
    #[serde(borrow)]
    error: Option<&'a str>,
    created_at: i64,
    updated_at: i64,
    last_seq: u64,
    message_count: u64,
    #[serde(borrow)]
    provider_session_id: Option<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct StoredMessage<'a> {
    id: &'a str,
    seq_id: u64,
    role: u8,
    content: &'a str,
    #[serde(borrow)]
    tool_name: Option<&'a str>,
    #[serde(borrow)]
    tool_input: Option<&'a str>,
    #[serde(borrow)]
    tool_path: Option<&'a str>,
    timestamp: i64,
}

impl StoredMessage<'_> {
    fn to_message(&self) -> Result<AgentMessage, String> {
        Ok(AgentMessage {
            id: self.id.to_owned(),
            seq_id: self.seq_id,
            role: role_of(self.role)?,
            content: self.content.to_owned(),
            tool: ToolFields::boxed(
                self.tool_name.map(str::to_owned),
                self.tool_input.map(str::to_owned),
                self.tool_path.map(str::to_owned),
            ),
            timestamp: self.timestamp,
        })
    }
}

/// Encodes a `sessions` value: the hand-written body of src/storage/record.rs (format 3).
pub(super) fn encode_record(r: &SessionRecord) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(HEADER + record::bound(r));
    out.extend_from_slice(&header(FRAMED_RECORD_FORMAT));
    record::write(r, &mut out);
    Ok(sealed(out, &RowKey::Record(&r.session_id)))
}

/// Decodes the `sessions` value stored under `session_id`, checking its checksum first.
pub(super) fn decode_record(session_id: &str, bytes: &[u8]) -> Result<SessionRecord, StorageError> {
    let key = RowKey::Record(session_id);
    match record_body(bytes, &key)? {
        (body, Layout::Framed) => record::read(session_id, body),
        (body, Layout::Postcard) => record_of(body),
    }
    .map_err(|e| key.corrupt(e))
}

/// The checked body of a `sessions` value and its layout: by hand (format 3), or postcard (format 2, schema
/// 7 and older; such a record is rewritten as format 3 on its next update).
fn record_body<'a>(bytes: &'a [u8], key: &RowKey<'_>) -> Result<(&'a [u8], Layout), StorageError> {
    match bytes.first() {
        Some(&FRAMED_RECORD_FORMAT) => Ok((
            checked_body(bytes, FRAMED_RECORD_FORMAT, key)?,
            Layout::Framed,
        )),
        _ => Ok((checked_body(bytes, RECORD_FORMAT, key)?, Layout::Postcard)),
    }
}

/// Where a stored record stands: its project, whether it is running, and its `updatedAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place<'a> {
    pub project: &'a str,
    pub running: bool,
    pub updated_at: i64,
    /// The seqId ceiling the record holds (0: none; always 0 before schema 11).
    pub seq_ceiling: u64,
}

/// The place of the `sessions` value stored under `session_id`, decoded without allocating (its strings
/// are borrowed): what a record update needs of the value it replaces to know whether the project index,
/// the running mark and the project's summary must change. The checksum is still checked.
pub(super) fn record_place<'a>(
    session_id: &str,
    bytes: &'a [u8],
) -> Result<Place<'a>, StorageError> {
    let key = RowKey::Record(session_id);
    let (project, status, updated_at, seq_ceiling) = match record_body(bytes, &key)? {
        (body, Layout::Framed) => {
            let head = record::head(body).map_err(|e| key.corrupt(e))?;
            (head.project, head.status, head.updated_at, head.seq_ceiling)
        }
        (body, Layout::Postcard) => {
            let s: StoredRecord<'a> =
                postcard::from_bytes(body).map_err(|e| key.corrupt(e.to_string()))?;
            (s.project_id, s.status, s.updated_at, 0)
        }
    };
    Ok(Place {
        project,
        running: status == status_code(AgentStatus::Running),
        updated_at,
        seq_ceiling,
    })
}

fn record_of(body: &[u8]) -> Result<SessionRecord, String> {
    let s: StoredRecord = postcard::from_bytes(body).map_err(|e| e.to_string())?;
    Ok(SessionRecord {
        session_id: s.session_id.to_owned(),
        project_id: s.project_id.to_owned(),
        provider: s.provider.to_owned(),
        status: status_of(s.status)?,
        cost_usd: s.cost_usd,
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        model: s.model.to_owned(),
        error: s.error.map(str::to_owned),
        created_at: s.created_at,
        updated_at: s.updated_at,
        last_seq: s.last_seq,
        message_count: s.message_count,
        provider_session_id: s.provider_session_id.map(str::to_owned),
        seq_ceiling: 0,
    })
}

/// Encodes a batch to be stored under (`session_id`, its first seqId): packed when that makes it smaller
/// by at least an eighth, plain otherwise.
///
/// The body and its LZ4 block are written into the encoding thread's scratch buffers (`SCRATCH`), and only
/// the row is allocated, at its length: it waits in the session and the persister's queue until its
/// commit, and is freed on the persister's thread. A buffer per batch was two allocations of the batch's
/// whole size (the LZ4 one zero-filled, so resident) for every flush.
pub(super) fn encode_batch(
    session_id: &str,
    messages: &[SharedMessage],
) -> Result<Vec<u8>, StorageError> {
    let first_seq = messages.first().map_or(0, |m| m.seq_id);
    let row = SCRATCH.with_borrow_mut(|scratch| {
        let Scratch { body, block } = scratch;
        body.clear();
        body.reserve(frame::bound(messages));
        frame::write(messages, body);
        let row = match pack(body, block) {
            Some((len, packed)) => framed(PACKED_FRAMED_FORMAT, &[&len.to_le_bytes(), packed]),
            None => framed(FRAMED_BATCH_FORMAT, &[body]),
        };
        scratch.trim();
        row
    });
    Ok(sealed(row, &RowKey::Batch(session_id, first_seq)))
}

/// A thread's buffers for encoding batches, reused from one batch to the next.
struct Scratch {
    body: Vec<u8>,
    block: Vec<u8>,
}

/// What a thread keeps of each scratch buffer between batches: a larger batch's buffers are freed after it,
/// so the encoding threads (the arbiters, and the persister for a batch it must encode itself) hold at
/// most this much each, whatever a client sends.
const SCRATCH_KEPT: usize = 1 << 20;

impl Scratch {
    fn trim(&mut self) {
        for buf in [&mut self.body, &mut self.block] {
            if buf.capacity() > SCRATCH_KEPT {
                *buf = Vec::new();
            }
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch {
            body: Vec::new(),
            block: Vec::new(),
        })
    };
}

/// A value of `format` (its checksum still to be sealed) holding `parts` one after another, allocated at
/// its length.
fn framed(format: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut row = Vec::with_capacity(HEADER + parts.iter().map(|p| p.len()).sum::<usize>());
    row.extend_from_slice(&header(format));
    for part in parts {
        row.extend_from_slice(part);
    }
    row
}

/// The body's length and its LZ4 block, written into `block`, if packing saves an eighth or more. `block`
/// is zero-filled only as it grows, not for every batch.
fn pack<'b>(body: &[u8], block: &'b mut Vec<u8>) -> Option<(u32, &'b [u8])> {
    let len = u32::try_from(body.len()).ok()?;
    if body.len() < PACK_FROM {
        return None;
    }
    let bound = lz4_flex::block::get_maximum_output_size(body.len());
    if block.len() < bound {
        block.resize(bound, 0);
    }
    let packed = lz4_flex::block::compress_into(body, block).ok()?;
    if HEADER + 4 + packed > body.len() - body.len() / 8 {
        return None;
    }
    Some((len, &block[..packed]))
}

/// A buffer of `len` zero bytes, written by memset. Not `vec![0; len]`: that is calloc, and for a large block
/// jemalloc zeroes a recycled extent by handing its pages back to the kernel (madvise), so every page of it
/// faults in again on first write: a realistic in-process run took 190–205k page faults with calloc and
/// 63–97k with this (BENCHMARKS.md, "Stop 25").
#[expect(
    clippy::slow_vector_initialization,
    reason = "calloc is the slow one here, see above"
)]
fn zeroed(len: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(len);
    buf.resize(len, 0);
    buf
}

/// How a value's body is laid out: through postcard, or by hand (a batch's in src/storage/frame.rs from
/// schema 7, a record's in src/storage/record.rs from schema 8).
#[derive(Clone, Copy)]
enum Layout {
    Postcard,
    Framed,
}

/// The body of a batch value and its layout, checked, and unpacked when it is stored packed.
fn batch_body<'a>(
    bytes: &'a [u8],
    key: &RowKey<'_>,
) -> Result<(Cow<'a, [u8]>, Layout), StorageError> {
    let (format, layout, packed) = match bytes.first() {
        Some(&PACKED_BATCH_FORMAT) => (PACKED_BATCH_FORMAT, Layout::Postcard, true),
        Some(&FRAMED_BATCH_FORMAT) => (FRAMED_BATCH_FORMAT, Layout::Framed, false),
        Some(&PACKED_FRAMED_FORMAT) => (PACKED_FRAMED_FORMAT, Layout::Framed, true),
        _ => (BATCH_FORMAT, Layout::Postcard, false),
    };
    let stored = checked_body(bytes, format, key)?;
    if !packed {
        return Ok((Cow::Borrowed(stored), layout));
    }
    let body = unpack(stored).map_err(|e| key.corrupt(e))?;
    Ok((Cow::Owned(body), layout))
}

/// The body packed as `pack_onto` writes it: its length (u32, little endian), then the LZ4 block. A length
/// no block can unpack to is refused before anything is allocated for it.
pub(super) fn unpack(stored: &[u8]) -> Result<Vec<u8>, String> {
    let (len, block) = stored
        .split_first_chunk::<4>()
        .ok_or("the packed length is cut short")?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > block.len().saturating_mul(MAX_PACK_RATIO) {
        return Err(format!("a packed length of {len} bytes is impossible"));
    }
    let mut body = zeroed(len);
    match lz4_flex::block::decompress_into(block, &mut body) {
        Ok(n) if n == len => Ok(body),
        Ok(n) => Err(format!("unpacked {n} bytes of {len}")),
        Err(e) => Err(format!("unpacking: {e}")),
    }
}

/// Appends `body`'s length and LZ4 block to `out` if packing saves an eighth or more; answers whether it
/// did. Packed through the thread's scratch block, as a batch is.
pub(super) fn pack_onto(body: &[u8], out: &mut Vec<u8>) -> bool {
    SCRATCH.with_borrow_mut(|scratch| {
        let packed = match pack(body, &mut scratch.block) {
            Some((len, block)) => {
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(block);
                true
            }
            None => false,
        };
        scratch.trim();
        packed
    })
}

/// What to do with the next message of a batch, decided from its seqId before anything is allocated.
pub(super) enum Visit {
    Skip,
    Take,
    Stop,
}

/// Decodes the batch row stored under (`session_id`, `first_seq`), checking its checksum first, and
/// appends to `out` the messages `visit` takes, in stored order.
pub(super) fn decode_batch(
    session_id: &str,
    first_seq: u64,
    bytes: &[u8],
    visit: impl FnMut(u64) -> Visit,
    out: &mut Vec<AgentMessage>,
) -> Result<(), StorageError> {
    let key = RowKey::Batch(session_id, first_seq);
    let (body, layout) = batch_body(bytes, &key)?;
    match layout {
        Layout::Postcard => messages_of(&body, visit, out),
        Layout::Framed => frame::read(&body, visit, out),
    }
    .map_err(|e| key.corrupt(e))
}

/// The messages of a body laid out through postcard (schema 6 and older).
fn messages_of(
    body: &[u8],
    mut visit: impl FnMut(u64) -> Visit,
    out: &mut Vec<AgentMessage>,
) -> Result<(), String> {
    let (count, mut rest) =
        postcard::take_from_bytes::<u64>(body).map_err(|e| format!("batch length: {e}"))?;
    for _ in 0..count {
        let (m, next) = postcard::take_from_bytes::<StoredMessage>(rest)
            .map_err(|e| format!("message in batch: {e}"))?;
        rest = next;
        match visit(m.seq_id) {
            Visit::Skip => {}
            Visit::Take => out.push(m.to_message()?),
            Visit::Stop => break,
        }
    }
    Ok(())
}

/// Rewrites a schema 1 `sessions` value in this build's format, once it decodes whole. Answers None for a
/// value already in this format.
pub(super) fn upgrade_record(
    session_id: &str,
    bytes: &[u8],
) -> Result<Option<Vec<u8>>, StorageError> {
    let key = RowKey::Record(session_id);
    upgrade(bytes, &key, |body| record_of(body).map(drop))
}

/// `upgrade_record` for a `messages` value.
pub(super) fn upgrade_batch(
    session_id: &str,
    first_seq: u64,
    bytes: &[u8],
) -> Result<Option<Vec<u8>>, StorageError> {
    let key = RowKey::Batch(session_id, first_seq);
    upgrade(bytes, &key, |body| {
        messages_of(body, |_| Visit::Take, &mut Vec::new())
    })
}

fn upgrade(
    bytes: &[u8],
    key: &RowKey<'_>,
    decodes: impl FnOnce(&[u8]) -> Result<(), String>,
) -> Result<Option<Vec<u8>>, StorageError> {
    match bytes.split_first() {
        Some((&UNCHECKED_FORMAT, body)) => {
            decodes(body).map_err(|e| key.corrupt(e))?;
            let mut out = Vec::with_capacity(HEADER + body.len());
            out.extend_from_slice(&header(CHECKED_FORMAT));
            out.extend_from_slice(body);
            Ok(Some(sealed(out, key)))
        }
        _ => checked_body(bytes, CHECKED_FORMAT, key).map(|_| None),
    }
}

/// Both tables' values share one checked layout; the constants name which value they describe.
const CHECKED_FORMAT: u8 = RECORD_FORMAT;
const _: () = assert!(RECORD_FORMAT == BATCH_FORMAT);

/// The key a value is stored under, which its checksum covers.
enum RowKey<'a> {
    Record(&'a str),
    Batch(&'a str, u64),
}

impl RowKey<'_> {
    fn checksum(&self, body: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        match self {
            RowKey::Record(id) => h.update(id.as_bytes()),
            RowKey::Batch(id, seq) => {
                h.update(id.as_bytes());
                h.update(&seq.to_le_bytes());
            }
        }
        h.update(body);
        h.finalize()
    }

    fn corrupt(&self, message: impl Into<String>) -> StorageError {
        let (session_id, what) = match self {
            RowKey::Record(id) => (*id, "session record".to_owned()),
            RowKey::Batch(id, seq) => (*id, format!("message batch at seq {seq}")),
        };
        StorageError::Corrupt {
            session_id: session_id.to_owned(),
            what,
            message: message.into(),
        }
    }
}

/// The format byte and room for the checksum.
fn header(format: u8) -> [u8; HEADER] {
    [format, 0, 0, 0, 0]
}

/// Fills in the checksum of a value built behind `header`.
fn sealed(mut out: Vec<u8>, key: &RowKey<'_>) -> Vec<u8> {
    let sum = key.checksum(&out[HEADER..]);
    out[1..HEADER].copy_from_slice(&sum.to_le_bytes());
    out
}

/// The body of a value, once its format and checksum are right.
fn checked_body<'a>(
    bytes: &'a [u8],
    format: u8,
    key: &RowKey<'_>,
) -> Result<&'a [u8], StorageError> {
    match bytes.first() {
        None => return Err(key.corrupt("the value is empty")),
        Some(&f) if f != format => {
            return Err(key.corrupt(format!("format {f}, this build reads format {format}")))
        }
        Some(_) if bytes.len() < HEADER => return Err(key.corrupt("the value is cut short")),
        Some(_) => {}
    }
    let stored = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let body = &bytes[HEADER..];
    if key.checksum(body) != stored {
        return Err(key.corrupt("checksum mismatch"));
    }
    Ok(body)
}

pub(super) fn role_code(r: MsgRole) -> u8 {
    match r {
        MsgRole::User => 0,
        MsgRole::Assistant => 1,
        MsgRole::ToolCall => 2,
        MsgRole::ToolResult => 3,
        MsgRole::Thinking => 4,
        MsgRole::System => 5,
    }
}

pub(super) fn role_of(code: u8) -> Result<MsgRole, String> {
    Ok(match code {
        0 => MsgRole::User,
        1 => MsgRole::Assistant,
        2 => MsgRole::ToolCall,
        3 => MsgRole::ToolResult,
        4 => MsgRole::Thinking,
        5 => MsgRole::System,
        other => return Err(format!("role: unknown code {other}")),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A batch in schema 6's layout (postcard, format 2 or packed 3), as today's files hold them.
    fn postcard_batch(session_id: &str, messages: &[SharedMessage]) -> Vec<u8> {
        let stored: Vec<StoredMessage<'_>> = messages
            .iter()
            .map(|m| StoredMessage {
                id: &m.id,
                seq_id: m.seq_id,
                role: role_code(m.role),
                content: &m.content,
                tool_name: m.tool_name(),
                tool_input: m.tool_input(),
                tool_path: m.tool_path(),
                timestamp: m.timestamp,
            })
            .collect();
        let body = postcard::to_stdvec(&stored).unwrap();
        let key = RowKey::Batch(session_id, messages[0].seq_id);
        let row = match pack(&body, &mut Vec::new()) {
            Some((len, packed)) => framed(PACKED_BATCH_FORMAT, &[&len.to_le_bytes(), packed]),
            None => framed(BATCH_FORMAT, &[&body]),
        };
        sealed(row, &key)
    }

    fn message(seq: u64, role: MsgRole, tool: Option<&str>) -> SharedMessage {
        Arc::new(AgentMessage {
            id: format!("m{seq}"),
            seq_id: seq,
            role,
            content: format!("content {seq} ✓"),
            tool: ToolFields::boxed(
                tool.map(str::to_owned),
                None,
                tool.map(|_| "/src/lib.rs".to_owned()),
            ),
            timestamp: 1_700_000_000_000 + seq as i64,
        })
    }

    #[test]
    fn a_batch_round_trips_with_absent_optional_fields() {
        // Absent fields in the middle of a message are where skip_serializing_if would break postcard.
        let batch = vec![
            message(1, MsgRole::User, None),
            message(2, MsgRole::ToolCall, Some("Bash")),
            message(3, MsgRole::System, None),
        ];
        let bytes = encode_batch("s", &batch).unwrap();
        let mut out = Vec::new();
        decode_batch("s", 1, &bytes, |_| Visit::Take, &mut out).unwrap();
        let expected: Vec<AgentMessage> = batch.iter().map(|m| (**m).clone()).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn decoding_stops_when_told_and_skips_unwanted() {
        let batch: Vec<_> = (1..=5)
            .map(|s| message(s, MsgRole::Assistant, None))
            .collect();
        let bytes = encode_batch("s", &batch).unwrap();
        let mut out = Vec::new();
        let visit = |seq| match seq {
            2 => Visit::Skip,
            5 => Visit::Stop,
            _ => Visit::Take,
        };
        decode_batch("s", 1, &bytes, visit, &mut out).unwrap();
        let seqs: Vec<u64> = out.iter().map(|m| m.seq_id).collect();
        assert_eq!(seqs, vec![1, 3, 4]);
    }

    fn prose(seq: u64) -> SharedMessage {
        let mut m = (*message(seq, MsgRole::Assistant, None)).clone();
        m.content =
            format!("{seq}: the tool read src/lib.rs and found nothing to change. ").repeat(20);
        Arc::new(m)
    }

    #[test]
    fn a_large_batch_is_stored_packed_and_reads_back_whole() {
        let batch: Vec<_> = (1..=20).map(prose).collect();
        let bytes = encode_batch("s", &batch).unwrap();
        assert_eq!(bytes[0], PACKED_FRAMED_FORMAT);
        let plain: usize = batch.iter().map(|m| m.content.len()).sum();
        assert!(bytes.len() * 4 < plain, "{} of {plain}", bytes.len());
        // It waits in the persister's queue holding its packed length, not the unpacked bound.
        assert_eq!(bytes.capacity(), bytes.len());
        let mut out = Vec::new();
        decode_batch("s", 1, &bytes, |_| Visit::Take, &mut out).unwrap();
        let expected: Vec<AgentMessage> = batch.iter().map(|m| (**m).clone()).collect();
        assert_eq!(out, expected);
        // A small batch stays plain.
        let small = encode_batch("s", &[message(1, MsgRole::User, None)]).unwrap();
        assert_eq!(small[0], FRAMED_BATCH_FORMAT);
        assert_eq!(small.capacity(), small.len());
    }

    #[test]
    fn the_encoding_thread_keeps_its_scratch_buffers_only_up_to_the_cap() {
        let kept = || SCRATCH.with_borrow(|s| (s.body.capacity(), s.block.capacity()));
        let small: Vec<_> = (1..=20).map(prose).collect();
        encode_batch("s", &small).unwrap();
        let (body, block) = kept();
        assert!(body > 0 && block > 0, "reused for the next batch");
        let huge: Vec<_> = (1..=2000).map(prose).collect();
        let plain: usize = huge.iter().map(|m| m.content.len()).sum();
        assert!(plain > SCRATCH_KEPT);
        let bytes = encode_batch("s", &huge).unwrap();
        assert!(kept().0 <= SCRATCH_KEPT && kept().1 <= SCRATCH_KEPT);
        let mut out = Vec::new();
        decode_batch("s", 1, &bytes, |_| Visit::Take, &mut out).unwrap();
        assert_eq!(out.len(), huge.len());
        assert_eq!(out[1999].content, huge[1999].content);
    }

    #[test]
    fn schema_six_rows_plain_and_packed_still_read() {
        for batch in [
            vec![message(1, MsgRole::User, None)],
            (1..=20).map(prose).collect(),
        ] {
            let bytes = postcard_batch("s", &batch);
            let mut out = Vec::new();
            decode_batch("s", 1, &bytes, |_| Visit::Take, &mut out).unwrap();
            let expected: Vec<AgentMessage> = batch.iter().map(|m| (**m).clone()).collect();
            assert_eq!(out, expected);
        }
        assert_eq!(
            postcard_batch("s", &[message(1, MsgRole::User, None)])[0],
            BATCH_FORMAT
        );
        let packed = postcard_batch("s", &(1..=20).map(prose).collect::<Vec<_>>());
        assert_eq!(packed[0], PACKED_BATCH_FORMAT);
    }

    #[test]
    fn a_damaged_packed_batch_is_a_corrupt_row_not_a_panic() {
        let batch: Vec<_> = (1..=5).map(prose).collect();
        let bytes = encode_batch("s", &batch).unwrap();
        let mut out = Vec::new();
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let err = decode_batch("s", 1, &flipped, |_| Visit::Take, &mut out).unwrap_err();
        assert_eq!(corrupt_session(err).2, "checksum mismatch");

        // A stated length no LZ4 block can have, sealed with a good checksum, is refused before allocating.
        let mut huge = bytes[..HEADER].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0x10, b'x']);
        let huge = sealed(huge, &RowKey::Batch("s", 1));
        let err = decode_batch("s", 1, &huge, |_| Visit::Take, &mut out).unwrap_err();
        assert!(corrupt_session(err).2.contains("impossible"));

        // A block that does not unpack to its stated length.
        let mut short = bytes[..HEADER].to_vec();
        short.extend_from_slice(&100u32.to_le_bytes());
        short.extend_from_slice(&[0x10, b'x']);
        let short = sealed(short, &RowKey::Batch("s", 1));
        assert!(decode_batch("s", 1, &short, |_| Visit::Take, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn a_record_round_trips() {
        let r = SessionRecord {
            session_id: "s".into(),
            project_id: "p".into(),
            provider: "claude".into(),
            status: AgentStatus::Error,
            cost_usd: 0.25,
            input_tokens: 10,
            output_tokens: 20,
            model: "m".into(),
            error: None,
            created_at: 1,
            updated_at: 2,
            last_seq: 3,
            message_count: 3,
            provider_session_id: Some("thread".into()),
            seq_ceiling: 0,
        };
        fn place(bytes: &[u8]) -> (&str, bool, i64) {
            let p = record_place("s", bytes).unwrap();
            (p.project, p.running, p.updated_at)
        }
        let running = SessionRecord {
            status: AgentStatus::Running,
            ..r.clone()
        };
        // This build's format, and schema 7's (postcard), which a record keeps until its next update.
        type Encode = fn(&SessionRecord) -> Vec<u8>;
        let formats: [(u8, Encode); 2] = [
            (FRAMED_RECORD_FORMAT, |r| encode_record(r).unwrap()),
            (RECORD_FORMAT, postcard_record),
        ];
        for (format, encode) in formats {
            let bytes = encode(&r);
            assert_eq!(bytes[0], format);
            assert_eq!(decode_record("s", &bytes).unwrap(), r);
            assert_eq!(place(&bytes), ("p", false, 2));
            assert_eq!(place(&encode(&running)), ("p", true, 2));
            let mut flipped = bytes.clone();
            *flipped.last_mut().unwrap() ^= 1;
            assert_eq!(
                corrupt_session(decode_record("s", &flipped).unwrap_err()).2,
                "checksum mismatch"
            );
        }
    }

    /// A record as schema 7 and older wrote it (postcard, format 2).
    fn postcard_record(r: &SessionRecord) -> Vec<u8> {
        let stored = StoredRecord {
            session_id: &r.session_id,
            project_id: &r.project_id,
            provider: &r.provider,
            status: status_code(r.status),
            cost_usd: r.cost_usd,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            model: &r.model,
            error: r.error.as_deref(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_seq: r.last_seq,
            message_count: r.message_count,
            provider_session_id: r.provider_session_id.as_deref(),
        };
        let out = postcard::to_extend(&stored, header(RECORD_FORMAT).to_vec()).unwrap();
        sealed(out, &RowKey::Record(&r.session_id))
    }

    fn corrupt_session(e: StorageError) -> (String, String, String) {
        match e {
            StorageError::Corrupt {
                session_id,
                what,
                message,
            } => (session_id, what, message),
            other => panic!("not Corrupt: {other:?}"),
        }
    }

    #[test]
    fn unknown_formats_truncation_and_flipped_bits_are_corrupt_rows() {
        let batch = vec![message(1, MsgRole::User, None)];
        let mut bytes = encode_batch("s", &batch).unwrap();
        let truncated = &bytes[..bytes.len() - 3];
        let mut out = Vec::new();
        let (id, what, message) = corrupt_session(
            decode_batch("s", 1, truncated, |_| Visit::Take, &mut out).unwrap_err(),
        );
        assert_eq!(
            (id.as_str(), what.as_str()),
            ("s", "message batch at seq 1")
        );
        assert_eq!(message, "checksum mismatch");

        // A flip that keeps valid UTF-8 ('c' to 'b' in the content) still decodes: only the checksum sees it.
        let at = bytes.iter().rposition(|&b| b == b'c').unwrap();
        bytes[at] = b'b';
        let err = decode_batch("s", 1, &bytes, |_| Visit::Take, &mut out).unwrap_err();
        assert_eq!(corrupt_session(err).2, "checksum mismatch");
        bytes[at] = b'c';
        decode_batch("s", 1, &bytes, |_| Visit::Take, &mut out).unwrap();

        // The same value under another key is caught too.
        let err = decode_batch("t", 1, &bytes, |_| Visit::Take, &mut out).unwrap_err();
        assert_eq!(corrupt_session(err).0, "t");

        bytes[0] = 99;
        let err = decode_batch("s", 1, &bytes, |_| Visit::Take, &mut out).unwrap_err();
        assert!(corrupt_session(err).2.contains("format 99"));
        assert_eq!(corrupt_session(decode_record("r", &[]).unwrap_err()).0, "r");
    }

    #[test]
    fn schema_one_values_upgrade_to_checked_ones_only_when_they_decode() {
        let batch = vec![message(7, MsgRole::Assistant, Some("Read"))];
        let checked = postcard_batch("s", &batch);
        // Schema 1 wrote the format byte 1 and the body, nothing else.
        let mut old = vec![UNCHECKED_FORMAT];
        old.extend_from_slice(&checked[HEADER..]);
        let upgraded = upgrade_batch("s", 7, &old).unwrap().expect("rewritten");
        assert_eq!(upgraded, checked);
        assert_eq!(upgrade_batch("s", 7, &checked).unwrap(), None);

        let mut broken = old.clone();
        broken.truncate(old.len() - 2);
        assert!(matches!(
            upgrade_batch("s", 7, &broken),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(matches!(
            upgrade_record("s", &[UNCHECKED_FORMAT, 1, 2]),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
