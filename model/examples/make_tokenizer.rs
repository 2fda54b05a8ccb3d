//! Builds GPT-2's `tokenizer.json` from OpenAI's `encoder.json` and `vocab.bpe`.
//!
//! `cargo run -p hnet-gpt-model --example make_tokenizer -- ENCODER_JSON VOCAB_BPE OUT` — normally through
//! `scripts/make-tokenizer.sh`, which fetches the files and checks their hashes.

use hnet_gpt_model::tokenizer::build_gpt2_tokenizer_json;
use hnet_gpt_model::util::files::write_atomic;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [encoder, merges, out] = args.as_slice() else {
        eprintln!("usage: make_tokenizer ENCODER_JSON VOCAB_BPE OUT");
        std::process::exit(2);
    };
    let run = || -> Result<usize, String> {
        let encoder = std::fs::read(encoder).map_err(|e| format!("cannot read {encoder}: {e}"))?;
        let merges = std::fs::read_to_string(merges).map_err(|e| format!("cannot read {merges}: {e}"))?;
        let json = build_gpt2_tokenizer_json(&encoder, &merges).map_err(|e| e.to_string())?;
        write_atomic(std::path::Path::new(out), json.as_bytes()).map_err(|e| format!("cannot write {out}: {e}"))?;
        Ok(json.len())
    };
    match run() {
        Ok(n) => eprintln!("wrote {out} ({n} bytes)"),
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    }
}
