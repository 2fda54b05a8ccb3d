//! A safetensors file read as it arrives, for the browser: the page's Hub loader feeds the download's pieces in
//! ([`Streamed::push`]) and each tensor is kept, as stored, once its bytes are complete, so the whole file is never
//! held in one buffer. The tensors ([`Tensors`]) are then consumed one by one as the model takes them
//! ([`crate::io::hf::from_hub_tensors`]): a stored tensor's bytes are freed as its f32 parameter is made, and the
//! memory alive at any moment is the model built so far plus the tensors not yet taken.
//!
//! The format: 8 bytes of little-endian header length `n`, `n` bytes of JSON (`{name: {dtype, shape,
//! data_offsets: [begin, end]}, "__metadata__": {…}}`), then the tensors' bytes, offsets counted from the end of
//! the header. The offsets must cover the data exactly, without gaps or overlaps, as the safetensors crate demands
//! of a whole file.

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;

use crate::error::LoadError;

/// The largest header accepted (the safetensors crate's own limit).
const MAX_HEADER: u64 = 100 << 20;

/// A floating-point dtype this crate widens to f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Float {
    F32,
    F16,
    BF16,
}

impl Float {
    /// The dtype named as safetensors names it (`None`: not one we load).
    pub(crate) fn from_name(name: &str) -> Option<Float> {
        match name {
            "F32" => Some(Float::F32),
            "F16" => Some(Float::F16),
            "BF16" => Some(Float::BF16),
            _ => None,
        }
    }

    /// Little-endian bytes of this dtype as f32 values (f16 and bf16 widened exactly).
    pub(crate) fn widen(self, data: &[u8]) -> Vec<f32> {
        match self {
            Float::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Float::F16 => data.chunks_exact(2).map(|b| crate::io::half::f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
            Float::BF16 => data.chunks_exact(2).map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)).collect(),
        }
    }
}

/// Bytes per element of a safetensors dtype (`None`: a name the format does not have).
fn element_bytes(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" | "C64" => 8,
        _ => return None,
    })
}

/// One stored tensor: its dtype's name, shape and bytes as the file holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTensor {
    /// The dtype as the file names it (`F32`, `BF16`, …).
    pub dtype: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// The little-endian bytes.
    pub data: Vec<u8>,
}

/// The tensors of one or more safetensors files, by name, each kept as stored until it is taken.
#[derive(Debug, Default)]
pub struct Tensors {
    pub(crate) map: BTreeMap<String, StoredTensor>,
}

impl Tensors {
    /// Adds the tensors of another file (a shard); a name in both is an error naming the file.
    pub fn extend(&mut self, other: Tensors, what: &str) -> Result<(), LoadError> {
        for (name, tensor) in other.map {
            if self.map.contains_key(&name) {
                return Err(LoadError::Format { what: what.into(), reason: format!("tensor `{name}` appears twice") });
            }
            self.map.insert(name, tensor);
        }
        Ok(())
    }

    /// How many tensors.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// Where the reader is in the file.
enum Stage {
    /// Reading the 8-byte header length.
    Length,
    /// Reading the header's `n` bytes.
    Header(u64),
    /// Reading tensors' bytes: the ones to come in file order, the first of them being filled.
    Data(VecDeque<(String, StoredTensor, usize)>),
}

/// A safetensors file being received piece by piece.
pub struct Streamed {
    what: String,
    /// The file's size when known: the header must account for exactly that many bytes.
    size: Option<u64>,
    stage: Stage,
    /// Bytes of the length or header received so far.
    pending: Vec<u8>,
    done: Tensors,
}

impl Streamed {
    /// Starts reading the file `what` (named in errors), `size` bytes long when the server said so.
    pub fn new(what: &str, size: Option<u64>) -> Self {
        Streamed { what: what.into(), size, stage: Stage::Length, pending: Vec::new(), done: Tensors::default() }
    }

    fn err(&self, reason: impl Into<String>) -> LoadError {
        LoadError::Format { what: self.what.clone(), reason: reason.into() }
    }

