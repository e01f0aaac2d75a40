"""CPU numerics: the kernel code paths and the thread count that make a training step bit-exact on another CPU.

Measured on torch 2.13 (MKL 2024.2, oneDNN 3.12), ten steps of a 2-layer GPT: the float32
weights differ bit for bit between 1, 2 and 4 threads (ATen splits its parallel reductions by
thread), between ATen's AVX512, AVX2 and DEFAULT kernels (vectors of other widths sum in another
order), between oneDNN's AVX512 and AVX2 paths, and with MKL_CBWR=COMPATIBLE. So CPU training
pins a portable profile before torch runs a kernel, and the transcript records it with the
thread count; a replay sets exactly those, whatever the auditor's CPU would pick:

    ATEN_CPU_CAPABILITY=avx2   ATen's vectorized kernels: AVX2, which every x86-64 CPU since 2013
                               (Intel Haswell, AMD Excavator/Zen) has, rather than the widest found
    ONEDNN_MAX_CPU_ISA=AVX2    oneDNN's JIT kernels capped at the same ISA
    MKL_CBWR=AVX2,STRICT       MKL's conditional numerical reproducibility: the AVX2 code path on
                               every CPU that has it, and results that do not depend on the number
                               of threads (STRICT)

Variables the user set are left alone (and recorded as they are); MODELREG_PIN_NUMERICS=0 sets
none, so that a replay's child process computes with exactly the recorded ones.
"""

import os

PROFILE = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2,STRICT"}
_RECORDED = {"onednn_max_cpu_isa": "ONEDNN_MAX_CPU_ISA", "mkl_cbwr": "MKL_CBWR"}


def pin() -> None:
    """Set the portable profile, for the variables not set already. Effective before torch's first kernel."""
    if os.environ.get("MODELREG_PIN_NUMERICS") == "0":
        return
    for name, value in PROFILE.items():
        os.environ.setdefault(name, value)


def current() -> dict:
    """The numerics this process trains with: what a transcript records."""
    import torch

    recorded = {key: os.environ.get(var) for key, var in _RECORDED.items()}
    return {"aten_cpu_capability": torch.backends.cpu.get_cpu_capability().lower(), **recorded,
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def environment(numerics: dict, base: dict) -> dict:
    """`base` (an environment) changed so that a new process computes with `numerics`."""
    env = dict(base)
    env["ATEN_CPU_CAPABILITY"] = numerics["aten_cpu_capability"]
    for key, var in _RECORDED.items():
        if numerics.get(key) is None:
            env.pop(var, None)  # recorded unset: the library detects, as it did in training
        else:
            env[var] = numerics[key]
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(numerics["threads"])
    env["MODELREG_PIN_NUMERICS"] = "0"
    return env


def matches(numerics: dict) -> bool:
    """Whether this process already computes with `numerics`, the thread count aside (that one can be set)."""
    here = current()
    return all(here[k] == numerics.get(k) for k in ("aten_cpu_capability", *_RECORDED, "torch"))
