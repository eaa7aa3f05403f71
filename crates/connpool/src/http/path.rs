//! Is the path to the server alive? What the kernel's TCP saw of a request.
//!
//! A middlebox (a load balancer, a NAT, a stateful firewall) that forgot
//! an idle flow drops its packets from then on without a word: no FIN, no
//! RST, and a peek at checkout sees nothing wrong. A request written into
//! such a connection gets no answer, and the kernel retransmits it for
//! about 15 minutes. The kernel knows much sooner, though, and
//! `TCP_INFO` says it:
//!
//! * `tcpi_last_ack_recv` dates the last ACK from the peer. If it is older
//!   than the request's write, no byte of the request was acknowledged: the
//!   server's TCP never received it, so its application cannot have read
//!   it.
//! * `tcpi_retransmits` counts retransmission timeouts of the oldest
//!   unacknowledged segment. A live peer answers a retransmission at once
//!   with a (duplicate) ACK if it already holds the data, or ACKs the new
//!   data within its delayed-ACK time (at most 200 ms on Linux) if it does
//!   not. Two retransmissions without any ACK mean the first one went
//!   unanswered for a whole doubled retransmission timeout, which is at
//!   least 400 ms and longer than a round trip: no live peer is that
//!   silent.
//!
//! So a request that drew no ACK and two unanswered retransmissions is on
//! a dead path ([`Verdict::Dead`]). A request that drew an ACK was
//! delivered, and the check stops: a slow server that ACKs and answers
//! late is never declared dead. The times compared are in milliseconds of
//! the kernel's jiffies and of the coarse clock, so a margin separates
//! "before" from "after"; within the margin the evidence is `Unknown`.
//!
//! The same dating of the last ACK says whether a request that failed on
//! a reset or a broken pipe was acknowledged: an RST is processed before
//! its ACK field, so it never counts as an acknowledgement itself.

use std::os::fd::AsFd;
use std::time::Duration;

use crate::error::{Acknowledged, Delivery};
use crate::sys::{self, TcpInfo};

/// Timestamps on both sides have a few milliseconds of resolution (the
/// kernel's jiffies, the coarse clock): an ACK this close to the write
/// cannot be placed before or after it.
const CLOCK_MARGIN: Duration = Duration::from_millis(20);
/// Retransmission timeouts without any ACK that make a path dead.
const DEAD_AFTER_RETRANSMITS: u8 = 2;
/// The shortest wait between two checks of one request.
const MIN_RECHECK: Duration = Duration::from_millis(100);

/// What a check of a waiting request found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No ACK since the write and the retransmissions went unanswered.
    Dead(Delivery),
    /// The request was acknowledged: the server has it; stop checking.
    Delivered,
    /// Not enough evidence yet: check again after this long.
    Undecided(Duration),
}

/// Checks the path of a request written `written_for` ago on `socket`.
/// When `TCP_INFO` cannot be read there is nothing to judge by.
pub(crate) fn check(socket: &impl AsFd, written_for: Duration) -> Verdict {
    match sys::tcp_info(socket) {
        Ok(info) => judge(&info, written_for),
        Err(_) => Verdict::Delivered,
    }
}

/// The delivery evidence for a request written `written_for` ago on
/// `socket`, which has just failed (reset, broken pipe).
pub(crate) fn delivery(socket: &impl AsFd, written_for: Duration) -> Delivery {
    match sys::tcp_info(socket) {
        Ok(info) => evidence(&info, written_for),
        Err(_) => Delivery {
            acknowledged: Acknowledged::Unknown,
            retransmits: 0,
        },
    }
}

fn evidence(info: &TcpInfo, written_for: Duration) -> Delivery {
    Delivery {
        acknowledged: acknowledged(info, written_for),
        retransmits: u32::from(info.retransmits),
    }
}

fn acknowledged(info: &TcpInfo, written_for: Duration) -> Acknowledged {
    if info.since_last_ack_recv + CLOCK_MARGIN < written_for {
        Acknowledged::Yes
    } else if info.since_last_ack_recv > written_for + CLOCK_MARGIN {
        Acknowledged::No
    } else {
        Acknowledged::Unknown
    }
}

fn judge(info: &TcpInfo, written_for: Duration) -> Verdict {
    let delivery = evidence(info, written_for);
    match delivery.acknowledged {
        Acknowledged::Yes => return Verdict::Delivered,
        Acknowledged::No if info.unacked > 0 && info.retransmits >= DEAD_AFTER_RETRANSMITS => {
            return Verdict::Dead(delivery);
        }
        _ => {}
    }
    // The next retransmission comes one (backed-off) timeout later.
    Verdict::Undecided(info.rto.max(MIN_RECHECK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(last_ack_ms: u64, unacked: u32, retransmits: u8) -> TcpInfo {
        TcpInfo {
            since_last_ack_recv: Duration::from_millis(last_ack_ms),
            unacked,
            retransmits,
            rto: Duration::from_millis(400),
        }
    }

    const WRITTEN: Duration = Duration::from_millis(900);

    #[test]
    fn no_ack_and_two_unanswered_retransmissions_is_a_dead_path() {
        let dead = judge(&info(3_900, 1, 2), WRITTEN);
        assert_eq!(
            dead,
            Verdict::Dead(Delivery {
                acknowledged: Acknowledged::No,
                retransmits: 2
            })
        );
    }

    #[test]
    fn one_retransmission_is_not_enough() {
        assert_eq!(
            judge(&info(3_900, 1, 1), WRITTEN),
            Verdict::Undecided(Duration::from_millis(400))
        );
    }

    #[test]
    fn an_ack_after_the_write_means_delivered_however_slow_the_answer() {
        assert_eq!(judge(&info(100, 0, 0), WRITTEN), Verdict::Delivered);
        // Retransmissions after an ACK (a later segment lost) are not a
        // dead path either: the request reached the server.
        assert_eq!(judge(&info(100, 1, 3), WRITTEN), Verdict::Delivered);
    }

    #[test]
    fn an_ack_too_close_to_the_write_proves_nothing() {
        assert_eq!(
            acknowledged(&info(905, 1, 2), WRITTEN),
            Acknowledged::Unknown
        );
        assert!(matches!(
            judge(&info(905, 1, 2), WRITTEN),
            Verdict::Undecided(_)
        ));
    }

    #[test]
    fn rechecks_are_never_closer_than_the_floor() {
        let mut fast = info(3_900, 1, 0);
        fast.rto = Duration::from_millis(5);
        assert_eq!(judge(&fast, WRITTEN), Verdict::Undecided(MIN_RECHECK));
    }
}
