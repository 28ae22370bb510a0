//! The baseline cache: what `gq ppl --baseline` keeps of the baseline model's distributions so
//! that a sweep over quantized files runs the baseline once.
//!
//! One file per (baseline model identity, text, context, chunks, record tolerance, format),
//! named by a hash of that key, which is also stored in the file and compared in full on
//! reading. Layout (little-endian):
//!
//! ```text
//! "GQBASE02"                       8 bytes
//! header length                    u64
//! header                           JSON: the key
//! tokens                           u32 × chunks · ctx (the evaluated tokens, as tokenized)
//! records                          one per scored position, chunk by chunk, in position order:
//!   tail mass f64, nll f32, n u32, n × token id u32, n × ln p f32       (16 + 8n bytes)
//! checksum                         u64, FNV-1a of every byte before it
//! ```
//!
//! A record lists the baseline's most likely tokens until the mass of the others is at most the
//! tolerance (default 10⁻³), at most a cap (default 8 192) — docs/eval.md gives the sizes and
//! what the tolerance costs in KLD accuracy.
//!
//! Files are written to a temporary file in the cache directory, flushed to disk, then renamed
//! into place: a reader sees a whole file or none; an error or an interruption removes the
//! temporary file. A reader checks the whole file (key, tokens, layout, checksum) in one
//! sequential pass before using it, then reads one chunk's records at a time.

use super::stats::{BaseRecord, RecordSpec};
use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"GQBASE02";

/// 64-bit FNV-1a.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub fn finish(self) -> u64 {
        self.0
    }

    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> u64 {
        let mut h = Fnv::default();
        h.write(bytes);
        h.finish()
    }
}

/// What identifies a model's weights without reading them: its canonical path and, for each file
/// the weights come from (the GGUF; a checkpoint's `*.safetensors`, `config.json` and index), the
/// name, length and modification time. Rewriting or touching the baseline makes a new key.
pub fn model_identity(path: &Path) -> Result<serde_json::Value> {
    let canon = std::fs::canonicalize(path)
        .with_context(|| format!("{}: cannot resolve the path", path.display()))?;
    let stamp = |p: &Path| -> Result<serde_json::Value> {
        let m = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos().to_string())
            .unwrap_or_default();
        Ok(serde_json::json!({
            "name": p.file_name().map(|n| n.to_string_lossy().into_owned()),
            "bytes": m.len(),
            "mtime_ns": mtime,
        }))
    };
    let files = if canon.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&canon)
            .with_context(|| format!("{}: cannot list", canon.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                n.ends_with(".safetensors") || n == "config.json" || n.ends_with(".index.json")
            })
            .collect();
        names.sort();
        names.iter().map(|p| stamp(p)).collect::<Result<Vec<_>>>()?
    } else {
        vec![stamp(&canon)?]
    };
    Ok(serde_json::json!({ "path": canon.to_string_lossy(), "files": files }))
}

/// The key of a cache file.
#[derive(Clone, Debug)]
pub struct CacheKey {
    /// The JSON compared on reading.
    pub json: serde_json::Value,
    /// Evaluated chunks.
    pub n_chunks: usize,
    /// Context length.
    pub ctx: usize,
    /// Scored positions per chunk.
    pub scored: usize,
}

impl CacheKey {
    /// The key of a baseline evaluation.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        baseline: &Path,
        text: &[u8],
        ctx: usize,
        n_chunks: usize,
        scored: usize,
        spec: RecordSpec,
        n_vocab: usize,
    ) -> Result<CacheKey> {
        let json = serde_json::json!({
            "format": "gq baseline cache 2",
            "gq": env!("CARGO_PKG_VERSION"),
            "baseline": model_identity(baseline)?,
            "text": { "bytes": text.len(), "fnv1a64": format!("{:016x}", Fnv::of(text)) },
            "ctx": ctx,
            "chunks": n_chunks,
            "scored_per_chunk": scored,
            "record_tail": spec.tail,
            "record_max_tokens": spec.max_tokens,
            "n_vocab": n_vocab,
        });
        Ok(CacheKey {
            json,
            n_chunks,
            ctx,
            scored,
        })
    }

    /// The key with one more field (how the baseline was computed).
    pub fn with(mut self, field: &str, value: impl Into<serde_json::Value>) -> CacheKey {
        self.json[field] = value.into();
        self
    }

    /// The file name for this key.
    pub fn file_name(&self) -> String {
        format!(
            "base-{:016x}.gqbase",
            Fnv::of(self.json.to_string().as_bytes())
        )
    }
}

