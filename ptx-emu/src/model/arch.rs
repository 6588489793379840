//! The GPUs the speed-of-light model knows: one row per product, every number with a source key
//! (the list of sources is [`SOURCES`]; the research notes behind it are `docs/arch-table-sources.md`
//! of the llama-kernels repository). Throughputs are per SM per clock; a "lane" is one thread's share of
//! a warp-instruction, so a warp-instruction on a pipe of 16 lanes/clk per scheduler takes 2 cycles.
//!
//! Where no measurement or datasheet gives a number, the row says `model:` in its source: that value is
//! a modelling assumption (documented in `docs/perf-model.md`), never presented as a fact.

/// Cycle latencies the per-warp timeline uses (dependent issue to dependent issue).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latencies {
    /// A global load that misses L2 (DRAM).
    pub dram: f64,
    /// A global load that hits L2.
    pub l2: f64,
    /// A global load that hits L1.
    pub l1: f64,
    /// A shared-memory load (`ld.shared`, `ldmatrix`).
    pub shared: f64,
    /// FP32 / INT ALU result.
    pub alu: f64,
    /// MUFU (`ex2`, `rsqrt`, `sin`, ...).
    pub sfu: f64,
    /// FP64 result.
    pub fp64: f64,
    /// `mma.sync` result.
    pub mma: f64,
    /// Warp shuffle / vote / redux.
    pub shfl: f64,
    /// A `bar.sync` from the last arrival to the release.
    pub barrier: f64,
}

/// One GPU product.
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    /// The name the CLI takes (`--model h100-sxm`).
    pub name: &'static str,
    pub product: &'static str,
    /// Compute capability x10 (80 = sm_80).
    pub cc: u32,
    pub sms: u32,
    /// The clock the model runs at (MHz): the one the product's published peaks assume.
    pub clock_mhz: f64,
    pub schedulers: u32,
    /// Lanes per clock per SM.
    pub fp32: f64,
    pub int: f64,
    pub sfu: f64,
    pub fp64: f64,
    /// Packed f16x2/bf16x2 instructions (lanes, each doing two results).
    pub half: f64,
    /// Conversions (`cvt` between float widths and int/float).
    pub convert: f64,
    /// Warp shuffles, votes, reductions.
    pub shfl: f64,
    /// `mma.sync` multiply-adds (FMA) per clock per SM, dense: f16/bf16 inputs with f32 accumulate,
    /// f16 inputs with f16 accumulate, tf32.
    pub mma_f32acc: f64,
    pub mma_f16acc: f64,
    pub mma_tf32: f64,
    /// Shared memory: bytes per clock per SM (one wavefront = 32 banks x 4 bytes).
    pub shared_bytes_clk: f64,
    pub shared_per_sm: u32,
    /// Opt-in maximum per block.
    pub shared_per_block: u32,
    /// Shared memory the driver reserves per block.
    pub shared_reserved: u32,
    /// Unified L1 / shared capacity per SM (bytes).
    pub l1_bytes: u32,
    /// L1 bytes per clock per SM (global loads that reach L1).
    pub l1_bytes_clk: f64,
    pub l2_bytes: u64,
    /// L2 bytes per clock, the whole GPU.
    pub l2_bytes_clk: f64,
    /// DRAM bandwidth, bytes per second (datasheet).
    pub dram_bytes_s: f64,
    /// The fraction of `dram_bytes_s` a streaming kernel sustains.
    pub dram_efficiency: f64,
    pub regs_per_sm: u32,
    pub max_regs_thread: u32,
    pub max_warps_sm: u32,
    pub max_blocks_sm: u32,
    pub lat: Latencies,
    /// Launch-to-completion overhead of an empty kernel (seconds).
    pub launch_s: f64,
    /// Where each number comes from: (fields, source keys of [`SOURCES`] or `model: ...`).
    pub sources: &'static [(&'static str, &'static str)],
}

