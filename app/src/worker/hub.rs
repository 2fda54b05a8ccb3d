//! Models from the Hugging Face Hub, in the worker: the Hub's files are fetched straight from
//! `{endpoint}/{repo}/resolve/{revision}/{file}` (the Hub serves CORS) with a progress bar per file, kept in the
//! Cache API, and converted here exactly as `hnet-gpt pull` converts them (`hf::from_hub_files`); with `hybrid`,
//! a fresh H-Net encoder goes in front (`transplant::hybrid_from_decoder`), starting from the decoder's quality.

use hnet_gpt_model::io::hf;
use hnet_gpt_model::io::{checkpoint, transplant};
use hnet_gpt_model::tokenizer::Tokenizer;

use super::engine::Cpu;
use super::post;
use crate::protocol::{HubInfo, JobId, Reply};
use crate::web::{self, FetchError};

/// The URL of one of a repository's files.
pub fn file_url(endpoint: &str, repo: &str, revision: &str, file: &str) -> String {
    format!("{}/{repo}/resolve/{revision}/{file}", endpoint.trim_end_matches('/'))
}

/// A repository's file with its own progress bar, through the Cache API (a Hub file at a revision does not change).
async fn fetch(job: JobId, endpoint: &str, repo: &str, revision: &str, file: &str) -> Result<Vec<u8>, FetchError> {
    let name = file.to_string();
    let bounds = if file.ends_with(".json") { web::Bounds::METADATA } else { web::Bounds::WEIGHTS };
    web::fetch_progress(&file_url(endpoint, repo, revision, file), true, bounds, |received, total| {
        post(job, Reply::Download { file: name.clone(), received, total }, None)
    })
    .await
}

fn text(bytes: Vec<u8>, file: &str) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|_| format!("{file} is not UTF-8 text"))
}

async fn config(job: JobId, endpoint: &str, repo: &str, revision: &str) -> Result<String, String> {
    match fetch(job, endpoint, repo, revision, "config.json").await {
        Ok(bytes) => text(bytes, "config.json"),
        Err(FetchError { status: Some(404), .. }) => {
            Err(format!("no model `{repo}` at revision `{revision}` on {endpoint} (its config.json is not there)"))
        }
        Err(e) => Err(format!("{e} (is {endpoint} reachable from this page?)")),
    }
}

/// What a Hub model will cost, from its `config.json` (before any weights are fetched).
pub async fn info(job: JobId, endpoint: &str, repo: &str, revision: &str) -> Result<HubInfo, String> {
    let json = config(job, endpoint, repo, revision).await?;
    let config = hf::config_from_hf_json(&json).map_err(|e| format!("`{repo}` is not a model this page can run: {e}"))?;
    let params = config.param_count();
    let g = &config.decoder;
    Ok(HubInfo {
        params,
        f32_bytes: 4 * params,
        shape: format!("{} layers × {} wide, {} tokens, context {}", g.n_layer, g.n_embd, g.vocab_size, g.n_positions),
    })
}

/// Fetches a Hub model and converts it into checkpoint bytes (a hybrid around it with `hybrid`).
pub async fn load(job: JobId, endpoint: &str, repo: &str, revision: &str, hybrid: bool, gpt2: &Tokenizer) -> Result<Vec<u8>, String> {
    let config_json = config(job, endpoint, repo, revision).await?;
    let config = hf::config_from_hf_json(&config_json).map_err(|e| format!("`{repo}` is not a model this page can run: {e}"))?;
    let tokenizer_json = match fetch(job, endpoint, repo, revision, "tokenizer.json").await {
        Ok(bytes) => text(bytes, "tokenizer.json")?,
        Err(FetchError { status: Some(404), .. }) => return Err(format!("`{repo}` has no tokenizer.json")),
        Err(e) => return Err(e.to_string()),
    };
    // Before the weights: a tokenizer that cannot belong to this model is refused without the big download.
    Tokenizer::from_json_bytes(tokenizer_json.as_bytes())
        .and_then(|t| t.check_fits(config.vocab_size()))
        .map_err(|e| format!("the tokenizer.json of `{repo}`: {e}"))?;
    let shards: Vec<(String, Vec<u8>)> = match fetch(job, endpoint, repo, revision, "model.safetensors").await {
        Ok(bytes) => vec![("model.safetensors".into(), bytes)],
        Err(FetchError { status: Some(404), .. }) => match fetch(job, endpoint, repo, revision, "model.safetensors.index.json").await {
            Ok(index) => {
                let files = hf::shard_files(&text(index, "model.safetensors.index.json")?).map_err(|e| e.to_string())?;
                let mut shards = Vec::with_capacity(files.len());
                for f in files {
                    let bytes = fetch(job, endpoint, repo, revision, &f).await.map_err(|e| e.to_string())?;
                    shards.push((f, bytes));
                }
                shards
            }
            Err(FetchError { status: Some(404), .. }) => {
                return Err(format!(
                    "`{repo}` has no safetensors weights (neither model.safetensors nor model.safetensors.index.json); only \
                     safetensors can be loaded, PyTorch .bin files cannot"
                ))
            }
            Err(e) => return Err(e.to_string()),
        },
        Err(e) => return Err(e.to_string()),
    };
    post(job, Reply::Status(format!("Converting {repo}…")), None);
    web::yield_now().await;
    let device = Default::default();
    let parts: Vec<(&str, &[u8])> = shards.iter().map(|(f, b)| (f.as_str(), b.as_slice())).collect();
    let model = hf::from_hub_files::<Cpu>(&config_json, &parts, &tokenizer_json, gpt2, &device).map_err(|e| e.to_string())?;
    drop(shards);
    let source = format!("hf://{repo}@{revision}");
    let extra = [("source", source.as_str()), ("hub_repo", repo), ("hub_revision", revision)];
    let bytes = checkpoint::to_bytes(&model, &extra).map_err(|e| e.to_string())?;
    if !hybrid {
        return Ok(bytes);
    }
    drop(model);
    web::yield_now().await;
    let model = transplant::hybrid_from_decoder::<Cpu>(&bytes, repo, &device).map_err(|e| e.to_string())?;
    let source = format!("{source} + a fresh H-Net encoder");
    checkpoint::to_bytes(&model, &[("source", source.as_str()), ("hub_repo", repo), ("hub_revision", revision), ("decoder_from", repo)])
        .map_err(|e| e.to_string())
}
