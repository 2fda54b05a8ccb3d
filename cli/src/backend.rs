//! The one place the CLI names concrete backends: everything else is generic over `B: Backend`.

/// The CPU backend.
pub type Cpu = burn::backend::Flex;
/// The GPU backend (any wgpu adapter, including Mesa's lavapipe software Vulkan).
pub type Gpu = burn::backend::Wgpu;
/// The CUDA backend (only in builds with `--features cuda`, so CPU-only builds stay lean).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

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
            #[cfg(feature = "cuda")]
            $crate::args::DeviceKind::Cuda => {
                type $b = $crate::backend::Cuda;
                let $device = Default::default();
                $body
            }
            #[cfg(not(feature = "cuda"))]
            $crate::args::DeviceKind::Cuda => {
                anyhow::bail!(
                    "this hnet-gpt was built without CUDA support: rebuild it with `cargo build --release -p hnet-gpt --features cuda`"
                )
            }
        }
    };
}
pub(crate) use with_backend;

/// `n` devices of backend `B` for data-parallel training, `first` (the default device) first.
pub fn devices<B: DeviceList>(first: B::Device, n: usize) -> Vec<B::Device> {
    if n == 1 {
        return vec![first];
    }
    (0..n).map(B::nth).collect()
}

/// The i-th device of a backend.
pub trait DeviceList: burn::tensor::backend::Backend {
    /// Device number `i`.
    fn nth(i: usize) -> Self::Device;
}

impl DeviceList for Cpu {
    /// The CPU is one device: each replica gets it, in its own thread.
    fn nth(_: usize) -> Self::Device {
        Default::default()
    }
}

impl DeviceList for Gpu {
    /// The i-th discrete GPU.
    fn nth(i: usize) -> Self::Device {
        burn::backend::wgpu::WgpuDevice::DiscreteGpu(i)
    }
}

#[cfg(feature = "cuda")]
impl DeviceList for Cuda {
    fn nth(i: usize) -> Self::Device {
        burn::backend::cuda::CudaDevice::new(i)
    }
}

/// The device memory a backend's allocator holds, in bytes: its pools keep freed buffers for reuse, so this is the
/// high-water mark the device must provide (what the playground shows as its GPU memory). None on the CPU, whose
/// tensors live in the process's own memory.
pub trait DeviceMemory: burn::tensor::backend::Backend {
    /// Bytes reserved on `device`, when the backend can say.
    fn reserved_bytes(device: &Self::Device) -> Option<u64>;
}

impl DeviceMemory for Cpu {
    fn reserved_bytes(_: &Self::Device) -> Option<u64> {
        None
    }
}

impl DeviceMemory for Gpu {
    fn reserved_bytes(device: &Self::Device) -> Option<u64> {
        use cubecl::Runtime;
        burn::backend::wgpu::WgpuRuntime::client(device).memory_usage().ok().map(|m| m.bytes_reserved)
    }
}

#[cfg(feature = "cuda")]
impl DeviceMemory for Cuda {
    fn reserved_bytes(device: &Self::Device) -> Option<u64> {
        use cubecl::Runtime;
        cubecl::cuda::CudaRuntime::client(device).memory_usage().ok().map(|m| m.bytes_reserved)
    }
}

/// The widest vector instructions the CPU kernels (gemm's, the host kernels') can use here: what a CPU benchmark's
/// numbers depend on most, beside the core count.
fn vector_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return ", AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return ", AVX2";
        }
    }
    ""
}

/// What `kind` runs on, in words, for results: the CPU model (cores, vector instructions), or the GPU adapter's
/// name, driver and API. On wgpu this initialises the default device (once per process, as every later use expects).
pub fn describe(kind: crate::args::DeviceKind) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let host = format!("{cpu}, {cores} cores{}", vector_isa());
    match kind {
        crate::args::DeviceKind::Cpu => format!("cpu (Flex) on {host}"),
        crate::args::DeviceKind::Wgpu => {
            use burn::backend::wgpu::{graphics::AutoGraphicsApi, init_setup, WgpuDevice};
            let info = init_setup::<AutoGraphicsApi>(&WgpuDevice::default(), Default::default()).adapter.get_info();
            format!("wgpu: {} ({:?}, driver {} {}) on {host}", info.name, info.backend, info.driver, info.driver_info)
        }
        crate::args::DeviceKind::Cuda => format!("cuda device 0 on {host}"),
    }
}
