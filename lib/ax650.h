/* ax650: what the AX650 backend (ax650.c), the ax-llm model format (fmt_axllm.c) and the
 * simulated runtimes of the tests (t/sim/ax650) share.
 *
 * The vendor API subset below is declared by us from the public API descriptions
 * (ax_engine_api.h and ax_sys_api.h v1.45 of the AX650N
 * BSP, axcl_rt_*.h of axcl-runtime V3.10.2); no vendor header is copied. Field order
 * and widths follow those descriptions; the reserved tails keep the sizes the SDK
 * expects. Only what the backend calls is here. */
#ifndef AX650_H
#define AX650_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* ---- AX engine (libax_engine.so) and AX sys (libax_sys.so), on the board ---- */
typedef void *ax_handle;  /* AX_ENGINE_HANDLE */
typedef void *ax_context; /* AX_ENGINE_CONTEXT_T */

typedef struct { /* AX_ENGINE_NPU_ATTR_T */
    int32_t eHardMode; /* AX_ENGINE_VIRTUAL_NPU_DISABLE = 0 */
    uint32_t reserve[8];
} ax_npu_attr;

typedef struct { /* AX_ENGINE_IOMETA_T */
    char *pName;
    int32_t *pShape;
    uint8_t nShapeSize;
    int32_t eLayout, eMemoryType, eDataType;
    void *pExtraMeta;
    uint32_t nSize;
    uint32_t nQuantizationValue;
    int32_t *pStride;
    uint64_t u64Reserved[9];
} ax_iometa;

typedef struct { /* AX_ENGINE_IO_INFO_T */
    ax_iometa *pInputs;
    uint32_t nInputSize;
    ax_iometa *pOutputs;
    uint32_t nOutputSize;
    uint32_t nMaxBatchSize;
    int32_t bDynamicBatchSize;
    uint64_t u64Reserved[11];
} ax_io_info;

typedef struct { /* AX_ENGINE_IO_BUFFER_T */
    uint64_t phyAddr;
    void *pVirAddr;
    uint32_t nSize;
    int32_t *pStride;
    uint8_t nStrideSize;
    uint64_t u64Reserved[11];
} ax_io_buffer;

typedef struct { /* AX_ENGINE_IO_T */
    ax_io_buffer *pInputs;
    uint32_t nInputSize;
    ax_io_buffer *pOutputs;
    uint32_t nOutputSize;
    uint32_t nBatchSize;
    void *pIoSetting;
    uint32_t nParallelRun;
    uint64_t u64Reserved[10];
} ax_io;

/* AX_ENGINE_DATA_TYPE_T codes the sim reports (bf16 is 9 in newer SDKs only [unconfirmed];
 * the backend checks element sizes through nSize, not these codes) */
enum { AX_DT_UINT16 = 2, AX_DT_UINT32 = 7, AX_DT_BF16 = 9 };

typedef const char *ax_engine_version_fn(void);
typedef int32_t ax_engine_init_fn(ax_npu_attr *attr);
typedef int32_t ax_engine_deinit_fn(void);
typedef int32_t ax_create_handle_fn(ax_handle *h, const void *data, uint32_t size);
typedef int32_t ax_destroy_handle_fn(ax_handle h);
typedef int32_t ax_create_context_fn(ax_handle h);
typedef int32_t ax_create_context_v2_fn(ax_handle h, ax_context *ctx);
typedef int32_t ax_group_count_fn(ax_handle h, uint32_t *count);
typedef int32_t ax_group_info_fn(ax_handle h, uint32_t group, ax_io_info **info);
typedef int32_t ax_run_group_fn(ax_handle h, ax_context ctx, uint32_t group, ax_io *io);
typedef int32_t ax_sys_init_fn(void);
typedef int32_t ax_sys_deinit_fn(void);
typedef int32_t ax_mem_alloc_fn(uint64_t *phy, void **vir, uint32_t size, uint32_t align, const int8_t *token);
typedef int32_t ax_mem_free_fn(uint64_t phy, void *vir);
typedef int32_t ax_mem_cache_fn(uint64_t phy, void *vir, uint32_t size); /* flush, invalidate */

