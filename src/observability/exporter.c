/*-------------------------------------------------------------------------
 *
 * exporter.c
 *	  The perfopt exporter: a background worker that serves GET /metrics to
 *	  Prometheus and pushes incidents and capacity alerts to Alertmanager.
 *
 * Both are off by default.  perfopt.metrics_listen ("127.0.0.1:9187", or
 * just a port, which listens on loopback) turns the endpoint on;
 * perfopt.alertmanager_url ("http://127.0.0.1:9093") turns the alerts on.
 * Until one of them is set the worker only waits for a reload, without a
 * database connection.
 *
 * The endpoint.  libmicrohttpd runs in the worker's own thread, in its
 * "external select" mode: the worker selects on its sockets and lets it
 * handle what is ready, so the request handler runs in the worker's
 * thread, where it may use the database.  A scrape is one transaction
 * that runs perfopt_prometheus_text() (bounded queries and shared memory)
 * under a 10-second statement timeout.  At most MAX_CONNECTIONS clients are
 * served at once, at most MAX_CONNECTIONS_PER_ADDRESS from one address, a
 * client that sends nothing is dropped after CONNECTION_TIMEOUT seconds and
 * one that has not sent a whole request REQUEST_TIMEOUT seconds after it
 * connected (or after its last answer) is dropped too, however slowly it
 * keeps sending: so slow or hostile clients hold a few sockets for a few
 * seconds, never the worker nor every slot.  With perfopt.metrics_user it
 * asks for basic authentication, with the password on the first line of
 * perfopt.metrics_password_file (both superuser-only settings): the server
 * logs every setting that changes on a reload, so the password itself is
 * never a setting, and perfopt never logs it.  A password file that cannot
 * be read, or whose first line is empty, refuses every request: an empty
 * password is no password.
 *
 * The alerts.  Every ALERT_INTERVAL seconds the open incidents and capacity
 * alerts, and those closed in the last 15 minutes, are posted to
 * Alertmanager's v2 API: open ones with an endsAt a few intervals ahead
 * (so they stay firing while re-sent, and expire if perfopt goes away),
 * closed ones with their end.  Messages name Alertmanager by its URL
 * without the user name, password, query or fragment it may carry.
 * libcurl posts with a 2-second connect and
 * 5-second total timeout; after a failure the next try waits 2, 4, 8 ...
 * up to 300 seconds.  The launcher, which raises incidents, never waits for
 * Alertmanager.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/select.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "observability/exporter.h"
#include "metrics/latency.h"
#include "bgw/launcher.h"
#include "perfopt.h"
#include "observability/prometheus.h"

#define MAX_CONNECTIONS		32
#define MAX_CONNECTIONS_PER_ADDRESS	8
#define CONNECTION_TIMEOUT	5		/* seconds without a byte */
#define REQUEST_TIMEOUT		5		/* seconds to send a whole request */
#define SCRAPE_TIMEOUT_MS	10000
#define ALERT_INTERVAL		30		/* seconds */
#define ALERT_MAX_BACKOFF	300		/* seconds */
#define IDLE_WAIT_MS		1000

char	   *perfopt_metrics_listen = NULL;
char	   *perfopt_metrics_user = NULL;
char	   *perfopt_metrics_password_file = NULL;
char	   *perfopt_alertmanager_url = NULL;

static struct MHD_Daemon *daemon_handle = NULL;
static char *metrics_password = NULL;	/* read from perfopt.metrics_password_file */
static char *daemon_address = NULL;
static bool connected = false;
static MemoryContext scrape_cxt = NULL;

/* The open connections, and since when each has been sending its request */
typedef struct Client
{
	bool		in_use;
	bool		reading;		/* its request is not all there yet */
	MHD_socket	fd;
	TimestampTz since;
} Client;

static Client clients[MAX_CONNECTIONS];

/* Alert pushing state */
static TimestampTz next_alert_push = 0;
static int	alert_failures = 0;

PGDLLEXPORT void perfopt_exporter_main(Datum main_arg);