impl Arch {
    pub fn clock_hz(&self) -> f64 {
        self.clock_mhz * 1e6
    }
    /// Peak FP32 FLOP/s (an FMA is 2).
    pub fn fp32_flops(&self) -> f64 {
        2.0 * self.fp32 * self.sms as f64 * self.clock_hz()
    }
    /// Peak dense mma.sync FLOP/s for f16/bf16 inputs with f32 accumulate.
    pub fn mma_flops(&self) -> f64 {
        2.0 * self.mma_f32acc * self.sms as f64 * self.clock_hz()
    }
    pub fn l2_bytes_s(&self) -> f64 {
        self.l2_bytes_clk * self.clock_hz()
    }
}

/// Sources: key, title, where.
pub const SOURCES: &[(&str, &str, &str)] = &[
    ("NV-AMP-WP", "NVIDIA A100 Tensor Core GPU Architecture whitepaper v1.0 (2020)",
     "https://images.nvidia.com/aem-dam/en-zz/Solutions/data-center/nvidia-ampere-architecture-whitepaper.pdf"),
    ("NV-A100-DS", "NVIDIA A100 datasheet",
     "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"),
    ("NV-HOP-WP", "NVIDIA H100 Tensor Core GPU Architecture whitepaper v1.04",
     "https://resources.nvidia.com/en-us-hopper-architecture/nvidia-h100-tensor-c"),
    ("NV-H100-DS", "NVIDIA H100 datasheet (table as reproduced by HPC Tech)",
     "https://archive-lib.hpctech.co.jp/gpuproduct/nvidia-h100.html"),
    ("NV-H200", "NVIDIA H200 product page / datasheet figures (via AI Wiki)", "https://aiwiki.ai/wiki/nvidia_h200"),
    ("NV-ADA-WP", "NVIDIA Ada GPU Architecture whitepaper v2.01 (appendix tables)",
     "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf"),
    ("NV-AMPGA102-WP", "NVIDIA Ampere GA102 GPU Architecture whitepaper",
     "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.pdf"),
    ("NV-RTXBW-WP", "NVIDIA RTX Blackwell GPU Architecture whitepaper",
     "https://images.nvidia.com/aem-dam/Solutions/geforce/blackwell/nvidia-rtx-blackwell-gpu-architecture.pdf"),
    ("CUDA-PG-CC", "CUDA C++ Programming Guide, Compute Capabilities: technical specifications per CC",
     "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#features-and-technical-specifications"),
    ("CUDA-PG-TPUT", "CUDA C++ Programming Guide, Arithmetic Instructions: throughput of native arithmetic instructions",
     "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#arithmetic-instructions"),
    ("CUDA-PG-SMEM", "CUDA C++ Programming Guide, Shared Memory (compute capability 5.x+: 32 banks of 4 bytes)",
     "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#shared-memory-5-x"),
    ("CNC-H100", "Chips and Cheese, Nvidia's H100: Funny L2, and Tons of Bandwidth (2023): 114 SMs on the PCIe card, 50 MB L2",
     "https://chipsandcheese.com/2023/07/02/nvidias-h100-funny-l2-and-tons-of-bandwidth/"),
    ("STH-A6000", "ServeTheHome, NVIDIA RTX A6000 48GB GPU drops Quadro designation (NVIDIA's spec table)",
     "https://servethehome.com/nvidia-rtx-a6000-48gb-gpu-drops-quadro-designation"),
    ("SYS-A6000", "sysrqmts, NVIDIA RTX A6000 vs Tesla P40 (84 SMs, 1800 MHz boost, 6 MB L2)",
     "https://sysrqmts.com/es/gpus/compare/nvidia-rtx-a6000-vs-nvidia-tesla-p40"),
    ("FPS-4090", "The FPS Review, NVIDIA GeForce RTX 4090 GPU family specifications (128 SMs, 2520 MHz, 1008 GB/s)",
     "https://www.thefpsreview.com/gpu-family/nvidia-geforce-rtx-4090-gpu-family-specifications"),
    ("GROK-L4", "Grokipedia, NVIDIA L4 vs L40S (quotes the L4 datasheet: 300 GB/s)", "https://grokipedia.com/page/NVIDIA_L4_vs_L40S"),
    ("LXF-5090", "Linux Format (May 2025), Nvidia GeForce RTX 5090 review spec box (170 SMs, 2407 MHz, 96 MB, 1792 GB/s)",
     "https://pocketmags.com/linux-format-magazine/may-2025/articles/nvidia-geforce-rtx-5090"),
    ("NV-OCC", "cuda_occupancy.h shipped in NVIDIA's nvidia-cuda-runtime-cu12 12.9.79 wheel (allocation units, blocks per SM, carveouts)",
     "https://pypi.org/project/nvidia-cuda-runtime-cu12/12.9.79/"),
    ("CUDA-PG-13", "CUDA Programming Guide 5.1 Compute Capabilities, tables 30-33 (Dec 2025)",
     "https://docs.nvidia.com/cuda/cuda-programming-guide/05-appendices/compute-capabilities.html"),
    ("MMAPEAK", "MMAPEAK README example output: register-resident mma throughput on an H100 NVL without wgmma (public GitHub README)",
     "see docs/arch-table-sources.md"),
    ("H100-UBENCH", "CUDA Performance Study, NVIDIA H100 SXM5 (public GitHub README; pointer-chase latencies at 1.98 GHz)",
     "see docs/arch-table-sources.md"),
    ("L4-DQ", "deviceQuery output of an NVIDIA L4 in a public repository (58 SMs, 2040 MHz, 48 MB L2)",
     "see docs/arch-table-sources.md"),
    ("SM120-NOTES", "public sm_120 research note quoting CUDA-PG 13.4, the Blackwell tuning guide and NV-RTXBW-WP",
     "see docs/arch-table-sources.md"),
];

