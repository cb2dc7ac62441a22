#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "log.h"

struct tls_conn {
    SSL *ssl;
    unsigned char *pend;    /* the bytes of the record OpenSSL sealed but could not send yet,
                             * passed again on the retry; NULL when none */
    uint32_t pend_len, pend_off;
    uint8_t rd_want_write;  /* the last read waits for the socket to be writable */
    uint8_t wr_want_read;   /* the last write waits for it to be readable */
    uint8_t wr_blocked;     /* the last write stopped for the socket */
    uint8_t hs_failed;      /* it failed during the handshake */
};

/* TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 keeps OpenSSL's (all AEAD). */
static const char cipher_list[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static struct {
    SSL_CTX *ctx;
    char *cert_file, *key_file;
    char fingerprint[65];
} tls;

/* Why the latest call failed (tls_error). */
static char last_error[256];
/* The record being written: the queued frames coalesced (one buffer for every connection). */
static unsigned char record[TLS_RECORD_MAX];

/* ---- errors -------------------------------------------------------------------------- */

/* The reason of the first error OpenSSL queued, or NULL; the queue is emptied. */
static const char *queued_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (!e)
        return NULL;
    const char *r = ERR_reason_error_string(e);
    if (r)
        snprintf(buf, len, "%s", r);
    else
        ERR_error_string_n(e, buf, len);
    return buf;
}

/* Sets last_error from the failed call's SSL_get_error code. */
static void note_failure(int ssl_err)
{
    int saved = errno;
    char reason[200];
    if (ssl_err == SSL_ERROR_ZERO_RETURN) {
        snprintf(last_error, sizeof last_error, "connection closed by the peer");
        ERR_clear_error();
    } else if (queued_reason(reason, sizeof reason)) {
        snprintf(last_error, sizeof last_error, "%s", reason);
    } else if (ssl_err == SSL_ERROR_SYSCALL && saved) {
        snprintf(last_error, sizeof last_error, "%s", strerror(saved));
    } else if (ssl_err == SSL_ERROR_SYSCALL) {
        snprintf(last_error, sizeof last_error, "connection closed by the peer");
    } else {
        snprintf(last_error, sizeof last_error, "TLS error %d", ssl_err);
    }
}

const char *tls_error(const struct tls_conn *t)
{
    return last_error;
}

/* ---- the context --------------------------------------------------------------------- */

/* ALPN: http/1.1 or nothing (RFC 7301 3.2: no protocol in common is a fatal alert). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const char want[] = "http/1.1";
    for (unsigned i = 0; i < inlen;) {
        unsigned n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == sizeof want - 1 && memcmp(in + i + 1, want, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* A file the server cannot read gets the system's reason, not OpenSSL's. */
static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read the TLS %s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* Logs what the certificate is (subject, expiry) and warns when it is not valid now. */
static void describe_cert(SSL_CTX *ctx, const char *path)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (!x)
        return;
    char subject[256] = "?", until[32] = "?";
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
        strftime(until, sizeof until, "%Y-%m-%d %H:%M:%S UTC", &tm);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    tls.fingerprint[0] = '\0';
    if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
        for (unsigned i = 0; i < mdlen && i < 32; i++)
            snprintf(tls.fingerprint + 2 * i, 3, "%02x", md[i]);
    log_info("TLS certificate %s: %s, valid until %s, sha256 %s", path, subject, until,
             tls.fingerprint);
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
        log_warn("TLS certificate %s expired on %s: clients will refuse it", path, until);
    else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
        log_warn("TLS certificate %s is not valid yet: clients will refuse it", path);
}

/* A new server context with the certificate chain and key of the files, or NULL with a reason
 * in err. */
