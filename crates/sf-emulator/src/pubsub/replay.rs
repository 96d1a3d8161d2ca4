//! Replay ids: opaque bytes to clients, here a position in the org's event stream as 8
//! big-endian bytes, strictly increasing per org.

/// The replay id of position `seq`.
pub fn encode(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

/// The position a replay id names; `None` for bytes no replay id of this bus has.
pub fn decode(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        assert_eq!(decode(&encode(42)), Some(42));
        assert!(encode(256) > encode(255));
        assert_eq!(decode(&[1, 2, 3]), None);
        assert_eq!(decode(&[]), None);
    }
}