const fn lat(dram: f64, l2: f64, l1: f64, shared: f64, mma: f64) -> Latencies {
    Latencies {
        dram,
        l2,
        l1,
        shared,
        alu: 4.0,
        sfu: 18.0,
        fp64: 8.0,
        mma,
        shfl: 24.0,
        barrier: 20.0,
    }
}

const KIB: u32 = 1024;
const MIB: u64 = 1024 * 1024;

const SM80_SOURCES: &[(&str, &str)] = &[
    ("sms, clock_mhz, l2_bytes, dram_bytes_s", "NV-A100-DS; NV-AMP-WP (108 SMs, 1410 MHz boost, 40 MB L2)"),
    ("fp32, int, sfu, fp64, half, convert, shfl", "CUDA-PG-TPUT (cc 8.0 column)"),
    ("mma_*", "NV-AMP-WP: 312 dense FP16/BF16 TFLOPS (f32 acc), 156 TF32 = 1024 / 512 FMA/clk/SM at 1410 MHz x 108"),
    ("schedulers, regs_per_sm, max_*, shared_*", "CUDA-PG-13 tables 30-32 and NV-OCC (cc 8.0): 4 schedulers, 64 K regs, 64 warps, 32 blocks, 164/163 KB, 1 KB reserved"),
    ("shared_bytes_clk", "CUDA-PG-SMEM: 32 banks x 4 bytes per clock"),
    ("l1_bytes, l2_bytes_clk", "NV-AMP-WP: 192 KB L1/shared per SM; L2 read bandwidth 5120 B/clk"),
    ("l1_bytes_clk", "model: 128 B/clk (one 128-byte wavefront per clock, as shared memory)"),
    ("dram_efficiency", "model: 0.93 of the datasheet bandwidth (docs/perf-model.md)"),
    ("lat", "model: no readable A100 measurement was found; H100-UBENCH's figures scaled to A100's slower clock and smaller L2 (docs/perf-model.md)"),
    ("launch_s", "model: 3 us per launch (a raw cuLaunchKernel costs 3.0 us on GB200, tritonbench PR 1017)"),
];

