//! Transplanting a decoder into a hybrid: a fresh H-Net encoder in front of a decoder trained elsewhere (here,
//! imported from Hugging Face or pulled from the Hub), so that training starts from the decoder's quality.

use burn::tensor::backend::Backend;

use crate::arch::config::ModelConfig;
use crate::arch::model::Model;
use crate::error::LoadError;
use crate::io::checkpoint::{check_declared_size, check_host_memory, init, read_info};
use crate::io::params::{Part, ROOT};
use crate::io::weights::{load_into, Copied, Named, Source};
use crate::tokenizer::TokenizerSpec;

/// Refuses a decoder (`decoder`, named `what`) that is not a plain decoder of the hybrid `hybrid`'s family and shape.
fn check_fits(hybrid: &ModelConfig, decoder: &ModelConfig, what: &str) -> Result<(), LoadError> {
    let config_err = |field: &str, reason: String| LoadError::Config { field: field.into(), reason };
    if decoder.arch != crate::Arch::Gpt2 {
        return Err(config_err(
            "arch",
            format!("{what} is a {} checkpoint; the decoder comes from a plain decoder (gpt2) one", decoder.arch),
        ));
    }
    if hybrid.arch != crate::Arch::Hybrid {
        return Err(config_err("arch", format!("only the hybrid has a decoder to initialise, not {}", hybrid.arch)));
    }
    let (ours, theirs) = (&hybrid.decoder, &decoder.decoder);
    if ours.family != theirs.family {
        return Err(config_err("family", format!("the hybrid's decoder is {}, {what} is {}", ours.family, theirs.family)));
    }
    for (field, a, b) in [
        ("vocab_size", ours.vocab_size, theirs.vocab_size),
        ("n_positions", ours.n_positions, theirs.n_positions),
        ("n_embd", ours.n_embd, theirs.n_embd),
        ("n_layer", ours.n_layer, theirs.n_layer),
        ("n_head", ours.n_head, theirs.n_head),
        ("n_kv_head", ours.kv_heads(), theirs.kv_heads()),
        ("d_intermediate", ours.hidden(), theirs.hidden()),
    ] {
        if a != b {
            return Err(config_err(field, format!("the hybrid has {a}, {what} has {b}")));
        }
    }
    Ok(())
}

/// Starts a hybrid's decoder (embeddings, blocks, final norm, head) from a decoder checkpoint of the same family and
/// shape — one trained here, imported with `import-hf` or pulled from the Hub — and takes its tokenizer. The fusion's
/// projection of the hierarchical features starts at zero, so the fresh hybrid computes (nearly) what the decoder
/// does: the gate still mixes `h` with `(1 − g) h`, a factor `1 − 0.2 g (1 − g)` ≈ 0.98 per dimension at the
/// seed's initial gate, which the decoder's first norm mostly absorbs. Training then moves it away from the
/// decoder's quality instead of from noise.
pub fn load_decoder<B: Backend>(model: Model<B>, bytes: &[u8], what: &str) -> Result<Model<B>, LoadError> {
    let info = read_info(bytes, what)?;
    check_fits(&model.config, &info.config, what)?;
    // A decoder's `net.X` is the hybrid's `net.gpt2.X`: load only that part, each tensor under its old name.
    let part = Part::HybridGpt2.prefix();
    let mut source = Named::renamed(bytes, what, |path| path.replacen(&part, ROOT, 1))?;
    transplant(model, &mut source, info.tokenizer)
}

/// Fills the hybrid `model`'s decoder part from `source`, takes the decoder's `tokenizer`, zeroes the fusion's
/// projection.
fn transplant<B: Backend>(model: Model<B>, source: &mut dyn Source, tokenizer: TokenizerSpec) -> Result<Model<B>, LoadError> {
    let mut model = load_into(model, source, &Part::HybridGpt2.prefix(), false)?;
    model.tokenizer = tokenizer;
    if let crate::arch::model::Net::Hybrid(h) = &mut model.net {
        h.fusion.zero_projection();
    }
    Ok(model)
}

/// A fresh hybrid around a gpt2 checkpoint (`init --decoder-from`, the playground's "GPT-2 + H-Net encoder"): the
/// config from [`ModelConfig::hybrid_on`], the decoder's weights and tokenizer, the fusion's projection at zero.
pub fn hybrid_from_decoder<B: Backend>(decoder: &[u8], what: &str, device: &B::Device) -> Result<Model<B>, LoadError> {
    let info = read_info(decoder, what)?;
    // The decoder's header is a promise about its weights: kept (as when it is loaded alone) before anything the
    // size of the model it declares is allocated.
    check_declared_size(&info.config, decoder.len(), what)?;
    let config = ModelConfig::hybrid_on(&info.config.decoder).map_err(|e| e.in_config("config"))?;
    check_host_memory(config.param_count(), 4, &format!("a hybrid around {what}"))?;
    let model = init(&config, device).map_err(|e| e.in_config("config"))?;
    load_decoder(model, decoder, what)
}

