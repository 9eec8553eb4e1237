//! RFC 9162 (Certificate Transparency v2; same hashing as RFC 6962) Merkle tree over SHA-256.
//!
//! This crate is the tamper-evidence structure over the ledger's global event order: leaf `i`
//! is the record with global position `i` (0-based). It is pure: no IO, no async, no files.
//!
//! * [`leaf_hash`], [`node_hash`] and [`empty_root`] are the RFC 9162 hashing primitives
//!   (`SHA-256(0x00 || data)`, `SHA-256(0x01 || left || right)`, `SHA-256("")`).
//! * [`MerkleTree`] is an append-only tree that caches every complete, aligned subtree, so roots
//!   at any past size, inclusion proofs (RFC 9162 §2.1.3.1) and consistency proofs
//!   (RFC 9162 §2.1.4.1) never rehash leaves.
//! * [`verify_inclusion`] and [`verify_consistency`] are the RFC 9162 §2.1.3.2 / §2.1.4.2
//!   verification algorithms, usable by auditors that hold no tree.
//! * [`RootBuilder`] computes roots while streaming leaves, holding at most 64 hashes.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain-separation prefix for leaf hashes (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix for interior node hashes (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// Errors returned by tree queries, proof verification and hex parsing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    /// A requested tree size exceeds the number of leaves the tree holds.
    #[error("tree size {size} out of range: tree holds {len} leaves")]
    SizeOutOfRange {
        /// The requested tree size.
        size: u64,
        /// The number of leaves available.
        len: u64,
    },
    /// A leaf index is not below the tree size it is asked about.
    #[error("leaf index {index} out of range for tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size the index must be below.
        size: u64,
    },
    /// A consistency query asked about an old size larger than the new size.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    InconsistentSizes {
        /// The older (claimed smaller) tree size.
        old_size: u64,
        /// The newer (claimed larger) tree size.
        new_size: u64,
    },
    /// A proof failed verification (wrong length, wrong hashes, or roots not reproduced).
    #[error("invalid proof: {0}")]
    InvalidProof(String),
    /// A string is not the 64-character hex encoding of a 32-byte hash.
    #[error("invalid hex hash: {0}")]
    InvalidHex(String),
}

/// RFC 9162 leaf hash: `SHA-256(0x00 || data)`.
#[inline]
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(data);
    hasher.finalize().into()
}

/// RFC 9162 interior node hash: `SHA-256(0x01 || left || right)`.
#[inline]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

/// Root of the empty tree: `SHA-256("")` (RFC 9162 `MTH({})`).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Lower-case hex encoding of a hash (64 characters).
pub fn to_hex(h: &Hash) -> String {
    hex::encode(h)
}

/// Parses a 64-character hex string (either case) into a hash.
pub fn from_hex(s: &str) -> Result<Hash, MerkleError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|e| MerkleError::InvalidHex(format!("{e}")))?;
    Ok(out)
}

/// Largest power of two strictly less than `n`. Requires `n >= 2`.
#[inline]
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Converts an in-memory position to `usize`; callers have bounded it by a `Vec` length.
#[inline]
fn to_usize(x: u64) -> usize {
    usize::try_from(x).expect("invariant: position bounded by an in-memory length")
}

/// Append-only Merkle tree holding every leaf hash plus the cached hashes of every complete,
/// aligned subtree.
///
/// `levels[0]` holds the leaves and `levels[k][j]` is the MTH of leaves `[j*2^k, (j+1)*2^k)`.
/// Each node is hashed exactly once, when its right child completes, so the tree uses about two
/// hashes per leaf and answers roots at any past size and proofs with `O(log^2 n)` hashing.
#[derive(Clone)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl std::fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerkleTree")
            .field("len", &self.len())
            .field("root", &to_hex(&self.root()))
            .finish()
    }
}

impl Default for MerkleTree {
    fn default() -> Self {
        Self::new()
    }
}

impl MerkleTree {
    /// Creates an empty tree.
    pub fn new() -> Self {
        Self {
            levels: vec![Vec::new()],
        }
    }

