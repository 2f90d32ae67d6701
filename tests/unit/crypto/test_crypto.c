/* Unit tests of internal/crypto against published known answers: SHA-256
 * from FIPS 180-2 (appendix B), HMAC-SHA256 from RFC 4231 (all seven
 * cases), base64 from RFC 4648 section 10, and the constant-time compare.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "../unit.h"

static void assert_hex(const unsigned char *md, size_t n, const char *want)
{
	char hex[2 * CRYPTO_SHA256_LEN + 1];

	assert_true(n <= CRYPTO_SHA256_LEN);
	crypto_hex(md, n, hex);
	assert_string_equal(hex, want);
}

static void test_sha256_fips(void **state)
{
	static const char two_blocks[] =
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	unsigned char md[CRYPTO_SHA256_LEN];

	(void)state;
	crypto_sha256("abc", 3, md);
	assert_hex(md, sizeof(md), "ba7816bf8f01cfea414140de5dae2223"
		   "b00361a396177a9cb410ff61f20015ad");
	crypto_sha256(two_blocks, strlen(two_blocks), md);
	assert_hex(md, sizeof(md), "248d6a61d20638b8e5c026930c3e6039"
		   "a33ce45964ff2167f6ecedd419db06c1");
	/* the empty message, with and without a pointer */
	crypto_sha256("", 0, md);
	assert_hex(md, sizeof(md), "e3b0c44298fc1c149afbf4c8996fb924"
		   "27ae41e4649b934ca495991b7852b855");
	crypto_sha256(NULL, 0, md);
	assert_hex(md, sizeof(md), "e3b0c44298fc1c149afbf4c8996fb924"
		   "27ae41e4649b934ca495991b7852b855");
}

static void test_sha256_incremental(void **state)
{
	struct crypto_sha256 *h = crypto_sha256_new();
	unsigned char md[CRYPTO_SHA256_LEN];
	char chunk[1000];
	size_t i;

	(void)state;
	/* FIPS 180-2 B.3: one million 'a', here in pieces of odd sizes */
	memset(chunk, 'a', sizeof(chunk));
	for (i = 0; i < 1000000;) {
		size_t n = 1 + (i * 7919) % sizeof(chunk);

		if (n > 1000000 - i)
			n = 1000000 - i;
		crypto_sha256_update(h, chunk, n);
		i += n;
	}
	crypto_sha256_final(h, md);
	assert_hex(md, sizeof(md), "cdc76e5c9914fb9281a1c7e284d73e67"
		   "f1809a48a497200e046d39ccc7112cd0");
	/* final starts afresh: the object hashes the next message alone */
	crypto_sha256_update(h, "a", 1);
	crypto_sha256_update(h, "", 0);
	crypto_sha256_update(h, "bc", 2);
	crypto_sha256_final(h, md);
	assert_hex(md, sizeof(md), "ba7816bf8f01cfea414140de5dae2223"
		   "b00361a396177a9cb410ff61f20015ad");
	crypto_sha256_free(h);
	crypto_sha256_free(NULL);
}

static void test_hmac_rfc4231(void **state)
{
	static const char big_key_data[] =
		"This is a test using a larger than block-size key and a larger "
		"than block-size data. The key needs to be hashed before being "
		"used by the HMAC algorithm.";
	unsigned char key[131], data[50], md[CRYPTO_SHA256_LEN];
	size_t i;

	(void)state;
	/* 4.2 */
	memset(key, 0x0b, 20);
	crypto_hmac_sha256(key, 20, "Hi There", 8, md);
	assert_hex(md, sizeof(md), "b0344c61d8db38535ca8afceaf0bf12b"
		   "881dc200c9833da726e9376c2e32cff7");
	/* 4.3: a key shorter than the output */
	crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, md);
	assert_hex(md, sizeof(md), "5bdcc146bf60754e6a042426089575c7"
		   "5a003f089d2739839dec58b964ec3843");
	/* 4.4 */
	memset(key, 0xaa, 20);
	memset(data, 0xdd, 50);
	crypto_hmac_sha256(key, 20, data, 50, md);
	assert_hex(md, sizeof(md), "773ea91e36800e46854db8ebd09181a7"
		   "2959098b3ef8c122d9635514ced565fe");
	/* 4.5 */
	for (i = 0; i < 25; i++)
		key[i] = (unsigned char)(i + 1);
	memset(data, 0xcd, 50);
	crypto_hmac_sha256(key, 25, data, 50, md);
	assert_hex(md, sizeof(md), "82558a389a443c0ea4cc819899f2083a"
		   "85f0faa3e578f8077a2e3ff46729665b");
	/* 4.6: truncated to 128 bits */
	memset(key, 0x0c, 20);
	crypto_hmac_sha256(key, 20, "Test With Truncation", 20, md);
	assert_hex(md, 16, "a3b6167473100ee06e0c796c2955552b");
	/* 4.7 and 4.8: a key longer than the block is hashed first */
	memset(key, 0xaa, 131);
	crypto_hmac_sha256(key, 131, "Test Using Larger Than Block-Size Key - "
			   "Hash Key First", 54, md);
	assert_hex(md, sizeof(md), "60e431591ee0b67f0d8a26aacbf5b77f"
		   "8e0bc6213728c5140546040f0ee37f54");
	crypto_hmac_sha256(key, 131, big_key_data, strlen(big_key_data), md);
	assert_hex(md, sizeof(md), "9b09ffa71b942fcb27635fbcd5b0e944"
		   "bfdc63644f0713938a7f51535c3a35e2");
	/* empty key and empty message (printf '' | openssl dgst -sha256
	 * -mac HMAC -macopt hexkey:) */
	crypto_hmac_sha256(NULL, 0, NULL, 0, md);
	assert_hex(md, sizeof(md), "b613679a0814d9ec772f95d778c35fc5"
		   "ff1697c493715653c6c712144292c5ad");
}

