"""tally's Python kit: what the tests, the fault and attack suites, the benchmarks and
load/tally-load share, each thing written once.

    procs        the real processes: Redis, sentinels, mosquitto, publishers, replicas
    ha           a Redis set (master, replicas, sentinels) from the shipped configuration
    resp         the RESP client (Redis and sentinels)
    http_reader  the HTTP/1.1 answer reader, tally's answer format, raw exchanges
    load         the load generator and its checks (load/tally-load runs its main)
    proxy        a TCP proxy that loses bytes or cuts connections on request
    edge         the shipped HAProxy configuration rendered for loopback servers
    browser      headless Chromium over the DevTools protocol
    testcase     the integration tests' base class

Every program that uses the kit runs as a module from the repository root
(`python3 -m tests.faults.faults`, `python3 -m bench.run`, `python3 -m unittest
tests.integration.test_http`), so `import kit` needs no search path set by hand."""
