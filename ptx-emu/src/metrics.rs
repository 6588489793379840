//! Per-launch metrics: dynamic thread-instructions by class, global traffic and coalescing, shared-memory
//! bank conflicts, barriers, tensor-core instructions. Written as JSON by hand (no serde).

use crate::ir::{Class, NUM_CLASSES};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Thread-instructions executed (predicate-true lanes), summed over threads.
    pub instructions: u64,
    /// Warp-level instructions issued.
    pub warp_instructions: u64,
    /// Thread-instructions by class (index: `Class as usize`, names from `Class::name`).
    pub by_class: [u64; NUM_CLASSES],
    /// Bytes requested by global loads / stores / atomics (sum over lanes).
    pub global_load_bytes: u64,
    pub global_store_bytes: u64,
    pub global_atomic_bytes: u64,
    /// Warp-level global memory requests and the 32-byte sectors they touched.
    pub global_requests: u64,
    pub global_sectors: u64,
    /// Warp-level shared-memory requests, their wavefronts and the extra wavefronts due to bank conflicts.
    pub shared_requests: u64,
    pub shared_wavefronts: u64,
    pub shared_bank_conflicts: u64,
    pub shared_load_bytes: u64,
    pub shared_store_bytes: u64,
    pub local_bytes: u64,
    /// Completed barriers (per block, summed).
    pub barriers: u64,
    /// Warp-level mma.sync instructions.
    pub mma: u64,
    pub blocks: u64,
    pub threads: u64,
    pub wall_seconds: f64,
}

impl Metrics {
    pub fn class(&self, c: Class) -> u64 {
        self.by_class[c as usize]
    }

    /// Average 32-byte sectors per warp-level global request (4 is ideal for 4-byte coalesced access).
    pub fn sectors_per_request(&self) -> f64 {
        if self.global_requests == 0 {
            0.0
        } else {
            self.global_sectors as f64 / self.global_requests as f64
        }
    }

    pub fn add(&mut self, o: &Metrics) {
        self.instructions += o.instructions;
        self.warp_instructions += o.warp_instructions;
        for (a, b) in self.by_class.iter_mut().zip(o.by_class.iter()) {
            *a += b;
        }
        self.global_load_bytes += o.global_load_bytes;
        self.global_store_bytes += o.global_store_bytes;
        self.global_atomic_bytes += o.global_atomic_bytes;
        self.global_requests += o.global_requests;
        self.global_sectors += o.global_sectors;
        self.shared_requests += o.shared_requests;
        self.shared_wavefronts += o.shared_wavefronts;
        self.shared_bank_conflicts += o.shared_bank_conflicts;
        self.shared_load_bytes += o.shared_load_bytes;
        self.shared_store_bytes += o.shared_store_bytes;
        self.local_bytes += o.local_bytes;
        self.barriers += o.barriers;
        self.mma += o.mma;
        self.blocks += o.blocks;
        self.threads += o.threads;
    }

    /// What happened since `earlier` (a snapshot of the same counters).
    pub fn delta(&self, earlier: &Metrics) -> Metrics {
        let mut d = self.clone();
        d.instructions -= earlier.instructions;
        d.warp_instructions -= earlier.warp_instructions;
        for (a, b) in d.by_class.iter_mut().zip(earlier.by_class.iter()) {
            *a -= b;
        }
        d.global_load_bytes -= earlier.global_load_bytes;
        d.global_store_bytes -= earlier.global_store_bytes;
        d.global_atomic_bytes -= earlier.global_atomic_bytes;
        d.global_requests -= earlier.global_requests;
        d.global_sectors -= earlier.global_sectors;
        d.shared_requests -= earlier.shared_requests;
        d.shared_wavefronts -= earlier.shared_wavefronts;
        d.shared_bank_conflicts -= earlier.shared_bank_conflicts;
        d.shared_load_bytes -= earlier.shared_load_bytes;
        d.shared_store_bytes -= earlier.shared_store_bytes;
        d.local_bytes -= earlier.local_bytes;
        d.barriers -= earlier.barriers;
        d.mma -= earlier.mma;
        d.blocks -= earlier.blocks;
        d.threads -= earlier.threads;
        d
    }

    /// The metrics as a JSON object.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\n");
        let mut field = |k: &str, v: String| {
            s.push_str(&format!("  \"{k}\": {v},\n"));
        };
        field("instructions", self.instructions.to_string());
        field("warp_instructions", self.warp_instructions.to_string());
        let classes: Vec<String> = Class::ALL
            .iter()
            .map(|c| format!("\"{}\": {}", c.name(), self.by_class[*c as usize]))
            .collect();
        field("instructions_by_class", format!("{{{}}}", classes.join(", ")));
        field("global_load_bytes", self.global_load_bytes.to_string());
        field("global_store_bytes", self.global_store_bytes.to_string());
        field("global_atomic_bytes", self.global_atomic_bytes.to_string());
        field(
            "global_bytes_requested",
            (self.global_load_bytes + self.global_store_bytes + self.global_atomic_bytes).to_string(),
        );
        field("global_requests", self.global_requests.to_string());
        field("global_sectors", self.global_sectors.to_string());
        field("sectors_per_request", format!("{:.4}", self.sectors_per_request()));
        field("shared_requests", self.shared_requests.to_string());
        field("shared_wavefronts", self.shared_wavefronts.to_string());
        field("shared_bank_conflicts", self.shared_bank_conflicts.to_string());
        field("shared_load_bytes", self.shared_load_bytes.to_string());
        field("shared_store_bytes", self.shared_store_bytes.to_string());
        field("local_bytes", self.local_bytes.to_string());
        field("barriers", self.barriers.to_string());
        field("mma", self.mma.to_string());
        field("blocks", self.blocks.to_string());
        field("threads", self.threads.to_string());
        s.push_str(&format!("  \"wall_seconds\": {:.6}\n}}\n", self.wall_seconds));
        s
    }
}
