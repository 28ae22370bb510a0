//! `gq quantize --modelfile`: the Modelfile's TEMPLATE, rendered by Go's text/template (the
//! engine Ollama uses), gives the same prompt text as the checkpoint's Jinja chat template
//! rendered by Jinja2 (as transformers renders it), for a conversation with a system prompt and
//! three user turns; Ollama adds the BOS token itself, so the Jinja text is BOS + the Go text.

mod common;
use common::*;
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

fn conversation() -> serde_json::Value {
    json!([
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Who wrote Hamlet?"},
        {"role": "assistant", "content": "Shakespeare."},
        {"role": "user", "content": "When?"},
        {"role": "assistant", "content": "Around 1600."},
        {"role": "user", "content": "Name one other play of his."}
    ])
}

/// Runs `cmd` with `input` on stdin; panics with its stderr unless it succeeds.
fn pipe(mut cmd: Command, input: &serde_json::Value, what: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start ({e})"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn go_render(template: &str) -> String {
    let go = which("go").unwrap_or_else(|| {
        panic!("`go` not found: the Modelfile test renders templates with Go's text/template (apt-get install golang-go)")
    });
    let mut cmd = Command::new(go);
    cmd.arg("run")
        .arg(root().join("tests/go/ollama_render.go"))
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "off");
    pipe(
        cmd,
        &json!({"template": template, "messages": conversation()}),
        "go run ollama_render.go",
    )
}

fn jinja_render(template: &str, bos: &str) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/py/jinja_render.py"));
    pipe(
        cmd,
        &json!({"template": template, "messages": conversation(), "bos_token": bos, "eos_token": "<eos>"}),
        "jinja_render.py (needs `pip install jinja2`)",
    )
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// The TEMPLATE """…""" of a Modelfile.
fn template_of(modelfile: &str) -> &str {
    let start = modelfile.find("TEMPLATE \"\"\"").expect("TEMPLATE") + 12;
    let len = modelfile[start..].find("\"\"\"").expect("closing quotes");
    &modelfile[start..start + len]
}

#[test]
fn fixture_template_renders_like_jinja_in_go() {
    let (_tmp, ckpt) = copy_fixture("trained");
    std::fs::write(
        ckpt.join("generation_config.json"),
        r#"{"bos_token_id": 2, "eos_token_id": [1, 106], "temperature": 1.0, "top_k": 64, "top_p": 0.95}"#,
    )
    .unwrap();
    let out = ckpt.parent().unwrap().join("trained-q8.gguf");
    gq_ok(&[
        "quantize",
        ckpt.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "Q8_0",
        "--modelfile",
        "-q",
    ]);
    let mf = std::fs::read_to_string(out.with_extension("Modelfile")).unwrap();
    assert!(mf.starts_with("FROM ./trained-q8.gguf\n"), "{mf}");
    for line in [
        "PARAMETER stop \"<turn|>\"",
        "PARAMETER temperature 1.0",
        "PARAMETER top_k 64",
        "PARAMETER top_p 0.95",
    ] {
        assert!(mf.lines().any(|l| l == line), "no {line:?} in:\n{mf}");
    }
    let jinja = std::fs::read_to_string(fixture("trained").join("chat_template.jinja")).unwrap();
    let want = jinja_render(&jinja, "<bos>");
    let got = go_render(template_of(&mf));
    assert_eq!(format!("<bos>{got}"), want);
}

#[test]
fn real_gemma4_template_renders_like_jinja_in_go() {
    // llama.cpp's copy of the real Gemma 4 tokenizer and chat template.
    let vocab = llama_src().join("models/ggml-vocab-gemma-4.gguf");
    let g = gq::gguf::GgufFile::open(&vocab).unwrap();
    let tok = gq::tokenizer::Tokenizer::from_gguf(&g).unwrap();
    let mf = gq::modelfile::modelfile("gemma-4.gguf", &tok, None).unwrap();
    let source = tok.chat_template().unwrap().source().to_string();
    let want = jinja_render(&source, "<bos>");
    let got = go_render(template_of(&mf));
    assert_eq!(format!("<bos>{got}"), want);
    assert!(
        mf.lines().any(|l| l == "PARAMETER stop \"<turn|>\""),
        "{mf}"
    );
}
