/*-------------------------------------------------------------------------
 *
 * security.c
 *	  Running perfopt's work as the role it is done for, restricted.
 *
 * Planning a statement is running code: the planner folds IMMUTABLE and
 * STABLE functions.  So perfopt never plans or runs a role's statement as
 * anyone else, superuser least of all.  It does what PostgreSQL's own
 * maintenance commands do when they evaluate a table owner's index
 * expressions (vacuum_rel, do_analyze_rel, DefineIndex): switch to the
 * role with SECURITY_RESTRICTED_OPERATION, open a GUC nest level so that
 * nothing the code sets survives it, and resolve names with a path chosen
 * on purpose.  For a tenant's text that path is the tenant's own default
 * one, since pg_stat_statements does not record the path a statement ran
 * under and the caller's path must never decide what a name means.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_db_role_setting.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "common/security.h"

/* the boot value of search_path, used when no setting names one */
#define DEFAULT_SEARCH_PATH "\"$user\", public"

/* The search_path entry of a pg_db_role_setting row, or NULL */
static char *
setting_search_path(Relation rel, Oid databaseid, Oid roleid)
{
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *path = NULL;

	ScanKeyInit(&keys[0], Anum_pg_db_role_setting_setdatabase,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(databaseid));
	ScanKeyInit(&keys[1], Anum_pg_db_role_setting_setrole,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(roleid));
	scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true, NULL, 2, keys);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		config = heap_getattr(tuple, Anum_pg_db_role_setting_setconfig,
										  RelationGetDescr(rel), &isnull);

		if (!isnull)
		{
			ArrayType  *array = DatumGetArrayTypeP(config);
			Datum	   *items;
			bool	   *nulls;
			int			n;

			deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &items, &nulls, &n);
			for (int i = 0; i < n && path == NULL; i++)
			{
				char	   *item;

				if (nulls[i])
					continue;
				item = TextDatumGetCString(items[i]);
				if (strncmp(item, "search_path=", 12) == 0)
					path = pstrdup(item + 12);
			}
		}
	}
	systable_endscan(scan);
	return path;
}

/*
 * The search_path roleid starts its sessions in this database with: the
 * setting for the role in this database, else for the role, else for the
 * database, else the built-in default; as a login would apply them.
 */
char *
perfopt_role_search_path(Oid roleid)
{
	/* the advisor switches to the same role for every what-if costing */
	static Oid	cached_role = InvalidOid;
	static LocalTransactionId cached_lxid = InvalidLocalTransactionId;
	static char cached_path[1024];
	Relation	rel;
	char	   *path;

	if (roleid == cached_role && MyProc->lxid == cached_lxid)
		return pstrdup(cached_path);

	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	path = setting_search_path(rel, MyDatabaseId, roleid);
	if (path == NULL)
		path = setting_search_path(rel, InvalidOid, roleid);
	if (path == NULL)
		path = setting_search_path(rel, MyDatabaseId, InvalidOid);
	table_close(rel, AccessShareLock);
	if (path == NULL)
		path = pstrdup(DEFAULT_SEARCH_PATH);

	/* kept for the rest of this transaction, if it fits */
	if (strlen(path) < sizeof(cached_path))
	{
		strlcpy(cached_path, path, sizeof(cached_path));
		cached_role = roleid;
		cached_lxid = MyProc->lxid;
	}
	return path;
}

/* Become roleid, restricted, in a GUC nest level; see security.h */
void
perfopt_begin_as_role(Oid roleid, PerfoptRoleSwitch *sw)
{
	const char *path;

	GetUserIdAndSecContext(&sw->saved_user, &sw->saved_context);
	path = OidIsValid(roleid) ? perfopt_role_search_path(roleid) : PERFOPT_OWN_SEARCH_PATH;
	SetUserIdAndSecContext(OidIsValid(roleid) ? roleid : sw->saved_user,
						   sw->saved_context | SECURITY_RESTRICTED_OPERATION);
	sw->nest_level = NewGUCNestLevel();
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	/*
	 * What perfopt parses and plans here is not the application's work: under
	 * pg_stat_statements.track = all each statement the advisor plans with a
	 * sampled value would stay in pg_stat_statements as a nested entry of its
	 * role (taking a slot of pg_stat_statements.max, and shown beside the
	 * statement it copies).  Only "all" is lowered, for this nest level.
	 */
	{
		const char *track = GetConfigOption("pg_stat_statements.track", true, false);

		if (track != NULL && strcmp(track, "all") == 0)
			(void) set_config_option("pg_stat_statements.track", "top", PGC_SUSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
	}
}

/* Back to the saved user and settings; see security.h */
void
perfopt_end_as_role(PerfoptRoleSwitch *sw)
{
	AtEOXact_GUC(false, sw->nest_level);
	SetUserIdAndSecContext(sw->saved_user, sw->saved_context);
}

/* fn(arg) as roleid, switched back on error too; see security.h */
void
perfopt_run_as_role(Oid roleid, void (*fn) (void *arg), void *arg)
{
	PerfoptRoleSwitch sw;

	perfopt_begin_as_role(roleid, &sw);
	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		perfopt_end_as_role(&sw);
		PG_RE_THROW();
	}
	PG_END_TRY();
	perfopt_end_as_role(&sw);
}

/* A worker's session resolves names in pg_catalog only */
void
perfopt_pin_search_path(void)
{
	SetConfigOption("search_path", PERFOPT_OWN_SEARCH_PATH, PGC_SUSET, PGC_S_OVERRIDE);
}
