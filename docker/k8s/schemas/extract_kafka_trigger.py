#!/usr/bin/env python3
"""Writes keda-kafka-trigger.json (beside this file) from KEDA's kafka scaler.

Usage: extract_kafka_trigger.py MODULE_DIR — the unpacked Go module
github.com/kedacore/keda/v2 at the version README.md pins (`go mod download
-json github.com/kedacore/keda/v2@VERSION` prints its "Dir"). Reads the `keda:`
struct tags of kafkaMetadata in pkg/scalers/kafka_scaler.go: the parameters a
trigger's metadata may carry (with their enums, booleans and integers) and
those a TriggerAuthentication may give. Not run in CI: CI reads the JSON.
"""
import json
import re
import sys
from pathlib import Path

src = (Path(sys.argv[1]) / "pkg" / "scalers" / "kafka_scaler.go").read_text()
version = sys.argv[2] if len(sys.argv) > 2 else "v2.21.0"
body = re.search(r"type kafkaMetadata struct \{(.*?)\n\}", src, re.S).group(1)
meta, auth = {}, []
for gotype, tag in re.findall(r"^\s*\w+\s+(\S+)\s+`keda:\"([^\"]+)\"`", body, re.M):
    parts = dict(p.split("=", 1) if "=" in p else (p, True) for p in tag.split(","))
    name, order = parts["name"], parts["order"].split(";")
    prop = {"type": "string"}
    if "enum" in parts:
        prop["enum"] = parts["enum"].split(";")
    elif gotype == "bool":
        prop["enum"] = ["true", "false"]
    elif gotype in ("int64", "int32", "int"):
        prop["pattern"] = "^[0-9]+$"
    if "default" in parts:
        prop["default"] = parts["default"]
    if "triggerMetadata" in order:
        meta[name] = prop
    if "authParams" in order:
        auth.append(name)
schema = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$comment": ("The trigger metadata and authentication parameters of KEDA's `kafka` scaler, "
                 "from the `keda:` struct tags of kafkaMetadata in pkg/scalers/kafka_scaler.go of "
                 f"the Go module github.com/kedacore/keda/v2 {version} (the same module version as "
                 "keda.sh_scaledobjects.yaml beside this file; see README.md here). Values are "
                 "strings in a ScaledObject. Written by extract_kafka_trigger.py."),
    "title": f"KEDA kafka trigger metadata ({version})",
    "type": "object",
    "properties": meta,
    "required": [n for n in ("bootstrapServers", "consumerGroup") if n in meta],
    "additionalProperties": False,
    "x-kinfer-auth-params": sorted(auth),
}
(Path(__file__).parent / "keda-kafka-trigger.json").write_text(json.dumps(schema, indent=2) + "\n")
