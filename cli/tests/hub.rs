//! `hnet-gpt pull` against a local server that speaks the Hub's URL scheme (`/{repo}/resolve/{revision}/{file}`,
//! with `ETag`, `X-Repo-Commit`, `Content-Length` and ranges, as the `hf-hub` client needs), serving the tiny GPT-2
//! repositories of `tests/fixtures/hub/` (made by `scripts/fixtures/gen_reference.py --hub`): one with GPT-2's tokenizer,
//! one with its own BPE and sharded weights. Then what a pulled model must do — score, generate, chunk as a hybrid
//! that starts from the decoder's quality, fine-tune — and the errors: a missing repository, no safetensors, a
//! truncated download, an unsupported architecture, a tokenizer that does not fit the model.

mod common;
use common::Scratch;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hub");
/// The decoder families' parity fixtures (scripts/fixtures/gen_reference.py --families): Hub repositories as transformers
/// saved them.
const FAMILY_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../model/tests/fixtures");
const GPT2_TOKENIZER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../public/tokenizer.json");

/// What the server answers for one file.
#[derive(Clone)]
enum Served {
    /// The bytes.
    Bytes(Vec<u8>),
    /// Declares the full length but sends only the first half, then closes: a download cut off.
    CutOff(Vec<u8>),
    /// A hostile server's answer.
    Hostile(Hostile),
}

/// What a hostile server does for one file.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// An ETag that walks out of the cache (the blob's file name).
    TraversingEtag,
    /// A commit that walks out of the cache (the snapshot's directory name).
    TraversingCommit,
    /// An absolute path as the ETag.
    AbsoluteEtag,
    /// Accepts the connection and never answers.
    Silent,
    /// Answers, then sends the body one byte a second.
    Trickling,
    /// Declares 1 MiB and sends without end.
    Endless,
    /// Declares a file far larger than any model.
    Oversized,
    /// Redirects the download to a file on the client's machine.
    RedirectToFile,
}

type Repos = HashMap<String, HashMap<String, Served>>;

/// A local stand-in for the Hub on 127.0.0.1.
struct Hub {
    url: String,
}

fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

