//! The GPT-2 tokenizer shipped in `public/tokenizer.json`: exact ids, byte offsets, lossless round trips.

use hnet_gpt_model::generate::stop::{Scope, StopRules};
use hnet_gpt_model::generate::stream::TextStream;
use hnet_gpt_model::tokenizer::{Tokenizer, EOS_ID};
use proptest::prelude::*;

fn tokenizer() -> Tokenizer {
    static TOKENIZER: std::sync::OnceLock<Tokenizer> = std::sync::OnceLock::new();
    TOKENIZER
        .get_or_init(|| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../public/tokenizer.json");
            Tokenizer::from_file(&path).unwrap()
        })
        .clone()
}

#[test]
fn exact_gpt2_ids() {
    let tok = tokenizer();
    assert_eq!(
        tok.encode("def add(a, b):\n    return a + b").unwrap(),
        vec![4299, 751, 7, 64, 11, 275, 2599, 198, 220, 220, 220, 1441, 257, 1343, 275]
    );
    assert_eq!(tok.encode("hello<|endoftext|>world").unwrap(), vec![31373, EOS_ID, 6894]);
    assert_eq!(tok.vocab_size(), 50257);
    assert_eq!(tok.token_str(4299).as_deref(), Some("def"));
    assert_eq!(tok.token_str(751).as_deref(), Some("Ġadd"));
}

#[test]
fn offsets_are_byte_spans_that_tile_the_text() {
    let tok = tokenizer();
    for text in ["def add(a, b):\n    return a + b", "naïve = '日本語' # 🙂 ok", "x\ty\r\n\u{7}z"] {
        let tokens = tok.encode_with_offsets(text).unwrap();
        assert_eq!(tokens.first().unwrap().span.start, 0);
        assert_eq!(tokens.last().unwrap().span.end, text.len(), "{text:?}");
        for pair in tokens.windows(2) {
            // Consecutive spans touch, or overlap when two tokens share one multi-byte character.
            assert!(pair[1].span.start <= pair[0].span.end && pair[1].span.start >= pair[0].span.start, "{pair:?} in {text:?}");
        }
        for t in &tokens {
            assert!(text.is_char_boundary(t.span.start) && text.is_char_boundary(t.span.end));
        }
    }
    // " return" keeps its leading space, so the chunk view can colour whole source ranges.
    let tokens = tok.encode_with_offsets("x = 1\nreturn x").unwrap();
    let text = "x = 1\nreturn x";
    let pieces: Vec<&str> = tokens.iter().map(|t| &text[t.span.clone()]).collect();
    assert_eq!(pieces, vec!["x", " =", " 1", "\n", "return", " x"]);
}

