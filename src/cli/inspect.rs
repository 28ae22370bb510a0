//! `gq inspect`: GGUF files and checkpoint directories, as text or JSON.

use crate::gemma4::Plan;
use crate::gguf::{GgufFile, MetaArray, MetaValue};
use crate::safetensors::Checkpoint;
use anyhow::Result;
use serde_json::{json, Value};
use std::path::Path;

/// Prints a GGUF file or checkpoint directory.
pub fn run(path: &Path, as_json: bool) -> Result<()> {
    if path.is_dir() {
        return checkpoint(path, as_json);
    }
    let f = GgufFile::open(path)?;
    if as_json {
        let meta: serde_json::Map<String, Value> = f
            .metadata
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    json!({"type": v.type_name(), "value": value_json(v)}),
                )
            })
            .collect();
        let tensors: Vec<Value> = f
            .tensors
            .iter()
            .map(|t| {
                json!({"name": t.name, "type": t.ty.name(), "shape": t.dims, "bytes": t.n_bytes,
                       "offset": f.data_start + t.offset})
            })
            .collect();
        let out = json!({"path": path, "version": f.version, "metadata": meta, "tensors": tensors});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "* {}: GGUF v{}, {} key/value pairs, {} tensors",
        path.display(),
        f.version,
        f.metadata.len(),
        f.tensors.len()
    );
    println!();
    for (i, (k, v)) in f.metadata.iter().enumerate() {
        println!(
            "{:5}: {:<14} | {} = {}",
            i + 1,
            v.type_name(),
            k,
            clip(&v.to_string(), 80)
        );
    }
    println!();
    println!(
        "{:>5}  {:<6} {:>16}  {:<40} {:>12} {:>12}",
        "#", "type", "elements", "name / shape", "bytes", "offset"
    );
    for (i, t) in f.tensors.iter().enumerate() {
        let n: u64 = t.dims.iter().product();
        println!(
            "{:5}: {:<6} {:>16}  {:<40} {:>12} {:>12}",
            i,
            t.ty.name(),
            n,
            format!("{} {:?}", t.name, t.dims),
            t.n_bytes,
            f.data_start + t.offset
        );
    }
    Ok(())
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

fn value_json(v: &MetaValue) -> Value {
    match v {
        MetaValue::U8(x) => json!(x),
        MetaValue::I8(x) => json!(x),
        MetaValue::U16(x) => json!(x),
        MetaValue::I16(x) => json!(x),
        MetaValue::U32(x) => json!(x),
        MetaValue::I32(x) => json!(x),
        MetaValue::F32(x) => json!(x),
        MetaValue::Bool(x) => json!(x),
        MetaValue::Str(x) => json!(x),
        MetaValue::U64(x) => json!(x),
        MetaValue::I64(x) => json!(x),
        MetaValue::F64(x) => json!(x),
        MetaValue::Array(a) => match a {
            MetaArray::U8(x) => json!(x),
            MetaArray::I8(x) => json!(x),
            MetaArray::U16(x) => json!(x),
            MetaArray::I16(x) => json!(x),
            MetaArray::U32(x) => json!(x),
            MetaArray::I32(x) => json!(x),
            MetaArray::F32(x) => json!(x),
            MetaArray::Bool(x) => json!(x),
            MetaArray::Str(x) => json!(x
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect::<Vec<_>>()),
            MetaArray::U64(x) => json!(x),
            MetaArray::I64(x) => json!(x),
            MetaArray::F64(x) => json!(x),
        },
    }
}

fn checkpoint(dir: &Path, as_json: bool) -> Result<()> {
    let cfg = crate::gemma4::TextConfig::load(dir)?;
    let ck = Checkpoint::open(dir)?;
    let rows: Vec<Value> = ck
        .tensors
        .iter()
        .map(|t| {
            json!({"name": t.name, "dtype": format!("{:?}", t.dtype), "shape": t.shape,
                   "bytes": t.end - t.start, "shard": ck.shards[t.shard].path.file_name().map(|f| f.to_string_lossy().into_owned()),
                   "offset": t.start})
        })
        .collect();
    if as_json {
        let out = json!({"path": dir, "architecture": cfg.architecture, "config": cfg.raw, "tensors": rows});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "* {}: {} ({} layers, hidden {}, {} shard(s), {} tensors, {:.1} MB)",
        dir.display(),
        cfg.architecture,
        cfg.n_layer,
        cfg.hidden,
        ck.shards.len(),
        ck.tensors.len(),
        ck.total_bytes() as f64 / 1e6
    );
    for t in &ck.tensors {
        println!(
            "  {:<6} {:<60} {:?} {} bytes @ {}",
            format!("{:?}", t.dtype),
            t.name,
            t.shape,
            t.end - t.start,
            t.start
        );
    }
    Ok(())
}

/// Prints a conversion plan (`gq quantize --dry-run`).
pub fn print_plan(plan: &Plan) {
    println!(
        "{} tensors, {} bytes of tensor data, file type {}",
        plan.tensors.len(),
        plan.data_bytes,
        plan.file_type.name()
    );
    for t in &plan.tensors {
        println!(
            "  {:<40} {:<5} {:?} {} bytes @ {}  <- {}",
            t.out.name,
            t.out.ty.name(),
            t.out.dims,
            t.out.n_bytes(),
            t.out.offset,
            t.hf_name
        );
    }
    if !plan.skipped.is_empty() {
        println!("skipped {} vision/audio tensors", plan.skipped.len());
    }
}
