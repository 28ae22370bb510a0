//! Reading the JSON files of a checkpoint (config, tokenizer, safetensors index and headers)
//! with limits: the file must be a regular file no larger than a stated size, nesting is at most
//! 128 levels (serde_json's recursion limit), and an object that names a key twice is an error
//! (serde_json would silently keep the last value; which one a tool uses is then anyone's guess).

use anyhow::{bail, Context, Result};
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// Size limit of small JSON files (config.json, tokenizer_config.json).
pub const SMALL_LIMIT: u64 = 16 << 20;
/// Size limit of large JSON files (tokenizer.json, the safetensors index).
pub const LARGE_LIMIT: u64 = 1 << 30;

/// A `serde_json::Value` that refuses duplicate object keys at any depth.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        // No capacity from the size hint: it is the file's claim.
        let mut v = Vec::new();
        while let Some(x) = a.next_element_seed(Strict)? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        let mut seen = HashSet::new();
        while let Some(k) = a.next_key::<String>()? {
            let v = a.next_value_seed(Strict)?;
            if !seen.insert(k.clone()) {
                return Err(A::Error::custom(format!("duplicate key {k:?}")));
            }
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

/// Parses JSON text, refusing duplicate keys; errors give serde_json's line and column.
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut d = serde_json::Deserializer::from_slice(bytes);
    let v = Strict.deserialize(&mut d)?;
    d.end()?;
    Ok(v)
}

/// Reads and parses the JSON file at `path` (at most `limit` bytes). Errors name the file.
pub fn read(path: &Path, limit: u64) -> Result<Value> {
    let shown = path.display();
    let bytes = read_limited(path, limit)?;
    parse(&bytes).with_context(|| format!("{shown}: invalid JSON"))
}

/// Reads the whole regular file at `path`, refusing directories, other non-regular files and
/// files over `limit` bytes. Errors name the file.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let shown = path.display();
    let f = std::fs::File::open(path).with_context(|| format!("{shown}: cannot read"))?;
    let m = f
        .metadata()
        .with_context(|| format!("{shown}: cannot read"))?;
    if m.is_dir() {
        bail!("{shown}: is a directory, not a file");
    }
    if !m.is_file() {
        bail!("{shown}: not a regular file");
    }
    if m.len() > limit {
        bail!(
            "{shown}: {} bytes, more than the {} this file may have",
            m.len(),
            limit
        );
    }
    let mut bytes = Vec::with_capacity(m.len() as usize);
    // `take`: the file may grow while it is read.
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{shown}: cannot read"))?;
    if bytes.len() as u64 > limit {
        bail!("{shown}: more than the {limit} bytes this file may have");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_and_depth() {
        let e = parse(br#"{"a": 1, "b": {"c": 2, "c": 3}}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key \"c\""), "{e}");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = parse(deep.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(ok.as_bytes()).is_ok());
        assert_eq!(
            parse(br#"{"x": [1, -2, 2.5, "s", null, true]}"#).unwrap(),
            serde_json::json!({"x": [1, -2, 2.5, "s", null, true]})
        );
        assert!(parse(b"{} x").is_err());
        assert!(parse(b"1e999999").is_err());
    }
}
