#!/bin/sh
# Wait for the database to answer, then apply migrations. Run once before web and workers
# start (compose's `migrate` service, systemd's ExecStartPre). Settings come from MAILER_*.
#   MAILER_PRESTART_TRIES  attempts before giving up (default 30)
#   MAILER_PRESTART_DELAY  seconds between attempts (default 2)
set -eu

tries=${MAILER_PRESTART_TRIES:-30}
delay=${MAILER_PRESTART_DELAY:-2}
mailer=${MAILER_BIN:-mailer}

attempt=1
until problem=$("$mailer" db current 2>&1); do
  if [ "$attempt" -ge "$tries" ]; then
    echo "prestart: database not reachable after $tries attempts: $problem" >&2
    exit 1
  fi
  echo "prestart: waiting for the database ($attempt/$tries)" >&2
  attempt=$((attempt + 1))
  sleep "$delay"
done

"$mailer" db upgrade
