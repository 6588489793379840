//! The cases `fuzz_ops` draws: one op call each, with everything the call needs derived from the case.

use llama_kernels::backend::{Backend, DeviceSlice, DeviceValue, EmuBackend, EmuBuffer, EmuView, EmuViewMut};
use llama_kernels::reference::random_vec;
use llama_kernels::*;
use ptx_emu::fuzz::SplitMix64;

/// The drawing helpers over ptx-emu's deterministic PRNG.
pub struct Rng(pub SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64(seed))
    }
    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n as usize) as u64
    }
    /// True with probability `percent / 100`.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    RmsNorm,
    FusedAddRmsNorm,
    Swiglu,
    SwigluPacked,
    Rope,
    Attention,
    Gemm,
    /// `add` (flag: out of place) or `add_inplace`.
    Add,
    /// `convert` to the dtype `seed % 3` picks.
    Convert,
    /// `embedding` with ids from the seed (flag: all valid; else some outside the vocabulary).
    Embedding,
    /// `kv_append` (RoPE as the case's config) with distinct slots from the seed (flag: all in the cache;
    /// else some negative or past it).
    KvAppend,
    /// `attention_paged` on a ragged batch (flag: valid metadata; else one sequence's is out of range).
    AttentionPaged,
}

/// How the input tensors are filled (each tensor from the case seed and its slot).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Data {
    /// Values in `[-1.5, 1.5]`, never zero.
    Random,
    /// `Random` times a factor.
    Scaled(f32),
    /// Every element the same.
    Constant(f32),
    /// `Random` with every 7th element NaN.
    WithNan,
    /// `Random` with one element in 16 replaced by NaN, ±inf, ±0, a subnormal, or (elementwise ops only)
    /// a value near the top of the dtype's range.
    Specials,
}

/// One call of one op. `dims` are the op's shape fields in declaration order.
#[derive(Clone, Debug)]
pub struct Case {
    pub op: Op,
    pub dtype: DType,
    pub dims: Vec<usize>,
    pub x: Data,
    pub seed: u64,
    /// eps (RMSNorm), softmax_scale (attention), alpha (GEMM); `None`: the default.
    pub scalar: Option<f32>,
    /// beta (GEMM).
    pub scalar2: f32,
    pub rounding: Rounding,
    /// causal (attention), trans_a (GEMM).
    pub flag: bool,
    /// Explicit positions (RoPE); empty: drawn from the seed.
    pub positions: Vec<i32>,
    /// Added to the length of the first input (a wrong length must be rejected).
    pub len_delta: isize,
    /// Elements of offset of every buffer in its allocation (breaks 16-byte alignment).
    pub offset: usize,
    /// RoPE: theta, rotary_dim (`None`: head_dim), layout, LLaMA 3.1 scaling.
    pub theta: f32,
    pub rotary_dim: Option<usize>,
    pub half_split: bool,
    pub llama3: bool,
}

/// The largest tensor a case allocates; a shape past it gets small buffers (a length mismatch to reject).
const MAX_ELEMS: usize = 1 << 18;

impl Case {
    /// A valid call with default scalars and random data.
    pub fn plain(op: Op, dtype: DType) -> Case {
        Case {
            op,
            dtype,
            dims: Vec::new(),
            x: Data::Random,
            seed: 1,
            scalar: None,
            scalar2: 0.0,
            rounding: Rounding::MatchTorch,
            flag: true,
            positions: Vec::new(),
            len_delta: 0,
            offset: 0,
            theta: 10000.0,
            rotary_dim: None,
            half_split: true,
            llama3: false,
        }
    }

