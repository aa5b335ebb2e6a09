/*-------------------------------------------------------------------------
 *
 * actions.h
 *	  Running the orchestrator's queued actions in the launcher.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_ACTIONS_H
#define PERFOPT_ACTIONS_H

#include "utils/palloc.h"

extern bool perfopt_run_next_action(MemoryContext cxt);

#endif							/* PERFOPT_ACTIONS_H */
