/* tests/core/loader/fake_noentry.c — a shared object without the entry symbol (it exports a
 * near miss, which must not be taken for it). */
#include <tallow/plugin.h>

TALLOW_PLUGIN_EXPORT int tallow_plugin_entry_v0(void);
TALLOW_PLUGIN_EXPORT int tallow_plugin_entry_v0(void)
{
    return 1;
}
