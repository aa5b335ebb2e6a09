/*-------------------------------------------------------------------------
 *
 * perfopt.c
 *	  Module load: it only registers.  Settings, one shared memory request
 *	  and one start-up hook that call each subsystem's, the executor
 *	  hooks, and the background workers.
 *
 * perfopt is meant to sit in shared_preload_libraries next to
 * pg_stat_statements: then it reserves shared memory for its latency
 * histograms, the instance registry and the cache invalidator, installs
 * its executor hooks and registers its workers.  Functions that need
 * neither shared memory nor workers (query analysis, for one) must also
 * work when the library is only loaded on first use, so the settings are
 * defined in both cases and only what needs the postmaster is skipped.
 *
 * Nothing else lives here, and no other file needs this one: each
 * subsystem offers its own init, and this file is the only caller.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "utils/queryjumble.h"

#include "advisor/whatif.h"
#include "bgw/launcher.h"
#include "cache/cache_worker.h"
#include "guc.h"
#include "metrics/latency.h"
#include "metrics/table_state.h"
#include "observability/exporter.h"
#include "routing/instance_check.h"
#include "routing/routing.h"
#include "samples/samples.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* The shared memory request hook: every subsystem asks for its part */
static void
perfopt_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	perfopt_latency_shmem_request();
	perfopt_routing_shmem_request();
	perfopt_cache_shmem_request();
	perfopt_samples_shmem_request();
	perfopt_table_state_shmem_request();
}

/*
 * The shared memory start-up hook: every subsystem creates or attaches its
 * part, under AddinShmemInitLock taken once for all of them
 */
static void
perfopt_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	perfopt_latency_shmem_startup();
	perfopt_routing_shmem_startup();
	perfopt_cache_shmem_startup();
	perfopt_samples_shmem_startup();
	perfopt_table_state_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Define perfopt's settings.  When preloaded, also ask for shared memory,
 * install the executor hooks and register the workers.
 */
void
_PG_init(void)
{
	perfopt_define_settings();
	/* the advisor's planner hook, also when loaded on first use */
	perfopt_whatif_init();

	if (!process_shared_preload_libraries_in_progress)
		return;

	EnableQueryId();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = perfopt_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = perfopt_shmem_startup;

	perfopt_latency_init();
	perfopt_samples_init();

	perfopt_launcher_register();
	perfopt_exporter_register();
	perfopt_cache_worker_register();
	perfopt_health_check_register();
}
