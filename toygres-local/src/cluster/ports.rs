//! Choosing TCP ports for local servers.

use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;

/// A port on 127.0.0.1 that nothing listens on right now (the OS picks it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// Whether something could bind `port` on 127.0.0.1 right now.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The first port of `range` that is not in `taken` and is free now.
pub fn first_free(range: RangeInclusive<u16>, taken: &[u16]) -> Option<u16> {
    first_free_from(range, 0, taken)
}

/// Like [`first_free`], but probing from the `offset`-th port of `range` on (wrapping around), so
/// that several users of one range start at different places.
pub fn first_free_from(range: RangeInclusive<u16>, offset: usize, taken: &[u16]) -> Option<u16> {
    let ports: Vec<u16> = range.collect();
    let start = offset % ports.len().max(1);
    ports[start..].iter().chain(&ports[..start]).copied().find(|p| !taken.contains(p) && is_free(*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_taken_and_bound_ports() {
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let bound = held.local_addr().unwrap().port();
        let other = free_port().unwrap();
        assert_ne!(first_free(bound..=bound, &[]), Some(bound));
        assert_eq!(first_free(other..=other, &[other]), None);
        if is_free(40007) {
            assert_eq!(first_free_from(40000..=40009, 7, &[]), Some(40007), "starts at the offset");
        }
        let wrapped = first_free_from(40000..=40009, 17, &[40007, 40008, 40009]);
        assert!(wrapped.is_none_or(|p| p < 40007), "wraps around to the start: {wrapped:?}");
    }
}