    /// Number of leaves in the tree.
    #[inline]
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the tree holds no leaves.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a leaf hash (see [`leaf_hash`]) and completes every parent node it closes.
    ///
    /// Amortised O(1): on average one node hash per pushed leaf.
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        let mut level = 0;
        let mut current = leaf;
        loop {
            let nodes = &mut self.levels[level];
            nodes.push(current);
            let n = nodes.len();
            if n % 2 == 1 {
                return;
            }
            current = node_hash(&nodes[n - 2], &nodes[n - 1]);
            level += 1;
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
        }
    }

    /// The leaf hash at `index`, if the tree holds it.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        let index = usize::try_from(index).ok()?;
        self.levels.first()?.get(index).copied()
    }

    /// Root (MTH) at the current size; [`empty_root`] for an empty tree.
    pub fn root(&self) -> Hash {
        self.range_hash(0, self.len())
    }

    /// Root (MTH) of the first `size` leaves, for `size <= len()`.
    pub fn root_at(&self, size: u64) -> Result<Hash, MerkleError> {
        self.check_size(size)?;
        Ok(self.range_hash(0, size))
    }

    /// RFC 9162 §2.1.3.1 inclusion proof `PATH(index, D[0:size])`, deepest sibling first.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(size)?;
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        let mut out = Vec::with_capacity(64 - size.leading_zeros() as usize);
        self.path(index, 0, size, &mut out);
        Ok(out)
    }

    /// RFC 9162 §2.1.4.1 consistency proof `PROOF(old_size, D[0:new_size])`.
    ///
    /// The proof is empty when `old_size == 0` or `old_size == new_size`.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(MerkleError::InconsistentSizes { old_size, new_size });
        }
        let mut out = Vec::new();
        if old_size == 0 || old_size == new_size {
            return Ok(out);
        }
        self.subproof(old_size, 0, new_size, true, &mut out);
        Ok(out)
    }

    /// Drops every leaf at position `>= size` (and the nodes covering them); no-op if
    /// `size >= len()`.
    pub fn truncate(&mut self, size: u64) {
        if size >= self.len() {
            return;
        }
        for (k, nodes) in self.levels.iter_mut().enumerate() {
            nodes.truncate(to_usize(size >> k));
        }
        while self.levels.len() > 1 && self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }

    /// Approximate heap bytes used by the tree (allocated capacity, not just length).
    pub fn memory_bytes(&self) -> usize {
        let nodes: usize = self
            .levels
            .iter()
            .map(|l| l.capacity() * std::mem::size_of::<Hash>())
            .sum();
        nodes + self.levels.capacity() * std::mem::size_of::<Vec<Hash>>()
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        let len = self.len();
        if size > len {
            return Err(MerkleError::SizeOutOfRange { size, len });
        }
        Ok(())
    }

    /// Hash of a complete aligned subtree of `2^level` leaves starting at `start`.
    #[inline]
    fn perfect(&self, level: u32, start: u64) -> Hash {
        self.levels[level as usize][to_usize(start >> level)]
    }

    /// MTH of leaves `[lo, hi)`, where `lo` is a multiple of a power of two `>= hi - lo` (true of
    /// every subtree in the RFC 9162 decomposition of a prefix). `hi <= len()`.
    fn range_hash(&self, lo: u64, hi: u64) -> Hash {
        let mut remaining = hi - lo;
        if remaining == 0 {
            return empty_root();
        }
        // Decompose into complete aligned subtrees, smallest (rightmost) first, and fold leftward:
        // MTH = node(P_largest, node(..., node(P_2, P_smallest))).
        let mut end = hi;
        let k = remaining.trailing_zeros();
        end -= 1 << k;
        let mut acc = self.perfect(k, end);
        remaining &= remaining - 1;
        while remaining != 0 {
            let k = remaining.trailing_zeros();
            end -= 1 << k;
            acc = node_hash(&self.perfect(k, end), &acc);
            remaining &= remaining - 1;
        }
        acc
    }

    /// `PATH(m, D[lo:hi])` with absolute leaf index `m`, appended deepest first.
    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < lo + k {
            self.path(m, lo, lo + k, out);
            out.push(self.range_hash(lo + k, hi));
        } else {
            self.path(m, lo + k, hi, out);
            out.push(self.perfect(k.trailing_zeros(), lo));
        }
    }

    /// `SUBPROOF(m - lo, D[lo:hi], b)` where `m` is the absolute old size, `lo < m <= hi`.
    fn subproof(&self, m: u64, lo: u64, hi: u64, b: bool, out: &mut Vec<Hash>) {
        if m == hi {
            if !b {
                out.push(self.range_hash(lo, hi));
            }
            return;
        }
        let k = split_point(hi - lo);
        if m <= lo + k {
            self.subproof(m, lo, lo + k, b, out);
            out.push(self.range_hash(lo + k, hi));
        } else {
            self.subproof(m, lo + k, hi, false, out);
            out.push(self.perfect(k.trailing_zeros(), lo));
        }
    }
}

