/*-------------------------------------------------------------------------
 *
 * routing.c
 *	  The instance registry, its copy in shared memory, route() and the
 *	  functions around it.
 *
 * Table perfopt.instance_registry is the durable copy of the registry; a
 * fixed array of PERFOPT_MAX_INSTANCES slots in shared memory is what
 * route() reads, so that a call scans no table: it takes the LWLock in
 * shared mode, copies the candidates, and picks one with balance.c.  The
 * array is loaded from the table by the first caller after start-up, after
 * every register / deregister / drain, and by the health checker before
 * each round (which also corrects a change that was rolled back).  A slot
 * keeps its health across reloads as long as its instance keeps its name.
 *
 * An instance starts down, becomes healthy after
 * perfopt.health_check_successes checks in a row succeed, and goes down
 * after perfopt.health_check_failures fail in a row; between the two it is
 * degraded, as is a standby more than perfopt.routing_max_lag behind.  Only
 * healthy and degraded instances that are not draining take traffic.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "routing/balance.h"
#include "routing/routing.h"

#define STATE_DOWN		0
#define STATE_HEALTHY	1
#define STATE_DEGRADED	2

typedef struct RoutingSlot
{
	bool		in_use;
	bool		draining;
	char		name[NAMEDATALEN];
	char		kind[PERFOPT_KIND_LEN];
	char		address[PERFOPT_ADDRESS_LEN];
	int			weight;
	int			state;
	int			failures;		/* checks failed in a row */
	int			successes;		/* checks succeeded in a row */
	double		ewma_ms;
	double		last_ms;
	double		samples;
	double		connections;
	int64		lag_bytes;		/* -1 if unknown or not a standby */
	TimestampTz last_check;
	pg_atomic_uint64 routed_recent;	/* since the last check */
	pg_atomic_uint64 routed_total;
} RoutingSlot;

typedef struct RoutingShared
{
	LWLock	   *lock;
	bool		loaded;
	pg_atomic_uint64 counter;
	RoutingSlot slots[PERFOPT_MAX_INSTANCES];
} RoutingShared;

int			perfopt_health_check_interval = 5;
int			perfopt_health_check_failures = 3;
int			perfopt_health_check_successes = 2;
int			perfopt_health_check_timeout = 2000;
int			perfopt_routing_algorithm = PERFOPT_ALGO_ADAPTIVE;
int			perfopt_routing_max_lag = 16 * 1024 * 1024;

static RoutingShared *routing_shared = NULL;

/* the values of perfopt.routing_algorithm, and of route()'s argument */
const struct config_enum_entry perfopt_routing_algorithms[] = {
	{"round_robin", PERFOPT_ALGO_ROUND_ROBIN, false},
	{"least_connections", PERFOPT_ALGO_LEAST_CONNECTIONS, false},
	{"weighted", PERFOPT_ALGO_WEIGHTED, false},
	{"adaptive", PERFOPT_ALGO_ADAPTIVE, false},
	{NULL, 0, false}
};

static const char *const state_names[] = {"down", "healthy", "degraded"};

/* the longest session key route() hashes, and the most simulated requests */
#define ROUTE_MAX_KEY_BYTES		1024
#define SIMULATE_MAX_REQUESTS	1000000

PG_FUNCTION_INFO_V1(perfopt_route);
PG_FUNCTION_INFO_V1(perfopt_instance_status);
PG_FUNCTION_INFO_V1(perfopt_routing_reload);
PG_FUNCTION_INFO_V1(perfopt_simulate_requests);
PG_FUNCTION_INFO_V1(perfopt_hpa_desired_replicas);

/* Ask for the registry's shared memory and lock; from perfopt.c's hook */
void
perfopt_routing_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(RoutingShared)));
	RequestNamedLWLockTranche("perfopt routing", 1);
}

/*
 * Create or attach the registry's shared memory; from perfopt.c's hook,
 * which holds AddinShmemInitLock
 */
void
perfopt_routing_shmem_startup(void)
{
	bool		found;

	routing_shared = ShmemInitStruct("perfopt routing", sizeof(RoutingShared), &found);
	if (!found)
	{
		memset(routing_shared, 0, sizeof(RoutingShared));
		routing_shared->lock = &(GetNamedLWLockTranche("perfopt routing"))->lock;
		pg_atomic_init_u64(&routing_shared->counter, 0);
		for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
		{
			pg_atomic_init_u64(&routing_shared->slots[i].routed_recent, 0);
			pg_atomic_init_u64(&routing_shared->slots[i].routed_total, 0);
		}
	}
}

