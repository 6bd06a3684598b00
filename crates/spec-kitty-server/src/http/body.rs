//! Reading request bodies within a cap and within the server's in-flight
//! byte budget, answering every refusal in JSON.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::api_error::ApiError;

/// How much more than its limit a refused body is still read (and thrown
/// away) so that the client, still sending, reads our 413 instead of a
/// reset connection.
const DRAIN_ALLOWANCE: usize = 8 * 1024 * 1024;

/// Whether the client waits for `100 Continue` before sending the body.
pub fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads and drops a body that will not be used (no valid token, no
/// budget), up to `max` bytes, holding none of it in memory: the client,
/// still sending, then reads our answer instead of a reset connection.
/// Nothing is read from a client waiting for `100 Continue` or declaring
/// more than `max`.
pub async fn discard(headers: &HeaderMap, mut body: Body, max: usize) {
    if expects_continue(headers) || declared_length(headers).is_some_and(|n| n > max) {
        return;
    }
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > max {
                return;
            }
        }
    }
}

/// The global budget of request-body bytes held in memory at once: a
/// semaphore with one permit per byte. Bodies that do not fit are answered
/// 503 with `Retry-After`, so memory stays bounded however many clients
/// send at once.
#[derive(Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl BodyBudget {
    pub fn new(total: usize) -> BodyBudget {
        let total = total.min(Semaphore::MAX_PERMITS);
        BodyBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    fn over(&self) -> ApiError {
        ApiError::ServiceUnavailable {
            retry_after: 1,
            details: format!(
                "the server holds its limit of {} bytes of request bodies; retry shortly",
                self.total
            ),
        }
    }

    /// Takes `n` more bytes of the budget into `held`, or answers 503.
    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, n: usize) -> Result<(), ApiError> {
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| self.over())?;
        let permit = Arc::clone(&self.bytes)
            .try_acquire_many_owned(n)
            .map_err(|_| self.over())?;
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A share of the body budget, given back when dropped.
pub struct BudgetShare {
    permit: Option<OwnedSemaphorePermit>,
}

impl BudgetShare {
    /// Takes `n` more bytes of `budget` into this share (memory made from
    /// the body, such as its inflated JSON), or answers 503.
    pub fn grow(&mut self, budget: &BodyBudget, n: usize) -> Result<(), ApiError> {
        budget.take(&mut self.permit, n)
    }
}

/// A body read into memory and the share of the budget it holds: keep the
/// share until everything made from the body is gone.
pub struct Budgeted {
    pub bytes: Vec<u8>,
    pub share: BudgetShare,
}

/// Reads the body, refusing it once it passes `limit` bytes. A refused
/// body is drained (up to [`DRAIN_ALLOWANCE`] more) unless the client is
/// waiting for `100 Continue`, in which case it never sends it.
pub async fn read_capped(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    Ok(read(headers, body, limit, None).await?.bytes)
}

/// [`read_capped`], counting the body against `budget`: its declared
/// length up front, else each piece as it arrives.
pub async fn read_budgeted(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    budget: &BodyBudget,
) -> Result<Budgeted, ApiError> {
    read(headers, body, limit, Some(budget)).await
}

async fn read(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
    budget: Option<&BodyBudget>,
) -> Result<Budgeted, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("the request body exceeds {limit} bytes"));
    let declared = declared_length(headers);
    let waiting = expects_continue(headers);
    if declared.is_some_and(|len| len > limit) && waiting {
        return Err(too_large());
    }
    let mut held = None;
    if let (Some(budget), Some(len)) = (budget, declared.filter(|len| *len <= limit))
        && let Err(e) = budget.take(&mut held, len)
    {
        discard(headers, body, limit).await;
        return Err(e);
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    let mut over = declared.is_some_and(|len| len > limit);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::body_unreadable(&e))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > limit {
                over = true;
                bytes = Vec::new();
                held = None;
            }
            if over {
                if seen > limit.saturating_add(DRAIN_ALLOWANCE) {
                    break;
                }
                continue;
            }
            if let (Some(budget), None) = (budget, declared) {
                budget.take(&mut held, data.len())?;
            }
            bytes.extend_from_slice(&data);
        }
    }
    if over {
        return Err(too_large());
    }
    Ok(Budgeted {
        bytes,
        share: BudgetShare { permit: held },
    })
}
