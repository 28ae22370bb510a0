//! NumPy `.npy` files (format 1.0) of little-endian f32, written to a temporary file beside the
//! target and renamed over it when complete, so a failed write never leaves half a file.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// The `.npy` header for a C-order f32 array of `shape`.
pub fn header(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + header length (2) + dict + '\n' is a multiple of 64.
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    dict.push('\n');
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h
}

/// Writes `data` (C order, `shape.iter().product()` values) to `path` as `.npy`.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "npy: shape vs data"
    );
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    let mut w = std::io::BufWriter::new(tmp.as_file_mut());
    w.write_all(&header(shape))?;
    for v in data {
        w.write_all(&v.to_le_bytes())?;
    }
    w.flush()
        .with_context(|| format!("{}: write failed", path.display()))?;
    drop(w);
    tmp.persist(path)
        .with_context(|| format!("{}: cannot rename the finished file", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_is_aligned() {
        let h = super::header(&[3, 2048]);
        assert_eq!(h.len() % 64, 0);
        assert!(String::from_utf8_lossy(&h).contains("'shape': (3, 2048), }"));
        assert_eq!(*h.last().unwrap(), b'\n');
    }
}
