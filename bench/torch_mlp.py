#!/usr/bin/env python3
"""bench/torch_mlp.py — the same MLP and batch sizes as
bench/bench_kernels_gpu_mlp.c, in PyTorch on the same GPU, so
tests/gpu/run.sh can print kinfer/PyTorch ratios.

Two timings per (precision, batch):
  e2e: host FP32 [B, in] (pinned) -> GPU -> cast -> model -> FP32 -> host,
       synchronised: what kinfer's replica does per batch (host to host).
  dev: the model alone on a device-resident input, timed with CUDA events.
Weights are random U(-1,1)/sqrt(in) (never zeros). Prints RESULT lines:
  RESULT impl=torch_e2e|torch_dev device=cuda:0 precision=.. dims=.. batch=..
         median_us=.. rows_per_s=..
Without torch or a GPU: says SKIPPED and exits 0. Not a test.
"""
import argparse
import copy
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", default="256,1024,1024,16")
    ap.add_argument("--act", default="relu", choices=["relu", "gelu", "tanh", "sigmoid"])
    ap.add_argument("--precisions", default="fp32,fp16,bf16")
    ap.add_argument("--batches", default="1,8,64,256,1024")
    ap.add_argument("--min-ms", type=int, default=300)
    ap.add_argument("--device", default="cuda:0")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("*** torch_mlp.py: SKIPPED: PyTorch is not installed ***")
        return 0
    if not torch.cuda.is_available():
        print("*** torch_mlp.py: SKIPPED: no CUDA device visible to PyTorch ***")
        return 0
    # Same FP32 rules as kinfer's FP32 path: no TF32 in matmuls.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)
    dims = [int(d) for d in a.dims.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    acts = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh,
            "sigmoid": torch.nn.Sigmoid}
    gen = torch.Generator().manual_seed(1234)
    layers = []
    for i in range(len(dims) - 1):
        lin = torch.nn.Linear(dims[i], dims[i + 1])
        with torch.no_grad():
            lin.weight.copy_((torch.rand(lin.weight.shape, generator=gen) * 2 - 1) / dims[i] ** 0.5)
            lin.bias.copy_((torch.rand(lin.bias.shape, generator=gen) * 2 - 1) * 0.1)
        layers.append(lin)
        if i + 2 < len(dims):
            layers.append(acts[a.act]())
    base = torch.nn.Sequential(*layers).eval()
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    name = torch.cuda.get_device_name(dev)
    dims_text = "-".join(str(d) for d in dims)
    print(f"torch_mlp.py: device {a.device} ({name}), torch {torch.__version__}, mlp {dims_text} "
          f"{a.act}/none, median of >= {a.min_ms} ms")
    print(f"{'impl':10} {'precision':9} {'batch':>6} {'median_us':>11} {'rows_per_s':>13}")
    results = []
    for p in a.precisions.split(","):
        dt = dtypes[p]
        model = copy.deepcopy(base).to(dev, dtype=dt)
        for b in batches:
            x_host = (torch.rand(b, dims[0], generator=gen) * 2 - 1).pin_memory()
            out_host = torch.empty(b, dims[-1], dtype=torch.float32).pin_memory()

            def e2e():
                with torch.inference_mode():
                    x = x_host.to(dev, non_blocking=True).to(dt)
                    y = model(x).float()
                    out_host.copy_(y, non_blocking=True)
                    torch.cuda.current_stream(dev).synchronize()

            for _ in range(20):
                e2e()
            lat = []
            t_end = time.perf_counter() + a.min_ms / 1000
            while time.perf_counter() < t_end or len(lat) < 20:
                t0 = time.perf_counter()
                e2e()
                lat.append((time.perf_counter() - t0) * 1e6)
            med = statistics.median(lat)
            results.append(("torch_e2e", p, b, med))

            x_dev = x_host.to(dev).to(dt)
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            with torch.inference_mode():
                for _ in range(20):
                    model(x_dev)
                dl = []
                t_end = time.perf_counter() + a.min_ms / 1000
                while time.perf_counter() < t_end or len(dl) < 20:
                    start.record()
                    model(x_dev)
                    stop.record()
                    stop.synchronize()
                    dl.append(start.elapsed_time(stop) * 1000.0)
            results.append(("torch_dev", p, b, statistics.median(dl)))
    for impl, p, b, med in results:
        print(f"{impl:10} {p:9} {b:6d} {med:11.1f} {b * 1e6 / med:13.0f}")
    for impl, p, b, med in results:
        print(f"RESULT impl={impl} device={a.device} precision={p} dims={dims_text} batch={b} "
              f"median_us={med:.1f} rows_per_s={b * 1e6 / med:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
