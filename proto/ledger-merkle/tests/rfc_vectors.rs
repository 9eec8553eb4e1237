//! Known-answer tests: the Certificate Transparency (RFC 6962) reference vectors.
//!
//! Leaves, roots and proofs are those of the CT reference implementation's merkle tests
//! (also used by trillian / transparency-dev `merkle` verifier tests).

use ledger_merkle::{
    empty_root, from_hex, leaf_hash, node_hash, to_hex, verify_consistency, verify_inclusion, Hash,
    MerkleError, MerkleTree, RootBuilder,
};

const LEAVES: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

/// Roots for tree sizes 1..=8.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn h(s: &str) -> Hash {
    from_hex(s).expect("test vector is valid hex")
}

fn hs(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

fn tree() -> MerkleTree {
    LEAVES.iter().map(|d| leaf_hash(d)).collect()
}

#[test]
fn empty_tree_root_is_sha256_of_empty_string() {
    assert_eq!(to_hex(&empty_root()), EMPTY);
    assert_eq!(MerkleTree::new().root(), empty_root());
    assert_eq!(MerkleTree::new().root_at(0), Ok(empty_root()));
    assert_eq!(RootBuilder::new().root(), empty_root());
}

#[test]
fn roots_for_sizes_1_to_8() {
    let t = tree();
    let mut b = RootBuilder::new();
    let mut incremental = MerkleTree::new();
    for (i, expected) in ROOTS.iter().enumerate() {
        let size = i as u64 + 1;
        assert_eq!(
            to_hex(&t.root_at(size).expect("in range")),
            *expected,
            "size {size}"
        );
        b.push(leaf_hash(LEAVES[i]));
        assert_eq!(to_hex(&b.root()), *expected, "builder size {size}");
        incremental.push_leaf_hash(leaf_hash(LEAVES[i]));
        assert_eq!(
            to_hex(&incremental.root()),
            *expected,
            "incremental size {size}"
        );
    }
    assert_eq!(to_hex(&t.root()), ROOTS[7]);
}

#[test]
fn known_intermediate_hashes() {
    let l: Vec<Hash> = LEAVES.iter().map(|d| leaf_hash(d)).collect();
    assert_eq!(to_hex(&l[0]), ROOTS[0]);
    assert_eq!(
        to_hex(&l[1]),
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
    );
    assert_eq!(
        to_hex(&node_hash(&l[2], &l[3])),
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
    );
    assert_eq!(
        to_hex(&l[4]),
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
    );
}

#[test]
fn inclusion_proof_vectors() {
    let t = tree();
    // (index, size, proof)
    let cases: [(u64, u64, Vec<Hash>); 5] = [
        (0, 1, vec![]),
        (
            0,
            8,
            hs(&[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]),
        ),
        (
            5,
            8,
            hs(&[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
        (
            2,
            3,
            hs(&["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        ),
        (
            1,
            5,
            hs(&[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]),
        ),
    ];
    for (index, size, expected) in cases {
        let proof = t.inclusion_proof(index, size).expect("in range");
        assert_eq!(proof, expected, "index {index} size {size}");
        let root = h(ROOTS[size as usize - 1]);
        let leaf = leaf_hash(LEAVES[index as usize]);
        assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));
        // Wrong leaf, wrong root.
        assert!(verify_inclusion(&leaf_hash(b"WrongLeaf"), index, size, &proof, &root).is_err());
        assert!(verify_inclusion(&leaf, index, size, &proof, &empty_root()).is_err());
        // Wrong tree height.
        assert!(verify_inclusion(&leaf, index, size * 2, &proof, &root).is_err());
        if index < size / 2 {
            assert!(verify_inclusion(&leaf, index, size / 2, &proof, &root).is_err());
        }
        // Trailing / leading garbage.
        let mut longer = proof.clone();
        longer.push(root);
        assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
        let mut front = vec![root];
        front.extend_from_slice(&proof);
        assert!(verify_inclusion(&leaf, index, size, &front, &root).is_err());
        if !proof.is_empty() {
            assert!(
                verify_inclusion(&leaf, index, size, &proof[..proof.len() - 1], &root).is_err()
            );
        }
    }
}

#[test]
fn consistency_proof_vectors() {
    let t = tree();
    let cases: [(u64, u64, Vec<Hash>); 5] = [
        (1, 1, vec![]),
        (
            1,
            8,
            hs(&[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]),
        ),
        (
            6,
            8,
            hs(&[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
        (
            2,
            5,
            hs(&[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]),
        ),
        (
            3,
            8,
            vec![
                leaf_hash(LEAVES[2]),
                leaf_hash(LEAVES[3]),
                h(ROOTS[1]),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
    ];
    for (old, new, expected) in cases {
        let proof = t.consistency_proof(old, new).expect("in range");
        assert_eq!(proof, expected, "{old} -> {new}");
        let r1 = h(ROOTS[old as usize - 1]);
        let r2 = h(ROOTS[new as usize - 1]);
        assert_eq!(verify_consistency(old, new, &r1, &r2, &proof), Ok(()));
        if proof.is_empty() {
            continue;
        }
        assert!(verify_consistency(old, new, &r2, &r1, &proof).is_err());
        assert!(verify_consistency(old, new, &empty_root(), &r2, &proof).is_err());
        assert!(verify_consistency(old, new, &r1, &empty_root(), &proof).is_err());
        assert!(verify_consistency(old, new, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(old, new * 2, &r1, &r2, &proof).is_err());
        let mut longer = proof.clone();
        longer.push(r1);
        assert!(verify_consistency(old, new, &r1, &r2, &longer).is_err());
        let mut front = vec![proof[0]];
        front.extend_from_slice(&proof);
        assert!(verify_consistency(old, new, &r1, &r2, &front).is_err());
        assert!(verify_consistency(old, new, &r1, &r2, &proof[..proof.len() - 1]).is_err());
    }
}

#[test]
fn verifier_edge_cases_from_the_reference_suite() {
    let e = empty_root();
    let x = leaf_hash(b"x");
    // Inclusion: index must be below size.
    for (index, size) in [(0, 0), (1, 0), (2, 1), (1, 1)] {
        assert_eq!(
            verify_inclusion(&x, index, size, &[], &x),
            Err(MerkleError::IndexOutOfRange { index, size })
        );
    }
    // Single leaf: the leaf hash is the root.
    assert_eq!(verify_inclusion(&x, 0, 1, &[], &x), Ok(()));
    assert!(verify_inclusion(&x, 0, 1, &[], &e).is_err());
    assert!(verify_inclusion(&x, 0, 1, &[x], &x).is_err());
    // Consistency: trivially consistent snapshots.
    assert_eq!(verify_consistency(0, 0, &e, &e, &[]), Ok(()));
    assert_eq!(verify_consistency(0, 1, &e, &x, &[]), Ok(()));
    assert_eq!(verify_consistency(1, 1, &x, &x, &[]), Ok(()));
    // Old root of an empty tree must be the empty root.
    assert!(verify_consistency(0, 1, &x, &x, &[]).is_err());
    // Time travel.
    assert_eq!(
        verify_consistency(1, 0, &x, &e, &[]),
        Err(MerkleError::InconsistentSizes {
            old_size: 1,
            new_size: 0
        })
    );
    assert!(verify_consistency(2, 1, &x, &x, &[]).is_err());
    // Empty proof for a real extension.
    assert!(verify_consistency(1, 2, &x, &x, &[]).is_err());
    // Equal sizes with mismatched roots, or a non-empty proof.
    assert!(verify_consistency(1, 1, &x, &e, &[]).is_err());
    assert!(verify_consistency(0, 0, &e, &e, &[e]).is_err());
    assert!(verify_consistency(0, 1, &e, &x, &[e]).is_err());
    assert!(verify_consistency(1, 1, &x, &x, &[e]).is_err());
}

#[test]
fn hex_round_trip_and_errors() {
    let x = h(ROOTS[7]);
    assert_eq!(to_hex(&x), ROOTS[7]);
    assert_eq!(from_hex(&ROOTS[7].to_uppercase()), Ok(x));
    assert!(matches!(from_hex("abc"), Err(MerkleError::InvalidHex(_))));
    assert!(matches!(
        from_hex(&ROOTS[7][..62]),
        Err(MerkleError::InvalidHex(_))
    ));
    assert!(matches!(
        from_hex(&format!("{}00", ROOTS[7])),
        Err(MerkleError::InvalidHex(_))
    ));
    assert!(matches!(
        from_hex(&ROOTS[7].replace('5', "g")),
        Err(MerkleError::InvalidHex(_))
    ));
}
