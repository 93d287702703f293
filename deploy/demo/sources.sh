#!/usr/bin/env bash
# The demo city's integrating systems: the minutes package (notula), the permits package
# (omgeving), the HR package (personeel) and the citizens' e-counter (loket). Each gets its own broker user; its AMQP
# URL is kept in $PARAAF_DATA_DIR/sources/<source>.url (printed once by `paraaf sources add`).
set -euo pipefail
paraaf="${PARAAF:-.venv/bin/paraaf}"
dir="${PARAAF_DATA_DIR:-var}/sources"
mkdir -p "$dir" && chmod 700 "$dir"
add() {
  local source=$1; shift
  local url
  url=$("$paraaf" sources add "$source" --org default "$@" 2>/dev/null)
  if [ -n "$url" ]; then
    umask 077 && printf '%s\n' "$url" > "$dir/$source.url"
  fi
}
add notula --flows collegebesluit --any-submitter
add omgeving --flows omgevingsvergunning --any-submitter
add personeel --flows evaluatieverslag --any-submitter
add loket --ad-hoc-steps --any-submitter
echo "Demo sources: notula, omgeving, personeel, loket (their AMQP URLs are in $dir)."
