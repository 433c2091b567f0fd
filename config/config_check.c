/* config_check.c — checks of single string values named in the property
 * table (topic names, listen addresses, devices, "key=value" pairs), the
 * librdkafka keys kinfer owns, and the edit distance behind "did you mean".
 * Not the walk over the file nor cross-key rules: see config_load.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_table.h"
#include "kinfer/kinfer_device.h"

bool kinfer_config_check_nonempty(const char *value, char *why, size_t whylen) {
    if (value[0])
        return true;
    snprintf(why, whylen, "must not be empty");
    return false;
}

/* Text that goes to librdkafka or into logs: printable ASCII only, so a
 * stray control or binary byte fails here rather than at connect time. */
bool kinfer_config_check_printable(const char *value, char *why, size_t whylen) {
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < 0x20 || *p > 0x7e) {
            snprintf(why, whylen, "only printable ASCII is allowed (found byte 0x%02x)", *p);
            return false;
        }
    return true;
}

bool kinfer_config_check_group(const char *value, char *why, size_t whylen) {
    return kinfer_config_check_nonempty(value, why, whylen) &&
           kinfer_config_check_printable(value, why, whylen);
}

/* Kafka's rule: 1..249 of [A-Za-z0-9._-], and not "." or "..". */
static bool topic_name_ok(const char *value, size_t len, char *why, size_t whylen) {
    if (len == 0 || len > 249) {
        snprintf(why, whylen, "a topic name has 1 to 249 characters (got %zu)", len);
        return false;
    }
    if ((len == 1 && value[0] == '.') || (len == 2 && value[0] == '.' && value[1] == '.')) {
        snprintf(why, whylen, "\".\" and \"..\" are not valid topic names");
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
            snprintf(why, whylen,
                     "a topic name has only letters, digits, '.', '_' and '-' (found '%c')",
                     isprint(c) ? c : '?');
            return false;
        }
    }
    return true;
}

bool kinfer_config_check_topic(const char *value, char *why, size_t whylen) {
    return topic_name_ok(value, strlen(value), why, whylen);
}

/* librdkafka treats a subscription starting with "^" as a regex and any
 * other string as a literal topic: without the "^" the pattern would
 * silently subscribe to a topic literally named like the regex. */
bool kinfer_config_check_topic_pattern(const char *value, char *why, size_t whylen) {
    if (value[0] != '^') {
        snprintf(why, whylen,
                 "a topic pattern must start with '^' (librdkafka takes anything "
                 "else as a literal topic name)");
        return false;
    }
    if (!value[1]) {
        snprintf(why, whylen,
                 "the pattern \"^\" alone matches every topic; write \"^.*\" if "
                 "that is really meant");
        return false;
    }
    return true;
}

/* A topic name in which "{topic}" stands for the request topic. The check
 * substitutes a one-character topic, so the length bound is approximate
 * (the real name is checked again when the worker forms it). */
bool kinfer_config_check_topic_template(const char *value, char *why, size_t whylen) {
    char buf[512];
    size_t n = 0;
    for (const char *p = value; *p;) {
        if (!strncmp(p, "{topic}", 7)) {
            if (n + 1 >= sizeof(buf))
                break;
            buf[n++] = 't';
            p += 7;
            continue;
        }
        if (*p == '{' || *p == '}') {
            snprintf(why, whylen, "the only placeholder is {topic}");
            return false;
        }
        if (n + 1 >= sizeof(buf))
            break;
        buf[n++] = *p++;
    }
    buf[n] = '\0';
    return topic_name_ok(buf, strlen(value) > sizeof(buf) - 2 ? 250 : n, why, whylen);
}

bool kinfer_config_check_listen(const char *value, char *why, size_t whylen) {
    if (!value[0])
        return true; /* disabled */
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value) {
        snprintf(why, whylen, "expected \"host:port\" or \"\" to disable");
        return false;
    }
    if (value[0] == '[' && colon[-1] != ']') {
        snprintf(why, whylen, "an IPv6 host is written in brackets: \"[::1]:9464\"");
        return false;
    }
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!isdigit((unsigned char)colon[1]) || *end || port < 1 || port > 65535) {
        snprintf(why, whylen, "the port must be a number from 1 to 65535");
        return false;
    }
    for (const char *p = value; p < colon; p++)
        if (isspace((unsigned char)*p)) {
            snprintf(why, whylen, "the host must not contain spaces");
            return false;
        }
    return true;
}

/* An http(s) base URL without credentials (they have keys of their own, so
 * that a URL can be logged) and without spaces. */