/// [`hybrid_from_decoder`] from a loaded decoder (the page's Hub loader), consuming it: each decoder tensor moves
/// into the hybrid as it is taken, so the two are never both whole in memory.
pub fn hybrid_around<B: Backend>(decoder: Model<B>, what: &str, device: &B::Device) -> Result<Model<B>, LoadError> {
    let config = ModelConfig::hybrid_on(&decoder.config.decoder).map_err(|e| e.in_config("config"))?;
    check_fits(&config, &decoder.config, what)?;
    check_host_memory(config.param_count(), 4, &format!("a hybrid around {what}"))?;
    let model = init(&config, device).map_err(|e| e.in_config("config"))?;
    let part = Part::HybridGpt2.prefix();
    let tokenizer = decoder.tokenizer.clone();
    // A decoder's `net.X` is the hybrid's `net.gpt2.X`; the handles taken here are the tensors' last owners.
    let mut source = Copied::of(&decoder).renamed(|path| path.replacen(ROOT, &part, 1));
    drop(decoder);
    transplant(model, &mut source, tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::config::Arch;
    use crate::io::checkpoint::to_bytes;
    use crate::TestBackend;

    #[test]
    fn a_hybrid_decoder_starts_from_a_gpt2_checkpoint() {
        use crate::arch::decoder::Decoder;
        let device = Default::default();
        let gpt2: Model<TestBackend> = Model::init(&ModelConfig::preset(Arch::Gpt2, "tiny").unwrap(), &device).unwrap();
        let bytes = to_bytes(&gpt2, &[]).unwrap();
        let hybrid: Model<TestBackend> = Model::init(&ModelConfig::preset(Arch::Hybrid, "tiny").unwrap(), &device).unwrap();
        let hybrid = load_decoder(hybrid, &bytes, "gpt2").unwrap();
        let (crate::arch::model::Net::Decoder(Decoder::Gpt2(g)), crate::arch::model::Net::Hybrid(h)) = (&gpt2.net, &hybrid.net) else {
            unreachable!()
        };
        let Decoder::Gpt2(hg) = &h.gpt2 else { unreachable!() };
        g.h[1].mlp.c_proj.weight.val().into_data().assert_eq(&hg.h[1].mlp.c_proj.weight.val().into_data(), true);
        g.wte.weight().into_data().assert_eq(&hg.wte.weight().into_data(), true);
        // Shape disagreements name the field; a non-gpt2 source is refused.
        let small: Model<TestBackend> = Model::init(&ModelConfig::preset(Arch::Hybrid, "small").unwrap(), &device).unwrap();
        assert!(matches!(load_decoder(small, &bytes, "gpt2"), Err(LoadError::Config { field, .. }) if field == "n_positions"));
        let hnet_bytes =
            to_bytes(&Model::<TestBackend>::init(&ModelConfig::preset(Arch::Hnet, "tiny").unwrap(), &device).unwrap(), &[]).unwrap();
        assert!(matches!(load_decoder(hybrid, &hnet_bytes, "hnet"), Err(LoadError::Config { field, .. }) if field == "arch"));
    }

    #[test]
    fn a_hybrid_around_a_loaded_decoder_is_the_one_made_from_its_checkpoint() {
        use crate::arch::decoder::Decoder;
        let device = Default::default();
        let gpt2: Model<TestBackend> = Model::init(&ModelConfig::preset(Arch::Gpt2, "tiny").unwrap(), &device).unwrap();
        let from_bytes = hybrid_from_decoder::<TestBackend>(&to_bytes(&gpt2, &[]).unwrap(), "gpt2", &device).unwrap();
        let around = hybrid_around(gpt2.clone(), "gpt2", &device).unwrap();
        assert_eq!((&around.config, &around.tokenizer), (&from_bytes.config, &from_bytes.tokenizer));
        let (crate::arch::model::Net::Decoder(Decoder::Gpt2(g)), crate::arch::model::Net::Hybrid(h)) = (&gpt2.net, &around.net) else {
            unreachable!()
        };
        let Decoder::Gpt2(hg) = &h.gpt2 else { unreachable!() };
        g.h[1].attn.c_attn.weight.val().into_data().assert_eq(&hg.h[1].attn.c_attn.weight.val().into_data(), true);
        g.wte.weight().into_data().assert_eq(&hg.wte.weight().into_data(), true);
        g.ln_f.gamma.val().into_data().assert_eq(&hg.ln_f.gamma.val().into_data(), true);
        // Not a decoder: refused.
        let hnet: Model<TestBackend> = Model::init(&ModelConfig::preset(Arch::Hnet, "tiny").unwrap(), &device).unwrap();
        assert!(hybrid_around(hnet, "hnet", &device).is_err());
    }
}
