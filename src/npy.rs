//! NumPy `.npy` files (format 1.0) of little-endian f32, written through
//! [`crate::atomic_file`], so a failed write never leaves half a file.

use anyhow::{Context, Result};

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

/// Writes `data` (C order, `shape.iter().product()` values) to `path` as `.npy`, crash-safely
/// ([`crate::atomic_file`]).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "npy: shape vs data"
    );
    crate::atomic_file::write_atomic(path, |w| {
        let io = || format!("{}: write failed", path.display());
        w.write_all(&header(shape)).with_context(io)?;
        for v in data {
            w.write_all(&v.to_le_bytes()).with_context(io)?;
        }
        Ok(())
    })
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
