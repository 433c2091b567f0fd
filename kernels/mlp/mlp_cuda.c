/* mlp_cuda.c — the CUDA backend of kind `mlp`. At creation: weights uploaded
 * once (FP32, or narrowed to FP16/BF16 for tensor-core GEMMs with FP32
 * accumulation), every device and pinned host buffer sized for max_rows,
 * and a warm-up run. Per batch: pack into pinned memory, then H2D, per
 * layer one GEMM (ops/blas_cuda.c) + the fused bias/activation kernel,
 * D2H, all async, and one event to wait on. Nothing is allocated per batch.
 *
 * Double buffering (kinfer_replica_submit/collect, max_in_flight 2): two
 * slots, each with its own stream, cuBLAS handle + workspace, pinned input
 * staging and device activations, so batch N+1 is packed and uploaded
 * while batch N computes, and neither can touch the other's buffers.
 * Results land in a ring of three pinned output buffers: the batch being
 * submitted, the one in flight, and the last collected one, whose outputs
 * the caller may still read. Not here: the CPU twin (mlp_cpu.c). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "ops/bias_act_cuda.h"
#include "ops/blas_cuda.h"
#include "ops/convert_cuda.h"
#include "kinfer/kinfer_log.h"
#include "kinfer/kinfer_device.h"
#include "mlp_model.h"
#include "ops/status_cuda.h"

/* cuBLAS workspace: NVIDIA recommends 32 MiB on Hopper; giving it one up
 * front keeps cuBLAS from allocating on the first GEMM of a new shape. One
 * per slot: two streams must not share a workspace. */
#define MLP_CUDA_WORKSPACE ((size_t)32 << 20)
#define MLP_CUDA_SLOTS 2
#define MLP_CUDA_OUTS (MLP_CUDA_SLOTS + 1)
/* Batches of at least this many rows run as two pipelined parts. */
#define MLP_CUDA_SPLIT_MIN_ROWS 256

_Static_assert(MLP_CUDA_SLOTS <= KINFER_REPLICA_MAX_IN_FLIGHT, "slots beyond the seam's ring");

/* Everything one batch in flight uses, so two batches never share a buffer. */
typedef struct mlp_cuda_slot {
    cudaStream_t stream;
    cublasHandle_t blas;
    void *d_workspace;
    float *h_x;      /* pinned [max_rows, in_width]: packed batch */
    float *d_x;      /* [max_rows, in_width] FP32: the uploaded batch */
    float *d_acc[2]; /* [max_rows, max_width] FP32: GEMM outputs, alternating */
    void *d_h[2];    /* [max_rows, max_width] ctype: narrowed layer inputs (FP16/BF16 only) */
    cudaEvent_t done;
    /* The batch in flight here (valid while the slot is in the flight ring). */
    kinfer_batch_item *items;
    size_t nitems;
    uint32_t rows; /* good rows; 0: nothing was enqueued */
    float *h_y;    /* the output buffer its D2H targets */
} mlp_cuda_slot;

typedef struct mlp_cuda_replica {
    kinfer_replica_impl base;
    const mlp_model *model;
    int dev;
    uint32_t max_rows;
    kinfer_dtype ctype; /* GEMM operand type: FP32, FP16 or BF16 */
    void *d_params;     /* one allocation: all weights (ctype) then all biases (FP32) */
    void **d_w;         /* [nlayers] into d_params, ctype [out, in] */
    float **d_b;        /* [nlayers] into d_params, FP32 [out] */
    mlp_cuda_slot slots[MLP_CUDA_SLOTS];
    float *h_y[MLP_CUDA_OUTS]; /* pinned [max_rows, out_width]: results, a ring */
    unsigned oldest;           /* slot of the oldest batch in flight */
    unsigned nflight;          /* batches in flight: slots oldest, oldest+1, ... */
    unsigned next_out;         /* h_y index the next submit writes */
} mlp_cuda_replica;

/* One layer's GEMM on the slot's stream: y = x W^T (ops/blas_cuda.h). */
static kinfer_err gemm(mlp_cuda_replica *r, mlp_cuda_slot *slot, const void *x, const void *w,
                       float *y, uint32_t rows, uint32_t in, uint32_t out, kinfer_error *err) {
    return kinfer_blas_cuda_gemm_xwt(slot->blas, r->dev, r->ctype, x, w, y, rows, out, in, err);
}

/* Enqueues H2D, the layers and D2H for rows [row0, row0 + rows) already
 * packed in slot->h_x, on the slot's stream, then records slot->done.
 * Returns without waiting. The slot's device buffers are reused from row 0
 * for every part: parts on the one stream run in order, so a later part
 * cannot overwrite an earlier part's intermediates; only the pinned host
 * rows are distinct. */
