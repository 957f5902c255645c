/* core/base/registry.h — the message registry's functions for the core's own files: the codec's
 * lookup by id (core/base/msg.c) and the loader's save / restore around a plugin's init
 * (core/base/plugin.c). The public face is in include/tallow/msg.h. */
#ifndef TALLOW_CORE_REGISTRY_H
#define TALLOW_CORE_REGISTRY_H

#include <tallow/msg.h>

/* The type registered under id, or NULL: the core table for core ids, else a binary search. */
const tallow_msg_type *tallow__registry_lookup(const tallow_registry *r, uint32_t id);
/* A copy of the plugin types (malloc'd; *n of them), or NULL when out of memory. */
const tallow_msg_type **tallow__registry_save(const tallow_registry *r, size_t *n);
/* Back to what save returned (registration only ever adds, so it fits). */
void tallow__registry_restore(tallow_registry *r, const tallow_msg_type **saved, size_t n);

#endif
