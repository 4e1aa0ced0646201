/* insn: a QEMU TCG plugin that counts the guest instructions a program executes, for the
 * README's figure of aarch64 instructions per token (t/qemu/insn.sh). Debian's
 * qemu-user is built with plugin support but ships no plugins, so this is the few lines
 * of QEMU's example "insn" plugin that matter: at translation each block gets an inline
 * add of its instruction count, run every time the block executes; the total goes to
 * stderr at exit. The inline add is not atomic: count single-threaded programs (-t 1).
 *
 * The plugin API is declared here from QEMU's documentation (docs/devel/tcg-plugins.rst,
 * the C API of QEMU 7.2, plugin version 1), not copied from its header. Build:
 *   cc -shared -fPIC -O2 -o insn.so t/qemu/insn.c
 *   qemu-aarch64 -plugin ./insn.so prog ...    =>    "insn: N" on stderr */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t; /* unused: only passed through */
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

/* QEMU refuses a plugin that does not say which API version it was written against. */
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t count;

static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &count, qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *p) {
    (void)id, (void)p;
    char line[64];
    snprintf(line, sizeof line, "insn: %" PRIu64 "\n", count);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
    (void)info, (void)argc, (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
