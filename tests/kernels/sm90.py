"""Compiles the fused losses' kernels for an H100/H200 (sm_90) without a GPU, as the library
launches them: what Triton's interpreter lets by and its compiler refuses (a static branch
that returns one shape and falls through to a return of another) fails here, on the CPU.

    python -m tests.kernels.sm90          # a line per kernel compiled: registers, spills

The launches are the library's own: `cce_minus` and `cce` run forward and backward on CPU
tensors with each kernel replaced by a recorder, so every compile-time setting and argument
comes from the code that launches on a GPU. Each recorded launch is then compiled with
`triton.compile` for `GPUTarget("cuda", 90, 32)`, specialised as Triton specialises a launch:
pointers typed by their tensors (16-byte aligned ones marked so), integers as 32 or 64-bit
(multiples of 16 marked so, 1 a constant) unless the kernel says not to specialise them. The
kernels' outputs are never written, so host code that read one to size a later launch would
record a meaningless one (none does), and host code that indexes by one fails: the cuBLAS
products' path adds its item gradient through the compact accumulator's owners, so its
COMPACT variant is compiled on a GPU only (benchmarks/run_gpu.sh cublas-kernel-tests). Run
it in a process without TRITON_INTERPRET: the interpreter's kernels cannot be compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource

import cce_tune.kernels.cce_buckets as buckets
import cce_tune.kernels.compact as compact
import cce_tune.kernels.config as kernel_config
import cce_tune.kernels.cublas_chunks as cublas_chunks
import cce_tune.kernels.fused as fused
from cce_tune.kernels import InKernelNegatives, cce, cce_minus

TARGET = GPUTarget("cuda", 90, 32)
# Kernel module attributes that launch kernels, by the module that launches them.
LAUNCHERS = {fused: ("cce_minus_forward_kernel", "cce_minus_backward_hidden_kernel",
                     "cce_minus_backward_items_kernel", "draw_negatives_kernel",
                     "catalog_lse_kernel", "directions_backward_kernel"),
             cublas_chunks: ("cce_minus_forward_kernel", "cce_minus_backward_hidden_kernel"),
             buckets: ("count_kernel", "place_kernel", "items_kernel"),
             compact: ("claim_rows_kernel", "expand_rows_kernel")}
TRITON_TYPES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32",
                torch.int32: "i32", torch.int64: "i64"}


class Recorder:
    """Stands in for a kernel: notes each launch (arguments and settings), runs nothing."""

    def __init__(self, kernel, launches: list) -> None:
        self.kernel, self.launches = kernel, launches

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launches.append((self.kernel, args, kwargs))


def losses() -> dict:
    """Loss calls that together take every kernel variant the library launches: per
    position on the tensor cores (half precision, d 256) and the CUDA cores (d 64, float32),
    ids read and drawn; tiles, shared, the full catalog; log-Q, sampled softmax, a compact
    accumulator (a catalog much larger than the batch's ids); pairs counted by the forward
    and by the backward; with hidden frozen (no d(hidden) directions); over the full catalog
    with the forward's directions (half precision, d 64 and 256) and the hidden pass
    (float32)."""
    def sampled(negatives, **kwargs):
        return lambda h, e, t: cce_minus(h, e, t, negatives, **kwargs)

    def ids(rows, num_negatives, catalog):
        return torch.randint(1, catalog + 1, (rows, num_negatives))

    return {  # label: `record`'s arguments
        "per position, fp16 d 256, ids read": (torch.float16, 256, 100,
                                               sampled(ids(64, 40, 100))),
        "per position, fp16 d 256, drawn": (torch.float16, 256, 100,
                                            sampled(InKernelNegatives(40, "per_position"))),
        "per position, fp16 d 64, ids read": (torch.float16, 64, 100,
                                              sampled(ids(64, 40, 100), sampled_softmax=True)),
        "per position, fp16 d 64, drawn": (torch.float16, 64, 100,
                                           sampled(InKernelNegatives(40, "per_position"))),
        "per position, fp16 d 64, drawn, counted by the backward": (
            torch.float16, 64, 100, sampled(InKernelNegatives(40, "per_position")),
            {(kernel_config, "MAX_FORWARD_COUNTS"): 0}),
        "per position, fp16 d 256, hidden frozen": (torch.float16, 256, 100,
                                                    sampled(ids(64, 40, 100)), {}, False),
        "per position, fp32 d 256, compact": (torch.float32, 256, 50_000,
                                              sampled(ids(64, 40, 50_000))),
        "tile, fp16 d 64, drawn, log-Q": (torch.float16, 64, 100,
                                          sampled(InKernelNegatives(40, "tile", 16),
                                                  log_q=torch.zeros(101))),
        "tile, fp32 d 256": (torch.float32, 256, 100, sampled(ids(4, 40, 100), tile_size=16)),
        "tile 64, fp32 d 256, cuBLAS products": (torch.float32, 256, 100,
                                                 sampled(ids(1, 40, 100), tile_size=64)),
        "shared, fp32 d 256, cuBLAS products, log-Q, sampled softmax": (
            torch.float32, 256, 100, sampled(ids(1, 40, 100)[0], log_q=torch.zeros(101),
                                             sampled_softmax=True)),
        "shared, fp16 d 256": (torch.float16, 256, 100, sampled(ids(1, 40, 100)[0])),
        "shared, fp16 d 64, its own item pass": (torch.float16, 64, 100,
                                                 sampled(ids(1, 40, 100)[0]),
                                                 {(fused, "SHARED_FOLD_ATOMICS"): 0}),
        "full catalog, fp16 d 64": (torch.float16, 64, 100, cce),
        "full catalog in parts, fp16 d 64": (torch.float16, 64, 1000, cce),
        "full catalog in parts, fp16 d 64, hidden frozen": (torch.float16, 64, 1000, cce, {},
                                                            False),
        "full catalog in parts, fp16 d 256": (torch.float16, 256, 1000, cce),
        "full catalog in parts, fp32 d 64 (a hidden pass)": (torch.float32, 64, 1000, cce),
    }


def record(dtype: torch.dtype, dim: int, catalog: int, loss, constants=None,
           hidden_grad: bool = True) -> list:
    """The launches of one loss's forward and backward over 64 tokens, with module
    `constants` ({(module, name): value}) set meanwhile."""
    launches = []
    stand_ins = {(module, name): Recorder(getattr(module, name), launches)
                 for module, names in LAUNCHERS.items() for name in names}
    stand_ins.update(constants or {})
    stand_ins[fused, "_cpu_refusal"] = lambda: None  # CPU tensors, as under the interpreter
    saved = {key: getattr(*key) for key in stand_ins}
    try:
        for (module, name), value in stand_ins.items():
            setattr(module, name, value)
        hidden = torch.randn(64, dim, dtype=dtype, requires_grad=hidden_grad)
        emb = torch.randn(catalog + 1, dim, dtype=dtype, requires_grad=True)
        loss(hidden, emb, torch.randint(1, catalog + 1, (64,))).backward()
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)
    return launches


def compile_launch(kernel, args: tuple, kwargs: dict):
    """`kernel` compiled for TARGET as launched with `args` and settings `kwargs`."""
    names = kernel.arg_names
    options = {key: kwargs[key] for key in ("num_warps", "num_stages") if key in kwargs}
    values = dict(zip(names, args, strict=False))
    values.update({key: value for key, value in kwargs.items() if key not in options})
    signature, constexprs, attrs = {}, {}, {}
    for index, (name, param) in enumerate(zip(names, kernel.params, strict=True)):
        value = values[name]
        specialized = not param.do_not_specialize
        one = type(value) is int and value == 1  # Triton makes a 1 a constant
        if index in kernel.constexprs or (specialized and one):
            signature[name], constexprs[(index,)] = "constexpr", value
        elif isinstance(value, torch.Tensor):
            signature[name] = "*" + TRITON_TYPES[value.dtype]
            if value.data_ptr() % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
        elif isinstance(value, bool):
            signature[name] = "u1"
        elif isinstance(value, float):
            signature[name] = "fp32"
        else:
            signature[name] = "i32" if -2**31 <= value < 2**31 else "i64"
            if specialized and value % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
    return triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=TARGET,
                          options=options)


def compile_all() -> list[tuple[str, str, object]]:
    """(loss, kernel name, compiled kernel) of every distinct launch of `losses()`."""
    compiled, seen = [], set()
    for label, case in losses().items():
        for kernel, args, kwargs in record(*case):
            key = (kernel.fn.__name__, repr(sorted(kwargs.items())),
                   tuple(str(a.dtype) if isinstance(a, torch.Tensor) else type(a).__name__
                         for a in args))
            if key not in seen:
                seen.add(key)
                compiled.append((label, kernel.fn.__name__, compile_launch(kernel, args, kwargs)))
    return compiled


def registers(compiled) -> str:
    """ptxas's registers and spills line for a compiled kernel (Triton's own ptxas)."""
    with tempfile.TemporaryDirectory() as folder:
        ptx = Path(folder) / "kernel.ptx"
        ptx.write_text(compiled.asm["ptx"])
        out = subprocess.run([get_ptxas(TARGET.arch).path, "-v", "--gpu-name=sm_90a", str(ptx),
                              "-o", os.devnull], capture_output=True, text=True).stderr
    return "; ".join(line.split("info    : ")[-1] for line in out.splitlines()
                     if "registers" in line or "spill" in line)


if __name__ == "__main__":
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("run without TRITON_INTERPRET=1: the interpreter's kernels do not compile")
    for label, name, kernel in compile_all():
        print(f"{label} | {name} | {registers(kernel)}")
