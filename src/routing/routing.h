/*-------------------------------------------------------------------------
 *
 * routing.h
 *	  The instance registry in shared memory, route() and its settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_ROUTING_H
#define PERFOPT_ROUTING_H

#include "datatype/timestamp.h"
#include "utils/guc.h"

/* At most this many instances in the registry */
#define PERFOPT_MAX_INSTANCES	64
#define PERFOPT_ADDRESS_LEN		256
#define PERFOPT_KIND_LEN		16

/* One instance as the health checker sees it */
typedef struct RoutingTarget
{
	int			slot;
	char		name[NAMEDATALEN];
	char		kind[PERFOPT_KIND_LEN];
	char		address[PERFOPT_ADDRESS_LEN];
} RoutingTarget;

/* GUCs */
extern int	perfopt_health_check_interval;
extern int	perfopt_health_check_failures;
extern int	perfopt_health_check_successes;
extern int	perfopt_health_check_timeout;
extern int	perfopt_routing_algorithm;
extern int	perfopt_routing_max_lag;

/* the values of perfopt.routing_algorithm */
extern const struct config_enum_entry perfopt_routing_algorithms[];

extern void perfopt_routing_shmem_request(void);
extern void perfopt_routing_shmem_startup(void);
extern bool perfopt_routing_sync(void);
extern int	perfopt_routing_targets(RoutingTarget *out, int max);
extern void perfopt_routing_report(int slot, const char *name, bool ok, double ms,
								   double connections, int64 lag_bytes);

#endif							/* PERFOPT_ROUTING_H */
