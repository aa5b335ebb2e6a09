/*
 * cache_probe: time from COMMIT to the invalidation of its key in Redis.
 *
 *   cache_probe CONNINFO REDIS_HOST REDIS_PORT CHANNEL COUNT PER_SECOND
 *
 * Subscribes to CHANNEL, then COUNT times (PER_SECOND a second): updates
 * row i of table probe (watched with the template 'probe:{id}') in its own
 * transaction and waits for the batch that names "probe:i" on the channel.
 * The worker publishes a batch after Redis confirmed its UNLINK, so the
 * message means the key is gone.  Prints one line per probe: the
 * milliseconds from sending the UPDATE (autocommit: the COMMIT) and from
 * the moment the COMMIT returned to the client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

int
main(int argc, char **argv)
{
	PGconn	   *pg;
	redisContext *sub;
	redisReply *reply;
	int			count,
				rate;
	struct timeval tv = {5, 0};
	double		next;

	if (argc != 7)
	{
		fprintf(stderr, "usage: %s CONNINFO REDIS_HOST REDIS_PORT CHANNEL COUNT PER_SECOND\n", argv[0]);
		return 2;
	}
	count = atoi(argv[5]);
	rate = atoi(argv[6]);

	pg = PQconnectdb(argv[1]);
	if (PQstatus(pg) != CONNECTION_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(pg));
		return 1;
	}
	sub = redisConnectWithTimeout(argv[2], atoi(argv[3]), tv);
	if (sub == NULL || sub->err)
	{
		fprintf(stderr, "cannot connect to Redis\n");
		return 1;
	}
	redisSetTimeout(sub, tv);
	reply = redisCommand(sub, "SUBSCRIBE %s", argv[4]);
	if (reply == NULL)
		return 1;
	freeReplyObject(reply);

	next = now_ms();
	for (int i = 1; i <= count; i++)
	{
		char		sql[128];
		char		needle[64];
		double		t_sent,
					t_committed,
					t_seen;
		PGresult   *res;
		int			found = 0;

		while (now_ms() < next)
			usleep(200);
		next += 1000.0 / rate;

		snprintf(sql, sizeof(sql), "UPDATE probe SET v = v + 1 WHERE id = %d", i);
		snprintf(needle, sizeof(needle), "\"probe:%d\"", i);
		t_sent = now_ms();
		res = PQexec(pg, sql);
		t_committed = now_ms();
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			fprintf(stderr, "%s", PQerrorMessage(pg));
			return 1;
		}
		PQclear(res);

		while (!found)
		{
			if (redisGetReply(sub, (void **) &reply) != REDIS_OK)
			{
				fprintf(stderr, "no invalidation of probe:%d within 5 s\n", i);
				return 1;
			}
			if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
				reply->element[2]->type == REDIS_REPLY_STRING &&
				strstr(reply->element[2]->str, needle) != NULL)
				found = 1;
			freeReplyObject(reply);
		}
		t_seen = now_ms();
		printf("%.3f\t%.3f\n", t_seen - t_sent, t_seen - t_committed);
	}
	PQfinish(pg);
	redisFree(sub);
	return 0;
}
