#!/usr/bin/env bash
# Local dev/test stack for esk: one Apache Kafka broker (KRaft, combined
# broker+controller) and one redis-server, both on 127.0.0.1, without Docker.
#
#   scripts/stack.sh start    # idempotent; returns once both answer real requests
#   scripts/stack.sh stop     # idempotent
#   scripts/stack.sh status   # exit 0 only if both answer
#   scripts/stack.sh logs [-f]
#
# Kafka comes from Maven Central (the only reachable artifact source besides
# npm/apt), so there are no kafka-*.sh wrappers: we run the main classes with
# java directly. redis-server comes from the Debian package.
#
# Environment (defaults in brackets):
#   ESK_KAFKA_PORT [9092]  ESK_KAFKA_CONTROLLER_PORT [9093]  ESK_REDIS_PORT [6379]
#   ESK_STACK_DIR [<repo>/.stack]  ESK_STACK_WAIT_SECS [90]
#   ESK_KAFKA_JVM_OPTS [-Xms256m -Xmx1g ...]
#   ESK_KAFKA_INITIAL_REBALANCE_DELAY_MS [0]: a production broker's default is 3000; set it
#     to measure what a group join costs there
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

KAFKA_VERSION=3.9.1
SCALA_VERSION=2.13
# kafka_2.13:3.9.1 depends on slf4j-api 1.7.36 but ships no binding on Maven
# Central (the binary tarball adds slf4j-reload4j); without one the broker logs
# nothing at all. slf4j-reload4j would pull reload4j 1.2.19; pin the 1.2.25
# that the official 3.9.1 tarball ships.
SLF4J_VERSION=1.7.36
RELOAD4J_VERSION=1.2.25
# Pinned so Maven does not have to look up "latest" plugin metadata.
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1

KAFKA_PORT=${ESK_KAFKA_PORT:-9092}
CONTROLLER_PORT=${ESK_KAFKA_CONTROLLER_PORT:-9093}
REDIS_PORT=${ESK_REDIS_PORT:-6379}
STACK_DIR=${ESK_STACK_DIR:-$REPO_ROOT/.stack}
WAIT_SECS=${ESK_STACK_WAIT_SECS:-90}
# Two cores shared with the test run: keep the broker small.
KAFKA_JVM_OPTS=${ESK_KAFKA_JVM_OPTS:--Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
INITIAL_REBALANCE_DELAY_MS=${ESK_KAFKA_INITIAL_REBALANCE_DELAY_MS:-0}
JAVA=${JAVA:-java}

KAFKA_HOME=$STACK_DIR/kafka_$SCALA_VERSION-$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_HOME/libs
CONF_DIR=$STACK_DIR/conf
LOG_DIR=$STACK_DIR/logs
RUN_DIR=$STACK_DIR/run
KAFKA_DATA=$STACK_DIR/data/kafka
REDIS_DATA=$STACK_DIR/data/redis
CLUSTER_ID_FILE=$STACK_DIR/data/kafka-cluster-id

KAFKA_PID=$RUN_DIR/kafka.pid
REDIS_PID=$RUN_DIR/redis.pid
KAFKA_PROPS=$CONF_DIR/server.properties

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if ((EUID == 0)); then "$@"; else sudo "$@"; fi
}

# ---------------------------------------------------------------- processes

