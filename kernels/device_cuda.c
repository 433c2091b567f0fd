/* device_cuda.c — how many CUDA devices this process sees, asked of the
 * runtime once and cached (kinfer_cuda_device_count in device.c returns
 * it). A machine with no GPU or no driver reports 0, logged once with the
 * runtime's reason so a "cuda:0 not present" start-up error is explained. */
#include <pthread.h>

#include <cuda_runtime_api.h>

#include "backend.h"
#include "kinfer/kinfer_log.h"

static pthread_once_t count_once = PTHREAD_ONCE_INIT;
static int device_count;

static void count_devices(void) {
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        KINFER_LOGW("cuda.no_device", "call=cudaGetDeviceCount status=%s reason=\"%s\"",
                    cudaGetErrorName(rc), cudaGetErrorString(rc));
        (void)cudaGetLastError(); /* clear it so later calls do not see it */
        n = 0;
    }
    device_count = n;
}

int kinfer_cuda_backend_device_count(void) {
    pthread_once(&count_once, count_devices);
    return device_count;
}
