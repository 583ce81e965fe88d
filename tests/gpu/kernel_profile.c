/* A kernel-level profile of any CUDA process, without Nsight: an injection library for the CUDA
 * driver (CUDA_INJECTION64_PATH) that records every kernel, copy and memset through CUPTI's
 * activity API and, at exit, writes one line per kernel name, the slowest first:
 *
 *     total_ms <TAB> calls <TAB> name
 *
 * to $SCFNET_KERNEL_PROFILE (default kernel-profile.tsv). libcupti.so.13 is loaded at run time
 * from the library path (PyTorch's cu13 wheels bring it), so the library links against nothing
 * but libc. Built by tests/gpu/build_kernel_profile.sh against the headers of the pinned
 * nvidia-cuda-cupti wheel; used by tests/gpu/check.sh.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cupti_activity.h>

typedef CUptiResult (*register_fn)(CUpti_BuffersCallbackRequestFunc, CUpti_BuffersCallbackCompleteFunc);
typedef CUptiResult (*enable_fn)(CUpti_ActivityKind);
typedef CUptiResult (*next_fn)(uint8_t*, size_t, CUpti_Activity**);
typedef CUptiResult (*flush_fn)(uint32_t);

static next_fn next_record;
static flush_fn flush_all;

#define SLOTS 8192
struct entry {
    char* name;
    double ns;
    unsigned long calls;
};
static struct entry table[SLOTS];

static void add(const char* name, double ns) {
    if (!name) name = "(unnamed)";
    unsigned long h = 1469598103934665603ul;
    for (const char* c = name; *c; ++c) h = (h ^ (unsigned char)*c) * 1099511628211ul;
    for (unsigned long i = 0; i < SLOTS; ++i) {
        struct entry* e = &table[(h + i) % SLOTS];
        if (!e->name) {
            e->name = strdup(name);
            if (!e->name) return;
        }
        if (strcmp(e->name, name) == 0) {
            e->ns += ns;
            e->calls += 1;
            return;
        }
    }
}

static void CUPTIAPI requested(uint8_t** buffer, size_t* size, size_t* max_records) {
    *size = 8u << 20;
    *buffer = aligned_alloc(8, *size);
    *max_records = 0;
}

static void CUPTIAPI completed(CUcontext ctx, uint32_t stream, uint8_t* buffer, size_t size,
                               size_t valid) {
    (void)ctx;
    (void)stream;
    (void)size;
    CUpti_Activity* record = NULL;
    while (next_record(buffer, valid, &record) == CUPTI_SUCCESS) {
        switch (record->kind) {
            case CUPTI_ACTIVITY_KIND_KERNEL:
            case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
                CUpti_ActivityKernel10* k = (CUpti_ActivityKernel10*)record;
                add(k->name, (double)(k->end - k->start));
                break;
            }
            case CUPTI_ACTIVITY_KIND_MEMCPY: {
                CUpti_ActivityMemcpy6* m = (CUpti_ActivityMemcpy6*)record;
                const char* what = m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_HTOD   ? "[memcpy host to device]"
                                   : m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOH ? "[memcpy device to host]"
                                   : m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOD ? "[memcpy device to device]"
                                                                                    : "[memcpy other]";
                add(what, (double)(m->end - m->start));
                break;
            }
            case CUPTI_ACTIVITY_KIND_MEMSET: {
                CUpti_ActivityMemset4* m = (CUpti_ActivityMemset4*)record;
                add("[memset]", (double)(m->end - m->start));
                break;
            }
            default:
                break;
        }
    }
    free(buffer);
}

static int slower(const void* a, const void* b) {
    double x = ((const struct entry*)a)->ns, y = ((const struct entry*)b)->ns;
    return (x < y) - (x > y);
}

static void write_profile(void) {
    if (flush_all) flush_all(1);
    const char* path = getenv("SCFNET_KERNEL_PROFILE");
    FILE* f = fopen(path && *path ? path : "kernel-profile.tsv", "w");
    if (!f) return;
    qsort(table, SLOTS, sizeof table[0], slower);
    for (unsigned long i = 0; i < SLOTS && table[i].name; ++i)
        fprintf(f, "%.3f\t%lu\t%.160s\n", table[i].ns / 1e6, table[i].calls, table[i].name);
    fclose(f);
}

/* Called by the CUDA driver once, at cuInit, when CUDA_INJECTION64_PATH names this library. */
int InitializeInjection(void) {
    void* cupti = dlopen("libcupti.so.13", RTLD_NOW | RTLD_GLOBAL);
    if (!cupti) {
        fprintf(stderr, "kernel_profile: %s\n", dlerror());
        return 0;
    }
    register_fn reg = (register_fn)dlsym(cupti, "cuptiActivityRegisterCallbacks");
    enable_fn enable = (enable_fn)dlsym(cupti, "cuptiActivityEnable");
    next_record = (next_fn)dlsym(cupti, "cuptiActivityGetNextRecord");
    flush_all = (flush_fn)dlsym(cupti, "cuptiActivityFlushAll");
    if (!reg || !enable || !next_record || !flush_all) {
        fprintf(stderr, "kernel_profile: libcupti.so.13 lacks the activity API\n");
        return 0;
    }
    if (reg(requested, completed) != CUPTI_SUCCESS ||
        enable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
        fprintf(stderr, "kernel_profile: CUPTI refused the kernel activity\n");
        return 0;
    }
    enable(CUPTI_ACTIVITY_KIND_MEMCPY);
    enable(CUPTI_ACTIVITY_KIND_MEMSET);
    atexit(write_profile);
    return 1;
}
