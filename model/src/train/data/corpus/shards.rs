//! Token shards on disk: each split's documents as one stream of little-endian token ids (`u16` when the vocabulary
//! fits, else `u32`), each document followed by the end-of-document token, cut into shard files of at most
//! `shard_tokens` tokens at document boundaries. Training memory-maps them; nothing is read twice or held in RAM.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CorpusError;

/// Bytes per stored token id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Width {
    /// `u16` little-endian: vocabularies below 65,536 (GPT-2's 50,257).
    U16le,
    /// `u32` little-endian.
    U32le,
}

impl Width {
    /// The narrowest width that holds every id of a vocabulary.
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size <= 1 << 16 {
            Width::U16le
        } else {
            Width::U32le
        }
    }

    /// Bytes per token.
    pub fn bytes(self) -> usize {
        match self {
            Width::U16le => 2,
            Width::U32le => 4,
        }
    }
}

/// One shard file, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the corpus directory.
    pub file: String,
    /// Tokens in it.
    pub tokens: usize,
    /// SHA-256 of its bytes (checked when the corpus is opened).
    pub sha256: String,
}

/// Writes one split's shards.
pub struct ShardWriter {
    dir: PathBuf,
    prefix: String,
    width: Width,
    max_tokens: usize,
    buf: Vec<u8>,
    shards: Vec<ShardInfo>,
}

impl ShardWriter {
    /// Shards `DIR/PREFIX-00000.bin`, … of at most `max_tokens` tokens (a longer document gets a shard of its own).
    pub fn new(dir: &Path, prefix: &str, width: Width, max_tokens: usize) -> Self {
        Self { dir: dir.to_path_buf(), prefix: prefix.to_string(), width, max_tokens: max_tokens.max(1), buf: Vec::new(), shards: vec![] }
    }

    /// Appends a document and its end-of-document token; returns (shard index, offset in tokens) where it starts.
    pub fn push(&mut self, ids: &[u32], eos: u32) -> Result<(usize, usize), CorpusError> {
        let tokens = self.buf.len() / self.width.bytes();
        if tokens > 0 && tokens + ids.len() + 1 > self.max_tokens {
            self.flush()?;
        }
        let at = (self.shards.len(), self.buf.len() / self.width.bytes());
        for &id in ids.iter().chain([&eos]) {
            match self.width {
                Width::U16le => self.buf.extend_from_slice(&(id as u16).to_le_bytes()),
                Width::U32le => self.buf.extend_from_slice(&id.to_le_bytes()),
            }
        }
        Ok(at)
    }

    fn flush(&mut self) -> Result<(), CorpusError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let file = format!("{}-{:05}.bin", self.prefix, self.shards.len());
        let path = self.dir.join(&file);
        let io = |source| CorpusError::Io { path: path.clone(), source };
        let mut f = std::fs::File::create(&path).map_err(io)?;
        f.write_all(&self.buf).map_err(io)?;
        f.sync_all().map_err(io)?;
        let sha256 = hex(&Sha256::digest(&self.buf));
        self.shards.push(ShardInfo { file, tokens: self.buf.len() / self.width.bytes(), sha256 });
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered and lists the shards.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>, CorpusError> {
        self.flush()?;
        Ok(self.shards)
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A split's token stream, memory-mapped from its shards (read-only; the files are this program's own output, checked
/// against their SHA-256 when opened).
#[derive(Debug)]
pub struct MappedTokens {
    maps: Vec<memmap2::Mmap>,
    /// Token offset where each shard starts, and the total at the end.
    starts: Vec<usize>,
    width: Width,
}

impl MappedTokens {
    /// Maps `shards` from `dir`, checking each file's size and hash.
    pub fn open(dir: &Path, shards: &[ShardInfo], width: Width) -> Result<Self, CorpusError> {
        let mut maps = Vec::with_capacity(shards.len());
        let mut starts = vec![0];
        for s in shards {
            let path = dir.join(&s.file);
            let corrupt = |why: String| CorpusError::Corrupt { path: path.clone(), why };
            let file = std::fs::File::open(&path).map_err(|source| CorpusError::Io { path: path.clone(), source })?;
            // SAFETY: the mapping is read-only and the file is checked below; a file changed by another program
            // while training runs would change the tokens read, not memory safety of this process's own data.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| CorpusError::Io { path: path.clone(), source })?;
            if map.len() != s.tokens * width.bytes() {
                return Err(corrupt(format!("{} bytes, the manifest says {} tokens of {} bytes", map.len(), s.tokens, width.bytes())));
            }
            let sha = hex(&Sha256::digest(&map[..]));
            if sha != s.sha256 {
                return Err(corrupt(format!("SHA-256 {sha}, the manifest says {}", s.sha256)));
            }
            starts.push(starts.last().copied().unwrap_or(0) + s.tokens);
            maps.push(map);
        }
        Ok(Self { maps, starts, width })
    }

    /// Tokens in the split.
    pub fn len(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Token offset in the stream where shard `shard` starts (`None` past the last shard).
    pub fn shard_start(&self, shard: usize) -> Option<usize> {
        (shard < self.maps.len()).then(|| self.starts[shard])
    }

    /// True when the split has no tokens.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens `start..end` of the stream (across shard boundaries). Panics past the end, as slicing does.
    pub fn range(&self, start: usize, end: usize) -> Vec<u32> {
        assert!(start <= end && end <= self.len(), "tokens {start}..{end} of {}", self.len());
        let mut out = Vec::with_capacity(end - start);
        let mut shard = self.starts.partition_point(|&s| s <= start).saturating_sub(1);
        let mut at = start;
        while at < end {
            let (lo, hi) = (self.starts[shard], self.starts[shard + 1]);
            let stop = end.min(hi);
            let bytes = &self.maps[shard][(at - lo) * self.width.bytes()..(stop - lo) * self.width.bytes()];
            match self.width {
                Width::U16le => out.extend(bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]) as u32)),
                Width::U32le => out.extend(bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            }
            at = stop;
            shard += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_across_shards_and_corruption_is_caught() {
        let dir = std::env::temp_dir().join(format!("hnet-shards-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for width in [Width::U16le, Width::U32le] {
            let mut w = ShardWriter::new(&dir, &format!("{width:?}"), width, 8);
            let docs: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![4, 5, 6, 7], vec![40_000; 12], vec![9]];
            let at: Vec<(usize, usize)> = docs.iter().map(|d| w.push(d, 50_256).unwrap()).collect();
            // The second document does not fit beside the first (4 + 5 > 8), the long one gets a shard alone.
            assert_eq!(at, [(0, 0), (1, 0), (2, 0), (3, 0)]);
            let shards = w.finish().unwrap();
            assert_eq!(shards.iter().map(|s| s.tokens).collect::<Vec<_>>(), [4, 5, 13, 2]);
            let m = MappedTokens::open(&dir, &shards, width).unwrap();
            let all: Vec<u32> = docs.iter().flat_map(|d| d.iter().copied().chain([50_256])).collect();
            assert_eq!(m.range(0, m.len()), all);
            assert_eq!(m.range(2, 11), all[2..11]);
            let mut bad = shards.clone();
            bad[1].sha256 = "00".into();
            assert!(matches!(MappedTokens::open(&dir, &bad, width), Err(CorpusError::Corrupt { .. })));
            bad[1].tokens += 1;
            assert!(MappedTokens::open(&dir, &bad, width).unwrap_err().to_string().contains("bytes"));
        }
        assert_eq!((Width::for_vocab(50_257), Width::for_vocab(100_000)), (Width::U16le, Width::U32le));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
