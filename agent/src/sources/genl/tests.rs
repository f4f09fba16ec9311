use super::*;
use netlink_packet_generic::ctrl::GenlCtrl;
use proptest::prelude::*;

/// NLMSGERR_ATTR_MSG "no dev", padded to 16 bytes.
const TLV: [u8; 16] = [
    0x0d, 0x00, 0x01, 0x00, b'n', b'o', b' ', b'd', b'e', b'v', 0, 0, 0, 0, 0, 0,
];

#[test]
fn extack_message_after_capped_and_full_echo() {
    // Capped: the 16-byte header only (its length field still says 36).
    let mut capped = vec![36, 0, 0, 0, 0x1c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    capped.extend(TLV);
    assert_eq!(
        extack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &capped).as_deref(),
        Some("no dev")
    );
    // Not capped: the whole 20-byte request, then the TLVs.
    let mut full = vec![
        20, 0, 0, 0, 0x1c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 38, 1, 0, 0,
    ];
    full.extend(TLV);
    assert_eq!(
        extack_message(NLM_F_ACK_TLVS, &full).as_deref(),
        Some("no dev")
    );
    // No TLV flag, no message; garbage never panics.
    assert_eq!(extack_message(0, &full), None);
    assert_eq!(extack_message(NLM_F_ACK_TLVS, &[1, 2, 3]), None);
}

/// nlmsghdr of `len` bytes: type, flags, sequence 7, port 0.
fn nlmsghdr(len: u32, kind: u16, flags: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(len.to_ne_bytes());
    b.extend(kind.to_ne_bytes());
    b.extend(flags.to_ne_bytes());
    b.extend(7u32.to_ne_bytes());
    b.extend(0u32.to_ne_bytes());
    b
}

#[test]
fn errors_carry_their_extack_message() {
    // NLMSG_ERROR (2), capped, -ENODEV, the echoed header, then the TLV.
    let mut err = nlmsghdr(16 + 4 + 16 + 16, 2, NLM_F_ACK_TLVS | NLM_F_CAPPED);
    err.extend((-libc::ENODEV).to_ne_bytes());
    err.extend(nlmsghdr(36, 0x1c, 1));
    err.extend(TLV);
    match decode_datagram::<GenlCtrl>(&err, 7) {
        Err(e @ GenlError::Errno { .. }) => {
            assert_eq!(e.errno(), Some(libc::ENODEV));
            assert_eq!(e.to_string(), "No such device (os error 19) (no dev)");
        }
        other => panic!("{other:?}"),
    }
    // A failed dump: NLMSG_DONE (3) with a negative code, the TLVs right after it.
    let mut done = nlmsghdr(16 + 4 + 16, 3, 2 | NLM_F_ACK_TLVS);
    done.extend((-libc::EOPNOTSUPP).to_ne_bytes());
    done.extend(TLV);
    match decode_datagram::<GenlCtrl>(&done, 7) {
        Err(GenlError::Errno { errno, message }) => {
            assert_eq!(errno, libc::EOPNOTSUPP);
            assert_eq!(message.as_deref(), Some("no dev"));
        }
        other => panic!("{other:?}"),
    }
    // An ACK ends a plain request; another sequence's error is not ours.
    let mut ack = nlmsghdr(16 + 4 + 16, 2, NLM_F_CAPPED);
    ack.extend(0i32.to_ne_bytes());
    ack.extend(nlmsghdr(20, 0x1c, 1));
    let batch = decode_datagram::<GenlCtrl>(&ack, 7).unwrap();
    assert!(batch.finished && batch.messages.is_empty());
    assert!(!decode_datagram::<GenlCtrl>(&err, 8).unwrap().finished);
}

#[test]
fn messages_of_other_sequences_are_skipped_undecoded() {
    // Garbage behind a valid header of sequence 7 is skipped when asking for 9.
    let mut junk = nlmsghdr(24, 0x1c, 0);
    junk.extend([0xff; 8]);
    let batch = decode_datagram::<GenlCtrl>(&junk, 9).unwrap();
    assert_eq!(
        batch,
        Batch {
            messages: vec![],
            finished: false
        }
    );
    assert!(matches!(
        decode_datagram::<GenlCtrl>(&junk[..20], 7),
        Err(GenlError::Decode(_))
    ));
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), seq in 0u32..9) {
        let _ = decode_datagram::<GenlCtrl>(&bytes, seq);
    }

    #[test]
    fn extack_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), flags in any::<u16>()) {
        let _ = extack_message(flags, &bytes);
    }
}

