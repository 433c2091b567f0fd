/* test_cuda_nodevice.c — the CUDA backend on a machine WITHOUT a GPU (CI,
 * laptops): the runtime loads and reports no device without crashing, and
 * a replica on "cuda:0" fails at creation with KINFER_ERR_DEVICE naming the
 * device (so the engine can fall back to "cpu" when the config lists it).
 * In a build without the CUDA backend the same call names the missing
 * backend. On a GPU machine this test skips (exit 77): test_cuda_mlp covers
 * the device there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kinfer/kinfer_model.h"
#include "test_cuda_util.h"
#include "test_mlp_util.h"

static void test_cuda0_fails_cleanly(void **state) {
    (void)state;
    char *dir = tu_tempdir();
    assert_non_null(dir);
    uint32_t dims[3] = {5, 7, 2};
    tu_mlp m;
    tu_mlp_random(&m, dims, 2, 9, KINFER_DTYPE_FP32);
    char path[600];
    snprintf(path, sizeof(path), "%s/m.safetensors", dir);
    assert_int_equal(tu_mlp_write(&m, path, KINFER_DTYPE_FP32, "relu", "none"), KINFER_OK);
    kinfer_model_options o = {.name = "t", .kind = "mlp", .path = path, .precision = "fp16"};
    kinfer_model *model = NULL;
    kinfer_error err;
    assert_int_equal(kinfer_model_load(&o, &model, &err), KINFER_OK);

    /* Twice: the cached device count must not turn into a crash later. */
    for (int i = 0; i < 2; i++) {
        kinfer_replica *r = (kinfer_replica *)&err; /* must be reset to NULL */
        kinfer_err rc = kinfer_replica_new(model, "cuda:0", 16, &r, &err);
        assert_int_equal(rc, KINFER_ERR_DEVICE);
        assert_null(r);
        fprintf(stderr, "expected error: %s\n", err.msg);
        assert_non_null(strstr(err.msg, "cuda:0"));
        assert_non_null(strstr(err.msg, kinfer_cuda_built() ? "not present" : "no CUDA backend"));
    }
    /* The CPU replica of the same model still works. */
    kinfer_replica *cpu = NULL;
    assert_int_equal(kinfer_replica_new(model, "cpu", 16, &cpu, &err), KINFER_OK);
    kinfer_replica_destroy(cpu);
    kinfer_model_destroy(model);
    tu_mlp_free(&m);
    tu_rmdir(dir);
}

static void test_device_count_zero(void **state) {
    (void)state;
    assert_int_equal(kinfer_cuda_device_count(), 0);
    assert_int_equal(kinfer_cuda_device_count(), 0);
#ifdef KINFER_HAVE_CUDA
    assert_true(kinfer_cuda_built());
#else
    assert_false(kinfer_cuda_built());
#endif
}

int main(void) {
    if (kinfer_cuda_built() && kinfer_cuda_device_count() > 0) {
        fprintf(stderr, "\n*** test_cuda_nodevice: SKIPPED: a CUDA device is present (this test "
                        "checks the no-GPU path) ***\n\n");
        return TC_SKIP;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_count_zero),
        cmocka_unit_test(test_cuda0_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