impl Extend<Hash> for MerkleTree {
    fn extend<I: IntoIterator<Item = Hash>>(&mut self, iter: I) {
        for leaf in iter {
            self.push_leaf_hash(leaf);
        }
    }
}

impl FromIterator<Hash> for MerkleTree {
    fn from_iter<I: IntoIterator<Item = Hash>>(iter: I) -> Self {
        let mut tree = Self::new();
        tree.extend(iter);
        tree
    }
}

fn invalid(msg: &str) -> MerkleError {
    MerkleError::InvalidProof(msg.to_owned())
}

/// Verifies an inclusion proof with the RFC 9162 §2.1.3.2 algorithm: that `leaf_hash` is leaf
/// `index` of the tree of `size` leaves whose root is `root`.
///
/// Returns [`MerkleError::IndexOutOfRange`] if `index >= size`, and
/// [`MerkleError::InvalidProof`] if the proof does not reproduce `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(invalid("inclusion proof longer than the tree height"));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(invalid("inclusion proof shorter than the tree height"));
    }
    if r != *root {
        return Err(invalid("inclusion proof does not reproduce the root"));
    }
    Ok(())
}

/// Verifies a consistency proof with the RFC 9162 §2.1.4.2 algorithm: that the tree of
/// `old_size` leaves with root `old_root` is a prefix of the tree of `new_size` leaves with root
/// `new_root`.
///
/// The RFC algorithm covers `0 < old_size < new_size`. The remaining cases are handled as in
/// the CT / transparency-dev verifiers: `old_size == new_size` requires an empty proof and equal
/// roots; `old_size == 0` requires an empty proof and, additionally, `old_root == empty_root()`
/// (the only valid root of an empty tree). `old_size > new_size` is
/// [`MerkleError::InconsistentSizes`]; every other failure is [`MerkleError::InvalidProof`].
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::InconsistentSizes { old_size, new_size });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(invalid(
                "consistency proof between equal sizes must be empty",
            ));
        }
        if old_root != new_root {
            return Err(invalid("roots differ for equal tree sizes"));
        }
        return Ok(());
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(invalid(
                "consistency proof from the empty tree must be empty",
            ));
        }
        if *old_root != empty_root() {
            return Err(invalid("old root is not the empty-tree root"));
        }
        return Ok(());
    }
    // 0 < old_size < new_size: RFC 9162 §2.1.4.2.
    // Step 1: an empty path fails.
    if proof.is_empty() {
        return Err(invalid("empty consistency proof"));
    }
    // Step 2: if old_size is an exact power of two, prepend old_root to the path.
    let prepend = old_size.is_power_of_two();
    let (first, rest) = if prepend {
        (old_root, proof)
    } else {
        (&proof[0], &proof[1..])
    };
    // Step 3.
    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    // Step 4.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let mut fr = *first;
    let mut sr = *first;
    // Step 6.
    for c in rest {
        if snode == 0 {
            return Err(invalid("consistency proof longer than expected"));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(invalid("consistency proof shorter than expected"));
    }
    if fr != *old_root {
        return Err(invalid("consistency proof does not reproduce the old root"));
    }
    if sr != *new_root {
        return Err(invalid("consistency proof does not reproduce the new root"));
    }
    Ok(())
}

/// Streaming root computation that stores no leaves: a compact range (frontier) of at most 64
/// hashes, one per set bit of the leaf count.
///
/// `push` is amortised one node hash per leaf; `root` costs one node hash per set bit of `len`.
#[derive(Clone, Debug, Default)]
pub struct RootBuilder {
    /// Roots of the complete subtrees covering `[0, len)`, largest (leftmost) first.
    frontier: Vec<Hash>,
    len: u64,
}

impl RootBuilder {
    /// Creates a builder for the empty tree.
    pub fn new() -> Self {
        Self {
            frontier: Vec::with_capacity(64),
            len: 0,
        }
    }

    /// Appends the next leaf hash (see [`leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        let mut current = leaf;
        let mut n = self.len;
        while n & 1 == 1 {
            let left = self
                .frontier
                .pop()
                .expect("invariant: frontier holds one hash per set bit of len");
            current = node_hash(&left, &current);
            n >>= 1;
        }
        self.frontier.push(current);
        self.len += 1;
    }

    /// Number of leaves pushed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no leaves have been pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Root (MTH) of the leaves pushed so far; [`empty_root`] if none.
    pub fn root(&self) -> Hash {
        let mut iter = self.frontier.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}
