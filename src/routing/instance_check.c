/*-------------------------------------------------------------------------
 *
 * instance_check.c
 *	  The perfopt health checker: a background worker that checks every
 *	  registered instance each perfopt.health_check_interval.
 *
 * Every interval it reloads the registry from perfopt.instance_registry in
 * perfopt.database (share-locking the extension first, as every worker
 * does).  A PostgreSQL instance is checked through non-blocking libpq:
 * PQconnectStartParams and PQconnectPoll, then PQsendQuery of one query
 * that returns whether it is in recovery, its WAL position (current on a
 * primary, last replayed on a standby) and its active connections; the
 * response time is that query's round trip.  A standby's lag is the
 * highest position last seen on a primary minus its replay position.  Any
 * other kind is checked by a non-blocking TCP connect.
 *
 * The checks never block the worker.  All of them are in flight at once
 * and the worker waits for their sockets, its latch and the postmaster in
 * one WaitEventSet, so SIGTERM and a reload are taken at once.  Each check
 * has a hard deadline of perfopt.health_check_timeout from its start,
 * connection and query together (with TCP keepalives and a TCP user
 * timeout as well); past it the check has failed and its connection is
 * closed.  Each instance has its own schedule: its next check starts one
 * interval after the previous one started, or when the previous one ends
 * if that is later.  A black-holed instance (one that accepts and never
 * answers) thus costs its own checks the timeout, and delays nobody else's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libpq-fe.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "routing/instance_check.h"
#include "bgw/worker.h"
#include "perfopt.h"
#include "routing/routing.h"

PGDLLEXPORT void perfopt_health_check_main(Datum main_arg);

/* Where a check is */
typedef enum CheckPhase
{
	CHECK_IDLE,					/* none in flight */
	CHECK_CONNECTING,			/* PQconnectPoll until CONNECTION_OK */
	CHECK_QUERYING,				/* the query is sent, waiting for its result */
	CHECK_TCP					/* a TCP connect in progress */
} CheckPhase;

/* One instance's check, in flight or between two */
typedef struct Check
{
	RoutingTarget target;		/* the instance; slot -1 when unused */
	CheckPhase	phase;
	PGconn	   *conn;			/* a PostgreSQL check's connection */
	pgsocket	fd;				/* a TCP check's socket */
	uint32		wait_for;		/* WL_SOCKET_* the check waits for */
	TimestampTz started;
	TimestampTz deadline;		/* the check fails past this */
	TimestampTz next_start;		/* when the next check may start */
	instr_time	query_sent;
	bool		ok;				/* the last check ended well */
	bool		in_recovery;	/* as of the last check that ended well */
	double		ms;
	double		connections;
	int64		lsn;			/* last WAL position seen, -1 if none */
} Check;

static Check checks[PERFOPT_MAX_INSTANCES];

static const char *const check_query =
"SELECT pg_is_in_recovery(),"
" (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
"  ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::int8,"
" (SELECT count(*) FROM pg_stat_activity"
"   WHERE state = 'active' AND backend_type = 'client backend'"
"     AND pid <> pg_backend_pid())";

/* Register the worker; from _PG_init while preloading */
void
perfopt_health_check_register(void)
{
	perfopt_worker_register("perfopt health checker", "perfopt_health_check_main", 10);
}

/* Close whatever a check holds, without reporting it */
static void
check_close(Check *c)
{
	if (c->conn != NULL)
		PQfinish(c->conn);
	c->conn = NULL;
	if (c->fd != PGINVALID_SOCKET)
		close(c->fd);
	c->fd = PGINVALID_SOCKET;
	c->phase = CHECK_IDLE;
	c->wait_for = 0;
}

/*
 * The highest WAL position of a primary among the last checks, for the lag
 * of standbys; -1 when no primary was seen
 */
static int64
primary_position(void)
{
	int64		lsn = -1;

	for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
		if (checks[i].target.slot >= 0 && checks[i].ok && !checks[i].in_recovery &&
			strcmp(checks[i].target.kind, "postgresql") == 0 && checks[i].lsn > lsn)
			lsn = checks[i].lsn;
	return lsn;
}

/* A check is over: close it and record what it found */
static void
check_finish(Check *c, bool ok)
{
	int64		lag = -1;
	int64		primary;

	check_close(c);
	c->ok = ok;
	if (!ok)
		c->lsn = -1;
	primary = primary_position();
	if (ok && c->in_recovery && c->lsn >= 0 && primary >= 0)
		lag = Max(0, primary - c->lsn);
	perfopt_routing_report(c->target.slot, c->target.name, ok, c->ms, c->connections, lag);
}

