//! The Bloom guard's pure parts: sizing, refused parameters, and the hash and bit positions,
//! pinned because several processes (and future versions) must agree on them. The behaviour on
//! each store is in the conformance suite (`conformance/bloom.rs`).

use super::{SECOND_SEED, bit_positions, bloom_key, bloom_size, xxh64};

/// Outputs of the reference xxHash implementation (the `xxhash` Python package,
/// `xxh64_intdigest(input, seed)`): empty input, the tail-only paths (1, 3, 7 bytes, UTF-8) and
/// the 32-byte stripe path.
#[test]
fn xxh64_matches_the_reference() {
    let long = b"The quick brown fox jumps over the lazy dog, 0123456789";
    let cases: [(&[u8], u64, u64); 11] = [
        (b"", 0, 0xef46_db37_51d8_e999),
        (b"", SECOND_SEED, 0xc434_9fc9_3c01_0000),
        (b"a", 0, 0xd24e_c4f1_a98c_6e5b),
        (b"a", SECOND_SEED, 0x9a7c_6d2e_a455_68c9),
        (b"abc", 0, 0x44bc_2cf5_ad77_0999),
        (b"abc", SECOND_SEED, 0x2ed0_f59d_6b43_ac8b),
        (b"user:42", 0, 0xdc1f_ea7d_a8d2_d1c2),
        (b"user:42", SECOND_SEED, 0xf030_494b_6960_fa6f),
        ("ключ 🦀".as_bytes(), 0, 0xa4dd_fffc_0be6_0648),
        (long, 0, 0xbff9_f5e0_2da6_c67c),
        (long, SECOND_SEED, 0xad95_f9c1_d606_ae3d),
    ];
    for (input, seed, expected) in cases {
        assert_eq!(xxh64(input, seed), expected, "xxh64({:?}, {seed:#x})", String::from_utf8_lossy(input));
    }
}

/// The bit positions of one item are part of the stored format: changing them would make every
/// filter already in Redis answer "never added" for items it holds.
#[test]
fn bit_positions_are_pinned() {
    let positions: Vec<u64> = bit_positions(b"user:42", 95_851, 7).collect();
    assert_eq!(positions, [93_699, 71_522, 49_345, 27_168, 4_991, 78_665, 56_488]);
    assert_eq!(bit_positions(b"anything", 1, 3).collect::<Vec<_>>(), [0, 0, 0], "a one-bit filter");
}

#[test]
fn sizing_follows_the_formulas() {
    let cases = [
        (10_000, 0.01, 95_851, 7),
        (1, 0.5, 2, 1),
        (100, 0.1, 480, 3),
        (1_000_000, 0.001, 14_377_588, 10),
        (400_000_000, 0.01, 3_834_023_351, 7),
    ];
    for (items, rate, bits, hashes) in cases {
        assert_eq!(bloom_size(items, rate), Ok((bits, hashes)), "{items} items at {rate}");
    }
}

#[test]
fn bad_parameters_are_refused() {
    for (items, rate) in [(0, 0.01), (10, 0.0), (10, 1.0), (10, -0.5), (10, 1.5), (10, f64::NAN), (10, f64::INFINITY)] {
        assert!(bloom_size(items, rate).is_err(), "{items} items at {rate}");
    }
    for (items, rate) in [(400_000_000, 0.0001), (u64::MAX, 0.01)] {
        let error = bloom_size(items, rate).expect_err("larger than 512 MiB");
        assert!(error.contains("512 MiB"), "{items} items at {rate}: {error}");
    }
}

#[test]
fn the_key_is_one_hash_tag() {
    assert_eq!(bloom_key("users"), "bloom:{users}");
}
