//! Property tests of the frame header parser: any 24 bytes give a header or an error (never a
//! panic), valid headers round-trip, and lengths over the limit are refused.

use proptest::prelude::*;
use ringdet_collective::wire::frame::{
    FrameError, HEADER_LEN, Header, Kind, MAGIC, MAX_ABORT_PAYLOAD,
};
use ringdet_collective::wire::handshake::{HELLO_LEN, Hello};

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::AllReduce),
        Just(Kind::Broadcast),
        Just(Kind::AllGather),
        Just(Kind::ReduceScatter),
        Just(Kind::Barrier),
        Just(Kind::Lengths),
        Just(Kind::Local),
        Just(Kind::Bye),
        Just(Kind::Abort),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::array::uniform24(any::<u8>()), max in any::<u32>()) {
        if let Ok(h) = Header::decode(&bytes, max) {
            let limit = if h.kind == Kind::Abort { MAX_ABORT_PAYLOAD } else { max };
            prop_assert!(h.len <= limit);
            prop_assert_eq!(h.encode(), bytes);
        }
    }

    #[test]
    fn valid_headers_round_trip(k in kind(), op_id in any::<u64>(), seq in any::<u32>(), len in 0u32..4096) {
        let h = Header { kind: k, op_id, seq, len };
        prop_assert_eq!(Header::decode(&h.encode(), 4096), Ok(h));
    }

    #[test]
    fn oversized_frames_are_refused(op_id in any::<u64>(), max in 0u32..1 << 20, extra in 1u32..1 << 20) {
        let h = Header { kind: Kind::AllReduce, op_id, seq: 0, len: max + extra };
        let refused = matches!(Header::decode(&h.encode(), max), Err(FrameError::TooLong { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn corrupted_magic_is_refused(k in kind(), flip in 0usize..32) {
        let mut b = Header { kind: k, op_id: 1, seq: 2, len: 3 }.encode();
        b[flip / 8] ^= 1 << (flip % 8);
        prop_assert!(matches!(Header::decode(&b, 4096), Err(FrameError::Magic(_))));
    }

    #[test]
    fn arbitrary_hellos_never_panic(bytes in proptest::collection::vec(any::<u8>(), HELLO_LEN)) {
        let mut b = [0u8; HELLO_LEN];
        b.copy_from_slice(&bytes);
        if let Ok(h) = Hello::decode(&b) {
            prop_assert_eq!(h.encode(), b);
        }
    }
}

#[test]
fn header_layout_is_stable() {
    let b = Header {
        kind: Kind::Broadcast,
        op_id: 0x0102,
        seq: 7,
        len: 9,
    }
    .encode();
    assert_eq!(b.len(), HEADER_LEN);
    assert_eq!(u32::from_le_bytes([b[0], b[1], b[2], b[3]]), MAGIC);
    assert_eq!(b[5], 2);
}
