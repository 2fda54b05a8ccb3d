//! The one place the CLI names concrete backends: everything else is generic over `B: Backend`.

/// The CPU backend.
pub type Cpu = burn::backend::Flex;
/// The GPU backend (any wgpu adapter, including Mesa's lavapipe software Vulkan).
pub type Gpu = burn::backend::Wgpu;

/// Runs `$body` with the type `$b` bound to the backend `$kind` selects and `$device` to its default device.
macro_rules! with_backend {
    ($kind:expr, |$device:ident: $b:ident| $body:expr) => {
        match $kind {
            $crate::args::DeviceKind::Cpu => {
                type $b = $crate::backend::Cpu;
                let $device = Default::default();
                $body
            }
            $crate::args::DeviceKind::Wgpu => {
                type $b = $crate::backend::Gpu;
                let $device = Default::default();
                $body
            }
        }
    };
}
pub(crate) use with_backend;