bool kinfer_config_check_url(const char *value, char *why, size_t whylen) {
    const char *rest = !strncmp(value, "http://", 7)    ? value + 7
                       : !strncmp(value, "https://", 8) ? value + 8
                                                        : NULL;
    if (!rest || !*rest || *rest == '/') {
        snprintf(why, whylen, "expected an http:// or https:// URL with a host");
        return false;
    }
    for (const char *p = value; *p; p++)
        if (isspace((unsigned char)*p) || (unsigned char)*p < 0x20) {
            snprintf(why, whylen, "the URL must not contain spaces or control characters");
            return false;
        }
    const char *slash = strchr(rest, '/');
    const char *at = strchr(rest, '@');
    if (at && (!slash || at < slash)) {
        snprintf(why, whylen,
                 "credentials do not go in the URL: use kafka.schema_registry_user and "
                 "kafka.schema_registry_password");
        return false;
    }
    return true;
}

/* Names that end up in metric labels, log lines and Kafka ids. */
bool kinfer_config_check_identifier(const char *value, char *why, size_t whylen) {
    size_t len = strlen(value);
    if (len == 0 || len > 200) {
        snprintf(why, whylen, "must have 1 to 200 characters (got %zu)", len);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
            snprintf(why, whylen, "only letters, digits, '.', '_' and '-' are allowed (found '%c')",
                     isprint(c) ? c : '?');
            return false;
        }
    }
    return true;
}

/* The engine's own parser decides (one spelling, one range); the message
 * says the accepted forms without repeating the value (the caller adds it). */
bool kinfer_config_check_device(const char *value, char *why, size_t whylen) {
    kinfer_device dev;
    if (kinfer_device_parse(value, &dev, NULL) == KINFER_OK)
        return true;
    snprintf(why, whylen, "a device is \"cpu\" or \"cuda:N\" with N from 0 to %d",
             KINFER_DEVICE_MAX_INDEX);
    return false;
}

bool kinfer_config_check_header(const char *value, char *why, size_t whylen) {
    if (!value[0]) {
        snprintf(why, whylen, "a header name must not be empty");
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (!isgraph(*p)) {
            snprintf(why, whylen, "a header name has no spaces or control characters");
            return false;
        }
    return true;
}

bool kinfer_config_check_kv(const char *value, char *why, size_t whylen) {
    const char *eq = strchr(value, '=');
    if (!eq || eq == value) {
        snprintf(why, whylen, "expected \"key=value\" (a librdkafka property)");
        return false;
    }
    for (const char *p = value; p < eq; p++) {
        unsigned char c = (unsigned char)*p;
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
            snprintf(why, whylen, "a property name has only letters, digits, '.', '_' and '-'");
            return false;
        }
    }
    char key[128];
    size_t klen = (size_t)(eq - value);
    if (klen >= sizeof(key)) {
        snprintf(why, whylen, "property name too long");
        return false;
    }
    memcpy(key, value, klen);
    key[klen] = '\0';
    const char *instead = kinfer_config_reserved_rdkafka_key(key);
    if (instead) {
        snprintf(why, whylen, "\"%s\" is set by kinfer; use %s", key, instead);
        return false;
    }
    return true;
}

/* Setting these behind kinfer's back would break its delivery guarantees
 * or contradict another key of this file. */
const char *kinfer_config_reserved_rdkafka_key(const char *key) {
    static const struct {
        const char *key;
        const char *instead;
    } reserved[] = {
        {"bootstrap.servers", "kafka.brokers"},
        {"metadata.broker.list", "kafka.brokers"},
        {"group.id", "kafka.group"},
        {"group.instance.id", "kafka.group_instance_id"},
        {"partition.assignment.strategy", "kafka.assignment_strategy"},
        {"group.protocol", "kafka.group_protocol"},
        {"transactional.id", "kafka.transactional_id_prefix"},
        {"enable.auto.commit", "delivery (kinfer commits offsets itself)"},
        {"enable.auto.offset.store", "delivery (kinfer stores offsets itself)"},
        {"auto.commit.interval.ms", "kafka.commit_interval_ms"},
    };
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (!strcmp(key, reserved[i].key))
            return reserved[i].instead;
    return NULL;
}

/* Optimal-string-alignment distance: insertions, deletions, substitutions
 * and swaps of neighbours ("mpl" -> "mlp" is 1), the usual typos. */
size_t kinfer_config_edit_distance(const char *a, const char *b, size_t cap) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64 || (la > lb ? la - lb : lb - la) > cap)
        return cap + 1;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb] > cap ? cap + 1 : d[la][lb];
}