fn serve(mut stream: TcpStream, repos: &Repos) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = v.trim().split_once('-').unwrap_or((v.trim(), ""));
            range = Some((a.parse::<usize>().unwrap_or(0), b.parse::<usize>().ok()));
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let found = path.trim_start_matches('/').split_once("/resolve/").and_then(|(repo, rest)| {
        let (_revision, file) = rest.split_once('/')?;
        repos.get(repo)?.get(file).cloned().map(|s| (repo.to_string(), s))
    });
    let Some((repo, served)) = found else {
        let _ =
            stream.write_all(b"HTTP/1.1 404 Not Found\r\nX-Error-Code: EntryNotFound\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let (bytes, cut) = match served {
        Served::Bytes(b) => (b, false),
        Served::CutOff(b) => (b, true),
        Served::Hostile(h) => return hostile(stream, h, method == "HEAD"),
    };
    let total = bytes.len();
    let (start, end) = match range {
        Some((a, b)) => (a.min(total), b.map_or(total, |b| (b + 1).min(total))),
        None => (0, total),
    };
    let commit = format!("{:016x}{:016x}{:08x}", hash(repo.as_bytes()), hash(b"commit"), 7);
    let mut head = format!(
        "HTTP/1.1 {}\r\nETag: \"{:016x}{:x}\"\r\nX-Repo-Commit: {commit}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        if range.is_some() { "206 Partial Content" } else { "200 OK" },
        hash(&bytes),
        total,
        end - start
    );
    if range.is_some() {
        head.push_str(&format!("Content-Range: bytes {start}-{}/{total}\r\n", end.saturating_sub(1)));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        // A cut-off download sends half of what it promised (the range probe of one byte gets through).
        let body = &bytes[start..end];
        let send = if cut && body.len() > 1 { &body[..body.len() / 2] } else { body };
        let _ = stream.write_all(send);
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// A hostile answer (headers as the Hub's, then the attack).
fn hostile(mut stream: TcpStream, h: Hostile, head_only: bool) {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let headers = |etag: &str, commit: &str, length: &str| {
        format!("HTTP/1.1 200 OK\r\nETag: \"{etag}\"\r\nX-Repo-Commit: {commit}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
    };
    let answer = match h {
        Hostile::TraversingEtag => headers("../../../../../.bashrc", commit, "5"),
        Hostile::TraversingCommit => headers("abc", "../../../../../../outside", "5"),
        Hostile::AbsoluteEtag => headers("/tmp/hnet-hostile-etag", commit, "5"),
        Hostile::Silent => {
            std::thread::sleep(std::time::Duration::from_secs(30));
            return;
        }
        Hostile::Trickling => headers("abc", commit, "1048576"),
        // The size is declared where a Hub declares it (HEAD); the body comes without a length, and without end.
        Hostile::Endless if head_only => headers("abc", commit, "1048576"),
        Hostile::Endless => format!("HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nX-Repo-Commit: {commit}\r\nConnection: close\r\n\r\n"),
        Hostile::Oversized => headers("abc", commit, &(1u64 << 40).to_string()),
        Hostile::RedirectToFile if !head_only => {
            "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
        }
        Hostile::RedirectToFile => headers("abc", commit, "5"),
    };
    if stream.write_all(answer.as_bytes()).is_err() || head_only {
        return;
    }
    match h {
        Hostile::Trickling => {
            for _ in 0..60 {
                if stream.write_all(b"x").and_then(|_| stream.flush()).is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
        Hostile::Endless => {
            let chunk = vec![b'x'; 1 << 16];
            while stream.write_all(&chunk).is_ok() {}
        }
        _ => {
            let _ = stream.write_all(b"hello");
        }
    }
}

impl Hub {
    fn start(repos: Repos) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let repos = Arc::new(repos);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let repos = repos.clone();
                std::thread::spawn(move || serve(stream, &repos));
            }
        });
        Hub { url }
    }
}

/// A fixture repository's files (the GPT-2 one gets GPT-2's tokenizer.json).
fn repo_files(name: &str) -> HashMap<String, Served> {
    let dir = Path::new(FIXTURES).join(name);
    let mut files: HashMap<String, Served> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), Served::Bytes(std::fs::read(e.path()).unwrap())))
        .collect();
    files.entry("tokenizer.json".into()).or_insert_with(|| Served::Bytes(std::fs::read(GPT2_TOKENIZER).unwrap()));
    files
}

/// A family fixture's repository files (its reference outputs are not part of the repository).
fn family_files(name: &str) -> HashMap<String, Served> {
    std::fs::read_dir(Path::new(FAMILY_FIXTURES).join(name))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "reference.json")
        .map(|e| (e.file_name().to_string_lossy().into_owned(), Served::Bytes(std::fs::read(e.path()).unwrap())))
        .collect()
}

