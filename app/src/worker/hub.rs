//! Models from the Hugging Face Hub, in the worker: the Hub's files are fetched straight from
//! `{endpoint}/{repo}/resolve/{revision}/{file}` (the Hub serves CORS) with a progress bar per file, kept in the
//! Cache API, and converted here as `hnet-gpt pull` converts them, tensor by tensor as the weights download
//! (`hf::from_hub_tensors`); with `hybrid`, a fresh H-Net encoder goes in front (`transplant::hybrid_around`),
//! starting from the decoder's quality.

use hnet_gpt_model::io::hf;
use hnet_gpt_model::io::stream::{Streamed, Tensors};
use hnet_gpt_model::io::transplant;
use hnet_gpt_model::tokenizer::Tokenizer;
use hnet_gpt_model::{Model, ModelConfig};

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

/// The worker's memory: wasm32 addresses 4 GiB.
const HEAP_BYTES: f64 = 4.0 * (1u64 << 30) as f64;

/// Refuses, before any weights are fetched, a model whose f32 weights and the room to convert them (a quarter more:
/// the stored tensors not yet taken, one tensor in flight, the tokenizer) cannot fit the worker's memory.
fn fits_the_heap(repo: &str, params: usize) -> Result<(), String> {
    let needed = 1.25 * 4.0 * params as f64;
    if needed > HEAP_BYTES {
        return Err(format!(
            "`{repo}` has {:.2}B parameters: their f32 weights and the room to convert them ({:.1} GB) do not fit this page's \
             4 GB of memory (wasm32); `hnet-gpt pull {repo}` runs it on the command line",
            params as f64 / 1e9,
            needed / 1e9
        ));
    }
    Ok(())
}

/// A safetensors file of the repository, read as it downloads: each tensor is kept as stored once its bytes are in,
/// and the file is never whole in memory ([`hnet_gpt_model::io::stream`]).
async fn fetch_tensors(job: JobId, endpoint: &str, repo: &str, revision: &str, file: &str) -> Result<Tensors, FetchError> {
    let name = file.to_string();
    let mut stream: Option<Streamed> = None;
    web::fetch_stream(
        &file_url(endpoint, repo, revision, file),
        true,
        web::Bounds::WEIGHTS,
        |received, total| post(job, Reply::Download { file: name.clone(), received, total }, None),
        |piece, total| stream.get_or_insert_with(|| Streamed::new(file, total.map(|t| t as u64))).push(piece).map_err(|e| e.to_string()),
    )
    .await?;
    stream.unwrap_or_else(|| Streamed::new(file, Some(0))).finish().map_err(|e| FetchError { status: None, message: e.to_string() })
}

/// Fetches a Hub model and converts it, tensor by tensor as it downloads (a hybrid around it with `hybrid`); returns
/// it with its tokenizer.
pub async fn load(
    job: JobId,
    endpoint: &str,
    repo: &str,
    revision: &str,
    hybrid: bool,
    gpt2: &Tokenizer,
) -> Result<(Model<Cpu>, Tokenizer), String> {
    let config_json = config(job, endpoint, repo, revision).await?;
    let config = hf::config_from_hf_json(&config_json).map_err(|e| format!("`{repo}` is not a model this page can run: {e}"))?;
    let params = match hybrid {
        true => ModelConfig::hybrid_on(&config.decoder).map_or(config.param_count(), |c| c.param_count()),
        false => config.param_count(),
    };
    fits_the_heap(repo, params)?;
    let tokenizer_json = match fetch(job, endpoint, repo, revision, "tokenizer.json").await {
        Ok(bytes) => text(bytes, "tokenizer.json")?,
        Err(FetchError { status: Some(404), .. }) => return Err(format!("`{repo}` has no tokenizer.json")),
        Err(e) => return Err(e.to_string()),
    };
    // Before the weights: a tokenizer that cannot belong to this model is refused without the big download.
    let tokenizer = Tokenizer::from_json_bytes(tokenizer_json.as_bytes())
        .and_then(|t| t.check_fits(config.vocab_size()).map(|()| t))
        .map_err(|e| format!("the tokenizer.json of `{repo}`: {e}"))?;
    let tensors = match fetch_tensors(job, endpoint, repo, revision, "model.safetensors").await {
        Ok(tensors) => tensors,
        Err(FetchError { status: Some(404), .. }) => match fetch(job, endpoint, repo, revision, "model.safetensors.index.json").await {
            Ok(index) => {
                let files = hf::shard_files(&text(index, "model.safetensors.index.json")?).map_err(|e| e.to_string())?;
                let mut tensors = Tensors::default();
                for f in files {
                    let shard = fetch_tensors(job, endpoint, repo, revision, &f).await.map_err(|e| e.to_string())?;
                    tensors.extend(shard, &f).map_err(|e| e.to_string())?;
                }
                tensors
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
    let model =
        hf::from_hub_tensors::<Cpu>(&config_json, tensors, &tokenizer_json, &tokenizer, gpt2, &device).map_err(|e| e.to_string())?;
    if !hybrid {
        return Ok((model, tokenizer));
    }
    web::yield_now().await;
    Ok((transplant::hybrid_around(model, repo, &device).map_err(|e| e.to_string())?, tokenizer))
}