/// Live, unprivileged: nlctrl itself resolves, and a family that does not exist is
/// None (ENOENT), not an error.
#[test]
fn live_resolve_nlctrl_and_a_missing_family() {
    let mut sock = GenlSocket::open().unwrap();
    let ctrl = sock
        .resolve("nlctrl")
        .unwrap()
        .expect("nlctrl is always registered");
    assert_eq!(ctrl.id, GENL_ID_CTRL);
    assert!(ctrl.has_op(3), "CTRL_CMD_GETFAMILY is op 3: {:?}", ctrl.ops);
    // Names are < GENL_NAMSIZ (16) bytes; a longer one is EINVAL, not ENOENT.
    assert_eq!(sock.resolve("nosuchfam0").unwrap(), None);
    assert_eq!(resolve("nosuchfam0").unwrap(), None);
    assert_eq!(
        sock.resolve("no-such-family-xyz").unwrap_err().errno(),
        Some(libc::EINVAL)
    );
}

/// A CTRL_CMD_NEWFAMILY reply (seq 1): FAMILY_ID 0x15, then CTRL_ATTR_POLICY (or
/// `kind`) holding `policy` as its payload.
fn family_reply_with_policy(policy: &[u8]) -> Vec<u8> {
    family_reply_with(8, policy)
}

fn family_reply_with(kind: u16, policy: &[u8]) -> Vec<u8> {
    let mut genl = vec![1, 2, 0, 0]; // CTRL_CMD_NEWFAMILY, version 2
    genl.extend([6, 0, 1, 0, 0x15, 0, 0, 0]); // CTRL_ATTR_FAMILY_ID, padded
    let len = 4 + policy.len() as u16;
    genl.extend(len.to_ne_bytes());
    genl.extend((kind | 0x8000).to_ne_bytes()); // | NLA_F_NESTED
    genl.extend(policy);
    let mut msg = ((16 + genl.len()) as u32).to_ne_bytes().to_vec();
    msg.extend([0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]); // GENL_ID_CTRL, flags 0, seq 1
    msg.extend(genl);
    msg
}

/// The genl_ctrl fuzz target's finding: a policy attribute whose nested attribute is
/// shorter than its own header made netlink-packet-generic 0.5 slice out of bounds
/// (panic). Through CheckedCtrl it is a decode error; a well-formed one still decodes.
#[test]
fn short_nested_policy_attribute_is_a_decode_error_not_a_panic() {
    // Nested attribute of length 2 (< the 4-byte header).
    let bad = family_reply_with_policy(&[2, 0, 1, 0]);
    assert!(matches!(
        decode_datagram::<CheckedCtrl>(&bad, 1),
        Err(GenlError::Decode(_))
    ));
    // CTRL_ATTR_OP_POLICY (9) with the same short nested attribute: the fuzz target's
    // second finding.
    assert!(matches!(
        decode_datagram::<CheckedCtrl>(&family_reply_with(9, &[2, 0, 1, 0]), 1),
        Err(GenlError::Decode(_))
    ));
    // Policy 1 > attribute 1 > NL_POLICY_TYPE_ATTR_TYPE (1) = NLA_U32 (3).
    let good = family_reply_with_policy(&[16, 0, 1, 0x80, 12, 0, 1, 0x80, 8, 0, 1, 0, 3, 0, 0, 0]);
    let batch = decode_datagram::<CheckedCtrl>(&good, 1).unwrap();
    let replies: Vec<GenlCtrl> = batch.messages.into_iter().map(|m| m.0).collect();
    assert_eq!(family_from_replies(&replies).unwrap().id, 0x15);
}

#[test]
fn the_fuzz_findings_themselves_decode_without_panicking() {
    for crash in [
        &include_bytes!("../../../fuzz/seeds/genl_ctrl/crash-82ce923c-short-policy.bin")[..],
        &include_bytes!("../../../fuzz/seeds/genl_ctrl/crash-939a7055-short-op-policy.bin")[..],
    ] {
        let _ = decode_datagram::<CheckedCtrl>(crash, 1);
    }
}
