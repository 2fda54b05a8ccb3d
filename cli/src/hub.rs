//! `hnet-gpt pull REPO[@REVISION] --out FILE`: a GPT-2-architecture model from the Hugging Face Hub, as an
//! hnet-gpt checkpoint.
//!
//! The files come through the `hf-hub` crate, so its conventions hold: `HF_ENDPOINT` (another Hub, or the tests'
//! local one), `HF_HOME` (the cache, shared with Python's `huggingface_hub`), a token from `HF_TOKEN` or the cache's
//! `token` file, and a progress bar per file. We fetch `config.json` first (the architecture is checked before any
//! weights are downloaded), then `model.safetensors` — or `model.safetensors.index.json` and its shards — and
//! `tokenizer.json`. A file that does not parse is fetched once more (a cached copy may be a truncated download);
//! the checkpoint is written atomically, so a failure leaves nothing half-written.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use burn::module::Module;
use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Repo, RepoType};
use hnet_gpt_model::io::checkpoint;
use hnet_gpt_model::io::hf;
use hnet_gpt_model::io::tokenizer::Tokenizer;

/// `REPO[@REVISION]` → (repo, revision); the revision defaults to `main`.
pub fn parse_spec(spec: &str) -> Result<(String, String)> {
    let (repo, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if !valid(repo) || repo.starts_with('/') || repo.contains("..") || repo.split('/').count() > 2 || !valid(revision) {
        bail!("`{spec}` is not a Hub model id: expected REPO or OWNER/REPO, optionally @REVISION (e.g. gpt2, codeparrot/codeparrot-small@main)");
    }
    Ok((repo.to_string(), revision.to_string()))
}

/// Why a file could not be fetched, in words a user can act on.
fn explain(err: ApiError, repo: &str, revision: &str, file: &str, endpoint: &str) -> anyhow::Error {
    if let ApiError::RequestError(e) = &err {
        if let ureq::Error::Status(code, _) = e.as_ref() {
            return match code {
                404 => anyhow!("{endpoint}: `{file}` not found in `{repo}` at revision `{revision}` (HTTP 404)"),
                401 | 403 => anyhow!(
                    "{endpoint}: `{repo}` refused access to `{file}` (HTTP {code}): the repository is gated or private; \
                     accept its terms on the Hub and set HF_TOKEN"
                ),
                _ => anyhow!("{endpoint}: fetching `{file}` from `{repo}` failed with HTTP {code}"),
            };
        }
    }
    anyhow!("{endpoint}: fetching `{file}` from `{repo}` at `{revision}` failed: {err}")
}

fn is_not_found(err: &ApiError) -> bool {
    matches!(err, ApiError::RequestError(e) if matches!(e.as_ref(), ureq::Error::Status(404, _)))
}

struct Hub {
    api: Api,
    repo: ApiRepo,
    name: String,
    revision: String,
    endpoint: String,
}

impl Hub {
    /// A file from the cache or the Hub; `Ok(None)` when the Hub has no such file.
    fn fetch(&self, file: &str) -> Result<Option<PathBuf>> {
        match self.repo.get(file) {
            Ok(path) => Ok(Some(path)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(explain(e, &self.name, &self.revision, file, &self.endpoint)),
        }
    }

    /// A file that must be there, read and checked by `parse`; a copy that does not parse is fetched again once.
    fn read<T>(&self, file: &str, parse: impl Fn(Vec<u8>) -> Result<T>) -> Result<T> {
        let path = self.fetch(file)?.ok_or_else(|| anyhow!("`{}` has no `{file}` at revision `{}`", self.name, self.revision))?;
        match std::fs::read(&path).map_err(anyhow::Error::from).and_then(&parse) {
            Ok(v) => Ok(v),
            Err(first) => {
                eprintln!("{file} did not read back ({first:#}); fetching it again");
                let path = self.repo.download(file).map_err(|e| explain(e, &self.name, &self.revision, file, &self.endpoint))?;
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                parse(bytes).with_context(|| format!("{file} from `{}` (the download may be truncated)", self.name))
            }
        }
    }
}

/// Pulls `spec` from the Hub and writes an hnet-gpt checkpoint to `out`.
pub fn pull(spec: &str, out: &Path) -> Result<()> {
    let (name, revision) = parse_spec(spec)?;
    let mut builder = ApiBuilder::from_env().with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let api = builder.build().context("setting up the Hugging Face Hub client")?;
    let repo = api.repo(Repo::with_revision(name.clone(), RepoType::Model, revision.clone()));
    let hub = Hub { api, repo, name: name.clone(), revision: revision.clone(), endpoint };
    let started = std::time::Instant::now();

    // The architecture first: nothing big is downloaded for a model we cannot run.
    if hub.fetch("config.json")?.is_none() {
        bail!(
            "{}: no model `{name}` at revision `{revision}`: its config.json is not there (HTTP 404); check the id (OWNER/REPO) \
             and the revision",
            hub.endpoint
        );
    }
    let config_json = hub.read("config.json", |b| String::from_utf8(b).context("config.json is not UTF-8"))?;
    let config = hf::config_from_hf_json(&config_json).with_context(|| format!("`{name}` is not a model hnet-gpt can run"))?;
    let tokenizer_json = hub.read("tokenizer.json", |b| {
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
    let shards: Vec<(String, Vec<u8>)> = if hub.fetch("model.safetensors")?.is_some() {
        vec![("model.safetensors".into(), hub.read("model.safetensors", check_safetensors)?)]
    } else if hub.fetch("model.safetensors.index.json")?.is_some() {
        let index = hub.read("model.safetensors.index.json", |b| String::from_utf8(b).context("the index is not UTF-8"))?;
        let files = hf::shard_files(&index)?;
        files.into_iter().map(|f| Ok((f.clone(), hub.read(&f, check_safetensors)?))).collect::<Result<_>>()?
    } else {
        bail!(
            "`{name}` has no safetensors weights at revision `{revision}` (neither model.safetensors nor \
             model.safetensors.index.json); hnet-gpt reads only safetensors — PyTorch .bin files are pickles, which it \
             does not load"
        );
    };
    let parts: Vec<(&str, &[u8])> = shards.iter().map(|(f, b)| (f.as_str(), b.as_slice())).collect();
    let device = Default::default();
    let model = hf::from_hub_files::<crate::backend::Cpu>(&config_json, &parts, &tokenizer_json, &Tokenizer::gpt2()?, &device)
        .with_context(|| format!("converting `{name}` to an hnet-gpt checkpoint"))?;
    let source = format!("hf://{name}@{revision}");
    checkpoint::save(&model, out, &[("source", &source), ("hub_repo", &name), ("hub_revision", &revision)])
        .with_context(|| format!("writing {}", out.display()))?;
    drop(hub.api);
    eprintln!(
        "wrote {} ({}, {} parameters, {} layers × {} wide, tokenizer {}) in {:.1} s",
        out.display(),
        source,
        model.num_params(),
        config.gpt2.n_layer,
        config.gpt2.n_embd,
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
        for bad in ["", "@main", "a/b/c", "../x", "/etc", "gpt2@", "a b"] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }
}
