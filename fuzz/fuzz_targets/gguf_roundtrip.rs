//! GGUF writer → reader round trip: any metadata (every value type, arrays of every element
//! type, any strings) and any tensor table (every ggml type, 1–4 dims, alignments 1 to 256)
//! written by [`gq::gguf::GgufWriter`] must be read back by [`gq::gguf::GgufFile`] with the same
//! keys, values, tensor infos and bytes, be exactly `expected_len` long, and write back to the
//! same bytes.
#![no_main]
use arbitrary::Arbitrary;
use gq::gguf::{
    layout_tensors, GgmlType, GgufFile, GgufWriter, MetaArray, MetaValue, Metadata, PlannedTensor,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Val {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Arr(Arr),
}

#[derive(Arbitrary, Debug)]
enum Arr {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    Str(Vec<Vec<u8>>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

#[derive(Arbitrary, Debug)]
struct Tensor {
    name: String,
    ty: u8,
    blocks: u8,
    more: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    kv: Vec<(String, Val)>,
    tensors: Vec<Tensor>,
    align_pow: u8,
    fill: u8,
}

fn value(v: Val) -> MetaValue {
    match v {
        Val::U8(x) => MetaValue::U8(x),
        Val::I8(x) => MetaValue::I8(x),
        Val::U16(x) => MetaValue::U16(x),
        Val::I16(x) => MetaValue::I16(x),
        Val::U32(x) => MetaValue::U32(x),
        Val::I32(x) => MetaValue::I32(x),
        Val::F32(x) => MetaValue::F32(x),
        Val::Bool(x) => MetaValue::Bool(x),
        Val::Str(x) => MetaValue::Str(x),
        Val::U64(x) => MetaValue::U64(x),
        Val::I64(x) => MetaValue::I64(x),
        Val::F64(x) => MetaValue::F64(x),
        Val::Arr(a) => MetaValue::Array(match a {
            Arr::U8(v) => MetaArray::U8(v),
            Arr::I8(v) => MetaArray::I8(v),
            Arr::U16(v) => MetaArray::U16(v),
            Arr::I16(v) => MetaArray::I16(v),
            Arr::U32(v) => MetaArray::U32(v),
            Arr::I32(v) => MetaArray::I32(v),
            Arr::F32(v) => MetaArray::F32(v),
            Arr::Bool(v) => MetaArray::Bool(v),
            Arr::Str(v) => MetaArray::Str(v),
            Arr::U64(v) => MetaArray::U64(v),
            Arr::I64(v) => MetaArray::I64(v),
            Arr::F64(v) => MetaArray::F64(v),
        }),
    }
}

fn write(
    meta: &Metadata,
    tensors: &[PlannedTensor],
    data: &dyn Fn(usize, &PlannedTensor) -> Vec<u8>,
) -> Vec<u8> {
    let mut w = GgufWriter::new(Vec::new(), meta, tensors.to_vec()).expect("header");
    let expected = w.expected_len();
    for (i, t) in tensors.iter().enumerate() {
        let d = data(i, t);
        // In two pieces, as the pipeline writes chunks.
        let (a, b) = d.split_at(d.len() / 2);
        w.write_tensor_data(a).expect("data");
        w.write_tensor_data(b).expect("data");
    }
    let out = w.finish().expect("finish");
    assert_eq!(out.len() as u64, expected, "expected_len");
    out
}

fuzz_target!(|input: Input| {
    let alignment = 1u64 << (input.align_pow % 9);
    let mut meta = Metadata::new();
    for (k, v) in input.kv {
        if k != "general.alignment" {
            meta.set(k, value(v));
        }
    }
    meta.set("general.alignment", MetaValue::U32(alignment as u32));
    let mut tensors = Vec::new();
    let mut names = std::collections::HashSet::new();
    for t in input.tensors.into_iter().take(16) {
        if !names.insert(t.name.clone()) {
            continue;
        }
        let ty = GgmlType::ALL[t.ty as usize % GgmlType::ALL.len()];
        let mut dims = vec![(1 + t.blocks as u64 % 4) * ty.block_size() as u64];
        dims.extend(t.more.iter().take(3).map(|&d| d as u64 % 5));
        tensors.push(PlannedTensor {
            name: t.name,
            dims,
            ty,
            offset: 0,
        });
    }
    layout_tensors(&mut tensors, alignment);
    let fill = input.fill;
    let data = |i: usize, t: &PlannedTensor| -> Vec<u8> {
        (0..t.n_bytes() as usize)
            .map(|j| (i as u8).wrapping_mul(31) ^ (j as u8) ^ fill)
            .collect()
    };
    let bytes = write(&meta, &tensors, &data);
    let f =
        GgufFile::from_bytes("roundtrip.gguf", bytes.clone()).expect("gq must read what it writes");
    assert_eq!(f.version, 3);
    assert_eq!(f.metadata.len(), meta.len());
    for ((k1, v1), (k2, v2)) in f.metadata.iter().zip(meta.iter()) {
        assert_eq!(k1, k2);
        assert_eq!(v1.type_id(), v2.type_id());
        assert_eq!(format!("{v1:?}"), format!("{v2:?}"));
    }
    assert_eq!(f.tensors.len(), tensors.len());
    for (i, (a, b)) in f.tensors.iter().zip(&tensors).enumerate() {
        assert_eq!(
            (&a.name, &a.dims, a.ty, a.offset, a.n_bytes),
            (&b.name, &b.dims, b.ty, b.offset, b.n_bytes())
        );
        assert_eq!(f.tensor_data(a), &data(i, b)[..]);
    }
    // Writing what was read gives the same bytes.
    let again: Vec<PlannedTensor> = f
        .tensors
        .iter()
        .map(|t| PlannedTensor {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
            offset: t.offset,
        })
        .collect();
    let read_data = |i: usize, _: &PlannedTensor| f.tensor_data(&f.tensors[i]).to_vec();
    assert_eq!(write(&f.metadata, &again, &read_data), bytes);
});
