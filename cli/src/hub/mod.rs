//! `hnet-gpt pull REPO[@REVISION] --out FILE`: a GPT-2-architecture model from the Hugging Face Hub, as an
//! hnet-gpt checkpoint.
//!
//! The files come through [`client`], which keeps the Hub's conventions (`HF_ENDPOINT`, `HF_HOME` and its cache
//! layout shared with Python's `huggingface_hub`, `HF_TOKEN`, `HF_HUB_OFFLINE`, the timeouts) and trusts nothing the
//! server says. We fetch `config.json` first (the architecture is checked before any weights are downloaded), then
//! `tokenizer.json`, then `model.safetensors` — or `model.safetensors.index.json` and its shards. The checkpoint is
//! written atomically, so a failure leaves nothing half-written.

pub mod client;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use burn::module::Module;
use client::{Client, FileKind, RepoRef};
use hnet_gpt_model::io::checkpoint;
use hnet_gpt_model::io::hf;
use hnet_gpt_model::tokenizer::Tokenizer;

/// `REPO[@REVISION]` → (repo, revision); the revision defaults to `main`.
pub fn parse_spec(spec: &str) -> Result<(String, String)> {
    let (repo, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    client::check_repo(repo)
        .and_then(|_| client::check_revision(revision))
        .map_err(|e| anyhow!("`{spec}` is not a Hub model id ({e}); expected REPO or OWNER/REPO, optionally @REVISION (e.g. gpt2, codeparrot/codeparrot-small@main)"))?;
    Ok((repo.to_string(), revision.to_string()))
}

struct Hub {
    client: Client,
    repo: RepoRef,
}

impl Hub {
    /// A file from the cache or the Hub; `Ok(None)` when the Hub has no such file.
    fn fetch(&self, file: &str, kind: FileKind) -> Result<Option<PathBuf>> {
        self.client.get(&self.repo, file, kind)
    }

    /// A file that must be there, read and checked by `parse`.
    fn read<T>(&self, file: &str, kind: FileKind, parse: impl Fn(Vec<u8>) -> Result<T>) -> Result<T> {
        let path =
            self.fetch(file, kind)?.ok_or_else(|| anyhow!("`{}` has no `{file}` at revision `{}`", self.repo.repo, self.repo.revision))?;
        let limit = match kind {
            FileKind::Metadata => hnet_gpt_model::util::files::MAX_JSON_BYTES,
            FileKind::Weights => hnet_gpt_model::util::files::MAX_CHECKPOINT_BYTES,
        };
        let bytes = hnet_gpt_model::util::files::read_regular(&path, limit).with_context(|| format!("reading {}", path.display()))?;
        parse(bytes).with_context(|| format!("{file} of `{}`", self.repo.repo))
    }
}

/// Pulls `spec` from the Hub and writes an hnet-gpt checkpoint to `out`.
pub fn pull(spec: &str, out: &Path) -> Result<()> {
    let (name, revision) = parse_spec(spec)?;
    let client = Client::from_env(std::io::IsTerminal::is_terminal(&std::io::stderr()))?;
    let hub = Hub { client, repo: RepoRef { repo: name.clone(), revision: revision.clone() } };
    let started = std::time::Instant::now();

    // The architecture first: nothing big is downloaded for a model we cannot run.
    if hub.fetch("config.json", FileKind::Metadata)?.is_none() {
        bail!(
            "{}: no model `{name}` at revision `{revision}`: its config.json is not there (HTTP 404); check the id (OWNER/REPO) \
             and the revision",
            hub.client.endpoint()
        );
    }
    let config_json = hub.read("config.json", FileKind::Metadata, |b| String::from_utf8(b).context("config.json is not UTF-8"))?;
    let config = hf::config_from_hf_json(&config_json).with_context(|| format!("`{name}` is not a model hnet-gpt can run"))?;
    let tokenizer_json = hub.read("tokenizer.json", FileKind::Metadata, |b| {
        let text = String::from_utf8(b).context("tokenizer.json is not UTF-8")?;
        Tokenizer::from_json_bytes(text.as_bytes())?;
        Ok(text)
    })?;
    // Before the weights: a tokenizer that cannot belong to this model is refused without the big download.
    Tokenizer::from_json_bytes(tokenizer_json.as_bytes())?
        .check_fits(config.vocab_size())
        .with_context(|| format!("the tokenizer.json and config.json of `{name}`"))?;

    let check_safetensors = |b: Vec<u8>| {
        safetensors::SafeTensors::deserialize(&b).map_err(|e| anyhow!("not a valid safetensors file: {e}"))?;
        Ok(b)
    };
    let shards: Vec<(String, Vec<u8>)> = if hub.fetch("model.safetensors", FileKind::Weights)?.is_some() {
        vec![("model.safetensors".into(), hub.read("model.safetensors", FileKind::Weights, check_safetensors)?)]
    } else if hub.fetch("model.safetensors.index.json", FileKind::Metadata)?.is_some() {
        let index =
            hub.read("model.safetensors.index.json", FileKind::Metadata, |b| String::from_utf8(b).context("the index is not UTF-8"))?;
        let files = hf::shard_files(&index)?;
        files.into_iter().map(|f| Ok((f.clone(), hub.read(&f, FileKind::Weights, check_safetensors)?))).collect::<Result<_>>()?
    } else {
        bail!(
            "`{name}` has no safetensors weights at revision `{revision}` (neither model.safetensors nor \
             model.safetensors.index.json); hnet-gpt reads only safetensors — PyTorch .bin files are pickles, which it \
             does not load"
        );
    };
    let parts: Vec<(&str, &[u8])> = shards.iter().map(|(f, b)| (f.as_str(), b.as_slice())).collect();
    let device = Default::default();
    let model = hf::from_hub_files::<burn::backend::Flex>(&config_json, &parts, &tokenizer_json, &Tokenizer::gpt2()?, &device)
        .with_context(|| format!("converting `{name}` to an hnet-gpt checkpoint"))?;
    let source = format!("hf://{name}@{revision}");
    checkpoint::save(&model, out, &[("source", &source), ("hub_repo", &name), ("hub_revision", &revision)])
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "wrote {} ({}, {} parameters, {} layers × {} wide, tokenizer {}) in {:.1} s",
        out.display(),
        source,
        model.num_params(),
        config.decoder.n_layer,
        config.decoder.n_embd,
        model.tokenizer,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_junk_is_refused() {
        assert_eq!(parse_spec("gpt2").unwrap(), ("gpt2".into(), "main".into()));
        assert_eq!(parse_spec("codeparrot/codeparrot-small@v1.0").unwrap(), ("codeparrot/codeparrot-small".into(), "v1.0".into()));
        for bad in ["", "@main", "a/b/c", "../x", "/etc", "gpt2@", "a b", "gpt2@../../x", "gpt2@/etc"] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }
}
