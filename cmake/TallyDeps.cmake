# Imported targets for the Debian packages tally builds on. Each dependency becomes one
# target so programs and tests say what they use with target_link_libraries only.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

# h2o, libuv flavour: hiredis and our timers share the same uv loop. libh2o.pc lists
# libuv only as a private requirement, so libuv is named here on its own.
pkg_check_modules(H2O REQUIRED IMPORTED_TARGET libh2o)
pkg_check_modules(UV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
find_package(OpenSSL REQUIRED)

# paho.mqtt.c ships a CMake package and no pkg-config file. Only the async library.
find_package(eclipse-paho-mqtt-c REQUIRED)

pkg_check_modules(CRITERION IMPORTED_TARGET criterion)