static SSL_CTX *ctx_new(const char *cert, const char *key, char *err, size_t errlen)
{
    char reason[200];
    if (check_readable("certificate", cert, err, errlen) < 0 ||
        check_readable("key", key, err, errlen) < 0)
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s",
                 queued_reason(reason, sizeof reason) ?: "out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (SSL_CTX_set_cipher_list(ctx, cipher_list) != 1) {
        snprintf(err, errlen, "TLS cipher list refused: %s",
                 queued_reason(reason, sizeof reason) ?: "?");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "cannot use the TLS certificate '%s': %s", cert,
                 queued_reason(reason, sizeof reason) ?: "?");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen, "the TLS key '%s' does not belong to the certificate '%s'",
                     key, cert);
        else
            snprintf(err, errlen, "cannot use the TLS key '%s': %s", key,
                     queued_reason(reason, sizeof reason) ?: "?");
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "the TLS key '%s' does not belong to the certificate '%s'", key,
                 cert);
        goto fail;
    }
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_init(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = ctx_new(cert_file, key_file, err, errlen);
    if (!ctx)
        return -1;
    free(tls.cert_file);
    free(tls.key_file);
    tls.cert_file = strdup(cert_file);
    tls.key_file = strdup(key_file);
    if (!tls.cert_file || !tls.key_file) {
        SSL_CTX_free(ctx);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    SSL_CTX_free(tls.ctx);
    tls.ctx = ctx;
    describe_cert(ctx, cert_file);
    return 0;
}

int tls_reload(char *err, size_t errlen)
{
    if (!tls.ctx) {
        snprintf(err, errlen, "TLS is not enabled");
        return -1;
    }
    SSL_CTX *ctx = ctx_new(tls.cert_file, tls.key_file, err, errlen);
    if (!ctx)
        return -1;
    SSL_CTX_free(tls.ctx); /* open connections hold their own reference */
    tls.ctx = ctx;
    describe_cert(ctx, tls.cert_file);
    return 0;
}

int tls_enabled(void)
{
    return tls.ctx != NULL;
}

void tls_free(void)
{
    SSL_CTX_free(tls.ctx);
    tls.ctx = NULL;
    free(tls.cert_file);
    free(tls.key_file);
    tls.cert_file = tls.key_file = NULL;
}

const char *tls_fingerprint(void)
{
    return tls.fingerprint;
}

/* ---- connections --------------------------------------------------------------------- */

static struct tls_conn *conn_wrap(SSL *ssl)
{
    struct tls_conn *t = calloc(1, sizeof *t);
    if (!t) {
        SSL_free(ssl);
        return NULL;
    }
    t->ssl = ssl;
    SSL_set_accept_state(ssl);
    return t;
}

struct tls_conn *tls_conn_new(int fd)
{
    ERR_clear_error();
    SSL *ssl = tls.ctx ? SSL_new(tls.ctx) : NULL;
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    return conn_wrap(ssl);
}

struct tls_conn *tls_conn_new_bio(struct bio_st *bio)
{
    SSL *ssl = tls.ctx ? SSL_new(tls.ctx) : NULL;
    if (!ssl) {
        ERR_clear_error();
        BIO_free(bio);
        return NULL;
    }
    SSL_set_bio(ssl, bio, bio);
    return conn_wrap(ssl);
}

void tls_conn_free(struct tls_conn *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t->pend);
    free(t);
}

ssize_t tls_read(struct tls_conn *t, void *buf, size_t len)
{
    t->rd_want_write = 0;
    if (!SSL_is_init_finished(t->ssl)) {
        ERR_clear_error();
        int rc = SSL_do_handshake(t->ssl);
        if (rc != 1) {
            int e = SSL_get_error(t->ssl, rc);
            if (e == SSL_ERROR_WANT_READ)
                return 0;
            if (e == SSL_ERROR_WANT_WRITE) {
                t->rd_want_write = 1;
                return 0;
            }
            t->hs_failed = 1;
            note_failure(e);
            return -1;
        }
    }
    size_t got = 0;
    while (got < len) {
        size_t n = 0;
        ERR_clear_error();
        if (SSL_read_ex(t->ssl, (char *)buf + got, len - got, &n) == 1) {
            got += n;
            continue;
        }
        int e = SSL_get_error(t->ssl, 0);
        if (e == SSL_ERROR_WANT_READ)
            break; /* (RELEASE_BUFFERS: a read that found nothing keeps no record buffer) */
        if (e == SSL_ERROR_WANT_WRITE) {
            t->rd_want_write = 1;
            break;
        }
        if (got) { /* the bytes first; the failure shows again at the next read */
            ERR_clear_error();
            break;
        }
        note_failure(e);
        return -1;
    }
    return (ssize_t)got;
}

