"""`kinfer worker` and OpenBLAS's generic kernels (cli/blas_guard.c): on a
CPU with AVX2/AVX-512, a worker whose OpenBLAS picked the generic SSE3
"Prescott" kernels re-executes itself with OPENBLAS_CORETYPE set and says
so; when that cannot help it refuses to start, unless the operator allows
generic kernels explicitly. The problem is forced with
OPENBLAS_CORETYPE=Prescott. Needs only the binary (`worker --help` starts
nothing)."""

import os
import re
import subprocess

import pytest

# Independent of the Kafka client and broker: run once (scripts/test.sh, present only).
pytestmark = pytest.mark.standalone


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


FLAGS = cpu_flags()
AVX512 = {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512cd"} <= FLAGS
BETTER = "SkylakeX" if AVX512 else ("Haswell" if {"avx2", "fma"} <= FLAGS else None)
needs_better = pytest.mark.skipif(
    BETTER is None, reason="SKIPPED: this CPU has no AVX2: OpenBLAS's generic kernels are its best")


def run(kinfer_bin, **env):
    e = {k: v for k, v in os.environ.items()
         if k not in ("OPENBLAS_CORETYPE", "KINFER_BLAS_REEXEC", "KINFER_ALLOW_GENERIC_BLAS")}
    e.update(env)
    return subprocess.run([str(kinfer_bin), "worker", "--help"], capture_output=True, text=True,
                          timeout=30, env=e, stdin=subprocess.DEVNULL)


@needs_better
def test_generic_kernels_are_replaced_by_reexec(kinfer_bin):
    r = run(kinfer_bin, OPENBLAS_CORETYPE="Prescott")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: kinfer worker")
    # The re-executed process reports the core its OpenBLAS then loaded.
    m = re.search(r"event=cpu\.openblas_core_fixed from=Prescott to=(\S+)", r.stderr)
    assert m, r.stderr
    assert m.group(1) == BETTER


@needs_better
def test_refuses_when_the_fix_did_not_take(kinfer_bin):
    # As if the re-exec had happened and OpenBLAS still ran Prescott.
    r = run(kinfer_bin, OPENBLAS_CORETYPE="Prescott", KINFER_BLAS_REEXEC="Prescott")
    assert r.returncode == 1
    assert "generic 'Prescott' kernels" in r.stderr
    assert "KINFER_ALLOW_GENERIC_BLAS=1" in r.stderr
    assert r.stdout == ""


@needs_better
def test_explicit_override_keeps_generic_kernels(kinfer_bin):
    r = run(kinfer_bin, OPENBLAS_CORETYPE="Prescott", KINFER_ALLOW_GENERIC_BLAS="1")
    assert r.returncode == 0, r.stderr
    assert "event=cpu.openblas_generic_kept core=Prescott" in r.stderr
    assert "openblas_core_fixed" not in r.stderr


def test_good_kernels_are_left_alone(kinfer_bin):
    """With a kernel family OpenBLAS recognised (or one set by the operator
    that is not generic) nothing is re-executed or logged."""
    env = {"OPENBLAS_CORETYPE": BETTER} if BETTER else {}
    r = run(kinfer_bin, **env)
    assert r.returncode == 0, r.stderr
    assert "openblas" not in r.stderr
