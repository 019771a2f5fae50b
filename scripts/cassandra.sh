# A real Apache Cassandra node for the Cassandra/Scylla backend's tests; sourced (bash).
#
# Cassandra's server is published on Maven Central (org.apache.cassandra:cassandra-all). It and
# its dependencies are fetched once with Maven into a cache folder; the node runs on JDK 17 with
# the module options of Cassandra's own conf/jvm17-server.options, on free loopback ports, with
# its data, commit log and caches in a temp dir, and a 4 GiB heap (each
# test keyspace's tables take heap; 1 GiB paused long enough to time requests out).
#
# Sourcing it starts the node in the background and returns; call weir_cassandra_ready to
# wait until it answers CQL (so a build can run meanwhile).
# Exports: WEIR_TEST_CASSANDRA (host:port of the CQL native transport),
#          WEIR_TEST_CASSANDRA_PID, WEIR_TEST_CASSANDRA_DIR,
#          WEIR_TEST_CASSANDRA_CA (PEM of the test CA that signed the node's certificate).
# The native transport takes TLS and plain connections on the same port
# (client_encryption_options with optional: true); the node's certificate, made with the
# JDK's keytool, names 127.0.0.1 and localhost.
# weir_cassandra_stop / weir_cassandra_start stop and restart the node on the same data;
# weir_cassandra_cleanup stops it and removes its data (call it from your EXIT trap).
# Seen here: a cold start answers CQL after about 70 s on two busy cores.

WEIR_CASSANDRA_VERSION="${WEIR_CASSANDRA_VERSION:-5.0.6}"
WEIR_CACHE="${WEIR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weir}"
WEIR_CASSANDRA_LIB="$WEIR_CACHE/cassandra-$WEIR_CASSANDRA_VERSION/lib"

