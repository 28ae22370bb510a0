//! Per-tensor quantization error: what `gq quantize --report` and `gq inspect --report` write.
//!
//! For every tensor: the type chosen and the rule that chose it, bits per weight, and the error
//! of the stored values against the checkpoint's (RMSE, relative MSE ‖w − ŵ‖²/‖w‖², cosine
//! similarity, largest absolute error). Sums run in f64 per chunk of rows and chunks are merged
//! in file order, so a report does not depend on the thread count.

use crate::gguf::GgmlType;
use anyhow::{anyhow, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Error sums over some elements of one tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorSums {
    /// Elements.
    pub n: u64,
    /// Σ (w − ŵ)².
    pub sq_err: f64,
    /// Σ w².
    pub sq_ref: f64,
    /// Σ ŵ².
    pub sq_out: f64,
    /// Σ w·ŵ.
    pub dot: f64,
    /// max |w − ŵ|.
    pub max_abs_err: f64,
}

impl ErrorSums {
    /// The sums of `reference` (the checkpoint's values) against `stored` (what the file holds,
    /// dequantized).
    pub fn of(reference: &[f32], stored: &[f32]) -> ErrorSums {
        let mut s = ErrorSums {
            n: reference.len() as u64,
            ..Default::default()
        };
        for (&w, &q) in reference.iter().zip(stored) {
            let (w, q) = (w as f64, q as f64);
            let e = w - q;
            s.sq_err += e * e;
            s.sq_ref += w * w;
            s.sq_out += q * q;
            s.dot += w * q;
            s.max_abs_err = s.max_abs_err.max(e.abs());
        }
        s
    }

    /// The sums of the values `reference` against their quantization `bytes` of type `ty`
    /// (dequantized with the type's reference dequantizer).
    pub fn of_quantized(reference: &[f32], ty: GgmlType, bytes: &[u8]) -> Result<ErrorSums> {
        let f = gq_kernels::format(ty).ok_or_else(|| anyhow!("type {ty}: no dequantizer"))?;
        let mut stored = vec![0f32; reference.len()];
        f.dequantize_row(bytes, &mut stored);
        Ok(ErrorSums::of(reference, &stored))
    }

    /// [`ErrorSums::of_quantized`] for whole rows of `row` elements, dequantized row by row (the
    /// TurboQuant types decode per row, with the file's parameters `tq`).
    pub fn of_quantized_rows(
        reference: &[f32],
        ty: GgmlType,
        bytes: &[u8],
        row: usize,
        tq: Option<&gq_kernels::TqParams>,
    ) -> Result<ErrorSums> {
        if !ty.is_turboquant() {
            return Self::of_quantized(reference, ty, bytes);
        }
        let p = tq.ok_or_else(|| anyhow!("type {ty}: no gq.tq parameters"))?;
        let rb = ty
            .row_bytes(row)
            .ok_or_else(|| anyhow!("type {ty}: rows of {row} are not whole blocks"))?;
        let mut stored = vec![0f32; reference.len()];
        for (b, y) in bytes.chunks_exact(rb).zip(stored.chunks_exact_mut(row)) {
            gq_kernels::formats::tq::dequantize_row(ty, p, b, y);
        }
        Ok(ErrorSums::of(reference, &stored))
    }

    /// Adds another chunk's sums.
    pub fn add(&mut self, o: &ErrorSums) {
        self.n += o.n;
        self.sq_err += o.sq_err;
        self.sq_ref += o.sq_ref;
        self.sq_out += o.sq_out;
        self.dot += o.dot;
        self.max_abs_err = self.max_abs_err.max(o.max_abs_err);
    }
}

/// One row of a report.
#[derive(Clone, Debug, Serialize)]
pub struct TensorReport {
    /// GGUF tensor name.
    pub name: String,
    /// Dims in ggml order.
    pub dims: Vec<u64>,
    /// Stored type.
    #[serde(rename = "type")]
    pub ty: String,
    /// The rule that chose the type.
    pub rule: String,
    /// Bits per weight of this tensor's data.
    pub bits_per_weight: f64,
    /// Root mean square error.
    pub rmse: f64,
    /// ‖w − ŵ‖² / ‖w‖² (0 for an all-zero tensor stored exactly).
    pub rel_mse: f64,
    /// ⟨w, ŵ⟩ / (‖w‖·‖ŵ‖) (1 when both are zero).
    pub cosine: f64,
    /// Largest absolute error.
    pub max_abs_err: f64,
}

impl TensorReport {
    /// A report row from a tensor's description and its accumulated sums.
    pub fn new(name: &str, dims: &[u64], ty: GgmlType, rule: String, s: &ErrorSums) -> Self {
        let n = s.n.max(1) as f64;
        let bytes = ty.tensor_bytes(dims[0] as usize, s.n as usize).unwrap_or(0);
        let rel_mse = if s.sq_ref > 0.0 {
            s.sq_err / s.sq_ref
        } else if s.sq_err == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        let denom = (s.sq_ref * s.sq_out).sqrt();
        let cosine = if denom > 0.0 {
            s.dot / denom
        } else if s.sq_ref == s.sq_out {
            1.0
        } else {
            0.0
        };
        TensorReport {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty: ty.name().to_string(),
            rule,
            bits_per_weight: bytes as f64 * 8.0 / n,
            rmse: (s.sq_err / n).sqrt(),
            rel_mse,
            cosine,
            max_abs_err: s.max_abs_err,
        }
    }
}

/// The report of an existing GGUF file against the checkpoint it was made from: every tensor's
/// stored values (dequantized) against the checkpoint's, and the rule gq's plan gives for the
/// file's `general.file_type` (or a note where the file's type is not gq's choice).
pub fn inspect_report(gguf: &Path, checkpoint: &Path) -> Result<Vec<TensorReport>> {
    use crate::gemma4::mixture::QuantOptions;
    use crate::gemma4::{FileType, Source};
    use crate::gguf::{GgufFile, MetaValue};
    let g = GgufFile::open(gguf)?;
    let ft = match g.metadata.get("general.file_type") {
        Some(MetaValue::U32(id)) => FileType::from_id(*id),
        _ => None,
    }
    .ok_or_else(|| anyhow!("{}: no general.file_type gq knows", gguf.display()))?;
    let qopts = QuantOptions {
        has_imatrix: g.metadata.get("quantize.imatrix.file").is_some(),
        ..Default::default()
    };
    let tq = crate::gguf::turboquant::read_params(&g.metadata, g.tensors.iter().map(|t| t.ty))
        .map_err(|e| anyhow!("{}: {e}", gguf.display()))?;
    let qopts = QuantOptions {
        tq_seed: tq.map(|p| p.seed),
        ..qopts
    };
    let (ckpt, plan) = crate::pipeline::open_and_plan(checkpoint, ft, &qopts)?;
    let mut rows = Vec::with_capacity(g.tensors.len());
    for t in &g.tensors {
        let p = plan
            .tensors
            .iter()
            .find(|p| p.out.name == t.name)
            .ok_or_else(|| {
                anyhow!(
                    "{}: tensor {} has no counterpart in {}",
                    gguf.display(),
                    t.name,
                    checkpoint.display()
                )
            })?;
        if p.out.dims != t.dims {
            anyhow::bail!(
                "{}: tensor {} has dims {:?}, the checkpoint gives {:?}",
                gguf.display(),
                t.name,
                t.dims,
                p.out.dims
            );
        }
        let rule = if p.out.ty == t.ty {
            p.rule.to_string()
        } else {
            format!(
                "not gq's choice for {} (gq: {}, {})",
                ft.name(),
                p.out.ty,
                p.rule
            )
        };
        let row = t.dims[0] as usize;
        let n = t.dims.iter().product::<u64>() as usize;
        let data = g.tensor_data(t);
        let row_bytes = t.ty.row_bytes(row).ok_or_else(|| {
            anyhow!(
                "{}: tensor {}: rows are not whole blocks",
                gguf.display(),
                t.name
            )
        })?;
        // The pipeline's chunks, so that the sums (and the report) are the same bits.
        let rows_per = (crate::pipeline::CHUNK_ELEMENTS / row).max(1);
        let mut sums = ErrorSums::default();
        let mut vals = Vec::new();
        let mut first = 0;
        while first < n {
            let m = (rows_per * row).min(n - first);
            vals.resize(m, 0f32);
            match &p.source {
                Source::Values(v) => vals.copy_from_slice(&v[first..first + m]),
                Source::Checkpoint { index, .. } => {
                    let r = &ckpt.tensors[*index];
                    ckpt.read_f32(r, first, &mut vals)
                        .map_err(|e| anyhow!("{}: tensor {}: {e}", checkpoint.display(), r.name))?;
                }
            }
            let bytes = &data[first / row * row_bytes..(first + m) / row * row_bytes];
            sums.add(&ErrorSums::of_quantized_rows(
                &vals,
                t.ty,
                bytes,
                row,
                tq.as_ref(),
            )?);
            first += m;
        }
        rows.push(TensorReport::new(&t.name, &t.dims, t.ty, rule, &sums));
    }
    Ok(rows)
}

/// Writes `rows` to `path` as CSV (a `.csv` name) or JSON (anything else), crash-safely
/// ([`crate::atomic_file`]).
pub fn write(path: &Path, rows: &[TensorReport]) -> Result<()> {
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut out = Vec::new();
    if csv {
        writeln!(
            out,
            "name,dims,type,rule,bits_per_weight,rmse,rel_mse,cosine,max_abs_err"
        )?;
        for r in rows {
            let dims: Vec<String> = r.dims.iter().map(u64::to_string).collect();
            writeln!(
                out,
                "{},{},{},\"{}\",{},{:e},{:e},{},{:e}",
                r.name,
                dims.join("x"),
                r.ty,
                r.rule.replace('"', "\"\""),
                r.bits_per_weight,
                r.rmse,
                r.rel_mse,
                r.cosine,
                r.max_abs_err
            )?;
        }
    } else {
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "tensors": rows }))?;
        out.push(b'\n');
    }
    crate::atomic_file::write_bytes_atomic(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_derived_values() {
        let w = [1.0f32, -2.0, 0.5, 0.0];
        let q = [1.0f32, -1.5, 0.5, 0.25];
        let s = ErrorSums::of(&w, &q);
        assert_eq!(s.sq_err, 0.25 + 0.0625);
        assert_eq!(s.max_abs_err, 0.5);
        let r = TensorReport::new("t", &[4], GgmlType::F32, "converter".into(), &s);
        assert!((r.rmse - (0.3125f64 / 4.0).sqrt()).abs() < 1e-15);
        assert!((r.rel_mse - 0.3125 / 5.25).abs() < 1e-15);
        assert_eq!(r.bits_per_weight, 32.0);
        let mut a = ErrorSums::of(&w[..2], &q[..2]);
        a.add(&ErrorSums::of(&w[2..], &q[2..]));
        assert_eq!(a, s);
        let exact = ErrorSums::of(&[0.0; 3], &[0.0; 3]);
        let r = TensorReport::new("z", &[3], GgmlType::F32, String::new(), &exact);
        assert_eq!((r.rel_mse, r.cosine), (0.0, 1.0));
    }
}