# A pid file alone is not trusted: after a reboot or crash the pid may belong
# to an unrelated process, so the command line must match too.
pid_alive() { # pidfile pattern
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

kafka_running() { pid_alive "$KAFKA_PID" "kafka.Kafka $KAFKA_PROPS"; }
redis_running() { pid_alive "$REDIS_PID" "redis-server"; }

stop_pid() { # pidfile name
  local pid i
  pid=$(<"$1")
  log "stopping $2 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  # Kafka does a controlled shutdown (a few seconds); only force it if stuck.
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
    sleep 0.5
  done
  log "$2 did not exit after 30s, killing"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1"
}

# ---------------------------------------------------------------- readiness

# Kafka readiness is a real Metadata request (v4, no topics) sent from bash
# over /dev/tcp: no JVM start (kafka.admin.BrokerApiVersionsCommand takes
# ~1 s on an idle 2-core box, much more beside a test run) and no Node deps;
# it answers in milliseconds. A KRaft broker serves client requests only after
# catching up with the metadata log, and a still-fenced broker is left out of
# Metadata responses, so "correlation id echoed and >= 1 broker listed" means
# clients can produce/consume.
#
# Request: int32 size | int16 api_key=3 | int16 version=4 | int32 corr=42 |
#          string client_id="esk-stack" | int32 topics=0 | int8 auto_create=0
# Response prefix: int32 size | int32 corr | int32 throttle | int32 n_brokers
kafka_answers() {
  (
    { exec {sock}<>"/dev/tcp/127.0.0.1/$KAFKA_PORT"; } 2>/dev/null || exit 1
    printf '\x00\x00\x00\x18\x00\x03\x00\x04\x00\x00\x00\x2a\x00\x09esk-stack\x00\x00\x00\x00\x00' >&"$sock"
    # shellcheck disable=SC2046 # word splitting of od output is intended
    set -- $(timeout 5 head -c 16 <&"$sock" | od -An -v -tu1)
    (($# == 16)) || exit 1
    local_corr=$(($5 << 24 | $6 << 16 | $7 << 8 | $8))
    brokers=$(($13 << 24 | $14 << 16 | $15 << 8 | $16))
    ((local_corr == 42 && brokers >= 1))
  )
}

redis_answers() {
  [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

# ---------------------------------------------------------------- install

ensure_java() {
  command -v "$JAVA" >/dev/null || die "java not found (Debian: apt-get install -y openjdk-17-jre-headless)"
}

kafka_pom() {
  cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/stack.sh: only used to fetch the broker's jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>esk.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>ch.qos.reload4j</groupId>
      <artifactId>reload4j</artifactId>
      <version>$RELOAD4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
}

# Jars are resolved once into $KAFKA_LIBS. The .complete marker guards against
# reusing a half-copied directory after an interrupted resolve, and comparing
# the pom re-resolves when the pinned versions above change. ~/.m2 is kept, so
# a wiped stack dir resolves again without downloading.
ensure_kafka_jars() {
  local pom
  pom=$(kafka_pom)
  if [[ -f $KAFKA_LIBS/.complete && -f $KAFKA_HOME/pom.xml && $(<"$KAFKA_HOME/pom.xml") == "$pom" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (Debian: apt-get install -y maven)"
  log "resolving Kafka $KAFKA_VERSION jars with Maven (first run only)"
  mkdir -p "$KAFKA_HOME" "$LOG_DIR"
  printf '%s\n' "$pom" >"$KAFKA_HOME/pom.xml"
  rm -rf "$KAFKA_LIBS"
  if ! mvn -B -ntp -f "$KAFKA_HOME/pom.xml" "$DEPENDENCY_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$LOG_DIR/maven.log" 2>&1; then
    tail -n 40 "$LOG_DIR/maven.log" >&2
    die "Maven could not resolve Kafka (full log: $LOG_DIR/maven.log)"
  fi
  [[ -f $KAFKA_LIBS/kafka_$SCALA_VERSION-$KAFKA_VERSION.jar ]] || die "kafka jar missing after resolve"
  touch "$KAFKA_LIBS/.complete"
}

ensure_redis_installed() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  log "installing redis-server from apt (first run only)"
  # The package's postinst would start the distro service on 6379 and could
  # then shadow ours; policy-rc.d exit 101 tells invoke-rc.d and
  # deb-systemd-invoke not to start services. Only ours is removed afterwards.
  local policy=/usr/sbin/policy-rc.d created=0 rc=0
  mkdir -p "$LOG_DIR"
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    created=1
  fi
  {
    as_root apt-get update &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
  } >"$LOG_DIR/apt.log" 2>&1 || rc=$?
  ((created)) && as_root rm -f "$policy"
  if ((rc != 0)); then
    tail -n 30 "$LOG_DIR/apt.log" >&2
    die "apt-get install redis-server failed (full log: $LOG_DIR/apt.log)"
  fi
  # On a systemd host the unit is still enabled for the next boot.
  if [[ -d /run/systemd/system ]]; then
    as_root systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
}

# ---------------------------------------------------------------- config

write_kafka_config() {
  mkdir -p "$CONF_DIR" "$LOG_DIR" "$RUN_DIR" "$KAFKA_DATA"
  # Regenerated on every start so port overrides take effect; with a static
  # voter list the ports are not stored in the formatted data dir.
  cat >"$KAFKA_PROPS" <<EOF
# Generated by scripts/stack.sh; edits are overwritten on start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$KAFKA_DATA

# One node: every internal topic must be satisfiable by a single replica,
# otherwise transactions and consumer groups never become available.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
default.replication.factor=1
# Few partitions for internal topics: they are created lazily on first use
# and 50 partitions each makes the first group join / transaction slow.
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=5
num.partitions=1
# Tests create their topics explicitly and want consumers to join at once
# (ESK_KAFKA_INITIAL_REBALANCE_DELAY_MS=3000 gives a production broker's delay).
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=$INITIAL_REBALANCE_DELAY_MS

# Sized for a 2-core machine shared with the test run.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF

  cat >"$CONF_DIR/log4j.properties" <<EOF
log4j.rootLogger=INFO, server
log4j.appender.server=org.apache.log4j.RollingFileAppender
log4j.appender.server.File=$LOG_DIR/kafka-server.log
log4j.appender.server.MaxFileSize=20MB
log4j.appender.server.MaxBackupIndex=3
log4j.appender.server.layout=org.apache.log4j.PatternLayout
log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n
# Per-request and per-partition chatter drowns the useful lines.
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel\$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
EOF

  cat >"$CONF_DIR/tools-log4j.properties" <<EOF
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# Kafka's Uuid is 16 random bytes in unpadded base64url; Kafka itself rejects
# ids starting with '-' because they look like CLI options.
new_cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [[ $id == -* ]] || { echo "$id"; return; }
  done
}

# Format only while meta.properties is missing; the cluster id is kept in its
# own file first so that a format interrupted half-way is retried with the
# same id instead of minting a second cluster.
ensure_kafka_formatted() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  [[ -s $CLUSTER_ID_FILE ]] || new_cluster_id >"$CLUSTER_ID_FILE"
  log "formatting Kafka storage (cluster id $(<"$CLUSTER_ID_FILE"))"
  if ! "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 \
    -Dlog4j.configuration="file:$CONF_DIR/tools-log4j.properties" \
    -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format --ignore-formatted \
    -t "$(<"$CLUSTER_ID_FILE")" -c "$KAFKA_PROPS" >"$LOG_DIR/kafka-format.log" 2>&1; then
    cat "$LOG_DIR/kafka-format.log" >&2
    die "kafka storage format failed"
  fi
}

write_redis_config() {
  mkdir -p "$CONF_DIR" "$LOG_DIR" "$RUN_DIR" "$REDIS_DATA"
  cat >"$CONF_DIR/redis.conf" <<EOF
# Generated by scripts/stack.sh; edits are overwritten on start.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
# Run in the foreground of a background job so the pid is known at once;
# with daemonize the pid file appears only some time after the fork.
daemonize no
logfile $LOG_DIR/redis.log
dir $REDIS_DATA
# esk uses redis as a cache only: nothing to persist.
save ""
appendonly no
EOF
}

# ---------------------------------------------------------------- start/stop

# Each start gets fresh log files so a failure report shows only this run's
# errors; the previous run's stay next to them as *.prev.
keep_previous_log() {
  local f
  for f in "$@"; do
    if [[ -f $f ]]; then mv -f "$f" "$f.prev"; fi
  done
}

# Started in their own session (setsid) so that whoever ran "start" can exit
# or kill its process group without taking the services down; the lock fd is
# closed so the daemons do not hold the start/stop lock forever.
launch_kafka() {
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  keep_previous_log "$LOG_DIR/kafka-server.log" "$LOG_DIR/kafka.out"
  # shellcheck disable=SC2086 # KAFKA_JVM_OPTS is a list of options
  setsid "$JAVA" $KAFKA_JVM_OPTS \
    -Dlog4j.configuration="file:$CONF_DIR/log4j.properties" \
    -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
    </dev/null >"$LOG_DIR/kafka.out" 2>&1 {LOCK_FD}>&- &
  echo $! >"$KAFKA_PID"
}

launch_redis() {
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  keep_previous_log "$LOG_DIR/redis.log" "$LOG_DIR/redis.out"
  setsid redis-server "$CONF_DIR/redis.conf" </dev/null >"$LOG_DIR/redis.out" 2>&1 {LOCK_FD}>&- &
  echo $! >"$REDIS_PID"
}

port_open() {
  ( { exec {sock}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null )
}

# Checked before launching: a foreign server on our port (the distro redis
# service, another checkout's stack) would silently be used by tests, and a
# broker that cannot bind takes ~20 s to shut down before we could report it.
refuse_busy_port() { # name port env_var
  if port_open "$2"; then
    die "127.0.0.1:$2 is already in use by a process not started with ESK_STACK_DIR=$STACK_DIR (the $1 port); stop it or set $3"
  fi
}

wait_ready() { # name answers_fn running_fn logfile...
  local name=$1 answers=$2 running=$3 deadline=$((SECONDS + WAIT_SECS))
  shift 3
  until "$answers"; do
    if ! "$running"; then
      log "$name exited during startup"
      show_tail "$@"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$name not answering after ${WAIT_SECS}s"
      show_tail "$@"
      return 1
    fi
    sleep 0.5
  done
}

# A failed broker logs a long shutdown sequence after the real cause, so the
# first ERROR lines (with the exception line after each) come before the tail.
show_tail() {
  local f
  for f in "$@"; do
    [[ -f $f ]] || continue
    if grep -qE ' (ERROR|FATAL) ' "$f"; then
      printf '==> %s (first errors) <==\n' "$f" >&2
      grep -E -A1 ' (ERROR|FATAL) ' "$f" | head -n 12 >&2
    fi
    printf '==> %s (tail) <==\n' "$f" >&2
    tail -n 15 "$f" >&2
  done
}

with_lock() {
  mkdir -p "$STACK_DIR"
  exec {LOCK_FD}>"$STACK_DIR/stack.lock"
  flock -w 600 "$LOCK_FD" || die "timed out waiting for another stack.sh"
}

cmd_start() {
  local started=$SECONDS
  with_lock
  if kafka_answers && kafka_running && redis_answers && redis_running; then
    log "already running"
    return 0
  fi

  # Everything that can fail fast is done before either service is launched,
  # so a failed start does not leave half a stack behind.
  local need_redis=0 need_kafka=0
  redis_running || need_redis=1
  kafka_running || need_kafka=1
  if ((need_redis)); then
    rm -f "$REDIS_PID"
    refuse_busy_port redis "$REDIS_PORT" ESK_REDIS_PORT
    ensure_redis_installed
    write_redis_config
  fi
  if ((need_kafka)); then
    rm -f "$KAFKA_PID"
    refuse_busy_port kafka "$KAFKA_PORT" ESK_KAFKA_PORT
    refuse_busy_port "kafka controller" "$CONTROLLER_PORT" ESK_KAFKA_CONTROLLER_PORT
    ensure_java
    ensure_kafka_jars
    write_kafka_config
    ensure_kafka_formatted
  fi
  ((need_redis)) && launch_redis
  ((need_kafka)) && launch_kafka

  wait_ready redis redis_answers redis_running "$LOG_DIR/redis.log" "$LOG_DIR/redis.out" ||
    die "redis did not become ready (logs: $LOG_DIR)"
  wait_ready kafka kafka_answers kafka_running "$LOG_DIR/kafka-server.log" "$LOG_DIR/kafka.out" ||
    die "kafka did not become ready (logs: $LOG_DIR)"
  log "ready in $((SECONDS - started))s: kafka 127.0.0.1:$KAFKA_PORT, redis 127.0.0.1:$REDIS_PORT"
}

cmd_stop() {
  with_lock
  if kafka_running; then stop_pid "$KAFKA_PID" kafka; else rm -f "$KAFKA_PID"; fi
  if redis_running; then stop_pid "$REDIS_PID" redis; else rm -f "$REDIS_PID"; fi
  log "stopped"
}

cmd_status() {
  local rc=0 owner
  owner=$(kafka_running && echo "pid $(<"$KAFKA_PID")" || echo "no process started by stack.sh")
  if kafka_answers; then echo "kafka: up   127.0.0.1:$KAFKA_PORT ($owner)"; else echo "kafka: down 127.0.0.1:$KAFKA_PORT ($owner)"; rc=1; fi
  owner=$(redis_running && echo "pid $(<"$REDIS_PID")" || echo "no process started by stack.sh")
  if redis_answers; then echo "redis: up   127.0.0.1:$REDIS_PORT ($owner)"; else echo "redis: down 127.0.0.1:$REDIS_PORT ($owner)"; rc=1; fi
  return $rc
}

cmd_logs() {
  local files=("$LOG_DIR/kafka-server.log" "$LOG_DIR/kafka.out" "$LOG_DIR/redis.log")
  if [[ ${1:-} == -f ]]; then
    exec tail -n 20 -F "${files[@]}"
  fi
  local f
  for f in "${files[@]}"; do
    [[ -f $f ]] || continue
    printf '==> %s <==\n' "$f"
    tail -n 50 "$f"
  done
}

main() {
  case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    *)
      echo "usage: $0 start|stop|status|logs [-f]" >&2
      exit 2
      ;;
  esac
}

main "$@"
