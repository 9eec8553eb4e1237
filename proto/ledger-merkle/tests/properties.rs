//! Deterministic property-style tests against an independent naive recursive MTH / PATH / PROOF.

use ledger_merkle::{
    empty_root, leaf_hash, node_hash, verify_consistency, verify_inclusion, Hash, MerkleError,
    MerkleTree, RootBuilder,
};

const MAX: u64 = 70;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("leaf-{i}").as_bytes()))
        .collect()
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 9162 §2.1.1 MTH, literally.
fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => d[0],
        n => {
            let k = split(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

/// RFC 9162 §2.1.3.1 PATH, literally.
fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return vec![];
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

/// RFC 9162 §2.1.4.1 SUBPROOF, literally.
fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn full_tree() -> (Vec<Hash>, MerkleTree) {
    let l = leaves(MAX);
    let t: MerkleTree = l.iter().copied().collect();
    (l, t)
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut x = *h;
    x[bit / 8] ^= 1 << (bit % 8);
    x
}

#[test]
fn roots_match_naive_mth_and_root_builder() {
    let (l, t) = full_tree();
    let mut b = RootBuilder::new();
    assert_eq!(b.root(), empty_root());
    for size in 0..=MAX {
        let expected = mth(&l[..size as usize]);
        assert_eq!(t.root_at(size), Ok(expected), "size {size}");
        assert_eq!(b.len(), size);
        assert_eq!(b.root(), expected, "builder size {size}");
        if size < MAX {
            b.push(l[size as usize]);
        }
    }
    assert_eq!(t.root(), mth(&l));
    assert_eq!(t.len(), MAX);
    for (i, leaf) in l.iter().enumerate() {
        assert_eq!(t.leaf(i as u64), Some(*leaf));
    }
    assert_eq!(t.leaf(MAX), None);
    assert_eq!(t.leaf(u64::MAX), None);
}

#[test]
fn root_builder_matches_tree_on_a_longer_run() {
    let mut t = MerkleTree::new();
    let mut b = RootBuilder::new();
    for i in 0..1100u32 {
        let leaf = leaf_hash(&i.to_be_bytes());
        t.push_leaf_hash(leaf);
        b.push(leaf);
        assert_eq!(b.root(), t.root(), "size {}", i + 1);
    }
    // Every past root is still answerable and agrees with a fresh builder.
    let mut fresh = RootBuilder::new();
    for size in 1..=1100u64 {
        fresh.push(t.leaf(size - 1).expect("present"));
        assert_eq!(t.root_at(size), Ok(fresh.root()));
    }
}

#[test]
fn inclusion_proofs_match_naive_and_verify() {
    let (l, t) = full_tree();
    let roots: Vec<Hash> = (0..=MAX).map(|s| mth(&l[..s as usize])).collect();
    for size in 1..=MAX {
        let d = &l[..size as usize];
        let root = roots[size as usize];
        for index in 0..size {
            let proof = t.inclusion_proof(index, size).expect("in range");
            assert_eq!(proof, path(index as usize, d), "index {index} size {size}");
            let leaf = l[index as usize];
            assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));

            // Wrong leaf and wrong root.
            assert!(verify_inclusion(&flip(&leaf, 0), index, size, &proof, &root).is_err());
            assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&root, 255)).is_err());
            // Every tampered proof element fails.
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i], (i * 37) % 256);
                assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
            }
            // Extra, missing and swapped elements fail.
            let mut longer = proof.clone();
            longer.push(root);
            assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
            if !proof.is_empty() {
                assert!(
                    verify_inclusion(&leaf, index, size, &proof[..proof.len() - 1], &root).is_err()
                );
            }
            if proof.len() >= 2 && proof[0] != proof[1] {
                let mut swapped = proof.clone();
                swapped.swap(0, 1);
                assert!(verify_inclusion(&leaf, index, size, &swapped, &root).is_err());
            }
            // Any other index fails (even with that index's own leaf).
            for other in 0..size {
                if other != index {
                    assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err());
                    assert!(
                        verify_inclusion(&l[other as usize], other, size, &proof, &root).is_err()
                    );
                }
            }
            // Any other size fails against that size's root.
            for other in (index + 1)..=MAX {
                if other != size {
                    let other_root = roots[other as usize];
                    assert!(
                        verify_inclusion(&leaf, index, other, &proof, &other_root).is_err(),
                        "index {index} proof for size {size} accepted for size {other}"
                    );
                }
            }
        }
    }
}