    pub fn draw(rng: &mut Rng) -> Case {
        use Op::*;
        let op = rng.pick(&[
            RmsNorm,
            FusedAddRmsNorm,
            Swiglu,
            SwigluPacked,
            Rope,
            Attention,
            Gemm,
            Add,
            Convert,
            Embedding,
            KvAppend,
            AttentionPaged,
        ]);
        let dtype = rng.pick(&[DType::F32, DType::F16, DType::BF16]);
        let mut c = Case::plain(op, dtype);
        c.seed = rng.next();
        c.dims = match op {
            RmsNorm | FusedAddRmsNorm | Swiglu | SwigluPacked | Add | Convert => vec![dim(rng), dim(rng)],
            Embedding => vec![dim(rng), dim(rng), dim(rng)],
            KvAppend => vec![dim(rng), dim(rng).min(9), dim(rng).min(9), head_dim(rng), dim(rng)],
            Gemm => vec![dim(rng), dim(rng), dim(rng)],
            Rope => vec![dim(rng), dim(rng).min(9), dim(rng).min(9), head_dim(rng)],
            AttentionPaged => {
                let kv_heads = rng.pick(&[1usize, 2, 3]);
                let heads = kv_heads * rng.pick(&[1usize, 2, 4]) + usize::from(rng.chance(5));
                let page = rng.pick(&[1usize, 3, 16, 16, 64, 256, 300]);
                vec![
                    rng.pick(&[1usize, 2, 3, 4]),
                    heads,
                    kv_heads,
                    head_dim(rng).min(256),
                    page,
                ]
            }
            Attention => {
                let kv_heads = rng.pick(&[1usize, 1, 2, 3, 0]);
                let heads = kv_heads * rng.pick(&[1usize, 2, 4]) + usize::from(rng.chance(5));
                vec![
                    rng.pick(&[1usize, 1, 2, 0]),
                    dim(rng),
                    dim(rng),
                    heads,
                    kv_heads,
                    head_dim(rng),
                ]
            }
        };
        shrink_to_budget(op, &mut c.dims);
        c.x = match rng.below(10) {
            0 => Data::Scaled(rng.pick(&[1e-30, 1e-6, 1e3, 1e19, 3e38])),
            1 => Data::Constant(rng.pick(&[0.0, -0.0, 1.0, 2e19, -65504.0])),
            2 => Data::WithNan,
            3..=5 => Data::Specials,
            _ => Data::Random,
        };
        if matches!(op, Attention | Gemm) && matches!(c.x, Data::Scaled(s) | Data::Constant(s) if s.abs() > 2.0) {
            c.x = Data::Specials; // their f32 accumulation order decides an overflow (see the README)
        }
        if op == AttentionPaged {
            c.x = Data::Random; // the plain attention case covers the special values; this one the metadata
        }
        c.scalar = match op {
            RmsNorm | FusedAddRmsNorm => rng
                .chance(20)
                .then(|| rng.pick(&[0.0, -1e-5, f32::NAN, f32::INFINITY, 1e30, 1e-45, 1e-6])),
            Attention => rng
                .chance(30)
                .then(|| rng.pick(&[0.0, -0.125, f32::NAN, f32::INFINITY, 1e30, 1e38, 1e-40, 3e38])),
            Gemm => Some(rng.pick(&[1.0, -0.5, 0.0, 1.7, f32::NAN, f32::INFINITY, 1e30])),
            _ => None,
        };
        c.scalar2 = rng.pick(&[0.0, 0.0, 1.0, -0.75, f32::NAN]);
        c.rounding = rng.pick(&[Rounding::MatchTorch, Rounding::Once]);
        c.flag = rng.chance(60);
        c.len_delta = if rng.chance(5) { rng.pick(&[-1, 1]) } else { 0 };
        c.offset = if rng.chance(15) { rng.pick(&[1, 2, 3, 8]) } else { 0 };
        c.theta = if rng.chance(10) {
            rng.pick(&[0.0, -1.0, f32::NAN, f32::INFINITY, 1.0, 1e30])
        } else {
            rng.pick(&[10000.0, 500000.0])
        };
        c.rotary_dim = rng.chance(30).then(|| rng.pick(&[0usize, 1, 2, 4, 6, 8, 300]));
        c.half_split = rng.chance(50);
        c.llama3 = rng.chance(20);
        if op == Rope && rng.chance(20) {
            c.positions = (0..c.dims[0].min(64))
                .map(|_| rng.pick(&[0, -1, 1 << 24, i32::MAX, i32::MIN, 5]))
                .collect();
        }
        c
    }