/* Register the exporter; called from _PG_init when preloaded */
void
perfopt_exporter_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "perfopt");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "perfopt_exporter_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "perfopt exporter");
	snprintf(worker.bgw_type, BGW_MAXLEN, "perfopt exporter");
	RegisterBackgroundWorker(&worker);
}

/* Connect to perfopt.database the first time something needs it */
static void
ensure_connected(void)
{
	if (connected)
		return;
	perfopt_worker_connect(perfopt_database);
	pgstat_report_appname("perfopt exporter");
	connected = true;
}

/*
 * url without its user name and password, query and fragment, for
 * messages: perfopt.alertmanager_url may carry credentials
 */
static char *
redact_url(const char *url)
{
	const char *scheme_end = strstr(url, "://");
	const char *host = scheme_end ? scheme_end + 3 : url;
	const char *authority_end = host + strcspn(host, "/?#");
	const char *at = NULL;
	const char *end;

	for (const char *p = host; p < authority_end; p++)
		if (*p == '@')
			at = p;
	if (at != NULL)
		host = at + 1;
	end = authority_end + strcspn(authority_end, "?#");
	return psprintf("%.*s%.*s", (int) (scheme_end ? scheme_end + 3 - url : 0), url,
					(int) (end - host), host);
}

/* libmicrohttpd's connection notifier: keep track of the open connections */
static void
notify_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
				  enum MHD_ConnectionNotificationCode toe)
{
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
	{
		const union MHD_ConnectionInfo *info =
			MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);

		*socket_context = NULL;
		for (int i = 0; i < MAX_CONNECTIONS; i++)
			if (!clients[i].in_use)
			{
				clients[i].in_use = true;
				clients[i].reading = info != NULL;
				clients[i].fd = info ? info->connect_fd : MHD_INVALID_SOCKET;
				clients[i].since = GetCurrentTimestamp();
				*socket_context = &clients[i];
				break;
			}
	}
	else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL)
	{
		((Client *) *socket_context)->in_use = false;
		*socket_context = NULL;
	}
}

/* The Client of a connection, or NULL */
static Client *
connection_client(struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return info ? (Client *) info->socket_context : NULL;
}

/* A request was answered: the next one on the connection has its own time */
static void
request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
				  enum MHD_RequestTerminationCode toe)
{
	Client	   *client = connection_client(connection);

	if (client != NULL && client->in_use)
	{
		client->reading = true;
		client->since = GetCurrentTimestamp();
	}
}

/*
 * Drop the clients that have taken more than REQUEST_TIMEOUT to send a
 * request: shutting their socket down makes libmicrohttpd close it
 */
static void
drop_slow_clients(void)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < MAX_CONNECTIONS; i++)
		if (clients[i].in_use && clients[i].reading &&
			TimestampDifferenceExceeds(clients[i].since, now, REQUEST_TIMEOUT * 1000))
		{
			shutdown(clients[i].fd, SHUT_RDWR);
			clients[i].reading = false;
		}
}

/* Compare two strings in time that depends on their lengths only */
static bool
same_secret(const char *a, const char *b)
{
	size_t		la = strlen(a),
				lb = strlen(b);
	unsigned char diff = (la != lb);

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char) a[i] ^ (unsigned char) b[i % (lb ? lb : 1)];
	return diff == 0;
}

/* A plain-text response with a status */
static enum MHD_Result
respond(struct MHD_Connection *connection, unsigned int status, const char *body,
		size_t length)
{
	struct MHD_Response *response;
	enum MHD_Result ret;

	response = MHD_create_response_from_buffer(length, (void *) body, MHD_RESPMEM_MUST_COPY);
	if (response == NULL)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
							status == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
							: "text/plain; charset=utf-8");
	ret = MHD_queue_response(connection, status, response);
	MHD_destroy_response(response);
	return ret;
}

