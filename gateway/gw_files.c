/* gw_files.c — /v1/files storage: the bytes of file <id> in <dir>/<id> and
 * its OpenAI file object in <dir>/<id>.json, each written to a temporary
 * name and renamed, so a reader (any gateway sharing the directory) sees a
 * whole file or none. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"

void gw_new_id(const char *prefix, char *buf, size_t cap) {
    unsigned char r[12] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, r, sizeof r) != (ssize_t)sizeof r) {
        /* no urandom: time and address bits still make a collision unlikely */
        uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)buf;
        memcpy(r, &t, sizeof t);
    }
    if (fd >= 0)
        close(fd);
    size_t n = (size_t)snprintf(buf, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof r && n + 2 < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%02x", r[i]);
}

/* ids are ours: a prefix and hex (nothing that walks out of the dir). */
static bool valid_id(const char *id) {
    if (strncmp(id, "file-", 5) || strlen(id) > 64)
        return false;
    for (const char *p = id + 5; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return id[5] != '\0';
}

bool gw_files_path(const char *dir, const char *id, char *buf, size_t cap) {
    if (!valid_id(id))
        return false;
    snprintf(buf, cap, "%s/%s", dir, id);
    return true;
}

static kinfer_err write_atomic(const char *path, const void *data, size_t len, kinfer_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return kinfer_error_set(err, KINFER_ERR_IO, "create %s: %s", tmp, strerror(errno));
    bool ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return kinfer_error_set(err, KINFER_ERR_IO, "write %s: %s", path, strerror(errno));
    }
    return KINFER_OK;
}

static json_t *file_object(const char *id, uint64_t bytes, const char *filename,
                           const char *purpose) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "object", json_string("file"));
    json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(o, "created_at", json_integer((json_int_t)time(NULL)));
    json_t *fn = json_string(filename);
    json_object_set_new(o, "filename", fn ? fn : json_string("upload"));
    json_object_set_new(o, "purpose", json_string(purpose));
    json_object_set_new(o, "status", json_string("processed"));
    json_object_set_new(o, "status_details", json_null());
    return o;
}

static kinfer_err save_meta(const char *dir, const char *id, json_t *o, kinfer_error *err) {
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.json", dir, id);
    kinfer_err rc = write_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

kinfer_err gw_files_create(const char *dir, const char *filename, const char *purpose,
                           const void *data, size_t len, json_t **out, kinfer_error *err) {
    char id[64], path[4200];
    gw_new_id("file-", id, sizeof id);
    snprintf(path, sizeof path, "%s/%s", dir, id);
    kinfer_err rc = write_atomic(path, data, len, err);
    if (rc != KINFER_OK)
        return rc;
    json_t *o = file_object(id, len, filename, purpose);
    if ((rc = save_meta(dir, id, o, err)) != KINFER_OK) {
        json_decref(o);
        unlink(path);
        return rc;
    }
    *out = o;
    return KINFER_OK;
}

kinfer_err gw_files_adopt(const char *dir, const char *src, const char *filename,
                          const char *purpose, json_t **out, kinfer_error *err) {
    char id[64], path[4200];
    gw_new_id("file-", id, sizeof id);
    snprintf(path, sizeof path, "%s/%s", dir, id);
    struct stat sb;
    if (stat(src, &sb) != 0 || link(src, path) != 0)
        return kinfer_error_set(err, KINFER_ERR_IO, "adopt %s: %s", src, strerror(errno));
    json_t *o = file_object(id, (uint64_t)sb.st_size, filename, purpose);
    kinfer_err rc = save_meta(dir, id, o, err);
    if (rc != KINFER_OK) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return KINFER_OK;
}

json_t *gw_files_get(const char *dir, const char *id) {
    if (!valid_id(id))
        return NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.json", dir, id);
    return json_load_file(path, 0, NULL);
}

static int by_created_desc(const void *a, const void *b) {
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t tx = json_integer_value(json_object_get(x, "created_at"));
    json_int_t ty = json_integer_value(json_object_get(y, "created_at"));
    return tx < ty ? 1 : tx > ty ? -1 : 0;
}

json_t *gw_files_list(const char *dir, const char *purpose) {
    json_t *data = json_array();
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") || strncmp(e->d_name, "file-", 5))
            continue;
        char id[80];
        snprintf(id, sizeof id, "%.*s", (int)(n - 5), e->d_name);
        json_t *o = gw_files_get(dir, id);
        const char *p = o ? json_string_value(json_object_get(o, "purpose")) : NULL;
        if (o && (!purpose || (p && !strcmp(p, purpose))))
            json_array_append_new(data, o);
        else if (o)
            json_decref(o);
    }
    if (d)
        closedir(d);
    size_t n = json_array_size(data);
    json_t **v = malloc((n ? n : 1) * sizeof(*v));
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_incref(json_array_get(data, i));
    if (v)
        qsort(v, n, sizeof(*v), by_created_desc);
    json_t *sorted = json_array();
    for (size_t i = 0; v && i < n; i++)
        json_array_append_new(sorted, v[i]);
    free(v);
    json_decref(data);
    json_t *list = json_object();
    json_object_set_new(list, "object", json_string("list"));
    json_object_set_new(list, "data", sorted);
    json_object_set_new(list, "has_more", json_false());
    return list;
}

bool gw_files_delete(const char *dir, const char *id) {
    if (!valid_id(id))
        return false;
    char meta[4200], data[4200];
    snprintf(meta, sizeof meta, "%s/%s.json", dir, id);
    snprintf(data, sizeof data, "%s/%s", dir, id);
    if (unlink(meta) != 0)
        return false; /* the object goes first: a reader sees the file or none */
    unlink(data);
    return true;
}
