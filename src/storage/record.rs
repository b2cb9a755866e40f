//! The body of a `sessions` value from schema 8 on (record format 3), written and read by hand.
//!
//! A record is written on every flush of every session, on the one writer thread, and the value it
//! replaces is read back for its place (project, running state, updatedAt). Through serde and postcard
//! that was a serializer call per field, strings appended byte by byte, and a decode of every field before
//! the place; by hand it is one buffer sized once, and the place is the first three fields.
//!
//! Layout, integers as LEB128 varints (src/storage/frame.rs), timestamps zigzagged: the status code, a byte
//! of flags saying which optional fields follow, updatedAt, the seqId ceiling when the record holds one
//! (schema 11: in the head, so a record update learns the replaced value's ceiling with its place), then
//! the project id, the provider and the
//! model (each its length and bytes), the cost (f64, little endian), input and output tokens, createdAt,
//! the last seqId, the message count, and each present optional string (error, provider session id). The
//! session id is not stored: it is the row's key, which the checksum covers.

use super::frame::{field, text, unzigzag, varint, zigzag, Reader};
use super::SessionRecord;
use crate::messages::wire::AgentStatus;

const ERROR: u8 = 1;
const PROVIDER_SESSION: u8 = 2;
/// A seqId ceiling follows updatedAt (schema 11).
const CEILING: u8 = 4;
/// The most bytes a record takes besides its strings: status and flags, eight integers of at most ten
/// bytes, the cost, and five string lengths.
const FIXED: usize = 2 + 8 * 10 + 8 + 5 * 10;

/// An upper bound of the body `write` makes of `r`, to size its buffer once.
pub(super) fn bound(r: &SessionRecord) -> usize {
    FIXED
        + r.project_id.len()
        + r.provider.len()
        + r.model.len()
        + r.error.as_ref().map_or(0, String::len)
        + r.provider_session_id.as_ref().map_or(0, String::len)
}

/// Appends the body of `r` to `out`.
pub(super) fn write(r: &SessionRecord, out: &mut Vec<u8>) {
    let flag = |present: bool, bit: u8| if present { bit } else { 0 };
    let flags = flag(r.error.is_some(), ERROR)
        | flag(r.provider_session_id.is_some(), PROVIDER_SESSION)
        | flag(r.seq_ceiling != 0, CEILING);
    out.extend_from_slice(&[status_code(r.status), flags]);
    varint(out, zigzag(r.updated_at));
    if r.seq_ceiling != 0 {
        varint(out, r.seq_ceiling);
    }
    text(out, &r.project_id);
    text(out, &r.provider);
    text(out, &r.model);
    out.extend_from_slice(&r.cost_usd.to_le_bytes());
    for v in [
        r.input_tokens,
        r.output_tokens,
        zigzag(r.created_at),
        r.last_seq,
    ] {
        varint(out, v);
    }
    varint(out, r.message_count);
    for s in [&r.error, &r.provider_session_id].into_iter().flatten() {
        field(out, s.as_bytes());
    }
}

/// Where a record stands: the first fields of its body, borrowed.
pub(super) struct Head<'a> {
    pub status: u8,
    pub updated_at: i64,
    /// 0 when the record holds no ceiling.
    pub seq_ceiling: u64,
    pub project: &'a str,
}

/// The status, updatedAt and project of a body, without reading further.
pub(super) fn head(body: &[u8]) -> Result<Head<'_>, String> {
    head_and_rest(body).map(|(head, _, _)| head)
}

fn head_and_rest(body: &[u8]) -> Result<(Head<'_>, u8, Reader<'_>), String> {
    let mut r = Reader::new(body);
    let status = r.byte("the status")?;
    let flags = r.byte("the record's flags")?;
    if flags & !(ERROR | PROVIDER_SESSION | CEILING) != 0 {
        return Err(format!("unknown field flags {flags:#x}"));
    }
    let updated_at = unzigzag(r.varint("updatedAt")?);
    let seq_ceiling = match flags & CEILING {
        0 => 0,
        _ => r.varint("the seqId ceiling")?,
    };
    let project = r.str()?;
    Ok((
        Head {
            status,
            updated_at,
            seq_ceiling,
            project,
        },
        flags,
        r,
    ))
}