/* Is the request's basic authentication right, when one is asked for? */
static bool
authorized(struct MHD_Connection *connection)
{
	char	   *password = NULL;
	char	   *user;
	bool		ok;

	if (perfopt_metrics_user == NULL || perfopt_metrics_user[0] == '\0')
		return true;
	user = MHD_basic_auth_get_username_password(connection, &password);
	ok = user != NULL && password != NULL && metrics_password != NULL &&
		metrics_password[0] != '\0' && password[0] != '\0' &&
		same_secret(user, perfopt_metrics_user) &&
		same_secret(password, metrics_password);
	if (user)
		MHD_free(user);
	if (password)
		MHD_free(password);
	return ok;
}

/* Read the password from perfopt.metrics_password_file (its first line) */
static void
read_password_file(void)
{
	FILE	   *file;
	char		line[1024];

	if (metrics_password != NULL)
	{
		explicit_bzero(metrics_password, strlen(metrics_password));
		pfree(metrics_password);
		metrics_password = NULL;
	}
	if (perfopt_metrics_password_file == NULL || perfopt_metrics_password_file[0] == '\0')
		return;
	file = AllocateFile(perfopt_metrics_password_file, "r");
	if (file == NULL)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("perfopt exporter could not read perfopt.metrics_password_file \"%s\": %m",
						perfopt_metrics_password_file),
				 errhint("Until it can, /metrics refuses every request.")));
		return;
	}
	if (fgets(line, sizeof(line), file) != NULL)
		line[strcspn(line, "\r\n")] = '\0';
	else
		line[0] = '\0';
	if (line[0] != '\0')
		metrics_password = MemoryContextStrdup(TopMemoryContext, line);
	else
		ereport(LOG,
				(errmsg("perfopt exporter: the first line of perfopt.metrics_password_file \"%s\" is empty",
						perfopt_metrics_password_file),
				 errhint("An empty password is refused: until the file holds one, /metrics refuses every request.")));
	explicit_bzero(line, sizeof(line));
	FreeFile(file);
}

/* Build the exposition in a transaction of its own; NULL after an error */
static char *
scrape(void)
{
	char	   *volatile text = NULL;

	MemoryContextReset(scrape_cxt);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		MemoryContext old;

		(void) perfopt_lock_extension();
		PushActiveSnapshot(GetTransactionSnapshot());
		enable_timeout_after(STATEMENT_TIMEOUT, SCRAPE_TIMEOUT_MS);
		pgstat_report_activity(STATE_RUNNING, "GET /metrics");
		{
			char	   *built = perfopt_prometheus_text();

			old = MemoryContextSwitchTo(scrape_cxt);
			text = pstrdup(built);
			MemoryContextSwitchTo(old);
		}
		disable_timeout(STATEMENT_TIMEOUT, false);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		text = NULL;
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	return text;
}

