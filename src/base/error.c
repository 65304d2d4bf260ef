/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Text for errno values and the library's own GHOST_E* codes. */
#include <string.h>

#include "ghost/error.h"

const char *ghost_strerror(int r)
{
	static const char *const texts[] = {
		[GHOST_EBADMAGIC - GHOST_EFIRST] = "not a ghost image",
		[GHOST_EVERSION - GHOST_EFIRST] = "image format version not supported",
		[GHOST_EARCH - GHOST_EFIRST] = "image made for another architecture",
		[GHOST_EKERNEL - GHOST_EFIRST] = "image made on an incompatible kernel",
		[GHOST_ECHECKSUM - GHOST_EFIRST] = "image record failed its checksum",
		[GHOST_ETRUNCATED - GHOST_EFIRST] = "image is truncated",
		[GHOST_ECORRUPT - GHOST_EFIRST] = "image record is malformed",
		[GHOST_EUNSUPPORTED - GHOST_EFIRST] = "state not supported",
		[GHOST_EFILECHANGED - GHOST_EFIRST] = "file changed since checkpoint",
		[GHOST_EPIDBUSY - GHOST_EFIRST] = "PID is in use",
		[GHOST_EPERM - GHOST_EFIRST] = "credentials not assumable by caller",
		[GHOST_EPROTO - GHOST_EFIRST] = "protocol error",
	};

	if (r >= GHOST_EFIRST && r < GHOST_ELAST)
		return texts[r - GHOST_EFIRST];
	if (r < 0 && r > -4096)
		return strerror(-r);
	if (r == 0)
		return "success";
	return "unknown error";
}
