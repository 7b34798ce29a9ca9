#!/usr/bin/env bash
# Local dev/test stack for esk: Apache Kafka (KRaft) and one redis-server, all on 127.0.0.1,
# without Docker. Two modes:
#
#   single (default): one Kafka process that is broker and controller at once.
#   cluster (--cluster or ESK_STACK_MODE=cluster): three such processes forming one KRaft
#     quorum, replication factor 3 and min.insync.replicas 2 for internal topics and as the
#     topic defaults, small heaps; for fault tests that kill a partition leader.
#
#   scripts/stack.sh start [--cluster]   # idempotent; returns once everything answers real requests
#   scripts/stack.sh stop                # idempotent; stops everything this ESK_STACK_DIR started
#   scripts/stack.sh status [--cluster]  # one line per process; exit 0 only if all answer
#   scripts/stack.sh logs [--cluster] [-f]
#
# Cluster nodes, by index N in 1..3 (the node id is N too):
#   scripts/stack.sh kill-node N   # kill -9, no controlled shutdown; returns once it is gone
#   scripts/stack.sh stop-node N   # SIGTERM: controlled shutdown (leaders move away first)
#   scripts/stack.sh start-node N  # returns once the node is back in the cluster's metadata
# Node N's pid is in $ESK_STACK_DIR/run/kafka-node-N.pid, its logs in $ESK_STACK_DIR/logs/node-N/.
#
# Only one mode's brokers run at a time for a stack dir: starting one mode while the other's
# (or another Kafka version's) brokers run is refused; `stop` first. Redis is shared by both.
#
# Kafka comes from Maven Central (the only reachable artifact source besides npm/apt), so there
# are no kafka-*.sh wrappers: we run the main classes with java directly. The jars are cached per
# version under the stack dir, and each version keeps its own data, so 3.x and 4.x live side by
# side. redis-server comes from the Debian package.
#
# Environment (defaults in brackets):
#   ESK_KAFKA_VERSION [3.9.1]: any 3.x (3.3 or later) or 4.x release on Maven Central
#   ESK_STACK_MODE [single]: or cluster
#   ESK_KAFKA_PORT [9092]  ESK_KAFKA_CONTROLLER_PORT [9093]  ESK_REDIS_PORT [6379]
#   ESK_KAFKA_CLUSTER_PORT [9192]: node N's client port is this + N - 1
#   ESK_KAFKA_CLUSTER_CONTROLLER_PORT [9292]: node N's controller port is this + N - 1
#   ESK_STACK_DIR [<repo>/.stack]  ESK_STACK_WAIT_SECS [90]
#   ESK_KAFKA_JVM_OPTS [-Xms256m -Xmx1g ...]  ESK_KAFKA_CLUSTER_JVM_OPTS [-Xms128m -Xmx512m ...]
#   ESK_KAFKA_INITIAL_REBALANCE_DELAY_MS [0]: a production broker's default is 3000; set it
#     to measure what a group join costs there
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

KAFKA_VERSION=${ESK_KAFKA_VERSION:-3.9.1}
SCALA_VERSION=2.13
# Kafka 3.x depends on slf4j-api 1.7.36 but ships no binding on Maven Central (the binary
# tarball adds slf4j-reload4j); without one the broker logs nothing at all. slf4j-reload4j would
# pull reload4j 1.2.19; pin the 1.2.25 that the official 3.9.1 tarball ships.
SLF4J_VERSION=1.7.36
RELOAD4J_VERSION=1.2.25
# Pinned so Maven does not have to look up "latest" plugin metadata.
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1

