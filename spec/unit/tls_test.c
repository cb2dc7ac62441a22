/* tls.c against an OpenSSL client over an in-memory BIO pair (no socket): the pair's small
 * buffers stand for a socket that is full, so every "wait for the socket" path runs. The
 * certificate is made here, self-signed, into a temporary directory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "test.h"
#include "tls.h"

static char dir[64], cert_path[96], key_path[96];

/* A self-signed P-256 certificate and its key, written as PEM to cert_path and key_path. */
static int make_cert(const char *cn)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!pk || !x)
        return -1;
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, pk, EVP_sha256());
    FILE *c = fopen(cert_path, "w"), *k = fopen(key_path, "w");
    int ok = c && k && PEM_write_X509(c, x) && PEM_write_PrivateKey(k, pk, NULL, NULL, 0, NULL, NULL);
    if (c)
        fclose(c);
    if (k)
        fclose(k);
    X509_free(x);
    EVP_PKEY_free(pk);
    return ok ? 0 : -1;
}

static int setup(void)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/confab-tls-test.XXXXXX");
        if (!mkdtemp(dir))
            return -1;
        snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
        snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    }
    char err[256] = "cannot make a certificate";
    if (make_cert("unit") < 0 || tls_init(cert_path, key_path, err, sizeof err) < 0) {
        printf("    setup: %s\n", err);
        return -1;
    }
    return 0;
}

static void teardown(void)
{
    tls_free();
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    dir[0] = '\0';
}

/* A server connection and an OpenSSL client joined by a BIO pair of buf bytes each way. */
struct pair {
    struct tls_conn *srv;
    SSL_CTX *cctx;
    SSL *cli;
};

static int pair_open(struct pair *p, size_t buf, int max_version)
{
    BIO *sb, *cb;
    if (BIO_new_bio_pair(&sb, buf, &cb, buf) != 1)
        return -1;
    p->srv = tls_conn_new_bio(sb);
    p->cctx = SSL_CTX_new(TLS_client_method());
    if (max_version)
        SSL_CTX_set_max_proto_version(p->cctx, max_version);
    p->cli = SSL_new(p->cctx);
    SSL_set_bio(p->cli, cb, cb);
    SSL_set_connect_state(p->cli);
    return p->srv && p->cli ? 0 : -1;
}

static void pair_close(struct pair *p)
{
    tls_conn_free(p->srv);
    SSL_free(p->cli);
    SSL_CTX_free(p->cctx);
}

/* Runs both handshakes to the end; counts the server reads that waited to write. */
static int handshake(struct pair *p, int *read_wanted_write)
{
    char none[1];
    for (int i = 0; i < 1000; i++) {
        int c = SSL_do_handshake(p->cli);
        if (c != 1) {
            int e = SSL_get_error(p->cli, c);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                printf("    client handshake: error %d\n", e);
                ERR_print_errors_fp(stdout);
                return -1;
            }
        }
        if (c == 1) { /* the session tickets that follow the handshake */
            size_t n;
            SSL_read_ex(p->cli, none, sizeof none, &n);
            ERR_clear_error();
        }
        if (tls_read(p->srv, none, 0) < 0) {
            printf("    server handshake: %s\n", tls_error(p->srv));
            return -1;
        }
        if (read_wanted_write && tls_read_wants_write(p->srv))
            (*read_wanted_write)++;
        if (c == 1 && tls_handshake_done(p->srv))
            return 0;
    }
    return -1;
}

/* Everything the client can read now, appended to out (of cap bytes) at *len. */
static void client_drain(SSL *cli, uint8_t *out, size_t cap, size_t *len)
{
    size_t n;
    while (*len < cap && SSL_read_ex(cli, out + *len, cap - *len, &n) == 1)
        *len += n;
    ERR_clear_error();
}

TEST(tls_handshake_over_a_full_pipe_waits_to_write_and_completes)
{
    if (setup() < 0) {
        CHECK(0);
        return;
    }
    struct pair p;
    CHECK_INT(pair_open(&p, 256, 0), 0); /* the server's first flight is larger than 256 B */
    int waited = 0;
    CHECK_INT(handshake(&p, &waited), 0);
    CHECK(waited > 0);
    CHECK_STR(tls_version(p.srv), "TLSv1.3");
    CHECK(tls_bytes_received(p.srv) > 0);
    pair_close(&p);
    teardown();
}

TEST(tls_writev_through_a_small_pipe_delivers_every_byte_in_order)
{
    if (setup() < 0) {
        CHECK(0);
        return;
    }
    struct pair p;
    CHECK_INT(pair_open(&p, 4096, 0), 0);
    CHECK_INT(handshake(&p, NULL), 0);
    /* Three entries of odd sizes, 150 KB: records coalesce across entries, and the pipe holds
     * less than one record, so nearly every record waits sealed for its retry. */
    static uint8_t data[150000], got[150000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 9));
    size_t cuts[] = {0, 7, 70007, sizeof data};
    size_t sent = 0, recvd = 0;
    int blocked = 0, pending = 0, rounds = 0;
    while ((sent < sizeof data || tls_output_pending(p.srv)) && rounds++ < 100000) {
        struct iovec iov[3];
        int n = 0;
        for (int k = 0; k < 3; k++) {
            size_t from = cuts[k] > sent ? cuts[k] : sent;
            if (from < cuts[k + 1])
                iov[n++] = (struct iovec){data + from, cuts[k + 1] - from};
        }
        ssize_t w = tls_writev(p.srv, iov, n);
        CHECK(w >= 0);
        if (w < 0)
            break;
        sent += (size_t)w;
        blocked += tls_write_blocked(p.srv);
        pending += tls_output_pending(p.srv);
        CHECK(!tls_write_wants_read(p.srv));
        client_drain(p.cli, got, sizeof got, &recvd);
    }
    client_drain(p.cli, got, sizeof got, &recvd);
    CHECK_INT(sent, sizeof data);
    CHECK_INT(recvd, sizeof data);
    CHECK(memcmp(got, data, sizeof data) == 0);
    CHECK(blocked > 0 && pending > 0);
    CHECK(!tls_output_pending(p.srv));
    pair_close(&p);
    teardown();
}

