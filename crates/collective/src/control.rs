//! Frames and failures that are not data: link failures turned into errors that name the
//! peer, abort reports (encoded, decoded, read), header checks against the plan, and the check
//! of an idle link for a close or a report.

use crate::error::{CommError, Result};
use crate::op_ctx::OpCtx;
use crate::transport::Link;
use crate::transport::poll;
use crate::wire::frame::{HEADER_LEN, Header, Kind};
use std::io;
use std::time::{Duration, Instant};

/// Describes an I/O failure on `link` during `op`.
pub fn link_error(op: &str, link: &Link, e: &io::Error) -> CommError {
    let what = match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::WriteZero => "closed the connection".into(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            format!("reset the connection ({e})")
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "stopped answering".into(),
        _ => format!("link failed: {e}"),
    };
    CommError::Peer {
        op: op.to_string(),
        rank: link.peer_rank,
        addr: link.peer_addr.clone(),
        what,
    }
}

/// The error of an operation that needs a peer which closed its communicator (a [`Kind::Bye`]).
pub fn left(op: &str, link: &Link) -> CommError {
    CommError::Peer {
        op: op.to_string(),
        rank: link.peer_rank,
        addr: link.peer_addr.clone(),
        what: "left the job (closed its communicator) before this operation".into(),
    }
}

/// For a link that should be quiet during `op` (no bytes of this operation travel on it): fails
/// if the peer closed it or sent an abort report; bytes of a later operation are left queued.
pub fn check_idle_link(op: &str, link: &mut Link) -> Result<()> {
    let mut hb = [0u8; HEADER_LEN];
    match link.peek(&mut hb) {
        Ok(0) => Err(link_error(op, link, &io::ErrorKind::UnexpectedEof.into())),
        Ok(n) if n == HEADER_LEN => match Header::decode(&hb, 0) {
            // The peer closed its communicator after its last operation: it needs nothing of
            // this one, and a later operation that needs it reports that it left.
            Ok(h) if h.kind == Kind::Bye => Ok(()),
            Ok(h) if h.kind == Kind::Abort => {
                let deadline = Instant::now() + Duration::from_secs(1);
                if let Err(e) = poll::read_exact(link, &mut hb, deadline) {
                    return Err(link_error(op, link, &e));
                }
                Err(read_abort(op, link, &h))
            }
            _ => Ok(()),
        },
        Ok(_) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted =>
        {
            Ok(())
        }
        Err(e) => Err(link_error(op, link, &e)),
    }
}

/// Reads the payload of an abort frame whose header arrived on `link` and turns it into the
/// error it reports.
pub fn read_abort(op: &str, link: &mut Link, header: &Header) -> CommError {
    let mut payload = vec![0u8; header.len as usize];
    let deadline = Instant::now() + Duration::from_secs(1);
    if let Err(e) = poll::read_exact(link, &mut payload, deadline) {
        return link_error(op, link, &e);
    }
    decode_abort(op, link.peer_rank, &payload)
}

/// Payload of an abort frame: failed rank (`u32::MAX` if unknown) and the cause as text.
pub fn encode_abort(err: &CommError) -> Vec<u8> {
    let rank = err.failed_rank().map_or(u32::MAX, |r| r as u32);
    let mut p = rank.to_le_bytes().to_vec();
    let cause = err.cause();
    let max = crate::wire::frame::MAX_ABORT_PAYLOAD as usize - 4;
    p.extend_from_slice(&cause.as_bytes()[..cause.len().min(max)]);
    p
}

fn decode_abort(op: &str, from: usize, payload: &[u8]) -> CommError {
    let (failed_rank, cause) = if payload.len() >= 4 {
        let r = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
        let cause = String::from_utf8_lossy(&payload[4..]).into_owned();
        ((r != u32::MAX).then_some(r as usize), cause)
    } else {
        (None, "a rank failed".to_string())
    };
    CommError::Remote {
        op: op.to_string(),
        cause,
        failed_rank,
        reported_by: from,
    }
}

pub(crate) fn protocol(op: &str, link: &Link, detail: String) -> CommError {
    CommError::Protocol {
        op: op.to_string(),
        rank: link.peer_rank,
        addr: link.peer_addr.clone(),
        detail,
    }
}

/// Checks a data frame header against what the plan expects next (or reads an abort report).
pub fn check_header(
    ctx: &OpCtx<'_>,
    link: &mut Link,
    hb: &[u8; HEADER_LEN],
    seq: usize,
    len: usize,
) -> Result<()> {
    let op = &ctx.name;
    let h = Header::decode(hb, ctx.max_frame).map_err(|e| protocol(op, link, e.to_string()))?;
    if h.kind == Kind::Abort {
        return Err(read_abort(op, link, &h));
    }
    if h.kind == Kind::Bye {
        return Err(left(op, link));
    }
    if h.kind != ctx.kind || h.op_id != ctx.op_id {
        return Err(protocol(
            op,
            link,
            format!(
                "{} #{} while this rank runs {} (ranks called collectives in different orders)",
                h.kind.name(),
                h.op_id,
                op
            ),
        ));
    }
    if h.seq as usize != seq || h.len as usize != len {
        return Err(protocol(
            op,
            link,
            format!(
                "frame {} of {} bytes, expected frame {seq} of {len} bytes (buffer lengths differ between ranks?)",
                h.seq, h.len
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bye() -> [u8; HEADER_LEN] {
        Header {
            kind: Kind::Bye,
            op_id: 3,
            seq: 0,
            len: 0,
        }
        .encode()
    }

    /// A close after a bye is a clean leave; a bare close is a failure; an operation that
    /// needs the peer that left says so.
    #[test]
    fn an_idle_link_tells_a_clean_leave_from_a_close() -> std::io::Result<()> {
        let (mut ours, mut theirs) = Link::pair(0, 1)?;
        theirs.write_vectored(&[io::IoSlice::new(&bye())])?;
        drop(theirs);
        for _ in 0..2 {
            assert!(check_idle_link("barrier #3", &mut ours).is_ok());
        }
        let (mut ours, theirs) = Link::pair(0, 1)?;
        drop(theirs);
        let e = check_idle_link("barrier #3", &mut ours).map_err(|e| e.to_string());
        assert!(
            e.as_ref()
                .is_err_and(|e| e.contains("closed the connection")),
            "{e:?}"
        );

        let (mut ours, _theirs) = Link::pair(0, 1)?;
        let aborted = std::sync::atomic::AtomicBool::new(false);
        let ctx = OpCtx {
            kind: Kind::AllReduce,
            op_id: 3,
            name: "all_reduce #3".into(),
            timeout: Duration::from_secs(1),
            spin: Duration::ZERO,
            max_frame: 1 << 20,
            aborted: &aborted,
        };
        let e = check_header(&ctx, &mut ours, &bye(), 0, 64).map_err(|e| e.to_string());
        assert!(
            e.as_ref()
                .is_err_and(|e| e.contains("rank 1") && e.contains("left the job")),
            "{e:?}"
        );
        Ok(())
    }
}