KAFKA_PORT=${ESK_KAFKA_PORT:-9092}
CONTROLLER_PORT=${ESK_KAFKA_CONTROLLER_PORT:-9093}
REDIS_PORT=${ESK_REDIS_PORT:-6379}
CLUSTER_PORT=${ESK_KAFKA_CLUSTER_PORT:-9192}
CLUSTER_CONTROLLER_PORT=${ESK_KAFKA_CLUSTER_CONTROLLER_PORT:-9292}
STACK_DIR=${ESK_STACK_DIR:-$REPO_ROOT/.stack}
WAIT_SECS=${ESK_STACK_WAIT_SECS:-90}
MODE=${ESK_STACK_MODE:-single}
# Two cores shared with the test run: keep the broker small.
KAFKA_JVM_OPTS=${ESK_KAFKA_JVM_OPTS:--Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
# Three of these beside a load on the same two cores: half the single broker's heap each.
CLUSTER_JVM_OPTS=${ESK_KAFKA_CLUSTER_JVM_OPTS:--Xms128m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
INITIAL_REBALANCE_DELAY_MS=${ESK_KAFKA_INITIAL_REBALANCE_DELAY_MS:-0}
JAVA=${JAVA:-java}
NODES=3

KAFKA_HOME=$STACK_DIR/kafka_$SCALA_VERSION-$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_HOME/libs
CONF_DIR=$STACK_DIR/conf
LOG_DIR=$STACK_DIR/logs
RUN_DIR=$STACK_DIR/run
KAFKA_DATA=$STACK_DIR/data/kafka-$KAFKA_VERSION
REDIS_DATA=$STACK_DIR/data/redis
CLUSTER_ID_FILE=$KAFKA_DATA.cluster-id
CLUSTER_DATA=$STACK_DIR/data/cluster-$KAFKA_VERSION

KAFKA_PID=$RUN_DIR/kafka.pid
REDIS_PID=$RUN_DIR/redis.pid
KAFKA_PROPS=$CONF_DIR/server.properties

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $KAFKA_VERSION =~ ^([0-9]+)\.[0-9]+\.[0-9]+$ ]] ||
  die "ESK_KAFKA_VERSION must be a release such as 3.9.1 or 4.1.0, not '$KAFKA_VERSION'"
KAFKA_MAJOR=${BASH_REMATCH[1]}
((KAFKA_MAJOR == 3 || KAFKA_MAJOR == 4)) || die "only Kafka 3.x and 4.x are supported, not $KAFKA_VERSION"

as_root() {
  if ((EUID == 0)); then "$@"; else sudo "$@"; fi
}

# Per-node names in cluster mode (N = 1..3).
node_port() { echo $((CLUSTER_PORT + $1 - 1)); }
node_controller_port() { echo $((CLUSTER_CONTROLLER_PORT + $1 - 1)); }
node_props() { echo "$CONF_DIR/node-$1.properties"; }
node_pidfile() { echo "$RUN_DIR/kafka-node-$1.pid"; }
node_logs() { echo "$LOG_DIR/node-$1"; }
node_data() { echo "$CLUSTER_DATA/node-$1"; }

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

# "Ours, of the selected version" looks at the classpath, which names the version's libs dir;
# "ours, any version" only at the properties file.
kafka_running() { pid_alive "$KAFKA_PID" "$KAFKA_LIBS/* kafka.Kafka $KAFKA_PROPS"; }
any_kafka_running() { pid_alive "$KAFKA_PID" "kafka.Kafka $KAFKA_PROPS"; }
node_running() { pid_alive "$(node_pidfile "$1")" "$KAFKA_LIBS/* kafka.Kafka $(node_props "$1")"; }
any_node_running() { pid_alive "$(node_pidfile "$1")" "kafka.Kafka $(node_props "$1")"; }
redis_running() { pid_alive "$REDIS_PID" "redis-server"; }

# The version a running broker of ours was started with, from its classpath.
running_version() { # pidfile
  tr '\0' '\n' <"/proc/$(<"$1")/cmdline" 2>/dev/null |
    sed -n "s|.*/kafka_$SCALA_VERSION-\([0-9.]*\)/libs/\*.*|\1|p" | head -n 1
}

# $! names the forked shell until it has exec'd the service, and that shell's command line is
# this script's: a check in that window would take the service for gone. Wait it out (bounded).
await_exec() { # pid pattern
  local i
  for ((i = 0; i < 1000; i++)); do
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2" && return 0
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.01
  done
}

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

