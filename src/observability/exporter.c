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
 * "external select" mode: the worker waits on the daemon's sockets (the
 * listening one and every client's), on its latch and on the postmaster in
 * one WaitEventSet, and then lets libmicrohttpd handle what is ready; so a
 * SIGTERM or a reload is taken at once, whatever the clients do.  No
 * transaction runs inside a libmicrohttpd callback: the request handler
 * checks the request and suspends the connection, and the main loop builds
 * the exposition for every suspended client in one step of its own (a
 * transaction that runs perfopt_prometheus_text(), bounded queries and
 * shared memory, under a 10-second statement timeout), hands each its
 * response and resumes it.  At most MAX_CONNECTIONS clients are served at
 * once, at most MAX_CONNECTIONS_PER_ADDRESS from one address, a client
 * that sends nothing is dropped after CONNECTION_TIMEOUT seconds and one
 * that has not sent a whole request REQUEST_TIMEOUT seconds after it
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
 * libcurl posts with a 2-second connect and 5-second total timeout, through
 * its multi interface: its sockets are in the same WaitEventSet, so a slow
 * or black-holed Alertmanager delays neither a scrape, a reload nor a
 * shutdown.  After a failure the next try waits 2, 4, 8 ... up to 300
 * seconds.  The launcher, which raises incidents, never waits for
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

#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "observability/exporter.h"
#include "bgw/launcher.h"
#include "bgw/worker.h"
#include "metrics/latency.h"
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
static MemoryContext loop_cxt = NULL;	/* reset at each turn of the loop */
static MemoryContext settings_cxt = NULL;	/* the password, the address */
static bool resumed = false;	/* answer_waiting_clients resumed someone */

/* The open connections, and since when each has been sending its request */
typedef struct Client
{
	bool		in_use;
	bool		reading;		/* its request is not all there yet */
	bool		waiting;		/* suspended until the loop has its metrics */
	MHD_socket	fd;
	TimestampTz since;
	struct MHD_Connection *connection;
	struct MHD_Response *response;	/* built by the loop, for the handler to
									 * queue once resumed */
	unsigned int status;
} Client;

static Client clients[MAX_CONNECTIONS];

/* Alert pushing state */
static TimestampTz next_alert_push = 0;
static int	alert_failures = 0;
static CURLM *push_multi = NULL;
static CURL *push_handle = NULL;	/* the post in flight, or NULL */
static struct curl_slist *push_headers = NULL;
static TimestampTz push_started = 0;
static char *push_url = NULL;	/* Alertmanager's, redacted, for messages */
static MemoryContext push_cxt = NULL;	/* holds push_url */

PGDLLEXPORT void perfopt_exporter_main(Datum main_arg);

/* Register the exporter; called from _PG_init when preloaded */
void
perfopt_exporter_register(void)
{
	perfopt_worker_register("perfopt exporter", "perfopt_exporter_main", 10);
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
		Client	   *client = (Client *) *socket_context;

		if (client->response != NULL)
			MHD_destroy_response(client->response);
		memset(client, 0, sizeof(Client));
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

/* A plain-text response, copied, with its content type */
static struct MHD_Response *
plain_response(unsigned int status, const char *body, size_t length)
{
	struct MHD_Response *response;

	response = MHD_create_response_from_buffer(length, (void *) body, MHD_RESPMEM_MUST_COPY);
	if (response != NULL)
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
								status == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
								: "text/plain; charset=utf-8");
	return response;
}

/* Queue a plain-text response with a status */
static enum MHD_Result
respond(struct MHD_Connection *connection, unsigned int status, const char *body,
		size_t length)
{
	struct MHD_Response *response = plain_response(status, body, length);
	enum MHD_Result ret;

	if (response == NULL)
		return MHD_NO;
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
		metrics_password = MemoryContextStrdup(settings_cxt, line);
	else
		ereport(LOG,
				(errmsg("perfopt exporter: the first line of perfopt.metrics_password_file \"%s\" is empty",
						perfopt_metrics_password_file),
				 errhint("An empty password is refused: until the file holds one, /metrics refuses every request.")));
	explicit_bzero(line, sizeof(line));
	FreeFile(file);
}

/* What a scrape step builds, and where */
typedef struct ScrapeResult
{
	MemoryContext cxt;
	char	   *text;
} ScrapeResult;

/* The step of a scrape: the exposition, copied out of the transaction */
static void
build_exposition(void *arg)
{
	ScrapeResult *result = (ScrapeResult *) arg;
	char	   *built = perfopt_prometheus_text();

	result->text = MemoryContextStrdup(result->cxt, built);
}