/* ---- AXCL runtime (libaxcl_rt.so), host side of an M.2 / PCIe card ---- */
typedef void *axcl_ctx;     /* axclrtContext */
typedef void *axcl_io_info; /* axclrtEngineIOInfo */
typedef void *axcl_io;      /* axclrtEngineIO */
enum { AXCL_MAX_DEVICES = 256 };
typedef struct {
    uint32_t num;
    int32_t devices[AXCL_MAX_DEVICES];
} axcl_device_list;
typedef struct {
    int32_t dimCount;
    int32_t dims[32];
} axcl_dims;
/* axclrtMemcpyKind, axclrtMemMallocPolicy, axclrtEngineDataType (BF16 = 14, UINT32 = 8) */
enum { AXCL_H2D = 1, AXCL_D2H = 2, AXCL_D2D = 3 };
enum { AXCL_MALLOC_HUGE_FIRST = 0 };
enum { AXCL_DT_UINT32 = 8, AXCL_DT_BF16 = 14 };

typedef int32_t axcl_init_fn(const char *config);
typedef int32_t axcl_finalize_fn(void);
typedef int32_t axcl_device_list_fn(axcl_device_list *l);
typedef int32_t axcl_set_device_fn(int32_t dev);
typedef int32_t axcl_create_ctx_fn(axcl_ctx *ctx, int32_t dev);
typedef int32_t axcl_destroy_ctx_fn(axcl_ctx ctx);
typedef int32_t axcl_engine_init_fn(int32_t vnpu);
typedef int32_t axcl_engine_fini_fn(void);
typedef int32_t axcl_load_file_fn(const char *path, uint64_t *model_id);
typedef int32_t axcl_unload_fn(uint64_t model_id);
typedef int32_t axcl_engine_ctx_fn(uint64_t model_id, uint64_t *ctx_id);
typedef int32_t axcl_get_io_info_fn(uint64_t model_id, axcl_io_info *info);
typedef int32_t axcl_destroy_io_info_fn(axcl_io_info info);
typedef int32_t axcl_groups_fn(axcl_io_info info, int32_t *count);
typedef uint32_t axcl_num_fn(axcl_io_info info);
typedef const char *axcl_name_fn(axcl_io_info info, uint32_t index);
typedef uint64_t axcl_size_fn(axcl_io_info info, uint32_t group, uint32_t index);
typedef int32_t axcl_dims_fn(axcl_io_info info, uint32_t group, int32_t index, axcl_dims *dims);
typedef int32_t axcl_create_io_fn(axcl_io_info info, axcl_io *io);
typedef int32_t axcl_destroy_io_fn(axcl_io io);
typedef int32_t axcl_set_buffer_fn(axcl_io io, uint32_t index, const void *dev, uint64_t size);
typedef int32_t axcl_execute_fn(uint64_t model_id, uint64_t ctx_id, uint32_t group, axcl_io io);
typedef int32_t axcl_malloc_fn(void **dev, size_t size, int32_t policy);
typedef int32_t axcl_free_fn(void *dev);
typedef int32_t axcl_memcpy_fn(void *dst, const void *src, size_t n, int32_t kind);

/* ---- the per-layer axmodels' IO contract (reference notes §2.5) ---- */
#define AX_MASK_BLOCKED 0xC780u /* bf16(-65536.0): "do not attend"; 0 = attend */

/* Where an ax-llm model directory keeps its files (its config.json, axllm-era keys). */
typedef struct {
    char layer_tmpl[PATH_MAX]; /* dir/template_filename_axmodel: one %d, the layer */
    char post[PATH_MAX];       /* dir/filename_post_axmodel */
    char embed[PATH_MAX];      /* dir/filename_tokens_embed: raw bf16 [vocab][hidden] */
    char post_config[PATH_MAX];/* dir/post_config.json (sampling), "" if absent */
    int n_layers;              /* axmodel_num */
    long vocab, hidden;        /* tokens_embed_num, tokens_embed_size */
} axllm_files;

/* Read dir/config.json as ax-llm's axllm-era config (template_filename_axmodel, axmodel_num,
 * filename_post_axmodel, filename_tokens_embed, tokens_embed_num, tokens_embed_size;
 * paths relative to dir). -1 with err naming the field. */
int axllm_files_read(const char *dir, axllm_files *f, char *err, size_t errlen);
/* The path of layer l's axmodel: layer_tmpl with its %d (the last one: the directory part
 * may hold '%' too, so the path is never a printf format) replaced by l. */
void axllm_layer_path(const axllm_files *f, int l, char *out, size_t outlen);
/* 1 if m was opened from an ax-llm directory (model_open's "ax-llm" format). */
int axllm_is(const model *m);

extern const model_format fmt_axllm;

#endif
