//! One function per subcommand; each turns flags into library calls and prints the result.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::backend::Backend;
use hnet_gpt_model::eval::inspect::inspect_chunks_windowed_blocking;
use hnet_gpt_model::eval::score::score_text;
use hnet_gpt_model::generate::complete::{complete, Prompt};
use hnet_gpt_model::generate::sampling::SamplingParams;
use hnet_gpt_model::generate::stop::{is_blank, StopRules};
use hnet_gpt_model::generate::GenerateParams;
use hnet_gpt_model::io::{checkpoint, transplant};
use hnet_gpt_model::{Arch, Model, ModelConfig};
use serde_json::json;

use hnet_gpt::humaneval::{Problem, Sample};
use hnet_gpt::sandbox::Sandbox;

use crate::args::{Cli, Command, SamplingArgs};
use crate::backend::with_backend;
use crate::input::{checkpoint_info, file_arg, text_arg, tokenizer};

pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Tokenize { ids, checkpoint, text } => {
            let tok = match checkpoint {
                Some(path) => checkpoint_info(&path)?.1.tokenizer.load()?,
                None => tokenizer()?,
            };
            tokenize(&tok, &text_arg(&text)?, ids)
        }
        Command::Init { arch, preset, seed, decoder_from, out } => init(arch, &preset, seed, decoder_from.as_deref(), &out),
        Command::Pull { spec, out } => hnet_gpt::hub::pull(&spec, &out),
        Command::ImportHf { hf_dir, out } => import_hf(&hf_dir, &out),
        Command::Info { checkpoint, json } => info(&checkpoint, json),
        Command::Convert { checkpoint, out, half, context } => convert(&checkpoint, &out, half, context),
        Command::Score { model, json, file } => {
            let text = file_arg(&file)?;
            with_backend!(model.device, |device: B| score::<B>(&model.checkpoint, &device, &text, json))
        }
        Command::Chunks { model, json, file } => {
            let text = file_arg(&file)?;
            with_backend!(model.device, |device: B| chunks::<B>(&model.checkpoint, &device, &text, json))
        }
        Command::Data { command: crate::args::DataCommand::Prepare(args) } => crate::data::prepare(&args),
        Command::Train(args) => crate::train::run(*args),
        Command::Coordinator { port } => hnet_gpt::cluster::coordinate(port),
        Command::Eval { model, data, all, valid_fraction, max_tokens, whole_files, headers, humaneval, samples, seed, sandbox, json } => {
            let settings = crate::eval::EvalSettings {
                data,
                valid_only: !all,
                valid_fraction,
                max_tokens,
                whole_files,
                headers,
                humaneval_problems: humaneval,
                humaneval_samples: samples,
                seed,
                // Checked before any work: a missing sandbox refuses at once.
                sandbox: if humaneval > 0 { Some(sandbox.sandbox()?) } else { None },
            };
            with_backend!(model.device, |device: B| crate::eval::run::<B>(&model.checkpoint, &device, &settings, json))
        }
        Command::Humaneval { checkpoint, completions, canonical, problems, problem_file, samples, seed, device, sandbox, json } => {
            let sandbox = sandbox.sandbox()?;
            let all = match &problem_file {
                Some(path) => hnet_gpt::humaneval::read_problems(&file_arg(&path.display().to_string())?, &path.display().to_string())?,
                None => hnet_gpt::humaneval::problems(),
            };
            // The sampling temperature, when the completions are generated here.
            let temperature = (completions.is_none() && !canonical).then(|| crate::eval::humaneval_temperature(samples));
            let to_score: Vec<Sample> = if let Some(path) = completions {
                let text = file_arg(&path.display().to_string())?;
                hnet_gpt::humaneval::read_samples(&text, &path.display().to_string(), &all)?
            } else if canonical {
                all.iter().take(problems).map(|p| Sample { task_id: p.task_id.clone(), completion: p.canonical_solution.clone() }).collect()
            } else {
                let ckpt = checkpoint.expect("clap requires one source");
                with_backend!(device, |dev: B| {
                    let model = load_model::<B>(&ckpt, &dev)?;
                    crate::eval::humaneval_completions(&model, &model.tokenizer.load()?, &all[..problems.min(all.len())], samples, seed)
                })?
            };
            humaneval(&sandbox, &all, &to_score, canonical, temperature, json)
        }
        Command::Compare(args) => with_backend!(args.device, |device: B| crate::compare::run::<B>(&args, &device)),
        Command::Bench(args) => crate::bench::run(&args),
        Command::Plot { run_dir } => crate::plot::plot_run(&run_dir),
        Command::Generate { model, prompt, suffix, sampling } => {
            let prompt = text_arg(&prompt)?;
            with_backend!(model.device, |device: B| generate::<B>(&model.checkpoint, &device, &prompt, suffix.as_deref(), &sampling))
        }
    }
}

