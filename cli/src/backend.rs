//! The one place the CLI names concrete backends: everything else is generic over `B: Backend`.

/// The CPU backend.
pub type Cpu = burn::backend::Flex;
/// The GPU backend (any wgpu adapter, including Mesa's lavapipe software Vulkan).
pub type Gpu = burn::backend::Wgpu;
/// The CUDA backend (only in builds with `--features cuda`, so CPU-only builds stay lean).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// Runs `$body` with the type `$b` bound to the backend `$kind` selects and `$device` to its default device — on a
/// GPU, with token tables in parts that fit its buffers ([`within_buffers`]).
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
                $crate::backend::within_buffers::<$b, _>(Default::default(), |$device| $body)
            }
            #[cfg(feature = "cuda")]
            $crate::args::DeviceKind::Cuda => {
                type $b = $crate::backend::Cuda;
                $crate::backend::within_buffers::<$b, _>(Default::default(), |$device| $body)
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

/// A device's memory as cubecl's allocator sees it: how much it holds, and the most one buffer may hold.
pub trait DeviceMemory: burn::tensor::backend::Backend {
    /// Bytes the allocator has reserved on `device`: its pools keep freed buffers for reuse, so this is the
    /// high-water mark the device must provide (what the playground shows as its GPU memory). None on the CPU, whose
    /// tensors live in the process's own memory.
    fn reserved_bytes(device: &Self::Device) -> Option<u64>;
    /// The most bytes one buffer on `device` holds (a GPU's largest storage-buffer binding; no limit on the CPU).
    fn max_buffer_bytes(device: &Self::Device) -> u64;
}

impl DeviceMemory for Cpu {
    fn reserved_bytes(_: &Self::Device) -> Option<u64> {
        None
    }
    fn max_buffer_bytes(_: &Self::Device) -> u64 {
        u64::MAX
    }
}

/// [`DeviceMemory`] of a cubecl runtime's device; `$setup` runs before its client is first asked.
macro_rules! cubecl_device_memory {
    ($backend:ty, $runtime:ty $(, $setup:expr)?) => {
        impl DeviceMemory for $backend {
            fn reserved_bytes(device: &Self::Device) -> Option<u64> {
                use cubecl::Runtime;
                $($setup;)?
                <$runtime>::client(device).memory_usage().ok().map(|m| m.bytes_reserved)
            }
            fn max_buffer_bytes(device: &Self::Device) -> u64 {
                use cubecl::Runtime;
                $($setup;)?
                <$runtime>::client(device).properties().memory.max_page_size
            }
        }
    };
}
cubecl_device_memory!(Gpu, burn::backend::wgpu::WgpuRuntime, wgpu_adapter());
#[cfg(feature = "cuda")]
cubecl_device_memory!(Cuda, cubecl::cuda::CudaRuntime);

/// The default wgpu device's adapter, in words: its name, driver and API. The device is set up here, once per
/// process (burn's `init_setup`, which the adapter's description needs, panics once a client exists).
fn wgpu_adapter() -> &'static str {
    use burn::backend::wgpu::{graphics::AutoGraphicsApi, init_setup, WgpuDevice};
    static ADAPTER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ADAPTER.get_or_init(|| {
        let info = init_setup::<AutoGraphicsApi>(&WgpuDevice::default(), Default::default()).adapter.get_info();
        format!("{} ({:?}, driver {} {})", info.name, info.backend, info.driver, info.driver_info)
    })
}

/// Runs `body` with every token table built or loaded on `device` cut into parts of consecutive rows that each fit
/// one buffer (`nn::embedding`), as the playground does on WebGPU: a GPU binds at most its largest storage-buffer
/// binding of one buffer, and Qwen2.5's table is 545 MB in f32. Without this such a table fails to allocate inside
/// the device's thread, where the command cannot see it.
pub fn within_buffers<B: DeviceMemory, R>(device: B::Device, body: impl FnOnce(B::Device) -> R) -> R {
    let limit = B::max_buffer_bytes(&device);
    // Test hook (builds with the `fault-injection` feature only, tests/faults.rs): a device whose buffers hold at
    // most `HNET_FAULT_MAX_BUFFER_BYTES`, so that a tiny model's table is cut into parts.
    #[cfg(feature = "fault-injection")]
    let limit = std::env::var("HNET_FAULT_MAX_BUFFER_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(limit);
    hnet_gpt_model::nn::embedding::with_part_bytes(limit, || body(device))
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
/// name, driver and API (on wgpu this sets up the default device: [`wgpu_adapter`]).
pub fn describe(kind: crate::args::DeviceKind) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let host = format!("{cpu}, {cores} cores{}", vector_isa());
    match kind {
        crate::args::DeviceKind::Cpu => format!("cpu (Flex) on {host}"),
        crate::args::DeviceKind::Wgpu => format!("wgpu: {} on {host}", wgpu_adapter()),
        crate::args::DeviceKind::Cuda => format!("cuda device 0 on {host}"),
    }
}