#[test]
fn round_trips_of_awkward_text() {
    let tok = tokenizer();
    for text in ["", "🙂🙃 emoji", "中文字符和日本語のテキスト", "tabs\tand\0nul\u{1b}[31m", "   leading", "a<|endoftext|>b", "\u{feff}bom"]
    {
        assert_eq!(tok.decode(&tok.encode(text).unwrap()).unwrap(), text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn decode_encode_is_identity(text in any::<String>()) {
        let tok = tokenizer();
        prop_assert_eq!(tok.decode(&tok.encode(&text).unwrap()).unwrap(), text);
    }
}

#[test]
fn text_stream_holds_back_partial_characters_and_stops_at_stop_strings() {
    let tok = tokenizer();
    // An emoji is split over several byte-level tokens; nothing is shown until it is complete.
    let ids = tok.encode("a🙂b").unwrap();
    assert!(ids.len() > 3, "{ids:?}");
    let mut stream = TextStream::new(&tok, &StopRules::none(), "");
    let pieces: Vec<String> = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert_eq!(pieces.concat() + &stream.finish().unwrap(), "a🙂b");

    // The stop string is not emitted, nor is anything after it; a partial match is held back until resolved.
    let ids = tok.encode("x = 1\n\ndef g():").unwrap();
    let mut stream = TextStream::new(&tok, &StopRules::strings(&["\n\ndef".to_string()]), "");
    let mut out = String::new();
    for &id in &ids {
        out += &stream.push(id).unwrap();
        if stream.stopped() {
            break;
        }
    }
    assert!(stream.stopped());
    assert_eq!(out, "x = 1");
    // A held-back prefix that turns out not to be a stop string is released.
    let ids = tok.encode("a\n\nb").unwrap();
    let mut stream = TextStream::new(&tok, &StopRules::strings(&["\n\ndef".to_string()]), "");
    let mut out: String = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
    out += &stream.finish().unwrap();
    assert_eq!(out, "a\n\nb");
}

#[test]
fn a_block_completion_streams_up_to_its_end_and_never_past_it() {
    let tok = tokenizer();
    let written = "\n    return n % 2 == 0\n\ndef is_odd(n):\n    return not is_even(n)\n";
    for (scope, expected) in [(Scope::Block, "\n    return n % 2 == 0"), (Scope::Line, "\n    return n % 2 == 0"), (Scope::Free, written)] {
        let mut stream = TextStream::new(&tok, &StopRules { scope, strings: vec![] }, "def is_even(n):");
        let mut out = String::new();
        for id in tok.encode(written).unwrap() {
            out += &stream.push(id).unwrap();
            // Whatever has been shown is part of the final completion.
            assert!(expected.starts_with(&out), "{scope:?}: {out:?}");
            if stream.stopped() {
                break;
            }
        }
        out += &stream.finish().unwrap();
        assert_eq!(out, expected, "{scope:?}");
    }
    // A block that runs out of tokens on an indented blank line does not end in whitespace.
    let mut stream = TextStream::new(&tok, &StopRules { scope: Scope::Block, strings: vec![] }, "def f():");
    let mut out: String = tok.encode("\n    a = 1\n    ").unwrap().into_iter().map(|id| stream.push(id).unwrap()).collect();
    out += &stream.finish().unwrap();
    assert_eq!(out, "\n    a = 1");
}

#[test]
fn a_looping_completion_shows_its_first_copy_and_stops() {
    let tok = tokenizer();
    let line = "\n    G = nx.path_graph(G)";
    let written = format!("\n    # A graph.{}", line.repeat(12));
    let expected = format!("\n    # A graph.{line}");
    let mut stream = TextStream::new(&tok, &StopRules { scope: Scope::Block, strings: vec![] }, "def fibonacci(n):");
    let mut out = String::new();
    for id in tok.encode(&written).unwrap() {
        out += &stream.push(id).unwrap();
        // The copies are held back while the loop is undecided: nothing shown is taken back.
        assert!(expected.starts_with(&out), "{out:?}");
        if stream.stopped() {
            break;
        }
    }
    assert!(stream.stopped(), "the loop ends the completion before the token limit");
    assert_eq!(out, expected);
    // Two copies that turn away from a loop are shown in full at the end.
    let twice = format!("{line}{line}\n    return G");
    let mut stream = TextStream::new(&tok, &StopRules { scope: Scope::Block, strings: vec![] }, "def f(G):");
    let mut out: String = tok.encode(&twice).unwrap().into_iter().map(|id| stream.push(id).unwrap()).collect();
    out += &stream.finish().unwrap();
    assert_eq!(out, twice);
}

#[test]
fn a_bpe_trained_on_code_merges_indentation_and_round_trips() {
    use hnet_gpt_model::tokenizer::{train_bpe, EOS_TEXT};
    let module = |i: usize| {
        format!(
            "class Stack{i}:\n    def push(self, item):\n        if item is None:\n            raise ValueError('no item')\n        \
             self.items.append(item)\n\n    def pop(self):\n        return self.items.pop()\n"
        )
    };
    let texts: Vec<String> = (0..200).map(module).collect();
    let json = train_bpe(texts.clone().into_iter(), 400).unwrap();
    let tok = Tokenizer::from_json_bytes(json.as_bytes()).unwrap();
    // At most the size asked for (training stops early when no pair occurs twice more).
    assert!((300..=400).contains(&tok.vocab_size()), "{}", tok.vocab_size());
    assert_eq!(tok.token_str(tok.eos_id()).as_deref(), Some(EOS_TEXT));
    // Exact round trips, the end-of-text token kept whole.
    for text in [texts[7].as_str(), "héllo\t\twörld 🦀\r\n", "x<|endoftext|>y"] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
    assert!(tok.encode("a<|endoftext|>b").unwrap().contains(&tok.eos_id()));
    // Eight spaces of indentation take fewer tokens than GPT-2 spends (one per space after the first).
    let line = "\n        return self.items.pop()";
    let (ours, gpt2) = (tok.encode(line).unwrap().len(), tokenizer().encode(line).unwrap().len());
    assert!(ours < gpt2, "{ours} tokens vs GPT-2's {gpt2}");
    // The same texts train the same tokenizer; a vocabulary too small to hold the bytes is refused.
    assert_eq!(train_bpe(texts.into_iter(), 400).unwrap(), json);
    assert!(train_bpe(std::iter::empty(), 100).is_err());
}
