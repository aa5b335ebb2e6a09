/*-------------------------------------------------------------------------
 *
 * extension_lock.c
 *	  The lock on extension perfopt that orders the workers' steps with
 *	  DROP EXTENSION and ALTER EXTENSION UPDATE.
 *
 * Every step of a worker takes it shared (bgw/worker.c); DROP EXTENSION
 * takes it exclusively before it drops anything, and so does an update
 * script through perfopt.lock_for_update().  So one waits for the other,
 * instead of the two taking table locks in different orders and
 * deadlocking.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "storage/lmgr.h"

#include "common/extension_lock.h"

PG_FUNCTION_INFO_V1(perfopt_lock_for_update);

/*
 * Take a share lock on the extension for the rest of the transaction, and
 * say whether it (still) exists.  DROP EXTENSION takes the same lock in
 * exclusive mode before it drops anything, so a worker that takes it first
 * can never deadlock with a DROP on perfopt's tables: one waits for the
 * other.
 */
bool
perfopt_lock_extension(void)
{
	Oid			extension = get_extension_oid("perfopt", true);

	if (!OidIsValid(extension))
		return false;
	LockDatabaseObject(ExtensionRelationId, extension, 0, AccessShareLock);
	return OidIsValid(get_extension_oid("perfopt", true));
}

/*
 * lock_for_update(): the lock of perfopt_lock_extension, exclusively, until
 * the end of the transaction.  An update script calls it before it touches
 * anything, so that it waits for the workers' running jobs and they wait for
 * it, instead of the two taking table locks in different orders and
 * deadlocking.
 */
Datum
perfopt_lock_for_update(PG_FUNCTION_ARGS)
{
	Oid			extension = get_extension_oid("perfopt", false);

	LockDatabaseObject(ExtensionRelationId, extension, 0, AccessExclusiveLock);
	PG_RETURN_VOID();
}
