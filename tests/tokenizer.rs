//! gq's tokenizer against independent references: llama.cpp's own Gemma 4 tokenizer vectors
//! (the real 262 144-token vocabulary), `llama-tokenize`, Hugging Face's ids (the trained
//! fixture's held-out ids computed by transformers at training time, and
//! tests/py/hf_tokenize_ref.py's ids from the `tokenizers` library), and Jinja2 renderings of
//! the chat templates (tests/py/chat_template_ref.py). Also: the tokenizer.json and GGUF paths
//! agree, and decoding gives back the encoded text.

mod common;
use common::*;
use gq::gguf::GgufFile;
use gq::tokenizer::{ChatMessage, ChatTemplate, EncodeOptions, Tokenizer};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const NO_BOS_SPECIAL: EncodeOptions = EncodeOptions {
    add_bos: false,
    parse_special: true,
};

fn data(name: &str) -> serde_json::Value {
    let p = root().join("tests/data").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

fn tricky() -> Vec<String> {
    data("tokenizer_tricky.json")["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// llama.cpp's Gemma 4 vocabulary (with the 26B-A4B metadata, no tensors) from the sdist.
fn real_vocab_path() -> PathBuf {
    let p = llama_src().join("models/ggml-vocab-gemma-4.gguf");
    assert!(
        p.is_file(),
        "{} not found: run `bash scripts/get_peers.sh` (the llama.cpp tree of the \
         llama-cpp-python 0.3.36 sdist has it)",
        p.display()
    );
    p
}

fn real_vocab() -> Tokenizer {
    let g = GgufFile::open(real_vocab_path()).unwrap();
    Tokenizer::from_gguf(&g).unwrap()
}

/// Asserts equal id lists, showing the first difference with some context.
fn assert_same_ids(got: &[u32], want: &[u32], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let lo = at.saturating_sub(5);
    panic!(
        "{what}: {} ids vs {} expected; first difference at {at}:\n  got  {:?}\n  want {:?}",
        got.len(),
        want.len(),
        &got[lo..(at + 6).min(got.len())],
        &want[lo..(at + 6).min(want.len())]
    );
}

/// `llama-tokenize` on `text` (fed on stdin, so no escape processing and no newline trimming).
fn llama_tokenize(model: &Path, text: &str, bos: bool, parse_special: bool) -> Vec<u32> {
    let mut cmd = Command::new(llama_tool("llama-tokenize"));
    cmd.args(["-m", model.to_str().unwrap()]).args([
        "--stdin",
        "--ids",
        "--log-disable",
        "--no-escape",
    ]);
    if !bos {
        cmd.arg("--no-bos");
    }
    if !parse_special {
        cmd.arg("--no-parse-special");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run llama-tokenize");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "llama-tokenize failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let list = out
        .lines()
        .rev()
        .find(|l| l.starts_with('['))
        .unwrap_or_else(|| panic!("no id list from llama-tokenize:\n{out}"));
    let inner = list.trim_matches(|c| c == '[' || c == ']').trim();
    if inner.is_empty() {
        return Vec::new();
    }
    inner
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect()
}

/// decode(encode(text)) == text, whole and streamed. A literal "▁" in the text cannot come
/// back: it is the tokenizer's space, and decodes to " " (in Hugging Face and llama.cpp too).
fn assert_round_trip(tok: &Tokenizer, text: &str, what: &str) {
    let expect = text.replace('▁', " ");
    for parse_special in [false, true] {
        let ids = tok.encode_with(
            text,
            EncodeOptions {
                add_bos: true,
                parse_special,
            },
        );
        // Control tokens written in the text come back only when they are shown.
        let back = tok.decode_with(&ids, true);
        let bos = tok.token_text(tok.bos().unwrap()).unwrap();
        assert_eq!(
            back.strip_prefix(bos),
            Some(expect.as_str()),
            "{what}: decode(encode) (parse_special {parse_special})"
        );
        let mut stream = tok.stream_decoder(true);
        let mut streamed: String = ids.iter().map(|&i| stream.push(i)).collect();
        streamed.push_str(&stream.finish());
        assert_eq!(streamed, back, "{what}: streamed decode");
    }
}

#[test]
fn gemma4_vocab_vectors_from_llama_cpp() {
    let path = real_vocab_path();
    let tok = real_vocab();
    assert_eq!(tok.n_vocab(), 262_144);
    assert_eq!((tok.bos(), tok.eos()), (Some(2), Some(1)));
    // The format test-tokenizer-0 reads: inputs separated by "\n__ggml_vocab_test__\n", one
    // line of space-separated ids per input.
    let inp = std::fs::read_to_string(path.with_extension("gguf.inp")).unwrap();
    let out = std::fs::read_to_string(path.with_extension("gguf.out")).unwrap();
    let inputs: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let outputs: Vec<&str> = out.lines().collect();
    assert_eq!(inputs.len(), outputs.len(), ".inp and .out disagree");
    assert!(inputs.len() >= 40, "only {} vectors", inputs.len());
    for (text, line) in inputs.iter().zip(&outputs) {
        let want: Vec<u32> = line
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        // test-tokenizer-0 tokenizes with add_special = false, parse_special = false.
        let got = tok.encode_with(
            text,
            EncodeOptions {
                add_bos: false,
                parse_special: false,
            },
        );
        assert_same_ids(&got, &want, &format!("vector {text:?}"));
        assert_eq!(tok.decode(&got), *text, "decode of vector {text:?}");
    }
}

#[test]
fn real_vocab_matches_llama_tokenize() {
    let path = real_vocab_path();
    let tok = real_vocab();
    let text = tricky().join("\n");
    for parse_special in [true, false] {
        let want = llama_tokenize(&path, &text, true, parse_special);
        let got = tok.encode_with(
            &text,
            EncodeOptions {
                add_bos: true,
                parse_special,
            },
        );
        assert_same_ids(
            &got,
            &want,
            &format!("tricky strings, real vocabulary, parse_special {parse_special}"),
        );
    }
    let eval = std::fs::read_to_string(fixture("trained").join("eval.txt")).unwrap();
    let want = llama_tokenize(&path, &eval, false, true);
    assert_same_ids(
        &tok.encode(&eval, false),
        &want,
        "eval.txt, real vocabulary",
    );
    for t in tricky().iter().chain([&eval]) {
        assert_round_trip(&tok, t, "real vocabulary");
    }
}

#[test]
fn trained_held_out_text_matches_transformers() {
    let tok = Tokenizer::from_checkpoint(&fixture("trained")).unwrap();
    let refs =
        std::fs::read(fixture("trained.ref").join("transformers-reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&refs).unwrap();
    let want: Vec<u32> = st
        .tensor("eval_ids")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as u32)
        .collect();
    assert_eq!(want.len(), 62_886);
    let eval = std::fs::read_to_string(fixture("trained").join("eval.txt")).unwrap();
    assert_same_ids(&tok.encode(&eval, false), &want, "eval.txt vs transformers");
    assert_round_trip(&tok, &eval, "trained eval.txt");
}

#[test]
fn fixtures_match_hf_tokenizers() {
    let reference = data("hf_tokenizer_reference.json");
    let texts = tricky();
    let sample = std::fs::read_to_string(fixture("tokenizer-512").join("sample.txt")).unwrap();
    for name in ["tokenizer-512", "tokenizer-2048"] {
        let tok = Tokenizer::from_checkpoint(&fixture(name)).unwrap();
        let r = &reference["fixtures"][name];
        for (i, t) in texts.iter().enumerate() {
            assert_same_ids(
                &tok.encode_with(t, NO_BOS_SPECIAL),
                &ids(&r["tricky"][i]),
                &format!("{name}: {t:?} vs HF tokenizers"),
            );
            assert_round_trip(&tok, t, name);
        }
        assert_same_ids(
            &tok.encode(&sample, false),
            &ids(&r["sample"]),
            &format!("{name}: sample.txt vs HF tokenizers"),
        );
    }
}

#[test]
fn tokenizer_512_matches_llama_cpp_converter_gguf() {
    // The dense fixture's tokenizer is tokenizer-512; dense.ref holds the converter's GGUF.
    let conv = fixture("dense.ref").join("convert-f32.gguf");
    let from_conv = Tokenizer::from_gguf(&GgufFile::open(&conv).unwrap()).unwrap();
    let from_json = Tokenizer::from_checkpoint(&fixture("tokenizer-512")).unwrap();
    let sample = std::fs::read_to_string(fixture("tokenizer-512").join("sample.txt")).unwrap();
    let text = tricky().join("\n") + "\n" + &sample;
    for parse_special in [true, false] {
        let opts = EncodeOptions {
            add_bos: true,
            parse_special,
        };
        let ours = from_json.encode_with(&text, opts);
        assert_same_ids(
            &from_conv.encode_with(&text, opts),
            &ours,
            "converter's GGUF vs tokenizer.json",
        );
        assert_same_ids(
            &ours,
            &llama_tokenize(&conv, &text, true, parse_special),
            &format!("tokenizer-512 vs llama-tokenize, parse_special {parse_special}"),
        );
    }
}

#[test]
fn trained_gguf_written_by_gq_matches_json_and_llama_tokenize() {
    let dir = tempfile::tempdir().unwrap();
    let ours = gq_convert(&fixture("trained"), "bf16", dir.path());
    let from_gguf = Tokenizer::from_gguf(&GgufFile::open(&ours).unwrap()).unwrap();
    let from_json = Tokenizer::from_checkpoint(&fixture("trained")).unwrap();
    assert_eq!(from_gguf.eog_ids(), from_json.eog_ids());
    let eval = std::fs::read_to_string(fixture("trained").join("eval.txt")).unwrap();
    let text = tricky().join("\n");
    for parse_special in [true, false] {
        let opts = EncodeOptions {
            add_bos: true,
            parse_special,
        };
        let want = from_json.encode_with(&text, opts);
        assert_same_ids(
            &from_gguf.encode_with(&text, opts),
            &want,
            "gq's GGUF vs tokenizer.json",
        );
        assert_same_ids(
            &want,
            &llama_tokenize(&ours, &text, true, parse_special),
            &format!("trained vs llama-tokenize, parse_special {parse_special}"),
        );
    }
    let want = from_json.encode(&eval, false);
    assert_same_ids(
        &from_gguf.encode(&eval, false),
        &want,
        "eval.txt: gq's GGUF vs tokenizer.json",
    );
    assert_same_ids(
        &want,
        &llama_tokenize(&ours, &eval, false, true),
        "eval.txt vs llama-tokenize",
    );
}

#[test]
fn chat_templates_render_like_jinja2() {
    let reference = data("chat_template_reference.json");
    let cases = data("chat_template_cases.json");
    let real = GgufFile::open(real_vocab_path()).unwrap();
    let sources = [
        (
            "fixture",
            std::fs::read_to_string(fixture("trained").join("chat_template.jinja")).unwrap(),
        ),
        (
            "gemma4",
            real.metadata
                .get("tokenizer.chat_template")
                .and_then(|v| v.as_str())
                .expect("tokenizer.chat_template in ggml-vocab-gemma-4.gguf")
                .to_string(),
        ),
        (
            "compat",
            cases["compat_template"].as_str().unwrap().to_string(),
        ),
    ];
    let fnv = |s: &str| {
        let mut h: u64 = 0xcbf29ce484222325;
        for &b in s.as_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    };
    for (name, src) in &sources {
        assert_eq!(
            reference["templates"][name]["fnv1a64"].as_str().unwrap(),
            fnv(src),
            "template {name} differs from the one rendered by tests/py/chat_template_ref.py: \
             re-run it"
        );
    }
    let mut checked = 0;
    for case in reference["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let src = &sources
            .iter()
            .find(|(n, _)| *n == case["template"].as_str().unwrap())
            .unwrap()
            .1;
        let mut t = ChatTemplate::new(src.as_str());
        for (k, v) in cases["specials"].as_object().unwrap() {
            t = t.with_special(k.as_str(), v.as_str().unwrap());
        }
        let ctx = case["context"].as_object().unwrap().clone();
        let got = t.render_json(ctx);
        match (case.get("rendered"), case.get("error")) {
            (Some(want), _) => {
                let got = got.unwrap_or_else(|e| panic!("{name}: {e:#}"));
                assert_eq!(got, want.as_str().unwrap(), "case {name}");
            }
            (None, Some(err)) => {
                let e = got.expect_err(name);
                assert!(
                    format!("{e:#}").contains(err.as_str().unwrap()),
                    "{name}: error {e:#} should say {err}"
                );
            }
            _ => panic!("{name}: neither rendered nor error"),
        }
        checked += 1;
    }
    assert!(checked >= 15);

    // The tokenizer's own template (from tokenizer_config / chat_template.jinja) through the
    // simple API gives the same as the reference for the fixture.
    let tok = Tokenizer::from_checkpoint(&fixture("trained")).unwrap();
    let want = reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "fixture/conversation")
        .unwrap()["rendered"]
        .as_str()
        .unwrap()
        .to_string();
    let msgs: Vec<ChatMessage> = serde_json::from_value(
        cases["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "fixture/conversation")
            .unwrap()["context"]["messages"]
            .clone(),
    )
    .unwrap();
    assert_eq!(tok.render_chat(&msgs, true).unwrap(), want);
}

#[test]
fn bad_input_is_a_clear_error() {
    let e = Tokenizer::from_checkpoint(Path::new("/nonexistent/ckpt"))
        .err()
        .unwrap();
    assert!(
        format!("{e:#}").contains("/nonexistent/ckpt/tokenizer.json"),
        "{e:#}"
    );
    // A GGUF whose tokenizer is not gemma4's.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("llama.gguf");
    let mut meta = gq::gguf::Metadata::new();
    meta.set(
        "tokenizer.ggml.model",
        gq::gguf::MetaValue::Str("llama".into()),
    );
    write_metadata_only(&p, &meta);
    let e = Tokenizer::from_gguf(&GgufFile::open(&p).unwrap())
        .err()
        .unwrap();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("llama.gguf") && msg.contains("gemma4"),
        "{msg}"
    );
}

/// A GGUF file with `meta` and no tensors.
fn write_metadata_only(path: &Path, meta: &gq::gguf::Metadata) {
    let f = std::fs::File::create(path).unwrap();
    gq::gguf::GgufWriter::new(f, meta, Vec::new())
        .unwrap()
        .finish()
        .unwrap();
}