/* Fail clearly when perfopt was not preloaded */
static void
require_shared(void)
{
	if (routing_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("perfopt routing needs perfopt in shared_preload_libraries"),
				 errhint("Add perfopt to shared_preload_libraries and restart the server.")));
}

/* One row of the registry table, read before the lock is taken */
typedef struct RegistryRow
{
	char		name[NAMEDATALEN];
	char		kind[PERFOPT_KIND_LEN];
	char		address[PERFOPT_ADDRESS_LEN];
	int			weight;
	bool		draining;
} RegistryRow;

/* Copy a text column of an SPI row into a fixed buffer; "" when null */
static void
copy_text_column(HeapTuple tuple, TupleDesc desc, int column, char *dest, size_t size)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tuple, desc, column, &isnull);

	if (isnull)
		dest[0] = '\0';
	else
		text_to_cstring_buffer(DatumGetTextPP(value), dest, size);
}

/*
 * Load the registry table into shared memory, keeping the health of the
 * instances that are still there.  Needs a transaction; returns false if
 * the table does not exist in this database.  The rows are read and
 * copied first; the lock then guards only plain copies, nothing that can
 * fail or do I/O.
 */
bool
perfopt_routing_sync(void)
{
	RoutingSlot *slots;
	bool		seen[PERFOPT_MAX_INSTANCES] = {0};
	RegistryRow *rows;
	uint64		n;

	require_shared();
	SPI_connect();
	if (SPI_execute("SELECT to_regclass('perfopt.instance_registry') IS NOT NULL", true, 1) != SPI_OK_SELECT ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool){0})))
	{
		SPI_finish();
		return false;
	}
	if (SPI_execute("SELECT name::text, kind::text, address::text, weight, draining"
					" FROM perfopt.instance_registry"
					" ORDER BY registered_at, name LIMIT " CppAsString2(PERFOPT_MAX_INSTANCES),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "perfopt could not read perfopt.instance_registry");
	n = SPI_processed;
	rows = palloc0(Max(n, 1) * sizeof(RegistryRow));
	for (uint64 r = 0; r < n; r++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		value;

		copy_text_column(tuple, desc, 1, rows[r].name, NAMEDATALEN);
		copy_text_column(tuple, desc, 2, rows[r].kind, PERFOPT_KIND_LEN);
		copy_text_column(tuple, desc, 3, rows[r].address, PERFOPT_ADDRESS_LEN);
		value = SPI_getbinval(tuple, desc, 4, &isnull);
		rows[r].weight = isnull ? 0 : DatumGetInt32(value);
		value = SPI_getbinval(tuple, desc, 5, &isnull);
		rows[r].draining = isnull ? false : DatumGetBool(value);
	}

	LWLockAcquire(routing_shared->lock, LW_EXCLUSIVE);
	slots = routing_shared->slots;
	for (uint64 r = 0; r < n; r++)
	{
		const RegistryRow *row = &rows[r];
		int			slot = -1;

		for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
			if (slots[i].in_use && strcmp(slots[i].name, row->name) == 0)
			{
				slot = i;
				break;
			}
		if (slot < 0)
		{
			for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
				if (!slots[i].in_use && !seen[i])
				{
					slot = i;
					break;
				}
			if (slot < 0)
				break;
			slots[slot].state = STATE_DOWN;
			slots[slot].failures = slots[slot].successes = 0;
			slots[slot].ewma_ms = slots[slot].last_ms = slots[slot].samples = 0;
			slots[slot].connections = 0;
			slots[slot].lag_bytes = -1;
			slots[slot].last_check = 0;
			pg_atomic_write_u64(&slots[slot].routed_recent, 0);
			pg_atomic_write_u64(&slots[slot].routed_total, 0);
			memcpy(slots[slot].name, row->name, NAMEDATALEN);
		}
		seen[slot] = true;
		memcpy(slots[slot].kind, row->kind, PERFOPT_KIND_LEN);
		memcpy(slots[slot].address, row->address, PERFOPT_ADDRESS_LEN);
		slots[slot].weight = row->weight;
		slots[slot].draining = row->draining;
	}
	for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
		slots[i].in_use = seen[i];
	routing_shared->loaded = true;
	LWLockRelease(routing_shared->lock);
	pfree(rows);
	SPI_finish();
	return true;
}

