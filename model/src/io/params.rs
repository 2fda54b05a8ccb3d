//! Parameter paths, named once. A burn module's field names are its record keys, so every parameter has a path
//! such as `net.gpt2.h.3.mlp.c_fc.weight`. Counting parameters per component, parameter groups and freezing, the
//! hybrid's decoder import and the playground's "what trains" choice all speak in the [`Part`]s and
//! [`Component`]s below; no other file spells a path prefix.

use crate::arch::config::Arch;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Every parameter path starts here (the model's `net` field).
pub const ROOT: &str = "net.";

/// A set of parameters addressed by path prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything.
    All,
    /// H-Net's main network (the one over chunks).
    Main,
    /// The hybrid's decoder (kept under `gpt2.`, whatever its family): embeddings, blocks, final norm, head.
    HybridGpt2,
    /// The hybrid's decoder's embeddings (`wte`, `wpe`; `embed_tokens`).
    HybridGpt2Embeddings,
    /// One of the hybrid's decoder blocks (`h.{i}`; `layers.{i}`).
    HybridGpt2Block(usize),
}

impl Part {
    /// The path prefixes of this part.
    pub fn prefixes(self) -> Vec<String> {
        match self {
            Part::All => vec![ROOT.into()],
            Part::Main => vec![format!("{ROOT}stage.main.")],
            Part::HybridGpt2 => vec![format!("{ROOT}gpt2.")],
            Part::HybridGpt2Embeddings => vec![format!("{ROOT}gpt2.wte."), format!("{ROOT}gpt2.wpe."), format!("{ROOT}gpt2.embed_tokens.")],
            Part::HybridGpt2Block(i) => vec![format!("{ROOT}gpt2.h.{i}."), format!("{ROOT}gpt2.layers.{i}.")],
        }
    }

    /// The one prefix of a single-prefix part.
    pub fn prefix(self) -> String {
        self.prefixes().remove(0)
    }

    /// Whether `path` belongs to this part.
    pub fn contains(self, path: &str) -> bool {
        self.prefixes().iter().any(|p| path.starts_with(p))
    }
}

/// The components parameters are counted under. The LM head is usually tied to the token embedding, and then has no
/// parameters of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Embeddings,
    Encoder,
    Routing,
    Main,
    Fusion,
    Decoder,
    Gpt2Blocks,
    Head,
}

impl Component {
    /// Every component, in the order reports list them.
    pub const ALL: [Component; 8] = [
        Component::Embeddings,
        Component::Encoder,
        Component::Routing,
        Component::Main,
        Component::Fusion,
        Component::Decoder,
        Component::Gpt2Blocks,
        Component::Head,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Component::Embeddings => "embeddings",
            Component::Encoder => "encoder",
            Component::Routing => "routing",
            Component::Main => "main",
            Component::Fusion => "fusion",
            Component::Decoder => "decoder",
            Component::Gpt2Blocks => "blocks",
            Component::Head => "lm head",
        }
    }

    /// Which component a parameter path belongs to.
    pub fn of(path: &str) -> Component {
        let p = path.strip_prefix(ROOT).unwrap_or(path);
        // The hybrid keeps its decoder under `gpt2.`: its blocks and final norm count as decoder blocks, its
        // embeddings as embeddings.
        let blocks = |rest: &str| ["h.", "ln_f.", "layers.", "norm."].iter().any(|b| rest.starts_with(b));
        let p = p.strip_prefix("gpt2.").map_or(p, |rest| if blocks(rest) { "blocks" } else { rest });
        match p.split('.').next().unwrap_or("") {
            "wte" | "wpe" | "embed_tokens" => Component::Embeddings,
            "lm_head" => Component::Head,
            "encoder" => Component::Encoder,
            "stage" if Part::Main.contains(path) => Component::Main,
            "stage" => Component::Routing,
            "fusion" => Component::Fusion,
            "decoder" => Component::Decoder,
            _ => Component::Gpt2Blocks,
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What fine-tuning trains (the playground's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainScope {
    /// The H-Net encoder and fusion; a hybrid's GPT-2 part stays frozen (the whole model for other architectures).
    EncoderAndFusion,
    /// Every parameter.
    Everything,
}

impl TrainScope {
    /// The path prefixes this scope freezes in a model of `arch`.
    pub fn frozen(self, arch: Arch) -> Vec<String> {
        match (self, arch) {
            (TrainScope::EncoderAndFusion, Arch::Hybrid) => Part::HybridGpt2.prefixes(),
            _ => vec![],
        }
    }
}

/// The path of the parameter a burn module walk is at, as our checkpoints name it: field names joined by `.`, enum
/// variants left out (`net.gpt2.h.0…`, whichever `Net` variant holds it). Visitors and mappers call `enter`/`exit`
/// from `enter_module`/`exit_module`.
#[derive(Debug, Default)]
pub(crate) struct ParamPath(Vec<String>);

impl ParamPath {
    pub fn enter(&mut self, name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.0.push(name.to_string());
        }
    }

    /// Whether the walk is at a part of a table held in parts.
    pub fn in_parts(&self) -> bool {
        matches!(self.0.as_slice(), [.., parts, _] if parts == PARTS)
    }

    pub fn exit(&mut self, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.0.pop();
        }
    }

    /// The path as checkpoints name it. A table held in parts (`wte.parts.N`, [`crate::nn::embedding`]) is stored
    /// as one `wte.weight`: part 0 is named so, and part `n` `wte.weight@n` (see [`stored`]).
    pub fn path(&self) -> String {
        match self.0.as_slice() {
            [head @ .., parts, n] if parts == PARTS => match n.as_str() {
                "0" => format!("{}.weight", head.join(".")),
                n => format!("{}.weight@{n}", head.join(".")),
            },
            all => all.join("."),
        }
    }
}

