//! `gq tokenize`: text → token ids with a model's tokenizer (like llama-tokenize), or ids → text.

use crate::tokenizer::{ChatMessage, EncodeOptions, Tokenizer};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Read;
use std::path::PathBuf;

/// Arguments of `gq tokenize`.
#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// A .gguf file or a checkpoint directory.
    pub model: PathBuf,
    /// The text to tokenize.
    #[arg(short, long, conflicts_with_all = ["file", "stdin", "decode"])]
    pub prompt: Option<String>,
    /// A file whose text to tokenize (taken as is: a final newline is kept).
    #[arg(short, long, conflicts_with_all = ["stdin", "decode"])]
    pub file: Option<PathBuf>,
    /// Read the text from standard input.
    #[arg(long, conflicts_with = "decode")]
    pub stdin: bool,
    /// Decode these comma-separated ids instead of tokenizing (control tokens shown, hidden
    /// with --no-parse-special).
    #[arg(long, value_delimiter = ',')]
    pub decode: Option<Vec<u32>>,
    /// Do not put BOS first.
    #[arg(long)]
    pub no_bos: bool,
    /// Take control tokens written in the text (`<|turn>`, …) as plain text.
    #[arg(long)]
    pub no_parse_special: bool,
    /// Render the text as one user message with the chat template (with the prompt for the
    /// model's turn) before tokenizing.
    #[arg(long)]
    pub chat: bool,
    /// Print only the id list, `[2, 651, …]`.
    #[arg(long)]
    pub ids: bool,
}

/// Runs `gq tokenize`.
pub fn run(a: TokenizeArgs) -> Result<()> {
    let tok = Tokenizer::open(&a.model)?;
    if let Some(ids) = &a.decode {
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= tok.n_vocab()) {
            bail!("id {bad} is outside the vocabulary of {}", tok.n_vocab());
        }
        println!("{}", tok.decode_with(ids, !a.no_parse_special));
        return Ok(());
    }
    let mut text = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("{}: cannot read as UTF-8 text", f.display()))?,
        (None, None) if a.stdin => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("standard input is not UTF-8 text")?;
            s
        }
        _ => bail!("give the text with --prompt, --file or --stdin (or ids with --decode)"),
    };
    let mut add_bos = !a.no_bos;
    if a.chat {
        text = tok.render_chat(&[ChatMessage::new("user", text)], true)?;
        // The template writes BOS itself.
        let bos = tok.bos().and_then(|b| tok.token_text(b)).unwrap_or("");
        add_bos &= bos.is_empty() || !text.starts_with(bos);
    }
    let ids = tok.encode_with(
        &text,
        EncodeOptions {
            add_bos,
            parse_special: !a.no_parse_special,
        },
    );
    if a.ids {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("[{}]", list.join(", "));
    } else {
        for &id in &ids {
            let mut piece = Vec::new();
            tok.push_piece(id, true, &mut piece);
            println!("{id:>6} -> {:?}", String::from_utf8_lossy(&piece));
        }
        println!("{} tokens", ids.len());
    }
    Ok(())
}
