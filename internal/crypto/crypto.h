/* crypto.h - the few cryptographic primitives wakeq uses: SHA-256 (one
 * shot and incremental), HMAC-SHA256, lowercase hex, base64 and a
 * constant-time compare.
 *
 * The only module that sees OpenSSL's libcrypto: no OpenSSL type crosses
 * this header. Every function here is thread-safe and never blocks. An
 * allocation failure inside OpenSSL aborts, as xmalloc does; the hashes
 * cannot fail otherwise.
 */
#ifndef WAKEQ_CRYPTO_H
#define WAKEQ_CRYPTO_H

#include <stddef.h>

#define CRYPTO_SHA256_LEN 32
/* 64 lowercase hex digits + NUL */
#define CRYPTO_SHA256_HEX_LEN (2 * CRYPTO_SHA256_LEN + 1)
/* Room crypto_base64_encode needs for `n` input bytes, NUL included. */
#define CRYPTO_BASE64_LEN(n) (4 * (((size_t)(n) + 2) / 3) + 1)

/* SHA-256 of `len` bytes of `data` into `out`. */
void crypto_sha256(const void *data, size_t len,
		   unsigned char out[CRYPTO_SHA256_LEN]);

/* An incremental SHA-256, for data that arrives in pieces. Opaque. */
struct crypto_sha256;

/* Starts a hash. Returns a new object the caller frees with
 * crypto_sha256_free. */
struct crypto_sha256 *crypto_sha256_new(void);

/* Adds `len` bytes of `data` (borrowed for the call only). */
void crypto_sha256_update(struct crypto_sha256 *h, const void *data,
			  size_t len);

/* Writes the digest of everything added so far into `out` and starts the
 * hash afresh (empty), so the object may be reused. */
void crypto_sha256_final(struct crypto_sha256 *h,
			 unsigned char out[CRYPTO_SHA256_LEN]);

/* Frees `h`; accepts NULL. */
void crypto_sha256_free(struct crypto_sha256 *h);

/* HMAC-SHA256 (RFC 2104) of `len` bytes of `data` under the `keylen`
 * bytes of `key` (any length, 0 included) into `out`. */
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
			size_t len, unsigned char out[CRYPTO_SHA256_LEN]);

/* Writes `len` bytes of `in` as 2 * len lowercase hex digits and a NUL
 * into `out` (which holds 2 * len + 1). */
void crypto_hex(const void *in, size_t len, char *out);

/* Writes `len` bytes of `in` as standard base64 (RFC 4648 section 4,
 * '+' '/' and '=' padding) and a NUL into `out`, which holds
 * CRYPTO_BASE64_LEN(len). Returns the number of characters written, NUL
 * not counted. */
size_t crypto_base64_encode(const void *in, size_t len, char *out);

/* Decodes `len` characters of standard, padded base64 (no white space,
 * no line breaks, length a multiple of 4) into `out`, which holds at
 * least 3 * len / 4 bytes; sets `*outlen` to the bytes written. Returns
 * 0, or -1 when `in` is not such base64 (then `*outlen` is left
 * untouched; `out` may have been written). */
int crypto_base64_decode(const char *in, size_t len, unsigned char *out,
			 size_t *outlen);

/* Whether `alen` bytes at `a` equal `blen` bytes at `b`: 1 or 0. The time
 * taken depends on the two lengths only, never on the contents, so
 * comparing a secret or a MAC with it reveals at most the lengths. */
int crypto_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
