//! Ollama Modelfiles: `FROM` the GGUF, a `TEMPLATE` in Ollama's Go-template syntax translated
//! from the checkpoint's Jinja chat template, `PARAMETER stop` for the end-of-generation tokens
//! and the generation config's sampling defaults.
//!
//! A Jinja template is a program; the translation does not parse it. It renders the template
//! (with gq's renderer, the one `gq generate --chat` uses) on probe conversations with marker
//! contents, reads off each role's text before and after the content, the text before the first
//! message (the BOS token, which Ollama's runner adds as a token itself) and the generation
//! prompt, writes a Go template that concatenates those pieces, and then checks that the Go
//! template's output equals the Jinja template's on longer conversations. A template that is not
//! such a concatenation (one that changes a turn depending on the others, say) is refused with
//! an error instead of being translated wrongly. Tools and images are not translated.

use crate::tokenizer::{ChatMessage, ChatTemplate, Tokenizer};
use anyhow::{anyhow, bail, Result};
use std::fmt::Write as _;

/// The roles the translation knows (Ollama's message roles).
const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// What surrounds each message of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnFormat {
    /// Text before the first message (the BOS token's text for Gemma 4).
    pub prefix: String,
    /// Per role (system, user, assistant): the text before and after the content.
    pub roles: [(String, String); 3],
    /// What `add_generation_prompt` appends.
    pub generation_prompt: String,
}

impl TurnFormat {
    /// The same rendering as the Jinja template, without `prefix`, for `messages` (roles in
    /// [`ROLES`]).
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let mut s = String::new();
        for m in messages {
            let (h, f) = &self.roles[role_index(&m.role)?];
            s.push_str(h);
            s.push_str(&m.content);
            s.push_str(f);
        }
        if add_generation_prompt {
            s.push_str(&self.generation_prompt);
        }
        Ok(s)
    }

    /// The Go template (Ollama's `TEMPLATE`): every message in `.Messages` with its role's
    /// surroundings, and the generation prompt after the last message unless it is the
    /// assistant's.
    pub fn go_template(&self) -> String {
        let lit = go_literal;
        let mut t = String::from("{{ range $i, $_ := .Messages }}");
        for (i, role) in ROLES.iter().enumerate() {
            let (h, f) = &self.roles[i];
            let kw = if i == 0 { "if" } else { "else if" };
            let _ = write!(
                t,
                "{{{{ {kw} eq .Role \"{role}\" }}}}{}{{{{ .Content }}}}{}",
                lit(h),
                lit(f)
            );
        }
        let _ = write!(
            t,
            "{{{{ end }}}}{{{{ if and (eq (len (slice $.Messages $i)) 1) (ne .Role \"assistant\") }}}}{}{{{{ end }}}}{{{{ end }}}}",
            lit(&self.generation_prompt)
        );
        t
    }
}

fn role_index(role: &str) -> Result<usize> {
    ROLES
        .iter()
        .position(|r| *r == role)
        .ok_or_else(|| anyhow!("role {role:?}: the translation knows system, user and assistant"))
}

/// Text as a Go template literal: `{{` can only be written as an action.
fn go_literal(s: &str) -> String {
    s.replace("{{", "{{\"{{\"}}")
}

/// Marker contents that no template adds by itself.
fn marker(i: usize) -> String {
    format!("\u{E000}gq-probe-{i}\u{E001}")
}

/// Splits `text` at the markers of `messages` (in order): the pieces before, between and after.
fn pieces(text: &str, messages: &[ChatMessage]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = text;
    for m in messages {
        let at = rest
            .find(&m.content)
            .ok_or_else(|| anyhow!("the template drops or rewrites a {} message", m.role))?;
        out.push(rest[..at].to_string());
        rest = &rest[at + m.content.len()..];
    }
    out.push(rest.to_string());
    Ok(out)
}

fn strip<'a>(s: &'a str, prefix: &str, what: &str) -> Result<&'a str> {
    s.strip_prefix(prefix)
        .ok_or_else(|| anyhow!("the template's {what} is not the same in every conversation"))
}

