"""scripts/kafka/probe.py CLIENT_PROPERTIES — does the secured test broker answer?

scripts/kafka.sh's readiness check for SASL brokers: exit 0 when a metadata
request, made with the file's librdkafka properties (the client user's), lists
exactly one broker; 1 otherwise. Not kcat: Debian 12's kcat runs on
librdkafka 2.0.2, whose SCRAM login Kafka 4.x rejects (librdkafka #4895, fixed
in 2.6.1); confluent-kafka (requirements-test.txt) bundles a current one.
"""

import logging
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient


def read_properties(path):
    props = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, sep, value = line.partition("=")
                if not sep:
                    raise SystemExit(f"{path}: not key=value: {line!r}")
                props[key.strip()] = value.strip()
    return props


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: probe.py CLIENT_PROPERTIES")
    quiet = logging.getLogger("kinfer.kafka.probe")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    admin = AdminClient(read_properties(sys.argv[1]), logger=quiet)
    try:
        md = admin.list_topics(timeout=2)
    except KafkaException:
        return 1
    return 0 if len(md.brokers) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