/* libmicrohttpd's request handler: GET /metrics, nothing else */
static enum MHD_Result
handle_request(void *cls, struct MHD_Connection *connection, const char *url,
			   const char *method, const char *version, const char *upload_data,
			   size_t *upload_data_size, void **con_cls)
{
	static const char denied[] = "authentication required\n";
	char	   *text;
	Client	   *client;

	/* the first call is for the headers only */
	if (*con_cls == NULL)
	{
		*con_cls = (void *) 1;
		return MHD_YES;
	}
	if (*upload_data_size != 0)
	{
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* the whole request is there */
	client = connection_client(connection);
	if (client != NULL)
		client->reading = false;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return respond(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics only\n", 18);
	if (strcmp(url, "/metrics") != 0)
		return respond(connection, MHD_HTTP_NOT_FOUND, "GET /metrics only\n", 18);
	if (!authorized(connection))
	{
		struct MHD_Response *response;
		enum MHD_Result ret;

		response = MHD_create_response_from_buffer(sizeof(denied) - 1, (void *) denied,
												   MHD_RESPMEM_PERSISTENT);
		ret = MHD_queue_basic_auth_fail_response(connection, "perfopt", response);
		MHD_destroy_response(response);
		return ret;
	}

	ensure_connected();
	text = scrape();
	if (text == NULL)
		return respond(connection, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   "perfopt could not build the metrics; see the server log\n", 56);
	return respond(connection, MHD_HTTP_OK, text, strlen(text));
}

/* Stop serving */
static void
stop_daemon(void)
{
	if (daemon_handle != NULL)
	{
		MHD_stop_daemon(daemon_handle);
		daemon_handle = NULL;
		memset(clients, 0, sizeof(clients));
	}
	if (daemon_address != NULL)
	{
		pfree(daemon_address);
		daemon_address = NULL;
	}
}

/*
 * Serve on perfopt.metrics_listen: "host:port" or a port alone (loopback).
 * A bad address or a port in use is logged; the next reload tries again.
 */
static void
start_daemon(void)
{
	struct sockaddr_in address;
	const char *setting = perfopt_metrics_listen;
	const char *colon = strrchr(setting, ':');
	char		host[64] = "127.0.0.1";
	long		port;
	char	   *end;

	memset(&address, 0, sizeof(address));
	address.sin_family = AF_INET;
	if (colon != NULL)
	{
		size_t		length = colon - setting;

		if (length >= sizeof(host))
			length = sizeof(host) - 1;
		if (length > 0)
		{
			memcpy(host, setting, length);
			host[length] = '\0';
		}
		setting = colon + 1;
	}
	port = strtol(setting, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535 || inet_pton(AF_INET, host, &address.sin_addr) != 1)
	{
		ereport(LOG,
				(errmsg("perfopt exporter: invalid perfopt.metrics_listen \"%s\"", perfopt_metrics_listen),
				 errhint("Use an IPv4 address and a port, such as 127.0.0.1:9187, or a port alone for loopback.")));
		daemon_address = pstrdup(perfopt_metrics_listen);
		return;
	}
	address.sin_port = htons((uint16) port);

	daemon_handle = MHD_start_daemon(MHD_NO_FLAG, (uint16) port, NULL, NULL,
									 handle_request, NULL,
									 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &address,
									 MHD_OPTION_CONNECTION_LIMIT, (unsigned int) MAX_CONNECTIONS,
									 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) MAX_CONNECTIONS_PER_ADDRESS,
									 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) CONNECTION_TIMEOUT,
									 MHD_OPTION_NOTIFY_CONNECTION, notify_connection, NULL,
									 MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
									 MHD_OPTION_END);
	daemon_address = pstrdup(perfopt_metrics_listen);
	if (daemon_handle == NULL)
		ereport(LOG,
				(errmsg("perfopt exporter could not listen on %s:%ld: %m", host, port),
				 errhint("Choose a free port in perfopt.metrics_listen and reload.")));
	else
		ereport(LOG,
				(errmsg("perfopt exporter serves /metrics on %s:%ld", host, port)));
}

/* Follow perfopt.metrics_listen after a start or a reload */
static void
follow_listen_setting(void)
{
	const char *wanted = perfopt_metrics_listen ? perfopt_metrics_listen : "";

	if (daemon_address != NULL && strcmp(daemon_address, wanted) == 0)
		return;
	stop_daemon();
	if (wanted[0] != '\0')
		start_daemon();
}

/* The alerts to post, as Alertmanager's v2 JSON; NULL when there are none */
static char *
alerts_json(void)
{
	char	   *volatile json = NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_connect();
		if (perfopt_lock_extension() &&
			SPI_execute("SELECT to_regclass('perfopt.incidents') IS NOT NULL", true, 1) > 0 &&
			strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") == 0 &&
			SPI_execute("SELECT jsonb_agg(a)::text FROM ("
						" SELECT jsonb_build_object("
						"   'labels', jsonb_build_object('alertname', 'PerfoptIncident',"
						"       'severity', severity, 'incident', id::text,"
						"       'database', current_database(), 'service', 'perfopt'),"
						"   'annotations', jsonb_build_object('summary', title, 'description', details::text),"
						"   'startsAt', opened_at,"
						"   'endsAt', coalesce(resolved_at, now() + interval '3 minutes')) AS a"
						"   FROM perfopt.incidents"
						"  WHERE resolved_at IS NULL OR resolved_at > now() - interval '15 minutes'"
						" UNION ALL"
						" SELECT jsonb_build_object("
						"   'labels', jsonb_build_object('alertname', 'PerfoptCapacity',"
						"       'severity', severity, 'resource', resource, 'entity', entity,"
						"       'database', current_database(), 'service', 'perfopt'),"
						"   'annotations', jsonb_build_object('summary', message,"
						"       'description', 'runs out about ' || exhaustion_at),"
						"   'startsAt', raised_at,"
						"   'endsAt', coalesce(cleared_at, now() + interval '3 minutes'))"
						"   FROM perfopt.capacity_alerts"
						"  WHERE cleared_at IS NULL OR cleared_at > now() - interval '15 minutes') s",
						true, 1) > 0 && SPI_processed == 1)
		{
			char	   *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

			if (value != NULL)
				json = MemoryContextStrdup(scrape_cxt, value);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		json = NULL;
	}
	PG_END_TRY();
	return json;
}

