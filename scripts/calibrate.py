#!/usr/bin/env python3
"""Runs public kernel ladders with published GPU timings through ptx-emu's speed-of-light model.

Their sources are never part of this repository: fetch them into a scratch folder at the commits named
below (git clone + git checkout), then

    python3 scripts/calibrate.py SCRATCH [--only LADDER] [--json OUT.jsonl]

SCRATCH/sgemm      = siboehm/SGEMM_CUDA at 4820c609a1078e63c35c660107836fb022679fd9 (README table, RTX A6000)
SCRATCH/learn-cuda = gau-nernst/learn-cuda at a7e755c1bd3c318df8b79e9b853cf695663efa30 (02b_matmul_sm80, A100-SXM4-40GB)
SCRATCH/fastcu     = pranjalssh/fast.cu at a5352d0 or later (sum.cu header, H100 SXM)

Each kernel is compiled to PTX with nvcc (explicit template instantiation in a generated wrapper), run by
`ptx-emu run --model ARCH --sample-blocks N` (registers from ptxas), and its predicted time printed next
to the published one. The published figures are facts quoted from the sources (file and line in
docs/perf-model.md); the kernels' code stays in SCRATCH.
"""
import json, os, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMU = os.path.join(ROOT, "target", "release", "ptx-emu")
NVCC = os.environ.get("NVCC", "nvcc")

S = 4096
SG_ARGS = [f"i32:{S}", f"i32:{S}", f"i32:{S}", "f32:0.5", f"buf:zero={S*S*4}", f"buf:zero={S*S*4}", "f32:3.0", f"buf:zero={S*S*4}"]
SG_FLOP = 2 * S**3

def sg(num, inc, inst, grid, block, gflops):
    return dict(ladder="sgemm", arch="rtx-a6000", kernel=f"sgemm {num}", inc=[f"src/kernels/{inc}"],
                inst=inst, grid=grid, block=block, shared=0, args=SG_ARGS, cc="86",
                published_s=SG_FLOP / (gflops * 1e9), sample=8, pre="")

SG_SIG = "(int, int, int, float, {c}float *, {c}float *, float, float *)"
LADDERS = [
    sg(1, "1_naive.cuh", "", "128,128", "32,32", 309.0),
    sg(2, "2_kernel_global_mem_coalesce.cuh", "template __global__ void sgemm_global_mem_coalesce<32>" + SG_SIG.format(c="const "), "128,128", "1024", 1986.5),
    sg(3, "3_kernel_shared_mem_blocking.cuh", "template __global__ void sgemm_shared_mem_block<32>" + SG_SIG.format(c="const "), "128,128", "1024", 2980.3),
    sg(4, "4_kernel_1D_blocktiling.cuh", "template __global__ void sgemm1DBlocktiling<64,64,8,8>" + SG_SIG.format(c="const "), "64,64", "512", 8474.7),
    sg(5, "5_kernel_2D_blocktiling.cuh", "template __global__ void sgemm2DBlocktiling<128,128,8,8,8>" + SG_SIG.format(c="const "), "32,32", "256", 15971.7),
    sg(6, "6_kernel_vectorize.cuh", "template __global__ void sgemmVectorize<128,128,8,8,8>" + SG_SIG.format(c=""), "32,32", "256", 18237.3),
    sg(7, "7_kernel_resolve_bank_conflicts.cuh", "template __global__ void sgemmResolveBankConflicts<128,128,8,8,8>" + SG_SIG.format(c=""), "32,32", "256", 16213.4),
    sg(8, "8_kernel_bank_extra_col.cuh", "template __global__ void sgemmResolveBankExtraCol<128,128,8,8,8>" + SG_SIG.format(c=""), "32,32", "256", 16459.2),
    sg(9, "9_kernel_autotuned.cuh", "template __global__ void sgemmAutotuned<128,128,16,8,8>" + SG_SIG.format(c=""), "32,32", "256", 19721.0),
    sg(10, "10_kernel_warptiling.cuh", "template __global__ void sgemmWarptiling<128,128,16,64,64,4,8,4,128>" + SG_SIG.format(c=""), "32,32", "128", 21779.3),
]
LADDERS[0]["inst"] = None  # not a template: the kernel itself is the entry

