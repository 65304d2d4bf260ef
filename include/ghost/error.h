/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Error codes of the Ghost library. Every call returns >= 0 on success and a
 * negative errno or one of the GHOST_E* codes below on failure; the codes sit
 * below -4095, clear of every errno value.
 */
#ifndef GHOST_ERROR_H
#define GHOST_ERROR_H

enum ghost_error {
	GHOST_EFIRST = -5000,
	GHOST_EBADMAGIC = GHOST_EFIRST, /* not a ghost image */
	GHOST_EVERSION,                 /* image format version not supported */
	GHOST_EARCH,                    /* image made for another architecture */
	GHOST_EKERNEL,                  /* image made on an incompatible kernel */
	GHOST_ECHECKSUM,                /* a record failed its checksum */
	GHOST_ETRUNCATED,               /* the image ends before its end record */
	GHOST_ECORRUPT,                 /* a record is malformed */
	GHOST_EUNSUPPORTED,             /* state the engine cannot carry */
	GHOST_EFILECHANGED,             /* a file differs from the checkpointed one */
	GHOST_EPIDBUSY,                 /* the PID to restore is in use */
	GHOST_EPERM,                    /* the image asks for credentials the caller may not assume */
	GHOST_EPROTO,                   /* a peer broke the protocol */
	GHOST_ELAST,
};

/* Text for a negative errno or GHOST_E* code; never NULL. */
const char *ghost_strerror(int r);

#endif