    /// Takes the next piece of the file.
    pub fn push(&mut self, mut piece: &[u8]) -> Result<(), LoadError> {
        while !piece.is_empty() {
            match &mut self.stage {
                Stage::Length => {
                    let take = (8 - self.pending.len()).min(piece.len());
                    self.pending.extend_from_slice(&piece[..take]);
                    piece = &piece[take..];
                    if self.pending.len() == 8 {
                        let n = u64::from_le_bytes(self.pending[..8].try_into().expect("eight bytes"));
                        if n > MAX_HEADER || self.size.is_some_and(|s| n > s.saturating_sub(8)) {
                            return Err(self.err(format!("a header of {n} bytes (the file is not safetensors, or is cut off)")));
                        }
                        self.pending.clear();
                        self.stage = Stage::Header(n);
                    }
                }
                Stage::Header(n) => {
                    let n = *n as usize;
                    let take = (n - self.pending.len()).min(piece.len());
                    self.pending.extend_from_slice(&piece[..take]);
                    piece = &piece[take..];
                    if self.pending.len() == n {
                        let header = std::mem::take(&mut self.pending);
                        self.stage = Stage::Data(self.plan(&header)?);
                        self.move_finished();
                    }
                }
                Stage::Data(queue) => {
                    let Some((_, tensor, want)) = queue.front_mut() else {
                        return Err(self.err("more bytes than its header accounts for"));
                    };
                    let take = (*want - tensor.data.len()).min(piece.len());
                    tensor.data.extend_from_slice(&piece[..take]);
                    piece = &piece[take..];
                    self.move_finished();
                }
            }
        }
        Ok(())
    }

    /// Moves every complete tensor at the front of the queue to the finished ones.
    fn move_finished(&mut self) {
        let Stage::Data(queue) = &mut self.stage else { return };
        while queue.front().is_some_and(|(_, t, want)| t.data.len() == *want) {
            let (name, tensor, _) = queue.pop_front().expect("a front");
            self.done.map.insert(name, tensor);
        }
    }

    /// The tensors in file order, each with its byte count and room reserved, from the header's JSON.
    fn plan(&self, header: &[u8]) -> Result<VecDeque<(String, StoredTensor, usize)>, LoadError> {
        let mut entries: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(header).map_err(|e| self.err(format!("its header is not JSON: {e}")))?;
        entries.remove("__metadata__");
        let mut tensors = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            let entry: Entry = serde_json::from_value(value).map_err(|e| self.err(format!("tensor `{name}`: {e}")))?;
            let (begin, end) = entry.data_offsets;
            let element = element_bytes(&entry.dtype).ok_or_else(|| self.err(format!("tensor `{name}`: unknown dtype {}", entry.dtype)))?;
            let bytes = entry.shape.iter().try_fold(element as u64, |acc, &d| acc.checked_mul(d as u64));
            if end < begin || bytes != Some(end - begin) {
                return Err(
                    self.err(format!("tensor `{name}`: its offsets {begin}..{end} do not hold shape {:?} of {}", entry.shape, entry.dtype))
                );
            }
            tensors.push((begin, end, name, entry));
        }
        tensors.sort_by_key(|t| (t.0, t.1));
        let mut at = 0u64;
        for (begin, end, name, _) in &tensors {
            if *begin != at {
                return Err(self.err(format!("tensor `{name}` starts at {begin}, the data before it ends at {at} (a gap or overlap)")));
            }
            at = *end;
        }
        let header_len = header.len() as u64;
        if let Some(size) = self.size {
            if 8 + header_len + at != size {
                return Err(self.err(format!("its header accounts for {} bytes, the file has {size}", 8 + header_len + at)));
            }
        }
        let mut queue = VecDeque::with_capacity(tensors.len());
        for (begin, end, name, entry) in tensors {
            let want =
                usize::try_from(end - begin).map_err(|_| self.err(format!("tensor `{name}` is larger than this machine's memory")))?;
            let mut data = Vec::new();
            // Exactly its size, once: growing by doublings would copy the largest tensors and hold twice their bytes.
            data.try_reserve_exact(want).map_err(|_| self.err(format!("tensor `{name}` ({want} bytes) does not fit in memory")))?;
            queue.push_back((name, StoredTensor { dtype: entry.dtype, shape: entry.shape, data }, want));
        }
        Ok(queue)
    }