/// The default cache directory: `$GQ_CACHE_DIR`, else `$XDG_CACHE_HOME/gq`, else
/// `~/.cache/gq`; baseline files go to its `baselines/`.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("GQ_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("gq")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/gq")))?;
    Some(base.join("baselines"))
}

/// A cache file being written.
pub struct CacheWriter {
    tmp: std::io::BufWriter<crate::atomic_file::AtomicFile>,
    hash: Fnv,
    target: PathBuf,
    key: CacheKey,
    records: usize,
}

impl CacheWriter {
    /// Starts `dir/<key's file name>` (as a temporary file in `dir`) with the evaluated tokens.
    pub fn create(dir: &Path, key: &CacheKey, tokens: &[u32]) -> Result<CacheWriter> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the cache directory", dir.display()))?;
        let target = dir.join(key.file_name());
        // Temp file beside the target, umask permissions, removed on error and on SIGINT/SIGTERM;
        // one left by `kill -9` is cleaned by the next run (crate::atomic_file).
        let tmp = crate::atomic_file::AtomicFile::create(&target)?;
        let mut w = CacheWriter {
            tmp: std::io::BufWriter::with_capacity(1 << 20, tmp),
            hash: Fnv::default(),
            target,
            key: key.clone(),
            records: 0,
        };
        assert_eq!(tokens.len(), key.n_chunks * key.ctx);
        let header = key.json.to_string();
        w.put(MAGIC)?;
        w.put(&(header.len() as u64).to_le_bytes())?;
        w.put(header.as_bytes())?;
        let mut tb = Vec::with_capacity(4 * tokens.len());
        for t in tokens {
            tb.extend_from_slice(&t.to_le_bytes());
        }
        w.put(&tb)?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.hash.write(b);
        self.tmp
            .write_all(b)
            .with_context(|| format!("{}: write failed", self.target.display()))
    }

    /// Appends the next record.
    pub fn push(&mut self, r: &BaseRecord) -> Result<()> {
        assert_eq!(r.ids.len(), r.log_probs.len());
        let mut b = Vec::with_capacity(16 + 8 * r.ids.len());
        b.extend_from_slice(&r.tail.to_le_bytes());
        b.extend_from_slice(&r.nll.to_le_bytes());
        b.extend_from_slice(&(r.ids.len() as u32).to_le_bytes());
        for i in &r.ids {
            b.extend_from_slice(&i.to_le_bytes());
        }
        for p in &r.log_probs {
            b.extend_from_slice(&p.to_le_bytes());
        }
        self.records += 1;
        self.put(&b)
    }

    /// Writes the checksum, flushes the file to disk and renames it into place. Returns its path
    /// and size.
    pub fn finish(mut self) -> Result<(PathBuf, u64)> {
        let want = self.key.n_chunks * self.key.scored;
        if self.records != want {
            bail!(
                "{}: {} records written, {want} expected",
                self.target.display(),
                self.records
            );
        }
        let sum = self.hash.finish();
        self.tmp
            .write_all(&sum.to_le_bytes())
            .with_context(|| format!("{}: write failed", self.target.display()))?;
        let tmp = self
            .tmp
            .into_inner()
            .map_err(|e| anyhow!("{}: write failed: {}", self.target.display(), e.error()))?;
        crate::atomic_file::check_interrupted()?;
        let size = tmp.file().metadata().map(|m| m.len()).unwrap_or(0);
        let target = self.target;
        tmp.commit()?;
        Ok((target, size))
    }
}

/// A cache file being read: checked in full when opened (one sequential pass), then read chunk
/// by chunk, so that memory holds one chunk's records, not the file.
pub struct CacheReader {
    file: std::fs::File,
    /// Offset of each record, and the end of the last.
    at: Vec<u64>,
    key: CacheKey,
    /// Its path.
    pub path: PathBuf,
}

/// Why a cache file was not used.
#[derive(Debug)]
pub enum Miss {
    /// No file for this key.
    Absent,
    /// A file is there but cannot be used (named reason); it will be replaced.
    Unusable(String),
}