/// Reads the body `write` made of the record stored under `session_id`.
pub(super) fn read(session_id: &str, body: &[u8]) -> Result<SessionRecord, String> {
    let (head, flags, mut r) = head_and_rest(body)?;
    let provider = r.str()?.to_owned();
    let model = r.str()?.to_owned();
    let cost = r.bytes(8, "the cost")?;
    let cost_usd = f64::from_le_bytes(cost.try_into().map_err(|_| "the cost is cut short")?);
    let input_tokens = r.varint("input tokens")?;
    let output_tokens = r.varint("output tokens")?;
    let created_at = unzigzag(r.varint("createdAt")?);
    let last_seq = r.varint("the last seqId")?;
    let message_count = r.varint("the message count")?;
    let mut optional = |bit: u8| {
        (flags & bit != 0)
            .then(|| r.str().map(str::to_owned))
            .transpose()
    };
    let error = optional(ERROR)?;
    let provider_session_id = optional(PROVIDER_SESSION)?;
    if !r.is_empty() {
        return Err("bytes past the record's end".into());
    }
    Ok(SessionRecord {
        session_id: session_id.to_owned(),
        project_id: head.project.to_owned(),
        provider,
        status: status_of(head.status)?,
        cost_usd,
        input_tokens,
        output_tokens,
        model,
        error,
        created_at,
        updated_at: head.updated_at,
        last_seq,
        message_count,
        provider_session_id,
        seq_ceiling: head.seq_ceiling,
    })
}

pub(super) fn status_code(s: AgentStatus) -> u8 {
    match s {
        AgentStatus::Idle => 0,
        AgentStatus::Running => 1,
        AgentStatus::Done => 2,
        AgentStatus::Error => 3,
    }
}

pub(super) fn status_of(code: u8) -> Result<AgentStatus, String> {
    Ok(match code {
        0 => AgentStatus::Idle,
        1 => AgentStatus::Running,
        2 => AgentStatus::Done,
        3 => AgentStatus::Error,
        other => return Err(format!("status: unknown code {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SessionRecord {
        SessionRecord {
            session_id: "p-1700000000000".into(),
            project_id: "p ✓".into(),
            provider: "claude".into(),
            status: AgentStatus::Running,
            cost_usd: 0.125,
            input_tokens: u64::MAX,
            output_tokens: 20,
            model: String::new(),
            error: None,
            created_at: -5,
            updated_at: i64::MAX,
            last_seq: 300,
            message_count: 299,
            provider_session_id: Some("thread-1".into()),
            seq_ceiling: 0,
        }
    }

    #[test]
    fn a_record_round_trips_with_and_without_its_optional_strings() {
        let full = SessionRecord {
            error: Some("it broke".into()),
            status: AgentStatus::Error,
            ..record()
        };
        let bare = SessionRecord {
            provider_session_id: None,
            ..record()
        };
        let reserving = SessionRecord {
            seq_ceiling: u64::MAX,
            ..record()
        };
        for r in [record(), full, bare, reserving] {
            let mut body = Vec::new();
            write(&r, &mut body);
            assert!(body.len() <= bound(&r));
            assert_eq!(read(&r.session_id, &body).unwrap(), r);
            let h = head(&body).unwrap();
            assert_eq!(
                (h.status, h.updated_at, h.seq_ceiling, h.project),
                (status_code(r.status), r.updated_at, r.seq_ceiling, "p ✓")
            );
        }
    }

    #[test]
    fn a_cut_or_garbled_body_is_an_error_not_a_panic() {
        let mut body = Vec::new();
        write(
            &SessionRecord {
                seq_ceiling: 1_000,
                ..record()
            },
            &mut body,
        );
        for end in 0..body.len() {
            assert!(read("s", &body[..end]).is_err(), "cut at {end}");
        }
        let mut flags = body.clone();
        flags[1] = 0x18;
        assert!(read("s", &flags).unwrap_err().contains("flags"));
        let mut status = body.clone();
        status[0] = 9;
        assert!(read("s", &status).unwrap_err().contains("status"));
        let mut longer = body.clone();
        longer.push(0);
        assert!(read("s", &longer).is_err());
    }
}