TEST(tls_read_with_a_small_buffer_leaves_decrypted_bytes_buffered)
{
    if (setup() < 0) {
        CHECK(0);
        return;
    }
    struct pair p;
    CHECK_INT(pair_open(&p, 65536, 0), 0);
    CHECK_INT(handshake(&p, NULL), 0);
    static char msg[10000], in[10000];
    memset(msg, 'm', sizeof msg);
    size_t n;
    CHECK_INT(SSL_write_ex(p.cli, msg, sizeof msg, &n), 1);
    CHECK_INT(tls_read(p.srv, in, 100), 100);
    CHECK(tls_has_buffered_input(p.srv));
    CHECK_INT(tls_read(p.srv, in + 100, sizeof in - 100), sizeof in - 100);
    CHECK(!tls_has_buffered_input(p.srv));
    CHECK(memcmp(in, msg, sizeof msg) == 0);
    CHECK_INT(tls_read(p.srv, in, sizeof in), 0); /* nothing more now */
    pair_close(&p);
    teardown();
}

TEST(tls_key_updates_requested_by_the_client_keep_data_flowing_both_ways)
{
    if (setup() < 0) {
        CHECK(0);
        return;
    }
    struct pair p;
    CHECK_INT(pair_open(&p, 65536, 0), 0);
    CHECK_INT(handshake(&p, NULL), 0);
    char buf[64];
    size_t n;
    for (int round = 0; round < 3; round++) {
        CHECK_INT(SSL_key_update(p.cli, SSL_KEY_UPDATE_REQUESTED), 1);
        CHECK_INT(SSL_write_ex(p.cli, "ping", 4, &n), 1);
        CHECK_INT(tls_read(p.srv, buf, sizeof buf), 4);
        CHECK(memcmp(buf, "ping", 4) == 0);
        struct iovec iov = {"pong", 4};
        CHECK_INT(tls_writev(p.srv, &iov, 1), 4);
        CHECK(!tls_write_blocked(p.srv));
        size_t got = 0;
        client_drain(p.cli, (uint8_t *)buf, sizeof buf, &got);
        CHECK_INT(got, 4);
        CHECK(memcmp(buf, "pong", 4) == 0);
    }
    pair_close(&p);
    teardown();
}

TEST(tls_tls12_client_works_and_close_notify_ends_the_read)
{
    if (setup() < 0) {
        CHECK(0);
        return;
    }
    struct pair p;
    CHECK_INT(pair_open(&p, 65536, TLS1_2_VERSION), 0);
    CHECK_INT(handshake(&p, NULL), 0);
    CHECK_STR(tls_version(p.srv), "TLSv1.2");
    size_t n;
    char buf[16];
    CHECK_INT(SSL_write_ex(p.cli, "hi", 2, &n), 1);
    CHECK_INT(tls_read(p.srv, buf, sizeof buf), 2);
    SSL_shutdown(p.cli);
    CHECK_INT(tls_read(p.srv, buf, sizeof buf), -1);
    CHECK_STR(tls_error(p.srv), "connection closed by the peer");
    CHECK(!tls_failed_in_handshake(p.srv));
    pair_close(&p);
    teardown();
}

TEST(tls_garbage_fails_the_handshake_with_a_reason)
{
    if (setup() < 0) {
        CHECK(0);
        return;
    }
    BIO *sb, *cb;
    CHECK_INT(BIO_new_bio_pair(&sb, 4096, &cb, 4096), 1);
    struct tls_conn *t = tls_conn_new_bio(sb);
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_INT(BIO_write(cb, junk, sizeof junk - 1), sizeof junk - 1);
    char buf[16];
    CHECK_INT(tls_read(t, buf, sizeof buf), -1);
    CHECK(tls_failed_in_handshake(t));
    CHECK_STR(tls_error(t), "http request");
    tls_conn_free(t);
    BIO_free(cb);
    teardown();
}

TEST(tls_reload_keeps_the_old_context_when_the_new_files_are_bad)
{
    if (setup() < 0) {
        CHECK(0);
        return;
    }
    char before[65], err[256];
    snprintf(before, sizeof before, "%s", tls_fingerprint());
    CHECK(strlen(before) == 64);
    FILE *f = fopen(cert_path, "w");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    CHECK_INT(tls_reload(err, sizeof err), -1);
    CHECK(strstr(err, "cannot use the TLS certificate") != NULL);
    CHECK_STR(tls_fingerprint(), before);
    /* Still serving with the old context. */
    struct pair p;
    CHECK_INT(pair_open(&p, 65536, 0), 0);
    CHECK_INT(handshake(&p, NULL), 0);
    pair_close(&p);
    /* A good new pair of files: a new fingerprint. */
    CHECK_INT(make_cert("unit2"), 0);
    CHECK_INT(tls_reload(err, sizeof err), 0);
    CHECK(strcmp(tls_fingerprint(), before) != 0);
    teardown();
}