    /// `n` adjusted by `len_delta` (saturating at 0).
    pub fn len(&self, n: usize) -> usize {
        n.saturating_add_signed(self.len_delta)
    }

    /// The length of an output buffer for `n` elements (16 past [`MAX_ELEMS`]: the op must reject it).
    pub fn out_len(&self, n: usize) -> usize {
        if n > MAX_ELEMS {
            16
        } else {
            n
        }
    }

    /// The data of input `slot`, `n` elements (the first input's length off by `len_delta`; a tensor past
    /// [`MAX_ELEMS`] gets 16 elements).
    pub fn data<T: Elem>(&self, slot: u64, n: usize) -> Vec<T> {
        let n = if slot == 0 { self.len(n) } else { n };
        let n = if n > MAX_ELEMS { 16 } else { n };
        let seed = self.seed ^ slot.wrapping_mul(0x5151);
        let random = random_vec::<f32>(n, seed, 1.5);
        let values: Vec<f32> = match self.x {
            Data::Random => random,
            Data::Scaled(s) => random.iter().map(|v| v * s).collect(),
            Data::Constant(c) => vec![c; n],
            Data::WithNan => random
                .iter()
                .enumerate()
                .map(|(i, &v)| if i % 7 == 3 { f32::NAN } else { v })
                .collect(),
            Data::Specials => {
                let elementwise = !matches!(self.op, Op::Attention | Op::Gemm);
                let mut rng = Rng::new(seed);
                random
                    .into_iter()
                    .map(|v| {
                        if !rng.chance(6) {
                            return v;
                        }
                        let specials = [
                            f32::NAN,
                            f32::INFINITY,
                            f32::NEG_INFINITY,
                            0.0,
                            -0.0,
                            1e-41,
                            3e-6,
                            60000.0,
                            -3e38,
                        ];
                        let pick = rng.pick(&specials[..if elementwise { 9 } else { 7 }]);
                        if pick == 60000.0 && self.dtype == DType::F16 {
                            65504.0
                        } else {
                            pick
                        }
                    })
                    .collect()
            }
        };
        values.into_iter().map(T::from_f32).collect()
    }

    /// Token ids for an embedding of `vocab` rows: in range when `flag`, else one in four outside it.
    pub fn ids(&self, tokens: usize, vocab: usize) -> Vec<i32> {
        let mut rng = Rng::new(self.seed ^ 0x1d5);
        let v = vocab.min(i32::MAX as usize) as u64;
        (0..tokens.min(MAX_ELEMS))
            .map(|_| {
                if !self.flag && rng.chance(25) {
                    rng.pick(&[-1, i32::MIN, i32::MAX, v as i32])
                } else if v == 0 {
                    0
                } else {
                    rng.below(v) as i32
                }
            })
            .collect()
    }

    /// Slots for `tokens` new tokens in a cache of `num_slots` rows: distinct ones in a shuffled order, then
    /// (or, without `flag`, for one token in four) -1 or past the cache.
    pub fn slots(&self, tokens: usize, num_slots: usize) -> Vec<i64> {
        let mut rng = Rng::new(self.seed ^ 0x5107);
        let mut free: Vec<i64> = (0..num_slots.min(MAX_ELEMS) as i64).collect();
        for i in (1..free.len()).rev() {
            free.swap(i, rng.below(i as u64 + 1) as usize);
        }
        (0..tokens.min(MAX_ELEMS))
            .map(|t| match free.get(t) {
                Some(&s) if self.flag || !rng.chance(25) => s,
                _ => rng.pick(&[-1, -5, num_slots as i64, num_slots as i64 + 3, i64::MAX]),
            })
            .collect()
    }

