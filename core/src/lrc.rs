//! A locally repairable code, after Azure's LRC: `LRC(k, l, r)` stores k
//! data blocks, one local parity for each of l groups of k/l data blocks,
//! and r global parities over all data blocks — k + l + r blocks in all.
//!
//! - **Local parity** of group g: the sum (XOR) of its data blocks. A single
//!   lost block, data or local parity, is rebuilt from the other k/l blocks
//!   of its group: 6 reads instead of 12 for LRC(12,2,2).
//! - **Global parity** j (1..=r): Σ aᵢʲ · dᵢ over GF(2⁸), with aᵢ = αⁱ
//!   distinct and non-zero. With the local rows (the j = 0 row split by
//!   group), any r + 1 losses are decodable: within a group the unknowns see
//!   rows 1, aᵢ, aᵢ², … — a Vandermonde system — and a group with one loss
//!   is solved by its local parity alone. Some patterns of more losses
//!   decode too (tested exhaustively for the shipped parameters).
//!
//! Decoding is exact linear algebra, not a table of cases: a pattern is
//! decodable if and only if the surviving blocks' generator rows have rank
//! k, and then the data are solved from k independent surviving rows. An
//! undecodable pattern is [`LrcError::TooFewBlocks`] and changes nothing —
//! never wrong data. The field arithmetic is the RS codec's
//! (`reed-solomon-erasure`'s `galois_8`, SIMD slices where it offers them).

use reed_solomon_erasure::galois_8 as gf;

/// The shape of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LrcParams {
    /// Data blocks.
    pub k: usize,
    /// Local groups (each with one local parity); divides k.
    pub l: usize,
    /// Global parities.
    pub r: usize,
}

impl LrcParams {
    /// Blocks in all: k + l + r.
    pub fn n(&self) -> usize {
        self.k + self.l + self.r
    }

    /// Data blocks per local group.
    pub fn group_size(&self) -> usize {
        self.k / self.l
    }

    /// The local group of block `index` (a data block or a local parity);
    /// `None` for a global parity.
    pub fn group_of(&self, index: usize) -> Option<usize> {
        if index < self.k {
            Some(index / self.group_size())
        } else if index < self.k + self.l {
            Some(index - self.k)
        } else {
            None
        }
    }

    /// The other blocks of `index`'s local group (what rebuilds it locally);
    /// `None` for a global parity.
    pub fn group_peers(&self, index: usize) -> Option<Vec<usize>> {
        let g = self.group_of(index)?;
        Some(self.group(g).into_iter().filter(|&b| b != index).collect())
    }

    /// Every block of group `g`: its data blocks, then its local parity.
    pub fn group(&self, g: usize) -> Vec<usize> {
        let size = self.group_size();
        (g * size..(g + 1) * size).chain([self.k + g]).collect()
    }
}

impl std::fmt::Display for LrcParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LRC({},{},{})", self.k, self.l, self.r)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LrcError {
    #[error("invalid LRC parameters {0:?}: need k ≥ 1, l ≥ 1 dividing k, r ≥ 1, k + l + r ≤ 255")]
    InvalidParams(LrcParams),
    #[error("{got} blocks given, the code has {expected}")]
    WrongBlockCount { got: usize, expected: usize },
    #[error("blocks differ in length")]
    UnequalLengths,
    #[error("too few blocks to decode: the surviving blocks determine {rank} of {k} data blocks")]
    TooFewBlocks { rank: usize, k: usize },
}

/// An LRC coder for one parameter set.
#[derive(Debug, Clone)]
pub struct Lrc {
    params: LrcParams,
    /// Generator matrix: block i = Σ rows[i][c] · data[c].
    rows: Vec<Vec<u8>>,
}

impl Lrc {
    pub fn new(params: LrcParams) -> Result<Self, LrcError> {
        let LrcParams { k, l, r } = params;
        if k == 0 || l == 0 || r == 0 || !k.is_multiple_of(l) || params.n() > 255 {
            return Err(LrcError::InvalidParams(params));
        }
        let size = params.group_size();
        let mut rows = Vec::with_capacity(params.n());
        for i in 0..k {
            let mut row = vec![0u8; k];
            row[i] = 1;
            rows.push(row);
        }
        for g in 0..l {
            let mut row = vec![0u8; k];
            row[g * size..(g + 1) * size].fill(1);
            rows.push(row);
        }
        // aᵢ = αⁱ (α = 2 generates GF(2⁸)*): distinct and non-zero for i < 255.
        let a: Vec<u8> = (0..k).map(|i| gf::exp(2, i)).collect();
        for j in 1..=r {
            rows.push(a.iter().map(|&ai| gf::exp(ai, j)).collect());
        }
        Ok(Self { params, rows })
    }