/*
 * Build the exposition in a step of its own (in loop_cxt); NULL after an
 * error.  Without the extension there is nothing to lock, and the
 * exposition still has perfopt_up and what shared memory holds.
 */
static char *
scrape(void)
{
	PerfoptStep step = {0};
	ScrapeResult result = {loop_cxt, NULL};

	step.flags = PERFOPT_STEP_LOCK_EXTENSION | PERFOPT_STEP_SPI;
	step.timeout_ms = SCRAPE_TIMEOUT_MS;
	step.activity = "GET /metrics";
	step.cxt = loop_cxt;
	if (perfopt_run_step(&step, build_exposition, &result) == NULL && !step.ran)
	{
		step.flags = PERFOPT_STEP_SPI;
		(void) perfopt_run_step(&step, build_exposition, &result);
	}
	return result.text;
}

/*
 * Answer the clients whose request waits, suspended: one scrape for all of
 * them, then each gets its response and is resumed (libmicrohttpd calls
 * the handler again, which queues it).
 */
static void
answer_waiting_clients(void)
{
	static const char failed[] = "perfopt could not build the metrics; see the server log\n";
	char	   *text;
	bool		any = false;

	for (int i = 0; i < MAX_CONNECTIONS; i++)
		any |= clients[i].in_use && clients[i].waiting;
	if (!any)
		return;

	ensure_connected();
	text = scrape();
	for (int i = 0; i < MAX_CONNECTIONS; i++)
	{
		Client	   *client = &clients[i];

		if (!client->in_use || !client->waiting)
			continue;
		client->status = text != NULL ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR;
		client->response = text != NULL ? plain_response(MHD_HTTP_OK, text, strlen(text))
			: plain_response(MHD_HTTP_INTERNAL_SERVER_ERROR, failed, sizeof(failed) - 1);
		client->waiting = false;
		MHD_resume_connection(client->connection);
		resumed = true;
	}
}

/*
 * libmicrohttpd's request handler: GET /metrics, nothing else.  It runs no
 * transaction: a request for the metrics is suspended, the main loop
 * builds its response and resumes it, and the handler, called again,
 * queues that response.
 */
static enum MHD_Result
handle_request(void *cls, struct MHD_Connection *connection, const char *url,
			   const char *method, const char *version, const char *upload_data,
			   size_t *upload_data_size, void **con_cls)
{
	static const char denied[] = "authentication required\n";
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
	client = connection_client(connection);

	/* resumed: the main loop has built the response */
	if (client != NULL && client->response != NULL)
	{
		struct MHD_Response *response = client->response;
		enum MHD_Result ret;

		client->response = NULL;
		ret = MHD_queue_response(connection, client->status, response);
		MHD_destroy_response(response);
		return ret;
	}

	/* the whole request is there */
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
	if (client == NULL)
		return respond(connection, MHD_HTTP_SERVICE_UNAVAILABLE, "too many clients\n", 17);

	client->connection = connection;
	client->waiting = true;
	MHD_suspend_connection(connection);
	return MHD_YES;
}

/* Stop serving */
static void
stop_daemon(void)
{
	if (daemon_handle != NULL)
	{
		/* libmicrohttpd stops no daemon with a connection suspended */
		for (int i = 0; i < MAX_CONNECTIONS; i++)
			if (clients[i].in_use && clients[i].waiting)
			{
				clients[i].waiting = false;
				MHD_resume_connection(clients[i].connection);
			}
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
		daemon_address = MemoryContextStrdup(settings_cxt, perfopt_metrics_listen);
		return;
	}
	address.sin_port = htons((uint16) port);

	daemon_handle = MHD_start_daemon(MHD_ALLOW_SUSPEND_RESUME, (uint16) port, NULL, NULL,
									 handle_request, NULL,
									 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &address,
									 MHD_OPTION_CONNECTION_LIMIT, (unsigned int) MAX_CONNECTIONS,
									 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) MAX_CONNECTIONS_PER_ADDRESS,
									 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) CONNECTION_TIMEOUT,
									 MHD_OPTION_NOTIFY_CONNECTION, notify_connection, NULL,
									 MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
									 MHD_OPTION_END);
	daemon_address = MemoryContextStrdup(settings_cxt, perfopt_metrics_listen);
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

/* What the alerts step builds, and where */
typedef struct AlertsResult
{
	MemoryContext cxt;
	char	   *json;
} AlertsResult;

