#!/usr/bin/env python3
"""scripts/check-deploy.py — the deployment files checked offline (part of
scripts/check-static.sh, so of CI): every Kubernetes manifest in docker/k8s
against Kubernetes' schema (the kubernetes-validate package, strict: unknown
fields are errors) for the oldest and newest versions we support, the KEDA
objects against KEDA's CRD schemas (vendored in docker/k8s/schemas, strict
the same way) and the kafka trigger's metadata against KEDA's own parameter
list, and then the rules that tie the manifests to the worker config they
carry:

- KEDA scales to zero when the lag is zero and never past the topic's
  partition count; it reads the group, topic, brokers and credentials the
  worker uses, and counts lag from the same offset reset;
- the Deployment's probes point at /healthz (startup, liveness) and /readyz
  (readiness) on the worker's http.listen port, with thresholds that fit the
  worker's own graces (health.*), and its grace period (plus any preStop)
  outlasts the worker's longest stop (worker.drain_timeout_ms ...);
- compose's stop_grace_period the same for docker/kinfer.conf.

Config values are read with regular expressions (the keys named here);
`kinfer check-config` validates the whole files (check-static.sh).
Prints one line per problem; exit status 1 when there is any.
"""
import copy
import json
import os
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

# KINFER_CHECK_DEPLOY_ROOT: a copy of the repository's docker/ to check
# instead (tests/integration/test_deploy_checks.py breaks copies on purpose).
ROOT = Path(os.environ.get("KINFER_CHECK_DEPLOY_ROOT") or Path(__file__).resolve().parents[1])
K8S = ROOT / "docker" / "k8s"
SCHEMAS = K8S / "schemas"
# The oldest Kubernetes still commonly run (managed offerings' extended
# support) and the newest whose schema kubernetes-validate ships.
K8S_VERSIONS = ("1.29.0", "1.37.0")
# worker_loop.c: flush waits max(drain_timeout_ms, 5 s), the last delivery
# reports up to 2 s, handing back the assignment up to 10 s.
FLUSH_MIN_S, REPORTS_S, RELEASE_S = 5, 2, 10

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


# ---- the worker config ---------------------------------------------------------------------

DEFAULTS = {"drain_timeout_ms": 10000, "broker_grace_ms": 15000, "probe_interval_ms": 2000,
            "group": "kinfer"}


def conf_values(text):
    """The keys these checks need, from libconfig text (comments stripped)."""
    text = re.sub(r"(#|//).*", "", text)
    out = dict(DEFAULTS)
    for key in ("drain_timeout_ms", "broker_grace_ms", "probe_interval_ms",
                "startup_auth_timeout_ms"):
        m = re.search(rf"\b{key}\s*=\s*(\d+)", text)
        if m:
            out[key] = int(m.group(1))
    for key in ("brokers", "group", "listen"):
        m = re.search(rf"\b{key}\s*=\s*\"([^\"]*)\"", text)
        if m:
            out[key] = m.group(1)
    m = re.search(r"\btopics\s*=\s*\[([^\]]*)\]", text)
    out["topics"] = re.findall(r"\"([^\"]+)\"", m.group(1)) if m else ["inference.requests"]
    props = {}
    for m in re.finditer(r"\b(?:properties|consumer_properties|producer_properties)\s*=\s*[\[(]([^\])]*)[\])]",
                         text):
        for kv in re.findall(r"\"([^\"]+)\"", m.group(1)):
            k, _, v = kv.partition("=")
            props[k] = v
    out["properties"] = props
    return out


def stop_budget_s(conf):
    drain = conf["drain_timeout_ms"] / 1000
    return drain + max(drain, FLUSH_MIN_S) + REPORTS_S + RELEASE_S


# ---- schemas ---------------------------------------------------------------------------------


def strict(schema):
    """An OpenAPI v3 schema from a CRD made strict like `kubectl --validate=strict`:
    an object with listed properties takes no others (unless it says so)."""
    s = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(s)
    return s