fn tokenize(tok: &hnet_gpt_model::tokenizer::Tokenizer, text: &str, ids_only: bool) -> Result<()> {
    let tokens = tok.encode_with_offsets(text)?;
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    let out = if ids_only {
        json!(ids)
    } else {
        let strings: Vec<String> = ids.iter().map(|&id| tok.token_str(id).unwrap_or_default()).collect();
        let spans: Vec<[usize; 2]> = tokens.iter().map(|t| [t.span.start, t.span.end]).collect();
        json!({ "ids": ids, "tokens": strings, "spans": spans })
    };
    println!("{out}");
    Ok(())
}

fn init(arch: Arch, preset: &str, seed: u64, decoder_from: Option<&Path>, out: &Path) -> Result<()> {
    type B = crate::backend::Cpu;
    let device = Default::default();
    B::seed(&device, seed);
    let seed_text = seed.to_string();
    let (model, what, decoder_name) = match decoder_from {
        Some(path) => {
            if arch != Arch::Hybrid {
                bail!("--decoder-from builds a hybrid: add --arch hybrid");
            }
            let bytes = checkpoint::map_file(path)?;
            let name = path.display().to_string();
            (transplant::hybrid_from_decoder::<B>(&bytes, &name, &device)?, format!("on the decoder {name}"), Some(name))
        }
        None => (checkpoint::init::<B>(&ModelConfig::preset(arch, preset)?, &device)?, preset.to_string(), None),
    };
    let mut extra = vec![("init_seed", seed_text.as_str())];
    if let Some(name) = &decoder_name {
        extra.push(("decoder_from", name.as_str()));
    }
    checkpoint::save(&model, out, &extra)?;
    eprintln!("wrote {} ({} {what}, {} parameters)", out.display(), model.config.arch, model.num_params());
    let (_, info) = checkpoint_info(out)?;
    let parts: Vec<String> = info.components.iter().map(|(c, n)| format!("{c} {n}")).collect();
    eprintln!("  {} · lm head tied to the embedding", parts.join(" · "));
    Ok(())
}

fn import_hf(dir: &Path, out: &Path) -> Result<()> {
    type B = crate::backend::Cpu;
    let model =
        hnet_gpt_model::io::hf::import_hf_dir::<B>(dir, &Default::default()).with_context(|| format!("importing {}", dir.display()))?;
    let source = dir.display().to_string();
    checkpoint::save(&model, out, &[("imported_from", &source)])?;
    eprintln!("wrote {} ({} parameters)", out.display(), model.num_params());
    Ok(())
}

fn convert(path: &Path, out: &Path, half: bool, context: Option<usize>) -> Result<()> {
    type B = crate::backend::Cpu;
    let (bytes, info) = checkpoint_info(path)?;
    let mut model = checkpoint::from_bytes::<B>(&bytes, &path.display().to_string(), &Default::default())?;
    if let Some(n) = context {
        model = model.with_context(n).with_context(|| format!("--context {n}"))?;
    }
    // Keep the provenance metadata (training step, source) next to the weights.
    let extra: Vec<(&str, &str)> = info
        .metadata
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "format" | "config" | "tokenizer"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    checkpoint::save_as(&model, out, &extra, half).with_context(|| format!("writing {}", out.display()))?;
    let size = std::fs::metadata(out).map_or(0, |m| m.len());
    eprintln!("wrote {} ({size} bytes, {})", out.display(), if half { "f16" } else { "f32" });
    Ok(())
}

fn info(path: &Path, json_out: bool) -> Result<()> {
    let (_, info) = checkpoint_info(path)?;
    if json_out {
        let extra: serde_json::Map<String, serde_json::Value> =
            info.metadata.iter().filter(|(k, _)| !matches!(k.as_str(), "config" | "format")).map(|(k, v)| (k.clone(), json!(v))).collect();
        let components: serde_json::Map<String, serde_json::Value> =
            info.components.iter().map(|(c, n)| (c.to_string(), json!(n))).collect();
        println!(
            "{}",
            json!({ "arch": info.config.arch, "config": info.config, "parameters": info.num_params, "components": components, "metadata": extra })
        );
    } else {
        println!("checkpoint  {}", path.display());
        println!("arch        {}", info.config.arch);
        println!("parameters  {}", info.num_params);
        for (c, n) in &info.components {
            println!("  {c:<12} {n:>10}  ({:.1}%)", 100.0 * *n as f64 / info.num_params.max(1) as f64);
        }
        println!("  {:<12} {:>10}  (tied to the token embedding)", "lm head", 0);
        println!("tokenizer   {}", info.tokenizer);
        println!("config      {}", serde_json::to_string_pretty(&info.config)?);
        for (k, v) in info.metadata.iter().filter(|(k, _)| !matches!(k.as_str(), "config" | "format" | "tokenizer")) {
            println!("{k:<11} {v}");
        }
    }
    Ok(())
}

fn load_model<B: Backend>(path: &Path, device: &B::Device) -> Result<Model<B>> {
    checkpoint::load(path, device).with_context(|| format!("loading {}", path.display()))
}

fn score<B: Backend>(path: &Path, device: &B::Device, text: &str, json_out: bool) -> Result<()> {
    let model = load_model::<B>(path, device)?;
    let report = score_text(&model, &model.tokenizer.load()?, text)?;
    if json_out {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for t in &report.tokens {
            println!("{:>8.3}  {:?}", t.logprob, t.text);
        }
        println!("tokens         {}", report.tokens.len());
        println!("total NLL      {:.4} nats", report.total_nll);
        println!("perplexity     {:.4}", report.perplexity);
        println!("bits per byte  {:.4}", report.bits_per_byte);
    }
    Ok(())
}

