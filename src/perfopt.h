/*-------------------------------------------------------------------------
 *
 * perfopt.h
 *	  What most of perfopt's subsystems use: the settings that belong to
 *	  no single subsystem, the clock, the worker toolkit and the
 *	  extension lock.
 *
 * It only gathers other headers and declares nothing of its own; perfopt.c
 * (module load) defines nothing that another file needs.  A file may as
 * well include the headers below that it uses.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_H
#define PERFOPT_H

#include "bgw/worker.h"
#include "common/clock.h"
#include "common/extension_lock.h"
#include "common/settings.h"

#endif							/* PERFOPT_H */