    pub fn params(&self) -> LrcParams {
        self.params
    }

    /// Computes the l + r parity blocks of `data` (k blocks of one length).
    pub fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), LrcError> {
        let LrcParams { k, l, r } = self.params;
        check_count(data.len(), k)?;
        check_count(parity.len(), l + r)?;
        let len = data.first().map_or(0, |d| d.len());
        if data.iter().any(|d| d.len() != len) || parity.iter().any(|p| p.len() != len) {
            return Err(LrcError::UnequalLengths);
        }
        for (p, out) in parity.iter_mut().enumerate() {
            out.fill(0);
            combine(&self.rows[k + p], data, out);
        }
        Ok(())
    }

    /// Which blocks to read to rebuild `lost`, given which are readable:
    /// the rest of its local group when that is all there (k/l reads),
    /// else k blocks whose rows are independent (any other decodable read
    /// set), else `None`.
    pub fn read_set(&self, lost: usize, available: &[bool]) -> Option<Vec<usize>> {
        let readable = |b: &usize| available.get(*b).copied().unwrap_or(false);
        if let Some(peers) = self.params.group_peers(lost)
            && peers.iter().all(readable)
        {
            return Some(peers);
        }
        let present: Vec<usize> = (0..self.params.n())
            .filter(|b| *b != lost && readable(b))
            .collect();
        let basis = self.independent(&present);
        (basis.len() == self.params.k).then_some(basis)
    }

    /// Rebuilds block `lost` from the blocks given (the others `None`): from
    /// the rest of its local group when all of that is given, else from k
    /// given blocks with independent rows. This is repair: it reads only
    /// what it needs ([`Lrc::read_set`]).
    pub fn rebuild(&self, lost: usize, blocks: &[Option<&[u8]>]) -> Result<Vec<u8>, LrcError> {
        let k = self.params.k;
        check_count(blocks.len(), self.params.n())?;
        let len = common_len(blocks.iter().flatten().map(|b| b.len()), k)?;
        let mut out = vec![0u8; len];
        let given: Vec<bool> = blocks.iter().map(Option::is_some).collect();
        let Some(basis) = self.read_set(lost, &given) else {
            let present: Vec<usize> = (0..blocks.len())
                .filter(|&b| b != lost && given[b])
                .collect();
            return Err(LrcError::TooFewBlocks {
                rank: self.independent(&present).len(),
                k,
            });
        };
        if self.params.group_peers(lost).as_ref() == Some(&basis) {
            for b in basis {
                xor_into(blocks[b].expect("given"), &mut out);
            }
            return Ok(out);
        }
        let inverse = invert(basis.iter().map(|&b| self.rows[b].clone()).collect())
            .expect("k independent rows are invertible");
        // Block `lost` = rows[lost] · data = (rows[lost] · inverse) · inputs.
        let weights: Vec<u8> = (0..k)
            .map(|j| {
                self.rows[lost]
                    .iter()
                    .zip(&inverse)
                    .fold(0u8, |acc, (&p, inv_row)| acc ^ gf::mul(p, inv_row[j]))
            })
            .collect();
        let inputs: Vec<&[u8]> = basis.iter().map(|&b| blocks[b].expect("given")).collect();
        combine(&weights, &inputs, &mut out);
        Ok(out)
    }

    /// Whether the data can be decoded from the blocks marked available.
    pub fn is_decodable(&self, available: &[bool]) -> bool {
        let present: Vec<usize> = (0..self.params.n())
            .filter(|&b| available.get(b).copied().unwrap_or(false))
            .collect();
        self.independent(&present).len() == self.params.k
    }

    /// Fills every `None` block (data and parity) from the others. Single
    /// losses in a group are rebuilt from the group; the rest by solving
    /// for the data. On `TooFewBlocks` nothing is changed.
    pub fn reconstruct(&self, blocks: &mut [Option<Vec<u8>>]) -> Result<(), LrcError> {
        let LrcParams { k, l, .. } = self.params;
        check_count(blocks.len(), self.params.n())?;
        let len = common_len(blocks.iter().flatten().map(Vec::len), k)?;
        let available: Vec<bool> = blocks.iter().map(Option::is_some).collect();
        if !self.is_decodable(&available) {
            let present: Vec<usize> = (0..blocks.len()).filter(|&b| available[b]).collect();
            return Err(LrcError::TooFewBlocks {
                rank: self.independent(&present).len(),
                k,
            });
        }
        // Local repairs: a group missing exactly one block.
        for g in 0..l {
            let group = self.params.group(g);
            let missing: Vec<usize> = group
                .iter()
                .copied()
                .filter(|&b| blocks[b].is_none())
                .collect();
            if let [lost] = missing[..] {
                let mut out = vec![0u8; len];
                for &b in group.iter().filter(|&&b| b != lost) {
                    xor_into(blocks[b].as_deref().expect("present"), &mut out);
                }
                blocks[lost] = Some(out);
            }
        }
        if blocks[..k].iter().any(Option::is_none) {
            self.solve_data(blocks, len);
        }
        // Parities still missing: encode them from the (now whole) data.
        for p in k..self.params.n() {
            if blocks[p].is_none() {
                let data: Vec<&[u8]> = blocks[..k]
                    .iter()
                    .map(|b| b.as_deref().expect("data"))
                    .collect();
                let mut out = vec![0u8; len];
                combine(&self.rows[p], &data, &mut out);
                blocks[p] = Some(out);
            }
        }
        Ok(())
    }

    /// Solves the missing data blocks from k independent present rows
    /// (called only when the pattern is decodable).
    fn solve_data(&self, blocks: &mut [Option<Vec<u8>>], len: usize) {
        let k = self.params.k;
        let present: Vec<usize> = (0..blocks.len()).filter(|&b| blocks[b].is_some()).collect();
        let basis = self.independent(&present);
        debug_assert_eq!(basis.len(), k);
        let matrix: Vec<Vec<u8>> = basis.iter().map(|&b| self.rows[b].clone()).collect();
        let inverse = invert(matrix).expect("k independent rows are invertible");
        let inputs: Vec<&[u8]> = basis
            .iter()
            .map(|&b| blocks[b].as_deref().expect("present"))
            .collect();
        let mut solved = Vec::new();
        for (d, row) in inverse.iter().enumerate() {
            if blocks[d].is_none() {
                let mut out = vec![0u8; len];
                combine(row, &inputs, &mut out);
                solved.push((d, out));
            }
        }
        for (d, out) in solved {
            blocks[d] = Some(out);
        }
    }

    /// A maximal set of `candidates` (in order) whose rows are independent.
    fn independent(&self, candidates: &[usize]) -> Vec<usize> {
        let k = self.params.k;
        // Row-reduced copies of the chosen rows, each with a pivot column.
        let mut reduced: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut chosen = Vec::new();
        for &b in candidates {
            let mut row = self.rows[b].clone();
            for (pivot, basis) in &reduced {
                let factor = row[*pivot];
                if factor != 0 {
                    for c in 0..k {
                        row[c] ^= gf::mul(factor, basis[c]);
                    }
                }
            }
            if let Some(pivot) = row.iter().position(|&x| x != 0) {
                let scale = gf::div(1, row[pivot]);
                for x in row.iter_mut() {
                    *x = gf::mul(*x, scale);
                }
                // Keep earlier rows reduced against the new pivot too.
                for (_, basis) in reduced.iter_mut() {
                    let factor = basis[pivot];
                    if factor != 0 {
                        for c in 0..k {
                            basis[c] ^= gf::mul(factor, row[c]);
                        }
                    }
                }
                reduced.push((pivot, row));
                chosen.push(b);
                if chosen.len() == k {
                    break;
                }
            }
        }
        chosen
    }
}

