/* tests/fuzz/fuzz_sockaddr.c — libFuzzer target for the candidate address wire form
 * (tallow_sockaddr_decode): whatever decodes must encode back to the same bytes, pass through
 * the candidate checks and print without trouble. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tallow/error.h>
#include <tallow/gather.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_sockaddr: check failed: %s (line %d)\n", #c, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t sl = 12345;
    int rc = tallow_sockaddr_decode(data, size, &ss, &sl);
    if (rc < 0) {
        CHECK(rc == TALLOW_EBADMSG && sl == 0);
        return 0;
    }
    CHECK(sl == sizeof(struct sockaddr_in) || sl == sizeof(struct sockaddr_in6));
    uint8_t out[32];
    int n = tallow_sockaddr_encode((struct sockaddr *)&ss, sl, out, sizeof out);
    CHECK(n > 0 && (size_t)n == size && memcmp(out, data, size) == 0);
    CHECK(tallow_sockaddr_encode((struct sockaddr *)&ss, sl, out, size - 1) == TALLOW_ETOOBIG);
    int strict = tallow_validate_candidate_addr((struct sockaddr *)&ss, sl, 0);
    int loose = tallow_validate_candidate_addr((struct sockaddr *)&ss, sl, 1);
    CHECK(strict == 0 || strict == TALLOW_EINVAL);
    CHECK(loose == 0 || loose == TALLOW_EINVAL);
    CHECK(!(strict == 0 && loose != 0)); /* allowing loopback never refuses more */
    char buf[80];
    tallow_sockaddr_str((struct sockaddr *)&ss, buf, sizeof buf);
    CHECK(strlen(buf) < sizeof buf && (buf[0] == '[' || (buf[0] >= '0' && buf[0] <= '9')));
    char tiny[4];
    tallow_sockaddr_str((struct sockaddr *)&ss, tiny, sizeof tiny);
    CHECK(strlen(tiny) < sizeof tiny);
    return 0;
}
