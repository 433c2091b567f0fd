#!/usr/bin/env python3
"""make_test_models.py — writes the tiny models committed under models/.

models/example_mlp.safetensors: a fraud-scoring-like MLP, 8 -> 16 -> 1,
relu hidden layer, sigmoid output, fixed seed. Written with the reference
`safetensors` package (numpy flavour), so loading it in the C unit tests
cross-checks our parser against the reference writer. Deterministic: the
same numpy gives the same bytes; re-run only when changing the model.

Usage: python3 scripts/make_test_models.py [--out-dir models]
"""
import argparse
import os

import numpy as np
from safetensors.numpy import save_file


def example_mlp(rng):
    """8 features (amount, age, hour, ...) -> 16 hidden -> 1 fraud score."""
    dims = [8, 16, 1]
    tensors = {}
    for i in range(len(dims) - 1):
        fan_in, fan_out = dims[i], dims[i + 1]
        bound = 1.0 / np.sqrt(fan_in)  # nn.Linear's default init range
        tensors[f"layers.{i}.weight"] = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(
            np.float32)
        tensors[f"layers.{i}.bias"] = rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)
    metadata = {
        "activation": "relu",
        "output_activation": "sigmoid",
        "description": "kinfer example fraud-scoring MLP 8-16-1 (random weights, seed 20261128)",
    }
    return tensors, metadata


def reference_forward(tensors, x):
    """numpy forward pass of example_mlp, for documentation and checks."""
    h = np.maximum(x @ tensors["layers.0.weight"].T + tensors["layers.0.bias"], 0.0)
    z = h @ tensors["layers.1.weight"].T + tensors["layers.1.bias"]
    return 1.0 / (1.0 + np.exp(-z))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "..", "models"))
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(20261128)
    tensors, metadata = example_mlp(rng)
    path = os.path.join(args.out_dir, "example_mlp.safetensors")
    save_file(tensors, path, metadata=metadata)
    x = np.arange(8, dtype=np.float32)[None, :] / 8.0
    print(f"wrote {path} ({os.path.getsize(path)} bytes); "
          f"score([0, 0.125, ..., 0.875]) = {reference_forward(tensors, x)[0, 0]:.9f}")


if __name__ == "__main__":
    main()