    /// Positions for `tokens` tokens: the explicit ones, or in `-8..4096` from the seed.
    pub fn positions(&self, tokens: usize) -> Vec<i32> {
        if !self.positions.is_empty() {
            return self.positions.clone();
        }
        let mut rng = Rng::new(self.seed ^ 0x9051);
        (0..tokens.min(MAX_ELEMS)).map(|_| rng.below(4104) as i32 - 8).collect()
    }

    pub fn rope_config(&self, head_dim: usize) -> RopeConfig {
        RopeConfig {
            theta: self.theta,
            rotary_dim: self.rotary_dim.unwrap_or(head_dim),
            layout: if self.half_split {
                RopeLayout::HalfSplit
            } else {
                RopeLayout::Interleaved
            },
            scaling: self.llama3.then_some(Llama3Scaling::LLAMA_3_1),
        }
    }

    /// `data` in a new buffer, `offset` elements into its allocation.
    pub fn upload<T: Elem + DeviceValue>(
        &self,
        backend: &EmuBackend,
        data: &[T],
    ) -> std::result::Result<Placed<T>, String> {
        let mut padded = vec![T::from_f32(0.0); self.offset];
        padded.extend_from_slice(data);
        let buf = backend.upload(&padded).map_err(|e| format!("upload: {e}"))?;
        Ok(Placed {
            buf,
            offset: self.offset,
        })
    }
}

/// A buffer and where the op's tensor starts in it.
pub struct Placed<T: DeviceValue> {
    pub buf: EmuBuffer<T>,
    pub offset: usize,
}

impl<T: DeviceValue> Placed<T> {
    pub fn view(&self) -> EmuView<'_, T> {
        let len = self.buf.len();
        self.buf.slice(self.offset..len).expect("offset within the buffer")
    }
    pub fn view_mut(&mut self) -> EmuViewMut<'_, T> {
        let len = self.buf.len();
        self.buf.slice_mut(self.offset..len).expect("offset within the buffer")
    }
}

/// A dimension: mostly small and at tile edges, sometimes zero, sometimes past every limit.
fn dim(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=4 => 0,
        5..=14 => 1,
        15..=54 => 2 + rng.below(8) as usize,
        55..=74 => rng.pick(&[15, 16, 17, 31, 32, 33, 63, 64, 65]),
        75..=95 => 10 + rng.below(90) as usize,
        _ => rng.pick(&[1 << 31, 1 << 40, usize::MAX / 3, 65536, i32::MAX as usize]),
    }
}

fn head_dim(rng: &mut Rng) -> usize {
    if rng.chance(80) {
        rng.pick(&[8, 16, 64, 128, 72, 256, 24])
    } else {
        rng.pick(&[0, 1, 7, 12, 100, 264, 1 << 20])
    }
}

/// Halves the largest reasonable dimension until the case's work fits the emulator's budget (sizes past
/// every limit are left alone: they are rejected before any work).
fn shrink_to_budget(op: Op, dims: &mut [usize]) {
    let budget: u128 = match op {
        Op::Attention => 1 << 20,
        Op::Gemm => 1 << 21,
        Op::AttentionPaged => 1 << 40, // dims are heads, head_dim and a page size: paged.rs bounds its tensors
        _ => 1 << 18,
    };
    let reasonable = |d: usize| d <= 1 << 16;
    loop {
        let work: u128 = dims
            .iter()
            .enumerate()
            .filter(|&(_, &d)| reasonable(d))
            .map(|(i, &d)| match (op, i) {
                // An embedding's work is a block of 2048 elements per token, whatever d and the vocabulary.
                (Op::Embedding, 1) => d.max(2048) as u128 / 8,
                (Op::Embedding, 2) => 1,
                _ => d.max(1) as u128,
            })
            .product();
        let largest = dims
            .iter()
            .enumerate()
            .filter(|(_, &d)| reasonable(d) && d > 1)
            .max_by_key(|(_, &d)| d)
            .map(|(i, _)| i);
        match largest {
            Some(i) if work > budget => dims[i] /= 2,
            _ => break,
        }
    }
}