static kinfer_err slot_enqueue(mlp_cuda_replica *r, mlp_cuda_slot *slot, uint32_t row0,
                               uint32_t rows, kinfer_error *err) {
    const mlp_model *m = r->model;
    kinfer_err rc = KINFER_OK;
    int half = r->ctype != KINFER_DTYPE_FP32;
    KINFER_CUDA_GOTO(err, r->dev,
                     cudaMemcpyAsync(slot->d_x, slot->h_x + (size_t)row0 * m->in_width,
                                     (size_t)rows * m->in_width * sizeof(float),
                                     cudaMemcpyHostToDevice, slot->stream),
                     fail);
    const void *in = slot->d_x;
    if (half) {
        KINFER_CUDA_GOTO(err, r->dev,
                         kinfer_convert_f32_cuda(slot->d_x, slot->d_h[0], r->ctype,
                                                 (size_t)rows * m->in_width, slot->stream),
                         fail);
        in = slot->d_h[0];
    }
    float *y = NULL;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        const mlp_layer *layer = &m->layers[l];
        int last = l + 1 == m->nlayers;
        y = slot->d_acc[l & 1];
        rc = gemm(r, slot, in, r->d_w[l], y, rows, layer->in, layer->out, err);
        if (rc != KINFER_OK)
            goto fail;
        kinfer_activation act = m->activation;
        if (last)
            act = m->output_activation == MLP_OUT_SIGMOID ? KINFER_ACT_SIGMOID : KINFER_ACT_NONE;
        if (half && !last) {
            /* Fused: bias + activation + narrowing for the next GEMM. */
            void *next = slot->d_h[(l + 1) & 1];
            KINFER_CUDA_GOTO(err, r->dev,
                             kinfer_bias_act_to_cuda(y, r->d_b[l], rows, layer->out, act, next,
                                                     r->ctype, slot->stream),
                             fail);
            in = next;
        } else {
            KINFER_CUDA_GOTO(
                err, r->dev,
                kinfer_bias_act_cuda(y, r->d_b[l], rows, layer->out, act, slot->stream), fail);
            in = y;
        }
        if (last && m->output_activation == MLP_OUT_SOFTMAX)
            KINFER_CUDA_GOTO(err, r->dev,
                             kinfer_softmax_rows_cuda(y, rows, layer->out, slot->stream), fail);
    }
    KINFER_CUDA_GOTO(err, r->dev,
                     cudaMemcpyAsync(slot->h_y + (size_t)row0 * m->out_width, y,
                                     (size_t)rows * m->out_width * sizeof(float),
                                     cudaMemcpyDeviceToHost, slot->stream),
                     fail);
    KINFER_CUDA_GOTO(err, r->dev, cudaEventRecord(slot->done, slot->stream), fail);
    return KINFER_OK;
fail:
    return rc;
}

/* Waits for everything enqueued on the slot; also surfaces asynchronous
 * kernel faults. */
static kinfer_err slot_wait(mlp_cuda_replica *r, mlp_cuda_slot *slot, kinfer_error *err) {
    kinfer_err rc = KINFER_OK;
    KINFER_CUDA_GOTO(err, r->dev, cudaEventSynchronize(slot->done), fail);
fail:
    return rc;
}

/* Where a batch of `rows` good rows is cut in two so that the second part
 * is packed on the CPU while the GPU copies and computes the first: at the
 * item boundary nearest past half the rows. Small batches go whole (two
 * launch sequences would cost more than the packing saves). Returns the
 * item count of the first part; *rows_a its good rows. */
static size_t split_point(const kinfer_batch_item *items, size_t nitems, uint32_t rows,
                          uint32_t *rows_a) {
    *rows_a = rows;
    if (rows < MLP_CUDA_SPLIT_MIN_ROWS)
        return nitems;
    uint32_t acc = 0;
    for (size_t i = 0; i < nitems; i++) {
        if (items[i].status == KINFER_OK)
            acc += items[i].cost.rows;
        if (acc >= rows / 2) {
            if (acc == 0 || acc >= rows)
                return nitems;
            *rows_a = acc;
            return i + 1;
        }
    }
    return nitems;
}

/* Packs and enqueues a batch on the next free slot and returns: the GPU
 * works on it while the caller packs the next one. */