/* Load the registry once, for the first caller after start-up */
static void
ensure_loaded(void)
{
	require_shared();
	if (!routing_shared->loaded)
		(void) perfopt_routing_sync();
}

/* The instances the health checker should check, copied out of the lock */
int
perfopt_routing_targets(RoutingTarget *out, int max)
{
	int			n = 0;

	LWLockAcquire(routing_shared->lock, LW_SHARED);
	for (int i = 0; i < PERFOPT_MAX_INSTANCES && n < max; i++)
	{
		RoutingSlot *s = &routing_shared->slots[i];

		if (!s->in_use)
			continue;
		out[n].slot = i;
		memcpy(out[n].name, s->name, NAMEDATALEN);
		memcpy(out[n].kind, s->kind, PERFOPT_KIND_LEN);
		memcpy(out[n].address, s->address, PERFOPT_ADDRESS_LEN);
		n++;
	}
	LWLockRelease(routing_shared->lock);
	return n;
}

/* Record one health check and move the instance between states */
void
perfopt_routing_report(int slot, const char *name, bool ok, double ms,
					   double connections, int64 lag_bytes)
{
	RoutingSlot *s = &routing_shared->slots[slot];
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(routing_shared->lock, LW_EXCLUSIVE);
	if (s->in_use && strcmp(s->name, name) == 0)
	{
		s->last_check = now;
		pg_atomic_write_u64(&s->routed_recent, 0);
		if (ok)
		{
			s->failures = 0;
			s->successes++;
			s->last_ms = ms;
			s->ewma_ms = perfopt_ewma(s->ewma_ms, ms, 0.3);
			s->samples += 1.0;
			s->connections = connections;
			s->lag_bytes = lag_bytes;
			if (s->state != STATE_DOWN || s->successes >= perfopt_health_check_successes)
				s->state = (lag_bytes > perfopt_routing_max_lag) ? STATE_DEGRADED : STATE_HEALTHY;
		}
		else
		{
			s->successes = 0;
			s->failures++;
			if (s->failures >= perfopt_health_check_failures)
			{
				s->state = STATE_DOWN;
				s->samples = 0;
				s->ewma_ms = 0;
			}
			else if (s->state == STATE_HEALTHY)
				s->state = STATE_DEGRADED;
		}
	}
	LWLockRelease(routing_shared->lock);
}

/* The algorithm named, or the setting's when NULL; an error if unknown */
static int
algorithm_from_text(text *name)
{
	char	   *s;

	if (name == NULL)
		return perfopt_routing_algorithm;
	s = text_to_cstring(name);
	for (const struct config_enum_entry *e = perfopt_routing_algorithms; e->name; e++)
		if (strcmp(e->name, s) == 0)
			return e->val;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown routing algorithm \"%s\"", s),
			 errhint("Use round_robin, least_connections, weighted or adaptive.")));
	return 0;					/* keep the compiler quiet */
}

/*
 * route(session_key, algorithm): the instance to use now.  Reads shared
 * memory only (after the first load).  With a session key, rendezvous
 * hashing over the instances that take traffic.
 */