static void test_hex(void **state)
{
	const unsigned char in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	char out[2 * sizeof(in) + 1];

	(void)state;
	memset(out, 'x', sizeof(out));
	crypto_hex(in, sizeof(in), out);
	assert_string_equal(out, "00017f80abff");
	crypto_hex(in, 0, out);
	assert_string_equal(out, "");
}

static void test_base64_rfc4648(void **state)
{
	static const char *const plain[] = {
		"", "f", "fo", "foo", "foob", "fooba", "foobar"
	};
	static const char *const coded[] = {
		"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"
	};
	const unsigned char bin[] = { 0xfb, 0xff, 0xbf, 0x00 };
	unsigned char dec[16];
	char enc[CRYPTO_BASE64_LEN(6)];
	size_t i, n;

	(void)state;
	for (i = 0; i < 7; i++) {
		n = strlen(plain[i]);
		assert_int_equal(crypto_base64_encode(plain[i], n, enc),
				 strlen(coded[i]));
		assert_string_equal(enc, coded[i]);
		n = 99;
		assert_int_equal(crypto_base64_decode(coded[i], strlen(coded[i]),
						      dec, &n), 0);
		assert_int_equal(n, strlen(plain[i]));
		assert_memory_equal(dec, plain[i], n);
	}
	/* the two characters past the alphanumerics, and a zero byte */
	assert_int_equal(crypto_base64_encode(bin, sizeof(bin), enc), 8);
	assert_string_equal(enc, "+/+/AA==");
	assert_int_equal(crypto_base64_decode("+/+/AA==", 8, dec, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(dec, bin, 4);
}

static void test_base64_refuses(void **state)
{
	static const char *const bad[] = {
		"Zm9", "Zm9vY", "Zm=v", "Z===", "====", "Zm9v\n", " Zm9v",
		"Zm9v Zm9v", "Zm9-", "Zm9_", "Zg=A", "Zm9vYg=\n", "Zm9v====",
	};
	unsigned char dec[16];
	size_t i, n = 12345;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (crypto_base64_decode(bad[i], strlen(bad[i]), dec, &n) == 0)
			fail_msg("'%s' decoded", bad[i]);
		assert_int_equal(n, 12345); /* left untouched */
	}
}

static void test_equal(void **state)
{
	(void)state;
	assert_int_equal(crypto_equal("secret", 6, "secret", 6), 1);
	assert_int_equal(crypto_equal("secret", 6, "secreT", 6), 0);
	assert_int_equal(crypto_equal("Secret", 6, "secret", 6), 0);
	/* a prefix is not equal, either way round */
	assert_int_equal(crypto_equal("secret", 6, "secret!", 7), 0);
	assert_int_equal(crypto_equal("secret!", 7, "secret", 6), 0);
	assert_int_equal(crypto_equal("", 0, "a", 1), 0);
	/* a zero byte is content like any other */
	assert_int_equal(crypto_equal("a\0b", 3, "a\0c", 3), 0);
	assert_int_equal(crypto_equal("a\0b", 3, "a\0b", 3), 1);
	assert_int_equal(crypto_equal("a", 1, "a\0", 2), 0);
	assert_int_equal(crypto_equal("", 0, "", 0), 1);
	assert_int_equal(crypto_equal(NULL, 0, NULL, 0), 1);
}

UNIT_MAIN(
		cmocka_unit_test(test_sha256_fips),
		cmocka_unit_test(test_sha256_incremental),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_base64_rfc4648),
		cmocka_unit_test(test_base64_refuses),
		cmocka_unit_test(test_equal),
)
