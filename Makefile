# The two commands of README.md:
#   make run    set up, build, and run a worker (embedded Kafka when no broker is configured)
#   make test   set up, build (plain and ASan+UBSan), start Kafka, run every suite, stop Kafka
# Everything else here is a convenience around CMake and scripts/.
JOBS ?= 2
BUILD ?= build
CONFIG ?= examples/kinfer.conf
CMAKE_FLAGS ?=

.PHONY: all setup build run test unit asan fuzz format format-check clean

all: build

setup:
	scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DKINFER_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

run: build
	scripts/run.sh $(BUILD) $(CONFIG)

test:
	scripts/test.sh

unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

asan: setup
	cmake -S . -B build-asan -DKINFER_WERROR=ON -DKINFER_SANITIZE=address,undefined \
	  -DKINFER_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ctest --output-on-failure -j$(JOBS)

fuzz: setup
	scripts/fuzz.sh

format:
	scripts/format.sh fix

format-check:
	scripts/format.sh check

clean:
	rm -rf build build-asan build-fuzz