static kinfer_err cuda_submit(kinfer_replica_impl *impl, kinfer_batch_item *items, size_t nitems,
                              kinfer_error *err) {
    mlp_cuda_replica *r = (mlp_cuda_replica *)impl;
    const mlp_model *m = r->model;
    kinfer_err rc = KINFER_OK;
    if (r->nflight >= MLP_CUDA_SLOTS) /* the seam checks this first */
        return kinfer_error_set(err, KINFER_ERR_INTERNAL, "cuda:%d: %u batches already in flight",
                                r->dev, r->nflight);
    uint32_t rows;
    rc = mlp_batch_prepare(m, items, nitems, r->max_rows, &rows, err);
    if (rc != KINFER_OK)
        return rc;
    mlp_cuda_slot *slot = &r->slots[(r->oldest + r->nflight) % MLP_CUDA_SLOTS];
    slot->items = items;
    slot->nitems = nitems;
    slot->rows = rows;
    slot->h_y = r->h_y[r->next_out];
    if (rows > 0) {
        /* The executor thread may not be the one that created the replica. */
        KINFER_CUDA_GOTO(err, r->dev, cudaSetDevice(r->dev), fail);
        uint32_t rows_a;
        size_t split = split_point(items, nitems, rows, &rows_a);
        mlp_batch_pack(m, items, split, slot->h_x);
        rc = slot_enqueue(r, slot, 0, rows_a, err);
        if (rc == KINFER_OK && split < nitems) {
            mlp_batch_pack(m, items + split, nitems - split,
                           slot->h_x + (size_t)rows_a * m->in_width);
            rc = slot_enqueue(r, slot, rows_a, rows - rows_a, err);
        }
        if (rc != KINFER_OK)
            goto fail;
    }
    r->next_out = (r->next_out + 1) % MLP_CUDA_OUTS;
    r->nflight++;
    return KINFER_OK;
fail:
    /* Not in flight: leave the slot's stream idle so that its next batch
     * starts clean (best effort; a sticky device fault will fail that one
     * again with its own message). The other slot's batch is untouched. */
    (void)cudaStreamSynchronize(slot->stream);
    return rc;
}

/* Waits for the oldest batch in flight and points its items at their rows
 * of its output buffer, which no later submit writes before the next
 * collect (the ring has a buffer more than there are slots). */
static kinfer_err cuda_collect(kinfer_replica_impl *impl, kinfer_error *err) {
    mlp_cuda_replica *r = (mlp_cuda_replica *)impl;
    kinfer_err rc = KINFER_OK;
    if (r->nflight == 0) /* the seam checks this first */
        return kinfer_error_set(err, KINFER_ERR_INTERNAL, "cuda:%d: no batch in flight", r->dev);
    mlp_cuda_slot *slot = &r->slots[r->oldest];
    r->oldest = (r->oldest + 1) % MLP_CUDA_SLOTS;
    r->nflight--;
    if (slot->rows == 0)
        return KINFER_OK; /* every item failed its check at submit */
    KINFER_CUDA_GOTO(err, r->dev, cudaSetDevice(r->dev), fail);
    rc = slot_wait(r, slot, err);
    if (rc != KINFER_OK)
        goto fail;
    mlp_batch_set_outputs(r->model, slot->items, slot->nitems, slot->h_y);
    return KINFER_OK;
fail:
    (void)cudaStreamSynchronize(slot->stream);
    return rc;
}

static void cuda_destroy(kinfer_replica_impl *impl) {
    mlp_cuda_replica *r = (mlp_cuda_replica *)impl;
    if (!r)
        return;
    /* Teardown continues past errors: free what can be freed, after the
     * batches still in flight have finished with the buffers. */
    (void)cudaSetDevice(r->dev);
    for (int s = 0; s < MLP_CUDA_SLOTS; s++) {
        mlp_cuda_slot *slot = &r->slots[s];
        if (slot->stream)
            (void)cudaStreamSynchronize(slot->stream);
    }
    for (int s = 0; s < MLP_CUDA_SLOTS; s++) {
        mlp_cuda_slot *slot = &r->slots[s];
        if (slot->h_x)
            (void)cudaFreeHost(slot->h_x);
        if (slot->done)
            (void)cudaEventDestroy(slot->done);
        (void)cudaFree(slot->d_x);
        (void)cudaFree(slot->d_acc[0]);
        (void)cudaFree(slot->d_acc[1]);
        (void)cudaFree(slot->d_h[0]);
        (void)cudaFree(slot->d_h[1]);
        (void)cudaFree(slot->d_workspace);
        if (slot->blas)
            (void)cublasDestroy(slot->blas);
        if (slot->stream)
            (void)cudaStreamDestroy(slot->stream);
    }
    for (int o = 0; o < MLP_CUDA_OUTS; o++)
        if (r->h_y[o])
            (void)cudaFreeHost(r->h_y[o]);
    (void)cudaFree(r->d_params);
    free(r->d_w);
    free(r->d_b);
    free(r);
}