def crd_schemas():
    """{(apiVersion, kind): strict openAPIV3Schema} of the vendored KEDA CRDs."""
    out = {}
    for f in sorted(SCHEMAS.glob("*.yaml")):
        crd = yaml.safe_load(f.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            out[(f"{group}/{v['name']}", kind)] = strict(v["schema"]["openAPIV3Schema"])
    return out


DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def validate_docs():
    """Every document of docker/k8s/*.yaml against its schema; returns them by kind."""
    crds = crd_schemas()
    trigger = json.loads((SCHEMAS / "keda-kafka-trigger.json").read_text())
    by_kind = {}
    for f in sorted(K8S.glob("*.yaml")):
        rel = f.relative_to(ROOT)
        for i, doc in enumerate(d for d in yaml.safe_load_all(f.read_text()) if d is not None):
            where = f"{rel} [{i}] {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            by_kind.setdefault(doc.get("kind"), []).append((where, doc))
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key in crds:
                validator = jsonschema.Draft7Validator(crds[key])
                for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                    problem(where, f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}")
                name = doc.get("metadata", {}).get("name", "")
                if not DNS1123.match(name):
                    problem(where, f"metadata.name {name!r} is not a DNS-1123 name")
                for t in doc.get("spec", {}).get("triggers", []):
                    if t.get("type") != "kafka":
                        continue
                    for e in jsonschema.Draft7Validator(trigger).iter_errors(t.get("metadata", {})):
                        problem(where, f"kafka trigger metadata: {e.message}")
                for ref in doc.get("spec", {}).get("secretTargetRef", []):
                    if ref.get("parameter") not in trigger["x-kinfer-auth-params"]:
                        problem(where, f"secretTargetRef parameter {ref.get('parameter')!r} is not "
                                       "one the kafka scaler reads")
                continue
            if key[0] and key[0].split("/")[0].endswith(".sh"):
                problem(where, f"no vendored schema for {key} (docker/k8s/schemas/README.md)")
                continue
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    problem(where, f"Kubernetes {version}: {'/'.join(map(str, e.path))}: {e.message}")
                except (kubernetes_validate.SchemaNotFoundError,
                        kubernetes_validate.InvalidSchemaError) as e:
                    problem(where, f"Kubernetes {version}: {e}")
    return by_kind


# ---- the rules -----------------------------------------------------------------------------------


def one(by_kind, kind):
    docs = by_kind.get(kind, [])
    if len(docs) != 1:
        problem("docker/k8s", f"expected one {kind}, found {len(docs)}")
        return None, {}
    return docs[0]


def probe_port(container, probe):
    port = probe.get("httpGet", {}).get("port")
    if isinstance(port, str):
        named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
        return named[0] if named else None
    return port


def check_deployment(by_kind, conf):
    where, dep = one(by_kind, "Deployment")
    if not dep:
        return None
    spec = dep["spec"]["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "kinfer"] or [spec["containers"][0]]
    listen_port = int(conf.get("listen", ":9464").rsplit(":", 1)[1])
    want = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    probes = {}
    for name, path in want.items():
        p = container.get(name)
        if not p:
            problem(where, f"{name} missing")
            continue
        probes[name] = p
        if p.get("httpGet", {}).get("path") != path:
            problem(where, f"{name} must GET {path} (has {p.get('httpGet', {}).get('path')})")
        if probe_port(container, p) != listen_port:
            problem(where, f"{name} port is not http.listen's {listen_port}")
    r, l, s = (probes.get(k, {}) for k in ("readinessProbe", "livenessProbe", "startupProbe"))
    period = lambda p: p.get("periodSeconds", 10)  # noqa: E731  Kubernetes' defaults
    failures = lambda p: p.get("failureThreshold", 3)  # noqa: E731
    grace_s = conf["broker_grace_ms"] / 1000
    if r and period(r) * failures(r) > grace_s:
        problem(where, f"readinessProbe waits {period(r) * failures(r)} s on top of "
                       f"health.broker_grace_ms ({grace_s:g} s), which /readyz already waited")
    if r and r.get("timeoutSeconds", 1) * 1000 < 1000:
        problem(where, "readinessProbe timeoutSeconds below 1 s")
    if l and failures(l) < 2:
        problem(where, "livenessProbe failureThreshold < 2: one slow answer would restart the worker")
    if s and period(s) * failures(s) < 60:
        problem(where, "startupProbe allows under 60 s for loading the models")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    pre = container.get("lifecycle", {}).get("preStop", {})
    sleep = pre.get("sleep", {}).get("seconds", 0)
    cmd = " ".join(pre.get("exec", {}).get("command", []))
    m = re.search(r"\bsleep\s+(\d+)", cmd)
    sleep += int(m.group(1)) if m else 0
    budget = stop_budget_s(conf)
    if grace - sleep <= budget:
        problem(where, f"terminationGracePeriodSeconds {grace} (minus preStop {sleep} s) does not "
                       f"outlast the worker's longest stop, {budget:g} s (drain_timeout_ms "
                       f"{conf['drain_timeout_ms']} + flush + reports + release)")
    # ${file:...} references and ssl.*.location read files the pod mounts.
    mounts = {v["mountPath"]: v["name"] for v in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    secret_keys = {}
    for key, value in conf["properties"].items():
        paths = re.findall(r"\$\{file:([^}]+)\}", value) + (
            [value] if key.endswith(".location") and value.startswith("/") else [])
        for path in paths:
            d = str(Path(path).parent)
            vol = volumes.get(mounts.get(d, ""))
            if not vol:
                problem(where, f"{key} reads {path}, but nothing is mounted at {d}")
            elif "secret" in vol:
                secret_keys.setdefault(vol["secret"]["secretName"], set()).add(Path(path).name)
    return {"name": dep["metadata"]["name"], "secret_keys": secret_keys}


def check_keda(by_kind, conf, deployment):
    where, so = one(by_kind, "ScaledObject")
    if not so:
        return
    spec = so["spec"]
    if spec.get("minReplicaCount", 0) != 0:
        problem(where, "minReplicaCount must be 0: no workers while there is no lag")
    parts = so["metadata"].get("annotations", {}).get("kinfer.io/request-topic-partitions")
    if not parts or not parts.isdigit():
        problem(where, "annotation kinfer.io/request-topic-partitions (the topic's partitions) missing")
    elif spec.get("maxReplicaCount", 100) > int(parts):
        problem(where, f"maxReplicaCount {spec.get('maxReplicaCount')} exceeds the topic's {parts} "
                       "partitions: the extra workers would idle")
    if deployment and spec.get("scaleTargetRef", {}).get("name") != deployment["name"]:
        problem(where, "scaleTargetRef does not name the Deployment")
    triggers = [t for t in spec.get("triggers", []) if t.get("type") == "kafka"]
    if len(triggers) != 1:
        problem(where, "expected one kafka trigger")
        return
    t = triggers[0]
    md = t.get("metadata", {})
    if md.get("activationLagThreshold", "0") != "0":
        problem(where, "activationLagThreshold must be 0: scale to zero exactly when the lag is zero")
    if md.get("allowIdleConsumers", "false") != "false":
        problem(where, "allowIdleConsumers must be false: it lets replicas exceed the partitions")
    if md.get("offsetResetPolicy", "latest") != "earliest":
        problem(where, "offsetResetPolicy must be earliest: the workers read an uncommitted "
                       "partition from its start (auto.offset.reset = earliest)")
    if md.get("consumerGroup") != conf["group"]:
        problem(where, f"consumerGroup {md.get('consumerGroup')!r} is not kafka.group {conf['group']!r}")
    if md.get("topic") not in conf["topics"]:
        problem(where, f"topic {md.get('topic')!r} is not one of kafka.topics {conf['topics']}")
    if md.get("bootstrapServers") != conf.get("brokers"):
        problem(where, f"bootstrapServers {md.get('bootstrapServers')!r} is not kafka.brokers "
                       f"{conf.get('brokers')!r}")
    proto = conf["properties"].get("security.protocol", "PLAINTEXT").upper()
    mech = conf["properties"].get("sasl.mechanism", "").upper().replace("-", "_").replace("SHA_", "SHA")
    want_tls = "enable" if proto in ("SSL", "SASL_SSL") else "disable"
    if md.get("tls", "disable") != want_tls:
        problem(where, f"tls must be {want_tls} for security.protocol {proto}")
    if proto.startswith("SASL") and md.get("sasl", "none") != mech.lower():
        problem(where, f"sasl must be {mech.lower()} for sasl.mechanism "
                       f"{conf['properties'].get('sasl.mechanism')}")
    auth = t.get("authenticationRef", {}).get("name")
    auths = {d["metadata"]["name"]: (w, d) for w, d in by_kind.get("TriggerAuthentication", [])}
    if proto.startswith("SASL") and auth not in auths:
        problem(where, f"authenticationRef {auth!r} names no TriggerAuthentication in docker/k8s")
    elif auth in auths and deployment:
        w, ta = auths[auth]
        for ref in ta["spec"].get("secretTargetRef", []):
            keys = deployment["secret_keys"].get(ref["name"])
            if keys is None:
                problem(w, f"reads Secret {ref['name']!r}, which the workers do not mount")
            elif ref["key"] not in keys:
                problem(w, f"reads key {ref['key']!r} of Secret {ref['name']!r}, which the worker "
                           f"config does not read (it reads {sorted(keys)})")


def check_compose():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    conf = conf_values((ROOT / "docker" / "kinfer.conf").read_text())
    svc = compose["services"]["kinfer"]
    m = re.fullmatch(r"(\d+)s", str(svc.get("stop_grace_period", "10s")))
    grace = int(m.group(1)) if m else 10
    if grace <= stop_budget_s(conf):
        problem("docker/compose.yaml", f"kinfer stop_grace_period {grace}s does not outlast the "
                                       f"worker's longest stop, {stop_budget_s(conf):g} s")


def main():
    by_kind = validate_docs()
    cms = [d for _, d in by_kind.get("ConfigMap", []) if "kinfer.conf" in d.get("data", {})]
    if len(cms) != 1:
        problem("docker/k8s", "expected one ConfigMap with kinfer.conf")
        conf = dict(DEFAULTS, topics=[], properties={})
    else:
        conf = conf_values(cms[0]["data"]["kinfer.conf"])
    deployment = check_deployment(by_kind, conf)
    check_keda(by_kind, conf, deployment)
    check_compose()
    for p in problems:
        print(f"check-deploy: {p}")
    if not problems:
        n = sum(len(v) for v in by_kind.values())
        print(f"check-deploy: {n} Kubernetes documents valid (Kubernetes {', '.join(K8S_VERSIONS)}, "
              "KEDA CRDs), probes, grace periods and KEDA trigger consistent with the worker config")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
