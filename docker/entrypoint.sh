#!/bin/sh
# As the official memcached image: arguments that start with "-" are flags for the
# server (`docker run ferrocached -m 256`); anything else is a command to run.
set -e
if [ "${1#-}" != "$1" ]; then
    set -- ferrocached "$@"
fi
exec "$@"
