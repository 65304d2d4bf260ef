/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs a libFuzzer target once on every file named on the command line, for
 * builds without libFuzzer: the seed corpus becomes a plain regression test. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		struct buf b = BUF_INIT;
		int r = read_file_at(AT_FDCWD, argv[i], &b);

		if (r < 0) {
			fprintf(stderr, "cannot read '%s': %s\n", argv[i], strerror(-r));
			return EXIT_FAILURE;
		}
		/* an exact-size copy, so ASan sees any read past the end */
		uint8_t *copy = malloc(b.len ? b.len : 1);

		if (!copy) {
			buf_release(&b);
			return EXIT_FAILURE;
		}
		memcpy(copy, b.data, b.len);
		LLVMFuzzerTestOneInput(copy, b.len);
		free(copy);
		printf("replayed '%s' (%zu bytes)\n", argv[i], b.len);
		buf_release(&b);
	}
	return EXIT_SUCCESS;
}