fn chunks<B: Backend>(path: &Path, device: &B::Device, text: &str, json_out: bool) -> Result<()> {
    use std::io::IsTerminal;
    let model = load_model::<B>(path, device)?;
    // The whole text, however long: windows of the context, stitched (see `eval::inspect`).
    let report = inspect_chunks_windowed_blocking(&model, &model.tokenizer.load()?, text)?;
    if json_out {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let mut out = String::new();
    if std::io::stdout().is_terminal() {
        // Alternating background colours, one per chunk; newlines stay uncoloured so lines do not smear.
        for (i, c) in report.chunks.iter().enumerate() {
            let colour = if i % 2 == 0 { "48;5;153;30" } else { "48;5;223;30" };
            for (j, line) in text[c.start..c.end].split('\n').enumerate() {
                if j > 0 {
                    out.push('\n');
                }
                if !line.is_empty() {
                    out.push_str(&format!("\x1b[{colour}m{line}\x1b[0m"));
                }
            }
        }
    } else {
        // Without colours, `▏` marks where each chunk after the first begins.
        for (i, c) in report.chunks.iter().enumerate() {
            if i > 0 {
                out.push('▏');
            }
            out.push_str(&text[c.start..c.end]);
        }
    }
    println!("{out}");
    eprintln!(
        "{} chunks · {} tokens · mean {:.2} tokens / {:.1} bytes per chunk",
        report.n_chunks,
        report.tokens.len(),
        report.mean_chunk_tokens,
        report.mean_chunk_bytes
    );
    Ok(())
}

fn generate<B: Backend>(path: &Path, device: &B::Device, prompt: &str, suffix: Option<&str>, s: &SamplingArgs) -> Result<()> {
    let model = load_model::<B>(path, device)?;
    let tok = model.tokenizer.load()?;
    let prompt = match suffix {
        Some(suffix) => Prompt::Middle { prefix: prompt, suffix },
        None => Prompt::Text(prompt),
    };
    let ids = prompt.ids(&tok, Prompt::budget(&model, s.max_new_tokens))?;
    if ids.is_empty() {
        bail!("the prompt is empty: give at least one token of text");
    }
    let params = GenerateParams {
        sampling: SamplingParams {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            repetition_penalty: s.repetition_penalty,
            repetition_window: Some(s.repetition_window),
        },
        max_new_tokens: s.max_new_tokens,
        seed: s.seed,
        stop_tokens: tok.stop_tokens(),
    };
    if ids.len() > model.n_ctx() {
        eprintln!("note: the prompt is longer than the context; kept its last {} tokens", model.n_ctx());
    }
    let mut stdout = std::io::stdout().lock();
    let mut failed = None;
    let rules = StopRules { scope: s.scope, strings: s.stop.clone() };
    let (text, tokens) = complete(&model, &tok, prompt, params, &rules, |piece| {
        if failed.is_none() {
            failed = stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush()).err();
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if is_blank(&text) {
        eprintln!("no completion: the model wrote only whitespace ({tokens} tokens) before its {:?} scope ended", s.scope);
    }
    writeln!(stdout)?;
    Ok(())
}

/// Scores samples in the sandbox and prints pass@k (and, with `--json`, every sample's result).
fn humaneval(
    sandbox: &Sandbox,
    problems: &[Problem],
    samples: &[Sample],
    canonical: bool,
    temperature: Option<f64>,
    json_out: bool,
) -> Result<()> {
    let bar = indicatif::ProgressBar::new(samples.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("running tests {bar:30} {pos}/{len} [{elapsed}<{eta}]").expect("valid template"),
    );
    let results = hnet_gpt::humaneval::score(sandbox, problems, samples, || bar.inc(1));
    bar.finish_and_clear();
    let mut summary = hnet_gpt::humaneval::summary(&results);
    summary["sandboxed"] = json!(sandbox.is_isolated());
    summary["memory_bound"] = json!(sandbox.memory_bound());
    if let Some(t) = temperature {
        summary["temperature"] = json!(t);
    }
    if json_out {
        summary["samples"] = json!(results);
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let f = |k: &str| summary.get(k).and_then(|v| v.as_f64()).map(|v| format!("{v:.4}"));
        let ks: Vec<String> = ["pass@1", "pass@10", "pass@100"].iter().filter_map(|k| f(k).map(|v| format!("{k} {v}"))).collect();
        println!("{}  ({} samples over {} problems; {} passed)", ks.join("  "), summary["samples"], summary["problems"], summary["passed"]);
        for r in results.iter().filter(|r| !r.passed).take(if canonical { usize::MAX } else { 10 }) {
            println!("  {} {:?}: {}", r.task_id, r.reason.expect("failed samples have a reason"), r.detail);
        }
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if canonical && failed > 0 {
        bail!("{failed} canonical solutions failed in the sandbox");
    }
    Ok(())
}