/// Reads a file sequentially, hashing what it reads.
struct Hashing {
    r: std::io::BufReader<std::fs::File>,
    h: Fnv,
    pos: u64,
    buf: Vec<u8>,
}

impl Hashing {
    fn take(&mut self, n: usize) -> std::io::Result<&[u8]> {
        use std::io::Read;
        self.buf.resize(n, 0);
        self.r.read_exact(&mut self.buf)?;
        self.h.write(&self.buf);
        self.pos += n as u64;
        Ok(&self.buf)
    }
}

fn parse_record(b: &[u8]) -> (BaseRecord, usize) {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let k = u32_at(12) as usize;
    let r = BaseRecord {
        tail: f64::from_le_bytes(b[0..8].try_into().unwrap()),
        nll: f32::from_bits(u32_at(8)),
        ids: (0..k).map(|i| u32_at(16 + 4 * i)).collect(),
        log_probs: (0..k)
            .map(|i| f32::from_bits(u32_at(16 + 4 * k + 4 * i)))
            .collect(),
    };
    (r, 16 + 8 * k)
}

impl CacheReader {
    /// Opens the file for `key` in `dir`, checking magic, header (the whole key), that it was made
    /// from `tokens`, the record layout and the checksum.
    pub fn open(dir: &Path, key: &CacheKey, tokens: &[u32]) -> std::result::Result<Self, Miss> {
        let path = dir.join(key.file_name());
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Miss::Absent),
            Err(e) => return Err(Miss::Unusable(format!("{}: {e}", path.display()))),
        };
        let bad = |why: &str| Miss::Unusable(format!("{}: {why}", path.display()));
        let io = |e: std::io::Error| Miss::Unusable(format!("{}: {e}", path.display()));
        let len = file.metadata().map_err(io)?.len();
        if len < 24 {
            return Err(bad("not a gq baseline cache"));
        }
        let body = len - 8;
        let mut r = Hashing {
            r: std::io::BufReader::with_capacity(1 << 20, file.try_clone().map_err(io)?),
            h: Fnv::default(),
            pos: 0,
            buf: Vec::new(),
        };
        if r.take(8).map_err(io)? != MAGIC {
            return Err(bad("not a gq baseline cache"));
        }
        let hl = u64::from_le_bytes(r.take(8).map_err(io)?.try_into().unwrap());
        let header = key.json.to_string();
        if hl != header.len() as u64 || 16 + hl > body {
            return Err(bad("made for another key"));
        }
        if r.take(hl as usize).map_err(io)? != header.as_bytes() {
            return Err(bad("made for another key"));
        }
        if tokens.len() != key.n_chunks * key.ctx || r.pos + 4 * tokens.len() as u64 > body {
            return Err(bad("made from other tokens"));
        }
        let same = r
            .take(4 * tokens.len())
            .map_err(io)?
            .chunks_exact(4)
            .zip(tokens)
            .all(|(b, &t)| u32::from_le_bytes(b.try_into().unwrap()) == t);
        if !same {
            return Err(bad("made from other tokens"));
        }
        let n = key.n_chunks * key.scored;
        let mut at = Vec::with_capacity(n + 1);
        for _ in 0..n {
            if r.pos + 16 > body {
                return Err(bad("truncated"));
            }
            at.push(r.pos);
            let h = r.take(16).map_err(io)?;
            let k = u32::from_le_bytes(h[12..16].try_into().unwrap()) as u64;
            if k == 0 || r.pos + 8 * k > body {
                return Err(bad("malformed records"));
            }
            r.take(8 * k as usize).map_err(io)?;
        }
        if r.pos != body {
            return Err(bad("malformed records"));
        }
        at.push(body);
        let sum = r.h.finish();
        use std::io::Read;
        let mut tail = [0u8; 8];
        r.r.read_exact(&mut tail).map_err(io)?;
        if u64::from_le_bytes(tail) != sum {
            return Err(bad("checksum mismatch"));
        }
        Ok(CacheReader {
            file,
            at,
            key: key.clone(),
            path,
        })
    }

    /// Size of the file.
    pub fn file_bytes(&self) -> u64 {
        self.at[self.at.len() - 1] + 8
    }

    /// The records of chunk `chunk`, in position order.
    pub fn chunk_records(&mut self, chunk: usize) -> Result<Vec<BaseRecord>> {
        use std::io::{Read, Seek, SeekFrom};
        let s = self.key.scored;
        let (a, b) = (self.at[chunk * s], self.at[(chunk + 1) * s]);
        let mut buf = vec![0u8; (b - a) as usize];
        self.file
            .seek(SeekFrom::Start(a))
            .and_then(|_| self.file.read_exact(&mut buf))
            .with_context(|| format!("{}: read failed", self.path.display()))?;
        let mut o = 0;
        let mut out = Vec::with_capacity(s);
        for _ in 0..s {
            let (r, used) = parse_record(&buf[o..]);
            out.push(r);
            o += used;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &Path) -> CacheKey {
        let model = dir.join("model.gguf");
        std::fs::write(&model, b"weights").unwrap();
        CacheKey::new(&model, b"some text", 4, 2, 1, RecordSpec::default(), 10).unwrap()
    }

    fn rec(x: f32) -> BaseRecord {
        let n = x as usize;
        BaseRecord {
            nll: x,
            tail: 0.25,
            ids: (0..n as u32).collect(),
            log_probs: (0..n).map(|i| -(i as f32) - x).collect(),
        }
    }

    #[test]
    fn written_file_reads_back_and_is_checked() {
        let d = tempfile::tempdir().unwrap();
        let k = key(d.path());
        let toks = [2, 5, 6, 7, 2, 8, 9, 1];
        let mut w = CacheWriter::create(d.path(), &k, &toks).unwrap();
        w.push(&rec(1.5)).unwrap();
        w.push(&rec(2.5)).unwrap();
        let (p, size) = w.finish().unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), size);
        // Only the finished file is left in the directory (and the model).
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
        let mut r = CacheReader::open(d.path(), &k, &toks).unwrap();
        assert_eq!(r.file_bytes(), size);
        assert_eq!(r.chunk_records(1).unwrap(), vec![rec(2.5)]);
        assert_eq!(r.chunk_records(0).unwrap(), vec![rec(1.5)]);
        drop(r);
        // Other tokens: not used.
        let other = [2, 5, 6, 7, 2, 8, 9, 3];
        assert!(matches!(
            CacheReader::open(d.path(), &k, &other),
            Err(Miss::Unusable(_))
        ));
        // A flipped byte: checksum mismatch.
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 20] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        match CacheReader::open(d.path(), &k, &toks) {
            Err(Miss::Unusable(m)) => assert!(m.contains("checksum"), "{m}"),
            _ => panic!("corrupt file accepted"),
        }
    }

    #[test]
    fn unfinished_or_failed_writes_leave_nothing() {
        let d = tempfile::tempdir().unwrap();
        let k = key(d.path());
        let toks = [0u32; 8];
        let mut w = CacheWriter::create(d.path(), &k, &toks).unwrap();
        w.push(&rec(1.0)).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let mut w = CacheWriter::create(d.path(), &k, &toks).unwrap();
        w.push(&rec(1.0)).unwrap();
        assert!(w.finish().is_err(), "a short file was finished");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        assert!(matches!(
            CacheReader::open(d.path(), &k, &toks),
            Err(Miss::Absent)
        ));
    }

    #[test]
    fn key_changes_with_each_input() {
        let d = tempfile::tempdir().unwrap();
        let model = d.path().join("m.gguf");
        std::fs::write(&model, b"w").unwrap();
        let s = RecordSpec::default();
        let s2 = RecordSpec { tail: 1e-4, ..s };
        let base = CacheKey::new(&model, b"t", 512, 4, 255, s, 9).unwrap();
        let names = [
            CacheKey::new(&model, b"u", 512, 4, 255, s, 9).unwrap(),
            CacheKey::new(&model, b"t", 256, 4, 127, s, 9).unwrap(),
            CacheKey::new(&model, b"t", 512, 5, 255, s, 9).unwrap(),
            CacheKey::new(&model, b"t", 512, 4, 255, s2, 9).unwrap(),
        ];
        for k in &names {
            assert_ne!(k.file_name(), base.file_name());
        }
        std::fs::write(&model, b"other").unwrap();
        let changed = CacheKey::new(&model, b"t", 512, 4, 255, s, 9).unwrap();
        assert_ne!(changed.file_name(), base.file_name());
    }
}
