/*-------------------------------------------------------------------------
 *
 * subxact.c
 *	  Running a step in a subtransaction and keeping its error.
 *
 * When one statement of many cannot be analyzed, perfopt reports it and
 * goes on with the others.  A step that may fail after taking locks or
 * opening relations must run in a subtransaction, so that its failure
 * releases them; this is the one place that does it, the way PL/pgSQL's
 * exception blocks do.
 *
 * Like PL/pgSQL's WHEN OTHERS, it never keeps an error of the operator
 * intervention class: query cancel, statement_timeout, and the shutdown
 * and dropped-database errors are re-thrown after the subtransaction is
 * rolled back, so that nothing perfopt does in a loop stops them from
 * stopping it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "common/subxact.h"

/*
 * Run step(arg) in a subtransaction.  On success its locks and memory are
 * kept and NULL is returned; on error the subtransaction is rolled back and
 * the error, copied into the caller's memory context, is returned.  The
 * step allocates in the caller's memory context.  An error of class 57
 * (operator intervention: query_canceled, admin_shutdown, ...) is
 * re-thrown instead of returned.
 */
ErrorData *
perfopt_try_in_subtransaction(void (*step) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		step(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_OPERATOR_INTERVENTION)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}
