//! Reproducible test content: a small generator, and blobs remembered by their seed
//! rather than their bytes (what the kill loops and the soak share).

#![allow(dead_code)]

/// xorshift64*: reproducible content, choices and timing from one seed.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A blob pushed (or acknowledged), remembered by how to make its bytes again.
#[derive(Clone)]
pub struct Blob {
    pub digest: String,
    pub seed: u64,
    pub size: usize,
}

impl Blob {
    pub fn bytes(&self) -> Vec<u8> {
        Rng(self.seed).bytes(self.size)
    }
}
