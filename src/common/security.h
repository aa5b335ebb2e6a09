/*-------------------------------------------------------------------------
 *
 * security.h
 *	  Running perfopt's work as the role it is done for, restricted.
 *
 * See security.c and docs/security.md.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_SECURITY_H
#define PERFOPT_SECURITY_H

/* the search_path perfopt's own statements run with */
#define PERFOPT_OWN_SEARCH_PATH "pg_catalog, pg_temp"

/* What perfopt_begin_as_role saved, for perfopt_end_as_role */
typedef struct PerfoptRoleSwitch
{
	Oid			saved_user;
	int			saved_context;
	int			nest_level;
} PerfoptRoleSwitch;

/*
 * Become roleid, restricted (SECURITY_RESTRICTED_OPERATION), inside a new
 * GUC nest level with search_path set to that role's own default (its
 * ALTER ROLE / ALTER DATABASE setting, else "$user", public).  Pass
 * InvalidOid to stay the current user and only pin perfopt's own path.
 */
extern void perfopt_begin_as_role(Oid roleid, PerfoptRoleSwitch *sw);

/* Undo perfopt_begin_as_role; on the error path too (call it in PG_CATCH) */
extern void perfopt_end_as_role(PerfoptRoleSwitch *sw);

/*
 * fn(arg) between perfopt_begin_as_role(roleid) and perfopt_end_as_role,
 * which runs on the error path too before the error goes on
 */
extern void perfopt_run_as_role(Oid roleid, void (*fn) (void *arg), void *arg);

/* The search_path roleid starts its sessions in this database with */
extern char *perfopt_role_search_path(Oid roleid);

/* Pin search_path to pg_catalog, pg_temp for the rest of the session */
extern void perfopt_pin_search_path(void);

#endif							/* PERFOPT_SECURITY_H */