    /// The tensors, once the whole file has arrived.
    pub fn finish(self) -> Result<Tensors, LoadError> {
        match &self.stage {
            Stage::Data(queue) if queue.is_empty() => Ok(self.done),
            Stage::Data(queue) => Err(self.err(format!("cut off in tensor `{}`", queue.front().map_or("", |t| t.0.as_str())))),
            _ => Err(self.err("cut off before the end of its header")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    fn file() -> Vec<u8> {
        let a: Vec<u8> = [1.0f32, -2.0, 3.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b: Vec<u8> = [0x3f80u16, 0xc000].iter().flat_map(|v| v.to_le_bytes()).collect();
        let tensors = vec![
            ("a", TensorView::new(Dtype::F32, vec![3], &a).unwrap()),
            ("b", TensorView::new(Dtype::BF16, vec![1, 2], &b).unwrap()),
            ("empty", TensorView::new(Dtype::F32, vec![0, 4], &[]).unwrap()),
        ];
        safetensors::serialize(tensors, None).unwrap()
    }

    #[test]
    fn every_split_of_the_file_gives_the_same_tensors() {
        let bytes = file();
        let whole = {
            let mut s = Streamed::new("f", Some(bytes.len() as u64));
            s.push(&bytes).unwrap();
            s.finish().unwrap()
        };
        assert_eq!(whole.len(), 3);
        assert_eq!(Float::F32.widen(&whole.map["a"].data), vec![1.0, -2.0, 3.5]);
        assert_eq!(Float::BF16.widen(&whole.map["b"].data), vec![1.0, -2.0]);
        assert_eq!(whole.map["b"].shape, vec![1, 2]);
        for piece in [1, 3, 7, 8, 9, 13] {
            let mut s = Streamed::new("f", None);
            for chunk in bytes.chunks(piece) {
                s.push(chunk).unwrap();
            }
            assert_eq!(s.finish().unwrap().map, whole.map, "pieces of {piece} bytes");
        }
    }

    #[test]
    fn a_cut_off_or_padded_file_is_refused() {
        let bytes = file();
        for cut in [0, 5, 8, 20, bytes.len() - 1] {
            let mut s = Streamed::new("f", None);
            s.push(&bytes[..cut]).unwrap();
            let err = s.finish().unwrap_err().to_string();
            assert!(err.contains("cut off"), "{cut}: {err}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        let mut s = Streamed::new("f", None);
        assert!(s.push(&padded).unwrap_err().to_string().contains("more bytes than its header"));
        // A declared size the header does not account for is refused before any tensor is read.
        let mut s = Streamed::new("f", Some(bytes.len() as u64 + 10));
        let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert!(s.push(&bytes[..header_end]).unwrap_err().to_string().contains("accounts for"));
    }

    #[test]
    fn a_hostile_header_is_refused_without_allocating_it() {
        // A header length of 2^40: refused at once.
        let mut s = Streamed::new("f", None);
        assert!(s.push(&(1u64 << 40).to_le_bytes()).unwrap_err().to_string().contains("header of"));
        let header = |json: &str| [(json.len() as u64).to_le_bytes().to_vec(), json.as_bytes().to_vec()].concat();
        // A tensor that claims 2^62 bytes: its offsets do not match its shape, or it cannot be reserved.
        for json in [
            r#"{"x":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}}"#,
            r#"{"x":{"dtype":"U8","shape":[4611686018427387904],"data_offsets":[0,4611686018427387904]}}"#,
            r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            r#"{"x":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#,
            r#"["not", "a", "map"]"#,
        ] {
            let mut s = Streamed::new("f", None);
            assert!(matches!(s.push(&header(json)), Err(LoadError::Format { .. })), "{json}");
        }
    }
}
