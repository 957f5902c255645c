/* tests/core/loader/fake_small.c — a descriptor that stops after its first two fields: the host
 * must see the size and read nothing beyond it (ASan would flag an overread of this object). */
#include <tallow/plugin.h>

typedef struct small_desc {
    uint32_t abi;
    uint32_t struct_size;
} small_desc;

static const small_desc small = {.abi = TALLOW_PLUGIN_ABI, .struct_size = sizeof(small_desc)};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return (const tallow_plugin_desc *)&small;
}