weir_cassandra_fetch() {
    [ -f "$WEIR_CASSANDRA_LIB/cassandra-all-$WEIR_CASSANDRA_VERSION.jar" ] && return 0
    command -v mvn >/dev/null || { echo "Maven (mvn) is needed to fetch Cassandra" >&2; return 1; }
    echo "==> fetching Apache Cassandra $WEIR_CASSANDRA_VERSION from Maven Central (once)"
    local pom
    pom="$(mktemp -d)"
    cat >"$pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>weir.test</groupId><artifactId>cassandra-node</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId><artifactId>cassandra-all</artifactId>
      <version>$WEIR_CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
    mkdir -p "$WEIR_CASSANDRA_LIB"
    (cd "$pom" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$WEIR_CASSANDRA_LIB") || return 1
    rm -rf "$pom"
}

# Start the node in the background on the prepared config and data; returns at once.
weir_cassandra_launch() {
    local dir="$WEIR_TEST_CASSANDRA_DIR" jamm
    jamm="$(ls "$WEIR_CASSANDRA_LIB"/jamm-*.jar | head -1)"
    (
        cd "$dir" &&
            exec java -Xms4g -Xmx4g -Xss512k -XX:+UseG1GC -XX:+ParallelRefProcEnabled \
                -Djdk.attach.allowAttachSelf=true \
                --add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
                --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED \
                --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED \
                --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED \
                --add-exports java.sql/java.sql=ALL-UNNAMED \
                --add-exports java.base/java.lang.ref=ALL-UNNAMED \
                --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED \
                --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED \
                --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED \
                --add-opens java.base/java.lang.module=ALL-UNNAMED \
                --add-opens java.base/jdk.internal.loader=ALL-UNNAMED \
                --add-opens java.base/jdk.internal.ref=ALL-UNNAMED \
                --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED \
                --add-opens java.base/jdk.internal.math=ALL-UNNAMED \
                --add-opens java.base/jdk.internal.module=ALL-UNNAMED \
                --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED \
                --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
                --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
                --add-opens java.base/java.io=ALL-UNNAMED \
                --add-opens java.base/java.lang.reflect=ALL-UNNAMED \
                --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED \
                --add-opens java.base/java.lang=ALL-UNNAMED \
                --add-opens java.base/java.util=ALL-UNNAMED \
                -Dio.netty.tryReflectionSetAccessible=true \
                -javaagent:"$jamm" \
                -Dcassandra.config="file://$dir/cassandra.yaml" \
                -Dcassandra-foreground=yes -Dcassandra.jmx.local.port="$WEIR_CASSANDRA_JMX" \
                -Dcassandra.logdir="$dir/logs" -Dcassandra.storagedir="$dir/data" \
                -cp "$WEIR_CASSANDRA_LIB/*" org.apache.cassandra.service.CassandraDaemon \
                >"$dir/cassandra.out" 2>&1
    ) &
    WEIR_TEST_CASSANDRA_PID=$!
    export WEIR_TEST_CASSANDRA_PID
}

# Wait until the node answers CQL (it was started by weir_cassandra_launch).
weir_cassandra_ready() {
    local dir="$WEIR_TEST_CASSANDRA_DIR" i
    for ((i = 0; i < 3000; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$WEIR_CASSANDRA_CQL") 2>/dev/null && return 0
        kill -0 "$WEIR_TEST_CASSANDRA_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "Cassandra did not open its CQL port; the end of its output:" >&2
    tail -30 "$dir/cassandra.out" >&2
    return 1
}

# Start the node and wait for it.
weir_cassandra_start() {
    weir_cassandra_launch && weir_cassandra_ready
}

weir_cassandra_stop() {
    kill "$WEIR_TEST_CASSANDRA_PID" 2>/dev/null || true
    wait "$WEIR_TEST_CASSANDRA_PID" 2>/dev/null || true
}

# A test CA and a node certificate it signs, in JKS keystores; the CA also as PEM.
weir_cassandra_certs() {
    local dir="$1" pass=weirtest
    local kt=(keytool -noprompt -storepass "$pass" -keypass "$pass" -storetype JKS)
    "${kt[@]}" -genkeypair -alias ca -keyalg RSA -keysize 2048 -validity 30 \
        -dname "CN=weir test CA" -ext bc:c -keystore "$dir/ca.jks" &&
        "${kt[@]}" -exportcert -rfc -alias ca -keystore "$dir/ca.jks" -file "$dir/ca.pem" &&
        "${kt[@]}" -genkeypair -alias node -keyalg RSA -keysize 2048 -validity 30 \
            -dname "CN=localhost" -keystore "$dir/node.jks" &&
        "${kt[@]}" -certreq -alias node -keystore "$dir/node.jks" -file "$dir/node.csr" &&
        "${kt[@]}" -gencert -alias ca -keystore "$dir/ca.jks" -infile "$dir/node.csr" \
            -outfile "$dir/node.crt" -rfc -validity 30 \
            -ext "san=ip:127.0.0.1,dns:localhost" -ext "eku=serverAuth" &&
        "${kt[@]}" -importcert -alias ca -keystore "$dir/node.jks" -file "$dir/ca.pem" &&
        "${kt[@]}" -importcert -alias node -keystore "$dir/node.jks" -file "$dir/node.crt"
}

weir_cassandra_fetch || { echo "cannot fetch Apache Cassandra; the Cassandra tests cannot run" >&2; return 1; }
WEIR_TEST_CASSANDRA_DIR="$(mktemp -d)"
export WEIR_TEST_CASSANDRA_DIR
weir_cassandra_certs "$WEIR_TEST_CASSANDRA_DIR" >"$WEIR_TEST_CASSANDRA_DIR/keytool.out" 2>&1 ||
    { echo "keytool could not make the test certificates:" >&2; cat "$WEIR_TEST_CASSANDRA_DIR/keytool.out" >&2; return 1; }
export WEIR_TEST_CASSANDRA_CA="$WEIR_TEST_CASSANDRA_DIR/ca.pem"
_weir_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WEIR_CASSANDRA_CQL="$(_weir_port)"
WEIR_CASSANDRA_STORAGE="$(_weir_port)"
WEIR_CASSANDRA_JMX="$(_weir_port)"
cat >"$WEIR_TEST_CASSANDRA_DIR/cassandra.yaml" <<YAML
cluster_name: weir-test
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
data_file_directories: [$WEIR_TEST_CASSANDRA_DIR/data]
commitlog_directory: $WEIR_TEST_CASSANDRA_DIR/commitlog
saved_caches_directory: $WEIR_TEST_CASSANDRA_DIR/saved_caches
hints_directory: $WEIR_TEST_CASSANDRA_DIR/hints
cdc_raw_directory: $WEIR_TEST_CASSANDRA_DIR/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$WEIR_CASSANDRA_STORAGE"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $WEIR_CASSANDRA_STORAGE
native_transport_port: $WEIR_CASSANDRA_CQL
start_native_transport: true
endpoint_snitch: SimpleSnitch
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
concurrent_reads: 8
concurrent_writes: 8
memtable_allocation_type: heap_buffers
client_encryption_options:
  enabled: true
  optional: true
  keystore: $WEIR_TEST_CASSANDRA_DIR/node.jks
  keystore_password: weirtest
  store_type: JKS
  require_client_auth: false
YAML
echo "==> starting Cassandra on 127.0.0.1:$WEIR_CASSANDRA_CQL (weir_cassandra_ready waits for it)"
weir_cassandra_launch || return 1
export WEIR_TEST_CASSANDRA="127.0.0.1:$WEIR_CASSANDRA_CQL"

# Stop the node and remove its data (call from the sourcing script's EXIT trap).
weir_cassandra_cleanup() {
    weir_cassandra_stop
    rm -rf "$WEIR_TEST_CASSANDRA_DIR"
}