/* Start checking a PostgreSQL instance: a non-blocking connection attempt */
static void
start_postgresql(Check *c)
{
	char		options[64],
				user_timeout[16];
	const char *keys[] = {"dbname", "options", "application_name", "keepalives",
		"keepalives_idle", "keepalives_interval", "keepalives_count",
	"tcp_user_timeout", NULL};
	const char *values[9];

	snprintf(options, sizeof(options), "-c statement_timeout=%d", perfopt_health_check_timeout);
	snprintf(user_timeout, sizeof(user_timeout), "%d", perfopt_health_check_timeout);
	values[0] = c->target.address;
	values[1] = options;
	values[2] = "perfopt health checker";
	values[3] = "1";
	values[4] = "1";
	values[5] = "1";
	values[6] = "3";
	values[7] = user_timeout;
	values[8] = NULL;

	/* the address is a connection string; the settings above override it */
	c->conn = PQconnectStartParams(keys, values, 1);
	if (c->conn == NULL || PQstatus(c->conn) == CONNECTION_BAD)
	{
		check_finish(c, false);
		return;
	}
	c->phase = CHECK_CONNECTING;
	c->wait_for = WL_SOCKET_WRITEABLE;	/* as libpq says to, before the first poll */
}

/* Start checking any other instance: a non-blocking TCP connect to host:port */
static void
start_tcp(Check *c)
{
	char		host[PERFOPT_ADDRESS_LEN];
	char	   *colon;
	struct addrinfo hints = {0},
			   *ai = NULL;

	strlcpy(host, c->target.address, sizeof(host));
	colon = strrchr(host, ':');
	if (colon == NULL)
	{
		check_finish(c, false);
		return;
	}
	*colon = '\0';
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL)
	{
		check_finish(c, false);
		return;
	}
	c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (c->fd == PGINVALID_SOCKET || fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
	{
		freeaddrinfo(ai);
		check_finish(c, false);
		return;
	}
	c->phase = CHECK_TCP;
	c->wait_for = WL_SOCKET_WRITEABLE;
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
	{
		freeaddrinfo(ai);
		check_finish(c, true);
		return;
	}
	freeaddrinfo(ai);
	if (errno != EINPROGRESS)
		check_finish(c, false);
}

/* Start a check of the instance */
static void
check_start(Check *c, TimestampTz now)
{
	c->started = now;
	c->deadline = TimestampTzPlusMilliseconds(now, perfopt_health_check_timeout);
	c->next_start = TimestampTzPlusMilliseconds(now, perfopt_health_check_interval * 1000);
	/* ok, in_recovery and lsn keep the last result until this one ends */
	c->ms = 0;
	c->connections = 0;
	if (strcmp(c->target.kind, "postgresql") == 0)
		start_postgresql(c);
	else
		start_tcp(c);
}

/* The query's result is in: read it */
static void
read_result(Check *c)
{
	PGresult   *res;
	bool		ok = false;
	instr_time	elapsed;

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, c->query_sent);
	while ((res = PQgetResult(c->conn)) != NULL)
	{
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 3)
		{
			ok = true;
			c->ms = INSTR_TIME_GET_MILLISEC(elapsed);
			c->in_recovery = (PQgetvalue(res, 0, 0)[0] == 't');
			c->lsn = PQgetisnull(res, 0, 1) ? -1 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
			c->connections = strtod(PQgetvalue(res, 0, 2), NULL);
		}
		PQclear(res);
	}
	check_finish(c, ok);
}

/* Send the query once connected; any error fails the check */
static void
send_query(Check *c)
{
	int			flushed;

	if (PQsetnonblocking(c->conn, 1) != 0 || !PQsendQuery(c->conn, check_query))
	{
		check_finish(c, false);
		return;
	}
	INSTR_TIME_SET_CURRENT(c->query_sent);
	c->phase = CHECK_QUERYING;
	flushed = PQflush(c->conn);
	if (flushed < 0)
		check_finish(c, false);
	else
		c->wait_for = WL_SOCKET_READABLE | (flushed > 0 ? WL_SOCKET_WRITEABLE : 0);
}

/* The socket of a check is ready: take the next step, never blocking */
static void
check_advance(Check *c)
{
	switch (c->phase)
	{
		case CHECK_IDLE:
			break;
		case CHECK_CONNECTING:
			switch (PQconnectPoll(c->conn))
			{
				case PGRES_POLLING_READING:
					c->wait_for = WL_SOCKET_READABLE;
					break;
				case PGRES_POLLING_WRITING:
					c->wait_for = WL_SOCKET_WRITEABLE;
					break;
				case PGRES_POLLING_OK:
					send_query(c);
					break;
				default:
					check_finish(c, false);
					break;
			}
			break;
		case CHECK_QUERYING:
			{
				int			flushed = PQflush(c->conn);

				if (flushed < 0 || !PQconsumeInput(c->conn))
					check_finish(c, false);
				else if (!PQisBusy(c->conn))
					read_result(c);
				else
					c->wait_for = WL_SOCKET_READABLE | (flushed > 0 ? WL_SOCKET_WRITEABLE : 0);
			}
			break;
		case CHECK_TCP:
			{
				int			err = 0;
				socklen_t	len = sizeof(err);
				bool		connected;

				c->ms = (double) (GetCurrentTimestamp() - c->started) / 1000.0;
				connected = getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
				check_finish(c, connected);
			}
			break;
	}
}

