//! Event-stream tickets: `POST /v1/events/ticket` trades the bearer token for a random, single-use ticket
//! that `GET /v1/events?ticket=…` accepts in its place for a short while.
//!
//! Why: a browser's `EventSource` cannot send an `Authorization` header, and putting the token itself in a
//! URL would leave it in logs and history. A ticket is worth one stream opened within `TICKET_TTL`, and
//! only on `/v1/events`. Outstanding tickets are capped (`MAX_OUTSTANDING`), so their memory is bounded by
//! this constant and never by how often a client asks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody};
use super::AppState;

/// How long a ticket may wait before it opens a stream.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Tickets issued and not yet used or expired; past this the oldest is dropped.
const MAX_OUTSTANDING: usize = 1024;
/// Random bytes per ticket (hex-encoded in the answer).
const TICKET_BYTES: usize = 32;

/// Why no ticket could be issued.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw a random ticket: {0}")]
pub struct TicketError(getrandom::Error);

/// The outstanding tickets with their expiry.
#[derive(Default)]
pub struct Tickets {
    issued: Mutex<HashMap<String, Instant>>,
}

impl Tickets {
    /// A fresh ticket valid for `TICKET_TTL`.
    pub fn issue(&self) -> Result<String, TicketError> {
        let mut bytes = [0u8; TICKET_BYTES];
        getrandom::fill(&mut bytes).map_err(TicketError)?;
        let ticket: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut issued = self.lock();
        issued.retain(|_, expires| *expires > now);
        if issued.len() >= MAX_OUTSTANDING {
            if let Some(oldest) = issued
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(t, _)| t.clone())
            {
                issued.remove(&oldest);
            }
        }
        issued.insert(ticket.clone(), now + TICKET_TTL);
        Ok(ticket)
    }

    /// Uses up `ticket`: true once if it was issued and has not expired.
    pub fn redeem(&self, ticket: &str) -> bool {
        self.lock()
            .remove(ticket)
            .is_some_and(|expires| expires > Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // The map holds no invariant a panicking holder could break halfway.
        self.issued.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The answer to `POST /v1/events/ticket`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketBody {
    /// Pass as `GET /v1/events?ticket=<ticket>`; good for one stream.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub ticket: String,
    /// Milliseconds the ticket stays valid.
    pub expires_in_ms: u64,
}

#[utoipa::path(post, path = "/v1/events/ticket", operation_id = "eventsTicket", tag = "events",
    responses(
        (status = 200, description = "A single-use ticket that GET /v1/events accepts as ?ticket= instead of the bearer token, for 60 s", body = TicketBody),
        (status = 503, description = "No random source", body = ErrorBody),
    ))]
pub async fn issue(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ticket = state
        .tickets
        .issue()
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TicketBody {
            ticket,
            expires_in_ms: TICKET_TTL.as_millis() as u64,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_good_once() {
        let tickets = Tickets::default();
        let t = tickets.issue().unwrap();
        assert_eq!(t.len(), 2 * TICKET_BYTES);
        assert!(tickets.redeem(&t));
        assert!(!tickets.redeem(&t));
        assert!(!tickets.redeem("not-issued"));
        assert_ne!(tickets.issue().unwrap(), tickets.issue().unwrap());
    }

    #[test]
    fn outstanding_tickets_are_capped_dropping_the_oldest() {
        let tickets = Tickets::default();
        let first = tickets.issue().unwrap();
        for _ in 0..MAX_OUTSTANDING {
            tickets.issue().unwrap();
        }
        assert_eq!(tickets.lock().len(), MAX_OUTSTANDING);
        assert!(!tickets.redeem(&first));
    }

    #[test]
    fn an_expired_ticket_is_refused() {
        let tickets = Tickets::default();
        let t = tickets.issue().unwrap();
        *tickets.lock().get_mut(&t).unwrap() = Instant::now() - Duration::from_millis(1);
        assert!(!tickets.redeem(&t));
    }
}
