/* sha.c - SHA-256 for S3 payload hashes (OpenSSL libcrypto). */
#include "fetch/priv.h"

#include <openssl/evp.h>
#include <stdlib.h>

void fetch_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 32;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
		abort(); /* only fails on allocation failure */
}