/* The socket a check in flight waits on */
static pgsocket
check_socket(Check *c)
{
	if (c->phase == CHECK_TCP)
		return c->fd;
	if (c->conn != NULL)
		return PQsocket(c->conn);
	return PGINVALID_SOCKET;
}

/*
 * Follow the registry: checks of instances that went away or changed are
 * dropped, new instances get a check that starts at once
 */
static void
follow_targets(void)
{
	RoutingTarget targets[PERFOPT_MAX_INSTANCES];
	int			n = perfopt_routing_targets(targets, PERFOPT_MAX_INSTANCES);
	bool		current[PERFOPT_MAX_INSTANCES] = {0};

	for (int i = 0; i < n; i++)
	{
		Check	   *c = &checks[targets[i].slot];

		current[targets[i].slot] = true;
		if (c->target.slot == targets[i].slot &&
			strcmp(c->target.name, targets[i].name) == 0 &&
			strcmp(c->target.kind, targets[i].kind) == 0 &&
			strcmp(c->target.address, targets[i].address) == 0)
			continue;
		check_close(c);
		memset(c, 0, sizeof(Check));
		c->fd = PGINVALID_SOCKET;
		c->lsn = -1;
		c->target = targets[i];
	}
	for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
		if (!current[i] && checks[i].target.slot >= 0)
		{
			check_close(&checks[i]);
			checks[i].target.slot = -1;
		}
}

/* The step that loads the registry table into shared memory */
static void
sync_registry(void *arg)
{
	(void) perfopt_routing_sync();
}

/* Reload the registry from the table, in a transaction of its own */
static void
reload_registry(MemoryContext cxt)
{
	PerfoptStep step = {0};

	step.flags = PERFOPT_STEP_LOCK_EXTENSION | PERFOPT_STEP_SPI;
	step.activity = "reading the instance registry";
	step.cxt = cxt;
	(void) perfopt_run_step(&step, sync_registry, NULL);
}

/*
 * Start the checks that are due, wait for the sockets of those in flight,
 * the latch and the postmaster, and take the next step of each check whose
 * socket is ready; checks past their deadline fail.  Returns at the latch,
 * at the next registry reload, or after a step.
 */
static void
check_step(TimestampTz reload_at)
{
	WaitEventSet *set;
	WaitEvent	events[PERFOPT_MAX_INSTANCES + 2];
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake = reload_at;
	int			in_flight = 0;
	int			n;

	for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
	{
		Check	   *c = &checks[i];

		if (c->target.slot < 0)
			continue;
		if (c->phase != CHECK_IDLE && now >= c->deadline)
		{
			c->ms = (double) (now - c->started) / 1000.0;
			check_finish(c, false);
		}
		if (c->phase == CHECK_IDLE && now >= c->next_start)
			check_start(c, now);
		if (c->phase != CHECK_IDLE)
		{
			in_flight++;
			wake = Min(wake, c->deadline);
		}
		else
			wake = Min(wake, c->next_start);
	}
	if (in_flight > 0)
		pgstat_report_activity(STATE_RUNNING, "checking instances");
	else
		pgstat_report_activity(STATE_IDLE, NULL);

	set = perfopt_worker_wait_set(CurrentMemoryContext, in_flight);
	for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
	{
		Check	   *c = &checks[i];
		pgsocket	fd = check_socket(c);

		if (c->target.slot >= 0 && c->phase != CHECK_IDLE)
		{
			if (fd == PGINVALID_SOCKET)
				check_finish(c, false);
			else
				AddWaitEventToSet(set, c->wait_for, fd, NULL, c);
		}
	}
	n = perfopt_worker_wait_set_wait(set, TimestampDifferenceMilliseconds(now, wake) + 1,
									 events, lengthof(events));
	FreeWaitEventSet(set);

	/* the latch was reset and interrupts taken; step the ready checks */
	for (int i = 0; i < n; i++)
		if (events[i].user_data != NULL)
			check_advance((Check *) events[i].user_data);
}

/* Entry point of the health checker */
void
perfopt_health_check_main(Datum main_arg)
{
	MemoryContext step_cxt;
	TimestampTz reload_at = 0;

	(void) perfopt_worker_start("perfopt health checker");
	step_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt health checker step",
									 ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < PERFOPT_MAX_INSTANCES; i++)
	{
		checks[i].target.slot = -1;
		checks[i].fd = PGINVALID_SOCKET;
	}

	for (;;)
	{
		MemoryContextReset(step_cxt);
		MemoryContextSwitchTo(step_cxt);
		CHECK_FOR_INTERRUPTS();
		(void) perfopt_worker_reload();

		if (GetCurrentTimestamp() >= reload_at)
		{
			reload_registry(step_cxt);
			follow_targets();
			reload_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													perfopt_health_check_interval * 1000);
		}
		check_step(reload_at);
	}
}
