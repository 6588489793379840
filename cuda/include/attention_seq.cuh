// One sequence of an attention batch, from AttentionParams' optional serving metadata (cu_seqlens_q,
// cu_seqlens_k, seq_lens, block_table; params.h): where its queries and keys are, and how many. Both
// attention kernels (cuda/attention.cu, dev/attention/v1_cuda_cores.cu) take every per-sequence value from
// here, so a batch of equal sequences and a ragged, paged one run the same code.
//
// The metadata is device data the host cannot check without a copy, so every value read here is clamped
// into what the host validated (rows < total_q / total_k, keys <= kv_len, pages < num_pages): no address
// leaves the tensors, whatever the metadata says. A sequence whose lengths had to be clamped is `bad`, and
// the kernels write NaN to all of its outputs (o and lse); a page id out of range turns to NaN the
// outputs of every block that reads it (so every query that would see one of its keys): never a
// plausible wrong answer.
#pragma once
#include "common.cuh"

namespace lk {

struct AttentionSeq {
    int64_t q_start;  // first row of the sequence in q, o and lse (0 without cu_seqlens_q)
    int64_t k_start;  // first row of its keys in k and v (0 without cu_seqlens_k)
    int q_len;        // its queries
    int kv_len;       // its keys
    int diag_offset;  // kv_len - q_len: query i's diagonal key is i + diag_offset
    bool bad;         // the metadata was out of range: outputs NaN
};

// Rows [lo, hi) of sequence b in a packed tensor of `total` rows, at most `max_len` of them.
__device__ __forceinline__ void attention_packed_rows(const int32_t* cu, int b, int total, int max_len, int64_t& start,
                                                      int& len, bool& bad) {
    const int lo = cu[b];
    const int hi = cu[b + 1];
    bad |= lo < 0 || hi < lo || hi > total || hi - lo > max_len;
    const int lo_c = min(max(lo, 0), total);
    const int hi_c = min(min(max(hi, lo_c), total), lo_c + max_len);
    start = lo_c;
    len = hi_c - lo_c;
}

__device__ __forceinline__ AttentionSeq attention_seq(const AttentionParams& p, int b) {
    AttentionSeq s{0, 0, p.q_len, p.kv_len, p.diag_offset, false};
    if (p.cu_seqlens_q != nullptr) attention_packed_rows(p.cu_seqlens_q, b, p.total_q, p.q_len, s.q_start, s.q_len, s.bad);
    if (p.seq_lens != nullptr) {
        const int n = p.seq_lens[b];
        s.bad |= n < 0 || n > p.kv_len;
        s.kv_len = min(max(n, 0), p.kv_len);
    } else if (p.cu_seqlens_k != nullptr) {
        attention_packed_rows(p.cu_seqlens_k, b, p.total_k, p.kv_len, s.k_start, s.kv_len, s.bad);
    }
    if (p.cu_seqlens_q != nullptr || p.seq_lens != nullptr || p.cu_seqlens_k != nullptr) s.diag_offset = s.kv_len - s.q_len;
    return s;
}

// The block_table entry of key j's page (page_shift: log2(page_size) when a power of two, else -1).
__device__ __forceinline__ int attention_page_entry(const AttentionParams& p, int j) {
    return p.page_shift >= 0 ? j >> p.page_shift : j / p.page_size;
}

// Row of key j in k and v given its page id (from block_table): -1, and `bad` set, for an id out of range.
__device__ __forceinline__ int64_t attention_paged_row(const AttentionParams& p, int page, int j, bool& bad) {
    if (page < 0 || page >= p.num_pages) {
        bad = true;
        return -1;
    }
    const int in_page = p.page_shift >= 0 ? j & (p.page_size - 1) : j % p.page_size;
    return int64_t(page) * p.page_size + in_page;
}

// Row of key j (< s.kv_len) of sequence b in k and v: its page's row with block_table, else k_start + j.
// A page id out of range returns -1 and sets `bad` (the caller reads nothing for the key).
__device__ __forceinline__ int64_t attention_key_row(const AttentionParams& p, int b, const AttentionSeq& s, int j,
                                                     bool& bad) {
    if (p.block_table == nullptr) return s.k_start + j;
    const int page = p.block_table[b * p.block_table_stride + attention_page_entry(p, j)];
    return attention_paged_row(p, page, j, bad);
}

}  // namespace lk
