#include "caps.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uthash.h>

/* An address key: 16 bytes, an IPv4 address in the IPv4-mapped form, an IPv6 /64 with its
 * lower half zero. */
struct caps_addr {
    uint8_t key[16];
    size_t count;
    UT_hash_handle hh;
};

static size_t max_total, max_per_ip;
static size_t total;
static struct caps_addr *table;
static uint64_t secret[2];

void caps_init(size_t total_cap, size_t per_ip_cap)
{
    max_total = total_cap;
    max_per_ip = per_ip_cap;
    if (getrandom(secret, sizeof secret, GRND_NONBLOCK) != (ssize_t)sizeof secret) {
        secret[0] = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15u; /* weaker, still not fixed */
        secret[1] = (uint64_t)clock() ^ 0xC2B2AE3D27D4EB4Fu;
    }
}

/* 0 when sa is not an Internet address (then it is not counted per address). */
static int addr_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a))
            memcpy(key, a, 16);
        else
            memcpy(key, a, 8); /* the /64 */
        return 1;
    }
    return 0;
}

/* A keyed mix of the 16 bytes (the table's hash: addresses chosen to collide need the secret). */
static unsigned key_hash(const uint8_t key[16])
{
    uint64_t w[2];
    memcpy(w, key, 16);
    uint64_t h = secret[0];
    for (int i = 0; i < 2; i++) {
        h ^= w[i] + secret[1];
        h *= 0x9E3779B97F4A7C15u;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9u;
    h ^= h >> 32;
    return (unsigned)h;
}

enum caps_verdict caps_admit(const struct sockaddr *sa)
{
    if (max_total && total >= max_total)
        return CAPS_TOTAL;
    uint8_t key[16];
    if (max_per_ip && addr_key(sa, key)) {
        unsigned hv = key_hash(key);
        struct caps_addr *e;
        HASH_FIND_BYHASHVALUE(hh, table, key, sizeof key, hv, e);
        if (e && e->count >= max_per_ip)
            return CAPS_PER_IP;
        if (!e) {
            if (!(e = calloc(1, sizeof *e)))
                return CAPS_NOMEM;
            memcpy(e->key, key, sizeof key);
            HASH_ADD_BYHASHVALUE(hh, table, key, sizeof e->key, hv, e);
        }
        e->count++;
    }
    total++;
    return CAPS_OK;
}

void caps_release(const struct sockaddr *sa)
{
    struct caps_addr *e = NULL;
    uint8_t key[16];
    if (max_per_ip && addr_key(sa, key))
        HASH_FIND_BYHASHVALUE(hh, table, key, sizeof key, key_hash(key), e);
    total--;
    if (e && --e->count == 0) {
        HASH_DELETE(hh, table, e);
        free(e);
    }
}

void caps_addr_text(const struct sockaddr *sa, char *out, size_t len)
{
    uint8_t key[16];
    char buf[INET6_ADDRSTRLEN];
    if (!addr_key(sa, key)) {
        snprintf(out, len, "?");
    } else if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)key)) {
        inet_ntop(AF_INET, key + 12, buf, sizeof buf);
        snprintf(out, len, "%s", buf);
    } else {
        inet_ntop(AF_INET6, key, buf, sizeof buf);
        snprintf(out, len, "%s/64", buf);
    }
}

size_t caps_total(void)
{
    return total;
}

size_t caps_addresses(void)
{
    return HASH_COUNT(table);
}

void caps_free(void)
{
    struct caps_addr *e, *tmp;
    HASH_ITER(hh, table, e, tmp) {
        HASH_DELETE(hh, table, e);
        free(e);
    }
    total = 0;
}
