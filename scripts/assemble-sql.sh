#!/bin/sh
# Assembles an extension script from its sources: the psql guard line for
# the command given first, then each source file with its name above it.
# Called by the Makefile: assemble-sql.sh COMMAND FILE...
command=$1
shift
printf '\\echo Use "%s" to load this file. \\quit\n' "$command"
for f in "$@"; do
    printf '\n-- %s\n' "$f"
    cat "$f"
done