/// Reads the turn format off a template by rendering probe conversations (see the module
/// documentation), and checks it on longer conversations.
pub fn turn_format(t: &ChatTemplate) -> Result<TurnFormat> {
    let m = |r: &str, i| ChatMessage::new(r, marker(i));
    let full = [
        m("system", 0),
        m("user", 1),
        m("assistant", 2),
        m("user", 3),
    ];
    let with_gen = t.render(&full, true)?;
    let no_gen = t.render(&full, false)?;
    let generation_prompt = strip(&with_gen, &no_gen, "generation prompt")
        .map_err(|_| anyhow!("add_generation_prompt does not append to the rendering"))?
        .to_string();
    // p: [P+hs, fs+hu, fu+ha, fa+hu, fu]
    let p = pieces(&no_gen, &full)?;
    let ua = [m("user", 1), m("assistant", 2)];
    let q = pieces(&t.render(&ua, false)?, &ua)?; // [P+hu, fu+ha, fa]
    let u = [m("user", 1)];
    let r = pieces(&t.render(&u, false)?, &u)?; // [P+hu, fu]
    let fu = p[4].clone();
    let fa = q[2].clone();
    let ha = strip(&p[2], &fu, "user turn end")?.to_string();
    let hu = strip(&p[3], &fa, "assistant turn end")?.to_string();
    let prefix = r[0]
        .strip_suffix(&hu)
        .ok_or_else(|| {
            anyhow!("the template's user turn start is not the same in every conversation")
        })?
        .to_string();
    let hs = strip(&p[0], &prefix, "start")?.to_string();
    let fs = p[1]
        .strip_suffix(&hu)
        .ok_or_else(|| {
            anyhow!("the template's user turn start is not the same in every conversation")
        })?
        .to_string();
    let f = TurnFormat {
        prefix,
        roles: [(hs, fs), (hu, fu), (ha, fa)],
        generation_prompt,
    };
    // Check on conversations the probes did not render.
    let long: Vec<ChatMessage> = ["system", "user", "assistant", "user", "assistant", "user"]
        .iter()
        .enumerate()
        .map(|(i, r)| m(r, 10 + i))
        .collect();
    for (conv, gen) in [
        (&long[..], true),
        (&long[..], false),
        (&long[1..], true),
        (&long[1..5], false),
    ] {
        let want = t.render(conv, gen)?;
        let got = format!("{}{}", f.prefix, f.render(conv, gen)?);
        if want != got {
            bail!(
                "the chat template is not a plain sequence of turns (its rendering of a {}-message \
                 conversation differs from the translation); write the Modelfile's TEMPLATE by hand",
                conv.len()
            );
        }
    }
    Ok(f)
}

/// Sampling defaults from a checkpoint's generation_config.json, as Ollama `PARAMETER`s.
fn sampling_parameters(gen: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, param) in [
        ("temperature", "temperature"),
        ("top_k", "top_k"),
        ("top_p", "top_p"),
        ("min_p", "min_p"),
        ("repetition_penalty", "repeat_penalty"),
    ] {
        if let Some(v) = gen.get(key).filter(|v| v.is_number()) {
            out.push((param.to_string(), v.to_string()));
        }
    }
    out
}

/// The Modelfile for `gguf_name` (written beside it, so `FROM ./NAME`): the translated template,
/// a stop parameter per end-of-generation token of `tok`, and the sampling defaults of
/// `generation_config` (the checkpoint's generation_config.json, when there is one).
pub fn modelfile(
    gguf_name: &str,
    tok: &Tokenizer,
    generation_config: Option<&serde_json::Value>,
) -> Result<String> {
    let template = tok
        .chat_template()
        .ok_or_else(|| anyhow!("{}: no chat template to translate", tok.source()))?;
    let f = turn_format(&template)?;
    let bos = tok.bos().and_then(|b| tok.token_text(b)).unwrap_or("");
    if f.prefix != bos {
        bail!(
            "the chat template starts every conversation with {:?}, not with the BOS token {bos:?} \
             that Ollama adds; write the Modelfile's TEMPLATE by hand",
            f.prefix
        );
    }
    let go = f.go_template();
    if go.contains("\"\"\"") {
        bail!("the translated template contains \"\"\", which a Modelfile cannot quote");
    }
    let mut s = format!("FROM ./{gguf_name}\n\nTEMPLATE \"\"\"{go}\"\"\"\n\n");
    let mut stops: Vec<&str> = tok
        .eog_ids()
        .into_iter()
        .filter_map(|id| tok.token_text(id))
        .collect();
    stops.dedup();
    for st in stops {
        let _ = writeln!(s, "PARAMETER stop {}", serde_json::to_string(st)?);
    }
    if let Some(g) = generation_config {
        for (k, v) in sampling_parameters(g) {
            let _ = writeln!(s, "PARAMETER {k} {v}");
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_template_is_translated_and_checked() {
        let t = ChatTemplate::new(
            "{{ bos_token }}{% for m in messages %}<|turn>{{ m['role'] }}\n{{ m['content'] | trim }}<turn|>\n{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}",
        )
        .with_special("bos_token", "<bos>");
        let f = turn_format(&t).unwrap();
        assert_eq!(f.prefix, "<bos>");
        assert_eq!(f.roles[1], ("<|turn>user\n".into(), "<turn|>\n".into()));
        assert_eq!(f.generation_prompt, "<|turn>model\n");
        assert!(f
            .go_template()
            .starts_with("{{ range $i, $_ := .Messages }}"));
    }

    #[test]
    fn context_dependent_template_is_refused() {
        // The second user message is rendered differently from the first.
        let t = ChatTemplate::new(
            "{% for m in messages %}{% if loop.index > 3 %}[late]{% endif %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}",
        );
        let e = turn_format(&t).unwrap_err().to_string();
        assert!(
            e.contains("not a plain sequence") || e.contains("not the same"),
            "{e}"
        );
    }

    #[test]
    fn braces_are_escaped() {
        assert_eq!(go_literal("a{{b"), "a{{\"{{\"}}b");
    }
}