/* One SSL_write of len bytes at p: 1 with *done set (at least one record), 0 when it stopped
 * for the socket, -1 on an error. */
static int write_once(struct tls_conn *t, const void *p, size_t len, size_t *done)
{
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, p, len, done) == 1)
        return 1;
    int e = SSL_get_error(t->ssl, 0);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        t->wr_blocked = 1;
        t->wr_want_read = e == SSL_ERROR_WANT_READ;
        return 0;
    }
    note_failure(e);
    return -1;
}

ssize_t tls_writev(struct tls_conn *t, const struct iovec *iov, int n)
{
    t->wr_blocked = 0;
    t->wr_want_read = 0;
    /* The record OpenSSL holds goes first, written again from the same bytes. */
    while (t->pend) {
        size_t done = 0;
        int rc = write_once(t, t->pend + t->pend_off, t->pend_len - t->pend_off, &done);
        if (rc <= 0)
            return rc;
        t->pend_off += (uint32_t)done;
        if (t->pend_off == t->pend_len) {
            free(t->pend);
            t->pend = NULL;
            t->pend_len = t->pend_off = 0;
        }
    }
    size_t taken = 0, off = 0; /* position: iov[i], off bytes into it */
    int i = 0;
    for (;;) {
        while (i < n && off == iov[i].iov_len) {
            i++;
            off = 0;
        }
        if (i == n)
            break;
        /* A record's worth: straight from the entry when it has that much, else the entries
         * coalesced into the record buffer. */
        const unsigned char *p;
        size_t len = iov[i].iov_len - off;
        if (len >= sizeof record) {
            p = (const unsigned char *)iov[i].iov_base + off;
            len = sizeof record;
        } else {
            len = 0;
            for (int j = i; j < n && len < sizeof record; j++) {
                size_t from = j == i ? off : 0, k = iov[j].iov_len - from;
                if (k > sizeof record - len)
                    k = sizeof record - len;
                memcpy(record + len, (const char *)iov[j].iov_base + from, k);
                len += k;
            }
            p = record;
        }
        size_t done = 0;
        int rc = write_once(t, p, len, &done);
        if (rc < 0)
            return taken ? (ssize_t)taken : -1;
        if (rc == 0) {
            /* OpenSSL sealed (part of) these bytes into a record it could not send: they are
             * taken, and kept for the retry that must pass them again. */
            t->pend = malloc(len);
            if (!t->pend) {
                snprintf(last_error, sizeof last_error, "out of memory");
                return -1;
            }
            memcpy(t->pend, p, len);
            t->pend_len = (uint32_t)len;
            t->pend_off = 0;
            return (ssize_t)(taken + len);
        }
        taken += done;
        while (done) {
            size_t k = iov[i].iov_len - off;
            if (k > done) {
                off += done;
                done = 0;
            } else {
                done -= k;
                i++;
                off = 0;
            }
        }
    }
    return (ssize_t)taken;
}

int tls_output_pending(const struct tls_conn *t)
{
    return t->pend != NULL;
}

int tls_write_blocked(const struct tls_conn *t)
{
    return t->wr_blocked;
}

int tls_read_wants_write(const struct tls_conn *t)
{
    return t->rd_want_write;
}

int tls_write_wants_read(const struct tls_conn *t)
{
    return t->wr_blocked && t->wr_want_read;
}

int tls_has_buffered_input(const struct tls_conn *t)
{
    return SSL_pending(t->ssl) > 0;
}

int tls_handshake_done(const struct tls_conn *t)
{
    return SSL_is_init_finished(t->ssl);
}

unsigned long tls_bytes_received(const struct tls_conn *t)
{
    BIO *b = SSL_get_rbio(t->ssl);
    return b ? (unsigned long)BIO_number_read(b) : 0;
}

void tls_close_notify(struct tls_conn *t)
{
    if (t->pend || !SSL_is_init_finished(t->ssl))
        return;
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

int tls_failed_in_handshake(const struct tls_conn *t)
{
    return t->hs_failed;
}

const char *tls_version(const struct tls_conn *t)
{
    return SSL_get_version(t->ssl);
}
