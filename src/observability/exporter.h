/*-------------------------------------------------------------------------
 *
 * exporter.h
 *	  The worker that serves /metrics and pushes alerts to Alertmanager.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_EXPORTER_H
#define PERFOPT_EXPORTER_H

/* GUCs: where to serve /metrics, its credentials, where Alertmanager is */
extern char *perfopt_metrics_listen;
extern char *perfopt_metrics_user;
extern char *perfopt_metrics_password_file;
extern char *perfopt_alertmanager_url;

extern void perfopt_exporter_register(void);

#endif							/* PERFOPT_EXPORTER_H */