Datum
perfopt_route(PG_FUNCTION_ARGS)
{
	text	   *key = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	int			algorithm = algorithm_from_text(PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1));
	BalanceCandidate cand[PERFOPT_MAX_INSTANCES];
	int			index[PERFOPT_MAX_INSTANCES];
	char		names[PERFOPT_MAX_INSTANCES][NAMEDATALEN];
	const char *name_ptr[PERFOPT_MAX_INSTANCES];
	double		weights[PERFOPT_MAX_INSTANCES];
	int			n = 0,
				pick;
	double		confidence = 1.0;
	uint64		counter;
	char		address[PERFOPT_ADDRESS_LEN];
	char		chosen[NAMEDATALEN];
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[3];
	bool		nulls[3] = {0};

	if (key != NULL && VARSIZE_ANY_EXHDR(key) > ROUTE_MAX_KEY_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("session key is longer than %d bytes", ROUTE_MAX_KEY_BYTES),
				 errhint("Pass a short key that names the session, such as a user id.")));

	ensure_loaded();
	InitMaterializedSRF(fcinfo, 0);

	LWLockAcquire(routing_shared->lock, LW_SHARED);
	for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
	{
		RoutingSlot *s = &routing_shared->slots[i];

		if (!s->in_use || s->draining || s->state == STATE_DOWN)
			continue;
		cand[n].weight = s->weight;
		cand[n].ewma_ms = s->ewma_ms;
		cand[n].load = s->connections + (double) pg_atomic_read_u64(&s->routed_recent);
		cand[n].lag_penalty_ms = s->lag_bytes > 0 ? (double) s->lag_bytes / 65536.0 : 0.0;
		if (s->lag_bytes > perfopt_routing_max_lag)
			cand[n].lag_penalty_ms += 1000.0;
		cand[n].samples = s->samples;
		memcpy(names[n], s->name, NAMEDATALEN);
		name_ptr[n] = names[n];
		weights[n] = s->weight;
		index[n] = i;
		n++;
	}
	if (n == 0)
	{
		LWLockRelease(routing_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no instance can take traffic"),
				 errdetail("Every registered instance is down or draining, or none is registered."),
				 errhint("Register one with perfopt.register_instance() and see perfopt.instances.")));
	}

	counter = pg_atomic_fetch_add_u64(&routing_shared->counter, 1);
	if (key != NULL)
	{
		pick = perfopt_rendezvous(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), name_ptr, weights, n);
		confidence = cand[pick].samples / (cand[pick].samples + 5.0);
	}
	else
		pick = perfopt_balance_pick(algorithm, cand, n, counter, &confidence);

	pg_atomic_fetch_add_u64(&routing_shared->slots[index[pick]].routed_recent, 1);
	pg_atomic_fetch_add_u64(&routing_shared->slots[index[pick]].routed_total, 1);
	memcpy(address, routing_shared->slots[index[pick]].address, PERFOPT_ADDRESS_LEN);
	memcpy(chosen, names[pick], NAMEDATALEN);
	LWLockRelease(routing_shared->lock);

	values[0] = CStringGetTextDatum(chosen);
	values[1] = CStringGetTextDatum(address);
	values[2] = Float8GetDatum(confidence);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * instance_status(): the shared-memory side of perfopt.instances.  The
 * slots are copied under the lock; the rows are made after it, since
 * making text and filling the tuplestore allocate and may write to disk.
 */
Datum
perfopt_instance_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RoutingSlot *copies;
	uint64	   *routed;
	int			n = 0;

	ensure_loaded();
	InitMaterializedSRF(fcinfo, 0);
	copies = palloc(PERFOPT_MAX_INSTANCES * sizeof(RoutingSlot));
	routed = palloc(PERFOPT_MAX_INSTANCES * sizeof(uint64));

	LWLockAcquire(routing_shared->lock, LW_SHARED);
	for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
	{
		RoutingSlot *s = &routing_shared->slots[i];

		if (!s->in_use)
			continue;
		memcpy(&copies[n], s, sizeof(RoutingSlot));
		routed[n] = pg_atomic_read_u64(&s->routed_total);
		n++;
	}
	LWLockRelease(routing_shared->lock);

	for (int i = 0; i < n; i++)
	{
		RoutingSlot *s = &copies[i];
		Datum		values[10];
		bool		nulls[10] = {0};

		values[0] = CStringGetTextDatum(s->name);
		values[1] = CStringGetTextDatum(s->draining ? "draining" : state_names[s->state]);
		values[2] = TimestampTzGetDatum(s->last_check);
		nulls[2] = (s->last_check == 0);
		values[3] = Float8GetDatum(s->last_ms);
		nulls[3] = (s->samples == 0);
		values[4] = Float8GetDatum(s->ewma_ms);
		nulls[4] = (s->samples == 0);
		values[5] = Int64GetDatum((int64) s->connections);
		nulls[5] = (s->last_check == 0);
		values[6] = Int64GetDatum(s->lag_bytes);
		nulls[6] = (s->lag_bytes < 0);
		values[7] = Int32GetDatum(s->failures);
		values[8] = Int64GetDatum((int64) routed[i]);
		values[9] = Float8GetDatum(s->samples);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(copies);
	pfree(routed);
	return (Datum) 0;
}