# gau-nernst/learn-cuda 02b_matmul_sm80: (file, mangled template arguments, dynamic smem, A100 TFLOPS, 5090 TFLOPS)
LC = [
    ("v1", "matmul_v1.cu", "matmul_v1_kernel", "Li128ELi128ELi64ELi2ELi2ELi64ELb0ELb0E", 32768, 59.92, 140.66),
    ("v2", "matmul_v1.cu", "matmul_v1_kernel", "Li128ELi128ELi64ELi2ELi2ELi64ELb1ELb0E", 32768, 64.94, 152.91),
    ("v3", "matmul_v1.cu", "matmul_v1_kernel", "Li128ELi128ELi64ELi2ELi2ELi72ELb1ELb0E", 36864, 166.78, 160.47),
    ("v4", "matmul_v1.cu", "matmul_v1_kernel", "Li128ELi128ELi64ELi2ELi2ELi64ELb1ELb1E", 32768, 190.94, 177.42),
    ("v5", "matmul_v5.cu", "matmul_v5_kernel", "Li128ELi128ELi64ELi2ELi2E", 32768, 160.42, 177.60),
    ("v6", "matmul_v6.cu", "matmul_v6_kernel", "Li128ELi128ELi64ELi2ELi2ELi2ELi0E", 65536, 220.77, 177.66),
    ("v6b", "matmul_v6.cu", "matmul_v6_kernel", "Li128ELi128ELi64ELi2ELi2ELi2ELi8E", 65536, 220.66, 177.40),
]
for ver, f, name, targs, smem, a100, r5090 in LC:
    args = [f"buf:zero={S*S*2}", f"buf:zero={S*S*2}", f"buf:zero={S*S*2}", f"i32:{S}", f"i32:{S}", f"i32:{S}"]
    for arch, tf in (("a100-sxm4-40gb", a100), ("rtx-5090", r5090)):
        LADDERS.append(dict(ladder="learn-cuda" if arch.startswith("a100") else "learn-cuda-5090", arch=arch,
                            kernel=f"matmul {ver}", file=f"02b_matmul_sm80/{f}", entry=(name, targs), grid="1024",
                            block="128", shared=smem, args=args, cc="80" if arch.startswith("a100") else "120",
                            published_s=SG_FLOP / (tf * 1e12), sample=8))