# Kafka readiness is a real request sent from bash over /dev/tcp: no JVM start
# (kafka.admin.BrokerApiVersionsCommand takes ~1 s on an idle 2-core box, much more beside a
# test run) and no Node deps; it answers in milliseconds. Prints the first $3 bytes of the
# response (size prefix included) as decimal numbers.
kafka_probe() { # port request-bytes(printf format) response-bytes
  (
    { exec {sock}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || exit 1
    # shellcheck disable=SC2059 # the request is the format: its \x escapes are the bytes
    printf "$2" >&"$sock"
    timeout 5 head -c "$3" <&"$sock" | od -An -v -tu1
  )
}

# Metadata (v4, no topics): prints how many brokers the node lists. A KRaft broker serves client
# requests only after catching up with the metadata log, and a fenced broker is left out of
# Metadata responses, so "correlation id echoed and N brokers listed" means N brokers are
# registered, unfenced and reachable through this one.
#
# Request: int32 size | int16 api_key=3 | int16 version=4 | int32 corr=42 |
#          string client_id="esk-stack" | int32 topics=0 | int8 auto_create=0
# Response prefix: int32 size | int32 corr | int32 throttle | int32 n_brokers
metadata_brokers() { # port
  local -a b
  # shellcheck disable=SC2207 # word splitting of od output is intended
  b=($(kafka_probe "$1" '\x00\x00\x00\x18\x00\x03\x00\x04\x00\x00\x00\x2a\x00\x09esk-stack\x00\x00\x00\x00\x00' 16)) || return 1
  ((${#b[@]} == 16)) || return 1
  ((((b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7]) == 42)) || return 1
  echo $(((b[12] << 24) | (b[13] << 16) | (b[14] << 8) | b[15]))
}

kafka_answers() {
  local n
  n=$(metadata_brokers "$KAFKA_PORT") && ((n >= 1))
}

# FindCoordinator (v1) for a transactional id (key type 1) or a group (key type 0). The first
# lookup makes the broker create __transaction_state / __consumer_offsets; the answer is
# COORDINATOR_NOT_AVAILABLE until the coordinator's partition has a leader that has loaded it,
# so error code 0 means a transaction (or a group join) can start now.
#
# Request: int32 size | int16 api_key=10 | int16 version=1 | int32 corr=43 |
#          string client_id="esk-stack" | string key="esk-stack-probe" | int8 key_type
# Response prefix: int32 size | int32 corr | int32 throttle | int16 error_code
coordinator_ready() { # port key_type
  local -a r
  # shellcheck disable=SC2207 # word splitting of od output is intended
  r=($(kafka_probe "$1" "\\x00\\x00\\x00\\x25\\x00\\x0a\\x00\\x01\\x00\\x00\\x00\\x2b\\x00\\x09esk-stack\\x00\\x0fesk-stack-probe\\x0$2" 14)) || return 1
  ((${#r[@]} == 14)) || return 1
  ((((r[4] << 24) | (r[5] << 16) | (r[6] << 8) | r[7]) == 43 && ((r[12] << 8) | r[13]) == 0))
}

redis_answers() {
  [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

# ---------------------------------------------------------------- install

ensure_java() {
  command -v "$JAVA" >/dev/null || die "java not found (Debian: apt-get install -y openjdk-17-jre-headless)"
  ((KAFKA_MAJOR >= 4)) || return 0
  # Kafka 4 brokers need Java 17; an older java fails with an unreadable class-version error.
  local v
  v=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')
  if ! [[ ${v%%.*} =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then
    die "Kafka $KAFKA_VERSION needs Java 17 or later, $JAVA is ${v:-unknown} (Debian: apt-get install -y openjdk-17-jre-headless)"
  fi
}

# Kafka 3.x logs through slf4j 1.7 to reload4j. Kafka 4.x logs to log4j2 (log4j-core is a
# dependency of kafka-server) but still through slf4j-api 1.7.36, so its binding is
# log4j-slf4j-impl (not the slf4j 2 log4j-slf4j2-impl), added after the resolve at the log4j
# version Kafka itself depends on (see ensure_kafka_jars).
#
# kafka-tools-api is left out for 4.x: it is the plug-in API of the command-line tools, nothing
# the broker or the storage tool loads refers to it, and 4.4.0 declares a kafka-tools-api 4.4.0
# that Maven Central does not have.
kafka_pom() {
  local logging
  if ((KAFKA_MAJOR >= 4)); then
    logging=$(
      cat <<EOF
      <exclusions>
        <exclusion>
          <groupId>org.apache.kafka</groupId>
          <artifactId>kafka-tools-api</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
EOF
    )
  else
    logging=$(
      cat <<EOF
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
EOF
    )
  fi
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
$logging
  </dependencies>
</project>
EOF
}

maven() { # args... (output appended to maven.log)
  if ! mvn -B -ntp "$@" >>"$LOG_DIR/maven.log" 2>&1; then
    tail -n 40 "$LOG_DIR/maven.log" >&2
    die "Maven could not resolve Kafka $KAFKA_VERSION (full log: $LOG_DIR/maven.log)"
  fi
}

# Jars are resolved once per version into $KAFKA_LIBS. The .complete marker guards against
# reusing a half-copied directory after an interrupted resolve, and comparing the pom
# re-resolves when the pinned versions above change. ~/.m2 is kept, so a wiped stack dir
# resolves again without downloading.
ensure_kafka_jars() {
  local pom core jars
  pom=$(kafka_pom)
  if [[ -f $KAFKA_LIBS/.complete && -f $KAFKA_HOME/pom.xml && $(<"$KAFKA_HOME/pom.xml") == "$pom" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (Debian: apt-get install -y maven)"
  log "resolving Kafka $KAFKA_VERSION jars with Maven (first run only)"
  mkdir -p "$KAFKA_HOME" "$LOG_DIR"
  : >"$LOG_DIR/maven.log"
  printf '%s\n' "$pom" >"$KAFKA_HOME/pom.xml"
  rm -rf "$KAFKA_LIBS"
  maven -f "$KAFKA_HOME/pom.xml" "$DEPENDENCY_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS"
  [[ -f $KAFKA_LIBS/kafka_$SCALA_VERSION-$KAFKA_VERSION.jar ]] || die "kafka jar missing after resolve"
  if ((KAFKA_MAJOR >= 4)); then
    jars=("$KAFKA_LIBS"/log4j-core-*.jar)
    core=${jars[0]##*/log4j-core-}
    core=${core%.jar}
    [[ -f ${jars[0]} && -n $core ]] || die "Kafka $KAFKA_VERSION brought no log4j-core; cannot pick its slf4j binding"
    maven -f "$KAFKA_HOME/pom.xml" "$DEPENDENCY_PLUGIN:copy" \
      -Dartifact="org.apache.logging.log4j:log4j-slf4j-impl:$core" -DoutputDirectory="$KAFKA_LIBS"
  fi
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

# Regenerated on every start so port overrides take effect; with a static voter list the ports
# are not stored in the formatted data dir. The same keys work on 3.x and 4.x: none of them is
# among those 4.0 removed (ZooKeeper, message format and the like).
write_broker_props() { # file node_id port controller_port voters data_dir replicas min_isr
  local replicas=$7 min_isr=$8
  cat >"$1" <<EOF
# Generated by scripts/stack.sh; edits are overwritten on start.
process.roles=broker,controller
node.id=$2
controller.quorum.voters=$5
listeners=PLAINTEXT://127.0.0.1:$3,CONTROLLER://127.0.0.1:$4
advertised.listeners=PLAINTEXT://127.0.0.1:$3
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$6

# Every internal topic must be satisfiable by the replicas there are, otherwise transactions
# and consumer groups never become available. With three nodes, one may be down and writes
# with acks=all still succeed.
offsets.topic.replication.factor=$replicas
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
min.insync.replicas=$min_isr
default.replication.factor=$replicas
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
}

# The broker's log file is ${kafka.logs.dir}/kafka-server.log, so one file serves every node.
write_logging_config() {
  if ((KAFKA_MAJOR >= 4)); then
    cat >"$CONF_DIR/log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/stack.sh; edits are overwritten on start. -->
<Configuration status="warn">
  <Appenders>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/kafka-server.log"
                 filePattern="${sys:kafka.logs.dir}/kafka-server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="20MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <!-- Per-request and per-partition chatter drowns the useful lines. -->
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="kafka.network.RequestChannel$" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.authorizer.logger" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.log.LogCleaner" level="WARN"/>
  </Loggers>
</Configuration>
EOF
    cat >"$CONF_DIR/tools-log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/stack.sh; edits are overwritten on start. -->
<Configuration status="warn">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Root level="WARN"><AppenderRef ref="stderr"/></Root>
  </Loggers>
</Configuration>
EOF
    return 0
  fi
  cat >"$CONF_DIR/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, server
log4j.appender.server=org.apache.log4j.RollingFileAppender
log4j.appender.server.File=${kafka.logs.dir}/kafka-server.log
log4j.appender.server.MaxFileSize=20MB
log4j.appender.server.MaxBackupIndex=3
log4j.appender.server.layout=org.apache.log4j.PatternLayout
log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n
# Per-request and per-partition chatter drowns the useful lines.
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
EOF
  cat >"$CONF_DIR/tools-log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# The JVM option naming the logging config: reload4j reads log4j.configuration, log4j2 reads
# log4j2.configurationFile.
logging_opt() { # server|tools
  local prefix=""
  [[ $1 == tools ]] && prefix=tools-
  if ((KAFKA_MAJOR >= 4)); then
    echo "-Dlog4j2.configurationFile=$CONF_DIR/${prefix}log4j2.xml"
  else
    echo "-Dlog4j.configuration=file:$CONF_DIR/${prefix}log4j.properties"
  fi
}

# Before data dirs were per version, 3.9.1 (the only version then) kept its data in data/kafka.
adopt_legacy_data() {
  local old=$STACK_DIR/data/kafka
  [[ $KAFKA_VERSION == 3.9.1 && -d $old && ! -e $KAFKA_DATA ]] || return 0
  mv "$old" "$KAFKA_DATA"
  if [[ -f $old-cluster-id ]]; then mv "$old-cluster-id" "$CLUSTER_ID_FILE"; fi
}

write_kafka_config() {
  mkdir -p "$CONF_DIR" "$LOG_DIR" "$RUN_DIR" "$STACK_DIR/data"
  adopt_legacy_data
  mkdir -p "$KAFKA_DATA"
  write_broker_props "$KAFKA_PROPS" 1 "$KAFKA_PORT" "$CONTROLLER_PORT" \
    "1@127.0.0.1:$CONTROLLER_PORT" "$KAFKA_DATA" 1 1
  write_logging_config
}

write_cluster_config() {
  local n voters=""
  mkdir -p "$CONF_DIR" "$LOG_DIR" "$RUN_DIR" "$CLUSTER_DATA"
  for ((n = 1; n <= NODES; n++)); do
    voters+="${voters:+,}$n@127.0.0.1:$(node_controller_port "$n")"
  done
  for ((n = 1; n <= NODES; n++)); do
    mkdir -p "$(node_logs "$n")" "$(node_data "$n")"
    write_broker_props "$(node_props "$n")" "$n" "$(node_port "$n")" "$(node_controller_port "$n")" \
      "$voters" "$(node_data "$n")" "$NODES" 2
  done
  write_logging_config
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

# Format only while meta.properties is missing; the cluster id is kept in its own file first so
# that a format interrupted half-way is retried with the same id instead of minting a second
# cluster. With a static voter list (controller.quorum.voters) both 3.x and 4.x format with just
# the cluster id and the config: 4.x's --standalone / --initial-controllers are for a dynamic
# quorum and are refused next to a static one.
format_storage() { # data_dir cluster_id_file props logfile
  [[ -f $1/meta.properties ]] && return 0
  [[ -s $2 ]] || new_cluster_id >"$2"
  log "formatting Kafka $KAFKA_VERSION storage $1 (cluster id $(<"$2"))"
  if ! "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 "$(logging_opt tools)" \
    -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format --ignore-formatted \
    -t "$(<"$2")" -c "$3" >"$4" 2>&1; then
    cat "$4" >&2
    die "kafka storage format failed"
  fi
}

ensure_kafka_formatted() {
  format_storage "$KAFKA_DATA" "$CLUSTER_ID_FILE" "$KAFKA_PROPS" "$LOG_DIR/kafka-format.log"
}

# The three formats run at once: each is a JVM start of a second or more.
ensure_cluster_formatted() {
  local n pids=() failed=0
  for ((n = 1; n <= NODES; n++)); do
    [[ -f $(node_data "$n")/meta.properties ]] && continue
    [[ -s $CLUSTER_DATA/cluster-id ]] || new_cluster_id >"$CLUSTER_DATA/cluster-id"
    format_storage "$(node_data "$n")" "$CLUSTER_DATA/cluster-id" "$(node_props "$n")" \
      "$(node_logs "$n")/kafka-format.log" &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || failed=1; done
  ((failed == 0)) || die "kafka storage format failed"
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
launch_broker() { # props logdir pidfile jvm_opts
  keep_previous_log "$2/kafka-server.log" "$2/kafka.out"
  # shellcheck disable=SC2086 # the JVM options are a list of options
  setsid "$JAVA" $4 "$(logging_opt server)" -Dkafka.logs.dir="$2" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$1" \
    </dev/null >"$2/kafka.out" 2>&1 {LOCK_FD}>&- &
  echo $! >"$3"
  await_exec $! "kafka.Kafka $1"
}

launch_kafka() {
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  launch_broker "$KAFKA_PROPS" "$LOG_DIR" "$KAFKA_PID" "$KAFKA_JVM_OPTS"
}

launch_node() { # n
  log "starting Kafka $KAFKA_VERSION node $1 on 127.0.0.1:$(node_port "$1") (controller $(node_controller_port "$1"))"
  launch_broker "$(node_props "$1")" "$(node_logs "$1")" "$(node_pidfile "$1")" "$CLUSTER_JVM_OPTS"
}

launch_redis() {
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  keep_previous_log "$LOG_DIR/redis.log" "$LOG_DIR/redis.out"
  setsid redis-server "$CONF_DIR/redis.conf" </dev/null >"$LOG_DIR/redis.out" 2>&1 {LOCK_FD}>&- &
  echo $! >"$REDIS_PID"
  await_exec $! redis-server
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

# One mode's brokers, of one version, at a time: two sets would double the memory, and a
# broker of another version would answer for the one asked for.
refuse_other_brokers() { # mode being started
  local n
  if any_kafka_running && { [[ $1 == cluster ]] || ! kafka_running; }; then
    die "the single-node Kafka $(running_version "$KAFKA_PID") of $STACK_DIR is running (pid $(<"$KAFKA_PID")); run 'scripts/stack.sh stop' first"
  fi
  for ((n = 1; n <= NODES; n++)); do
    if any_node_running "$n" && { [[ $1 == single ]] || ! node_running "$n"; }; then
      die "cluster node $n (Kafka $(running_version "$(node_pidfile "$n")")) of $STACK_DIR is running (pid $(<"$(node_pidfile "$n")")); run 'scripts/stack.sh stop' first"
    fi
  done
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

# Redis is the same in both modes: started if it is not running, with its checks done before
# any broker is launched.
prepare_redis() { # -> sets NEED_REDIS
  NEED_REDIS=0
  redis_running || NEED_REDIS=1
  ((NEED_REDIS)) || return 0
  rm -f "$REDIS_PID"
  refuse_busy_port redis "$REDIS_PORT" ESK_REDIS_PORT
  ensure_redis_installed
  write_redis_config
}

await_redis() {
  wait_ready redis redis_answers redis_running "$LOG_DIR/redis.log" "$LOG_DIR/redis.out" ||
    die "redis did not become ready (logs: $LOG_DIR)"
}

cmd_start() {
  local started=$SECONDS
  with_lock
  refuse_other_brokers single
  if kafka_answers && kafka_running && redis_answers && redis_running; then
    log "already running"
    return 0
  fi

  # Everything that can fail fast is done before either service is launched,
  # so a failed start does not leave half a stack behind.
  local need_kafka=0
  prepare_redis
  kafka_running || need_kafka=1
  if ((need_kafka)); then
    rm -f "$KAFKA_PID"
    refuse_busy_port kafka "$KAFKA_PORT" ESK_KAFKA_PORT
    refuse_busy_port "kafka controller" "$CONTROLLER_PORT" ESK_KAFKA_CONTROLLER_PORT
    ensure_java
    ensure_kafka_jars
    write_kafka_config
    ensure_kafka_formatted
  fi
  ((NEED_REDIS)) && launch_redis
  ((need_kafka)) && launch_kafka

  await_redis
  wait_ready kafka kafka_answers kafka_running "$LOG_DIR/kafka-server.log" "$LOG_DIR/kafka.out" ||
    die "kafka did not become ready (logs: $LOG_DIR)"
  log "ready in $((SECONDS - started))s: kafka $KAFKA_VERSION 127.0.0.1:$KAFKA_PORT, redis 127.0.0.1:$REDIS_PORT"
}

# ---------------------------------------------------------------- cluster

cluster_brokers() { # comma-separated bootstrap list
  local n list=""
  for ((n = 1; n <= NODES; n++)); do list+="${list:+,}127.0.0.1:$(node_port "$n")"; done
  echo "$list"
}

# A node is in the cluster when it answers Metadata listing all three brokers: it has caught up
# with the metadata log and every broker is registered and unfenced.
node_in_cluster() { # n
  local seen
  seen=$(metadata_brokers "$(node_port "$1")") && ((seen == NODES))
}

# Ready: every node is in the cluster, and a transaction coordinator and a group coordinator
# answer (their internal topics exist with three replicas and have leaders), so the first
# transaction does not wait for them.
cluster_ready() {
  local n
  for ((n = 1; n <= NODES; n++)); do node_in_cluster "$n" || return 1; done
  coordinator_ready "$(node_port 1)" 1 && coordinator_ready "$(node_port 1)" 0
}

wait_cluster() { # what ready_fn nodes...
  local what=$1 ready=$2 deadline=$((SECONDS + WAIT_SECS)) n
  shift 2
  until "$ready"; do
    for n in "$@"; do
      if ! node_running "$n"; then
        log "node $n exited during startup"
        show_tail "$(node_logs "$n")/kafka-server.log" "$(node_logs "$n")/kafka.out"
        return 1
      fi
    done
    if ((SECONDS >= deadline)); then
      log "$what not ready after ${WAIT_SECS}s"
      for n in "$@"; do show_tail "$(node_logs "$n")/kafka-server.log" "$(node_logs "$n")/kafka.out"; done
      return 1
    fi
    sleep 0.5
  done
}

node_arg() { # value -> validated node index
  if ! [[ ${1:-} =~ ^[1-9][0-9]*$ ]] || (($1 > NODES)); then die "expected a node index 1..$NODES, got '${1:-}'"; fi
  echo "$1"
}

prepare_node() { # n: checks and files before its launch
  rm -f "$(node_pidfile "$1")"
  refuse_busy_port "node $1 kafka" "$(node_port "$1")" ESK_KAFKA_CLUSTER_PORT
  refuse_busy_port "node $1 controller" "$(node_controller_port "$1")" ESK_KAFKA_CLUSTER_CONTROLLER_PORT
}

all_nodes_running() {
  local n
  for ((n = 1; n <= NODES; n++)); do node_running "$n" || return 1; done
}

cmd_start_cluster() {
  local started=$SECONDS n need=()
  with_lock
  refuse_other_brokers cluster
  if all_nodes_running && cluster_ready && redis_answers && redis_running; then
    log "already running"
    return 0
  fi

  prepare_redis
  for ((n = 1; n <= NODES; n++)); do
    node_running "$n" && continue
    prepare_node "$n"
    need+=("$n")
  done
  if ((${#need[@]})); then
    ensure_java
    ensure_kafka_jars
    write_cluster_config
    ensure_cluster_formatted
  fi
  ((NEED_REDIS)) && launch_redis
  for n in "${need[@]}"; do launch_node "$n"; done

  await_redis
  wait_cluster "the cluster" cluster_ready 1 2 3 || die "kafka cluster did not become ready (logs: $LOG_DIR/node-*)"
  log "ready in $((SECONDS - started))s: kafka $KAFKA_VERSION cluster $(cluster_brokers), redis 127.0.0.1:$REDIS_PORT"
}

# shellcheck disable=SC2317 # called indirectly by wait_cluster
target_node_in_cluster() { node_in_cluster "$TARGET_NODE"; }

cmd_start_node() { # n
  local n started=$SECONDS
  n=$(node_arg "$1")
  with_lock
  refuse_other_brokers cluster
  if node_running "$n"; then
    log "node $n already running (pid $(<"$(node_pidfile "$n")"))"
    return 0
  fi
  prepare_node "$n"
  ensure_java
  ensure_kafka_jars
  write_cluster_config
  ensure_cluster_formatted
  launch_node "$n"
  TARGET_NODE=$n
  wait_cluster "node $n" target_node_in_cluster "$n" || die "node $n did not rejoin (logs: $(node_logs "$n"))"
  log "node $n back in the cluster in $((SECONDS - started))s"
}

# No lock: a fault test kills a node at a moment of its choosing, even while another
# stack.sh waits for something.
cmd_kill_node() { # n
  local n pid i
  n=$(node_arg "$1")
  any_node_running "$n" || die "node $n is not running"
  pid=$(<"$(node_pidfile "$n")")
  log "killing node $n (pid $pid) with SIGKILL"
  kill -KILL "$pid"
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "node $n (pid $pid) still alive 10s after SIGKILL"
  rm -f "$(node_pidfile "$n")"
}

cmd_stop_node() { # n
  local n
  n=$(node_arg "$1")
  with_lock
  if any_node_running "$n"; then stop_pid "$(node_pidfile "$n")" "node $n"; else rm -f "$(node_pidfile "$n")"; fi
}

# ---------------------------------------------------------------- stop/status/logs

cmd_stop() {
  local n
  with_lock
  for ((n = 1; n <= NODES; n++)); do
    if any_node_running "$n"; then stop_pid "$(node_pidfile "$n")" "node $n" & fi
  done
  wait
  for ((n = 1; n <= NODES; n++)); do rm -f "$(node_pidfile "$n")"; done
  if any_kafka_running; then stop_pid "$KAFKA_PID" kafka; else rm -f "$KAFKA_PID"; fi
  if redis_running; then stop_pid "$REDIS_PID" redis; else rm -f "$REDIS_PID"; fi
  log "stopped"
}

owner_of() { # pidfile any_running_fn [args]
  local pidfile=$1
  shift
  if "$@"; then echo "pid $(<"$pidfile"), Kafka $(running_version "$pidfile")"; else echo "no process started by stack.sh"; fi
}

redis_status() {
  local owner
  owner=$(redis_running && echo "pid $(<"$REDIS_PID")" || echo "no process started by stack.sh")
  if redis_answers; then echo "redis: up   127.0.0.1:$REDIS_PORT ($owner)"; else echo "redis: down 127.0.0.1:$REDIS_PORT ($owner)"; return 1; fi
}

cmd_status() {
  local rc=0 owner
  owner=$(owner_of "$KAFKA_PID" any_kafka_running)
  if kafka_answers; then echo "kafka: up   127.0.0.1:$KAFKA_PORT ($owner)"; else echo "kafka: down 127.0.0.1:$KAFKA_PORT ($owner)"; rc=1; fi
  redis_status || rc=1
  return $rc
}

cmd_status_cluster() {
  local rc=0 n owner seen
  for ((n = 1; n <= NODES; n++)); do
    owner=$(owner_of "$(node_pidfile "$n")" any_node_running "$n")
    if seen=$(metadata_brokers "$(node_port "$n")"); then
      echo "node $n: up   127.0.0.1:$(node_port "$n"), sees $seen/$NODES brokers ($owner)"
      ((seen == NODES)) || rc=1
    else
      echo "node $n: down 127.0.0.1:$(node_port "$n") ($owner)"
      rc=1
    fi
  done
  redis_status || rc=1
  return $rc
}

cmd_logs() { # [-f]
  local files=() n
  if [[ $MODE == cluster ]]; then
    for ((n = 1; n <= NODES; n++)); do files+=("$(node_logs "$n")/kafka-server.log" "$(node_logs "$n")/kafka.out"); done
  else
    files=("$LOG_DIR/kafka-server.log" "$LOG_DIR/kafka.out")
  fi
  files+=("$LOG_DIR/redis.log")
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

usage() {
  echo "usage: $0 start|status|logs [--cluster] [-f] | stop | kill-node|stop-node|start-node N" >&2
  exit 2
}

main() {
  local cmd=${1:-} args=()
  shift || true
  while (($#)); do
    case $1 in
      --cluster) MODE=cluster ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  [[ $MODE == single || $MODE == cluster ]] || die "ESK_STACK_MODE must be single or cluster, not '$MODE'"
  case $cmd in
    start) ((${#args[@]} == 0)) || usage; if [[ $MODE == cluster ]]; then cmd_start_cluster; else cmd_start; fi ;;
    stop) ((${#args[@]} == 0)) || usage; cmd_stop ;;
    status) ((${#args[@]} == 0)) || usage; if [[ $MODE == cluster ]]; then cmd_status_cluster; else cmd_status; fi ;;
    logs) cmd_logs "${args[@]}" ;;
    kill-node) ((${#args[@]} == 1)) || usage; cmd_kill_node "${args[0]}" ;;
    stop-node) ((${#args[@]} == 1)) || usage; cmd_stop_node "${args[0]}" ;;
    start-node) ((${#args[@]} == 1)) || usage; cmd_start_node "${args[0]}" ;;
    *) usage ;;
  esac
}

main "$@"