/* routing_reload(): load the registry table into shared memory now */
Datum
perfopt_routing_reload(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(perfopt_routing_sync());
}

/*
 * simulate_requests(n, algorithm, load): replay a synthetic stream against
 * the default heterogeneous fleet (see docs/routing.md); one row per
 * instance and a row 'all'.
 */
Datum
perfopt_simulate_requests(PG_FUNCTION_ARGS)
{
	int			n;
	int			algorithm;
	double		load;
	int64		seed;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SimInstance fleet[] = {
		{500, 500, 2}, {250, 125, 2}, {125, 125, 1}, {125, 125, 1}
	};
	int			k = lengthof(fleet);
	double		p95_ms,
				span,
				mean = 0;
	long		overloads = 0;
	void	   *workspace;

	/* as if STRICT: no rows for a NULL n, load or seed */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		InitMaterializedSRF(fcinfo, 0);
		return (Datum) 0;
	}
	n = PG_GETARG_INT32(0);
	algorithm = algorithm_from_text(PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1));
	load = PG_GETARG_FLOAT8(2);
	seed = PG_GETARG_INT64(3);
	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be between 1 and %d, not %d", SIMULATE_MAX_REQUESTS, n),
				 errhint("Simulate at least one request.")));
	if (n > SIMULATE_MAX_REQUESTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("n must be between 1 and %d, not %d", SIMULATE_MAX_REQUESTS, n),
				 errhint("Simulate at most a million requests in one call.")));
	if (!(load > 0.0 && load <= 2.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("load must be above 0 and at most 2, not %g", load),
				 errhint("load is the arrival rate as a fraction of the fleet's capacity, such as 0.7.")));

	workspace = palloc_extended(perfopt_simulate_workspace(n, k), MCXT_ALLOC_HUGE);
	perfopt_simulate(fleet, k, n, load, algorithm, (uint64) seed, workspace, &p95_ms, &span);
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < k; i++)
	{
		Datum		values[6];
		bool		nulls[6] = {0};

		values[0] = CStringGetTextDatum(psprintf("sim%d", i + 1));
		values[1] = Float8GetDatum(fleet[i].capacity);
		values[2] = Int64GetDatum(fleet[i].requests);
		values[3] = Float8GetDatum(fleet[i].p95_ms);
		values[4] = Float8GetDatum(fleet[i].busy_s / span);
		values[5] = Int64GetDatum(fleet[i].overloads);
		mean += fleet[i].busy_s / span / k;
		overloads += fleet[i].overloads;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	{
		Datum		values[6];
		bool		nulls[6] = {0};
		double		capacity = 0;

		for (int i = 0; i < k; i++)
			capacity += fleet[i].capacity;
		values[0] = CStringGetTextDatum("all");
		values[1] = Float8GetDatum(capacity);
		values[2] = Int64GetDatum(n);
		values[3] = Float8GetDatum(p95_ms);
		values[4] = Float8GetDatum(mean);
		values[5] = Int64GetDatum(overloads);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* hpa_desired_replicas(current, value, target, tolerance, min, max) */
Datum
perfopt_hpa_desired_replicas(PG_FUNCTION_ARGS)
{
	int			current = PG_GETARG_INT32(0);
	double		value = PG_GETARG_FLOAT8(1);
	double		target = PG_GETARG_FLOAT8(2);
	double		tolerance = PG_GETARG_FLOAT8(3);
	int			min_replicas = PG_GETARG_INT32(4);
	int			max_replicas = PG_GETARG_INT32(5);

	if (target <= 0.0 || tolerance < 0.0 || min_replicas < 1 || max_replicas < min_replicas || current < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid scaling arguments"),
				 errdetail("target must be above 0, tolerance at least 0, 1 <= min_replicas <= max_replicas, current at least 0."),
				 errhint("Pass a utilization target such as 0.7 and a tolerance such as 0.1.")));
	PG_RETURN_INT32(perfopt_hpa_desired(current, value, target, tolerance,
										min_replicas, max_replicas));
}