const SM86_SOURCES: &[(&str, &str)] = &[
    ("sms, clock_mhz, l2_bytes, dram_bytes_s", "STH-A6000 and SYS-A6000 (84 SMs, 1800 MHz boost, 6 MB L2, 768 GB/s)"),
    ("fp32, int, sfu, fp64, half, convert, shfl", "CUDA-PG-TPUT (cc 8.6 column)"),
    ("mma_*", "NV-AMPGA102-WP as quoted (docs/arch-table-sources.md): 154.8 dense BF16 TFLOPS with FP32 accumulate on the RTX A6000 = 512 FMA/clk/SM at 1800 MHz x 84"),
    ("schedulers, regs_per_sm, max_*, shared_*", "CUDA-PG-13 and NV-OCC (cc 8.6): 48 warps, 16 blocks, 100/99 KB"),
    ("shared_bytes_clk", "CUDA-PG-SMEM"),
    ("l1_bytes, l2_bytes_clk, l1_bytes_clk", "model: 128 KB L1 (NV-AMPGA102-WP), L2 2048 B/clk, L1 128 B/clk"),
    ("dram_efficiency, lat, launch_s", "model: streaming efficiency, latencies and launch overhead (docs/perf-model.md)"),
];

const SM89_SOURCES: &[(&str, &str)] = &[
    ("sms, clock_mhz, l2_bytes, dram_bytes_s", "rtx-4090: FPS-4090, NV-ADA-WP appendix (72 MB L2); l4: L4-DQ (58 SMs, 2040 MHz, 48 MB L2), GROK-L4 (300 GB/s)"),
    ("fp32, int, sfu, fp64", "CUDA-PG-13 unit counts for cc 8.9 (128 FP32, 64 INT32, 16 SFU, 2 FP64 per SM)"),
    ("half, convert, shfl", "model: the cc 8.6 rates of CUDA-PG-TPUT (the 8.9 column was not retrieved)"),
    ("mma_*", "NV-ADA-WP appendix table 2: RTX 4090 330.3 dense FP16-acc / 165.2 FP32-acc TFLOPS = 512 / 256 FMA/clk/SM at 2520 MHz x 128"),
    ("schedulers, regs_per_sm, max_*, shared_*", "CUDA-PG-13 and NV-OCC (cc 8.9): 48 warps, 24 blocks, 100/99 KB"),
    ("l4: sms, clock_mhz", "L4-DQ: 58 SMs at 2040 MHz; 121 dense FP16 TFLOPS = 58 x 512 FMA x 2 x 2.04 GHz (full-rate f32 accumulate)"),
    ("shared_bytes_clk", "CUDA-PG-SMEM"),
    ("l1_bytes, l2_bytes_clk, l1_bytes_clk", "model: 128 KB L1 (NV-ADA-WP), L2 and L1 B/clk (docs/perf-model.md)"),
    ("dram_efficiency, lat, launch_s", "model: no readable Ada latency measurement was found (docs/perf-model.md)"),
];

const SM90_SOURCES: &[(&str, &str)] = &[
    ("sms, dram_bytes_s, l2_bytes", "NV-H100-DS (132 SMs SXM5 / 114 PCIe, 50 MB L2, 3.35 / 2.0 TB/s), CNC-H100; NV-H200 (4.8 TB/s; 132 SMs from secondary pages only)"),
    ("clock_mhz", "NV-HOP-WP table 3: tensor-core boost clock (1830 MHz SXM5); PCIe: 756 dense TFLOPS / (114 x 4096) = 1620 MHz"),
    ("fp32, int, sfu, fp64", "CUDA-PG-13 unit counts for cc 9.0 (128 FP32, 64 INT32, 16 SFU, 64 FP64 per SM)"),
    ("half, convert, shfl", "model: the cc 8.0 rates of CUDA-PG-TPUT (the 9.0 column was not retrieved)"),
    ("mma_*", "MMAPEAK: register-resident mma.sync (no wgmma) reaches 978 FP16/f32-acc TFLOPS on 132 SMs, >= 91% of the dense wgmma rate of NV-HOP-WP (2048 FMA/clk/SM): the model takes the full rate; TF32 380.6 TFLOPS = 728 FMA/clk/SM at 1.98 GHz"),
    ("schedulers, regs_per_sm, max_*, shared_*", "CUDA-PG-13 tables 30-32 and NV-OCC (cc 9.0): 4 schedulers, 64 K regs, 64 warps, 32 blocks, 228/227 KB, 1 KB reserved"),
    ("shared_bytes_clk", "CUDA-PG-SMEM"),
    ("l1_bytes", "NV-HOP-WP: 256 KB L1/shared per SM"),
    ("l2_bytes_clk, l1_bytes_clk", "model: L2 3000 B/clk (5.5 TB/s; H100-UBENCH's 3.57 TB/s is below its own DRAM figure and not used), L1 128 B/clk"),
    ("lat.dram, lat.l2, lat.l1, lat.shared", "H100-UBENCH: 570.5 / 259.9 / 40.2 / 28.6 cycles"),
    ("lat.mma, lat.sfu, lat.shfl, lat.barrier, dram_efficiency, launch_s", "model: docs/perf-model.md"),
];

