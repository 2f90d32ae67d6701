/* fuzz_media_probe - probes arbitrary bytes from memory (a custom
 * AVIOContext), as media.probe does with an untrusted upload: any input
 * must give a result or a clean error, never a crash, hang or leak. */
#include "media/media.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *out = NULL;
	struct err err;

	if (size > (1 << 20))
		return 0;
	if (media_probe_buffer(data, size, &out, &err) == 0) {
		if (!json_is_object(out))
			__builtin_trap();
		json_decref(out);
	}
	return 0;
}