#[test]
fn consistency_proofs_match_naive_and_verify() {
    let (l, t) = full_tree();
    let roots: Vec<Hash> = (0..=MAX).map(|s| mth(&l[..s as usize])).collect();
    for new in 0..=MAX {
        for old in 0..=new {
            let proof = t.consistency_proof(old, new).expect("in range");
            let expected = if old == 0 || old == new {
                vec![]
            } else {
                subproof(old as usize, &l[..new as usize], true)
            };
            assert_eq!(proof, expected, "{old} -> {new}");
            let (r1, r2) = (roots[old as usize], roots[new as usize]);
            assert_eq!(
                verify_consistency(old, new, &r1, &r2, &proof),
                Ok(()),
                "{old} -> {new}"
            );
            if proof.is_empty() {
                continue;
            }
            assert!(verify_consistency(old, new, &flip(&r1, 3), &r2, &proof).is_err());
            assert!(verify_consistency(old, new, &r1, &flip(&r2, 3), &proof).is_err());
            assert!(verify_consistency(old, new, &r2, &r1, &proof).is_err());
            assert!(verify_consistency(old, new, &r1, &r2, &[]).is_err());
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i], (i * 53) % 256);
                assert!(verify_consistency(old, new, &r1, &r2, &bad).is_err());
            }
            let mut longer = proof.clone();
            longer.push(r1);
            assert!(verify_consistency(old, new, &r1, &r2, &longer).is_err());
            assert!(verify_consistency(old, new, &r1, &r2, &proof[..proof.len() - 1]).is_err());
            let mut front = vec![proof[0]];
            front.extend_from_slice(&proof);
            assert!(verify_consistency(old, new, &r1, &r2, &front).is_err());
            // Any other (old, new) pair fails against its own roots: exhaustively for small
            // trees, within a neighbourhood of (old, new) otherwise (keeps the test fast).
            let exhaustive = new <= 24;
            for o in 1..=MAX {
                for n in o..=MAX {
                    let near = o.abs_diff(old) <= 3 && n.abs_diff(new) <= 3;
                    if (o, n) != (old, new) && (exhaustive || near || n == 2 * new) {
                        assert!(
                            verify_consistency(
                                o,
                                n,
                                &roots[o as usize],
                                &roots[n as usize],
                                &proof
                            )
                            .is_err(),
                            "proof {old}->{new} accepted for {o}->{n}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn truncate_then_repush_gives_same_roots() {
    let (l, full) = full_tree();
    for cut in 0..=MAX {
        let mut t = full.clone();
        t.truncate(cut);
        assert_eq!(t.len(), cut);
        assert_eq!(t.is_empty(), cut == 0);
        assert_eq!(t.root(), mth(&l[..cut as usize]));
        assert_eq!(
            t.root_at(cut + 1),
            Err(MerkleError::SizeOutOfRange {
                size: cut + 1,
                len: cut
            })
        );
        // Re-push different leaves, then truncate again and re-push the originals.
        for i in cut..MAX {
            t.push_leaf_hash(leaf_hash(format!("other-{i}").as_bytes()));
        }
        assert_eq!(t.root_at(cut), Ok(mth(&l[..cut as usize])));
        t.truncate(cut);
        for &leaf in &l[cut as usize..] {
            t.push_leaf_hash(leaf);
        }
        for size in 0..=MAX {
            assert_eq!(t.root_at(size), full.root_at(size));
        }
        assert_eq!(t.inclusion_proof(0, MAX), full.inclusion_proof(0, MAX));
    }
    // Truncating beyond the end is a no-op.
    let mut t = full.clone();
    t.truncate(MAX + 5);
    assert_eq!(t.root(), full.root());
    assert_eq!(t.len(), MAX);
}

#[test]
fn range_errors() {
    let (_, t) = full_tree();
    assert_eq!(
        t.root_at(MAX + 1),
        Err(MerkleError::SizeOutOfRange {
            size: MAX + 1,
            len: MAX
        })
    );
    assert_eq!(
        t.inclusion_proof(0, MAX + 1),
        Err(MerkleError::SizeOutOfRange {
            size: MAX + 1,
            len: MAX
        })
    );
    assert_eq!(
        t.inclusion_proof(5, 5),
        Err(MerkleError::IndexOutOfRange { index: 5, size: 5 })
    );
    assert_eq!(
        t.inclusion_proof(0, 0),
        Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        t.inclusion_proof(u64::MAX, MAX),
        Err(MerkleError::IndexOutOfRange {
            index: u64::MAX,
            size: MAX
        })
    );
    assert_eq!(
        t.consistency_proof(3, MAX + 1),
        Err(MerkleError::SizeOutOfRange {
            size: MAX + 1,
            len: MAX
        })
    );
    assert_eq!(
        t.consistency_proof(9, 8),
        Err(MerkleError::InconsistentSizes {
            old_size: 9,
            new_size: 8
        })
    );
    assert_eq!(t.consistency_proof(0, MAX), Ok(vec![]));
    assert_eq!(t.consistency_proof(0, 0), Ok(vec![]));
    assert_eq!(t.consistency_proof(MAX, MAX), Ok(vec![]));

    let empty = MerkleTree::new();
    assert!(empty.is_empty());
    assert_eq!(empty.root(), empty_root());
    assert_eq!(empty.leaf(0), None);
    assert_eq!(empty.consistency_proof(0, 0), Ok(vec![]));
    assert_eq!(
        empty.inclusion_proof(0, 0),
        Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(MerkleTree::default().root(), empty_root());
    assert!(RootBuilder::default().is_empty());
}

#[test]
fn memory_is_about_two_hashes_per_leaf() {
    let mut t = MerkleTree::new();
    let n = 1u64 << 16;
    for i in 0..n {
        t.push_leaf_hash(leaf_hash(&i.to_le_bytes()));
    }
    let nodes = (2 * n - 1) as usize * 32;
    assert!(t.memory_bytes() >= nodes);
    // Vec growth may over-allocate up to 2x per level.
    assert!(
        t.memory_bytes() <= 2 * nodes + 64 * 64,
        "{}",
        t.memory_bytes()
    );
}