const SM120_SOURCES: &[(&str, &str)] = &[
    ("sms, clock_mhz, l2_bytes, dram_bytes_s", "LXF-5090 (170 SMs, 2407 MHz boost, 96 MB L2, 1792 GB/s)"),
    ("fp32, int, sfu, fp64, half, convert, shfl", "SM120-NOTES quoting CUDA-PG-TPUT 13.4 (cc 12.0)"),
    ("mma_*", "NV-RTXBW-WP table 3: RTX 5090 209.5 dense BF16 TFLOPS with FP32 accumulate = 256 FMA/clk/SM at 2407 MHz x 170; FP16 accumulate twice that"),
    ("schedulers, regs_per_sm, max_*, shared_*", "CUDA-PG-13 and NV-OCC (cc 12.x): 48 warps, 24 blocks, 100/99 KB, 128 KB L1"),
    ("shared_bytes_clk", "CUDA-PG-SMEM"),
    ("l1_bytes, l2_bytes_clk, l1_bytes_clk", "model: 128 KB L1 (NV-RTXBW-WP), L2 and L1 B/clk (docs/perf-model.md)"),
    ("dram_efficiency, lat, launch_s", "model: streaming efficiency, latencies and launch overhead (docs/perf-model.md)"),
];

/// What the sm_80 / sm_90 / sm_86 / sm_89 / sm_120 rows share (CUDA-PG-13, NV-OCC): 4 schedulers, 16
/// SFUs, 64 K registers, 255 per thread, 32 banks of 4 bytes, 1 KB reserved per block; the model's
/// L1 rate, DRAM efficiency, latencies of the ALU/SFU/shuffle/barrier and launch overhead.
const COMMON: Arch = Arch {
    name: "",
    product: "",
    cc: 0,
    sms: 0,
    clock_mhz: 0.0,
    schedulers: 4,
    fp32: 128.0,
    int: 64.0,
    sfu: 16.0,
    fp64: 2.0,
    half: 128.0,
    convert: 16.0,
    shfl: 32.0,
    mma_f32acc: 0.0,
    mma_f16acc: 0.0,
    mma_tf32: 0.0,
    shared_bytes_clk: 128.0,
    shared_per_sm: 100 * KIB,
    shared_per_block: 99 * KIB,
    shared_reserved: KIB,
    l1_bytes: 128 * KIB,
    l1_bytes_clk: 128.0,
    l2_bytes: 0,
    l2_bytes_clk: 2048.0,
    dram_bytes_s: 0.0,
    dram_efficiency: 0.93,
    regs_per_sm: 65536,
    max_regs_thread: 255,
    max_warps_sm: 48,
    max_blocks_sm: 24,
    lat: lat(520.0, 220.0, 33.0, 30.0, 32.0),
    launch_s: 3e-6,
    sources: &[],
};

/// An sm_80 A100 with the given memory figures.
const fn a100(name: &'static str, product: &'static str, dram_gbs: f64) -> Arch {
    Arch {
        name,
        product,
        cc: 80,
        sms: 108,
        clock_mhz: 1410.0,
        fp32: 64.0,
        fp64: 32.0,
        mma_f32acc: 1024.0,
        mma_f16acc: 1024.0,
        mma_tf32: 512.0,
        shared_per_sm: 164 * KIB,
        shared_per_block: 163 * KIB,
        l1_bytes: 192 * KIB,
        l2_bytes: 40 * MIB,
        l2_bytes_clk: 5120.0,
        dram_bytes_s: dram_gbs * 1e9,
        max_warps_sm: 64,
        max_blocks_sm: 32,
        lat: lat(520.0, 230.0, 38.0, 29.0, 32.0),
        sources: SM80_SOURCES,
        ..COMMON
    }
}