/* Post the alerts; returns whether Alertmanager took them */
static bool
post_alerts(const char *json)
{
	CURL	   *curl = curl_easy_init();
	struct curl_slist *headers = NULL;
	char	   *url;
	long		status = 0;
	CURLcode	result;

	if (curl == NULL)
		return false;
	url = psprintf("%s/api/v2/alerts", perfopt_alertmanager_url);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	result = curl_easy_perform(curl);
	if (result == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);

	/* from here on, url is for messages */
	url = redact_url(url);
	if (result != CURLE_OK || status != 200)
	{
		if (alert_failures == 0)
			ereport(LOG,
					(errmsg("perfopt exporter could not post alerts to %s: %s",
							url, result != CURLE_OK ? curl_easy_strerror(result)
							: psprintf("HTTP status %ld", status)),
					 errhint("perfopt retries with a growing delay; check perfopt.alertmanager_url.")));
		return false;
	}
	if (alert_failures > 0)
		ereport(LOG, (errmsg("perfopt exporter posts alerts to %s again", url)));
	return true;
}

/* Push the alerts when it is time */
static void
push_alerts_if_due(void)
{
	TimestampTz now = GetCurrentTimestamp();
	char	   *json;
	bool		ok = true;
	int			delay;

	if (perfopt_alertmanager_url == NULL || perfopt_alertmanager_url[0] == '\0' ||
		now < next_alert_push)
		return;
	ensure_connected();
	MemoryContextReset(scrape_cxt);
	json = alerts_json();
	if (json != NULL)
		ok = post_alerts(json);
	alert_failures = ok ? 0 : alert_failures + 1;
	delay = ok ? ALERT_INTERVAL : Min(ALERT_MAX_BACKOFF, 1 << Min(alert_failures, 9));
	next_alert_push = now + (TimestampTz) delay * USECS_PER_SEC;
}

/* Entry point of the exporter worker */
void
perfopt_exporter_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	perfopt_latency_skip_this_process();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	scrape_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt exporter",
									   ALLOCSET_DEFAULT_SIZES);
	read_password_file();
	follow_listen_setting();

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			read_password_file();
			follow_listen_setting();
			next_alert_push = 0;
		}

		push_alerts_if_due();

		if (daemon_handle == NULL)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 IDLE_WAIT_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}

		/* serve: wait for sockets at most a second, then let the daemon work */
		{
			fd_set		readable,
						writable,
						failed;
			MHD_socket	highest = 0;
			struct timeval wait = {1, 0};
			MHD_UNSIGNED_LONG_LONG timeout_ms;

			FD_ZERO(&readable);
			FD_ZERO(&writable);
			FD_ZERO(&failed);
			if (MHD_get_fdset(daemon_handle, &readable, &writable, &failed, &highest) != MHD_YES)
				highest = 0;
			if (MHD_get_timeout(daemon_handle, &timeout_ms) == MHD_YES && timeout_ms < 1000)
			{
				wait.tv_sec = 0;
				wait.tv_usec = (long) timeout_ms * 1000;
			}
			if (select(highest + 1, &readable, &writable, &failed, &wait) < 0 && errno != EINTR)
				ereport(LOG, (errmsg("perfopt exporter: select failed: %m")));
			if (!PostmasterIsAlive())
				proc_exit(1);
			MHD_run(daemon_handle);
			drop_slow_clients();
		}
	}
}
