"""Bad numeric options of `kinfer worker`, `kinfer send` and `kinfer bench`
get a clear error naming the option and exit status 2 (usage error), before
any connection is tried: garbage never silently becomes 0. Needs only the
binary, no broker (the brokers named below are never contacted)."""

import subprocess

import pytest

BASE = {
    "bench": ["bench", "-b", "127.0.0.1:1", "-t", "t", "-m", "m"],
    "send": ["send", "-b", "127.0.0.1:1", "-t", "t", "-m", "m", "--input", "1,2"],
    "send-gen": ["send", "-b", "127.0.0.1:1", "-t", "t", "-m", "m", "--prompt", "hi"],
    "worker": ["worker", "--embedded-kafka"],
}

INT = "expected an integer between {} and {}, got '{}'"
MS = "expected milliseconds between {} and {} (e.g. 1500, 1500ms or 1.5s), got '{}'"

CASES = [
    ("bench", "rate", "abc", INT.format(0, 10000000, "abc")),
    ("bench", "rate", "12x", INT.format(0, 10000000, "12x")),
    ("bench", "rate", "10000001", INT.format(0, 10000000, "10000001")),
    ("bench", "count", "-5", INT.format(1, 1000000000, "-5")),
    ("bench", "count", "", INT.format(1, 1000000000, "")),
    ("bench", "concurrency", "0", INT.format(1, 10000000, "0")),
    ("bench", "bytes", "2", INT.format(4, 1 << 30, "2")),
    ("bench", "warmup", "-1", INT.format(0, 10000000, "-1")),
    ("bench", "grace", "soon", MS.format(1, 86400000, "soon")),
    ("bench", "deadline-ms", "1e99", MS.format(1, 86400000, "1e99")),
    ("bench", "duration", "inf", "expected seconds between 0.001 and 31536000, got 'inf'"),
    ("bench", "duration", "10s", "expected seconds between 0.001 and 31536000, got '10s'"),
    ("send", "deadline-ms", "x", MS.format(-31536000000, 31536000000, "x")),
    ("send", "timeout", "1e99", MS.format(1, 86400000, "1e99")),
    ("send", "timeout", "0", MS.format(1, 86400000, "0")),
    ("send", "priority", "9999999999", INT.format(-2147483648, 2147483647, "9999999999")),
    ("send", "priority", "high", INT.format(-2147483648, 2147483647, "high")),
    ("send-gen", "max-tokens", "0", INT.format(1, 2147483647, "0")),
    ("send-gen", "top-k", "-1", INT.format(0, 2147483647, "-1")),
    ("send-gen", "top-logprobs", "21", INT.format(0, 20, "21")),
    ("send-gen", "seed", "lucky", INT.format(-9223372036854775808, 9223372036854775807, "lucky")),
    ("send-gen", "temperature", "3", "expected a number between 0 and 2, got '3'"),
    ("send-gen", "top-p", "x", "expected a number between 0 and 1, got 'x'"),
    ("send-gen", "presence-penalty", "-2.5", "expected a number between -2 and 2, got '-2.5'"),
    ("worker", "partitions", "0", INT.format(1, 1000, "0")),
    ("worker", "partitions", "3.5", INT.format(1, 1000, "3.5")),
    ("worker", "max-in-flight", "abc", INT.format(1, 10000000, "abc")),
    ("worker", "max-in-flight-bytes", "1k", INT.format(1024, 1 << 40, "1k")),
]


@pytest.mark.parametrize("cmd,opt,value,why", CASES,
                         ids=[f"{c}--{o}={v}" for c, o, v, _ in CASES])
def test_bad_numeric_option_is_a_usage_error(kinfer_bin, cmd, opt, value, why):
    r = subprocess.run([str(kinfer_bin), *BASE[cmd], f"--{opt}", value], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, (r.returncode, r.stderr, r.stdout)
    # Log lines may come first (`worker` logs its OpenBLAS check on a host
    # where it re-executes itself, cli/blas_guard.c); the error is the rest.
    err = "\n".join(l for l in r.stderr.splitlines() if not l.startswith("ts="))
    assert err.strip() == f"kinfer {cmd.split('-')[0]}: --{opt}: {why}", r.stderr
    assert r.stdout == ""


def test_good_values_pass_the_parser(kinfer_bin):
    """The same options with good values are accepted: `send` then fails
    only for want of a broker (exit 3, not 2)."""
    r = subprocess.run([str(kinfer_bin), *BASE["send"], "--priority", "-3", "--deadline-ms",
                        "1.5s", "--timeout", "300ms", "-X", "socket.connection.setup.timeout.ms=1000"],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "expected" not in r.stderr


def test_a_refused_librdkafka_property_is_a_usage_error(kinfer_bin):
    """-X that librdkafka refuses (here below its range) is a usage error
    (exit 2) naming the property, as is a file property naming no file."""
    r = subprocess.run([str(kinfer_bin), *BASE["send"], "-X", "socket.connection.setup.timeout.ms=200"],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "-X socket.connection.setup.timeout.ms=200: " in r.stderr and "allowed range" in r.stderr
    r = subprocess.run([str(kinfer_bin), *BASE["send"], "-X", "ssl.ca.location=/no/such/ca.pem"],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "-X ssl.ca.location: cannot read /no/such/ca.pem: No such file or directory" in r.stderr


@pytest.mark.parametrize("args,why", [
    (["--chat", "no colon here"], "kinfer send: --chat #1 wants ROLE:CONTENT (e.g. 'user:Hello'), got 'no colon here'"),
    (["--chat", "[{\"role\": 1}]"], "kinfer send: --chat: message 0 needs string \"role\" and \"content\" (at most 64 messages)"),
    (["--prompt", "a", "--chat", "user:b"], "kinfer send: give --prompt or --chat, not both"),
    (["--input", "1,2", "--max-tokens", "3"], "kinfer send: generation options go with --prompt or --chat"),
    (["--prompt", "a", "--input", "1,2"], "kinfer send: give exactly one of --text (repeatable), --input, --input-file, --random, --prompt, --chat (repeatable)"),
])
def test_bad_generation_usage(kinfer_bin, args, why):
    r = subprocess.run([str(kinfer_bin), "send", "-b", "127.0.0.1:1", "-t", "t", "-m", "m", *args],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip() == why