/// An sm_90 Hopper part.
const fn hopper(name: &'static str, product: &'static str, sms: u32, clock_mhz: f64, dram_gbs: f64) -> Arch {
    Arch {
        name,
        product,
        cc: 90,
        sms,
        clock_mhz,
        fp64: 64.0,
        mma_f32acc: 2048.0,
        mma_f16acc: 2048.0,
        mma_tf32: 728.0,
        shared_per_sm: 228 * KIB,
        shared_per_block: 227 * KIB,
        l1_bytes: 256 * KIB,
        l2_bytes: 50 * MIB,
        l2_bytes_clk: 3000.0,
        dram_bytes_s: dram_gbs * 1e9,
        max_warps_sm: 64,
        max_blocks_sm: 32,
        lat: lat(570.0, 260.0, 40.0, 29.0, 32.0),
        sources: SM90_SOURCES,
        ..COMMON
    }
}

/// A 48-warp consumer/workstation SM (8.6, 8.9, 12.0).
#[allow(clippy::too_many_arguments)]
const fn small_sm(
    name: &'static str,
    product: &'static str,
    cc: u32,
    sms: u32,
    clock_mhz: f64,
    (mma_f32acc, mma_f16acc): (f64, f64),
    (l2_mib, dram_gbs): (u64, f64),
    max_blocks_sm: u32,
    sources: &'static [(&'static str, &'static str)],
) -> Arch {
    Arch {
        name,
        product,
        cc,
        sms,
        clock_mhz,
        int: if cc >= 120 { 128.0 } else { 64.0 },
        mma_f32acc,
        mma_f16acc,
        mma_tf32: mma_f16acc / 2.0,
        l2_bytes: l2_mib * MIB,
        l2_bytes_clk: if cc >= 89 { 2560.0 } else { 2048.0 },
        dram_bytes_s: dram_gbs * 1e9,
        max_blocks_sm,
        sources,
        ..COMMON
    }
}

/// Every GPU the model knows.
pub fn all() -> Vec<Arch> {
    vec![
        a100("a100-sxm4-40gb", "NVIDIA A100-SXM4-40GB", 1555.0),
        a100("a100-sxm4-80gb", "NVIDIA A100-SXM4-80GB", 2039.0),
        a100("a100-pcie-80gb", "NVIDIA A100-PCIe-80GB", 1935.0),
        hopper("h100-sxm", "NVIDIA H100 SXM5 80GB", 132, 1830.0, 3350.0),
        hopper("h100-pcie", "NVIDIA H100 PCIe 80GB", 114, 1620.0, 2000.0),
        hopper("h200", "NVIDIA H200 SXM 141GB", 132, 1830.0, 4800.0),
        small_sm(
            "l4",
            "NVIDIA L4",
            89,
            58,
            2040.0,
            (512.0, 512.0),
            (48, 300.0),
            24,
            SM89_SOURCES,
        ),
        small_sm(
            "rtx-a6000",
            "NVIDIA RTX A6000",
            86,
            84,
            1800.0,
            (512.0, 512.0),
            (6, 768.0),
            16,
            SM86_SOURCES,
        ),
        small_sm(
            "rtx-4090",
            "NVIDIA GeForce RTX 4090",
            89,
            128,
            2520.0,
            (256.0, 512.0),
            (72, 1008.0),
            24,
            SM89_SOURCES,
        ),
        small_sm(
            "rtx-5090",
            "NVIDIA GeForce RTX 5090",
            120,
            170,
            2407.0,
            (256.0, 512.0),
            (96, 1792.0),
            24,
            SM120_SOURCES,
        ),
    ]
}

/// The arch of that name.
pub fn by_name(name: &str) -> Option<Arch> {
    all().into_iter().find(|a| a.name == name)
}

/// The names, comma-separated (for error messages).
pub fn names() -> String {
    all().iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
}
