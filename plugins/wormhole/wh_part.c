/* plugins/wormhole/wh_part.c — the receiver's temporary files: a ".NAME.N.wormhole-part" beside
 * the final name, created exclusively and never through a symlink. Both the file receiver
 * (wh_app.c) and the folder unpacker (wh_zip.c) write through it, so neither calls the other. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include "wh.h"

int wh_open_part(int dirfd, const char *name, char *part, size_t cap)
{
    for (int i = 0; i < 100; i++) {
        snprintf(part, cap, ".%s.%d.wormhole-part", name, i);
        int fd = openat(dirfd, part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST) return fd < 0 ? -errno : fd;
    }
    return -EEXIST;
}