/* The step of an alert push: the alerts as JSON, copied out of it */
static void
build_alerts(void *arg)
{
	AlertsResult *result = (AlertsResult *) arg;

	if (SPI_execute("SELECT to_regclass('perfopt.incidents') IS NOT NULL", true, 1) > 0 &&
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
			result->json = MemoryContextStrdup(result->cxt, value);
	}
}

/* The alerts to post, as Alertmanager's v2 JSON; NULL when there are none */
static char *
alerts_json(void)
{
	PerfoptStep step = {0};
	AlertsResult result = {loop_cxt, NULL};

	step.flags = PERFOPT_STEP_LOCK_EXTENSION | PERFOPT_STEP_SPI;
	step.activity = "collecting alerts";
	step.cxt = loop_cxt;
	(void) perfopt_run_step(&step, build_alerts, &result);
	return result.json;
}

/* When the next push is due, after one that succeeded or not */
static void
schedule_next_push(bool ok)
{
	int			delay;

	alert_failures = ok ? 0 : alert_failures + 1;
	delay = ok ? ALERT_INTERVAL : Min(ALERT_MAX_BACKOFF, 1 << Min(alert_failures, 9));
	next_alert_push = push_started + (TimestampTz) delay * USECS_PER_SEC;
}

/* Start posting the alerts, without waiting for Alertmanager */
static bool
start_post(const char *json)
{
	char	   *url;

	if (push_multi == NULL)
		push_multi = curl_multi_init();
	push_handle = curl_easy_init();
	if (push_multi == NULL || push_handle == NULL)
	{
		if (push_handle != NULL)
			curl_easy_cleanup(push_handle);
		push_handle = NULL;
		return false;
	}
	url = psprintf("%s/api/v2/alerts", perfopt_alertmanager_url);
	MemoryContextReset(push_cxt);
	push_url = MemoryContextStrdup(push_cxt, redact_url(url));
	push_headers = curl_slist_append(NULL, "Content-Type: application/json");
	/* libcurl copies the strings it is given */
	curl_easy_setopt(push_handle, CURLOPT_URL, url);
	curl_easy_setopt(push_handle, CURLOPT_HTTPHEADER, push_headers);
	curl_easy_setopt(push_handle, CURLOPT_COPYPOSTFIELDS, json);
	curl_easy_setopt(push_handle, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(push_handle, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(push_handle, CURLOPT_NOSIGNAL, 1L);
	curl_multi_add_handle(push_multi, push_handle);
	return true;
}

/* The post is over: log how it went, free it, schedule the next one */
static void
finish_post(CURLcode result)
{
	long		status = 0;

	if (result == CURLE_OK)
		curl_easy_getinfo(push_handle, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(push_multi, push_handle);
	curl_easy_cleanup(push_handle);
	push_handle = NULL;
	curl_slist_free_all(push_headers);
	push_headers = NULL;

	if (result != CURLE_OK || status != 200)
	{
		if (alert_failures == 0)
			ereport(LOG,
					(errmsg("perfopt exporter could not post alerts to %s: %s",
							push_url, result != CURLE_OK ? curl_easy_strerror(result)
							: psprintf("HTTP status %ld", status)),
					 errhint("perfopt retries with a growing delay; check perfopt.alertmanager_url.")));
		schedule_next_push(false);
		return;
	}
	if (alert_failures > 0)
		ereport(LOG, (errmsg("perfopt exporter posts alerts to %s again", push_url)));
	schedule_next_push(true);
}

/* Let libcurl move the post in flight on, and finish it when it is over */
static void
continue_post(void)
{
	int			running;
	int			left;
	CURLMsg    *msg;

	if (push_handle == NULL)
		return;
	curl_multi_perform(push_multi, &running);
	while (push_handle != NULL && (msg = curl_multi_info_read(push_multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == push_handle)
			finish_post(msg->data.result);
}

/* Start pushing the alerts when it is time and no push is in flight */
static void
push_alerts_if_due(void)
{
	char	   *json;

	if (perfopt_alertmanager_url == NULL || perfopt_alertmanager_url[0] == '\0' ||
		push_handle != NULL || GetCurrentTimestamp() < next_alert_push)
		return;
	ensure_connected();
	push_started = GetCurrentTimestamp();
	json = alerts_json();
	if (json == NULL)
		schedule_next_push(true);
	else if (!start_post(json))
		schedule_next_push(false);
	else
		continue_post();
}

/*
 * Wait for the daemon's sockets, the post's, the latch and the postmaster
 * in one WaitEventSet, then let libmicrohttpd and libcurl handle what is
 * ready.  Both give their sockets as fd_sets; at most IDLE_WAIT_MS, so
 * that slow clients are dropped in time.
 */
static void
wait_and_serve(void)
{
	fd_set		readable,
				writable,
				failed;
	MHD_socket	highest = -1;
	int			curl_highest = -1;
	long		timeout_ms = IDLE_WAIT_MS;
	int			nsockets = 0;
	WaitEventSet *set;
	WaitEvent  *events;
	int			n;

	FD_ZERO(&readable);
	FD_ZERO(&writable);
	FD_ZERO(&failed);
	if (daemon_handle != NULL)
	{
		MHD_UNSIGNED_LONG_LONG mhd_ms;

		if (MHD_get_fdset2(daemon_handle, &readable, &writable, &failed, &highest,
						   FD_SETSIZE) != MHD_YES)
			highest = -1;
		if (MHD_get_timeout(daemon_handle, &mhd_ms) == MHD_YES)
			timeout_ms = Min(timeout_ms, (long) mhd_ms);
	}
	if (push_handle != NULL)
	{
		long		curl_ms = -1;

		curl_multi_fdset(push_multi, &readable, &writable, &failed, &curl_highest);
		curl_multi_timeout(push_multi, &curl_ms);
		if (curl_ms >= 0)
			timeout_ms = Min(timeout_ms, curl_ms);
		/* no socket yet (a name being resolved): look again soon */
		if (curl_highest < 0)
			timeout_ms = Min(timeout_ms, 100);
	}
	else if (perfopt_alertmanager_url != NULL && perfopt_alertmanager_url[0] != '\0')
		timeout_ms = Min(timeout_ms,
						 TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_alert_push));
	highest = Max(highest, curl_highest);
	/* libmicrohttpd takes resumed connections back in its next run: now */
	if (resumed)
		timeout_ms = 0;
	resumed = false;

	for (int fd = 0; fd <= highest; fd++)
		if (FD_ISSET(fd, &readable) || FD_ISSET(fd, &writable))
			nsockets++;
	set = perfopt_worker_wait_set(CurrentMemoryContext, nsockets);
	for (int fd = 0; fd <= highest; fd++)
	{
		uint32		wanted = (FD_ISSET(fd, &readable) ? WL_SOCKET_READABLE : 0) |
			(FD_ISSET(fd, &writable) ? WL_SOCKET_WRITEABLE : 0);

		if (wanted != 0)
			AddWaitEventToSet(set, wanted, fd, NULL, NULL);
	}
	events = palloc(sizeof(WaitEvent) * (nsockets + 2));
	n = perfopt_worker_wait_set_wait(set, Max(0, timeout_ms), events, nsockets + 2);
	FreeWaitEventSet(set);

	FD_ZERO(&readable);
	FD_ZERO(&writable);
	FD_ZERO(&failed);
	for (int i = 0; i < n; i++)
	{
		if (events[i].events & WL_SOCKET_READABLE)
			FD_SET(events[i].fd, &readable);
		if (events[i].events & WL_SOCKET_WRITEABLE)
			FD_SET(events[i].fd, &writable);
	}
	if (daemon_handle != NULL)
	{
		MHD_run_from_select(daemon_handle, &readable, &writable, &failed);
		drop_slow_clients();
	}
	continue_post();
}

/* Entry point of the exporter worker */
void
perfopt_exporter_main(Datum main_arg)
{
	/*
	 * The signals perfopt_worker_start sets, as the connection comes only
	 * when needed; until then there is no step for a cancel to cancel
	 * (perfopt_worker_connect installs the toolkit's handler)
	 */
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	pqsignal(SIGINT, SIG_IGN);
	BackgroundWorkerUnblockSignals();
	perfopt_latency_skip_this_process();

	curl_global_init(CURL_GLOBAL_DEFAULT);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt exporter loop",
									 ALLOCSET_DEFAULT_SIZES);
	push_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt exporter alert push",
									 ALLOCSET_SMALL_SIZES);
	settings_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt exporter settings",
										 ALLOCSET_SMALL_SIZES);
	read_password_file();
	follow_listen_setting();

	for (;;)
	{
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		CHECK_FOR_INTERRUPTS();

		/* before a reload, which may stop the daemon: nobody stays suspended */
		answer_waiting_clients();
		if (perfopt_worker_reload())
		{
			read_password_file();
			follow_listen_setting();
			next_alert_push = 0;
		}
		push_alerts_if_due();
		wait_and_serve();
	}
}