/// The one length every given block has (none given: nothing to decode).
fn common_len(mut lens: impl Iterator<Item = usize>, k: usize) -> Result<usize, LrcError> {
    let len = lens.next().ok_or(LrcError::TooFewBlocks { rank: 0, k })?;
    if lens.all(|l| l == len) {
        Ok(len)
    } else {
        Err(LrcError::UnequalLengths)
    }
}

fn check_count(got: usize, expected: usize) -> Result<(), LrcError> {
    if got == expected {
        Ok(())
    } else {
        Err(LrcError::WrongBlockCount { got, expected })
    }
}

/// out ^= Σ row[c] · inputs[c].
fn combine(row: &[u8], inputs: &[&[u8]], out: &mut [u8]) {
    for (&c, input) in row.iter().zip(inputs) {
        match c {
            0 => {}
            1 => xor_into(input, out),
            c => gf::mul_slice_xor(c, input, out),
        }
    }
}

fn xor_into(input: &[u8], out: &mut [u8]) {
    for (o, i) in out.iter_mut().zip(input) {
        *o ^= i;
    }
}

/// The inverse of a square matrix over GF(2⁸) (Gauss-Jordan), if regular.
fn invert(mut m: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
    let n = m.len();
    let mut inv: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut row = vec![0u8; n];
            row[i] = 1;
            row
        })
        .collect();
    for col in 0..n {
        let pivot = (col..n).find(|&r| m[r][col] != 0)?;
        m.swap(col, pivot);
        inv.swap(col, pivot);
        let scale = gf::div(1, m[col][col]);
        for c in 0..n {
            m[col][c] = gf::mul(m[col][c], scale);
            inv[col][c] = gf::mul(inv[col][c], scale);
        }
        for r in 0..n {
            if r != col && m[r][col] != 0 {
                let factor = m[r][col];
                for c in 0..n {
                    m[r][c] ^= gf::mul(factor, m[col][c]);
                    inv[r][c] ^= gf::mul(factor, inv[col][c]);
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: [LrcParams; 2] = [
        LrcParams { k: 12, l: 2, r: 2 },
        LrcParams { k: 8, l: 2, r: 2 },
    ];

    fn data(params: LrcParams, len: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..params.k)
            .map(|_| {
                (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (state >> 33) as u8
                    })
                    .collect()
            })
            .collect()
    }

    fn encoded(lrc: &Lrc, data: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let p = lrc.params();
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut parity = vec![vec![0u8; data[0].len()]; p.l + p.r];
        let mut outs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        lrc.encode(&refs, &mut outs).expect("encode");
        data.iter().cloned().chain(parity).collect()
    }

    /// Every subset of `n` blocks of size `size`, as a bit mask.
    fn patterns(n: usize, size: usize) -> impl Iterator<Item = u32> {
        (0u32..1 << n).filter(move |m| m.count_ones() as usize == size)
    }

    fn lose(all: &[Vec<u8>], lost: u32) -> Vec<Option<Vec<u8>>> {
        all.iter()
            .enumerate()
            .map(|(i, b)| (lost & (1 << i) == 0).then(|| b.clone()))
            .collect()
    }

    #[test]
    fn local_parities_are_group_sums_and_a_single_loss_reads_its_group_only() {
        for params in SHIPPED {
            let lrc = Lrc::new(params).expect("lrc");
            let all = encoded(&lrc, &data(params, 64, 1));
            for g in 0..params.l {
                let mut sum = vec![0u8; 64];
                for &b in &params.group(g)[..params.group_size()] {
                    xor_into(&all[b], &mut sum);
                }
                assert_eq!(sum, all[params.k + g]);
            }
            let everything = vec![true; params.n()];
            for lost in 0..params.n() {
                let set = lrc.read_set(lost, &everything).expect("a read set");
                match params.group_of(lost) {
                    Some(g) => {
                        assert_eq!(set.len(), params.group_size(), "{params} block {lost}");
                        assert!(set.iter().all(|&b| params.group_of(b) == Some(g)));
                    }
                    None => assert_eq!(set.len(), params.k, "{params} global parity {lost}"),
                }
                // Rebuilt from the read set alone.
                let given: Vec<Option<&[u8]>> = (0..params.n())
                    .map(|b| set.contains(&b).then(|| all[b].as_slice()))
                    .collect();
                let rebuilt = lrc
                    .rebuild(lost, &given)
                    .expect("decodable from its read set");
                assert_eq!(rebuilt, all[lost], "{params} block {lost}");
            }
        }
    }

    #[test]
    fn every_pattern_of_up_to_r_plus_one_losses_decodes_exactly() {
        for params in SHIPPED {
            let lrc = Lrc::new(params).expect("lrc");
            let all = encoded(&lrc, &data(params, 16, 2));
            for losses in 1..=params.r + 1 {
                for lost in patterns(params.n(), losses) {
                    let mut blocks = lose(&all, lost);
                    lrc.reconstruct(&mut blocks)
                        .unwrap_or_else(|e| panic!("{params}: pattern {lost:#b}: {e}"));
                    for (b, block) in blocks.iter().enumerate() {
                        assert_eq!(
                            block.as_deref(),
                            Some(all[b].as_slice()),
                            "{params} {lost:#b}"
                        );
                    }
                    // Repair one block at a time, from its read set only.
                    let available: Vec<bool> =
                        (0..params.n()).map(|b| lost & (1 << b) == 0).collect();
                    for gone in (0..params.n()).filter(|b| lost & (1 << b) != 0) {
                        let set = lrc.read_set(gone, &available).expect("a read set");
                        assert!(set.iter().all(|&b| available[b]));
                        let given: Vec<Option<&[u8]>> = (0..params.n())
                            .map(|b| set.contains(&b).then(|| all[b].as_slice()))
                            .collect();
                        assert_eq!(lrc.rebuild(gone, &given).expect("rebuild"), all[gone]);
                    }
                }
            }
        }
    }

    #[test]
    fn beyond_r_plus_one_every_decodable_pattern_decodes_and_the_rest_change_nothing() {
        for params in SHIPPED {
            let lrc = Lrc::new(params).expect("lrc");
            let all = encoded(&lrc, &data(params, 8, 3));
            let mut decodable = 0usize;
            let mut total = 0usize;
            for lost in patterns(params.n(), params.r + 2) {
                total += 1;
                let available: Vec<bool> = (0..params.n()).map(|b| lost & (1 << b) == 0).collect();
                let mut blocks = lose(&all, lost);
                let before = blocks.clone();
                match lrc.reconstruct(&mut blocks) {
                    Ok(()) => {
                        decodable += 1;
                        assert!(lrc.is_decodable(&available));
                        for (b, block) in blocks.iter().enumerate() {
                            assert_eq!(
                                block.as_deref(),
                                Some(all[b].as_slice()),
                                "{params} {lost:#b}"
                            );
                        }
                    }
                    Err(LrcError::TooFewBlocks { rank, k }) => {
                        assert!(rank < k && !lrc.is_decodable(&available));
                        assert_eq!(blocks, before, "an undecodable pattern changed blocks");
                    }
                    Err(other) => panic!("{params} {lost:#b}: {other}"),
                }
            }
            // Information-theoretically, a pattern that leaves a group with
            // no surviving block and more losses than r elsewhere cannot
            // decode; most 4-loss patterns do. Recorded, not a target.
            assert!(
                decodable * 2 > total,
                "{params}: only {decodable} of {total} decodable"
            );
            eprintln!(
                "{params}: {decodable} of {total} patterns of {} losses decode",
                params.r + 2
            );
        }
    }

    #[test]
    fn bad_parameters_and_inputs_are_refused() {
        for params in [
            LrcParams { k: 12, l: 5, r: 2 },
            LrcParams { k: 0, l: 1, r: 1 },
            LrcParams { k: 12, l: 2, r: 0 },
            LrcParams { k: 250, l: 5, r: 1 },
        ] {
            assert!(matches!(Lrc::new(params), Err(LrcError::InvalidParams(_))));
        }
        let lrc = Lrc::new(SHIPPED[1]).expect("lrc");
        let mut too_few: Vec<Option<Vec<u8>>> = vec![None; 11];
        assert!(matches!(
            lrc.reconstruct(&mut too_few),
            Err(LrcError::WrongBlockCount { .. })
        ));
        let mut nothing: Vec<Option<Vec<u8>>> = vec![None; 12];
        assert!(matches!(
            lrc.reconstruct(&mut nothing),
            Err(LrcError::TooFewBlocks { .. })
        ));
    }
}
