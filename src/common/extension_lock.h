/*-------------------------------------------------------------------------
 *
 * extension_lock.h
 *	  The lock on extension perfopt that orders the workers' steps with
 *	  DROP EXTENSION and ALTER EXTENSION UPDATE.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_EXTENSION_LOCK_H
#define PERFOPT_EXTENSION_LOCK_H

/* Share-lock the extension against a concurrent DROP; false if it is gone */
extern bool perfopt_lock_extension(void);

#endif							/* PERFOPT_EXTENSION_LOCK_H */