static const kinfer_replica_ops mlp_cuda_ops = {
    .backend = "cuda",
    .execute = NULL, /* the seam runs execute as submit + collect */
    .destroy = cuda_destroy,
    .submit = cuda_submit,
    .collect = cuda_collect,
    .max_in_flight = MLP_CUDA_SLOTS,
};

/* Uploads every layer's weights (narrowed to ctype on the device through a
 * staging buffer sized for the largest layer) and biases into one block. */
static kinfer_err upload_params(mlp_cuda_replica *r, kinfer_error *err) {
    const mlp_model *m = r->model;
    kinfer_err rc = KINFER_OK;
    size_t esz = kinfer_blas_cuda_type_size(r->ctype);
    size_t w_bytes = 0, b_bytes = 0, max_w = 0;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        size_t n = (size_t)m->layers[l].out * m->layers[l].in;
        w_bytes += (n * esz + 255) / 256 * 256; /* 256-byte aligned operands */
        b_bytes += ((size_t)m->layers[l].out * sizeof(float) + 255) / 256 * 256;
        if (n > max_w)
            max_w = n;
    }
    float *staging = NULL;
    cudaStream_t stream = r->slots[0].stream;
    KINFER_CUDA_GOTO(err, r->dev, cudaMalloc(&r->d_params, w_bytes + b_bytes), done);
    if (r->ctype != KINFER_DTYPE_FP32)
        KINFER_CUDA_GOTO(err, r->dev, cudaMalloc((void **)&staging, max_w * sizeof(float)), done);
    char *wp = r->d_params, *bp = (char *)r->d_params + w_bytes;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        const mlp_layer *layer = &m->layers[l];
        size_t n = (size_t)layer->out * layer->in;
        r->d_w[l] = wp;
        r->d_b[l] = (float *)bp;
        if (r->ctype == KINFER_DTYPE_FP32) {
            KINFER_CUDA_GOTO(err, r->dev,
                             cudaMemcpyAsync(wp, layer->weight, n * sizeof(float),
                                             cudaMemcpyHostToDevice, stream),
                             done);
        } else {
            KINFER_CUDA_GOTO(err, r->dev,
                             cudaMemcpyAsync(staging, layer->weight, n * sizeof(float),
                                             cudaMemcpyHostToDevice, stream),
                             done);
            KINFER_CUDA_GOTO(err, r->dev, kinfer_convert_f32_cuda(staging, wp, r->ctype, n, stream),
                             done);
        }
        KINFER_CUDA_GOTO(err, r->dev,
                         cudaMemcpyAsync(bp, layer->bias, (size_t)layer->out * sizeof(float),
                                         cudaMemcpyHostToDevice, stream),
                         done);
        /* Pageable-memory copies and one staging buffer: finish this layer
         * before the next overwrites the staging buffer. */
        KINFER_CUDA_GOTO(err, r->dev, cudaStreamSynchronize(stream), done);
        wp += (n * esz + 255) / 256 * 256;
        bp += ((size_t)layer->out * sizeof(float) + 255) / 256 * 256;
    }
done:
    if (staging)
        (void)cudaFree(staging);
    return rc;
}

/* Runs the model on zeros at 1 and max_rows rows on every slot (each has
 * its own cuBLAS handle), so that lazy module loading and cuBLAS kernel
 * selection happen now, not in the first request's latency (values are
 * discarded; timing never uses them). */
static kinfer_err warm_up(mlp_cuda_replica *r, kinfer_error *err) {
    for (int s = 0; s < MLP_CUDA_SLOTS; s++) {
        mlp_cuda_slot *slot = &r->slots[s];
        slot->h_y = r->h_y[0];
        memset(slot->h_x, 0, (size_t)r->max_rows * r->model->in_width * sizeof(float));
        uint32_t sizes[2] = {1, r->max_rows};
        for (int i = 0; i < 2; i++) {
            kinfer_err rc = slot_enqueue(r, slot, 0, sizes[i], err);
            if (rc == KINFER_OK)
                rc = slot_wait(r, slot, err);
            if (rc != KINFER_OK)
                return kinfer_error_prefix(err, "warm-up of slot %d at %u rows", s, sizes[i]);
        }
    }
    return KINFER_OK;
}