/// The field that holds a table's parts ([`crate::nn::embedding::TokenEmbedding`]).
const PARTS: &str = "parts";

/// The stored tensor a parameter path belongs to, and which part of it the parameter is: `("x.weight", n)` for
/// `x.weight@n`, `(path, 0)` for anything else.
pub(crate) fn stored(path: &str) -> (&str, usize) {
    match path.rsplit_once('@') {
        Some((name, n)) => (name, n.parse().unwrap_or(0)),
        None => (path, 0),
    }
}

/// The name a stored tensor had in checkpoints written before it was renamed, where it was: an untied LM head was a
/// matrix `lm_head` before it became a table held in parts like the embedding (`lm_head.weight`).
pub(crate) fn former_name(name: &str) -> Option<String> {
    name.strip_suffix("lm_head.weight").map(|prefix| format!("{prefix}lm_head"))
}

/// Every stored tensor's name and shape, in module order (a table held in parts is one tensor: its parts' rows).
pub fn parameter_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
    struct Shapes {
        path: ParamPath,
        found: Vec<(String, Vec<usize>)>,
    }
    impl<B: Backend> ModuleVisitor<B> for Shapes {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.path.enter(name, container_type);
        }
        fn exit_module(&mut self, _name: &str, container_type: &str) {
            self.path.exit(container_type);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let (path, dims) = (self.path.path(), param.lazy_shape().dims::<D>().to_vec());
            match (stored(&path), self.found.last_mut()) {
                // A table's later part: more rows of the tensor before it.
                ((_, 1..), Some((_, shape))) => shape[0] += dims[0],
                _ => self.found.push((path, dims)),
            }
        }
    }
    let mut shapes = Shapes { path: ParamPath::default(), found: Vec::new() };
    module.visit(&mut shapes);
    shapes.found
}

/// The largest float parameter as the module holds it (each part of a table held in parts on its own), by path
/// and number of values: what one buffer of the device must hold. None for a module without parameters.
pub fn largest_parameter<B: Backend, M: Module<B>>(module: &M) -> Option<(String, usize)> {
    struct Largest {
        path: ParamPath,
        found: Option<(String, usize)>,
    }
    impl<B: Backend> ModuleVisitor<B> for Largest {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.path.enter(name, container_type);
        }
        fn exit_module(&mut self, _name: &str, container_type: &str) {
            self.path.exit(container_type);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let n = param.lazy_shape().num_elements();
            if self.found.as_ref().is_none_or(|(_, most)| n > *most) {
                self.found = Some((self.path.path(), n));
            }
        }
    }
    let mut largest = Largest { path: ParamPath::default(), found: None };
    module.visit(&mut largest);
    largest.found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_of_paths() {
        assert_eq!(Component::of("net.gpt2.wte.weight"), Component::Embeddings);
        assert_eq!(Component::of("net.h.3.attn.c_attn.weight"), Component::Gpt2Blocks);
        assert_eq!(Component::of("net.gpt2.h.0.ln_1.gamma"), Component::Gpt2Blocks);
        assert_eq!(Component::of("net.stage.routing.q.weight"), Component::Routing);
        assert_eq!(Component::of("net.stage.main.layers.0.attn.qkv.weight"), Component::Main);
        assert_eq!(Component::of("net.fusion.gate.weight"), Component::Fusion);
    }

    #[test]
    fn parts_and_scopes() {
        assert!(Part::HybridGpt2Block(2).contains("net.gpt2.h.2.mlp.c_fc.weight"));
        assert!(!Part::HybridGpt2Block(2).contains("net.gpt2.h.20.mlp.c_fc.weight"));
        assert!(Part::HybridGpt2Embeddings.contains("net.gpt2.wpe.weight"));
        assert_eq!(TrainScope::EncoderAndFusion.frozen(Arch::Hybrid), vec!["net.gpt2.".to_string()]);
        assert!(TrainScope::EncoderAndFusion.frozen(Arch::Hnet).is_empty());
        assert!(TrainScope::Everything.frozen(Arch::Hybrid).is_empty());
    }
}