# pranjalssh/fast.cu sum.cu (H100 SXM): N = 2^30 int32, published ms
N = 1 << 30
for k, grid, block, tmpl, n_arg, ms in (
    (1, -(-N // (512 * 20)), 512, "Li512ELi20E", N, 1.32858),
    (2, -(-N // (1024 * 64)), 1024, "Li1024ELi16E", N // 4, 1.32573),
    (3, -(-N // (1024 * 64)), 1024, "Li1024ELi16E", N // 4, 1.32556),
    (4, -(-N // (1024 * 64)), 1024, "Li1024ELi16E", N // 4, 1.32501),
):
    LADDERS.append(dict(ladder="fastcu-sum", arch="h100-sxm", kernel=f"sum {k}", file="sum.cu",
                        entry=(f"sumKernel{k}", tmpl), grid=str(grid), block=str(block), shared=0,
                        args=[f"buf:zero={N*4}", "buf:zero=4", f"i32:{n_arg}"], cc="90", published_s=ms * 1e-3,
                        sample=16, memory=str(6 << 30)))


def compile_ptx(src, cc, incdirs, tmp):
    out = os.path.join(tmp, os.path.basename(src) + f".{cc}.ptx")
    cmd = [NVCC, "-O3", "-ptx", "-std=c++17", "--expt-relaxed-constexpr", f"-arch=compute_{cc}", "-o", out, src] + [f"-I{d}" for d in incdirs]
    subprocess.run(cmd, check=True, capture_output=True)
    return open(out).read(), out


def entry_name(ptx, name, targs):
    for line in ptx.splitlines():
        if ".entry" in line:
            e = line.split(".entry")[1].strip().split("(")[0].strip()
            if name in e and (targs is None or targs in e):
                return e
    raise SystemExit(f"no entry {name} {targs}")


def run(k, scratch, tmp):
    stub = os.path.join(tmp, "stub")
    os.makedirs(stub, exist_ok=True)
    open(os.path.join(stub, "cublas_v2.h"), "w").write("#pragma once\n")
    if k["ladder"] == "sgemm":
        base = os.path.join(scratch, "sgemm")
        w = os.path.join(tmp, k["kernel"].replace(" ", "_") + ".cu")
        open(w, "w").write(f'#include "{base}/{k["inc"][0]}"\n' + (k["inst"] + ";\n" if k["inst"] else ""))
        ptx, path = compile_ptx(w, k["cc"], [stub, os.path.join(base, "src")], tmp)
        entry = entry_name(ptx, k["inst"].split("void ")[1].split("<")[0] if k["inst"] else "sgemm_naive", None)
    else:
        base = os.path.join(scratch, "learn-cuda" if k["ladder"].startswith("learn") else "fastcu")
        ptx, path = compile_ptx(os.path.join(base, k["file"]), k["cc"], [stub], tmp)
        entry = entry_name(ptx, *k["entry"])
    metrics = os.path.join(tmp, "m.json")
    cmd = [EMU, "run", path, "--kernel", entry, "--grid", k["grid"], "--block", k["block"], "--shared", str(k["shared"]),
           "--model", k["arch"], "--sample-blocks", str(k["sample"]), "--metrics", metrics, "--no-check", "all"]
    if "memory" in k:
        cmd += ["--memory-limit", k["memory"]]
    for a in k["args"]:
        cmd += ["--arg", a]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{k['kernel']}: {r.stderr}")
    m = json.load(open(metrics))["model"]
    return m


def spearman(xs, ys):
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for t in range(i, j + 1):
                r[order[t]] = (i + j) / 2
            i = j + 1
        return r
    rx, ry = ranks(xs), ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy) if vx and vy else float("nan")


def main():
    scratch = sys.argv[1]
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    out = open(sys.argv[sys.argv.index("--json") + 1], "w") if "--json" in sys.argv else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in LADDERS:
            if only and k["ladder"] != only:
                continue
            m = run(k, scratch, tmp)
            err = m["seconds"] / k["published_s"] - 1
            row = dict(ladder=k["ladder"], arch=k["arch"], kernel=k["kernel"], published_s=k["published_s"],
                       predicted_s=m["seconds"], error=err, limiter=m["limiter"], regs=m["occupancy"]["regs_per_thread"],
                       blocks_per_sm=m["occupancy"]["blocks_per_sm"])
            rows.append(row)
            print(f"{k['ladder']:<16} {k['arch']:<15} {k['kernel']:<10} published {k['published_s']*1e3:9.4f} ms  "
                  f"predicted {m['seconds']*1e3:9.4f} ms  error {err*100:+7.1f}%  {m['limiter']}", flush=True)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()
    errs = [abs(r["error"]) for r in rows]
    if errs:
        print(f"median |error| {statistics.median(errs)*100:.1f}% over {len(errs)} kernels")
    for lad in sorted(set(r["ladder"] for r in rows)):
        rs = [r for r in rows if r["ladder"] == lad]
        if len(rs) > 2:
            print(f"{lad}: Spearman {spearman([r['published_s'] for r in rs], [r['predicted_s'] for r in rs]):.3f}")


if __name__ == "__main__":
    main()