kinfer_err mlp_cuda_replica_new(const mlp_model *model, int device_index, uint32_t max_rows,
                                const char *precision, kinfer_replica_impl **out,
                                kinfer_error *err) {
    *out = NULL;
    kinfer_err rc = KINFER_OK;
    kinfer_dtype ctype;
    if (!kinfer_precision_parse(precision, &ctype))
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "cuda:%d: precision '%.16s' unknown (fp32, fp16 or bf16)",
                                device_index, precision);
    /* cuBLAS takes int dims; widths are <= MLP_MAX_WIDTH already. */
    if (max_rows == 0 || max_rows > (uint32_t)INT32_MAX)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "cuda:%d: max_rows %u out of range",
                                device_index, max_rows);
    mlp_cuda_replica *r = calloc(1, sizeof(*r));
    if (!r)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    r->base.ops = &mlp_cuda_ops;
    r->model = model;
    r->dev = device_index;
    r->max_rows = max_rows;
    r->ctype = ctype;
    r->d_w = calloc(model->nlayers, sizeof(*r->d_w));
    r->d_b = calloc(model->nlayers, sizeof(*r->d_b));
    if (!r->d_w || !r->d_b) {
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        goto fail;
    }
    KINFER_CUDA_GOTO(err, r->dev, cudaSetDevice(r->dev), fail);
    struct cudaDeviceProp prop;
    KINFER_CUDA_GOTO(err, r->dev, cudaGetDeviceProperties(&prop, r->dev), fail);
    /* The fatbin holds sm_80/sm_90 code and compute_90 PTX (KinferCuda.cmake):
     * an older GPU could run none of it; say so now, not at the first launch. */
    if (prop.major < 8) {
        rc = kinfer_error_set(err, KINFER_ERR_DEVICE,
                              "cuda:%d (%s) has compute capability %d.%d; this build has GPU code "
                              "for 8.0 and newer only (reconfigure with "
                              "-DCMAKE_CUDA_ARCHITECTURES=%d%d-real)",
                              r->dev, prop.name, prop.major, prop.minor, prop.major, prop.minor);
        goto fail;
    }
    size_t x_n = (size_t)max_rows * model->in_width;
    size_t y_n = (size_t)max_rows * model->out_width;
    size_t act_n = (size_t)max_rows * model->max_width;
    for (int s = 0; s < MLP_CUDA_SLOTS; s++) {
        mlp_cuda_slot *slot = &r->slots[s];
        KINFER_CUDA_GOTO(err, r->dev,
                         cudaStreamCreateWithFlags(&slot->stream, cudaStreamNonBlocking), fail);
        KINFER_CUDA_GOTO(err, r->dev, cudaMalloc(&slot->d_workspace, MLP_CUDA_WORKSPACE), fail);
        if ((rc = kinfer_blas_cuda_handle_new(r->dev, slot->stream, slot->d_workspace,
                                              MLP_CUDA_WORKSPACE, &slot->blas, err)) != KINFER_OK)
            goto fail;
        KINFER_CUDA_GOTO(err, r->dev, cudaMalloc((void **)&slot->d_x, x_n * sizeof(float)), fail);
        for (int i = 0; i < 2; i++) {
            KINFER_CUDA_GOTO(err, r->dev,
                             cudaMalloc((void **)&slot->d_acc[i], act_n * sizeof(float)), fail);
            if (ctype != KINFER_DTYPE_FP32)
                KINFER_CUDA_GOTO(
                    err, r->dev,
                    cudaMalloc(&slot->d_h[i], act_n * kinfer_blas_cuda_type_size(ctype)), fail);
        }
        KINFER_CUDA_GOTO(
            err, r->dev,
            cudaHostAlloc((void **)&slot->h_x, x_n * sizeof(float), cudaHostAllocDefault), fail);
        KINFER_CUDA_GOTO(err, r->dev, cudaEventCreateWithFlags(&slot->done, cudaEventDisableTiming),
                         fail);
    }
    for (int o = 0; o < MLP_CUDA_OUTS; o++)
        KINFER_CUDA_GOTO(
            err, r->dev,
            cudaHostAlloc((void **)&r->h_y[o], y_n * sizeof(float), cudaHostAllocDefault), fail);
    rc = upload_params(r, err);
    if (rc != KINFER_OK)
        goto fail;
    rc = warm_up(r, err);
    if (rc != KINFER_OK)
        goto fail;
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    KINFER_LOGI("cuda.replica_ready",
                "device=cuda:%d gpu=\"%s\" cc=%d.%d precision=%s max_rows=%u layers=%u "
                "slots=%d free_mib=%zu total_mib=%zu",
                r->dev, prop.name, prop.major, prop.minor, precision ? precision : "fp32", max_rows,
                model->nlayers, MLP_CUDA_SLOTS, free_b >> 20, total_b >> 20);
    *out = &r->base;
    return KINFER_OK;
fail:
    cuda_destroy(&r->base);
    return rc;
}
