/* core/base/registry.c — the message registry: core types 0..38 from messages.h plus plugin types,
 * looked up by id (direct table for core ids, sorted array for the rest) and by name. */
#include <stdlib.h>
#include <string.h>

#include <tallow/error.h>
#include <tallow/messages.h>

#include "registry.h"

/* ---- core descriptors, generated from the X-macro tables */
#define TALLOW__FIELD(S, tag_, name_, kind_)                                                       \
    {.tag = tag_, .name = #name_, .kind = TALLOW_F_##kind_, .offset = offsetof(S, name_)},
#define TALLOW__DESC(id_, Name)                                                                    \
    static const tallow_field fields_##Name[] = {                                                  \
        TALLOW_FIELDS_##Name(TALLOW__FIELD, tallow_msg_##Name)};                                   \
    TALLOW_API const tallow_msg_type tallow_msgtype_##Name = {                                     \
        .id = id_,                                                                                 \
        .name = #Name,                                                                             \
        .struct_size = sizeof(tallow_msg_##Name),                                                  \
        .nfields = sizeof(fields_##Name) / sizeof(fields_##Name[0]),                               \
        .fields = fields_##Name,                                                                   \
    };
TALLOW_CORE_MESSAGES(TALLOW__DESC)
#undef TALLOW__DESC
#undef TALLOW__FIELD

struct tallow_registry {
    const tallow_msg_type *core[TALLOW_MSG_CORE_COUNT];
    const tallow_msg_type **extra; /* sorted by id */
    size_t nextra, capextra;
};

static const tallow_msg_type *const core_types[TALLOW_MSG_CORE_COUNT] = {
#define TALLOW__PTR(id_, Name) [id_] = &tallow_msgtype_##Name,
    TALLOW_CORE_MESSAGES(TALLOW__PTR)
#undef TALLOW__PTR
};

TALLOW_API tallow_registry *tallow_registry_new(void)
{
    tallow_registry *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    memcpy(r->core, core_types, sizeof(core_types));
    return r;
}

TALLOW_API void tallow_registry_free(tallow_registry *r)
{
    if (!r) return;
    free(r->extra);
    free(r);
}

const tallow_msg_type *tallow__registry_lookup(const tallow_registry *r, uint32_t id)
{
    if (id < TALLOW_MSG_CORE_COUNT) return r->core[id];
    size_t lo = 0, hi = r->nextra;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->extra[mid]->id == id) return r->extra[mid];
        if (r->extra[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

TALLOW_API const tallow_msg_type *tallow_registry_find(const tallow_registry *r, uint32_t id)
{
    return tallow__registry_lookup(r, id);
}

TALLOW_API const tallow_msg_type *tallow_registry_find_name(const tallow_registry *r,
                                                            const char *name)
{
    for (size_t i = 0; i < TALLOW_MSG_CORE_COUNT; i++)
        if (strcmp(r->core[i]->name, name) == 0) return r->core[i];
    for (size_t i = 0; i < r->nextra; i++)
        if (strcmp(r->extra[i]->name, name) == 0) return r->extra[i];
    return NULL;
}

static int valid_desc(const tallow_msg_type *t)
{
    if (!t || !t->name || !t->name[0] || (t->nfields && !t->fields)) return 0;
    for (uint32_t i = 0; i < t->nfields; i++) {
        const tallow_field *f = &t->fields[i];
        if (f->tag == 0 || !f->name || f->kind < TALLOW_F_U64 || f->kind > TALLOW_F_STR) return 0;
        size_t fsize = f->kind == TALLOW_F_BOOL  ? 1
                       : f->kind == TALLOW_F_U32 ? 4
                       : f->kind <= TALLOW_F_I64 ? 8
                                                 : sizeof(tallow_bytes);
        if ((size_t)f->offset + fsize > t->struct_size) return 0; /* the whole field fits */
        for (uint32_t j = 0; j < i; j++)
            if (t->fields[j].tag == f->tag || strcmp(t->fields[j].name, f->name) == 0) return 0;
    }
    return 1;
}

TALLOW_API int tallow_registry_add(tallow_registry *r, const tallow_msg_type *t)
{
    if (!valid_desc(t)) return TALLOW_EINVAL;
    if (tallow__registry_lookup(r, t->id) || tallow_registry_find_name(r, t->name))
        return TALLOW_EDUPTYPE;
    if (t->id < TALLOW_MSG_CORE_COUNT) return TALLOW_EDUPTYPE;
    if (r->nextra == r->capextra) {
        size_t cap = r->capextra ? r->capextra * 2 : 16;
        const tallow_msg_type **e = realloc(r->extra, cap * sizeof(*e));
        if (!e) return TALLOW_ENOMEM;
        r->extra = e;
        r->capextra = cap;
    }
    size_t i = r->nextra;
    while (i > 0 && r->extra[i - 1]->id > t->id) {
        r->extra[i] = r->extra[i - 1];
        i--;
    }
    r->extra[i] = t;
    r->nextra++;
    return 0;
}

/* The loader undoes what a failing plugin init registered: it saves the plugin types before init
 * and restores them after (registration only ever adds, so the saved array fits). */
const tallow_msg_type **tallow__registry_save(const tallow_registry *r, size_t *n)
{
    const tallow_msg_type **v = malloc((r->nextra + 1) * sizeof(*v));
    if (!v) return NULL;
    if (r->nextra) memcpy(v, r->extra, r->nextra * sizeof(*v));
    *n = r->nextra;
    return v;
}

void tallow__registry_restore(tallow_registry *r, const tallow_msg_type **saved, size_t n)
{
    if (n) memcpy(r->extra, saved, n * sizeof(*saved));
    r->nextra = n;
}

TALLOW_API void tallow_registry_foreach(const tallow_registry *r,
                                        void (*fn)(const tallow_msg_type *t, void *ud), void *ud)
{
    for (size_t i = 0; i < TALLOW_MSG_CORE_COUNT; i++)
        fn(r->core[i], ud);
    for (size_t i = 0; i < r->nextra; i++)
        fn(r->extra[i], ud);
}
