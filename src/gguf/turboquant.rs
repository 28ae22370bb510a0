//! The GGUF keys of gq's TurboQuant types (docs/turboquant.md §2): what a file with TQ tensors
//! carries besides their bytes, so that it decodes with nothing else.

use super::{MetaValue, Metadata};
use anyhow::{bail, Result};
use gq_kernels::formats::tq::{TqParams, TQ_MAX_BLOCK, TQ_VERSION};
use gq_kernels::GgmlType;

/// `gq.tq.version` (u32): the layout version, 1.
pub const KEY_VERSION: &str = "gq.tq.version";
/// `gq.tq.seed` (u64): the rotation seed of every TQ tensor of the file.
pub const KEY_SEED: &str = "gq.tq.seed";
/// `gq.tq.max_block` (u32): the largest column block, 256 in version 1.
pub const KEY_MAX_BLOCK: &str = "gq.tq.max_block";

/// Writes the three keys for `params`.
pub fn write_params(meta: &mut Metadata, params: &TqParams) {
    meta.set(KEY_VERSION, MetaValue::U32(TQ_VERSION));
    meta.set(KEY_SEED, MetaValue::U64(params.seed));
    meta.set(KEY_MAX_BLOCK, MetaValue::U32(TQ_MAX_BLOCK as u32));
}

/// The TurboQuant parameters of a file whose tensors have `types`: `None` when it has no TQ
/// tensor; an error when it has some but the keys are missing, of the wrong type, or of a
/// version / block size this gq does not read.
pub fn read_params(
    meta: &Metadata,
    types: impl IntoIterator<Item = GgmlType>,
) -> Result<Option<TqParams>> {
    let first = types.into_iter().find(|t| t.is_turboquant());
    let Some(first) = first else {
        return Ok(None);
    };
    let version = match meta.get(KEY_VERSION) {
        Some(MetaValue::U32(v)) => *v,
        Some(v) => bail!("{KEY_VERSION} is {v:?}, expected a u32"),
        None => bail!("the file has {first} tensors but no {KEY_VERSION} key"),
    };
    if version != TQ_VERSION {
        bail!("{KEY_VERSION} = {version}: this gq reads TurboQuant version {TQ_VERSION}");
    }
    let seed = match meta.get(KEY_SEED) {
        Some(MetaValue::U64(s)) => *s,
        Some(v) => bail!("{KEY_SEED} is {v:?}, expected a u64"),
        None => bail!("the file has {first} tensors but no {KEY_SEED} key"),
    };
    match meta.get(KEY_MAX_BLOCK) {
        Some(MetaValue::U32(b)) if *b as usize == TQ_MAX_BLOCK => {}
        Some(v) => bail!("{KEY_MAX_BLOCK} is {v:?}; version {TQ_VERSION} requires {TQ_MAX_BLOCK}"),
        None => bail!("the file has {first} tensors but no {KEY_MAX_BLOCK} key"),
    }
    Ok(Some(TqParams { seed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let mut m = Metadata::new();
        assert_eq!(read_params(&m, [GgmlType::Q4_K]).unwrap(), None);
        assert!(read_params(&m, [GgmlType::TQT4_5]).is_err());
        write_params(&mut m, &TqParams { seed: 77 });
        assert_eq!(
            read_params(&m, [GgmlType::F32, GgmlType::TQT2_5]).unwrap(),
            Some(TqParams { seed: 77 })
        );
        m.set(KEY_MAX_BLOCK, MetaValue::U32(128));
        assert!(read_params(&m, [GgmlType::TQT2_5]).is_err());
        m.set(KEY_MAX_BLOCK, MetaValue::U32(256));
        m.set(KEY_VERSION, MetaValue::U32(2));
        assert!(read_params(&m, [GgmlType::TQT2_5]).is_err());
        m.set(KEY_VERSION, MetaValue::U32(1));
        m.set(KEY_SEED, MetaValue::U32(1));
        assert!(read_params(&m, [GgmlType::TQT2_5]).is_err());
    }
}