/// The same weights in bf16 (what Qwen2.5-Coder and SmolLM2 ship), rounded to nearest even.
fn to_bf16(weights: &[u8]) -> Vec<u8> {
    let st = safetensors::SafeTensors::deserialize(weights).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let data = v
                .data()
                .chunks_exact(4)
                .flat_map(|b| {
                    let bits = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    (((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16).to_le_bytes()
                })
                .collect();
            (n, v.shape().to_vec(), data)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// The same weights as two shards and an index, as `save_pretrained(max_shard_size=…)` writes them.
fn sharded(files: &mut HashMap<String, Served>) {
    let weights = bytes_of(&files.remove("model.safetensors").unwrap());
    let st = safetensors::SafeTensors::deserialize(&weights).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let half = names.len() / 2;
    let mut map = serde_json::Map::new();
    for (i, part) in [&names[..half], &names[half..]].into_iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        let views: Vec<(String, safetensors::tensor::TensorView)> = part.iter().map(|n| (n.clone(), st.tensor(n).unwrap())).collect();
        files.insert(file.clone(), Served::Bytes(safetensors::serialize(views, None).unwrap()));
        for n in part {
            map.insert(n.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    files.insert("model.safetensors.index.json".into(), Served::Bytes(index.to_string().into_bytes()));
}

fn bytes_of(s: &Served) -> Vec<u8> {
    match s {
        Served::Bytes(b) | Served::CutOff(b) => b.clone(),
        Served::Hostile(_) => unreachable!("no bytes"),
    }
}

/// Every repository the tests pull, good and bad.
fn hub() -> Hub {
    let gpt2 = repo_files("tiny-gpt2");
    let code = repo_files("tiny-codegpt");
    let mut repos: Repos = HashMap::new();
    repos.insert("hnet-test/tiny-gpt2".into(), gpt2.clone());
    repos.insert("hnet-test/tiny-codegpt".into(), code.clone());
    // Config and tokenizer, but the weights only as a PyTorch pickle.
    let mut no_safetensors = gpt2.clone();
    no_safetensors.remove("model.safetensors");
    no_safetensors.insert("pytorch_model.bin".into(), Served::Bytes(b"not a pickle either".to_vec()));
    repos.insert("hnet-test/no-safetensors".into(), no_safetensors);
    // The weights' download stops halfway.
    let mut cut = gpt2.clone();
    cut.insert("model.safetensors".into(), Served::CutOff(bytes_of(&gpt2["model.safetensors"])));
    repos.insert("hnet-test/cut-off".into(), cut);
    // A file that is whole as sent but truncated in itself (what a broken mirror or cache might hold).
    let mut truncated = gpt2.clone();
    let weights = bytes_of(&gpt2["model.safetensors"]);
    truncated.insert("model.safetensors".into(), Served::Bytes(weights[..weights.len() * 2 / 3].to_vec()));
    repos.insert("hnet-test/truncated".into(), truncated);
    // An architecture none of the families has.
    let mut mistral = gpt2.clone();
    let config = String::from_utf8(bytes_of(&gpt2["config.json"])).unwrap().replace("\"gpt2\"", "\"mistral\"");
    mistral.insert("config.json".into(), Served::Bytes(config.into_bytes()));
    repos.insert("hnet-test/mistral".into(), mistral);
    // GPT-2's tokenizer (50257 tokens) with the 400-token model.
    let mut mismatch = code.clone();
    mismatch.insert("tokenizer.json".into(), Served::Bytes(std::fs::read(GPT2_TOKENIZER).unwrap()));
    repos.insert("hnet-test/tokenizer-mismatch".into(), mismatch);
    // The other decoder families, one of them in bf16 and one sharded.
    repos.insert("hnet-test/tiny-llama".into(), family_files("hf-tiny-llama"));
    let mut qwen = family_files("hf-tiny-qwen2");
    let bf16 = to_bf16(&bytes_of(&qwen["model.safetensors"]));
    qwen.insert("model.safetensors".into(), Served::Bytes(bf16));
    repos.insert("hnet-test/tiny-qwen2-bf16".into(), qwen);
    let mut bigcode = family_files("hf-tiny-gpt-bigcode");
    sharded(&mut bigcode);
    repos.insert("hnet-test/tiny-bigcode-sharded".into(), bigcode);
    // Hostile servers: config.json is the first file a pull asks for; the weights for the size attacks.
    for h in [Hostile::TraversingEtag, Hostile::TraversingCommit, Hostile::AbsoluteEtag, Hostile::Silent, Hostile::RedirectToFile] {
        let mut repo = gpt2.clone();
        repo.insert("config.json".into(), Served::Hostile(h));
        repos.insert(format!("hostile/{h:?}"), repo);
    }
    for h in [Hostile::Trickling, Hostile::Endless, Hostile::Oversized] {
        let mut repo = gpt2.clone();
        repo.insert("model.safetensors".into(), Served::Hostile(h));
        repos.insert(format!("hostile/{h:?}"), repo);
    }
    Hub::start(repos)
}

fn tmp(name: &str) -> Scratch {
    Scratch::new("hub", name)
}

/// The binary, pointed at `hub` with a private cache (`HF_HOME`) and short timeouts.
fn bin(hub: &Hub, home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hnet-gpt"));
    c.env("HF_ENDPOINT", &hub.url).env("HF_HOME", home).env_remove("HF_TOKEN");
    c.env("HF_HUB_ETAG_TIMEOUT", "2").env("HF_HUB_DOWNLOAD_TIMEOUT", "2");
    c
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn err(out: Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.lines().any(|l| l.starts_with("Error: ")), "{stderr}");
    stderr
}

fn run(hub: &Hub, home: &Path, args: &[&str]) -> Output {
    bin(hub, home).args(args).output().unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// Greedy continuation of `prompt` (the CLI's `generate` at temperature 0, no penalty).
fn greedy(hub: &Hub, home: &Path, ckpt: &str, prompt: &str) -> String {
    ok(run(
        hub,
        home,
        &[
            "generate",
            "--checkpoint",
            ckpt,
            "--prompt",
            prompt,
            "--temperature",
            "0",
            "--repetition-penalty",
            "1",
            "--max-new-tokens",
            "12",
            // All twelve tokens: a random fixture's text often loops (`���…`), which the editor's scopes cut.
            "--scope",
            "free",
        ],
    ))
}

const TEXT: &str = "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n\n\nclass Stack:\n    def push(self, item):\n        self.items.append(item)\n";

#[test]
fn pulled_models_score_generate_chunk_as_a_hybrid_and_fine_tune() {
    let hub = hub();
    let dir = tmp("pull");
    let home = dir.join("hf-home");
    for (repo, tokenizer) in [("hnet-test/tiny-gpt2", "gpt2-bpe"), ("hnet-test/tiny-codegpt", "embedded")] {
        let name = repo.rsplit('/').next().unwrap();
        let ckpt = dir.join(format!("{name}.safetensors"));
        let ckpt_s = ckpt.to_str().unwrap();
        let out = run(&hub, &home, &["pull", repo, "--out", ckpt_s]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("hf://{repo}@main")));
        // Pulled again: from the cache (hf-hub's layout under HF_HOME), same checkpoint.
        assert!(home.join("hub").read_dir().unwrap().count() > 0, "hf-hub's cache is under HF_HOME");
        let again = dir.join(format!("{name}-again.safetensors"));
        ok(run(&hub, &home, &["pull", &format!("{repo}@main"), "--out", again.to_str().unwrap()]));
        let tensors = |p: &Path| {
            let bytes = std::fs::read(p).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let mut all: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec())).collect();
            all.sort();
            all
        };
        assert!(tensors(&ckpt) == tensors(&again), "{repo}: the second pull holds other weights");

        let info = json(&ok(run(&hub, &home, &["info", "--checkpoint", ckpt_s, "--json"])));
        assert_eq!(info["arch"], "gpt2");
        assert_eq!(info["metadata"]["tokenizer"], tokenizer, "{info}");
        assert_eq!(info["metadata"]["source"], format!("hf://{repo}@main"));
        // The model's own tokenizer tokenizes for it.
        let ids = json(&ok(run(&hub, &home, &["tokenize", "--ids", "--checkpoint", ckpt_s, TEXT])));
        let expected = match tokenizer {
            "gpt2-bpe" => hnet_gpt_model::tokenizer::Tokenizer::gpt2().unwrap(),
            _ => hnet_gpt_model::tokenizer::Tokenizer::from_file(&Path::new(FIXTURES).join(name).join("tokenizer.json")).unwrap(),
        };
        assert_eq!(ids, serde_json::json!(expected.encode(TEXT).unwrap()));
        // It scores and generates.
        let text_file = dir.join("text.py");
        std::fs::write(&text_file, TEXT).unwrap();
        let score = json(&ok(run(&hub, &home, &["score", "--checkpoint", ckpt_s, "--json", text_file.to_str().unwrap()])));
        let ppl = score["perplexity"].as_f64().unwrap();
        assert!(ppl.is_finite() && ppl > 1.0, "{ppl}");
        assert_eq!(score["tokens"].as_array().unwrap().len(), expected.encode(TEXT).unwrap().len());
        let decoder_out = greedy(&hub, &home, ckpt_s, "def add(a, b):");
        assert!(decoder_out.len() > "def add(a, b):".len(), "{decoder_out:?}");

        // A fresh hybrid on it starts from the decoder's quality: perplexity within 5%, the same greedy output.
        let hybrid = dir.join(format!("{name}-hybrid.safetensors"));
        let hybrid_s = hybrid.to_str().unwrap();
        ok(run(&hub, &home, &["init", "--arch", "hybrid", "--decoder-from", ckpt_s, "--seed", "1", "--out", hybrid_s]));
        let hinfo = json(&ok(run(&hub, &home, &["info", "--checkpoint", hybrid_s, "--json"])));
        assert_eq!(hinfo["arch"], "hybrid");
        assert_eq!(hinfo["metadata"]["tokenizer"], tokenizer, "the hybrid takes the decoder's tokenizer");
        assert_eq!(hinfo["config"]["gpt2"], info["config"]["gpt2"], "the hybrid's GPT-2 part is the decoder");
        let hscore = json(&ok(run(&hub, &home, &["score", "--checkpoint", hybrid_s, "--json", text_file.to_str().unwrap()])));
        let hppl = hscore["perplexity"].as_f64().unwrap();
        assert!((hppl / ppl - 1.0).abs() <= 0.05, "{name}: fresh hybrid perplexity {hppl} vs the decoder's {ppl}");
        for prompt in ["def add(a, b):", "class Stack:\n    def", "import os\n"] {
            assert_eq!(greedy(&hub, &home, hybrid_s, prompt), greedy(&hub, &home, ckpt_s, prompt), "{name}: greedy output of {prompt:?}");
        }
        // It chunks…
        let chunks = json(&ok(run(&hub, &home, &["chunks", "--checkpoint", hybrid_s, "--json", text_file.to_str().unwrap()])));
        assert_eq!(chunks["tokens"].as_array().unwrap().len(), expected.encode(TEXT).unwrap().len());
        // …and fine-tunes from the pulled decoder (frozen, then unfrozen), reading its data with its tokenizer.
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        for i in 0..6 {
            std::fs::write(data.join(format!("m{i}.py")), TEXT.replace("add", &format!("add{i}"))).unwrap();
        }
        let run_dir = dir.join(format!("{name}-run"));
        let train = run(
            &hub,
            &home,
            &[
                "train",
                "--arch",
                "hybrid",
                "--decoder-from",
                ckpt_s,
                "--data",
                data.to_str().unwrap(),
                "--steps",
                "4",
                "--batch-size",
                "2",
                "--seq-len",
                "32",
                "--eval-every",
                "2",
                "--lr",
                "1e-3",
                "--quiet",
                "--out",
                run_dir.to_str().unwrap(),
            ],
        );
        assert!(train.status.success(), "{}", String::from_utf8_lossy(&train.stderr));
        let best = run_dir.join("checkpoints/best/model.safetensors");
        let tinfo = json(&ok(run(&hub, &home, &["info", "--checkpoint", best.to_str().unwrap(), "--json"])));
        assert_eq!(tinfo["metadata"]["tokenizer"], tokenizer, "the trained hybrid keeps the decoder's tokenizer");
    }
}

#[test]
fn pull_errors_are_clear_and_leave_nothing_behind() {
    let hub = hub();
    let dir = tmp("errors");
    let home = dir.join("hf-home");
    let cases: [(&str, &str); 6] = [
        ("hnet-test/does-not-exist", "no model `hnet-test/does-not-exist` at revision `main`: its config.json is not there (HTTP 404)"),
        ("hnet-test/no-safetensors", "has no safetensors weights"),
        ("hnet-test/cut-off", "model.safetensors"),
        ("hnet-test/truncated", "not a valid safetensors file"),
        ("hnet-test/mistral", "unsupported model_type `mistral`"),
        ("hnet-test/tokenizer-mismatch", "the tokenizer has 50257 tokens but the model only 400"),
    ];
    for (repo, message) in cases {
        let out = dir.join("out.safetensors");
        let stderr = err(run(&hub, &home, &["pull", repo, "--out", out.to_str().unwrap()]));
        assert!(stderr.contains(message), "{repo}: {stderr}");
        assert!(!out.exists(), "{repo}: a failed pull left {}", out.display());
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().filter(|e| e.file_name() != "hf-home").collect();
        assert!(leftovers.is_empty(), "{repo}: {leftovers:?}");
    }
    // A malformed model id is refused before any request.
    assert!(err(run(&hub, &home, &["pull", "../etc", "--out", "x.safetensors"])).contains("is not a Hub model id"));
}

/// A server that lies, stalls or floods gets a clear error, writes nothing outside HF_HOME and leaves nothing
/// half-written in it.
#[test]
fn a_hostile_hub_gets_a_clear_error_and_writes_nothing_outside_the_cache() {
    let hub = hub();
    let dir = tmp("hostile");
    let home = dir.join("user-home");
    let hf_home = home.join(".cache/huggingface");
    std::fs::create_dir_all(&hf_home).unwrap();
    std::fs::write(home.join(".bashrc"), "# mine\n").unwrap();
    let cases: [(Hostile, &str, u64); 8] = [
        (Hostile::TraversingEtag, "ETag that is not a plain name", 10),
        (Hostile::TraversingCommit, "commit that is not 40 hexadecimal digits", 10),
        (Hostile::AbsoluteEtag, "ETag that is not a plain name", 10),
        (Hostile::Silent, "cannot reach the Hub", 15),
        (Hostile::RedirectToFile, "model.safetensors", 15),
        (Hostile::Trickling, "stalled", 20),
        (Hostile::Endless, "ran past its declared size", 20),
        (Hostile::Oversized, "over the limit", 10),
    ];
    for (h, message, seconds) in cases {
        let repo = format!("hostile/{h:?}");
        let out = dir.join("out.safetensors");
        let start = std::time::Instant::now();
        let output = bin(&hub, &hf_home).env("HOME", &home).args(["pull", &repo, "--out", out.to_str().unwrap()]).output().unwrap();
        let took = start.elapsed();
        let stderr = err(output);
        if !matches!(h, Hostile::RedirectToFile) {
            assert!(stderr.contains(message), "{h:?}: {stderr}");
        }
        assert!(took < std::time::Duration::from_secs(seconds), "{h:?} took {took:?}");
        assert!(!out.exists(), "{h:?}");
        assert_eq!(std::fs::read_to_string(home.join(".bashrc")).unwrap(), "# mine\n", "{h:?} changed ~/.bashrc");
        // Nothing outside the cache: the user's home holds only what it held, and nothing half-written inside.
        let mut names: Vec<String> = std::fs::read_dir(&home).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
        names.sort();
        assert_eq!(names, [".bashrc", ".cache"], "{h:?}");
        assert!(!dir.join("outside").exists() && !Path::new("/tmp/hnet-hostile-etag").exists(), "{h:?}");
        let partial: Vec<_> = walk(&hf_home).into_iter().filter(|p| p.to_string_lossy().ends_with(".incomplete")).collect();
        assert!(partial.is_empty(), "{h:?}: {partial:?}");
    }
    // The redirect to a local file was not followed (the client speaks http(s) only).
    assert!(walk(&hf_home).iter().all(|p| std::fs::read(p).map_or(true, |b| !b.starts_with(b"root:"))));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every decoder family pulls from the Hub (a bf16 repository and a sharded one among them), computes what the same
/// files imported directly compute, fills in the middle when its tokenizer has FIM tokens (and says so when not),
/// and a fresh hybrid around it starts at its quality: perplexity within 5%, the same greedy output.
#[test]
fn every_decoder_family_pulls_completes_and_wraps_in_a_hybrid() {
    let hub = hub();
    let dir = tmp("families");
    let home = dir.join("hf-home");
    let text = dir.join("text.py");
    std::fs::write(&text, TEXT).unwrap();
    for (repo, family, fim) in [
        ("hnet-test/tiny-llama", "llama", false),
        ("hnet-test/tiny-qwen2-bf16", "qwen2", true),
        ("hnet-test/tiny-bigcode-sharded", "gpt_bigcode", true),
    ] {
        let ckpt = dir.join(format!("{family}.safetensors"));
        let c = ckpt.to_str().unwrap();
        ok(run(&hub, &home, &["pull", repo, "--out", c]));
        let info = json(&ok(run(&hub, &home, &["info", "--checkpoint", c, "--json"])));
        assert_eq!((info["arch"].as_str(), info["config"]["gpt2"]["family"].as_str()), (Some("gpt2"), Some(family)), "{info}");
        assert_eq!(info["metadata"]["tokenizer"], "embedded", "{repo}: the family's tokenizer travels with it");
        let score = |ckpt: &str| json(&ok(run(&hub, &home, &["score", "--checkpoint", ckpt, "--json", text.to_str().unwrap()])));
        let ppl = score(c)["perplexity"].as_f64().unwrap();
        assert!(ppl.is_finite() && ppl > 1.0, "{repo}: {ppl}");
        // Fill in the middle, or a clear refusal.
        let args = [
            "generate",
            "--checkpoint",
            c,
            "--prompt",
            "def add(a, b):\n    ",
            "--suffix",
            "\n    return x\n",
            "--temperature",
            "0",
            "--max-new-tokens",
            "6",
        ];
        let out = run(&hub, &home, &args);
        if fim {
            assert!(out.status.success(), "{repo}: {}", String::from_utf8_lossy(&out.stderr));
        } else {
            assert!(err(out).contains("no fill-in-the-middle tokens"), "{repo}");
        }
        // A fresh hybrid around it starts from its quality.
        let hybrid = dir.join(format!("{family}-hybrid.safetensors"));
        let h = hybrid.to_str().unwrap();
        ok(run(&hub, &home, &["init", "--arch", "hybrid", "--decoder-from", c, "--seed", "1", "--out", h]));
        let hppl = score(h)["perplexity"].as_f64().unwrap();
        assert!((hppl / ppl - 1.0).abs() <= 0.05, "{repo}: fresh hybrid perplexity {hppl} vs the decoder's {ppl}");
        for prompt in ["def add(a, b):", "class Stack:\n    def"] {
            assert_eq!(greedy(&hub, &home, h, prompt), greedy(&hub, &home, c, prompt), "{repo}: greedy output of {prompt:?}");
        }
        let chunks = json(&ok(run(&hub, &home, &["chunks", "--checkpoint", h, "--json", text.to_str().unwrap()])));
        assert!(!chunks["tokens"].as_array().unwrap().is_empty());
        // f16 for the browser: half the size, the same model within f16's rounding.
        let half = dir.join(format!("{family}-f16.safetensors"));
        ok(run(&hub, &home, &["convert", "--checkpoint", c, "--out", half.to_str().unwrap(), "--half"]));
        let hppl = score(half.to_str().unwrap())["perplexity"].as_f64().unwrap();
        assert!((hppl / ppl - 1.0).abs() <= 0.02, "{repo}: f16 perplexity {hppl} vs {ppl}");
        // Fine-tuning the hybrid around it: the decoder frozen, then unfrozen (layers by their family's names).
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        for i in 0..6 {
            std::fs::write(data.join(format!("m{i}.py")), TEXT.replace("add", &format!("add{i}"))).unwrap();
        }
        let run_dir = dir.join(format!("{family}-run"));
        let train = [
            "train",
            "--arch",
            "hybrid",
            "--decoder-from",
            c,
            "--data",
            data.to_str().unwrap(),
            "--steps",
            "4",
            "--batch-size",
            "2",
            "--seq-len",
            "24",
            "--eval-every",
            "2",
            "--lr",
            "1e-3",
            "--quiet",
            "--out",
            run_dir.to_str().unwrap(),
        ];
        ok(run(&hub, &home, &train));
        let summary = json(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap());
        assert_eq!(summary["steps"], 4, "{repo}: {summary}");
    }
}
