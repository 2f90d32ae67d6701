/* crypto.c - SHA-256, HMAC-SHA256, hex, base64 and constant-time compare
 * over OpenSSL's libcrypto (EVP interfaces: OpenSSL 1.1 and 3 alike).
 *
 * The OpenSSL calls used here fail only when memory runs out (a digest
 * that exists cannot refuse data), so failures abort rather than
 * travelling up as errors nobody could handle. */
#include "crypto/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct crypto_sha256 {
	EVP_MD_CTX *md;
};

void crypto_sha256(const void *data, size_t len,
		   unsigned char out[CRYPTO_SHA256_LEN])
{
	unsigned int n = CRYPTO_SHA256_LEN;

	if (EVP_Digest(len ? data : "", len, out, &n, EVP_sha256(), NULL) != 1)
		abort();
}

struct crypto_sha256 *crypto_sha256_new(void)
{
	struct crypto_sha256 *h = malloc(sizeof(*h));

	if (!h || !(h->md = EVP_MD_CTX_new()) ||
	    EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1)
		abort();
	return h;
}

void crypto_sha256_update(struct crypto_sha256 *h, const void *data,
			  size_t len)
{
	if (len && EVP_DigestUpdate(h->md, data, len) != 1)
		abort();
}

void crypto_sha256_final(struct crypto_sha256 *h,
			 unsigned char out[CRYPTO_SHA256_LEN])
{
	unsigned int n = CRYPTO_SHA256_LEN;

	if (EVP_DigestFinal_ex(h->md, out, &n) != 1 ||
	    EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1)
		abort();
}

void crypto_sha256_free(struct crypto_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->md);
	free(h);
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
			size_t len, unsigned char out[CRYPTO_SHA256_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	/* HMAC() wants a non-NULL key even when it is empty. */
	if (keylen > INT32_MAX ||
	    !HMAC(EVP_sha256(), keylen ? key : "", (int)keylen,
		  len ? data : (const void *)"", len, md, &n) ||
	    n != CRYPTO_SHA256_LEN)
		abort();
	memcpy(out, md, CRYPTO_SHA256_LEN);
	OPENSSL_cleanse(md, sizeof(md));
}

void crypto_hex(const void *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = in;
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
}

/* EVP_EncodeBlock and EVP_DecodeBlock take int lengths: larger inputs go
 * in pieces of a multiple of 3 (encode) or 4 (decode) bytes. */
#define B64_CHUNK ((size_t)3 << 20)

size_t crypto_base64_encode(const void *in, size_t len, char *out)
{
	const unsigned char *p = in;
	size_t done = 0, n;

	out[0] = '\0';
	while (len) {
		n = len < B64_CHUNK ? len : B64_CHUNK;
		done += (size_t)EVP_EncodeBlock((unsigned char *)out + done, p,
						(int)n);
		p += n;
		len -= n;
	}
	return done;
}

static int b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int crypto_base64_decode(const char *in, size_t len, unsigned char *out,
			 size_t *outlen)
{
	size_t i, pad = 0, done = 0, n;
	int got;

	/* EVP_DecodeBlock skips white space and does not report padding, so
	 * the strict shape is checked here first. */
	if (len % 4)
		return -1;
	if (len && in[len - 1] == '=')
		pad = len > 1 && in[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len - pad; i++)
		if (!b64_char((unsigned char)in[i]))
			return -1;
	for (i = 0; i < len; i += n) {
		n = len - i < (B64_CHUNK / 3) * 4 ? len - i : (B64_CHUNK / 3) * 4;
		got = EVP_DecodeBlock(out + done, (const unsigned char *)in + i,
				      (int)n);
		if (got < 0)
			return -1;
		done += (size_t)got;
	}
	*outlen = done - pad;
	return 0;
}

int crypto_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const unsigned char *x = a, *y = b;
	unsigned char diff = alen != blen;
	size_t i, n = alen > blen ? alen : blen;

	if (alen == blen)
		return n == 0 || CRYPTO_memcmp(a, b, n) == 0;
	/* Unequal lengths: walk the longer one anyway, so the time taken
	 * does not tell how long a prefix matched. */
	for (i = 0; i < n; i++)
		diff |= (unsigned char)((i < alen ? x[i] : 0) ^
					(i < blen ? y[i] : 0));
	return diff == 0;
}
