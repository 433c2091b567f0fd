/* worker_handoff.c — the bounded FIFO between record finishers and the
 * producer thread (see worker_handoff.h). */
#include "worker_handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

kinfer_err kinfer_worker_handoff_init(kinfer_worker_handoff *h, kinfer_error *err) {
    memset(h, 0, sizeof *h);
    if (pipe2(h->fd, O_NONBLOCK | O_CLOEXEC) != 0)
        return kinfer_error_set(err, KINFER_ERR_IO, "hand-off wake pipe: %s", strerror(errno));
    pthread_mutex_init(&h->lock, NULL);
    h->init = 1;
    return KINFER_OK;
}

void kinfer_worker_handoff_destroy(kinfer_worker_handoff *h) {
    if (!h->init)
        return;
    close(h->fd[0]);
    close(h->fd[1]);
    pthread_mutex_destroy(&h->lock);
    memset(h, 0, sizeof *h);
}

static void counted_add(kinfer_worker_handoff *h, const kinfer_worker_handoff_node *node) {
    size_t n = atomic_load_explicit(&h->n, memory_order_relaxed) + 1;
    atomic_store_explicit(&h->n, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->bytes, node->bytes, memory_order_relaxed);
    if (n > atomic_load_explicit(&h->peak, memory_order_relaxed))
        atomic_store_explicit(&h->peak, n, memory_order_relaxed);
}

void kinfer_worker_handoff_push(kinfer_worker_handoff *h, kinfer_worker_handoff_node *node) {
    node->next = NULL;
    pthread_mutex_lock(&h->lock);
    bool was_empty = !h->head;
    if (h->tail)
        h->tail->next = node;
    else
        h->head = node;
    h->tail = node;
    counted_add(h, node);
    pthread_mutex_unlock(&h->lock);
    /* The consumer drains until empty before it waits again, so one byte
     * per empty-to-non-empty edge is enough. */
    if (was_empty)
        kinfer_worker_handoff_wake(h);
}

void kinfer_worker_handoff_push_front(kinfer_worker_handoff *h, kinfer_worker_handoff_node *node) {
    pthread_mutex_lock(&h->lock);
    node->next = h->head;
    h->head = node;
    if (!h->tail)
        h->tail = node;
    counted_add(h, node);
    pthread_mutex_unlock(&h->lock);
}

kinfer_worker_handoff_node *kinfer_worker_handoff_pop(kinfer_worker_handoff *h) {
    pthread_mutex_lock(&h->lock);
    kinfer_worker_handoff_node *node = h->head;
    if (node) {
        h->head = node->next;
        if (!h->head)
            h->tail = NULL;
        node->next = NULL;
        atomic_fetch_sub_explicit(&h->n, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&h->bytes, node->bytes, memory_order_relaxed);
    }
    pthread_mutex_unlock(&h->lock);
    return node;
}

size_t kinfer_worker_handoff_len(const kinfer_worker_handoff *h, size_t *bytes) {
    kinfer_worker_handoff *m = (kinfer_worker_handoff *)h;
    if (bytes)
        *bytes = atomic_load_explicit(&m->bytes, memory_order_relaxed);
    return atomic_load_explicit(&m->n, memory_order_relaxed);
}

size_t kinfer_worker_handoff_peak(const kinfer_worker_handoff *h) {
    return atomic_load_explicit(&((kinfer_worker_handoff *)h)->peak, memory_order_relaxed);
}

int kinfer_worker_handoff_fd(const kinfer_worker_handoff *h) {
    return h->fd[0];
}

void kinfer_worker_handoff_wake(kinfer_worker_handoff *h) {
    /* A full pipe already wakes the reader: EAGAIN is fine. */
    ssize_t n = write(h->fd[1], "w", 1);
    (void)n;
}

void kinfer_worker_handoff_clear_wake(kinfer_worker_handoff *h) {
    char buf[256];
    while (read(h->fd[0], buf, sizeof buf) > 0) {
    }
}
